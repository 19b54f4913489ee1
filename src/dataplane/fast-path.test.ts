/** The native fast path: its C parser and hostname table agree with the JavaScript ones; on real sockets it carries plain passthrough and hands everything else to JS. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it, test } from 'node:test';
import fc from 'fast-check';
import type { BackendPolicy, RoutingTable } from '../table/types.ts';
import { parseClientHello } from './clienthello.ts';
import type { DataPlaneEvents } from './events.ts';
import { MAX_FAST_KEYS } from './fast-eligibility.ts';
import { planFastTable } from './fast-path.ts';
import { HealthRegistry } from './health.ts';
import { nativePump } from './native-pump.ts';
import { compileBind, HostMatcher } from './sni-router.ts';
import {
  alpnExt,
  defaultPrefix,
  type Extension,
  frame,
  sniExt,
  synthHello,
  versionsExt,
} from './testdata/tls-builder.ts';
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

const skip = nativePump === null ? 'native pump not built' : false;
const fixtures = ['openssl-3.0-hello.bin', 'node-24-hello.bin', 'curl-hello.bin'].map((f) =>
  readFileSync(new URL(`./testdata/${f}`, import.meta.url)),
);

/** The ALPN extension's protocol list as the wire spells it (what the C parser hands back). */
function alpnWire(names: string[]): Buffer {
  return Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([n.length]), Buffer.from(n, 'latin1')])));
}

/** C accepts only what JavaScript accepts, with the same SNI and ALPN. */
function agrees(buf: Buffer, max = 65536): boolean {
  const c = nativePump!.fastParse(buf, max);
  if (c === null) return true;
  const js = parseClientHello(buf, max);
  if (js.status !== 'ok') return false;
  return js.hello.sni === c.sni && alpnWire(js.hello.alpn).equals(c.alpn);
}

describe('C ClientHello check', { skip }, () => {
  it('takes the real hellos of OpenSSL, Node and curl, with their SNI and ALPN', () => {
    for (const f of fixtures) {
      const c = nativePump!.fastParse(f);
      const js = parseClientHello(f);
      assert.ok(c !== null && js.status === 'ok');
      assert.equal(c.sni, js.hello.sni);
      assert.ok(alpnWire(js.hello.alpn).equals(c.alpn));
    }
  });

  it('leaves to JavaScript: fragments, no SNI, over the size cap, IP literals, duplicates, upper case kept apart', () => {
    const h = synthHello([sniExt('a.example.com'), alpnExt(['h2'])]);
    assert.equal(nativePump!.fastParse(frame(h))?.sni, 'a.example.com');
    assert.equal(nativePump!.fastParse(frame(h, [20, 2000])), null, 'two records');
    assert.equal(nativePump!.fastParse(frame(h).subarray(0, 30)), null, 'incomplete');
    assert.equal(nativePump!.fastParse(frame(synthHello([alpnExt(['h2'])]))), null, 'no SNI');
    assert.equal(nativePump!.fastParse(frame(h), h.length - 1), null, 'over the cap');
    assert.equal(nativePump!.fastParse(frame(synthHello([sniExt('10.0.0.1')]))), null, 'IPv4 literal');
    const dup: Extension[] = [sniExt('a.example.com'), versionsExt([0x0304]), versionsExt([0x0304])];
    assert.equal(nativePump!.fastParse(frame(synthHello(dup))), null, 'duplicate extension');
    assert.equal(nativePump!.fastParse(frame(synthHello([sniExt('A.Example.COM.')])))?.sni, 'a.example.com');
  });

  it('never accepts what the JavaScript reader rejects (mutated real hellos)', () => {
    fc.assert(
      fc.property(
        fc.nat(fixtures.length - 1),
        fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), {
          minLength: 1,
          maxLength: 4,
        }),
        (i, muts) => {
          const buf = Buffer.from(fixtures[i]!);
          for (const m of muts) buf[m.at % buf.length] = m.value;
          return agrees(buf);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('never accepts what the JavaScript reader rejects (synthetic extension lists, odd names)', () => {
    const name = fc.oneof(
      fc.constantFrom('a.example.com', 'A.B.', '-a.b', 'a-.b', 'x..y', '1.2.3.4', 'a.1', '*.a.b', ''),
      fc.string({ maxLength: 70 }),
      fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
    );
    const ext: fc.Arbitrary<Extension> = fc.oneof(
      name.map((n) => sniExt(n)),
      fc.array(fc.string({ minLength: 0, maxLength: 12 }), { maxLength: 4 }).map((a) => alpnExt(a)),
      fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 3 }).map((v) => versionsExt(v)),
      fc
        .record({ type: fc.integer({ min: 0, max: 70 }), data: fc.uint8Array({ maxLength: 40 }) })
        .map((e) => ({
          type: e.type,
          data: Buffer.from(e.data),
        })),
    );
    fc.assert(
      fc.property(fc.array(ext, { maxLength: 6 }), fc.integer({ min: 0, max: 40 }), (exts, sid) =>
        agrees(frame(synthHello(exts, defaultPrefix(sid)))),
      ),
      { numRuns: 3000 },
    );
  });
});

describe('C hostname table', { skip }, () => {
  it('finds what HostMatcher finds: exact first, then the longest wildcard suffix', () => {
    const label = fc.constantFrom('a', 'b', 'c', 'example', 'com', 'x-y');
    const host = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
    const key = fc.oneof(
      host,
      host.map((h) => `*.${h}`),
    );
    fc.assert(
      fc.property(
        fc.uniqueArray(key, { maxLength: 12 }),
        fc.array(host, { minLength: 1, maxLength: 12 }),
        (keys, names) => {
          const m = new HostMatcher<number>(keys.length);
          keys.forEach((k, i) => {
            m.add(k, i);
          });
          const c = nativePump!.fastLookup(
            keys.join('\0'),
            Int32Array.from(keys, (_, i) => i),
            names,
          );
          return names.every((n, i) => (m.lookup(n) ?? -1) === c[i]);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

let hello: Buffer;
let helloOther: Buffer;

before(async () => {
  hello = await captureHello('svc.example.com', ['h2', 'http/1.1']);
  helloOther = await captureHello('other.example.com');
});

function table(ports: number[], policy: Partial<BackendPolicy> = {}): RoutingTable {
  return {
    binds: [
      bind([
        listener('l', '*.example.com', [
          route('svc.example.com', 'svc', [
            backend(
              'b',
              ports.map((p) => ep(p)),
              { policy },
            ),
          ]),
          route('other.example.com', 'other', [
            backend(
              'o',
              ports.map((p) => ep(p)),
              { policy: { ...policy, proxyProtocol: 'v1' } },
            ),
          ]),
        ]),
      ]),
    ],
  };
}

function recorder(): { events: Partial<DataPlaneEvents>; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    events: {
      connectionOpened: (b) => calls.push(`opened ${b.split(':')[0]}`),
      connectionRouted: (r) => calls.push(`routed ${r}`),
      helloParsed: (_ms, sni) => calls.push(`hello ${sni}`),
      connectionClosed: (r) => calls.push(`closed ${r.end}`),
      connectFailed: (e, code) => calls.push(`failed ${e} ${code}`),
    },
  };
}

test('a plain passthrough route is carried by C: bytes both ways, one record, the same events', {
  skip,
}, async () => {
  const be = await startRawBackend((s) => s.on('data', (d: Buffer) => s.write(d.subarray(0, 3))));
  const rec = recorder();
  const p = await startPlane(table([be.port]), { events: rec.events });
  try {
    const c = await rawConnect(p.port);
    c.write(hello);
    const got = await be.waitBytes(0, hello.length);
    assert.ok(got.equals(hello), 'the ClientHello reaches the backend byte-identical');
    assert.equal(p.dp.fastConnections(), 1, 'carried by the fast path');
    assert.equal(p.dp.activeConnections(), 1);
    const back = await new Promise<Buffer>((r) => c.once('data', r));
    assert.equal(back.length, 3);
    c.end();
    const [r] = await p.waitRecords(1);
    assert.equal(r?.end, 'client-closed');
    assert.equal(r?.route, 'TLSRoute/ns/svc');
    assert.equal(r?.listener, 'ns/gw/l');
    assert.equal(r?.backend, 'b');
    assert.equal(r?.endpoint, `127.0.0.1:${be.port}`);
    assert.equal(r?.sni, 'svc.example.com');
    assert.deepEqual(r?.alpn, ['h2', 'http/1.1']);
    assert.equal(r?.bytesIn, hello.length);
    assert.match(r?.client ?? '', /^127\.0\.0\.1:\d+$/);
    assert.ok(typeof r?.helloMs === 'number' && typeof r.connId === 'number');
    assert.equal(p.dp.fastConnections(), 0);
    assert.deepEqual(rec.calls, [
      'opened 127.0.0.1',
      'hello svc.example.com',
      'routed TLSRoute/ns/svc',
      'closed client-closed',
    ]);
  } finally {
    await p.close();
    await be.close();
  }
});

test('round-robin in C over the endpoints; a route with PROXY out stays in JavaScript', {
  skip,
}, async () => {
  const a = await startRawBackend();
  const b = await startRawBackend();
  const p = await startPlane(table([a.port, b.port]));
  try {
    for (let i = 0; i < 4; i++) {
      const c = await rawConnect(p.port);
      c.write(hello);
      while (a.sockets.length + b.sockets.length < i + 1) await sleep(5);
      c.destroy();
      await p.waitRecords(i + 1);
    }
    assert.equal(a.sockets.length, 2);
    assert.equal(b.sockets.length, 2);
    const c = await rawConnect(p.port);
    c.write(helloOther);
    while (a.sockets.length + b.sockets.length < 5) await sleep(5);
    assert.equal(p.dp.fastConnections(), 0, 'PROXY out is not fast');
    assert.equal(p.dp.activeConnections(), 1);
    c.destroy();
    const records = await p.waitRecords(5);
    assert.equal(records[4]?.route, 'TLSRoute/ns/other');
  } finally {
    await p.close();
    await a.close();
    await b.close();
  }
});

test('a fast attempt that fails is reported and retried by JavaScript on the next endpoint', {
  skip,
}, async () => {
  const dead = await closedPort();
  const be = await startRawBackend();
  const rec = recorder();
  const p = await startPlane(table([dead, be.port], { connectRetries: 1 }), { events: rec.events });
  try {
    const c = await rawConnect(p.port);
    c.write(hello);
    const got = await be.waitBytes(0, hello.length);
    assert.ok(got.equals(hello), 'the ClientHello C kept reaches the retried endpoint whole');
    c.destroy();
    const [r] = await p.waitRecords(1);
    assert.equal(r?.endpoint, `127.0.0.1:${be.port}`);
    assert.ok(rec.calls.includes(`failed 127.0.0.1:${dead} ECONNREFUSED`), rec.calls.join());
    assert.equal(rec.calls.filter((x) => x.startsWith('opened')).length, 1);
    assert.equal(p.dp.health.snapshot().find((h) => h.endpoint === `127.0.0.1:${dead}`)?.healthy, false);
    // The failed endpoint is no longer clean: C hands its turn to JavaScript, which skips it.
    for (let i = 0; i < 2; i++) {
      const d = await rawConnect(p.port);
      d.write(hello);
      await be.waitBytes(i + 1, hello.length);
      d.destroy();
    }
    const records = await p.waitRecords(3);
    assert.ok(records.every((x) => x.endpoint === `127.0.0.1:${be.port}` && x.end !== 'connect-failed'));
  } finally {
    await p.close();
    await be.close();
  }
});

test('no retry left: the record says connect-failed with the endpoint C tried', { skip }, async () => {
  const dead = await closedPort();
  const p = await startPlane(table([dead], { connectRetries: 0 }));
  try {
    const c = await rawConnect(p.port);
    c.write(hello);
    const [r] = await p.waitRecords(1);
    assert.equal(r?.end, 'connect-failed');
    assert.equal(r?.detail, 'ECONNREFUSED');
    assert.equal(r?.endpoint, `127.0.0.1:${dead}`);
    c.destroy();
  } finally {
    await p.close();
  }
});

test('a ClientHello that comes late is still fast; one that never comes times out once, not twice', {
  skip,
}, async () => {
  const be = await startRawBackend();
  const p = await startPlane({
    binds: [
      {
        ...table([be.port]).binds[0]!,
        client: { ...table([be.port]).binds[0]!.client, helloTimeoutMs: 300 },
      },
    ],
  });
  try {
    const c = await rawConnect(p.port);
    await sleep(50);
    c.write(hello);
    await be.waitBytes(0, hello.length);
    assert.equal(p.dp.fastConnections(), 1);
    c.destroy();
    const silent = await rawConnect(p.port);
    const started = Date.now();
    await collect(silent);
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 550, `closed after ${took} ms`);
    const records = await p.waitRecords(2);
    assert.equal(records[1]?.end, 'hello-timeout');
  } finally {
    await p.close();
    await be.close();
  }
});

test('a swap that removes the route drains its fast connections; shutdown closes the rest', {
  skip,
}, async () => {
  const be = await startRawBackend();
  const p = await startPlane(table([be.port]), { drainGraceMs: 50 });
  try {
    const c = await rawConnect(p.port);
    c.write(hello);
    await be.waitBytes(0, hello.length);
    const closed = collect(c);
    const t = table([be.port]);
    t.binds[0]!.listeners[0]!.routes = [route('other.example.com', 'other', [backend('o', [ep(be.port)])])];
    await p.dp.apply(t);
    await closed;
    const [r] = await p.waitRecords(1);
    assert.equal(r?.end, 'drained');
    assert.equal(p.dp.activeConnections(), 0);
    const d = await rawConnect(p.port);
    d.write(helloOther);
    await be.waitBytes(1, 6);
    assert.equal(p.dp.fastConnections(), 1);
    const gone = collect(d);
    await p.dp.shutdown(0);
    await gone;
    assert.equal(p.records.at(-1)?.end, 'shutdown');
  } finally {
    await p.close().catch(() => {});
    await be.close();
  }
});

test('a bind with more hostnames than MAX_FAST_KEYS keeps the JavaScript path (the table would cost the swap too much)', {
  skip,
}, async () => {
  const be = await startRawBackend();
  const t = table([be.port]);
  const routes = t.binds[0]!.listeners[0]!.routes;
  for (let i = 0; routes.length < MAX_FAST_KEYS + 1; i++)
    routes.push(route(`f${i}.example.com`, `f${i}`, [backend('b', [ep(be.port)])]));
  const p = await startPlane(t);
  try {
    const c = await rawConnect(p.port);
    c.write(hello);
    await be.waitBytes(0, hello.length);
    assert.equal(p.dp.activeConnections(), 1);
    assert.equal(p.dp.fastConnections(), 0);
    c.destroy();
    const [r] = await p.waitRecords(1);
    assert.equal(r?.route, 'TLSRoute/ns/svc');
  } finally {
    await p.close();
    await be.close();
  }
});

test('a wildcard route is fast too: the record has the SNI as sent (lower-cased), not the key', {
  skip,
}, async () => {
  const be = await startRawBackend();
  const wild = await captureHello('A.Wild.example.com', ['h2']);
  const t: RoutingTable = {
    binds: [
      bind([
        listener('l', '*.example.com', [route('*.wild.example.com', 'wild', [backend('w', [ep(be.port)])])]),
      ]),
    ],
  };
  const p = await startPlane(t);
  try {
    const c = await rawConnect(p.port);
    c.write(wild);
    await be.waitBytes(0, wild.length);
    assert.equal(p.dp.fastConnections(), 1);
    c.destroy();
    const [r] = await p.waitRecords(1);
    assert.equal(r?.sni, 'a.wild.example.com');
    assert.deepEqual(r?.alpn, ['h2']);
    assert.equal(r?.route, 'TLSRoute/ns/wild');
  } finally {
    await p.close();
    await be.close();
  }
});

test('fast table: each name gets the route the JavaScript router would give it, or JS (listener isolation, modes, PROXY)', {
  skip,
}, () => {
  const health = new HealthRegistry();
  const plain = backend('p', [ep(1)]);
  const b = bind([
    listener('exact', 'a.example.com', [route('a.example.com', 'term', [plain])], 'terminate-tls'),
    listener('deep', '*.b.example.com', [
      route('*.b.example.com', 'proxied', [backend('x', [ep(2)], { policy: { proxyProtocol: 'v2' } })]),
    ]),
    listener('wild', '*.example.com', [
      route('c.example.com', 'c', [plain]),
      route('*.example.com', 'rest', [plain]),
    ]),
    listener('any', null, [route('*', 'catchall', [plain])]),
  ]);
  const plan = planFastTable({ compiled: compileBind(b), balancers: new Map(), active: { n: 0 } }, health);
  assert.ok(plan !== null);
  const names = [
    'a.example.com',
    'x.a.example.com',
    'q.b.example.com',
    'b.example.com',
    'c.example.com',
    'z.example.com',
    'other.org',
  ];
  const got = nativePump!.fastLookup(plan.spec.keys, plan.spec.values, names);
  const routeOf = (i: number): string | null => {
    const v = got[i]!;
    const resolved = v === -1 && !names[i]!.endsWith('.example.com') ? plan.spec.catchAll : v;
    return resolved < 0 ? null : plan.routes[resolved]!.route.route.name;
  };
  assert.deepEqual(
    names.map((_, i) => routeOf(i)),
    [null, 'rest', null, 'rest', 'c', 'rest', 'catchall'],
  );
  health.close();
});

test('both listeners of a dual-stack bind (one plan, two tables) carry fast connections', {
  skip,
}, async () => {
  const be = await startRawBackend();
  const t = table([be.port]);
  t.binds[0]!.address = null;
  const p = await startPlane(t, { defaultAddresses: ['127.0.0.1', '::1'] });
  try {
    const clients = [];
    for (const a of p.dp.listening()) {
      const c = await rawConnect(a.port, a.address);
      c.write(hello);
      clients.push(c);
    }
    await be.waitBytes(1, hello.length);
    assert.equal(p.dp.fastConnections(), 2);
    for (const c of clients) c.destroy();
    const records = await p.waitRecords(2);
    assert.deepEqual(records.map((r) => r.bind.startsWith('[::1]')).sort(), [false, true]);
  } finally {
    await p.close();
    await be.close();
  }
});
