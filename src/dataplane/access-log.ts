/**
 * The one access-log record written at the end of every HTTP request (and WebSocket upgrade).
 *
 * Privacy: `path` is the request path WITHOUT the query string (values there are often tokens); `queryKeys` lists the
 * parameter names only. The only header value logged is Host: never Authorization, Cookie, bodies or certificates
 * (a verified client certificate appears as its subject only).
 */
import type { Logger } from 'pino';

export interface AccessRecord {
  connId: number;
  requestId: string;
  /** `ip:port` of the real client. */
  client: string;
  method: string;
  /** Host / :authority as sent by the client (port included). */
  host: string;
  /** Path without query string. */
  path: string;
  /** Names of the query parameters, in order, without values; null when there is no query string. */
  queryKeys: string[] | null;
  /** `HTTP/1.1`, `HTTP/2`, or `WebSocket` for upgrades. */
  protocol: string;
  status: number;
  /** Request body bytes read from the client. */
  bytesIn: number;
  /** Response body bytes written to the client. */
  bytesOut: number;
  durationMs: number;
  /** Time from sending the request upstream to its response headers; null when no upstream answered. */
  upstreamMs: number | null;
  /** `HTTPRoute/ns/name` (or `Ingress/ns/name`). */
  route: string | null;
  ruleIndex: number | null;
  backend: string | null;
  /** `address:port` of the endpoint that answered (the last one tried). */
  endpoint: string | null;
  /** Listener id `namespace/gateway/listener`. */
  listener: string | null;
  sni: string | null;
  /** Subject of the verified client certificate (frontend mTLS). */
  clientCertSubject: string | null;
  /** Why the proxy answered itself or the exchange broke: `no-route`, `backend-invalid`, `upstream-timeout`... */
  error: string | null;
}

export function logAccess(logger: Logger, record: AccessRecord): void {
  logger.info(record, 'request');
}

/** Names of the parameters of a `?a=1&b=2` search string, without values (decoded, capped). */
export function queryKeys(search: string): string[] | null {
  if (search === '' || search === '?') return null;
  const keys: string[] = [];
  for (const key of new URLSearchParams(search).keys()) {
    if (keys.length >= 32) break;
    keys.push(key.length > 64 ? `${key.slice(0, 64)}…` : key);
  }
  return keys;
}
