// Seed 000 "Routing to Cross-Namespace Backends": the ReferenceGrant allows the route; deleting it (live reload)
// revokes it — status says RefNotPermitted and new connections are rejected — and restoring it works again.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createCA } from '../support/certs.ts';
import { echoClient, startTcpEcho, type TcpEchoServer, tlsOutcome } from '../support/echo-server.ts';
import {
  type Materialized,
  materializeExample,
  routeCondition,
  runSnigate,
  type Snigate,
  snigateCli,
  waitUntil,
} from './helpers.ts';

const ca = createCA('e2e seed-cross-namespace CA');
const SNI = 'api.example.com';
let echo: TcpEchoServer;
let dir: Materialized;
let gw: Snigate;
let grantYaml: string;

before(async () => {
  echo = await startTcpEcho({
    pod: 'api-service-0',
    namespace: 'backend',
    tls: ca.issue({ cn: SNI, keyType: 'ec' }),
  });
  dir = materializeExample('cross-namespace', { 19448: echo.port });
  // The seed keeps route and grant in one file; split them so the grant can be deleted on its own.
  const docs = dir.read('tlsroute-cross-namespace.yaml').split(/^---\s*$/m);
  const grantIdx = docs.findIndex((d) => /kind: ReferenceGrant/.test(d));
  assert.ok(grantIdx > 0, 'the seed file has a ReferenceGrant');
  grantYaml = docs[grantIdx]!;
  dir.write('tlsroute-cross-namespace.yaml', docs.filter((_, i) => i !== grantIdx).join('---\n'));
  dir.write('referencegrant.yaml', grantYaml);
  gw = await runSnigate({ files: [dir.dir], listenerPorts: [443] });
});

after(async () => {
  await gw?.stop();
  await echo?.close();
  dir?.cleanup();
  ca.cleanup();
});

async function resolvedRefs(): Promise<{ status: string; reason: string } | undefined> {
  // Through the CLI, as a user would: `snigate status --admin URL -o json`.
  const r = await snigateCli(['status', '--admin', gw.adminUrl, '-o', 'json'], 10_000);
  assert.equal(r.code, 0, r.stderr);
  return routeCondition(JSON.parse(r.stdout), 'TLSRoute', 'frontend', 'cross-namespace-tls', 'ResolvedRefs');
}

async function works(): Promise<void> {
  const r = await echoClient({ port: gw.port(443), tls: { servername: SNI, ca: ca.certPem } });
  assert.equal(r.pong, 'PONG');
  assert.equal(r.test.pod, 'api-service-0');
  assert.equal(r.test.namespace, 'backend');
  assert.equal(r.test.tls?.serverName, SNI);
}

async function rejected(): Promise<boolean> {
  const o = await tlsOutcome({ port: gw.port(443), tls: { servername: SNI, ca: ca.certPem } });
  return o.kind === 'eof' || o.kind === 'reset';
}

test('with the ReferenceGrant: ResolvedRefs=True and traffic reaches backend/api-service', async () => {
  const c = await resolvedRefs();
  assert.equal(c?.status, 'True', JSON.stringify(c));
  assert.equal(c?.reason, 'ResolvedRefs');
  await works();
});

test('ReferenceGrant deleted: RefNotPermitted, new connections rejected; restored: works again', async () => {
  const before = echo.connections;
  dir.remove('referencegrant.yaml');
  const c = await waitUntil(
    'ResolvedRefs=False after deleting the grant',
    async () => {
      const c = await resolvedRefs();
      return c?.status === 'False' ? c : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 200 },
  );
  assert.equal(c.reason, 'RefNotPermitted');
  // The status and the data plane come from the same reload, so the first connection must already be refused.
  assert.ok(await rejected(), 'connection still accepted after the grant was revoked');
  assert.ok(await rejected());
  assert.equal(echo.connections, before, 'a revoked route must not reach the backend');
  const log = await gw.waitForConnection((l) => l.sni === SNI && l.route !== null && l.endpoint === null);
  assert.equal(log.route, 'TLSRoute/frontend/cross-namespace-tls');
  assert.equal(log.end, 'backend-invalid');

  dir.write('referencegrant.yaml', grantYaml);
  await waitUntil(
    'ResolvedRefs=True after restoring the grant',
    async () => (await resolvedRefs())?.status === 'True',
    { timeoutMs: 10_000, intervalMs: 200 },
  );
  await works();
});
