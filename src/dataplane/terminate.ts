/**
 * Takes over the connections the SNI router hands off: TLS is terminated on the same socket (the bytes already
 * read are unshifted first), then HTTPS goes to the HTTP servers and TLS Terminate (TLSRoute) is piped in clear
 * to a backend; plain HTTP binds go straight to the HTTP/1.1 server.
 *
 * The handshake runs in a `tls.Server` that never listens (`emit('connection')`), one per listener, certificate
 * group and ALPN offer: that is Node's only public path that verifies client certificates (`authorized`) on a
 * server-side socket, and starting with the group chosen by SNI keeps RSA and ECDSA certificates side by side
 * (Node's SNICallback switch would keep one). Its TLSSocket is found again by the TCP 4-tuple it shares with
 * the raw socket.
 */
import type net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { BackendSet, TableListener } from '../table/types.ts';
import { Balancer } from './balancer.ts';
import type { EndReason } from './conn-log.ts';
import type { HandOff } from './connection.ts';
import { type DataPlaneEvents, withDefaults } from './events.ts';
import type { HealthRegistry } from './health.ts';
import { type HttpConnection, type HttpServerOptions, HttpServers } from './http-server.ts';
import type { HttpHandler, RequestContext } from './http-types.ts';
import { Passthrough } from './passthrough.ts';
import { proxyAddressesFor } from './proxy-protocol.ts';
import { contextsFor } from './tls-contexts.ts';

export type HandshakeFailure = 'error' | 'timeout';

/** Hooks for metrics; all optional. */
export interface TerminateEvents {
  handshakeDone(listenerId: string, ms: number, alpn: string | null): void;
  handshakeFailed(listenerId: string, why: HandshakeFailure): void;
  /** An HTTPS request answered 421 (its Host belongs to another listener than its SNI). */
  misdirected(listenerId: string): void;
}

export interface TerminatorOptions {
  logger: Logger;
  httpHandler: HttpHandler;
  /** The data plane's registry: TLS Terminate backends share health with passthrough. */
  health: HealthRegistry;
  /** Connect failures of TLS Terminate backends are reported like passthrough ones. */
  events?: Partial<DataPlaneEvents>;
  tlsEvents?: Partial<TerminateEvents>;
  /** The TLS handshake must finish this long after the hand-off (default 10 s). */
  handshakeTimeoutMs?: number;
  http?: HttpServerOptions;
  random?: () => number;
}

export interface Terminator {
  /** Pass as `DataPlane`'s `handOff`. Never throws. */
  handOff: (h: HandOff) => void;
  /** Graceful shutdown step before `DataPlane.shutdown`: GOAWAY on h2, close idle HTTP/1.1 keep-alives. */
  drain(): void;
  /** Drains, stops timers, and closes the HTTP handler's upstream pools. */
  close(): Promise<void>;
}

/** HTTPS listeners offer these when the table says nothing. */
export const HTTPS_ALPN = ['h2', 'http/1.1'];
/** PostgreSQL 17 direct TLS: a terminating proxy must select it (libpq refuses the connection otherwise). */
const PG_ALPN = 'postgresql';

type Variant = 'alpn' | 'pg' | 'none';

interface Pending {
  h: HandOff;
  startedAt: number;
  timer: NodeJS.Timeout;
  secured: boolean;
  detail: string | null;
}

const EMPTY = Buffer.alloc(0);

export function createTerminator(opts: TerminatorOptions): Terminator {
  const logger = opts.logger;
  const events = withDefaults(opts.events);
  const noop = (): void => {};
  const tlsEvents: TerminateEvents = {
    handshakeDone: opts.tlsEvents?.handshakeDone ?? noop,
    handshakeFailed: opts.tlsEvents?.handshakeFailed ?? noop,
    misdirected: opts.tlsEvents?.misdirected ?? noop,
  };
  const handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 10_000;
  const http = new HttpServers(opts.httpHandler, {
    ...opts.http,
    onMisdirected: (l) => tlsEvents.misdirected(l),
  });
  /** Per listener: one never-listening server per (certificate group, ALPN variant). */
  const servers = new WeakMap<TableListener, Map<string, tls.Server>>();
  const balancers = new WeakMap<BackendSet, Balancer>();
  /** Hand-offs in their handshake, by TCP 4-tuple. */
  const pending = new Map<string, Pending>();
  const warned = new WeakSet<TableListener>();

  const reject = (h: HandOff, reason: EndReason, detail: string | null): void => {
    h.outcome.reason ??= reason;
    h.outcome.detail ??= detail;
    h.socket.destroy();
  };

  const offered = (l: TableListener): string[] => {
    const alpn = l.tls?.alpn ?? [];
    return alpn.length > 0 ? alpn : l.mode === 'terminate-https' ? HTTPS_ALPN : [];
  };

  /** Node sends a fatal alert when the client's ALPN list and ours do not overlap: offer nothing instead. */
  const variantFor = (h: HandOff): Variant => {
    const ours = offered(h.listener);
    const theirs = h.hello?.alpn ?? [];
    if (ours.length > 0 && (theirs.length === 0 || theirs.some((p) => ours.includes(p)))) return 'alpn';
    if (h.listener.mode === 'terminate-tls' && theirs.includes(PG_ALPN)) return 'pg';
    return 'none';
  };

  /** The certificate is chosen here, by the SNI already read: the handshake starts with the right context. */
  const serverFor = (l: TableListener, sni: string | null, variant: Variant): tls.Server | null => {
    const contexts = contextsFor(l);
    if (contexts.errors.length > 0 && !warned.has(l)) {
      warned.add(l);
      logger.error(
        { listener: l.id, errors: contexts.errors },
        'listener certificates that cannot be served',
      );
    }
    const choice = contexts.select(sni);
    if (choice === null) return null;
    let byKey = servers.get(l);
    if (byKey === undefined) {
      byKey = new Map();
      servers.set(l, byKey);
    }
    const key = `${choice.id}|${variant}`;
    const existing = byKey.get(key);
    if (existing !== undefined) return existing;
    const cv = l.tls?.clientValidation;
    const alpn = variant === 'alpn' ? offered(l) : variant === 'pg' ? [PG_ALPN] : null;
    const server = tls.createServer({
      ...choice.options,
      requestCert: cv !== undefined,
      rejectUnauthorized: cv?.mode === 'AllowValidOnly',
      ...(alpn !== null ? { ALPNProtocols: alpn } : {}),
      // Ours fires first and says why; Node's is only a backstop.
      handshakeTimeout: handshakeTimeoutMs + 5_000,
    });
    server.on('secureConnection', onSecure);
    server.on('tlsClientError', onTlsClientError);
    byKey.set(key, server);
    return server;
  };

  const balancerFor = (set: BackendSet): Balancer => {
    let b = balancers.get(set);
    if (b === undefined) {
      b = new Balancer(set, opts.health, opts.random);
      balancers.set(set, b);
    }
    return b;
  };

  const terminate = (h: HandOff): void => {
    const raw = h.socket;
    const server = serverFor(h.listener, h.hello?.sni ?? null, variantFor(h));
    if (server === null) {
      reject(h, 'internal-error', 'no usable certificate');
      return;
    }
    const key = socketKey(raw);
    const p: Pending = {
      h,
      startedAt: performance.now(),
      secured: false,
      detail: null,
      timer: setTimeout(() => {
        logger.debug({ connId: h.connId, listener: h.listener.id }, 'tls handshake timed out');
        tlsEvents.handshakeFailed(h.listener.id, 'timeout');
        reject(h, 'tls-handshake-timeout', `${handshakeTimeoutMs} ms`);
      }, handshakeTimeoutMs),
    };
    pending.set(key, p);
    // Before the connection's own listener, so its record sees the reason.
    raw.prependOnceListener('close', () => {
      clearTimeout(p.timer);
      if (pending.get(key) === p) pending.delete(key);
      if (p.secured || h.outcome.reason !== null) return;
      h.outcome.reason = 'tls-handshake-failed';
      h.outcome.detail = p.detail;
      logger.debug({ connId: h.connId, listener: h.listener.id, detail: p.detail }, 'tls handshake failed');
      tlsEvents.handshakeFailed(h.listener.id, 'error');
    });
    if (h.head.length > 0) raw.unshift(h.head);
    server.emit('connection', raw);
  };

  function onTlsClientError(err: NodeJS.ErrnoException, t: tls.TLSSocket): void {
    // The 4-tuple is gone once the socket is destroyed; the raw socket's 'close' records the failure anyway.
    const p = t.remotePort === undefined ? undefined : pending.get(socketKey(t));
    if (p !== undefined) p.detail ??= err.code ?? err.message;
    t.destroy();
  }

  function onSecure(t: tls.TLSSocket): void {
    const key = socketKey(t);
    const p = pending.get(key);
    if (p === undefined) {
      t.destroy();
      return;
    }
    pending.delete(key);
    clearTimeout(p.timer);
    p.secured = true;
    const h = p.h;
    const alpn = t.alpnProtocol || null;
    tlsEvents.handshakeDone(h.listener.id, performance.now() - p.startedAt, alpn);
    if (h.outcome.reason !== null) {
      t.destroy();
      return;
    }
    try {
      if (h.listener.mode === 'terminate-tls') pipeToBackend(h, t);
      else serveHttps(h, t, alpn);
    } catch (err) {
      logger.error({ connId: h.connId, err }, 'terminated connection handler failed');
      reject(h, 'internal-error', err instanceof Error ? err.message : String(err));
      t.destroy();
    }
  }

  const serveHttps = (h: HandOff, t: tls.TLSSocket, alpn: string | null): void => {
    // Errors after the handshake (resets, bad records) end the connection; the HTTP servers log nothing.
    t.on('error', (err: NodeJS.ErrnoException) => {
      h.outcome.detail ??= err.code ?? err.message;
    });
    const conn: HttpConnection = {
      connId: h.connId,
      scheme: 'https',
      listener: h.listener,
      current: h.current,
      client: h.client,
      sni: h.hello?.sni ?? null,
      clientCert: clientCertOf(t),
      localPort: h.socket.localPort ?? 0,
    };
    http.serveTls(t, alpn ?? false, conn);
  };

  const pipeToBackend = (h: HandOff, t: tls.TLSSocket): void => {
    const route = h.route;
    if (route === null) {
      reject(h, 'no-route', 'terminate-tls listener without route');
      return;
    }
    const balancer = balancerFor(route.backends);
    const pick = balancer.pick();
    if (pick.backend !== undefined) h.outcome.backend = pick.backend.id;
    if (pick.reject !== undefined) {
      reject(h, pick.reject, pick.reason);
      return;
    }
    const raw = h.socket;
    // Passthrough resets the client on a backend reset; a TLSSocket cannot be reset itself, its TCP socket can.
    t.resetAndDestroy = () => {
      if (!raw.destroyed) raw.resetAndDestroy();
      return t;
    };
    h.outcome.pending = true;
    const pt = new Passthrough(
      {
        client: t,
        balancer,
        backend: pick.backend,
        first: pick,
        head: EMPTY,
        pgSsl: false,
        proxyOut: () =>
          proxyAddressesFor(
            h.client.address,
            h.client.port,
            raw.localAddress ?? '0.0.0.0',
            raw.localPort ?? 0,
          ),
        health: opts.health,
        events,
        reencrypt: true,
      },
      {
        passthroughDone: (reason, detail) => {
          h.outcome.backend = pt.backend.id;
          h.outcome.endpoint = pt.endpoint;
          h.outcome.reason ??= reason;
          h.outcome.detail ??= detail;
          h.outcome.pending = false;
          h.outcome.settled();
        },
      },
    );
    h.outcome.close = (reason) => pt.abort(reason);
    t.on('error', (err: NodeJS.ErrnoException) => pt.clientError(err));
    t.on('end', () => pt.clientEnd());
    t.on('close', () => pt.clientClose());
    pt.start();
  };

  const plain = (h: HandOff): void => {
    const raw = h.socket;
    if (h.head.length > 0) raw.unshift(h.head);
    http.servePlain(raw, {
      connId: h.connId,
      scheme: 'http',
      listener: h.listener,
      current: h.current,
      client: h.client,
      sni: null,
      clientCert: null,
      localPort: raw.localPort ?? 0,
    });
  };

  const handOff = (h: HandOff): void => {
    try {
      switch (h.listener.mode) {
        case 'terminate-https':
        case 'terminate-tls':
          terminate(h);
          return;
        case 'http':
          plain(h);
          return;
        default:
          reject(h, 'no-route', `nothing terminates ${h.listener.mode} listeners`);
      }
    } catch (err) {
      logger.error({ connId: h.connId, err }, 'hand-off failed');
      reject(h, 'internal-error', err instanceof Error ? err.message : String(err));
    }
  };

  return {
    handOff,
    drain: () => http.drain(),
    async close() {
      http.close();
      for (const p of pending.values()) clearTimeout(p.timer);
      await opts.httpHandler.close();
    },
  };
}

function socketKey(s: net.Socket): string {
  return `${s.localAddress}|${s.localPort}|${s.remoteAddress}|${s.remotePort}`;
}

/** Only a certificate that verified against the listener's CA is reported. */
function clientCertOf(t: tls.TLSSocket): RequestContext['clientCert'] {
  if (!t.authorized) return null;
  const x = t.getPeerX509Certificate();
  if (x === undefined) return null;
  return {
    subject: x.subject.split('\n').join(', '),
    fingerprint256: x.fingerprint256,
    san: x.subjectAltName ?? null,
    pem: x.toString(),
  };
}
