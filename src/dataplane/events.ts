/** Synchronous hooks the data plane calls so metrics can count without the data plane knowing about them. */
import type { ConnectionRecord } from './conn-log.ts';

export interface DataPlaneEvents {
  /** A socket was accepted on `bind` (`address:port`). */
  connectionOpened(bind: string): void;
  /**
   * The connection was matched to `route` (`Kind/namespace/name`); its record will carry the same route.
   * At most once per connection, before connectionClosed.
   */
  connectionRouted(route: string): void;
  /** Exactly once per opened connection, with the record that is also logged. */
  connectionClosed(record: ConnectionRecord): void;
  /** A complete ClientHello was read, `ms` after accept. */
  helloParsed(ms: number, sni: string | null): void;
  /** A connect to `endpoint` failed (it may be retried elsewhere). */
  connectFailed(endpoint: string, code: string): void;
  /** An endpoint changed health state (passive or active). */
  healthChanged(endpoint: string, healthy: boolean): void;
  /** A Postgres CancelRequest arrived; it carries no SNI and cannot be routed. */
  pgCancelRequest(): void;
  /** A bind could not listen (EADDRINUSE, EACCES, ...). */
  bindFailed(bind: string, code: string): void;
}

const noop = (): void => {};

export const NOOP_EVENTS: DataPlaneEvents = {
  connectionOpened: noop,
  connectionRouted: noop,
  connectionClosed: noop,
  helloParsed: noop,
  connectFailed: noop,
  healthChanged: noop,
  pgCancelRequest: noop,
  bindFailed: noop,
};

/** Fills the hooks a partial implementation leaves out with no-ops. */
export function withDefaults(events: Partial<DataPlaneEvents> | undefined): DataPlaneEvents {
  return events === undefined ? NOOP_EVENTS : { ...NOOP_EVENTS, ...events };
}
