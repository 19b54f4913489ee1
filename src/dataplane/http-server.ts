/**
 * The HTTP servers terminated connections are handed to: one HTTP/1.1 server (plain HTTP, and TLS without h2)
 * and one HTTP/2 server (TLS with ALPN h2). Neither listens: sockets arrive with `emit('connection')`.
 *
 * Each connection carries what it was routed by (SNI listener, client, certificate) and, per request, is
 * re-read against the bind's current table so keep-alive connections follow swaps. On HTTPS, a request whose
 * Host selects a different listener of the bind than the SNI did gets 421 (RFC 9110 §15.5.20; Gateway API
 * GEP-3567): that is what a browser coalescing HTTP/2 connections across certificates' names needs.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TableListener } from '../table/types.ts';
import { chooseListener, normalizeHost } from './http-router.ts';
import type { AnyRequest, AnyResponse, HttpHandler, RequestContext } from './http-types.ts';
import type { CompiledBind } from './sni-router.ts';

export interface HttpServerOptions {
  /** The whole request head must arrive within this (default 30 s; Node answers 408). */
  headersTimeoutMs?: number;
  /** The whole request, body included, must arrive within this (default 300 s; 0 = none). */
  requestTimeoutMs?: number;
  /** An idle HTTP/1.1 keep-alive connection is closed after this (default 60 s). */
  keepAliveTimeoutMs?: number;
  /** An HTTP/2 session without any activity is closed (GOAWAY) after this (default 300 s). */
  h2IdleTimeoutMs?: number;
  /** Request head size limit, request line and headers (default 16 KiB; HTTP/1.1 answers 431). */
  maxHeaderBytes?: number;
  /** Most header fields in one request (default 100; more gets 431). */
  maxHeaders?: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS (default 100). */
  maxConcurrentStreams?: number;
  /** Called for every 421 answered (metrics). */
  onMisdirected?: (listenerId: string) => void;
}

export const HTTP_SERVER_DEFAULTS: Required<Omit<HttpServerOptions, 'onMisdirected'>> = {
  headersTimeoutMs: 30_000,
  requestTimeoutMs: 300_000,
  keepAliveTimeoutMs: 60_000,
  h2IdleTimeoutMs: 300_000,
  maxHeaderBytes: 16 * 1024,
  maxHeaders: 100,
  maxConcurrentStreams: 100,
};

/** What a connection was routed by; the per-request RequestContext is derived from it. */
export interface HttpConnection {
  connId: number;
  scheme: 'http' | 'https';
  /** The listener chosen by SNI (HTTPS) or the bind's first listener (plain HTTP). */
  listener: TableListener;
  /** The bind's current table (for swaps and the 421 check); null: the listener alone. */
  current: (() => CompiledBind) | null;
  client: { address: string; port: number };
  sni: string | null;
  clientCert: RequestContext['clientCert'];
  localPort: number;
}

interface ConnState {
  conn: HttpConnection;
  compiled: CompiledBind | null;
  ctx: RequestContext;
  /** The listener this connection was made for is gone or changed: every request gets 421. */
  stale: boolean;
  /** The last Host checked for 421 on this connection and the answer (keep-alive clients repeat it). */
  checkedHost: string | undefined;
  misdirected: boolean;
}

/** Host header or :authority without port, lower case, no trailing dot; IPv6 literals keep their brackets. */
export function hostOf(authority: string | undefined): string | null {
  if (authority === undefined) return null;
  const h = normalizeHost(authority.trim());
  return h === '' ? null : h;
}

/**
 * The listener a Host selects among the bind's listeners, compared with the one the SNI selected. A Host that
 * selects no listener is not misdirected (the router answers 404); listeners sharing a hostname (merged
 * Gateways) are the same for this purpose.
 */
export function isMisdirected(ctx: RequestContext, host: string): boolean {
  // One rule for both layers: the router's listener choice (http-router.ts) decides.
  return chooseListener('https', ctx.listener, ctx.bindListeners, host).reject === 'misdirected';
}

function sameTls(a: TableListener, b: TableListener): boolean {
  const ca = a.tls?.clientValidation;
  const cb = b.tls?.clientValidation;
  return a.mode === b.mode && ca?.caPem === cb?.caPem && ca?.mode === cb?.mode;
}

export class HttpServers {
  readonly #handler: HttpHandler;
  readonly #opts: Required<Omit<HttpServerOptions, 'onMisdirected'>>;
  readonly #onMisdirected: (listenerId: string) => void;
  readonly #h1: http.Server;
  readonly #h2: http2.Http2Server;
  readonly #bySocket = new WeakMap<object, ConnState>();
  readonly #bySession = new WeakMap<http2.Http2Session, ConnState>();
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  #pending: ConnState | null = null;
  #draining = false;

  constructor(handler: HttpHandler, options: HttpServerOptions = {}) {
    this.#handler = handler;
    const { onMisdirected, ...rest } = options;
    const o = { ...HTTP_SERVER_DEFAULTS, ...rest };
    this.#opts = o;
    this.#onMisdirected = onMisdirected ?? (() => {});
    this.#h1 = http.createServer({
      maxHeaderSize: o.maxHeaderBytes,
      headersTimeout: o.headersTimeoutMs,
      requestTimeout: o.requestTimeoutMs,
      keepAliveTimeout: o.keepAliveTimeoutMs,
      requireHostHeader: true,
      // The checker enforcing the timeouts runs every second instead of 30.
      connectionsCheckingInterval: 1000,
    });
    // Node drops fields past maxHeadersCount silently; one more than the limit lets us refuse instead.
    this.#h1.maxHeadersCount = o.maxHeaders + 1;
    this.#h1.on('request', this.#onH1Request);
    this.#h1.on('upgrade', this.#onUpgrade);
    // A server that never listens must start its connection tracking itself (timeouts, closeIdleConnections).
    this.#h1.emit('listening');

    this.#h2 = http2.createServer({
      maxHeaderListPairs: o.maxHeaders + 8,
      maxSessionMemory: 10,
      settings: { maxConcurrentStreams: o.maxConcurrentStreams, maxHeaderListSize: o.maxHeaderBytes },
    });
    this.#h2.setTimeout(o.h2IdleTimeoutMs);
    this.#h2.on('session', this.#onSession);
    this.#h2.on('request', this.#onH2Request);
    // Without a listener, session errors would be unhandled 'error' events on the session.
    this.#h2.on('sessionError', () => {});
  }

  /** Serves a terminated TLS socket: HTTP/2 when ALPN chose h2, else HTTP/1.1. */
  serveTls(socket: net.Socket, alpn: string | false | null, conn: HttpConnection): void {
    const state = this.#state(conn);
    if (alpn === 'h2') {
      this.#pending = state;
      try {
        this.#h2.emit('connection', socket);
      } finally {
        this.#pending = null;
      }
      return;
    }
    this.#bySocket.set(socket, state);
    this.#h1.emit('connection', socket);
  }

  /** Serves a plain TCP socket as HTTP/1.1; bytes already read must have been unshifted. */
  servePlain(socket: net.Socket, conn: HttpConnection): void {
    this.#bySocket.set(socket, this.#state(conn));
    this.#h1.emit('connection', socket);
    // The parser reads from the handle directly: bytes unshifted into the stream flow only once resumed.
    socket.resume();
  }

  /** Graceful drain: idle keep-alive connections close now, busy ones after their response; GOAWAY on h2. */
  drain(): void {
    this.#draining = true;
    this.#h1.closeIdleConnections();
    for (const s of this.#sessions) if (!s.closed) s.close();
  }

  /** Stops the HTTP/1.1 timeout checker; connections themselves belong to the data plane. */
  close(): void {
    this.drain();
    this.#h1.close();
  }

  get activeSessions(): number {
    return this.#sessions.size;
  }

  #state(conn: HttpConnection): ConnState {
    const compiled = conn.current?.() ?? null;
    return {
      conn,
      compiled,
      stale: false,
      checkedHost: undefined,
      misdirected: false,
      ctx: {
        connId: conn.connId,
        listener: conn.listener,
        bindListeners: compiled?.bind.listeners ?? [conn.listener],
        scheme: conn.scheme,
        client: conn.client,
        sni: conn.sni,
        clientCert: conn.clientCert,
        localPort: conn.localPort,
      },
    };
  }

  /** The table may have been swapped since the connection was made: follow it, or mark the connection stale. */
  #refresh(state: ConnState): void {
    const current = state.conn.current;
    if (current === null || state.stale) return;
    const compiled = current();
    if (compiled === state.compiled) return;
    state.compiled = compiled;
    if (state.conn.scheme === 'http') {
      const first = compiled.match(null).listener;
      if (first === undefined) return;
      state.ctx = { ...state.ctx, listener: first, bindListeners: compiled.bind.listeners };
      state.checkedHost = undefined;
      return;
    }
    const listener = compiled.match(state.conn.sni).listener;
    // The certificate and client validation were chosen for the old listener: a new connection must decide.
    if (
      listener === undefined ||
      listener.id !== state.ctx.listener.id ||
      !sameTls(listener, state.ctx.listener)
    ) {
      state.stale = true;
      return;
    }
    state.ctx = { ...state.ctx, listener, bindListeners: compiled.bind.listeners };
    state.checkedHost = undefined;
  }

  /** Checks shared by both protocols; true when the request was answered here. */
  #precheck(state: ConnState, req: AnyRequest, res: AnyResponse, authority: string | undefined): boolean {
    this.#refresh(state);
    if (req.rawHeaders.length / 2 > this.#opts.maxHeaders + (req.httpVersionMajor === 2 ? 4 : 0)) {
      answer(res, 431, 'Request Header Fields Too Large\n');
      return true;
    }
    if (state.conn.scheme !== 'https') return false;
    if (!state.stale && (authority === undefined || authority !== state.checkedHost)) {
      const host = hostOf(authority);
      state.misdirected = host !== null && isMisdirected(state.ctx, host);
      state.checkedHost = authority;
    }
    if (state.stale || state.misdirected) {
      this.#onMisdirected(state.ctx.listener.id);
      answer(res, 421, 'Misdirected Request\n');
      return true;
    }
    return false;
  }

  #onH1Request = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const state = this.#bySocket.get(req.socket);
    if (state === undefined) {
      res.destroy();
      return;
    }
    if (this.#draining) res.setHeader('connection', 'close');
    if (this.#precheck(state, req, res, req.headers.host)) return;
    this.#dispatch(req, res, state.ctx);
  };

  #onH2Request = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void => {
    const state = this.#bySession.get(req.stream.session as http2.Http2Session);
    if (state === undefined) {
      req.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const authority = req.authority || req.headers.host;
    if (this.#precheck(state, req, res, authority)) return;
    this.#dispatch(req, res, state.ctx);
  };

  #dispatch(req: AnyRequest, res: AnyResponse, ctx: RequestContext): void {
    try {
      this.#handler.handle(req, res, ctx);
    } catch {
      // The handler promises never to throw; if it does, the client still gets an answer.
      if (!res.headersSent) answer(res, 500, 'Internal Server Error\n');
      else res.destroy();
    }
  }

  #onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    const state = this.#bySocket.get(req.socket);
    if (state === undefined) {
      socket.destroy();
      return;
    }
    this.#refresh(state);
    if (state.conn.scheme === 'https') {
      const host = hostOf(req.headers.host);
      if (state.stale || (host !== null && isMisdirected(state.ctx, host))) {
        this.#onMisdirected(state.ctx.listener.id);
        socket.end('HTTP/1.1 421 Misdirected Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        return;
      }
    }
    try {
      this.#handler.upgrade(req, socket, head, state.ctx);
    } catch {
      socket.destroy();
    }
  };

  #onSession = (session: http2.ServerHttp2Session): void => {
    const state = this.#pending;
    if (state === null) {
      session.destroy();
      return;
    }
    this.#bySession.set(session, state);
    this.#sessions.add(session);
    session.once('close', () => this.#sessions.delete(session));
    if (this.#draining) session.close();
  };
}

function answer(res: AnyResponse, status: number, body: string): void {
  res.statusCode = status;
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(body);
}
