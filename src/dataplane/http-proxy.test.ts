/** The HTTP proxy end to end over real sockets: a node:http (or http2) server calls the handler with a fake ctx. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import pino from 'pino';
import { createCA } from '../../test/support/certs.ts';
import { type HttpEchoResponse, type HttpEchoServer, startHttpEcho } from '../../test/support/echo-server.ts';
import { DEFAULT_BACKEND_POLICY, type HttpRule, type TableListener } from '../table/types.ts';
import type { AccessRecord } from './access-log.ts';
import { createHttpHandler, type PassiveHealth } from './http-proxy.ts';
import { fakeCtx, httpBackend, httpListener, rule, vhost } from './http-testkit.ts';
import type { HttpHandler, RequestContext } from './http-types.ts';
import { closedPort } from './testkit.ts';

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  agent.destroy();
});

async function echo(pod: string): Promise<HttpEchoServer> {
  const e = await startHttpEcho({ pod });
  cleanups.push(() => e.close());
  return e;
}

const ep = (s: { port: number }) => ({ address: '127.0.0.1', port: s.port });

interface Proxy {
  port: number;
  handler: HttpHandler;
  logs: AccessRecord[];
  lines: string[];
  failures: string[];
  /** Resolves once `n` access records were written. */
  waitLogs(n: number): Promise<AccessRecord[]>;
}

async function startProxy(
  listener: TableListener,
  ctxOver: Partial<RequestContext> = {},
  opts: { random?: () => number } = {},
): Promise<Proxy> {
  const logs: AccessRecord[] = [];
  const lines: string[] = [];
  const logger = pino(
    { level: 'info' },
    {
      write(line: string) {
        lines.push(line);
        const o = JSON.parse(line);
        if (o.msg === 'request') logs.push(o);
      },
    },
  );
  const failures: string[] = [];
  const health: PassiveHealth = {
    isHealthy: () => true,
    reportFailure: (key) => failures.push(key),
    reportSuccess: () => {},
  };
  const handler = createHttpHandler({ logger, health, ...(opts.random ? { random: opts.random } : {}) });
  const ctx = (s: net.Socket): RequestContext =>
    fakeCtx(listener, { client: { address: s.remoteAddress ?? '', port: s.remotePort ?? 0 }, ...ctxOver });
  const server = http.createServer((req, res) => handler.handle(req, res, ctx(req.socket)));
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) =>
    handler.upgrade(req, socket, head, ctx(socket)),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await handler.close();
  });
  return {
    port: (server.address() as AddressInfo).port,
    handler,
    logs,
    lines,
    failures,
    async waitLogs(n) {
      for (let i = 0; i < 300 && logs.length < n; i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(logs.length >= n, `only ${logs.length}/${n} access records`);
      return logs;
    },
  };
}

function single(rules: HttpRule[], hostname = '*'): TableListener {
  return httpListener('http', null, [vhost(hostname, rules)]);
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json(): HttpEchoResponse;
}

function send(
  port: number,
  path: string,
  opts: { method?: string; headers?: http.OutgoingHttpHeaders; body?: Buffer | string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers ?? {}, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json: () => JSON.parse(body.toString('utf8')) as HttpEchoResponse,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

test('routes by path, header, query and method in rule order; 404 as text when nothing matches', async () => {
  const [a, b, c, d, e] = await Promise.all(['a', 'b', 'c', 'd', 'e'].map(echo));
  const l = single(
    [
      rule({ path: { type: 'Exact', value: '/exact' } }, [httpBackend('a', [ep(a!)])]),
      rule({ path: { type: 'PathPrefix', value: '/p' }, method: 'POST' }, [httpBackend('b', [ep(b!)])]),
      rule(
        { path: { type: 'PathPrefix', value: '/p' }, headers: [{ type: 'Exact', name: 'x-v', value: '2' }] },
        [httpBackend('c', [ep(c!)])],
      ),
      rule(
        {
          path: { type: 'PathPrefix', value: '/p' },
          queryParams: [{ type: 'Exact', name: 'v', value: '3' }],
        },
        [httpBackend('d', [ep(d!)])],
      ),
      rule({ path: { type: 'PathPrefix', value: '/p' } }, [httpBackend('e', [ep(e!)])]),
    ],
    'example.com',
  );
  const p = await startProxy(l);
  const pod = async (path: string, o: Parameters<typeof send>[2] = {}) => {
    const r = await send(p.port, path, { ...o, headers: { host: 'example.com', ...o.headers } });
    return r.status === 200 ? r.json().pod : r.status;
  };
  assert.equal(await pod('/exact'), 'a');
  assert.equal(await pod('/exact/'), 404);
  assert.equal(await pod('/p/x', { method: 'POST' }), 'b');
  assert.equal(await pod('/p/x', { headers: { 'X-V': '2' } }), 'c');
  assert.equal(await pod('/p?v=3'), 'd');
  assert.equal(await pod('/p/y'), 'e');
  assert.equal(await pod('/px'), 404);
  const miss = await send(p.port, '/p', { headers: { host: 'other.com' } });
  assert.equal(miss.status, 404);
  assert.match(String(miss.headers['content-type']), /^text\/plain/);
  assert.equal(miss.body.toString(), 'no route\n');
  // The path reaches the backend normalized, with its query string.
  const r = await send(p.port, '/p/a/../b?v=9&w', { headers: { host: 'example.com' } });
  assert.equal(r.json().path, '/p/b?v=9&w');
});

test('listener isolation on plain HTTP: the most specific listener by Host, no fallback (404)', async () => {
  const v1 = await echo('v1');
  const wild = httpListener('wild', '*.example.com', [
    vhost('*.example.com', [
      rule({ path: { type: 'PathPrefix', value: '/wild' } }, [httpBackend('v1', [ep(v1)])]),
    ]),
  ]);
  const empty = httpListener('empty', null, [
    vhost('*', [rule({ path: { type: 'PathPrefix', value: '/empty' } }, [httpBackend('v1', [ep(v1)])])]),
  ]);
  const p = await startProxy(empty, { bindListeners: [wild, empty] });
  assert.equal((await send(p.port, '/wild', { headers: { host: 'a.example.com' } })).status, 200);
  assert.equal((await send(p.port, '/empty', { headers: { host: 'a.example.com' } })).status, 404);
  assert.equal((await send(p.port, '/empty', { headers: { host: 'other.org' } })).status, 200);
  const logs = await p.waitLogs(3);
  assert.deepEqual(
    logs.map((x) => x.listener),
    ['ns/gw/wild', 'ns/gw/wild', 'ns/gw/empty'],
  );
});

test('HTTPS: a Host of another listener gets 421', async () => {
  const v1 = await echo('v1');
  const any = httpListener(
    'https',
    null,
    [vhost('*', [rule({}, [httpBackend('v1', [ep(v1)])])])],
    'terminate-https',
  );
  const second = httpListener('second', 'second.org', [], 'terminate-https');
  const p = await startProxy(any, { scheme: 'https', bindListeners: [second, any], sni: 'example.org' });
  assert.equal((await send(p.port, '/', { headers: { host: 'example.org' } })).status, 200);
  assert.equal((await send(p.port, '/', { headers: { host: 'second.org' } })).status, 421);
});

test('RequestRedirect http → https answers 301 with Location and calls no backend', async () => {
  const l = single([
    rule({}, [], {
      filters: [
        { type: 'RequestRedirect', scheme: 'https', hostname: null, port: null, path: null, statusCode: 301 },
      ],
    }),
  ]);
  const p = await startProxy(l);
  const r = await send(p.port, '/path/x?q=1', { headers: { host: 'example.org' } });
  assert.equal(r.status, 301);
  assert.equal(r.headers.location, 'https://example.org/path/x?q=1');
});

test('URLRewrite prefix and hostname; request and response header modifiers', async () => {
  const v1 = await echo('v1');
  const l = single([
    rule({ path: { type: 'PathPrefix', value: '/prefix/one' } }, [httpBackend('v1', [ep(v1)])], {
      filters: [
        {
          type: 'URLRewrite',
          hostname: 'rewritten.example',
          path: { type: 'ReplacePrefixMatch', value: '/one' },
        },
        {
          type: 'RequestHeaderModifier',
          set: [{ name: 'X-Set', value: 'set' }],
          add: [{ name: 'X-Add', value: 'added' }],
          remove: ['X-Remove'],
        },
        {
          type: 'ResponseHeaderModifier',
          set: [{ name: 'X-Content-Type-Options', value: 'changed' }],
          add: [{ name: 'X-Resp-Add', value: 'r' }],
          remove: ['Content-Type'],
        },
      ],
    }),
  ]);
  const p = await startProxy(l);
  const r = await send(p.port, '/prefix/one/two', {
    headers: { host: 'example.org', 'x-set': 'original', 'x-add': 'first', 'x-remove': 'gone' },
  });
  assert.equal(r.status, 200);
  const got = r.json();
  assert.equal(got.path, '/one/two');
  assert.equal(got.host, 'rewritten.example');
  assert.deepEqual(got.headers['x-set'], ['set']);
  assert.deepEqual(got.headers['x-add'], ['first', 'added']);
  assert.equal(got.headers['x-remove'], undefined);
  assert.equal(r.headers['x-content-type-options'], 'changed');
  assert.equal(r.headers['x-resp-add'], 'r');
  assert.equal(r.headers['content-type'], undefined);
});

test('weights 70/30/0 split ≈0.7/0.3/0.0 over 1000 requests (±0.06)', async () => {
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map(echo));
  const l = single([
    rule({}, [
      httpBackend('a', [ep(a!)], { weight: 70 }),
      httpBackend('b', [ep(b!)], { weight: 30 }),
      httpBackend('c', [ep(c!)], { weight: 0 }),
    ]),
  ]);
  const p = await startProxy(l);
  const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
  const n = 1000;
  for (let i = 0; i < n; i += 20) {
    const batch = await Promise.all(Array.from({ length: 20 }, () => send(p.port, '/')));
    for (const r of batch) counts[r.json().pod]!++;
  }
  // Binomial σ at n=1000 is ≈0.0145: ±0.06 is over 4σ.
  assert.ok(Math.abs(counts.a! / n - 0.7) <= 0.06, JSON.stringify(counts));
  assert.ok(Math.abs(counts.b! / n - 0.3) <= 0.06, JSON.stringify(counts));
  assert.equal(counts.c, 0);
});

test('an invalid backend share gets 500, no endpoints 503, all weights 0 → 500', async () => {
  const v1 = await echo('v1');
  const sweep = (() => {
    let i = 0;
    return () => ((i++ % 100) + 0.5) / 100;
  })();
  const l = httpListener('http', null, [
    vhost('half.example', [
      rule({}, [httpBackend('ok', [ep(v1)]), httpBackend('bad', [], { invalid: 'RefNotPermitted' })]),
    ]),
    vhost('invalid.example', [rule({}, [httpBackend('bad', [], { invalid: 'BackendNotFound' })])]),
    vhost('empty.example', [rule({}, [httpBackend('empty', [])])]),
    vhost('zero.example', [
      rule({}, [
        httpBackend('zero', [ep(v1)], { weight: 0, policy: { ...DEFAULT_BACKEND_POLICY, fallback: false } }),
      ]),
    ]),
    vhost('none.example', [rule({}, [])]),
  ]);
  const p = await startProxy(l, {}, { random: sweep });
  const statuses: Record<number, number> = {};
  for (let i = 0; i < 100; i++) {
    const r = await send(p.port, '/', { headers: { host: 'half.example' } });
    statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  }
  assert.deepEqual(statuses, { 200: 50, 500: 50 });
  assert.equal((await send(p.port, '/', { headers: { host: 'invalid.example' } })).status, 500);
  assert.equal((await send(p.port, '/', { headers: { host: 'empty.example' } })).status, 503);
  assert.equal((await send(p.port, '/', { headers: { host: 'zero.example' } })).status, 500);
  assert.equal((await send(p.port, '/', { headers: { host: 'none.example' } })).status, 500);
  const logs = await p.waitLogs(104);
  const inv = logs.find((x) => x.host === 'invalid.example')!;
  assert.equal(inv.status, 500);
  assert.match(inv.error ?? '', /backend-invalid: BackendNotFound/);
});

test('RequestMirror sends a copy (body included) and the mirror never affects the response', async () => {
  const [v1, mirror] = await Promise.all([echo('v1'), echo('mirror')]);
  const mirrorBackend = httpBackend('mirror', [ep(mirror)]);
  const deadBackend = httpBackend('dead', [{ address: '127.0.0.1', port: 1 }]);
  const l = single([
    rule({}, [httpBackend('v1', [ep(v1)])], {
      filters: [
        { type: 'RequestMirror', backend: mirrorBackend, percent: 100 },
        { type: 'RequestMirror', backend: deadBackend, percent: 100 },
      ],
    }),
  ]);
  const p = await startProxy(l);
  const r = await send(p.port, '/m', {
    method: 'POST',
    body: 'hello mirror',
    headers: { host: 'example.org' },
  });
  assert.equal(r.status, 200);
  assert.equal(r.json().pod, 'v1');
  assert.equal(r.json().body, 'hello mirror');
  for (let i = 0; i < 200 && mirror.requests.length === 0; i++)
    await new Promise((res) => setTimeout(res, 10));
  assert.equal(mirror.requests.length, 1);
  assert.equal(mirror.requests[0]!.path, '/m');
  assert.equal(mirror.requests[0]!.body, 'hello mirror');
  assert.equal(mirror.requests[0]!.host, 'example.org');
});

/** A backend that accepts requests and never answers. */
async function blackhole(): Promise<{ port: number }> {
  const server = http.createServer(() => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(() => r()));
  });
  return { port: (server.address() as AddressInfo).port };
}

test('timeouts: request and backendRequest give 504', async () => {
  const hole = await blackhole();
  const l = httpListener('http', null, [
    vhost('req.example', [
      rule({}, [httpBackend('hole', [ep(hole)])], { timeouts: { requestMs: 150, backendRequestMs: 0 } }),
    ]),
    vhost('be.example', [
      rule({}, [httpBackend('hole', [ep(hole)])], { timeouts: { requestMs: 0, backendRequestMs: 150 } }),
    ]),
  ]);
  const p = await startProxy(l);
  const r1 = await send(p.port, '/', { headers: { host: 'req.example' } });
  assert.equal(r1.status, 504);
  const r2 = await send(p.port, '/', { headers: { host: 'be.example' } });
  assert.equal(r2.status, 504);
  const logs = await p.waitLogs(2);
  assert.deepEqual(
    logs.map((x) => x.error),
    ['request-timeout', 'backend-timeout'],
  );
});

test('upstream down gives 502 and a passive failure; an idempotent request retries another endpoint', async () => {
  const down = await closedPort();
  const v1 = await echo('v1');
  const l = httpListener('http', null, [
    vhost('down.example', [rule({}, [httpBackend('down', [{ address: '127.0.0.1', port: down }])])]),
    vhost('retry.example', [
      rule({}, [httpBackend('mixed', [{ address: '127.0.0.1', port: down }, ep(v1)])]),
    ]),
  ]);
  const p = await startProxy(l);
  const r = await send(p.port, '/', { headers: { host: 'down.example' } });
  assert.equal(r.status, 502);
  assert.deepEqual(p.failures, [`127.0.0.1:${down}`]);
  for (let i = 0; i < 4; i++) {
    assert.equal((await send(p.port, '/', { headers: { host: 'retry.example' } })).status, 200);
  }
  // A POST with a body is not retried: the round-robin cursor lands on the dead endpoint for one of these two.
  const posts = await Promise.all(
    [0, 1].map(() => send(p.port, '/', { method: 'POST', body: 'x', headers: { host: 'retry.example' } })),
  );
  assert.deepEqual(posts.map((x) => x.status).sort(), [200, 502]);
});

test('X-Forwarded-* and X-Request-Id are set, a client XFCC is stripped, a verified cert gives XFCC', async () => {
  const v1 = await echo('v1');
  const l = single([rule({}, [httpBackend('v1', [ep(v1)])])]);
  const p = await startProxy(l, { scheme: 'https', localPort: 8443 });
  const r = await send(p.port, '/h', {
    headers: {
      host: 'example.org:8443',
      'x-forwarded-for': '10.0.0.1',
      'x-forwarded-client-cert': 'Hash=spoofed',
    },
  });
  const h = r.json().headers;
  assert.deepEqual(h['x-forwarded-for'], ['10.0.0.1, 127.0.0.1']);
  assert.deepEqual(h['x-forwarded-proto'], ['https']);
  assert.deepEqual(h['x-forwarded-host'], ['example.org:8443']);
  assert.deepEqual(h['x-forwarded-port'], ['8443']);
  assert.match(h['x-request-id']![0]!, /^[0-9a-f-]{36}$/);
  assert.equal(h['x-forwarded-client-cert'], undefined);
  assert.equal(r.json().host, 'example.org:8443');

  const withCert = await startProxy(l, {
    scheme: 'https',
    clientCert: {
      subject: 'CN=client,O=Acme',
      fingerprint256: 'AB:CD:EF',
      san: 'DNS:client.example, URI:spiffe://example/ns/a',
      pem: '-----BEGIN CERTIFICATE-----',
    },
  });
  const r2 = await send(withCert.port, '/', {
    headers: { 'x-forwarded-client-cert': 'Hash=spoofed', 'x-request-id': 'abc-1' },
  });
  const h2 = r2.json().headers;
  assert.deepEqual(h2['x-forwarded-client-cert'], [
    'Hash=abcdef;Subject="CN=client,O=Acme";URI=spiffe://example/ns/a;DNS=client.example',
  ]);
  assert.deepEqual(h2['x-request-id'], ['abc-1']);
});

/** A backend that counts request body bytes and answers `size` bytes of its own. */
async function bulk(size: number): Promise<{ port: number; received: () => number }> {
  let received = 0;
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const server = http.createServer((req, res) => {
    req.on('data', (c: Buffer) => (received += c.length));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let left = size;
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(chunk.subarray(0, n))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(() => r()));
  });
  return { port: (server.address() as AddressInfo).port, received: () => received };
}

test('5 MB request and response bodies stream through; sizes land in the access log', async () => {
  const size = 5 * 1024 * 1024;
  const b = await bulk(size);
  const l = single([rule({}, [httpBackend('bulk', [ep(b)])])]);
  const p = await startProxy(l);
  const r = await send(p.port, '/upload', { method: 'PUT', body: Buffer.alloc(size, 0x62) });
  assert.equal(r.status, 200);
  assert.equal(r.body.length, size);
  assert.equal(b.received(), size);
  const [log] = await p.waitLogs(1);
  assert.equal(log!.bytesIn, size);
  assert.equal(log!.bytesOut, size);
});

test('limits: maxBodyBytes → 413, allowSourceRanges → 403', async () => {
  const v1 = await echo('v1');
  const l = httpListener('http', null, [
    vhost('small.example', [rule({}, [httpBackend('v1', [ep(v1)])], { limits: { maxBodyBytes: 1000 } })]),
    vhost('deny.example', [
      rule({}, [httpBackend('v1', [ep(v1)])], { limits: { allowSourceRanges: ['10.0.0.0/8'] } }),
    ]),
    vhost('allow.example', [
      rule({}, [httpBackend('v1', [ep(v1)])], { limits: { allowSourceRanges: ['10.0.0.0/8', '127.0.0.1'] } }),
    ]),
  ]);
  const p = await startProxy(l);
  const big = Buffer.alloc(5000, 1);
  assert.equal(
    (await send(p.port, '/', { method: 'POST', body: big, headers: { host: 'small.example' } })).status,
    413,
  );
  assert.equal(
    (await send(p.port, '/', { method: 'POST', body: 'ok', headers: { host: 'small.example' } })).status,
    200,
  );
  // Chunked: the limit is enforced while streaming.
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: p.port, method: 'POST', path: '/', headers: { host: 'small.example' } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.write(big);
    req.end();
  });
  assert.equal(chunked, 413);
  assert.equal((await send(p.port, '/', { headers: { host: 'deny.example' } })).status, 403);
  assert.equal((await send(p.port, '/', { headers: { host: 'allow.example' } })).status, 200);
});

/** A WebSocket-ish backend: answers 101 and echoes every byte back in upper case. */
async function upgradeEcho(): Promise<{ port: number; heads: http.IncomingHttpHeaders[] }> {
  const heads: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((_req, res) => res.end('not an upgrade'));
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    heads.push(req.headers);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    if (head.length) socket.write(head.toString().toUpperCase());
    socket.on('data', (d: Buffer) => socket.write(d.toString().toUpperCase()));
    socket.on('end', () => socket.end());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(() => r()));
  });
  return { port: (server.address() as AddressInfo).port, heads };
}

test('WebSocket upgrade: 101 from the backend, then bytes both ways', async () => {
  const ws = await upgradeEcho();
  const l = single([rule({}, [httpBackend('ws', [ep(ws)])])]);
  const p = await startProxy(l);
  const req = http.request({
    host: '127.0.0.1',
    port: p.port,
    path: '/chat?room=1',
    headers: { host: 'ws.example', connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'abc' },
  });
  req.end();
  const [res, socket] = (await once(req, 'upgrade')) as [http.IncomingMessage, net.Socket, Buffer];
  assert.equal(res.statusCode, 101);
  socket.write('ping');
  const [data] = (await once(socket, 'data')) as [Buffer];
  assert.equal(data.toString(), 'PING');
  socket.end();
  await once(socket, 'close');
  assert.equal(ws.heads[0]!.upgrade, 'websocket');
  assert.equal(ws.heads[0]!['sec-websocket-key'], 'abc');
  assert.equal(ws.heads[0]!['x-forwarded-for'], '127.0.0.1');
  const [log] = await p.waitLogs(1);
  assert.equal(log!.protocol, 'WebSocket');
  assert.equal(log!.status, 101);
  assert.equal(log!.path, '/chat');
  assert.ok(log!.bytesIn >= 4 && log!.bytesOut >= 4);

  // Nothing routes: a raw 404 answer on the socket.
  const none = await startProxy(httpListener('http', null, []));
  const req2 = http.request({
    host: '127.0.0.1',
    port: none.port,
    path: '/',
    headers: { connection: 'Upgrade', upgrade: 'websocket' },
  });
  req2.end();
  const [res2] = (await once(req2, 'response')) as [http.IncomingMessage];
  assert.equal(res2.statusCode, 404);
  res2.resume();
});

test('HTTP/2 requests go through the same path; pseudo-headers are never forwarded', async () => {
  const v1 = await echo('v1');
  const l = single(
    [rule({ path: { type: 'PathPrefix', value: '/h2' } }, [httpBackend('v1', [ep(v1)])])],
    'h2.example',
  );
  const logs: (AccessRecord & { msg: string })[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const handler = createHttpHandler({
    logger,
    health: { isHealthy: () => true, reportFailure: () => {}, reportSuccess: () => {} },
  });
  const server = http2.createServer((req, res) => handler.handle(req, res, fakeCtx(l)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const client = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const ask = (path: string, method = 'GET', body?: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const s = client.request({
          ':path': path,
          ':method': method,
          ':authority': 'h2.example',
          cookie: ['a=1', 'b=2'],
        });
        let status = 0;
        let text = '';
        s.on('response', (h) => (status = Number(h[':status'])));
        s.setEncoding('utf8');
        s.on('data', (d: string) => (text += d));
        s.on('end', () => resolve({ status, body: text }));
        s.on('error', reject);
        s.end(body);
      });
    const r = await ask('/h2/x?y=1');
    assert.equal(r.status, 200);
    const got = JSON.parse(r.body) as HttpEchoResponse;
    assert.equal(got.path, '/h2/x?y=1');
    assert.equal(got.host, 'h2.example');
    assert.deepEqual(got.headers.cookie, ['a=1; b=2']);
    assert.ok(Object.keys(got.headers).every((k) => !k.startsWith(':')));
    const post = await ask('/h2/post', 'POST', 'h2 body');
    assert.equal((JSON.parse(post.body) as HttpEchoResponse).body, 'h2 body');
    assert.equal((await ask('/nope')).status, 404);
    for (let i = 0; i < 100 && logs.filter((x) => x.msg === 'request').length < 3; i++) {
      await new Promise((res) => setTimeout(res, 10));
    }
    const reqs = logs.filter((x) => x.msg === 'request');
    assert.equal(reqs.length, 3);
    assert.ok(reqs.every((x) => x.protocol === 'HTTP/2'));
  } finally {
    client.close();
    await new Promise((r) => server.close(r));
    await handler.close();
  }
});

test('access log: one record per request with the documented fields, and no secrets', async () => {
  const v1 = await echo('v1');
  const l = single([rule({}, [httpBackend('Service/ns/v1:8080', [ep(v1)])], { ruleIndex: 2, name: 'web' })]);
  const p = await startProxy(l, { sni: 'example.org', connId: 42 });
  await send(p.port, '/logged/path?token=SECRET-TOKEN&x=1', {
    headers: { host: 'example.org', authorization: 'Bearer SECRET-AUTH', cookie: 'session=SECRET-COOKIE' },
  });
  const [log] = await p.waitLogs(1);
  assert.deepEqual(
    { ...log!, durationMs: 0, upstreamMs: 0, requestId: '', client: '', bytesOut: 0 },
    {
      ...log!,
      level: 30,
      msg: 'request',
      connId: 42,
      requestId: '',
      client: '',
      method: 'GET',
      host: 'example.org',
      path: '/logged/path',
      queryKeys: ['token', 'x'],
      protocol: 'HTTP/1.1',
      status: 200,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 0,
      upstreamMs: 0,
      route: 'HTTPRoute/ns/web',
      ruleIndex: 2,
      backend: 'Service/ns/v1:8080',
      endpoint: `127.0.0.1:${v1.port}`,
      listener: 'ns/gw/http',
      sni: 'example.org',
      clientCertSubject: null,
      error: null,
    },
  );
  assert.ok(log!.durationMs > 0 && log!.upstreamMs! > 0 && log!.bytesOut > 0);
  assert.match(log!.client, /^127\.0\.0\.1:\d+$/);
  for (const line of p.lines) assert.doesNotMatch(line, /SECRET/);
});

test('https backends: TLS with the policy SNI and CA', async () => {
  const ca = createCA('http-proxy backend CA');
  const leaf = ca.issue({ cn: 'backend.internal' });
  const secure = await startHttpEcho({ pod: 'tls', tls: leaf });
  cleanups.push(() => secure.close());
  const tlsBackend = (serverName: string) =>
    httpBackend('tls', [ep(secure)], {
      protocol: 'https',
      tls: { serverName, caPem: ca.certPem, insecureSkipVerify: false },
    });
  const l = httpListener('http', null, [
    vhost('good.example', [rule({}, [tlsBackend('backend.internal')])]),
    vhost('wrong.example', [rule({}, [tlsBackend('other.internal')])]),
  ]);
  const p = await startProxy(l);
  const r = await send(p.port, '/secure', { headers: { host: 'good.example' } });
  assert.equal(r.status, 200, JSON.stringify(p.logs));
  assert.equal(r.json().tls?.serverName, 'backend.internal');
  assert.equal((await send(p.port, '/', { headers: { host: 'wrong.example' } })).status, 502);
});

test('a client that goes away mid-response aborts the upstream request', async () => {
  let upstreamClosed = false;
  const server = http.createServer((_req, res) => {
    res.writeHead(200);
    res.write('partial');
    res.on('close', () => (upstreamClosed = true));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(() => r()));
  });
  const l = single([rule({}, [httpBackend('slow', [ep(server.address() as AddressInfo)])])]);
  const p = await startProxy(l);
  const req = http.request({ host: '127.0.0.1', port: p.port, path: '/', agent: false });
  req.end();
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  await once(res, 'data');
  req.destroy();
  for (let i = 0; i < 200 && !upstreamClosed; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(upstreamClosed, true);
  const [log] = await p.waitLogs(1);
  assert.equal(log!.error, 'client-closed');
});

test('a slow client: the upstream is paused while the client does not drain, and every byte arrives', async () => {
  const size = 8 * 1024 * 1024;
  const b = await bulk(size);
  const l = single([rule({}, [httpBackend('bulk', [ep(b)])])]);
  const p = await startProxy(l);
  const req = http.request({ host: '127.0.0.1', port: p.port, path: '/', agent: false });
  req.end();
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  // Not reading for a while fills the socket buffers: the proxy must wait for 'drain', not buffer 8 MB.
  res.pause();
  await new Promise((r) => setTimeout(r, 300));
  let got = 0;
  res.on('data', (c: Buffer) => (got += c.length));
  res.resume();
  await once(res, 'end');
  assert.equal(got, size);
  const [log] = await p.waitLogs(1);
  assert.equal(log!.bytesOut, size);
  assert.equal(log!.error, null);
});

test('backendRequest timeout after the response started: the client connection is cut', async () => {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('partial');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(() => r()));
  });
  const l = single([
    rule({}, [httpBackend('stall', [ep(server.address() as AddressInfo)])], {
      timeouts: { requestMs: 0, backendRequestMs: 150 },
    }),
  ]);
  const p = await startProxy(l);
  const req = http.request({ host: '127.0.0.1', port: p.port, path: '/', agent: false });
  req.end();
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  assert.equal(res.statusCode, 200);
  res.resume();
  // 7 of the 100 promised bytes, then the proxy gives up: the client sees the response aborted.
  await once(res, 'aborted');
  const [log] = await p.waitLogs(1);
  assert.equal(log!.status, 200);
  assert.notEqual(log!.error, null);
});
