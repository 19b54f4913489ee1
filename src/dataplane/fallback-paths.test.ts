/**
 * The data plane's fallbacks keep working: the connection and passthrough suites run again in child processes
 * with Node accepting (SNIGATE_ACCEPT=node: net.Server, the native pump takes a dup of the fd after the
 * ClientHello) and with no native code at all (SNIGATE_PUMP=js: net.Socket pairs and the JavaScript pump).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const suites = ['passthrough.test.ts', 'connection.test.ts', 'server.test.ts', 'native-pump.test.ts'].map(
  (f) => `${here}${f}`,
);

for (const [name, env] of [
  ['Node accepts, native pump after the hello (SNIGATE_ACCEPT=node)', { SNIGATE_ACCEPT: 'node' }],
  ['no native code (SNIGATE_PUMP=js)', { SNIGATE_PUMP: 'js' }],
] as const) {
  test(name, { timeout: 120_000 }, () => {
    // Without NODE_TEST_CONTEXT the child is a test runner of its own, not a subtest of this one.
    const { NODE_TEST_CONTEXT: _, ...parent } = process.env;
    const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...suites], {
      env: { ...parent, ...env },
      encoding: 'utf8',
      timeout: 110_000,
    });
    const summary = /ℹ pass (\d+)[\s\S]*ℹ fail (\d+)/.exec(r.stdout);
    assert.ok(summary, `no test summary:\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
    assert.equal(summary[2], '0', `failures with ${JSON.stringify(env)}:\n${r.stdout.slice(-4000)}`);
    assert.ok(Number(summary[1]) > 30, `only ${summary[1]} tests ran`);
    assert.equal(r.status, 0);
  });
}
