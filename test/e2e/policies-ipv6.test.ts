// IPv6 end to end, through `snigate run`: a Gateway with spec.addresses [::1] serves passthrough on [::1] only,
// to an IPv6 EndpointSlice, with a BackendTrafficPolicy sending PROXY v2 (TCP6) and a ClientTrafficPolicy
// trusting ::1/128 for PROXY in. Skipped when ::1 is not available.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, test } from 'node:test';
import { createCA } from '../support/certs.ts';
import { echoClient, tlsOutcome } from '../support/echo-client.ts';
import { startTcpEcho, type TcpEchoServer } from '../support/echo-server.ts';
import { encodeProxyV1 } from '../support/proxy-protocol.ts';
import { type Materialized, manifestDir, runSnigate, type Snigate } from './helpers.ts';
import { gateway, openSession, policy, service, tlsRoute, yamlDocs } from './policies-fixtures.ts';

const SNI = 'v6.example.com';
const ca = createCA('e2e policies-ipv6 CA');
const cert = ca.issue({ cn: SNI, keyType: 'ec' });
let v6: boolean;
let echo: TcpEchoServer | undefined;
let dir: Materialized | undefined;
let gw: Snigate | undefined;

function ipv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => s.close(() => resolve(true)));
  });
}

before(async () => {
  v6 = await ipv6Loopback();
  if (!v6) return;
  echo = await startTcpEcho({
    pod: 'v6-0',
    namespace: 'default',
    tls: cert,
    host: '::1',
    proxyProtocol: true,
  });
  dir = manifestDir({
    'all.yaml': yamlDocs(
      gateway(
        'v6',
        [
          { name: 'tls', port: 443 },
          { name: 'pp', port: 444 },
        ],
        ['::1'],
      ),
      tlsRoute('v6', [SNI], [{ service: 'v6' }], 'v6'),
      service('v6', echo.port, ['::1']),
      policy(
        'BackendTrafficPolicy',
        'v6-proxy',
        [{ kind: 'Service', name: 'v6' }],
        'proxyProtocol: { version: V2 }',
      ),
      policy(
        'ClientTrafficPolicy',
        'v6-pp-in',
        [{ kind: 'Gateway', name: 'v6', sectionName: 'pp' }],
        'proxyProtocol: { trustedCIDRs: ["::1/128"] }',
      ),
    ),
  });
  gw = await runSnigate({ files: [dir.dir], listenerPorts: [443, 444], hosts: ['::1', '127.0.0.1'] });
});

after(async () => {
  await gw?.stop();
  await echo?.close();
  dir?.cleanup();
  ca.cleanup();
});

test('Gateway spec.addresses [::1]: listens on [::1] only, Programmed with that address', async (t) => {
  if (!v6) return t.skip('::1 is not available on this machine');
  const doc = await gw!.status();
  const ports = doc.listening.filter((l) => l.address === '::1').map((l) => l.port);
  assert.deepEqual(ports.sort(), [gw!.port(443), gw!.port(444)].sort());
  assert.equal(
    doc.listening.some((l) => l.address !== '::1'),
    false,
    JSON.stringify(doc.listening),
  );
  const g = doc.statuses.find((s) => s.kind === 'Gateway' && s.metadata.name === 'v6');
  assert.deepEqual(g?.status.addresses, [{ type: 'IPAddress', value: '::1' }]);
  const o = await tlsOutcome({
    port: gw!.port(443),
    host: '127.0.0.1',
    tls: { servername: SNI, ca: ca.certPem },
  });
  assert.equal(o.kind, 'refused', JSON.stringify(o));
});

test('passthrough on [::1] to an IPv6 endpoint; the backend gets PROXY v2 TCP6 with the client address', async (t) => {
  if (!v6) return t.skip('::1 is not available on this machine');
  const s = await openSession({ port: gw!.port(443), host: '::1', servername: SNI, ca: ca.certPem });
  const local = s.raw.localPort;
  try {
    const r = await s.test();
    assert.equal(r.pod, 'v6-0');
    assert.equal(r.tls?.serverName, SNI);
    assert.equal(r.remoteAddress, '::1');
    assert.equal(r.proxy?.version, 2);
    assert.equal(r.proxy?.family, 'TCP6');
    assert.equal(r.proxy?.sourceAddress, '::1');
    assert.equal(r.proxy?.sourcePort, local);
    assert.equal(r.proxy?.destAddress, '::1');
    assert.equal(r.proxy?.destPort, gw!.port(443));
  } finally {
    s.close();
  }
  const log = await gw!.waitForConnection((l) => l.client === `[::1]:${local}`);
  assert.equal(log.bind, `[::1]:${gw!.port(443)}`);
  assert.equal(log.endpoint, `[::1]:${echo!.port}`);
  assert.equal(log.listener, 'default/v6/tls');
});

test('ClientTrafficPolicy trustedCIDRs ::1/128: PROXY in over [::1] is routed, the log shows its source', async (t) => {
  if (!v6) return t.skip('::1 is not available on this machine');
  const preamble = encodeProxyV1({
    sourceAddress: '2001:db8::42',
    sourcePort: 50_000,
    destAddress: '::1',
    destPort: gw!.port(444),
  });
  const r = await echoClient({
    port: gw!.port(444),
    host: '::1',
    preamble,
    tls: { servername: SNI, ca: ca.certPem },
  });
  assert.equal(r.test.pod, 'v6-0');
  // and the PROXY header out carries it on.
  assert.equal(r.test.proxy?.sourceAddress, '2001:db8::42');
  assert.equal(r.test.proxy?.sourcePort, 50_000);
  const log = await gw!.waitForConnection((l) => l.client === '[2001:db8::42]:50000');
  assert.equal(log.bind, `[::1]:${gw!.port(444)}`);

  const o = await tlsOutcome({ port: gw!.port(444), host: '::1', tls: { servername: SNI, ca: ca.certPem } });
  assert.ok(o.kind === 'eof' || o.kind === 'reset', JSON.stringify(o));
  await gw!.waitForConnection((l) => l.bind === `[::1]:${gw!.port(444)}` && l.end === 'proxy-header-invalid');
});
