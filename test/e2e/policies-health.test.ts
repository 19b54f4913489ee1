// BackendTrafficPolicy healthCheck.active end to end, through `snigate run`: two endpoints (127.0.0.1 and
// 127.0.0.2 on one port); one stops → /status marks it unhealthy and no connection is even attempted on it;
// it comes back → healthy again, and it gets traffic.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCA } from '../support/certs.ts';
import { echoClient } from '../support/echo-client.ts';
import { startTcpEcho, type TcpEchoServer } from '../support/echo-server.ts';
import { type Materialized, manifestDir, runSnigate, type Snigate, waitUntil } from './helpers.ts';
import { connectFailures, gateway, policy, service, tlsRoute, yamlDocs } from './policies-fixtures.ts';

const SNI = 'pool.example.com';
const ca = createCA('e2e policies-health CA');
const cert = ca.issue({ cn: SNI, keyType: 'ec' });
let a: TcpEchoServer;
let b: TcpEchoServer | undefined;
let port: number;
let dir: Materialized;
let gw: Snigate;

const keyA = () => `127.0.0.1:${port}`;
const keyB = () => `127.0.0.2:${port}`;

before(async () => {
  // Two echo servers on one port number (an EndpointSlice has one port for all its addresses).
  for (let i = 0; i < 5 && b === undefined; i++) {
    a = await startTcpEcho({ pod: 'pool-a', namespace: 'default', tls: cert });
    try {
      b = await startTcpEcho({
        pod: 'pool-b',
        namespace: 'default',
        tls: cert,
        host: '127.0.0.2',
        port: a.port,
      });
    } catch {
      await a.close();
    }
  }
  assert.ok(b, 'could not listen on 127.0.0.2 with the port of 127.0.0.1');
  port = a.port;
  dir = manifestDir({
    'all.yaml': yamlDocs(
      gateway('edge', [{ name: 'tls', port: 443 }]),
      tlsRoute('pool', [SNI], [{ service: 'pool' }], 'edge'),
      service('pool', port, ['127.0.0.1', '127.0.0.2']),
      policy(
        'BackendTrafficPolicy',
        'pool-health',
        [{ kind: 'Service', name: 'pool' }],
        'healthCheck: { active: { interval: 200ms, timeout: 200ms, unhealthyThreshold: 1, healthyThreshold: 1 } }',
      ),
    ),
  });
  gw = await runSnigate({ files: [dir.dir], listenerPorts: [443] });
});

after(async () => {
  await gw?.stop();
  await Promise.all([a?.close(), b?.close()]);
  dir?.cleanup();
  ca.cleanup();
});

async function endpointHealth(key: string): Promise<{ healthy: boolean; activeCheck?: boolean } | undefined> {
  const doc = await gw.status();
  return (doc.endpoints as { endpoint: string; healthy: boolean; activeCheck?: boolean }[]).find(
    (e) => e.endpoint === key,
  );
}

/** Connections made by pod(): each ends in one connection log record. */
let made = 0;

async function pod(): Promise<string> {
  made++;
  const r = await echoClient({ port: gw.port(443), tls: { servername: SNI, ca: ca.certPem } });
  return r.test.pod;
}

test('both endpoints are actively checked and healthy; traffic goes to both', async () => {
  for (const k of [keyA(), keyB()]) {
    const h = await waitUntil(`${k} checked`, async () => {
      const e = await endpointHealth(k);
      return e?.healthy === true && e;
    });
    assert.equal(h.activeCheck, true);
  }
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) seen.add(await pod());
  assert.deepEqual([...seen].sort(), ['pool-a', 'pool-b']);
});

test('endpoint B stops: marked unhealthy within a bounded wait; no connection is attempted on it', async () => {
  await b!.close();
  b = undefined;
  const t0 = Date.now();
  await waitUntil('B unhealthy in /status', async () => (await endpointHealth(keyB()))?.healthy === false, {
    timeoutMs: 3_000,
    intervalMs: 50,
  });
  const markedAfter = Date.now() - t0;
  assert.ok(markedAfter < 3_000, `marked after ${markedAfter} ms`);
  assert.equal((await endpointHealth(keyA()))?.healthy, true);

  const failuresBefore = await connectFailures(gw.adminUrl, keyB());
  // Log lines come in batches (up to 250 ms late): the earlier tests' records must all be in before counting.
  await waitUntil('earlier records logged', () => gw.connections().length >= made);
  const since = gw.connections().length;
  for (let i = 0; i < 8; i++) assert.equal(await pod(), 'pool-a');
  const records = await waitUntil('8 records', () => {
    const r = gw.connections().slice(since);
    return r.length >= 8 && r;
  });
  for (const r of records) assert.equal(r.endpoint, keyA(), JSON.stringify(r));
  // Passthrough would retry a refused connect on A: the metric shows whether B was tried at all.
  assert.equal(
    await connectFailures(gw.adminUrl, keyB()),
    failuresBefore,
    'a connection was attempted on the unhealthy endpoint',
  );
});

test('endpoint B comes back: healthy again, and it gets traffic', async () => {
  b = await startTcpEcho({ pod: 'pool-b', namespace: 'default', tls: cert, host: '127.0.0.2', port });
  await waitUntil('B healthy again', async () => (await endpointHealth(keyB()))?.healthy === true, {
    timeoutMs: 3_000,
    intervalMs: 50,
  });
  const before = b.sessions.length;
  const pods: string[] = [];
  for (let i = 0; i < 10 && !pods.includes('pool-b'); i++) pods.push(await pod());
  assert.ok(pods.includes('pool-b'), `B got none of ${pods.join(', ')}`);
  assert.ok(b.sessions.length > before);
});
