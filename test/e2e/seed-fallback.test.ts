// Seed 000 "Implementing Fallback Backends": weight 100 primary, weight 0 backup. The backup takes over when the
// primary is down, and the primary gets the traffic back once it is up again.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCA } from '../support/certs.ts';
import { echoClient, startTcpEcho, type TcpEchoServer } from '../support/echo-server.ts';
import { type Materialized, materializeExample, runSnigate, type Snigate, waitUntil } from './helpers.ts';

const ca = createCA('e2e seed-fallback CA');
const SNI = 'app.example.com';
const cert = ca.issue({ cn: SNI, keyType: 'ec' });
let primary: TcpEchoServer | undefined;
let backup: TcpEchoServer;
let primaryPort: number;
let dir: Materialized;
let gw: Snigate;

before(async () => {
  primary = await startTcpEcho({ pod: 'app-primary-0', namespace: 'default', tls: cert });
  primaryPort = primary.port;
  backup = await startTcpEcho({ pod: 'app-backup-0', namespace: 'default', tls: cert });
  dir = materializeExample('fallback', { 19449: primary.port, 19450: backup.port });
  gw = await runSnigate({ files: [dir.dir], listenerPorts: [443] });
});

after(async () => {
  await gw?.stop();
  await Promise.all([primary?.close(), backup?.close()]);
  dir?.cleanup();
  ca.cleanup();
});

async function podOf(): Promise<string> {
  const r = await echoClient({
    port: gw.port(443),
    tls: { servername: SNI, ca: ca.certPem },
    timeoutMs: 5_000,
  });
  return r.test.pod;
}

test('while the primary is healthy, it gets all the traffic (weight 0 gets none)', async () => {
  for (let i = 0; i < 30; i++) assert.equal(await podOf(), 'app-primary-0');
  // sessions, not connections: the active health check's TCP probes are accepted connections too.
  assert.equal(backup.sessions.length, 0);
});

test('primary stopped: new connections succeed on the backup; primary back: traffic returns', async (t) => {
  await primary!.close();
  primary = undefined;
  // Health detection is allowed a bounded window: connections may fail until the primary is marked down.
  let failures = 0;
  const t0 = Date.now();
  await waitUntil(
    'a connection served by app-backup-0',
    async () => {
      try {
        return (await podOf()) === 'app-backup-0';
      } catch {
        failures++;
        return false;
      }
    },
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  t.diagnostic(`failover after ${Date.now() - t0} ms; ${failures} client connection(s) failed meanwhile`);
  // Once failed over, it stays on the backup while the primary is down.
  for (let i = 0; i < 10; i++) assert.equal(await podOf(), 'app-backup-0');
  const s = await gw.status();
  const ep = s.endpoints.find((e) => e.endpoint === `127.0.0.1:${primaryPort}`);
  assert.equal(ep?.healthy, false, JSON.stringify(s.endpoints));

  primary = await startTcpEcho({ pod: 'app-primary-0', namespace: 'default', tls: cert, port: primaryPort });
  const t1 = Date.now();
  // The active TCP check (default interval 5 s, healthy after 2 successes) brings it back.
  await waitUntil('traffic back on app-primary-0', async () => (await podOf()) === 'app-primary-0', {
    timeoutMs: 20_000,
    intervalMs: 200,
  });
  t.diagnostic(`primary back after ${Date.now() - t1} ms`);
  for (let i = 0; i < 10; i++) assert.equal(await podOf(), 'app-primary-0');
});
