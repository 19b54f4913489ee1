/** The one log record written at the end of every connection, and how it is written. */
import type { Logger } from 'pino';

/** How a connection ended: the first cause wins (a reset after a FIN is still reported as the reset). */
export type EndReason =
  | 'client-closed'
  | 'backend-closed'
  | 'client-reset'
  | 'backend-reset'
  | 'idle-timeout'
  | 'max-lifetime'
  | 'drained'
  | 'shutdown'
  | RejectReason;

/** Ends before any byte reached a backend. */
export type RejectReason =
  | 'no-sni'
  | 'no-listener'
  | 'no-route'
  | 'not-tls'
  | 'malformed-hello'
  | 'hello-too-large'
  | 'hello-timeout'
  | 'backend-invalid'
  | 'no-endpoints'
  | 'connect-failed'
  | 'proxy-header-invalid'
  | 'pg-cancel-unroutable'
  | 'max-connections'
  | 'rate-limited'
  | 'tls-handshake-failed'
  | 'tls-handshake-timeout'
  | 'internal-error';

export interface ConnectionRecord {
  connId: number;
  /** Real client `ip:port`, after a PROXY header from a trusted peer. */
  client: string;
  /** Bind `address:port` the client connected to. */
  bind: string;
  /** Listener id `namespace/gateway/listener`, once chosen. */
  listener: string | null;
  sni: string | null;
  alpn: string[] | null;
  /** `Kind/namespace/name`. */
  route: string | null;
  backend: string | null;
  endpoint: string | null;
  /** Bytes read from the client (client → backend, preambles included). */
  bytesIn: number;
  /** Bytes written to the client (backend → client). */
  bytesOut: number;
  durationMs: number;
  /** Accept to complete ClientHello; null when no hello was read (tcp binds, early rejects). */
  helloMs: number | null;
  end: EndReason;
  /** Extra cause for rejects and resets (error code, parser detail); never payload or secrets. */
  detail: string | null;
}

export function logConnection(logger: Logger, record: ConnectionRecord): void {
  logger.info(record, 'connection');
}

export function hostPort(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return '-';
  return address.includes(':') ? `[${address}]:${port ?? 0}` : `${address}:${port ?? 0}`;
}
