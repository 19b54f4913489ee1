import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import pino from 'pino';
import { createCA } from '../../test/support/certs.ts';
import { echoClient } from '../../test/support/echo-client.ts';
import { startTcpEcho, type TcpEchoServer } from '../../test/support/echo-server.ts';
import { commandExists, opensslSClient, runClient } from '../../test/support/processes.ts';
import type { RoutingTable, TableListener, TlsCertificate } from '../table/types.ts';
import type { HttpHandler } from './http-types.ts';
import { createTerminator, type Terminator } from './terminate.ts';
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
  type TestPlane,
} from './testkit.ts';

const gwCA = createCA('snigate terminate gateway CA');
const backendCA = createCA('snigate terminate backend CA');
const clientCA = createCA('snigate terminate client CA');
const strangerCA = createCA('snigate terminate stranger CA');

const apiRsa = gwCA.issue({ cn: 'api.example.com' });
const apiEc = gwCA.issue({ cn: 'api.example.com', keyType: 'ec' });
const wildcard = gwCA.issue({ cn: 'wildcard', sans: ['*.example.com'] });
const echoCert = gwCA.issue({ cn: 'echo.example.com', keyType: 'ec' });
const secureCert = gwCA.issue({
  cn: 'secure.example.com',
  sans: ['secure.example.com', 'optional.example.com'],
  keyType: 'ec',
});
const paymentsCert = backendCA.issue({ cn: 'payments.example.com', keyType: 'ec' });
const goodClient = clientCA.issue({ cn: 'good-client', client: true, keyType: 'ec' });
const badClient = strangerCA.issue({ cn: 'bad-client', client: true, keyType: 'ec' });

const certOf = (secret: string, p: { certPem: string; keyPem: string }): TlsCertificate => ({
  secret,
  certPem: p.certPem,
  keyPem: p.keyPem,
});

function https_(
  name: string,
  hostname: string | null,
  certs: TlsCertificate[],
  extra: Partial<TableListener> = {},
) {
  const l = listener(name, hostname, [], 'terminate-https');
  return {
    ...l,
    tls: { certificates: certs, alpn: ['h2', 'http/1.1'] },
    http: [],
    ...extra,
  } as TableListener;
}

/** Answers 200 with what it was given: the context the servers built, the Host and the path. */
const stub: HttpHandler = {
  handle(req, res, ctx) {
    const body = JSON.stringify({
      connId: ctx.connId,
      listener: ctx.listener.id,
      bindListeners: ctx.bindListeners.length,
      scheme: ctx.scheme,
      sni: ctx.sni,
      clientCert: ctx.clientCert?.subject ?? null,
      client: ctx.client.address,
      host: req.headers[':authority'] ?? req.headers.host,
      path: req.url,
      version: req.httpVersion,
    });
    res.statusCode = 200;
    res.setHeader('content-type', 'application/json');
    res.end(body);
  },
  upgrade(_req, socket) {
    socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
  },
  close: async () => {},
};

let tcpEcho: TcpEchoServer;
let paymentsBackend: TcpEchoServer;
let plane: TestPlane;
let term: Terminator;

function table(): RoutingTable {
  const pass = listener('tls-pass', 'payments.example.com', [
    route('payments.example.com', 'payments', [
      backend('Service/ns/payments:443', [ep(paymentsBackend.port)]),
    ]),
  ]);
  const tlsTerm = {
    ...listener(
      'tls-term',
      'echo.example.com',
      [route('echo.example.com', 'echo', [backend('Service/ns/echo:9000', [ep(tcpEcho.port)])])],
      'terminate-tls',
    ),
    tls: { certificates: [certOf('ns/echo', echoCert)], alpn: [] },
  } as TableListener;
  const secure = https_('secure', 'secure.example.com', [certOf('ns/secure', secureCert)], {});
  secure.tls = { ...secure.tls!, clientValidation: { caPem: clientCA.certPem, mode: 'AllowValidOnly' } };
  const optional = https_('optional', 'optional.example.com', [certOf('ns/secure', secureCert)]);
  optional.tls = {
    ...optional.tls!,
    clientValidation: { caPem: clientCA.certPem, mode: 'AllowInsecureFallback' },
  };
  const wild = https_('https', '*.example.com', [
    certOf('ns/api-rsa', apiRsa),
    certOf('ns/api-ec', apiEc),
    certOf('ns/wildcard', wildcard),
  ]);
  return { binds: [bind([pass, tlsTerm, secure, optional, wild])] };
}

before(async () => {
  tcpEcho = await startTcpEcho({ pod: 'echo-pod' });
  paymentsBackend = await startTcpEcho({
    pod: 'payments-pod',
    tls: { ...paymentsCert, ca: clientCA.certPem, requestCert: true, rejectUnauthorized: true },
  });
  let t: Terminator | null = null;
  plane = await startPlane(table(), { handOff: (h) => t!.handOff(h) });
  t = createTerminator({ logger: pino({ level: 'silent' }), httpHandler: stub, health: plane.dp.health });
  term = t;
});

after(async () => {
  term.drain();
  await plane.close();
  await term.close();
  await tcpEcho.close();
  await paymentsBackend.close();
});

interface Got {
  status?: number;
  body?: Record<string, unknown>;
  error?: string;
}

/** One HTTPS/1.1 request on a fresh connection. */
function get(
  servername: string,
  opts: { host?: string; path?: string; cert?: { certPem: string; keyPem: string } } = {},
): Promise<Got> {
  return new Promise((resolve) => {
    const req = https.request({
      host: '127.0.0.1',
      port: plane.port,
      servername,
      path: opts.path ?? '/',
      headers: { host: opts.host ?? servername },
      ca: gwCA.certPem,
      agent: false,
      timeout: 5000,
      ...(opts.cert ? { cert: opts.cert.certPem, key: opts.cert.keyPem } : {}),
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        const body = res.headers['content-type'] === 'application/json' ? JSON.parse(text) : { text };
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.end();
  });
}

test('HTTPS and TLS passthrough on one port: the terminated name sees the gateway certificate', async (t) => {
  if (!commandExists('openssl')) return t.skip('openssl missing');
  const r = await opensslSClient({ port: plane.port, servername: 'api.example.com', caFile: gwCA.caFile });
  assert.equal(r.connected, true, r.raw.stderr);
  assert.equal(r.verified, true);
  assert.equal(r.peerSubject, 'CN=api.example.com');
});

test('curl --http1.1 and --http2 get the handler with the connection context', async (t) => {
  if (!commandExists('curl')) return t.skip('curl missing');
  for (const [flag, version] of [
    ['--http1.1', '1.1'],
    ['--http2', '2.0'],
  ] as const) {
    const url = `https://api.example.com:${plane.port}/hello?x=1`;
    const resolve = `api.example.com:${plane.port}:127.0.0.1`;
    const r = await runClient('curl', ['-sS', flag, '--cacert', gwCA.caFile, '--resolve', resolve, url], {
      timeoutMs: 10_000,
    });
    assert.equal(r.code, 0, r.stderr);
    const body = JSON.parse(r.stdout);
    assert.equal(body.version, version);
    assert.equal(body.listener, 'ns/gw/https');
    assert.equal(body.scheme, 'https');
    assert.equal(body.sni, 'api.example.com');
    assert.equal(body.path, '/hello?x=1');
    assert.equal(body.client, '127.0.0.1');
    assert.equal(body.bindListeners, 5);
    assert.equal(body.clientCert, null);
  }
});

test('passthrough next to termination: mTLS with the backend works through the gateway', async () => {
  const r = await echoClient({
    port: plane.port,
    tls: {
      servername: 'payments.example.com',
      ca: backendCA.certPem,
      cert: goodClient.certPem,
      key: goodClient.keyPem,
    },
  });
  assert.equal(r.isTls, true);
  assert.equal(r.tls?.authorized, true);
  assert.equal(r.tls?.peerSubjectCN, 'payments.example.com');
  assert.equal(r.test.pod, 'payments-pod');
  assert.equal(r.test.tls?.serverName, 'payments.example.com');
  assert.equal(r.test.tls?.clientSubject, 'CN=good-client');
  assert.equal(r.test.tls?.clientAuthorized, true);
  if (!commandExists('openssl')) return;
  const s = await opensslSClient({
    port: plane.port,
    servername: 'payments.example.com',
    caFile: backendCA.caFile,
    extraArgs: ['-cert', goodClient.certFile, '-key', goodClient.keyFile],
  });
  assert.equal(s.connected, true, s.raw.stderr);
  assert.equal(s.peerSubject, 'CN=payments.example.com');
});

async function peerOf(servername: string, sigalgs?: string): Promise<{ cn: string; keyType: string }> {
  const c = tls.connect({
    host: '127.0.0.1',
    port: plane.port,
    servername,
    ca: gwCA.certPem,
    rejectUnauthorized: false,
    ...(sigalgs ? { sigalgs } : {}),
  });
  c.on('error', () => {});
  await once(c, 'secureConnect');
  const x = c.getPeerX509Certificate()!;
  c.destroy();
  return { cn: /CN=(.*)/.exec(x.subject)?.[1] ?? '', keyType: x.publicKey.asymmetricKeyType ?? '' };
}

test('certificate by SNI: exact name with RSA and ECDSA offered, one-label wildcard, default', async () => {
  assert.deepEqual(await peerOf('api.example.com', 'ecdsa_secp256r1_sha256'), {
    cn: 'api.example.com',
    keyType: 'ec',
  });
  assert.deepEqual(await peerOf('api.example.com', 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256'), {
    cn: 'api.example.com',
    keyType: 'rsa',
  });
  assert.equal((await peerOf('www.example.com')).cn, 'wildcard');
  // The listener takes any depth, but `*.example.com` covers one label: the default certificate is served.
  assert.equal((await peerOf('a.b.example.com')).cn, 'api.example.com');
});

test('frontend mTLS required: no certificate or a foreign one fails, a good one reaches the handler', async () => {
  const none = await get('secure.example.com');
  assert.ok(none.error !== undefined, JSON.stringify(none));
  const bad = await get('secure.example.com', { cert: badClient });
  assert.ok(bad.error !== undefined, JSON.stringify(bad));
  const good = await get('secure.example.com', { cert: goodClient });
  assert.equal(good.status, 200, JSON.stringify(good));
  assert.equal(good.body?.clientCert, 'CN=good-client');
  assert.equal(good.body?.listener, 'ns/gw/secure');
  const records = await plane.waitRecords(3);
  const ends = records.filter((r) => r.listener === 'ns/gw/secure').map((r) => r.end);
  assert.ok(ends.includes('tls-handshake-failed'), JSON.stringify(ends));
});

test('frontend mTLS optional (AllowInsecureFallback): no certificate still gets 200, unverified ones are not reported', async () => {
  const none = await get('optional.example.com');
  assert.equal(none.status, 200, JSON.stringify(none));
  assert.equal(none.body?.clientCert, null);
  const bad = await get('optional.example.com', { cert: badClient });
  assert.equal(bad.status, 200);
  assert.equal(bad.body?.clientCert, null);
  const good = await get('optional.example.com', { cert: goodClient });
  assert.equal(good.body?.clientCert, 'CN=good-client');
});

test('421: HTTP/1.1 Host of another listener (passthrough, mTLS) on a terminated connection', async () => {
  const same = await get('api.example.com', { host: 'foo.example.com:443' });
  assert.equal(same.status, 200);
  assert.equal(same.body?.host, 'foo.example.com:443');
  for (const host of ['payments.example.com', 'secure.example.com', 'ECHO.example.com.']) {
    const r = await get('api.example.com', { host });
    assert.equal(r.status, 421, host);
  }
});

test('421: a reused HTTP/2 connection asked for another listener authority', async () => {
  const session = http2.connect(`https://127.0.0.1:${plane.port}`, {
    servername: 'www.example.com',
    ca: gwCA.certPem,
  });
  session.on('error', () => {});
  try {
    const ask = (authority: string) =>
      new Promise<number>((resolve, reject) => {
        const s = session.request({ ':path': '/', ':authority': authority });
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
        s.resume();
        s.end();
      });
    assert.equal(await ask('www.example.com'), 200);
    assert.equal(await ask('api.example.com'), 200);
    assert.equal(await ask('secure.example.com'), 421);
    assert.equal(await ask('payments.example.com'), 421);
  } finally {
    session.close();
  }
});

test('TLS Terminate (TLSRoute): decrypted and piped to the conformance TCP echo, which speaks first', async () => {
  const before = tcpEcho.connections;
  const r = await echoClient({ port: plane.port, tls: { servername: 'echo.example.com', ca: gwCA.certPem } });
  assert.equal(r.banner, 'Gateway API Test TCP Server\n');
  assert.equal(r.pong, 'PONG');
  assert.equal(r.isTls, false);
  assert.equal(r.tls?.authorized, true);
  assert.equal(r.tls?.peerSubjectCN, 'echo.example.com');
  assert.equal(r.test.pod, 'echo-pod');
  assert.equal(tcpEcho.connections, before + 1);
  const records = await plane.waitRecords(1);
  const deadline = Date.now() + 3000;
  while (!plane.records.some((x) => x.listener === 'ns/gw/tls-term') && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 20));
  }
  const rec = plane.records.find((x) => x.listener === 'ns/gw/tls-term');
  assert.ok(rec, JSON.stringify(records));
  assert.equal(rec.route, 'TLSRoute/ns/echo');
  assert.equal(rec.backend, 'Service/ns/echo:9000');
  assert.equal(rec.endpoint, `127.0.0.1:${tcpEcho.port}`);
  assert.match(rec.end, /^(client|backend)-closed$/);
});

test('TLS Terminate: the PostgreSQL ALPN is selected when the client asks for it', async () => {
  const c = tls.connect({
    host: '127.0.0.1',
    port: plane.port,
    servername: 'echo.example.com',
    ca: gwCA.certPem,
    ALPNProtocols: ['postgresql'],
  });
  c.on('error', () => {});
  await once(c, 'secureConnect');
  assert.equal(c.alpnProtocol, 'postgresql');
  c.destroy();
});

test('handshake deadline: a client that stalls after its ClientHello is closed and recorded', async () => {
  const hello = await captureHello('api.example.com', ['h2']);
  let t: Terminator | null = null;
  const p = await startPlane(table(), { handOff: (h) => t!.handOff(h) });
  t = createTerminator({
    logger: pino({ level: 'silent' }),
    httpHandler: stub,
    health: p.dp.health,
    handshakeTimeoutMs: 200,
  });
  try {
    const c = await rawConnect(p.port);
    const done = collect(c, 5000);
    c.write(hello);
    const r = await done;
    assert.ok(r.data.length > 0, 'the server answered the hello before giving up');
    const [rec] = await p.waitRecords(1);
    assert.equal(rec?.end, 'tls-handshake-timeout');
    assert.equal(rec?.listener, 'ns/gw/https');
    assert.equal(p.dp.activeConnections(), 0);
  } finally {
    await p.close();
    await t.close();
  }
});

test('hand-off connections are counted, logged and closed by a shutdown', async () => {
  let t: Terminator | null = null;
  const p = await startPlane(table(), { handOff: (h) => t!.handOff(h) });
  t = createTerminator({ logger: pino({ level: 'silent' }), httpHandler: stub, health: p.dp.health });
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = https.request({
        host: '127.0.0.1',
        port: p.port,
        servername: 'api.example.com',
        ca: gwCA.certPem,
        agent,
        headers: { host: 'api.example.com' },
      });
      req.on('response', resolve);
      req.on('error', reject);
      req.end();
    });
    res.resume();
    await once(res, 'end');
    assert.equal(res.statusCode, 200);
    // The keep-alive connection is still open and still the data plane's.
    assert.equal(p.dp.activeConnections(), 1);
    assert.equal(p.records.length, 0);
    t.drain();
    await p.dp.shutdown(2000);
    assert.equal(p.dp.activeConnections(), 0);
    const [rec] = await p.waitRecords(1);
    assert.equal(rec?.listener, 'ns/gw/https');
    assert.equal(rec?.sni, 'api.example.com');
    assert.ok((rec?.bytesIn ?? 0) > 0);
  } finally {
    agent.destroy();
    await p.close().catch(() => {});
    await t.close();
  }
});

test('plain HTTP bind: the raw socket goes to the HTTP/1.1 server with a plain context', async () => {
  let t: Terminator | null = null;
  const l = { ...listener('http', null, [], 'http'), http: [] } as TableListener;
  const p = await startPlane({ binds: [bind([l], { protocol: 'http' })] }, { handOff: (h) => t!.handOff(h) });
  t = createTerminator({ logger: pino({ level: 'silent' }), httpHandler: stub, health: p.dp.health });
  try {
    const c = await rawConnect(p.port);
    const done = collect(c);
    c.write('GET /plain HTTP/1.1\r\nHost: web.example.com\r\nConnection: close\r\n\r\n');
    const text = (await done).data.toString();
    assert.match(text, /^HTTP\/1\.1 200 OK/);
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
    assert.equal(body.scheme, 'http');
    assert.equal(body.sni, null);
    assert.equal(body.listener, 'ns/gw/http');
    assert.equal(body.path, '/plain');
    const [rec] = await p.waitRecords(1);
    assert.equal(rec?.listener, 'ns/gw/http');
  } finally {
    await p.close();
    await t.close();
  }
});

test('TLS Terminate: a backend reset resets the client (its TCP socket) and is recorded', async () => {
  const be = await startRawBackend((s) => {
    s.write('hi\n');
    setTimeout(() => s.resetAndDestroy(), 50);
  });
  const l = {
    ...listener(
      'tls-term',
      'echo.example.com',
      [route('echo.example.com', 'echo', [backend('Service/ns/reset:1', [ep(be.port)])])],
      'terminate-tls',
    ),
    tls: { certificates: [certOf('ns/echo', echoCert)], alpn: [] },
  } as TableListener;
  let t: Terminator | null = null;
  const p = await startPlane({ binds: [bind([l])] }, { handOff: (h) => t!.handOff(h) });
  t = createTerminator({ logger: pino({ level: 'silent' }), httpHandler: stub, health: p.dp.health });
  try {
    const c = tls.connect({
      host: '127.0.0.1',
      port: p.port,
      servername: 'echo.example.com',
      ca: gwCA.certPem,
    });
    const got: Buffer[] = [];
    let error: string | null = null;
    c.on('data', (d: Buffer) => got.push(d));
    c.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    await new Promise((r) => c.on('close', r));
    assert.equal(Buffer.concat(got).toString(), 'hi\n');
    assert.equal(error, 'ECONNRESET');
    const [rec] = await p.waitRecords(1);
    assert.equal(rec?.end, 'backend-reset');
    assert.equal(rec?.backend, 'Service/ns/reset:1');
  } finally {
    await p.close();
    await t.close();
    await be.close();
  }
});
