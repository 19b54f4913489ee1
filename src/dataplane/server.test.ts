/** DataPlane end to end on real sockets: SNI routing, rejects without alerts, swaps, concurrency, binds, shutdown. */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { createCA, type TestCA } from '../../test/support/certs.ts';
import { echoClient, tlsOutcome } from '../../test/support/echo-client.ts';
import { startTcpEcho, type TcpEchoServer } from '../../test/support/echo-server.ts';
import { opensslSClient } from '../../test/support/processes.ts';
import { DataPlane } from './server.ts';
import { backend, bind, ep, listener, route, sleep, startPlane } from './testkit.ts';

let ca: TestCA;
let exact: TcpEchoServer;
let wild: TcpEchoServer;
let deep: TcpEchoServer;

before(async () => {
  ca = createCA('dataplane server test CA');
  exact = await startTcpEcho({ pod: 'exact-1', tls: ca.issue({ cn: 'a.example.com' }) });
  wild = await startTcpEcho({
    pod: 'wild-1',
    tls: ca.issue({ cn: 'wild.example.com', sans: ['*.example.com'] }),
  });
  deep = await startTcpEcho({
    pod: 'deep-1',
    tls: ca.issue({ cn: 'deep.example.com', sans: ['x.y.example.com', 'other.test'] }),
  });
});

after(async () => {
  await Promise.all([exact.close(), wild.close(), deep.close()]);
});

function table() {
  return {
    binds: [
      bind([
        listener('l', null, [
          route('a.example.com', 'exact', [backend('Service/ns/exact:443', [ep(exact.port)])]),
          route('*.example.com', 'wild', [backend('Service/ns/wild:443', [ep(wild.port)])]),
        ]),
      ]),
    ],
  };
}

test('routes by SNI: exact beats wildcard, wildcard matches several labels, client sees the backend cert', async () => {
  const p = await startPlane(table());
  try {
    const a = await echoClient({ port: p.port, tls: { servername: 'a.example.com', ca: ca.certPem } });
    assert.equal(a.banner, 'Gateway API Test TCP Server\n');
    assert.equal(a.pong, 'PONG');
    assert.equal(a.isTls, true);
    assert.equal(a.test.pod, 'exact-1');
    assert.equal(a.test.tls?.serverName, 'a.example.com');
    assert.equal(a.tls?.peerSubjectCN, 'a.example.com');
    const w = await echoClient({ port: p.port, tls: { servername: 'b.c.example.com' } });
    assert.equal(w.test.pod, 'wild-1');
    const recs = await p.waitRecords(2);
    const r = recs.find((x) => x.sni === 'a.example.com')!;
    assert.equal(r.route, 'TLSRoute/ns/exact');
    assert.equal(r.backend, 'Service/ns/exact:443');
    assert.equal(r.endpoint, `127.0.0.1:${exact.port}`);
    assert.equal(r.listener, 'ns/gw/l');
    assert.ok(r.bytesIn > 200 && r.bytesOut > 200);
    assert.equal(typeof r.helloMs, 'number');
    assert.ok(r.end === 'client-closed' || r.end === 'client-reset', r.end);
  } finally {
    await p.close();
  }
});

test('openssl s_client gets the backend certificate through the gateway', async () => {
  const p = await startPlane(table());
  try {
    const r = await opensslSClient({ port: p.port, servername: 'a.example.com', caFile: ca.caFile });
    assert.equal(r.connected, true, r.raw.stderr);
    assert.equal(r.verified, true);
    assert.match(r.peerSubject ?? '', /CN=a\.example\.com/);
  } finally {
    await p.close();
  }
});

test('no SNI and unknown SNI: closed without a TLS alert', async () => {
  const p = await startPlane(table());
  try {
    for (const servername of [undefined, 'nope.other.org', 'example.com']) {
      const o = await tlsOutcome({ port: p.port, tls: servername === undefined ? {} : { servername } });
      assert.ok(o.kind === 'eof' || o.kind === 'reset', `${servername}: ${JSON.stringify(o)}`);
    }
    const recs = await p.waitRecords(3);
    assert.deepEqual(recs.map((r) => r.end).sort(), ['no-route', 'no-route', 'no-sni']);
    const s = await opensslSClient({ port: p.port, servername: 'nope.other.org' });
    assert.equal(s.connected, false);
    assert.equal(s.alert, undefined);
  } finally {
    await p.close();
  }
});

test('apply() swap: an established connection survives, new connections follow the new table', async () => {
  const p = await startPlane(table());
  try {
    const { dial, lineReader } = await import('../../test/support/echo-client.ts');
    const { socket } = await dial(
      { port: p.port, tls: { servername: 'a.example.com', ca: ca.certPem } },
      AbortSignal.timeout(3000),
    );
    const next = lineReader(socket);
    assert.equal(await next(), 'Gateway API Test TCP Server\n');
    const swapped = {
      binds: [
        bind([listener('l', null, [route('a.example.com', 'moved', [backend('deep', [ep(deep.port)])])])]),
      ],
    };
    const res = await p.dp.apply(swapped);
    assert.deepEqual(res.binds, [{ address: '127.0.0.1', port: 0, ok: true }]);
    assert.equal(p.dp.listening()[0]?.port, p.port);
    socket.write('PING\n');
    assert.equal((await next()).trimEnd(), 'PONG');
    const fresh = await tlsOutcome({ port: p.port, tls: { servername: 'a.example.com' } });
    assert.equal(fresh.kind === 'handshake' && fresh.peerSubjectCN, 'deep.example.com');
    socket.write('TEST\n');
    assert.equal(JSON.parse(await next()).pod, 'exact-1');
    socket.destroy();
  } finally {
    await p.close();
  }
});

test('swap with drainGraceMs closes connections whose route disappeared', async () => {
  const p = await startPlane(table(), { drainGraceMs: 100 });
  try {
    const { dial } = await import('../../test/support/echo-client.ts');
    const { socket } = await dial(
      { port: p.port, tls: { servername: 'a.example.com' } },
      AbortSignal.timeout(3000),
    );
    socket.on('error', () => {});
    socket.resume();
    const closed = new Promise((r) => socket.once('close', r));
    await p.dp.apply({ binds: [bind([listener('l', null, [])])] });
    await closed;
    const recs = await p.waitRecords(1);
    assert.equal(recs[0]?.end, 'drained');
  } finally {
    await p.close();
  }
});

test('200 concurrent connections, then no active connections left', async () => {
  const p = await startPlane(table());
  try {
    const results = await Promise.all(
      Array.from({ length: 200 }, () =>
        echoClient({ port: p.port, tls: { servername: 'z.example.com' }, timeoutMs: 10_000 }),
      ),
    );
    assert.equal(results.filter((r) => r.test.pod === 'wild-1').length, 200);
    await p.waitRecords(200, 5000);
    for (let i = 0; i < 100 && p.dp.activeConnections() > 0; i++) await sleep(10);
    assert.equal(p.dp.activeConnections(), 0);
  } finally {
    await p.close();
  }
});

test('a bind that cannot listen is reported, not thrown; other binds still open', async () => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const busy = (blocker.address() as net.AddressInfo).port;
  const p = await startPlane(table());
  try {
    const res = await p.dp.apply({ binds: [...table().binds, bind([], { port: busy })] });
    const failed = res.binds.find((b) => b.port === busy);
    assert.deepEqual(failed, { address: '127.0.0.1', port: busy, ok: false, error: 'EADDRINUSE' });
    assert.equal(p.dp.listening().length, 1);
    const a = await echoClient({ port: p.port, tls: { servername: 'a.example.com' } });
    assert.equal(a.test.pod, 'exact-1');
  } finally {
    await p.close();
    blocker.close();
  }
});

test('address null binds every default address; IPv4 and IPv6 side by side', async (t) => {
  const probe = net.createServer();
  const v6 = await new Promise<boolean>((r) => {
    probe.once('error', () => r(false));
    probe.listen(0, '::1', () => probe.close(() => r(true)));
  });
  if (!v6) return t.skip('no IPv6 loopback');
  const p = await startPlane(
    {
      binds: [
        bind([listener('l', null, [route('a.example.com', 'exact', [backend('x', [ep(exact.port)])])])], {
          address: null,
        }),
      ],
    },
    { defaultAddresses: ['127.0.0.1', '::1'] },
  );
  try {
    const addrs = p.dp.listening();
    assert.deepEqual(addrs.map((a) => a.address).sort(), ['127.0.0.1', '::1']);
    for (const a of addrs) {
      const r = await echoClient({ host: a.address, port: a.port, tls: { servername: 'a.example.com' } });
      assert.equal(r.test.pod, 'exact-1');
    }
  } finally {
    await p.close();
  }
});

test('shutdown waits for connections up to the grace period, then closes them', async () => {
  const p = await startPlane(table());
  const { dial } = await import('../../test/support/echo-client.ts');
  const { socket } = await dial(
    { port: p.port, tls: { servername: 'a.example.com' } },
    AbortSignal.timeout(3000),
  );
  socket.on('error', () => {});
  socket.resume();
  const closed = new Promise((r) => socket.once('close', r));
  const started = Date.now();
  await p.dp.shutdown(150);
  await closed;
  assert.ok(Date.now() - started >= 100);
  assert.equal(p.dp.activeConnections(), 0);
  assert.equal(p.records.at(-1)?.end, 'shutdown');
  assert.deepEqual(p.dp.listening(), []);
  const refused = await new Promise<string>((r) => {
    const s = net.connect({ port: p.port, host: '127.0.0.1' });
    s.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? ''));
    s.on('connect', () => {
      s.destroy();
      r('connected');
    });
  });
  assert.equal(refused, 'ECONNREFUSED');
});

test('DataPlane without events or handOff still constructs and shuts down cleanly', async () => {
  const { default: pino } = await import('pino');
  const dp = new DataPlane({ defaultAddresses: ['127.0.0.1'], logger: pino({ enabled: false }) });
  await dp.apply({ binds: [] });
  await dp.shutdown(0);
});

test('the connection limit is per port: both sockets of a dual-stack bind count together', async (t) => {
  const probe = net.createServer();
  const v6 = await new Promise<boolean>((r) => {
    probe.once('error', () => r(false));
    probe.listen(0, '::1', () => probe.close(() => r(true)));
  });
  if (!v6) return t.skip('no IPv6 loopback');
  const p = await startPlane(
    {
      binds: [
        bind([listener('l', null, [route('a.example.com', 'exact', [backend('x', [ep(exact.port)])])])], {
          address: null,
          client: { maxConnections: 2, helloTimeoutMs: 5_000 },
        }),
      ],
    },
    { defaultAddresses: ['127.0.0.1', '::1'] },
  );
  const open: net.Socket[] = [];
  const connect = (host: string, port: number) =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port }, () => resolve(s));
      s.once('error', reject);
    });
  try {
    const addrs = p.dp.listening();
    const v4 = addrs.find((a) => a.address === '127.0.0.1')!;
    const v6a = addrs.find((a) => a.address === '::1')!;
    open.push(await connect(v4.address, v4.port), await connect(v6a.address, v6a.port));
    // Both wait for a ClientHello; a third, on either socket, is over the port's limit of 2.
    await new Promise((r) => setTimeout(r, 100));
    const third = await connect(v4.address, v4.port);
    open.push(third);
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 2_000);
      third.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
      third.on('error', () => {});
      third.resume();
    });
    assert.ok(closed, 'the third connection is closed at once');
    const recs = await p.waitRecords(1);
    assert.equal(recs[0]?.end, 'max-connections');
  } finally {
    for (const s of open) s.destroy();
    await p.close();
  }
});
