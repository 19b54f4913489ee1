// Seed 000 "Traffic Splitting with TLS": 90/10 between app-stable and app-canary, measured over real connections.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCA } from '../support/certs.ts';
import { echoClient, startTcpEcho, type TcpEchoServer } from '../support/echo-server.ts';
import {
  type Materialized,
  materializeExample,
  pool,
  runSnigate,
  type Snigate,
  waitUntil,
} from './helpers.ts';

const ca = createCA('e2e seed-traffic-split CA');
const SNI = 'app.example.com';
const N = 1000;
let stable: TcpEchoServer;
let canary: TcpEchoServer;
let dir: Materialized;
let gw: Snigate;

before(async () => {
  const cert = ca.issue({ cn: SNI, keyType: 'ec' });
  stable = await startTcpEcho({ pod: 'app-stable-0', namespace: 'default', tls: cert });
  canary = await startTcpEcho({ pod: 'app-canary-0', namespace: 'default', tls: cert });
  dir = materializeExample('traffic-split', { 19446: stable.port, 19447: canary.port });
  gw = await runSnigate({ files: [dir.dir], listenerPorts: [443] });
});

after(async () => {
  await gw?.stop();
  await Promise.all([stable?.close(), canary?.close()]);
  dir?.cleanup();
  ca.cleanup();
});

test(`weights 90/10 over ${N} connections: the canary gets 6%..14%`, { timeout: 90_000 }, async (t) => {
  const deadline = Date.now() + 60_000;
  const pods = await pool(N, 25, async () => {
    if (Date.now() > deadline) throw new Error('traffic split run exceeded 60 s');
    const r = await echoClient({ port: gw.port(443), tls: { servername: SNI, ca: ca.certPem } });
    assert.equal(r.isTls, true);
    return r.test.pod;
  });
  const nCanary = pods.filter((p) => p === 'app-canary-0').length;
  const nStable = pods.filter((p) => p === 'app-stable-0').length;
  assert.equal(nCanary + nStable, N, 'every connection reached one of the two backends');
  // Binomial(n=1000, p=0.1): mean 100, sd ≈ 9.5. [60, 140] is ±4.2 sd: a false failure is ~1 in 40 000 runs,
  // while 80/20 or 95/5 (a wrong weight, or weight ignored) falls outside.
  const share = nCanary / N;
  t.diagnostic(`canary ${nCanary}/${N} = ${(share * 100).toFixed(1)}%`);
  assert.ok(share >= 0.06 && share <= 0.14, `canary share ${(share * 100).toFixed(1)}% (${nCanary}/${N})`);
  // The servers agree with what the clients saw.
  assert.equal(canary.sessions.length, nCanary);
  assert.equal(stable.sessions.length, nStable);
  // Closes reach the gateway a moment after the clients return.
  await waitUntil('no active connections', async () => (await gw.status()).activeConnections === 0, {
    timeoutMs: 5_000,
  });
});
