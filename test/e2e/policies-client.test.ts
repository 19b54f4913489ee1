// ClientTrafficPolicy end to end, through `snigate run`: clientHello.timeout and maxSize, PROXY protocol in
// (trusted and untrusted peers, v1 and v2), and connectionLimit. One Gateway, one listener (port) per knob,
// each with its own policy (sectionName), plus a listener without any policy as the control.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createCA } from '../support/certs.ts';
import { echoClient, tlsOutcome } from '../support/echo-client.ts';
import { startTcpEcho, type TcpEchoServer } from '../support/echo-server.ts';
import { encodeProxyV1, encodeProxyV2 } from '../support/proxy-protocol.ts';
import {
  awaitClose,
  type Materialized,
  manifestDir,
  runSnigate,
  type Snigate,
  snigateCli,
  tcpConnect,
} from './helpers.ts';
import {
  type EchoSession,
  gateway,
  openSession,
  policy,
  service,
  tlsRoute,
  yamlDocs,
} from './policies-fixtures.ts';

const SNI = 'ok.example.com';
const ca = createCA('e2e policies-client CA');
const cert = ca.issue({ cn: SNI, sans: [SNI], keyType: 'ec' });

const PORTS = { hello: 443, small: 444, pp: 445, ppUntrusted: 446, limit: 447, plain: 448 } as const;

/** The start of a ClientHello: a handshake record announcing 512 bytes, then 6 of them. */
const HALF_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
/** ALPN names that make a real ClientHello far larger than 512 bytes. */
const BIG_ALPN = Array.from(
  { length: 30 },
  (_, i) => `protocol-${String(i).padStart(2, '0')}-${'x'.repeat(20)}`,
);

let echo: TcpEchoServer;
let dir: Materialized;
let gw: Snigate;

before(async () => {
  echo = await startTcpEcho({ pod: 'ok-0', namespace: 'default', tls: cert });
  const gwName = 'edge';
  dir = manifestDir({
    'gateway.yaml': yamlDocs(
      gateway(
        gwName,
        Object.entries(PORTS).map(([name, port]) => ({ name: name.toLowerCase(), port })),
      ),
      tlsRoute('ok', [SNI], [{ service: 'ok' }], gwName),
      service('ok', echo.port),
    ),
    'policies.yaml': yamlDocs(
      policy(
        'ClientTrafficPolicy',
        'hello-timeout',
        [{ kind: 'Gateway', name: gwName, sectionName: 'hello' }],
        'clientHello: { timeout: 300ms }',
      ),
      policy(
        'ClientTrafficPolicy',
        'hello-small',
        [{ kind: 'Gateway', name: gwName, sectionName: 'small' }],
        'clientHello: { timeout: 300ms, maxSize: 512 }',
      ),
      policy(
        'ClientTrafficPolicy',
        'proxy-in',
        [{ kind: 'Gateway', name: gwName, sectionName: 'pp' }],
        'proxyProtocol: { trustedCIDRs: ["127.0.0.0/8"] }\nclientHello: { timeout: 300ms }',
      ),
      policy(
        'ClientTrafficPolicy',
        'proxy-in-elsewhere',
        [{ kind: 'Gateway', name: gwName, sectionName: 'ppuntrusted' }],
        'proxyProtocol: { trustedCIDRs: ["10.0.0.0/8"] }\nclientHello: { timeout: 300ms }',
      ),
      policy(
        'ClientTrafficPolicy',
        'limit',
        [{ kind: 'Gateway', name: gwName, sectionName: 'limit' }],
        'connectionLimit: { max: 2 }',
      ),
    ),
  });
  gw = await runSnigate({ files: [dir.dir], listenerPorts: Object.values(PORTS) });
});

after(async () => {
  await gw?.stop();
  await echo?.close();
  dir?.cleanup();
  ca.cleanup();
});

const bindOf = (p: number) => `127.0.0.1:${gw.port(p)}`;

test('all five ClientTrafficPolicies are Accepted in /status', async () => {
  const doc = await gw.status();
  for (const name of ['hello-timeout', 'hello-small', 'proxy-in', 'proxy-in-elsewhere', 'limit']) {
    const p = doc.statuses.find((s) => s.kind === 'ClientTrafficPolicy' && s.metadata.name === name);
    assert.ok(p, `no status for ${name}`);
    const anc = (
      p.status.ancestors as { conditions: { type: string; status: string; reason: string }[] }[]
    )[0];
    const acc = anc?.conditions.find((c) => c.type === 'Accepted');
    assert.equal(acc?.status, 'True', `${name}: ${JSON.stringify(p.status)}`);
  }
});

describe('clientHello', () => {
  test('timeout 300ms: half a ClientHello then a stall is closed after ~300 ms (hello-timeout)', async () => {
    const s = await tcpConnect(gw.port(PORTS.hello));
    const local = s.localPort;
    s.write(HALF_HELLO);
    const t0 = Date.now();
    const c = await awaitClose(s, 5_000);
    const elapsed = Date.now() - t0;
    assert.ok(c.kind === 'eof' || c.kind === 'reset', JSON.stringify(c));
    assert.equal(c.data.length, 0, 'nothing is sent back');
    // Bounds on the configured deadline, not on speed: well under the 10 s default.
    assert.ok(elapsed >= 250 && elapsed < 3_000, `closed after ${elapsed} ms`);
    const log = await gw.waitForConnection((l) => l.client === `127.0.0.1:${local}`);
    assert.equal(log.end, 'hello-timeout');
    assert.equal(log.detail, `${HALF_HELLO.length} bytes read`);
    assert.equal(log.bind, bindOf(PORTS.hello));
    assert.equal(log.backend, null);
  });

  test('timeout 300ms: a client that sends nothing is closed too (hello-timeout)', async () => {
    const s = await tcpConnect(gw.port(PORTS.hello));
    const local = s.localPort;
    const t0 = Date.now();
    const c = await awaitClose(s, 5_000);
    const elapsed = Date.now() - t0;
    assert.ok(c.kind === 'eof' || c.kind === 'reset', JSON.stringify(c));
    assert.ok(elapsed >= 250 && elapsed < 3_000, `closed after ${elapsed} ms`);
    const log = await gw.waitForConnection((l) => l.client === `127.0.0.1:${local}`);
    assert.equal(log.end, 'hello-timeout');
    assert.equal(log.detail, '0 bytes read');
  });

  test('control: on the port without a policy (10 s default) the same stalled client is still open after 1 s', async () => {
    const s = await tcpConnect(gw.port(PORTS.plain));
    s.write(HALF_HELLO);
    const c = await awaitClose(s, 1_000);
    assert.equal(c.kind, 'timeout', `closed early: ${JSON.stringify(c)}`);
  });

  test('timeout 300ms does not hurt a normal client on that port', async () => {
    const r = await echoClient({ port: gw.port(PORTS.hello), tls: { servername: SNI, ca: ca.certPem } });
    assert.equal(r.test.pod, 'ok-0');
  });

  test('maxSize 512: a real ClientHello larger than that is closed (hello-too-large); the plain port takes it', async () => {
    const o = await tlsOutcome({
      port: gw.port(PORTS.small),
      tls: { servername: SNI, ca: ca.certPem, alpn: BIG_ALPN },
    });
    assert.ok(o.kind === 'eof' || o.kind === 'reset', JSON.stringify(o));
    const log = await gw.waitForConnection(
      (l) => l.bind === bindOf(PORTS.small) && l.end === 'hello-too-large',
    );
    assert.equal(log.backend, null);
    assert.equal(log.sni, null);

    const ok = await tlsOutcome({
      port: gw.port(PORTS.plain),
      tls: { servername: SNI, ca: ca.certPem, alpn: BIG_ALPN },
    });
    assert.equal(ok.kind, 'handshake', JSON.stringify(ok));
    assert.equal(ok.kind === 'handshake' && ok.authorized, true);
  });

  test('maxSize 512: a ClientHello under the limit (TLS 1.2 only, ~250 bytes) is still served on that port', async () => {
    const r = await echoClient({
      port: gw.port(PORTS.small),
      tls: { servername: SNI, ca: ca.certPem, maxVersion: 'TLSv1.2' },
    });
    assert.equal(r.test.pod, 'ok-0');
    assert.equal(r.tls?.protocol, 'TLSv1.2');
  });
});

describe('proxyProtocol in', () => {
  const dest = (p: number) => ({ destAddress: '127.0.0.1', destPort: gw.port(p) });

  for (const [version, encode, source] of [
    ['v2', encodeProxyV2, { sourceAddress: '203.0.113.7', sourcePort: 41_000 }],
    ['v1', encodeProxyV1, { sourceAddress: '198.51.100.9', sourcePort: 42_000 }],
  ] as const) {
    test(`trusted 127.0.0.0/8: a PROXY ${version} header, then TLS, is routed; the log's client is the PROXY source`, async () => {
      const preamble = encode({ ...source, ...dest(PORTS.pp) });
      const r = await echoClient({
        port: gw.port(PORTS.pp),
        preamble,
        tls: { servername: SNI, ca: ca.certPem },
      });
      assert.equal(r.test.pod, 'ok-0');
      assert.equal(r.tls?.authorized, true);
      // The PROXY header in is consumed, never forwarded (the backend speaks TLS straight away).
      assert.equal(r.test.proxy, undefined);
      const log = await gw.waitForConnection(
        (l) => l.client === `${source.sourceAddress}:${source.sourcePort}`,
      );
      assert.equal(log.bind, bindOf(PORTS.pp));
      assert.equal(log.sni, SNI);
      assert.equal(log.route, 'TLSRoute/default/ok');
      assert.match(log.end, /^(client-closed|backend-closed)$/);
    });
  }

  test('trusted 127.0.0.0/8: a client without a header is closed (proxy-header-invalid)', async () => {
    const before = echo.sessions.length;
    const o = await tlsOutcome({ port: gw.port(PORTS.pp), tls: { servername: SNI, ca: ca.certPem } });
    assert.ok(o.kind === 'eof' || o.kind === 'reset', JSON.stringify(o));
    const log = await gw.waitForConnection(
      (l) => l.bind === bindOf(PORTS.pp) && l.end === 'proxy-header-invalid',
    );
    assert.equal(log.detail, 'trusted peer sent no PROXY header');
    assert.equal(echo.sessions.length, before, 'nothing reached the backend');
  });

  test('trustedCIDRs 10.0.0.0/8 (not 127.0.0.1): a PROXY header is refused; without one the client is served', async () => {
    const before = echo.sessions.length;
    const preamble = encodeProxyV2({
      sourceAddress: '192.0.2.1',
      sourcePort: 1234,
      ...dest(PORTS.ppUntrusted),
    });
    const o = await tlsOutcome({
      port: gw.port(PORTS.ppUntrusted),
      preamble,
      tls: { servername: SNI, ca: ca.certPem },
    });
    assert.ok(o.kind === 'eof' || o.kind === 'reset', JSON.stringify(o));
    const log = await gw.waitForConnection(
      (l) => l.bind === bindOf(PORTS.ppUntrusted) && l.end === 'proxy-header-invalid',
    );
    assert.equal(log.detail, 'PROXY header from an untrusted peer');
    assert.match(log.client, /^127\.0\.0\.1:\d+$/);
    assert.equal(echo.sessions.length, before);

    const v1 = encodeProxyV1({ sourceAddress: '192.0.2.1', sourcePort: 1234, ...dest(PORTS.ppUntrusted) });
    const o1 = await tlsOutcome({
      port: gw.port(PORTS.ppUntrusted),
      preamble: v1,
      tls: { servername: SNI, ca: ca.certPem },
    });
    assert.ok(o1.kind === 'eof' || o1.kind === 'reset', JSON.stringify(o1));

    const r = await echoClient({
      port: gw.port(PORTS.ppUntrusted),
      tls: { servername: SNI, ca: ca.certPem },
    });
    assert.equal(r.test.pod, 'ok-0');
  });
});

describe('connectionLimit', () => {
  test('max 2: the third concurrent connection is refused (max-connections); after one closes, a new one is served', async () => {
    const port = gw.port(PORTS.limit);
    const open: EchoSession[] = [];
    try {
      open.push(await openSession({ port, servername: SNI, ca: ca.certPem }));
      open.push(await openSession({ port, servername: SNI, ca: ca.certPem }));
      // Both are real sessions (banner read, TEST answered).
      for (const s of open) assert.equal((await s.test()).pod, 'ok-0');

      const sessions = echo.sessions.length;
      const third = await tcpConnect(port);
      const local = third.localPort;
      const c = await awaitClose(third, 3_000);
      assert.ok(c.kind === 'eof' || c.kind === 'reset', `the third was not closed: ${JSON.stringify(c)}`);
      const log = await gw.waitForConnection((l) => l.client === `127.0.0.1:${local}`);
      assert.equal(log.end, 'max-connections');
      assert.equal(log.bind, bindOf(PORTS.limit));
      assert.equal(echo.sessions.length, sessions);

      // A TLS client is refused the same way.
      const o = await tlsOutcome({ port, tls: { servername: SNI, ca: ca.certPem } });
      assert.ok(o.kind === 'eof' || o.kind === 'reset', JSON.stringify(o));

      // The open ones are untouched.
      for (const s of open) assert.equal((await s.test()).pod, 'ok-0');

      const first = open.shift()!;
      const firstLocal = first.raw.localPort;
      first.close();
      await gw.waitForConnection((l) => l.client === `127.0.0.1:${firstLocal}`);
      const again = await openSession({ port, servername: SNI, ca: ca.certPem });
      open.push(again);
      assert.equal((await again.test()).pod, 'ok-0');
    } finally {
      for (const s of open) s.close();
    }
  });
});

describe('validation (snigate validate)', () => {
  test('the manifests of this file validate cleanly', async () => {
    const r = await snigateCli(['validate', '-f', dir.dir]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  });

  test('trustedCIDRs that are not CIDRs (prefix out of range, bad octet) are errors, not silently "trust nobody"', async () => {
    const bad = manifestDir({
      'p.yaml': yamlDocs(
        gateway('edge', [{ name: 'tls', port: 443 }]),
        policy(
          'ClientTrafficPolicy',
          'bad-cidrs',
          [{ kind: 'Gateway', name: 'edge' }],
          'proxyProtocol: { trustedCIDRs: ["10.0.0.0/33", "300.1.2.3/8", "::1/129", "127.0.0.1/8"] }',
        ),
      ),
    });
    try {
      const r = await snigateCli(['validate', '-f', bad.dir]);
      const out = `${r.stdout}\n${r.stderr}`;
      assert.notEqual(r.code, 0, out);
      for (const [i, v] of [
        [0, '10.0.0.0/33'],
        [1, '300.1.2.3/8'],
        [2, '::1/129'],
      ] as const)
        assert.ok(out.includes(`trustedCIDRs[${i}]: "${v}" is not a CIDR`), out);
      assert.ok(!out.includes('trustedCIDRs[3]'), `127.0.0.1/8 is a valid CIDR:\n${out}`);
    } finally {
      bad.cleanup();
    }
  });
});
