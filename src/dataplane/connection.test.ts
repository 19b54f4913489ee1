/** The preamble path on real sockets: rejects, deadline, size cap, PROXY in, Postgres SSLRequest, tcp binds, limits. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { before, test } from 'node:test';
import tls from 'node:tls';
import { createCA, type TestCA } from '../../test/support/certs.ts';
import type { RoutingTable } from '../table/types.ts';
import type { ConnectionRecord } from './conn-log.ts';
import { CANCEL_REQUEST_PREFIX, GSSENC_REQUEST, SSL_REQUEST } from './postgres.ts';
import { PreambleReader } from './preamble.ts';
import { decodeProxyHeader, encodeProxyV1, encodeProxyV2 } from './proxy-protocol.ts';
import {
  backend,
  bind,
  captureHello,
  collect,
  ep,
  listener,
  rawConnect,
  route,
  startPlane,
  startRawBackend,
} from './testkit.ts';

let ca: TestCA;
let hello: Buffer;

before(async () => {
  ca = createCA('dataplane connection test CA');
  hello = await captureHello('svc.example.com');
});

function table(port: number, client: Parameters<typeof bind>[1] = {}, policy = {}): RoutingTable {
  return {
    binds: [
      bind(
        [listener('l', null, [route('svc.example.com', 'svc', [backend('b', [ep(port)], { policy })])])],
        client,
      ),
    ],
  };
}

/** Writes `data`, waits for the gateway to close, returns the one record. */
async function rejected(port: number, data: Buffer, waitRecords: (n: number) => Promise<ConnectionRecord[]>) {
  const c = await rawConnect(port);
  const done = collect(c);
  if (data.length > 0) c.write(data);
  const { data: got } = await done;
  assert.equal(got.length, 0, 'no bytes (no TLS alert) before the close');
  return (await waitRecords(1))[0]!;
}

test('PreambleReader: PROXY v1, SSLRequest and ClientHello in one chunk', () => {
  const replies: string[] = [];
  const r = new PreambleReader(
    { expectProxy: true, refuseProxy: false, readHello: true, helloMaxBytes: 65536 },
    (b) => replies.push(b.toString()),
  );
  const proxy = encodeProxyV1({
    family: 'tcp4',
    sourceAddress: '192.0.2.7',
    sourcePort: 5555,
    destAddress: '198.51.100.1',
    destPort: 443,
  });
  assert.equal(
    r.push(Buffer.concat([proxy, GSSENC_REQUEST, SSL_REQUEST, hello.subarray(0, 10)])),
    'need-more',
  );
  assert.equal(r.push(hello.subarray(10)), 'done');
  assert.deepEqual(replies, ['N', 'S']);
  assert.equal(r.proxy?.sourceAddress, '192.0.2.7');
  assert.equal(r.pgSsl, true);
  assert.equal(r.hello?.sni, 'svc.example.com');
  assert.ok(r.tail().equals(hello));
  assert.ok(r.head().equals(Buffer.concat([SSL_REQUEST, hello])));
});

test('non-TLS bytes are closed as not-tls', async () => {
  const p = await startPlane(table(1));
  try {
    const r = await rejected(p.port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), p.waitRecords);
    assert.equal(r.end, 'not-tls');
  } finally {
    await p.close();
  }
});

test('a client that closes or resets before sending anything: client-closed / client-reset, no backend contacted', async () => {
  const be = await startRawBackend();
  const p = await startPlane(table(be.port));
  try {
    // A child connects and ends (FIN) or resets 10 connections while this process's loop is blocked in
    // spawnSync: the FIN or RST is already there when the gateway accepts and first reads.
    const script = `const net = require('node:net'); let left = 10;
      for (let i = 0; i < 10; i++) {
        const s = net.connect(${p.port}, '127.0.0.1', () => {
          if (i % 2 === 0) s.end(); else s.resetAndDestroy();
          if (--left === 0) setTimeout(() => process.exit(0), 50);
        });
        s.on('error', () => {});
      }`;
    const r = spawnSync(process.execPath, ['-e', script], { timeout: 10_000 });
    assert.equal(r.status, 0, String(r.stderr));
    const records = await p.waitRecords(10);
    const ends = records.map((x) => `${x.end} ${x.detail ?? ''}`.trim());
    assert.equal(
      ends.filter((e) => e === 'client-closed eof before routing').length,
      5,
      JSON.stringify(ends),
    );
    assert.equal(ends.filter((e) => e.startsWith('client-reset')).length, 5, JSON.stringify(ends));
    assert.equal(be.sockets.length, 0, 'a backend was contacted');
  } finally {
    await p.close();
    await be.close();
  }
});

test('a stalled ClientHello is closed at the deadline', async () => {
  const p = await startPlane(table(1, { client: { helloTimeoutMs: 150 } }));
  try {
    const r = await rejected(p.port, hello.subarray(0, 20), p.waitRecords);
    assert.equal(r.end, 'hello-timeout');
    assert.ok(r.durationMs >= 100);
  } finally {
    await p.close();
  }
});

test('a ClientHello over the size cap is closed as hello-too-large', async () => {
  const p = await startPlane(table(1, { client: { helloMaxBytes: 64 } }));
  try {
    const r = await rejected(p.port, hello, p.waitRecords);
    assert.equal(r.end, 'hello-too-large');
  } finally {
    await p.close();
  }
});

test('PROXY in from a trusted CIDR: the real client address is logged and sent on', async () => {
  const be = await startRawBackend();
  const p = await startPlane(
    table(be.port, { client: { proxyProtocolTrustedCidrs: ['127.0.0.0/8'] } }, { proxyProtocol: 'v1' }),
  );
  try {
    const c = await rawConnect(p.port);
    const inHeader = encodeProxyV2({
      family: 'tcp6',
      sourceAddress: '2001:db8::7',
      sourcePort: 40000,
      destAddress: '2001:db8::1',
      destPort: 443,
    });
    c.write(Buffer.concat([inHeader, hello]));
    const got = await be.waitBytes(0, hello.length + 20);
    const h = decodeProxyHeader(got);
    assert.equal(h.status, 'ok');
    if (h.status === 'ok') {
      assert.equal(h.addresses?.sourceAddress, '2001:db8::7');
      assert.equal(h.addresses?.destPort, 443);
      assert.ok(got.subarray(h.consumed).equals(hello));
    }
    c.destroy();
    const [r] = await p.waitRecords(1);
    assert.equal(r?.client, '[2001:db8::7]:40000');
  } finally {
    await p.close();
    await be.close();
  }
});

test('PROXY in: trusted peer without a header, and untrusted peer with one, are closed', async () => {
  const header = encodeProxyV1({
    family: 'tcp4',
    sourceAddress: '192.0.2.7',
    sourcePort: 1,
    destAddress: '192.0.2.8',
    destPort: 2,
  });
  const trusted = await startPlane(table(1, { client: { proxyProtocolTrustedCidrs: ['127.0.0.1/32'] } }));
  try {
    const r = await rejected(trusted.port, hello, trusted.waitRecords);
    assert.equal(r.end, 'proxy-header-invalid');
  } finally {
    await trusted.close();
  }
  const be = await startRawBackend();
  const untrusted = await startPlane(
    table(be.port, { client: { proxyProtocolTrustedCidrs: ['10.0.0.0/8'] } }),
  );
  try {
    const r = await rejected(untrusted.port, Buffer.concat([header, hello]), untrusted.waitRecords);
    assert.equal(r.end, 'proxy-header-invalid');
    // A v2 signature alone is enough: the header (which v2 lets run to 64 KiB) is never waited for.
    const v2 = encodeProxyV2({
      family: 'tcp4',
      sourceAddress: '192.0.2.7',
      sourcePort: 1,
      destAddress: '192.0.2.8',
      destPort: 2,
    });
    const c2 = await rawConnect(untrusted.port);
    const closed = collect(c2);
    c2.write(v2.subarray(0, 12));
    assert.equal((await closed).data.length, 0);
    const early = (await untrusted.waitRecords(2))[1]!;
    assert.equal(early.end, 'proxy-header-invalid');
    assert.equal(early.detail, 'PROXY header from an untrusted peer');
    // Without a header the untrusted peer is served normally.
    const c = await rawConnect(untrusted.port);
    c.write(hello);
    await be.waitBytes(0, hello.length);
    c.destroy();
  } finally {
    await untrusted.close();
    await be.close();
  }
});

/** A Postgres-like backend: answers SSLRequest with `answer`, then (on 'S') does TLS and echoes. */
async function startFakePostgres(answer: 'S' | 'N') {
  const cert = ca.issue({ cn: 'pg.example.com' });
  return startRawBackend((s) => {
    s.once('data', (d: Buffer) => {
      assert.ok(d.subarray(0, 8).equals(SSL_REQUEST));
      s.write(answer);
      if (answer !== 'S') return;
      s.pause();
      const t = new tls.TLSSocket(s, { isServer: true, cert: cert.certPem, key: cert.keyPem });
      t.on('error', () => {});
      t.on('data', (m: Buffer) => t.write(m));
      t.on('end', () => t.end());
      if (d.length > 8) s.unshift(d.subarray(8));
    });
  });
}

test('Postgres SSLRequest: answered S, replayed to the backend, its S swallowed, then TLS end to end', async () => {
  const pg = await startFakePostgres('S');
  const p = await startPlane(table(0, {}, {}));
  await p.dp.apply({
    binds: [bind([listener('l', null, [route('pg.example.com', 'pg', [backend('pg', [ep(pg.port)])])])])],
  });
  try {
    const c = await rawConnect(p.port);
    const answer = new Promise<string>((r) => c.once('data', (d: Buffer) => r(d.toString())));
    c.write(GSSENC_REQUEST);
    assert.equal(await answer, 'N');
    const answer2 = new Promise<string>((r) => c.once('data', (d: Buffer) => r(d.toString())));
    c.write(SSL_REQUEST);
    assert.equal(await answer2, 'S');
    const t = tls.connect({ socket: c, servername: 'pg.example.com', ca: ca.certPem });
    await new Promise<void>((resolve, reject) => {
      t.once('secureConnect', resolve);
      t.once('error', reject);
    });
    assert.equal(t.getPeerCertificate().subject?.CN, 'pg.example.com');
    const echoed = new Promise<string>((r) => t.once('data', (d: Buffer) => r(d.toString())));
    t.write('SELECT 1');
    assert.equal(await echoed, 'SELECT 1');
    t.destroy();
    const [r] = await p.waitRecords(1);
    assert.equal(r?.route, 'TLSRoute/ns/pg');
  } finally {
    await p.close();
    await pg.close();
  }
});

test('Postgres: a backend answering N fails the connection; CancelRequest is unroutable', async () => {
  const pg = await startFakePostgres('N');
  const p = await startPlane({
    binds: [bind([listener('l', null, [route('pg.example.com', 'pg', [backend('pg', [ep(pg.port)])])])])],
  });
  try {
    const pgHello = await captureHello('pg.example.com');
    const c = await rawConnect(p.port);
    const done = collect(c);
    c.write(SSL_REQUEST);
    await new Promise((r) => c.once('data', r));
    c.write(pgHello);
    await done;
    const [r] = await p.waitRecords(1);
    assert.equal(r?.end, 'connect-failed');
    p.records.length = 0;
    const cancel = Buffer.concat([CANCEL_REQUEST_PREFIX, Buffer.alloc(8, 1)]);
    const r2 = await rejected(p.port, cancel, p.waitRecords);
    assert.equal(r2.end, 'pg-cancel-unroutable');
  } finally {
    await p.close();
    await pg.close();
  }
});

test('tcp bind: no peek, routed at once (the backend speaks first to a silent client)', async () => {
  const be = await startRawBackend((s) => s.end('welcome'));
  const p = await startPlane({
    binds: [
      bind([listener('tcp', null, [route('*', 'tcp', [backend('b', [ep(be.port)])])], 'tcp')], {
        protocol: 'tcp',
      }),
    ],
  });
  try {
    const c = await rawConnect(p.port);
    const done = collect(c);
    assert.equal((await done).data.toString(), 'welcome');
    const [r] = await p.waitRecords(1);
    assert.equal(r?.helloMs, null);
    assert.equal(r?.route, 'TLSRoute/ns/tcp');
  } finally {
    await p.close();
    await be.close();
  }
});

test('maxConnections: the connection over the limit is closed at once', async () => {
  const p = await startPlane(table(1, { client: { maxConnections: 1, helloTimeoutMs: 300 } }));
  try {
    const first = await rawConnect(p.port);
    const r = await rejected(p.port, Buffer.alloc(0), p.waitRecords);
    assert.equal(r.end, 'max-connections');
    first.destroy();
  } finally {
    await p.close();
  }
});

test('events: opened, hello parsed and closed are reported once per connection', async () => {
  const seen: string[] = [];
  const be = await startRawBackend((s) => s.end());
  const p = await startPlane(table(be.port), {
    events: {
      connectionOpened: (b) => seen.push(`open ${b === `127.0.0.1:${p.port}`}`),
      helloParsed: (_ms, sni) => seen.push(`hello ${sni}`),
      connectionClosed: (r) => seen.push(`closed ${r.end}`),
    },
  });
  try {
    const c = await rawConnect(p.port);
    const done = collect(c);
    c.end(hello);
    await done;
    await p.waitRecords(1);
    assert.equal(seen.length, 3);
    assert.deepEqual(seen.slice(0, 2), ['open true', 'hello svc.example.com']);
    assert.match(seen[2]!, /^closed (client|backend)-closed$/);
  } finally {
    await p.close();
    await be.close();
  }
});

test('terminate listener: the socket and the bytes read are handed off; without a handler it is refused', async () => {
  const t: RoutingTable = {
    binds: [bind([listener('https', '*.example.com', [], 'terminate-https')])],
  };
  const handed: { head: Buffer; sni: string | null; listener: string }[] = [];
  const p = await startPlane(t, {
    handOff: (h) => {
      handed.push({ head: h.head, sni: h.hello?.sni ?? null, listener: h.listener.id });
      h.socket.end('handled');
    },
  });
  try {
    const c = await rawConnect(p.port);
    const done = collect(c);
    c.write(hello);
    assert.equal((await done).data.toString(), 'handled');
    assert.equal(handed.length, 1);
    assert.ok(handed[0]?.head.equals(hello));
    assert.equal(handed[0]?.sni, 'svc.example.com');
    assert.equal(handed[0]?.listener, 'ns/gw/https');
    const [r] = await p.waitRecords(1);
    assert.equal(r?.listener, 'ns/gw/https');
  } finally {
    await p.close();
  }
  const q = await startPlane(t);
  try {
    const r = await rejected(q.port, hello, q.waitRecords);
    assert.equal(r.end, 'no-route');
  } finally {
    await q.close();
  }
});
