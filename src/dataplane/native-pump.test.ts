/** The native pump (when built): bytes both ways and counted in the record, half-close, resets; the JS pump covers the rest. */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { before, test } from 'node:test';
import type { RoutingTable } from '../table/types.ts';
import { nativePump, PUMP_CONNECTED, pumpShared } from './native-pump.ts';
import { rawFd } from './socket-fd.ts';
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

const skip = nativePump === null ? 'native pump not built (native/pump/build.sh) or SNIGATE_PUMP=js' : false;

let hello: Buffer;
before(async () => {
  hello = await captureHello('svc.example.com');
});

function one(port: number): RoutingTable {
  return {
    binds: [bind([listener('l', null, [route('svc.example.com', 'svc', [backend('b', [ep(port)])])])])],
  };
}

test('native pump: 1 MiB each way, half-close from the client, byte counts in the record', {
  skip,
}, async () => {
  const big = Buffer.alloc(1 << 20, 7);
  let got = 0;
  const be = await startRawBackend((s: net.Socket) => {
    s.on('data', (d: Buffer) => {
      got += d.length;
    });
    s.on('end', () => {
      // The client half-closed: the backend can still answer in full.
      s.end(big);
    });
  });
  const plane = await startPlane(one(be.port));
  try {
    const c = await rawConnect(plane.port);
    c.write(hello);
    c.write(big);
    c.end();
    const r = await collect(c, 10_000);
    assert.equal(r.error, null);
    assert.equal(r.data.length, big.length);
    const [rec] = await plane.waitRecords(1);
    assert.equal(got, hello.length + big.length);
    assert.equal(rec!.end, 'client-closed');
    assert.equal(rec!.bytesIn, hello.length + big.length);
    assert.equal(rec!.bytesOut, big.length);
  } finally {
    await plane.close();
    await be.close();
  }
});

test('native pump: a backend reset mid-stream resets the client', { skip }, async () => {
  const be = await startRawBackend((s: net.Socket) => {
    s.once('data', () => {
      s.write('partial');
      setTimeout(() => s.resetAndDestroy(), 50);
    });
  });
  const plane = await startPlane(one(be.port));
  try {
    const c = await rawConnect(plane.port);
    c.write(hello);
    const r = await collect(c, 5000);
    assert.equal(r.data.toString(), 'partial');
    assert.equal(r.error, 'ECONNRESET');
    const [rec] = await plane.waitRecords(1);
    assert.equal(rec!.end, 'backend-reset');
  } finally {
    await plane.close();
    await be.close();
  }
});

test('native pump: a client that stops reading pauses the backend side without spinning, then gets every byte', {
  skip,
}, async () => {
  const big = Buffer.alloc(16 << 20, 3);
  const be = await startRawBackend((s: net.Socket) => {
    s.once('data', () => s.end(big));
  });
  const plane = await startPlane(one(be.port));
  try {
    const c = await rawConnect(plane.port);
    c.pause();
    c.write(hello);
    // Kernel buffers on both hops fill up; then the backend side must be out of the epoll interest set (a
    // level-triggered fd left in it would wake the loop on every turn).
    await new Promise((r) => setTimeout(r, 700));
    const t0 = process.cpuUsage();
    await new Promise((r) => setTimeout(r, 1000));
    const used = process.cpuUsage(t0);
    const ms = (used.user + used.system) / 1000;
    assert.ok(ms < 300, `${ms.toFixed(0)} ms of CPU in 1 s with nothing moving`);
    c.resume();
    const r = await collect(c, 20_000);
    assert.equal(r.error, null);
    assert.equal(r.data.length, big.length);
    const [rec] = await plane.waitRecords(1);
    assert.equal(rec!.end, 'backend-closed');
    assert.equal(rec!.bytesOut, big.length);
  } finally {
    await plane.close();
    await be.close();
  }
});

test('native pump: a connect made with a quiet failure epoch reports PUMP_CONNECTED only if the epoch moved', {
  skip,
}, async () => {
  const be = await startRawBackend();
  const front = await startRawBackend();
  const pump = nativePump!;
  try {
    const run = async (bump: boolean): Promise<number[]> => {
      const c = await rawConnect(front.port);
      while (front.sockets.length === 0) await new Promise((r) => setTimeout(r, 5));
      const server = front.sockets.shift()!;
      const kinds: number[] = [];
      const h = pump.open(rawFd(server), (kind) => kinds.push(kind));
      assert.notEqual(typeof h, 'number');
      server.destroy();
      const r = pump.connect(
        h as object,
        '127.0.0.1',
        be.port,
        1000,
        0,
        Buffer.alloc(0),
        Buffer.from('x'),
        pumpShared[0],
      );
      assert.equal(r, 0);
      // An endpoint failure reported before the connect completes (it completes on a later loop turn).
      if (bump) pumpShared[0] = (pumpShared[0]! + 1) | 0;
      await new Promise((r) => setTimeout(r, 100));
      pump.close(h as object, false);
      c.destroy();
      return kinds;
    };
    assert.deepEqual(await run(false), [], 'nothing would change: no PUMP_CONNECTED');
    assert.deepEqual(
      await run(true),
      [PUMP_CONNECTED],
      'an endpoint failed meanwhile: the success is reported',
    );
  } finally {
    await be.close();
    await front.close();
  }
});

test('native pump: a worker thread gets the JavaScript path (the epoll set lives on the main loop)', async () => {
  const { Worker } = await import('node:worker_threads');
  const url = new URL('./native-pump.ts', import.meta.url).href;
  const w = new Worker(
    `import(${JSON.stringify(url)}).then((m) => require('node:worker_threads').parentPort.postMessage(m.nativePump === null));`,
    { eval: true },
  );
  const jsPath = await new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  await w.terminate();
  assert.equal(jsPath, true);
});

test('native pump: 8 MiB of random bytes each way at once arrive intact (bulk flows go through splice pipes, closed after)', {
  skip,
}, async () => {
  const { createHash, randomBytes } = await import('node:crypto');
  const { readdirSync } = await import('node:fs');
  const fds = (): number => readdirSync('/proc/self/fd').length;
  const up = randomBytes(8 << 20);
  const down = randomBytes(8 << 20);
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  const got: Buffer[] = [];
  let backendEnded!: () => void;
  // The record can come before the backend's socket has read all of it from the kernel: wait for its EOF.
  const backendDone = new Promise<void>((r) => {
    backendEnded = r;
  });
  const be = await startRawBackend((s: net.Socket) => {
    s.on('data', (d: Buffer) => got.push(d));
    s.on('end', () => backendEnded());
    s.once('data', () => s.end(down));
  });
  const plane = await startPlane(one(be.port));
  try {
    const before = fds();
    const c = await rawConnect(plane.port);
    c.write(hello);
    c.end(up);
    const r = await collect(c, 30_000);
    assert.equal(r.error, null);
    assert.equal(sha(r.data), sha(down), 'backend to client');
    const [rec] = await plane.waitRecords(1);
    await backendDone;
    assert.equal(sha(Buffer.concat(got)), sha(Buffer.concat([hello, up])), 'client to backend');
    assert.equal(rec!.bytesIn, hello.length + up.length);
    assert.equal(rec!.bytesOut, down.length);
    c.destroy();
    await new Promise((res) => setTimeout(res, 100));
    assert.ok(fds() <= before + 1, `fds ${before} -> ${fds()}: pipes or sockets left open`);
  } finally {
    await plane.close();
    await be.close();
  }
});

test('native pump: a client reset in the middle of a bulk download ends the connection as client-reset', {
  skip,
}, async () => {
  const be = await startRawBackend((s: net.Socket) => {
    s.on('error', () => {});
    s.once('data', () => s.end(Buffer.alloc(32 << 20, 1)));
  });
  const plane = await startPlane(one(be.port));
  try {
    const c = await rawConnect(plane.port);
    c.write(hello);
    let got = 0;
    await new Promise<void>((resolve) => {
      c.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= 4 << 20) {
          c.resetAndDestroy();
          resolve();
        }
      });
    });
    const [rec] = await plane.waitRecords(1);
    assert.equal(rec!.end, 'client-reset', JSON.stringify(rec));
    assert.ok(rec!.bytesOut >= 4 << 20 && rec!.bytesOut < 32 << 20, String(rec!.bytesOut));
  } finally {
    await plane.close();
    await be.close();
  }
});
