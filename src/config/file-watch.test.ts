/** File watching: in-place edits, atomic replaces (temp file + rename), repeatedly; bursts debounce to one call. */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { watchPaths } from './file-watch.ts';

function waitFor(pred: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  return new Promise((resolve) => {
    const tick = () => {
      if (pred()) resolve(true);
      else if (Date.now() > until) resolve(false);
      else setTimeout(tick, 25);
    };
    tick();
  });
}

for (const mode of ['directory', 'file'] as const) {
  test(`every atomic replace of a manifest is seen (${mode} watched), and bursts debounce`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snigate-watch-'));
    const file = join(dir, 'gw.yaml');
    writeFileSync(file, 'a: 0\n');
    let calls = 0;
    const w = watchPaths([mode === 'directory' ? dir : file], {
      debounceMs: 50,
      pollMs: 200,
      onChange: () => calls++,
      onError: (e) => assert.fail(e),
    });
    try {
      for (let i = 1; i <= 4; i++) {
        const before = calls;
        const tmp = join(dir, `.gw.yaml.tmp${i}`);
        writeFileSync(tmp, `a: ${i}\n${'x'.repeat(i)}\n`);
        renameSync(tmp, file);
        assert.ok(await waitFor(() => calls > before, 3_000), `replace ${i} was seen`);
      }
      // A burst of in-place writes is one reload.
      await new Promise((r) => setTimeout(r, 300));
      const before = calls;
      for (let i = 0; i < 5; i++) writeFileSync(file, `b: ${i}\n`);
      assert.ok(await waitFor(() => calls > before, 3_000));
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(calls, before + 1, 'debounced to one call');
    } finally {
      w.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
