// BackendTrafficPolicy end to end, through `snigate run`: PROXY v1/v2 out to the backend, idle timeout,
// max lifetime, connect timeout (against a listener whose accept queue is full), and fallback off.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { createCA } from '../support/certs.ts';
import { echoClient, tlsOutcome } from '../support/echo-client.ts';
import { startTcpEcho, type TcpEchoServer } from '../support/echo-server.ts';
import { commandExists, freePort } from '../support/processes.ts';
import { encodeProxyV2 } from '../support/proxy-protocol.ts';
import { type Materialized, manifestDir, runSnigate, type Snigate, sleep, waitUntil } from './helpers.ts';
import {
  connectFailures,
  gateway,
  openSession,
  policy,
  service,
  tlsRoute,
  yamlDocs,
} from './policies-fixtures.ts';

const HOSTS = {
  pp2: 'pp2.example.com',
  pp1: 'pp1.example.com',
  idle: 'idle.example.com',
  life: 'life.example.com',
  connect: 'connect.example.com',
  fbRoute: 'fb-route.example.com',
  fbService: 'fb-service.example.com',
  fbOn: 'fb-on.example.com',
} as const;
const ca = createCA('e2e policies-backend CA');
const cert = ca.issue({ cn: 'backend', sans: Object.values(HOSTS), keyType: 'ec' });
const PORT = 443;
const PP_IN_PORT = 444;

/**
 * A loopback listener that never accepts, its queue (backlog 0) filled by its own connects: further SYNs are
 * dropped, so a connect to it hangs until the client's own timeout. Python, because Node accepts at once.
 */
const BLACKHOLE_PY = `
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)
port = s.getsockname()[1]
fill = []
for _ in range(3):
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(("127.0.0.1", port))
    fill.append(c)
print(port, flush=True)
sys.stdin.read()
`;

async function startBlackhole(): Promise<{ port: number; child: ChildProcess } | null> {
  if (!commandExists('python3')) return null;
  const child = spawn('python3', ['-c', BLACKHOLE_PY], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await Promise.race([once(child.stdout!, 'data'), sleep(5_000).then(() => [null])])) as [
    Buffer | null,
  ];
  if (line === null) {
    child.kill();
    return null;
  }
  return { port: Number(line.toString().trim()), child };
}

let pp2: TcpEchoServer;
let pp1: TcpEchoServer;
let plain: TcpEchoServer;
let backup: TcpEchoServer;
let blackhole: { port: number; child: ChildProcess } | null;
let dir: Materialized;
let gw: Snigate;

before(async () => {
  pp2 = await startTcpEcho({ pod: 'pp2-0', namespace: 'default', tls: cert, proxyProtocol: true });
  pp1 = await startTcpEcho({ pod: 'pp1-0', namespace: 'default', tls: cert, proxyProtocol: true });
  plain = await startTcpEcho({ pod: 'plain-0', namespace: 'default', tls: cert });
  backup = await startTcpEcho({ pod: 'backup-0', namespace: 'default', tls: cert });
  blackhole = await startBlackhole();
  const deadPorts = [await freePort(), await freePort(), await freePort()];
  const G = 'edge';
  const gatewayRoute = (name: keyof typeof HOSTS, refs: { service: string; weight?: number }[]) =>
    tlsRoute(name.toLowerCase(), [HOSTS[name]], refs, G);
  dir = manifestDir({
    'gateway.yaml': yamlDocs(
      gateway(G, [
        { name: 'tls', port: PORT },
        { name: 'pp-in', port: PP_IN_PORT },
      ]),
      policy(
        'ClientTrafficPolicy',
        'pp-in',
        [{ kind: 'Gateway', name: G, sectionName: 'pp-in' }],
        'proxyProtocol: { trustedCIDRs: ["127.0.0.1/32"] }',
      ),
    ),
    'routes.yaml': yamlDocs(
      gatewayRoute('pp2', [{ service: 'pp2' }]),
      gatewayRoute('pp1', [{ service: 'pp1' }]),
      gatewayRoute('idle', [{ service: 'idle' }]),
      gatewayRoute('life', [{ service: 'life' }]),
      gatewayRoute('connect', [{ service: 'blackhole' }]),
      gatewayRoute('fbRoute', [
        { service: 'dead-a', weight: 1 },
        { service: 'backup', weight: 0 },
      ]),
      gatewayRoute('fbService', [
        { service: 'dead-b', weight: 1 },
        { service: 'backup', weight: 0 },
      ]),
      gatewayRoute('fbOn', [
        { service: 'dead-c', weight: 1 },
        { service: 'backup', weight: 0 },
      ]),
    ),
    'services.yaml': yamlDocs(
      service('pp2', pp2.port),
      service('pp1', pp1.port),
      service('idle', plain.port),
      service('life', plain.port),
      service('blackhole', blackhole?.port ?? deadPorts[0]!),
      service('dead-a', deadPorts[0]!),
      service('dead-b', deadPorts[1]!),
      service('dead-c', deadPorts[2]!),
      service('backup', backup.port),
    ),
    'policies.yaml': yamlDocs(
      policy(
        'BackendTrafficPolicy',
        'pp2',
        [{ kind: 'Service', name: 'pp2' }],
        'proxyProtocol: { version: V2 }',
      ),
      policy(
        'BackendTrafficPolicy',
        'pp1',
        [{ kind: 'Service', name: 'pp1', sectionName: 'tls' }],
        'proxyProtocol: { version: V1 }',
      ),
      policy(
        'BackendTrafficPolicy',
        'idle',
        [{ kind: 'Service', name: 'idle' }],
        'timeouts: { idle: 300ms }',
      ),
      policy(
        'BackendTrafficPolicy',
        'life',
        [{ kind: 'Service', name: 'life' }],
        'timeouts: { maxLifetime: 500ms }',
      ),
      policy(
        'BackendTrafficPolicy',
        'connect',
        [{ kind: 'Service', name: 'blackhole' }],
        'timeouts: { connect: 300ms }\nconnectRetries: 0\nhealthCheck: { active: { enabled: false } }',
      ),
      policy(
        'BackendTrafficPolicy',
        'fb-route',
        [{ kind: 'TLSRoute', name: 'fbroute' }],
        'fallback: { enabled: false }',
      ),
      policy(
        'BackendTrafficPolicy',
        'fb-service',
        [{ kind: 'Service', name: 'dead-b' }],
        'fallback: { enabled: false }',
      ),
    ),
  });
  gw = await runSnigate({ files: [dir.dir], listenerPorts: [PORT, PP_IN_PORT] });
});

after(async () => {
  await gw?.stop();
  await Promise.all([pp2?.close(), pp1?.close(), plain?.close(), backup?.close()]);
  blackhole?.child.kill();
  dir?.cleanup();
  ca.cleanup();
});

test('every BackendTrafficPolicy is Accepted in /status', async () => {
  const doc = await gw.status();
  const names = ['pp2', 'pp1', 'idle', 'life', 'connect', 'fb-route', 'fb-service'];
  for (const name of names) {
    const p = doc.statuses.find((s) => s.kind === 'BackendTrafficPolicy' && s.metadata.name === name);
    assert.ok(p, `no status for ${name}`);
    const anc = p.status.ancestors as { conditions: { type: string; status: string; reason: string }[] }[];
    assert.equal(anc.length, 1);
    assert.equal(
      anc[0]!.conditions.find((c) => c.type === 'Accepted')?.status,
      'True',
      JSON.stringify(p.status),
    );
  }
});

describe('proxyProtocol out', () => {
  for (const [version, host, server] of [
    [2, HOSTS.pp2, () => pp2],
    [1, HOSTS.pp1, () => pp1],
  ] as const) {
    test(`V${version}: the backend reads a PROXY v${version} header carrying the real client address`, async () => {
      const s = await openSession({ port: gw.port(PORT), servername: host, ca: ca.certPem });
      try {
        const t = await s.test();
        assert.equal(t.pod, `pp${version}-0`);
        assert.equal(t.isTLS, true, 'the TLS passed through after the header');
        assert.equal(t.tls?.serverName, host);
        assert.ok(
          t.proxy,
          `no PROXY header seen: ${JSON.stringify(t)}; failures ${server().failures.join('; ')}`,
        );
        assert.equal(t.proxy.version, version);
        assert.equal(t.proxy.command, 'PROXY');
        assert.equal(t.proxy.family, 'TCP4');
        assert.equal(t.proxy.sourceAddress, '127.0.0.1');
        assert.equal(t.proxy.sourcePort, s.raw.localPort);
        assert.equal(t.proxy.destAddress, '127.0.0.1');
        assert.equal(t.proxy.destPort, gw.port(PORT));
      } finally {
        s.close();
      }
    });
  }

  test('without the policy no header is sent: a policy-free Service gets plain passthrough', async () => {
    // plain-0 does not decode PROXY: a header would break its TLS handshake.
    const r = await echoClient({ port: gw.port(PORT), tls: { servername: HOSTS.idle, ca: ca.certPem } });
    assert.equal(r.test.pod, 'plain-0');
    assert.equal(r.test.proxy, undefined);
  });

  test('PROXY in (trusted) then V2 out: the backend sees the address from the client-side header', async () => {
    const preamble = encodeProxyV2({
      sourceAddress: '203.0.113.50',
      sourcePort: 5555,
      destAddress: '198.51.100.1',
      destPort: 443,
    });
    const r = await echoClient({
      port: gw.port(PP_IN_PORT),
      preamble,
      tls: { servername: HOSTS.pp2, ca: ca.certPem },
    });
    assert.equal(r.test.pod, 'pp2-0');
    assert.equal(r.test.proxy?.sourceAddress, '203.0.113.50');
    assert.equal(r.test.proxy?.sourcePort, 5555);
    assert.equal(r.test.proxy?.destAddress, '198.51.100.1');
    assert.equal(r.test.proxy?.destPort, 443);
  });

  test('PROXY in with an IPv6 source, then V1 out: a TCP6 line with that source', async () => {
    const preamble = encodeProxyV2({
      sourceAddress: '2001:db8::7',
      sourcePort: 6000,
      destAddress: '2001:db8::1',
      destPort: 443,
    });
    const r = await echoClient({
      port: gw.port(PP_IN_PORT),
      preamble,
      tls: { servername: HOSTS.pp1, ca: ca.certPem },
    });
    assert.equal(r.test.proxy?.version, 1);
    assert.equal(r.test.proxy?.family, 'TCP6');
    assert.equal(r.test.proxy?.sourceAddress, '2001:db8::7');
    assert.equal(r.test.proxy?.sourcePort, 6000);
    const log = await gw.waitForConnection((l) => l.client === '[2001:db8::7]:6000');
    assert.equal(log.backend, 'Service/default/pp1:443');
  });
});

describe('timeouts', () => {
  test('idle 300ms: an idle passthrough connection is closed (idle-timeout)', async () => {
    const s = await openSession({ port: gw.port(PORT), servername: HOSTS.idle, ca: ca.certPem });
    const local = s.raw.localPort;
    try {
      assert.equal((await s.test()).pod, 'plain-0');
      const t0 = Date.now();
      const closed = await Promise.race([s.closed.then(() => true), sleep(5_000).then(() => false)]);
      const elapsed = Date.now() - t0;
      assert.ok(closed, 'still open after 5 s idle');
      assert.ok(elapsed >= 200 && elapsed < 3_000, `closed after ${elapsed} ms idle`);
      const log = await gw.waitForConnection((l) => l.client === `127.0.0.1:${local}`);
      assert.equal(log.end, 'idle-timeout');
      assert.equal(log.backend, 'Service/default/idle:443');
    } finally {
      s.close();
    }
  });

  test('idle 300ms: a connection with traffic every 100 ms outlives it (1 s)', async () => {
    const s = await openSession({ port: gw.port(PORT), servername: HOSTS.idle, ca: ca.certPem });
    try {
      let open = true;
      void s.closed.then(() => {
        open = false;
      });
      const t0 = Date.now();
      for (let i = 0; i < 20 && Date.now() - t0 < 1_000; i++) {
        s.tls.write('PING\n');
        assert.equal((await s.next()).trimEnd(), 'PONG');
        await sleep(100);
      }
      assert.ok(open, 'closed although busy');
    } finally {
      s.close();
    }
  });

  test('maxLifetime 500ms: a busy connection is closed anyway (max-lifetime)', async () => {
    const s = await openSession({ port: gw.port(PORT), servername: HOSTS.life, ca: ca.certPem });
    const local = s.raw.localPort;
    const t0 = Date.now();
    let pongs = 0;
    try {
      let open = true;
      void s.closed.then(() => {
        open = false;
      });
      for (let i = 0; i < 50 && open && Date.now() - t0 < 5_000; i++) {
        s.tls.write('PING\n');
        try {
          await s.next();
          pongs++;
        } catch {
          break;
        }
        await sleep(100);
      }
      await Promise.race([s.closed, sleep(1_000)]);
      const elapsed = Date.now() - t0;
      assert.equal(open, false, 'still open after 5 s');
      assert.ok(pongs >= 2, `the connection was busy (${pongs} PONGs)`);
      assert.ok(elapsed >= 400 && elapsed < 4_000, `closed after ${elapsed} ms`);
      const log = await gw.waitForConnection((l) => l.client === `127.0.0.1:${local}`);
      assert.equal(log.end, 'max-lifetime');
    } finally {
      s.close();
    }
  });

  test('connect 300ms: a backend that never completes the handshake fails the connection (ETIMEDOUT)', async (t) => {
    if (blackhole === null) {
      t.skip('python3 is not available to hold a listener with a full accept queue');
      return;
    }
    const t0 = Date.now();
    const o = await tlsOutcome({ port: gw.port(PORT), tls: { servername: HOSTS.connect, ca: ca.certPem } });
    const elapsed = Date.now() - t0;
    assert.ok(o.kind === 'eof' || o.kind === 'reset', JSON.stringify(o));
    assert.ok(elapsed >= 250 && elapsed < 4_000, `failed after ${elapsed} ms`);
    const log = await gw.waitForConnection((l) => l.sni === HOSTS.connect);
    assert.equal(log.end, 'connect-failed');
    assert.equal(log.detail, 'ETIMEDOUT');
    assert.equal(log.endpoint, `127.0.0.1:${blackhole.port}`);
    assert.ok(log.durationMs >= 250, `durationMs ${log.durationMs}`);
  });
});

describe('fallback', () => {
  test('control: without a policy, the weight-0 backup takes connections while the primary is down', async () => {
    const r = await echoClient({ port: gw.port(PORT), tls: { servername: HOSTS.fbOn, ca: ca.certPem } });
    assert.equal(r.test.pod, 'backup-0');
  });

  for (const [what, host] of [
    ['on the TLSRoute', HOSTS.fbRoute],
    ['on the weighted (primary) Service', HOSTS.fbService],
  ] as const) {
    test(`enabled: false ${what}: primary down → connections rejected, none reach the backup`, async () => {
      const before = backup.sessions.length;
      for (let i = 0; i < 3; i++) {
        const o = await tlsOutcome({ port: gw.port(PORT), tls: { servername: host, ca: ca.certPem } });
        assert.ok(o.kind === 'eof' || o.kind === 'reset', `attempt ${i}: ${JSON.stringify(o)}`);
      }
      assert.equal(backup.sessions.length, before, 'a connection went to the weight-0 backup');
      const logs = await waitUntil('3 connection records', () => {
        const l = gw.connections().filter((c) => c.sni === host);
        return l.length >= 3 && l;
      });
      for (const l of logs) assert.equal(l.end, 'connect-failed', JSON.stringify(l));
      // Each was a real connect attempt on the primary's endpoint (and the metric the health test relies on).
      assert.ok((await connectFailures(gw.adminUrl, logs[0]!.endpoint!)) >= 3);
    });
  }
});
