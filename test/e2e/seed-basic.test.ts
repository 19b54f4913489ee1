// Seed 000 "Creating a Basic TLSRoute", run through the real CLI: the client sees the backend's certificate,
// unknown or missing SNI is closed without a TLS alert, and each connection leaves one log record.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCA } from '../support/certs.ts';
import { echoClient, startTcpEcho, type TcpEchoServer, tlsOutcome } from '../support/echo-server.ts';
import { opensslSClient } from '../support/processes.ts';
import { type Materialized, materializeExample, runSnigate, type Snigate } from './helpers.ts';

const ca = createCA('e2e seed-basic CA');
const backendCert = ca.issue({ cn: 'secure.example.com' });
let echo: TcpEchoServer;
let dir: Materialized;
let gw: Snigate;
let port: number;

before(async () => {
  echo = await startTcpEcho({ pod: 'secure-service-0', namespace: 'default', tls: backendCert });
  dir = materializeExample('basic', { 19443: echo.port });
  gw = await runSnigate({ files: [dir.dir], listenerPorts: [443] });
  port = gw.port(443);
});

after(async () => {
  await gw?.stop();
  await echo?.close();
  dir?.cleanup();
  ca.cleanup();
});

test('openssl s_client -servername secure.example.com gets the BACKEND certificate, verified by the test CA', async () => {
  const r = await opensslSClient({ port, servername: 'secure.example.com', caFile: ca.caFile });
  assert.ok(r.connected, `handshake failed:\n${r.raw.stderr}`);
  assert.equal(r.peerSubject, 'CN=secure.example.com');
  assert.ok(r.verified, `verify: ${r.verifyMessage}`);
  assert.deepEqual(r.peerSans, ['secure.example.com']);
  // The backend terminated this TLS session: it counted the connection and saw the SNI.
  assert.ok(echo.connections >= 1);
  assert.ok(echo.sessions.some((s) => s.tls?.serverName === 'secure.example.com'));
});

test('the conformance echo dialogue works end to end (banner first, PONG, IS_TLS=true, serverName)', async () => {
  const r = await echoClient({ port, tls: { servername: 'secure.example.com', ca: ca.certPem } });
  assert.equal(r.banner, 'Gateway API Test TCP Server\n');
  assert.equal(r.pong, 'PONG');
  assert.equal(r.isTls, true);
  assert.equal(r.test.pod, 'secure-service-0');
  assert.equal(r.test.tls?.serverName, 'secure.example.com');
  assert.equal(r.tls?.authorized, true);
  assert.equal(r.tls?.peerSubjectCN, 'secure.example.com');

  const log = await gw.waitForConnection((c) => c.sni === 'secure.example.com' && c.end !== undefined);
  assert.equal(log.route, 'TLSRoute/default/basic-tls-route');
  assert.equal(log.backend, 'Service/default/secure-service:443');
  assert.equal(log.endpoint, `127.0.0.1:${echo.port}`);
  assert.equal(log.listener, 'default/tls-gateway/tls-passthrough');
  assert.equal(log.bind, `127.0.0.1:${port}`);
  assert.match(log.end, /^(client-closed|backend-closed)$/);
  assert.ok(log.bytesIn > 0 && log.bytesOut > 0, JSON.stringify(log));
  assert.equal(typeof log.helloMs, 'number');
});

for (const [what, servername] of [
  ['an unknown SNI', 'unknown.example.com'],
  ['no SNI', undefined],
] as const) {
  test(`${what}: connection closed with no TLS alert (conformance rejection)`, async () => {
    const before = echo.connections;
    const o = await tlsOutcome({ port, tls: { ...(servername ? { servername } : {}), ca: ca.certPem } });
    assert.ok(o.kind === 'eof' || o.kind === 'reset', `expected eof/reset, got ${JSON.stringify(o)}`);

    const s = await opensslSClient({ port, ...(servername ? { servername } : {}), caFile: ca.caFile });
    assert.equal(s.connected, false);
    assert.equal(s.alert, undefined, `openssl reported an alert: ${s.raw.stderr}`);
    assert.equal(s.closedWithoutAlert, true, `openssl output:\n${s.raw.stdout}\n${s.raw.stderr}`);
    assert.equal(s.peerSubject, undefined);
    assert.equal(echo.connections, before, 'a rejected connection must not reach the backend');

    const log = await gw.waitForConnection((c) => c.sni === (servername ?? null) && c.route === null);
    assert.equal(log.backend, null);
    assert.equal(log.endpoint, null);
    assert.match(log.end, servername ? /^no-route$/ : /^(no-sni|no-route)$/);
  });
}
