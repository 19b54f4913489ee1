/** Golden tests: every testdata case translates to exactly its checked-in .out.yaml (UPDATE_GOLDEN=1 rewrites). */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { renderGolden, runCase, TESTDATA } from './golden-support.ts';

const update = process.env.UPDATE_GOLDEN === '1';

function check(inFile: string, outFile: string, extra: string[], onlyCase: boolean): void {
  const got = renderGolden(runCase(inFile, extra), onlyCase);
  if (update) {
    writeFileSync(outFile, got);
    return;
  }
  assert.ok(
    existsSync(outFile),
    `${outFile} is missing: run UPDATE_GOLDEN=1 npm run golden:update and review it`,
  );
  assert.equal(got, readFileSync(outFile, 'utf8'));
}

for (const f of readdirSync(TESTDATA)
  .filter((f) => f.endsWith('.in.yaml'))
  .sort()) {
  test(`golden ${f}`, () =>
    check(join(TESTDATA, f), join(TESTDATA, f.replace(/\.in\.yaml$/, '.out.yaml')), [], false));
}

const CONF = join(TESTDATA, 'conformance');
const cases = readdirSync(CONF).filter(
  (f) => f.endsWith('.yaml') && !f.endsWith('.out.yaml') && !f.startsWith('_'),
);
for (const f of cases.sort()) {
  test(`conformance golden ${f}`, () =>
    check(join(CONF, f), join(CONF, f.replace(/\.yaml$/, '.out.yaml')), ['_base.yaml', '_pki.yaml'], true));
}

if (update) {
  // Orphaned outputs would otherwise keep passing review while testing nothing.
  for (const dir of [TESTDATA, CONF]) {
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.out.yaml'))) {
      const input = dir === CONF ? f.replace(/\.out\.yaml$/, '.yaml') : f.replace(/\.out\.yaml$/, '.in.yaml');
      if (!existsSync(join(dir, input))) rmSync(join(dir, f));
    }
  }
}
