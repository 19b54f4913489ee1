/**
 * HTTP/1.1 Upgrade (WebSocket) through the proxy: routed and filtered like any request, then a raw TCP (or TLS)
 * connection to the chosen endpoint gets the request head and the two sockets are piped both ways. The backend's
 * `101 Switching Protocols` (or refusal) flows back to the client untouched.
 */

import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { HttpBackend } from '../table/types.ts';
import type { PickedEndpoint } from './balancer.ts';
import { requestHead } from './http-headers.ts';
import type { Decision, Exchange, ProxyCore } from './http-proxy.ts';
import type { RequestContext } from './http-types.ts';

const CONNECT_TIMEOUT_DEFAULT = 10_000;

export function handleUpgrade(
  core: ProxyCore,
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  _ctx: RequestContext,
  x: Exchange,
): void {
  client.on('error', () => {});
  let d: Decision;
  try {
    d = core.resolve(x, req.method ?? 'GET', req.headers.host, req.url ?? '/', req);
  } catch (err) {
    core.logger.error({ err, connId: x.ctx.connId }, 'websocket upgrade internal error');
    d = { kind: 'local', status: 500, body: 'internal error\n', error: 'internal-error' };
  }
  if (d.kind === 'local') {
    rawAnswer(client, d.status, d.body, d.headers);
    x.record.status = d.status;
    if (d.error !== '') x.record.error ??= d.error;
    x.record.bytesOut += Buffer.byteLength(d.body);
    core.finish(x);
    return;
  }
  const fwd = d;
  if (x.security?.guarded) {
    // Rate limit, concurrency and the WAF's request-head checks, as for any request.
    let gone = false;
    client.once('close', () => (gone = true));
    core
      .guard(x, fwd, req, (fn) => client.once('close', fn))
      .then(
        (g) => {
          if (gone) {
            x.record.error ??= 'client-closed';
            core.finish(x);
            return;
          }
          if (g.kind === 'answer') {
            rawAnswer(client, g.answer.status, g.answer.body, g.answer.headers);
            x.record.status = g.answer.status;
            if (g.answer.error !== '') x.record.error ??= g.answer.error;
            x.record.bytesOut += Buffer.byteLength(g.answer.body);
            core.finish(x);
          } else forwardUpgrade(core, req, client, head, x, fwd);
        },
        (err: Error) => {
          core.logger.error({ err, connId: x.ctx.connId }, 'websocket upgrade internal error');
          client.destroy();
        },
      );
    return;
  }
  forwardUpgrade(core, req, client, head, x, fwd);
}

function forwardUpgrade(
  core: ProxyCore,
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  x: Exchange,
  fwd: Extract<Decision, { kind: 'forward' }>,
): void {
  // Hop-by-hop headers were dropped while planning; an upgrade needs its own back.
  fwd.plan.headers.set('connection', ['upgrade']);
  fwd.plan.headers.set('upgrade', [String(req.headers.upgrade ?? 'websocket')]);
  const reqHead = requestHead(
    req.method ?? 'GET',
    fwd.plan.path + fwd.plan.search,
    fwd.plan.authority,
    fwd.plan.headers,
  );

  let clientGone = false;
  let spliced = false;
  let upstream: net.Socket | null = null;
  const onClientClose = (): void => {
    clientGone = true;
    if (spliced) return;
    upstream?.destroy();
    x.record.error ??= 'client-closed';
    core.finish(x);
  };
  client.once('close', onClientClose);

  const attempt = (picked: PickedEndpoint, n: number): void => {
    x.record.endpoint = picked.key;
    const sock = connect(fwd.backend, picked);
    upstream = sock;
    let connected = false;
    sock.setTimeout(fwd.backend.policy.connectTimeoutMs || CONNECT_TIMEOUT_DEFAULT);
    sock.once('timeout', () => {
      if (!connected) sock.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
    });
    sock.once(fwd.backend.protocol === 'https' ? 'secureConnect' : 'connect', () => {
      connected = true;
      sock.setTimeout(0);
      core.health.reportSuccess(picked.key);
      if (clientGone) return sock.destroy();
      spliced = true;
      splice(core, x, client, sock, reqHead, head);
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      if (connected) return;
      upstream = null;
      const code = err.code ?? err.message;
      core.connectFailed(fwd.backend, picked.key, code);
      if (clientGone) return;
      const next = n === 0 ? fwd.balancer.nextEndpoint(fwd.backend, [picked.key]) : null;
      if (next !== null) return attempt(next, 1);
      client.off('close', onClientClose);
      x.record.error = `connect-failed: ${code}`;
      x.record.status = 502;
      rawAnswer(client, 502, 'bad gateway\n');
      core.finish(x);
    });
  };
  attempt(fwd.picked, 0);
}

function connect(backend: HttpBackend, picked: PickedEndpoint): net.Socket {
  const { address: host, port } = picked.endpoint;
  if (backend.protocol !== 'https') return net.connect({ host, port });
  const t = backend.tls;
  return tls.connect({
    host,
    port,
    ...(t?.serverName ? { servername: t.serverName } : {}),
    ...(t?.caPem ? { ca: t.caPem } : {}),
    rejectUnauthorized: !(t?.insecureSkipVerify ?? false),
    ALPNProtocols: ['http/1.1'],
  });
}

/** Request head out, then bytes both ways until either side closes; the status comes from the backend's reply. */
function splice(
  core: ProxyCore,
  x: Exchange,
  client: Duplex,
  up: net.Socket,
  reqHead: string,
  head: Buffer,
): void {
  const sentAt = performance.now();
  let statusLine = '';
  let closed = 0;
  const onClose = (): void => {
    if (++closed < 2) return;
    core.finish(x);
  };
  up.on('data', (chunk: Buffer) => {
    if (x.record.upstreamMs === null)
      x.record.upstreamMs = Math.round((performance.now() - sentAt) * 1000) / 1000;
    if (x.record.status === 0 && statusLine.length < 64) {
      statusLine += chunk.subarray(0, 64).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
      if (m) x.record.status = Number(m[1]);
    }
    x.record.bytesOut += chunk.length;
  });
  client.on('data', (chunk: Buffer) => {
    x.record.bytesIn += chunk.length;
  });
  up.on('error', (err: NodeJS.ErrnoException) => {
    x.record.error ??= `upstream-error: ${err.code ?? err.message}`;
    client.destroy();
  });
  client.on('error', () => up.destroy());
  up.once('close', () => {
    client.destroy();
    onClose();
  });
  client.once('close', () => {
    up.destroy();
    onClose();
  });
  up.write(reqHead);
  if (head.length > 0) {
    x.record.bytesIn += head.length;
    up.write(head);
  }
  client.pipe(up);
  up.pipe(client);
}

function rawAnswer(client: Duplex, status: number, body: string, headers: Record<string, string> = {}): void {
  let s = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
  const all: Record<string, string> = {
    'content-type': 'text/plain; charset=utf-8',
    ...headers,
    'content-length': String(Buffer.byteLength(body)),
    connection: 'close',
  };
  for (const [k, v] of Object.entries(all)) s += `${k}: ${v}\r\n`;
  client.end(`${s}\r\n${body}`);
  // A client that never closes its side does not keep the socket forever.
  setTimeout(() => client.destroy(), 5_000).unref();
}
