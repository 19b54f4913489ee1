/** Golden tests: every testdata case, conformance manifest and runnable example translates to its checked-in .out.yaml. */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { type CaseResult, REPO, renderGolden, runCase, runExample, TESTDATA } from './golden-support.ts';

const update = process.env.UPDATE_GOLDEN === '1';

/** Compare (or, with UPDATE_GOLDEN=1, rewrite) one golden file. */
function check(outFile: string, result: () => CaseResult, onlyCase: boolean): void {
  const got = renderGolden(result(), onlyCase);
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
    check(join(TESTDATA, f.replace(/\.in\.yaml$/, '.out.yaml')), () => runCase(join(TESTDATA, f)), false));
}

const CONF = join(TESTDATA, 'conformance');
const cases = readdirSync(CONF).filter(
  (f) => f.endsWith('.yaml') && !f.endsWith('.out.yaml') && !f.startsWith('_'),
);
for (const f of cases.sort()) {
  test(`conformance golden ${f}`, () =>
    check(
      join(CONF, f.replace(/\.yaml$/, '.out.yaml')),
      () => runCase(join(CONF, f), ['_base.yaml', '_pki.yaml']),
      true,
    ));
}

/** Every runnable example (each seed example) has a golden too: examples/<seed>/<name> → testdata/examples/. */
const EXAMPLES = join(REPO, 'examples');
const EX_OUT = join(TESTDATA, 'examples');
for (const seed of readdirSync(EXAMPLES)
  .filter((d) => d.startsWith('seed-'))
  .sort()) {
  const dirs = readdirSync(join(EXAMPLES, seed), { withFileTypes: true }).filter((d) => d.isDirectory());
  for (const name of dirs.map((d) => d.name).sort()) {
    // Seed 001's runnable folders need the API certificate, which examples/ does not store.
    const fixtures = seed === 'seed-001' && name.startsWith('hybrid') ? ['_seed-001-secret.yaml'] : [];
    test(`example golden ${seed}/${name}`, () =>
      check(
        join(EX_OUT, `${seed}-${name}.out.yaml`),
        () => runExample(join(EXAMPLES, seed, name), fixtures),
        false,
      ));
  }
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
