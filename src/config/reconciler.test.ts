/** The reconciler's counters: a reload is counted when it finishes (programmed or refused), not when it starts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { toResources } from '../api/parse.ts';
import { DataPlane } from '../dataplane/server.ts';
import { Reconciler } from './reconciler.ts';
import type { Source, SourceSnapshot } from './source.ts';

test('reloads are counted once finished, so a new count means lastReload is that reload', async () => {
  let open: (s: SourceSnapshot) => void = () => {};
  const source: Source = {
    name: 'gated',
    snapshot: () => new Promise<SourceSnapshot>((resolve) => (open = resolve)),
    start() {},
    stop() {},
  };
  const logger = pino({ level: 'silent' });
  const dataPlane = new DataPlane({ defaultAddresses: ['127.0.0.1'], logger });
  const r = new Reconciler({
    source,
    args: { files: [] },
    dataPlane,
    logger,
    portOffset: 0,
    defaultAddresses: ['127.0.0.1'],
  });
  const pending = r.reload('test');
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(r.counts, { reloads: 0, failures: 0 }, 'not counted while reading the source');
  open({
    resources: toResources([]).resources,
    diagnostics: [{ severity: 'error', code: 'test-error', message: 'broken on purpose' }],
    objectCount: 0,
  });
  const rec = await pending;
  assert.equal(rec.ok, false);
  assert.deepEqual(r.counts, { reloads: 1, failures: 1 });
  assert.equal(r.lastReload, rec);
  await dataPlane.shutdown(0);
});
