/** The contract between the TLS terminator / HTTP servers (terminate.ts, http-server.ts) and the HTTP proxy (http-proxy.ts). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { TableListener } from '../table/types.ts';

/** Everything the proxy needs to know about the connection a request arrived on. */
export interface RequestContext {
  connId: number;
  /** The listener the connection was routed to by SNI (HTTPS) or by port (HTTP). */
  listener: TableListener;
  /** All HTTP listeners of the same bind, most specific first, for Host-based listener choice and 421. */
  bindListeners: TableListener[];
  scheme: 'http' | 'https';
  /** Real client address (after PROXY in). */
  client: { address: string; port: number };
  /** SNI the TLS connection was made for (null for plain HTTP or no SNI). */
  sni: string | null;
  /** Verified client certificate (frontend mTLS), if any. */
  clientCert: { subject: string; fingerprint256: string; san: string | null; pem: string } | null;
  /** Local port as the client sees it (for redirects and X-Forwarded-Port). */
  localPort: number;
}

export type AnyRequest = IncomingMessage | Http2ServerRequest;
export type AnyResponse = ServerResponse | Http2ServerResponse;

/** Implemented by http-proxy.ts; called by http-server.ts for every request. Never throws; always answers. */
export interface HttpHandler {
  handle(req: AnyRequest, res: AnyResponse, ctx: RequestContext): void;
  /** HTTP/1.1 `Upgrade` (WebSocket): the handler owns `socket` from here on. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: RequestContext): void;
  /** Closes upstream connection pools (shutdown). */
  close(): Promise<void>;
}

/**
 * Tables are immutable: a swap brings new TableListener objects. Compiled per-listener routers are cached in a
 * WeakMap keyed by the TableListener, so a swap needs no notification and old compilations are collected.
 */
export type CompileCache<T> = WeakMap<TableListener, T>;
