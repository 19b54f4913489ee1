/** Passthrough on real sockets: byte-exact replay, backend-first, half-close, resets, retries, PROXY out, timeouts, weights. */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import type { RoutingTable } from '../table/types.ts';
import { decodeProxyHeader } from './proxy-protocol.ts';
import {
  backend,
  bind,
  captureHello,
  closedPort,
  collect,
  ep,
  listener,
  rawConnect,
  route,
  sleep,
  startPlane,
  startRawBackend,
} from './testkit.ts';

let hello: Buffer;

before(async () => {
  hello = await captureHello('svc.example.com', ['h2', 'http/1.1']);
});

function one(port: number, policy: Parameters<typeof backend>[2] = {}): RoutingTable {
  return {
    binds: [
      bind([listener('l', null, [route('svc.example.com', 'svc', [backend('b', [ep(port)], policy)])])]),
    ],
  };
}

test('a ClientHello written one byte at a time reaches the backend byte-identical', async () => {
  const be = await startRawBackend();
  const p = await startPlane(one(be.port));
  try {
    const c = await rawConnect(p.port);
    c.setNoDelay(true);
    for (let i = 0; i < hello.length; i++) {
      c.write(hello.subarray(i, i + 1));
      if (i % 8 === 0) await sleep(1);
    }
    c.write('after');
    const got = await be.waitBytes(0, hello.length + 5);
    assert.ok(got.equals(Buffer.concat([hello, Buffer.from('after')])));
    c.destroy();
    const [r] = await p.waitRecords(1);
    assert.equal(r?.sni, 'svc.example.com');
    assert.deepEqual(r?.alpn, ['h2', 'http/1.1']);
  } finally {
    await p.close();
    await be.close();
  }
});

test('backend speaks first: its banner reaches the client before the client sends more', async () => {
  const be = await startRawBackend((s) => s.write('BANNER\n'));
  const p = await startPlane(one(be.port));
  try {
    const c = await rawConnect(p.port);
    const got = new Promise<string>((r) => c.once('data', (d: Buffer) => r(d.toString())));
    c.write(hello);
    assert.equal(await got, 'BANNER\n');
    c.destroy();
  } finally {
    await p.close();
    await be.close();
  }
});

test('half-close, client first: backend sees EOF, can still answer, record says client-closed', async () => {
  const be = await startRawBackend((s) =>
    s.on('end', () => {
      s.end('bye');
    }),
  );
  const p = await startPlane(one(be.port));
  try {
    const c = await rawConnect(p.port);
    const done = collect(c);
    c.end(Buffer.concat([hello, Buffer.from('req')]));
    const { data, error } = await done;
    assert.equal(data.toString(), 'bye');
    assert.equal(error, null);
    assert.ok(be.received[0]?.subarray(hello.length).equals(Buffer.from('req')));
    const [r] = await p.waitRecords(1);
    assert.equal(r?.end, 'client-closed');
    assert.equal(r?.bytesIn, hello.length + 3);
    assert.equal(r?.bytesOut, 3);
  } finally {
    await p.close();
    await be.close();
  }
});

test('half-close, backend first: client sees EOF and can keep sending', async () => {
  const be = await startRawBackend((s) => s.end('done'));
  const p = await startPlane(one(be.port));
  try {
    const c = await rawConnect(p.port);
    const ended = new Promise<string>((r) => {
      let text = '';
      c.on('data', (d: Buffer) => (text += d.toString()));
      c.once('end', () => r(text));
    });
    c.write(hello);
    assert.equal(await ended, 'done');
    c.write('late');
    await be.waitBytes(0, hello.length + 4);
    const closed = new Promise((r) => c.once('close', r));
    c.end();
    await closed;
    const [r] = await p.waitRecords(1);
    assert.equal(r?.end, 'backend-closed');
  } finally {
    await p.close();
    await be.close();
  }
});

test('backend reset mid-stream resets the client', async () => {
  const be = await startRawBackend((s) =>
    s.once('data', () => {
      s.write('partial');
      setTimeout(() => s.resetAndDestroy(), 20);
    }),
  );
  const p = await startPlane(one(be.port));
  try {
    const c = await rawConnect(p.port);
    const done = collect(c);
    c.write(hello);
    const { data, error } = await done;
    assert.equal(data.toString(), 'partial');
    assert.equal(error, 'ECONNRESET');
    const [r] = await p.waitRecords(1);
    assert.equal(r?.end, 'backend-reset');
  } finally {
    await p.close();
    await be.close();
  }
});

test('client reset resets the backend', async () => {
  let backendError: Promise<string> = Promise.resolve('');
  const be = await startRawBackend((s) => {
    backendError = new Promise((r) => {
      s.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? ''));
      s.on('end', () => r('EOF'));
    });
  });
  const p = await startPlane(one(be.port));
  try {
    const c = await rawConnect(p.port);
    c.write(hello);
    await be.waitBytes(0, hello.length);
    c.resetAndDestroy();
    assert.equal(await backendError, 'ECONNRESET');
    const [r] = await p.waitRecords(1);
    assert.equal(r?.end, 'client-reset');
  } finally {
    await p.close();
    await be.close();
  }
});

test('backend refusing: the client is closed, record says connect-failed', async () => {
  const dead = await closedPort();
  const p = await startPlane(one(dead));
  try {
    const c = await rawConnect(p.port);
    const done = collect(c);
    c.write(hello);
    await done;
    const [r] = await p.waitRecords(1);
    assert.equal(r?.end, 'connect-failed');
    assert.equal(r?.detail, 'ECONNREFUSED');
  } finally {
    await p.close();
  }
});

test('connect failure retries another endpoint of the same backend', async () => {
  const dead = await closedPort();
  const be = await startRawBackend((s) => s.end('ok'));
  const table: RoutingTable = {
    binds: [
      bind([listener('l', null, [route('svc.example.com', 'svc', [backend('b', [ep(dead), ep(be.port)])])])]),
    ],
  };
  const p = await startPlane(table);
  try {
    const c = await rawConnect(p.port);
    const done = collect(c);
    c.end(hello);
    assert.equal((await done).data.toString(), 'ok');
    const [r] = await p.waitRecords(1);
    assert.equal(r?.endpoint, `127.0.0.1:${be.port}`);
    assert.equal(p.dp.health.isHealthy(`127.0.0.1:${dead}`), false);
  } finally {
    await p.close();
    await be.close();
  }
});

test('weight-0 backup takes over: at once on a refused connect (nothing sent yet), then by health', async () => {
  const dead = await closedPort();
  const backup = await startRawBackend((s) => s.end('backup'));
  const table: RoutingTable = {
    binds: [
      bind([
        listener('l', null, [
          route('svc.example.com', 'svc', [
            backend('primary', [ep(dead)], { weight: 1 }),
            backend('backup', [ep(backup.port)], { weight: 0 }),
          ]),
        ]),
      ]),
    ],
  };
  const p = await startPlane(table);
  try {
    const c1 = await rawConnect(p.port);
    const d1 = collect(c1);
    c1.end(hello);
    assert.equal((await d1).data.toString(), 'backup', 'the refused connect is retried on the fallback');
    const c2 = await rawConnect(p.port);
    const d2 = collect(c2);
    c2.end(hello);
    assert.equal((await d2).data.toString(), 'backup');
    const recs = await p.waitRecords(2);
    assert.deepEqual(
      recs.map((r) => [r.backend, r.end === 'connect-failed']),
      [
        ['backup', false],
        ['backup', false],
      ],
    );
  } finally {
    await p.close();
    await backup.close();
  }
});

test('PROXY v2 out: the backend gets the client address before the ClientHello', async () => {
  const be = await startRawBackend();
  const p = await startPlane(one(be.port, { policy: { proxyProtocol: 'v2' } }));
  try {
    const c = await rawConnect(p.port);
    c.write(hello);
    const got = await be.waitBytes(0, 28 + hello.length);
    const h = decodeProxyHeader(got);
    assert.equal(h.status, 'ok');
    if (h.status !== 'ok') return;
    assert.deepEqual(h.addresses, {
      family: 'tcp4',
      sourceAddress: '127.0.0.1',
      sourcePort: c.localPort,
      destAddress: '127.0.0.1',
      destPort: p.port,
    });
    assert.ok(got.subarray(h.consumed).equals(hello));
    c.destroy();
  } finally {
    await p.close();
    await be.close();
  }
});

test('idle timeout and max lifetime close the connection', async () => {
  const be = await startRawBackend();
  for (const [policy, end] of [
    [{ idleTimeoutMs: 100 }, 'idle-timeout'],
    [{ maxLifetimeMs: 150 }, 'max-lifetime'],
  ] as const) {
    const p = await startPlane(one(be.port, { policy }));
    try {
      const c = await rawConnect(p.port);
      const done = collect(c);
      c.write(hello);
      await done;
      const [r] = await p.waitRecords(1);
      assert.equal(r?.end, end);
    } finally {
      await p.close();
    }
  }
  await be.close();
});

test('weighted split over 1200 connections; the invalid backend share is rejected', async () => {
  const a = await startRawBackend((s) => s.destroy());
  const b = await startRawBackend((s) => s.destroy());
  let i = 0;
  // An even sweep over [0,1): the split is exact, not statistical.
  const random = () => ((i++ % 1200) + 0.5) / 1200;
  const table: RoutingTable = {
    binds: [
      bind([
        listener('l', null, [
          route('svc.example.com', 'svc', [
            backend('a', [ep(a.port)], { weight: 2 }),
            backend('b', [ep(b.port)], { weight: 1 }),
            backend('bad', [], { weight: 3, invalid: 'BackendNotFound' }),
          ]),
        ]),
      ]),
    ],
  };
  const p = await startPlane(table, { random });
  try {
    for (let batch = 0; batch < 24; batch++) {
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          const c = await rawConnect(p.port);
          const done = collect(c, 5000);
          c.write(hello);
          await done;
        }),
      );
    }
    const recs = await p.waitRecords(1200, 5000);
    const count: Record<string, number> = {};
    for (const r of recs) {
      const k = r.end === 'backend-invalid' ? 'rejected' : (r.backend ?? '?');
      count[k] = (count[k] ?? 0) + 1;
    }
    assert.deepEqual(count, { a: 400, b: 200, rejected: 600 });
  } finally {
    await p.close();
    await a.close();
    await b.close();
  }
});
