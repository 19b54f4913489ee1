/**
 * The contract every Source passes: the same objects give the same Resources (modulo what an API server
 * adds: resourceVersion, uid, creationTimestamp, and the served apiVersion), the same routing table and
 * the same statuses; a change fires onChange and shows in the next snapshot. Run over the seed examples.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { CONVERTED_FROM } from '../api/legacy.ts';
import type { Resources } from '../api/types.ts';
import { translateOptions } from '../cli/pipeline.ts';
import { translate } from '../translate/index.ts';
import { KINDS } from './kube-source.ts';
import { loadPaths } from './load.ts';
import type { Source } from './source.ts';

type Obj = Record<string, unknown>;

export interface ContractSubject {
  source: Source;
  /** Adds or replaces an object the way a user would (a new file; `kubectl apply`). */
  apply(obj: Obj): Promise<void>;
  close(): Promise<void>;
}

/** Builds a source holding `docs` (the YAML documents of one example, as written). */
export type SubjectFactory = (docs: Obj[], example: string) => Promise<ContractSubject>;

export const SEED_DIR = new URL('../../examples/seed-000/', import.meta.url).pathname;

export function seedExamples(): { name: string; dir: string; docs: Obj[] }[] {
  return readdirSync(SEED_DIR, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort()
    .map((name) => {
      const dir = join(SEED_DIR, name);
      const docs = readdirSync(dir)
        .filter((f) => /\.ya?ml$/.test(f))
        .sort()
        .flatMap((f) =>
          parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => d.toJS() as Obj | null),
        )
        .filter((d): d is Obj => d !== null && typeof d === 'object');
      return { name, dir, docs };
    });
}

const SERVED = new Map(KINDS.map((k) => [k.kind as string, k.group ? `${k.group}/${k.version}` : k.version]));

/** Resources without what the API server adds, every object at the version the Kubernetes source reads. */
export function comparable(res: Resources): Resources {
  const out = {} as Record<string, unknown[]>;
  for (const [k, list] of Object.entries(res) as [string, Obj[]][]) {
    out[k] = list.map((o) => {
      const {
        resourceVersion: _rv,
        uid: _uid,
        creationTimestamp: _ct,
        managedFields: _mf,
        ...meta
      } = o.metadata as Obj;
      const { status: _status, ...rest } = o;
      return { ...rest, apiVersion: SERVED.get(String(o.kind)) ?? o.apiVersion, metadata: meta };
    });
  }
  return out as unknown as Resources;
}

function statusesOf(res: Resources) {
  const r = translate(res, { ...translateOptions({ files: [] }), statusAddresses: ['192.0.2.1'] });
  const statuses = r.statuses.map((s) => ({ ...s, apiVersion: SERVED.get(s.kind) ?? s.apiVersion }));
  return { table: r.table, statuses };
}

async function waitFor(what: string, cond: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** TLSRoute `rules[].matches[].snis` (v1alpha1): the file source converts it; an API server rejects it at apply. */
function isLegacy(docs: Obj[]): boolean {
  return docs.some((d) => d.kind === 'TLSRoute' && JSON.stringify(d.spec ?? {}).includes('"matches"'));
}

export interface ContractOptions {
  /** The source reads legacy v1alpha1 TLSRoutes (files). Otherwise such objects are skipped with a warning. */
  convertsLegacy: boolean;
}

export function sourceContract(label: string, make: SubjectFactory, o: ContractOptions): void {
  describe(`Source contract: ${label}`, () => {
    for (const ex of seedExamples()) {
      const legacy = isLegacy(ex.docs) && !o.convertsLegacy;
      const what = legacy ? 'legacy TLSRoute skipped with a warning; otherwise the same' : 'the same';
      test(`seed example ${ex.name}: ${what} Resources, routing table and statuses as the manifests`, async () => {
        const reference = await loadPaths([ex.dir]);
        if (legacy) {
          reference.resources.tlsRoutes = reference.resources.tlsRoutes.filter(
            (r) => !r.metadata.annotations?.[CONVERTED_FROM],
          );
          reference.objects = reference.objects.filter(
            (p) => !p.object.metadata.annotations?.[CONVERTED_FROM],
          );
        }
        assert.deepEqual(
          reference.diagnostics.filter((d) => d.severity === 'error'),
          [],
        );
        const subject = await make(ex.docs, ex.name);
        try {
          const snap = await subject.source.snapshot();
          assert.deepEqual(
            snap.diagnostics.filter((d) => d.severity === 'error'),
            [],
          );
          assert.deepEqual(comparable(snap.resources), comparable(reference.resources));
          assert.equal(snap.objectCount, reference.objects.length);
          if (legacy)
            assert.ok(
              snap.diagnostics.some((d) => d.severity === 'warning' && d.object?.kind === 'TLSRoute'),
            );
          const got = statusesOf(snap.resources);
          const want = statusesOf(reference.resources);
          assert.ok(want.table.binds.length > 0, 'the example programs something');
          assert.deepEqual(got.table, want.table);
          assert.deepEqual(got.statuses, want.statuses);
        } finally {
          subject.source.stop();
          await subject.close();
        }
      });
    }

    test('a change fires onChange and shows in the next snapshot', async () => {
      const ex = seedExamples()[0]!;
      const subject = await make(ex.docs, ex.name);
      try {
        const reasons: string[] = [];
        subject.source.start((r) => reasons.push(r));
        const before = await subject.source.snapshot();
        // Let watches settle so the change is an event, not part of the first read.
        await new Promise((r) => setTimeout(r, 200));
        await subject.apply({
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'added-by-contract', namespace: 'default' },
          spec: { ports: [{ port: 443 }] },
        });
        await waitFor('onChange', () => reasons.length > 0);
        const after = await subject.source.snapshot();
        assert.equal(after.resources.services.length, before.resources.services.length + 1);
        assert.ok(after.resources.services.some((s) => s.metadata.name === 'added-by-contract'));
      } finally {
        subject.source.stop();
        await subject.close();
      }
    });
  });
}
