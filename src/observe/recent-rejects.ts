/**
 * Live traffic for the dashboard: the last N rejected or failed connections (a ring buffer) and
 * counters per bind, per route and per backend, fed by the data plane's events.
 *
 * Cheap per event: counters are keyed by configuration strings (binds, routes, backends), so their
 * objects are made once per key and mutated in place; the only per-connection allocation is the
 * ring entry of a rejected connection, and the ring never grows past its capacity. Client-chosen
 * strings (the SNI, the parser's detail) are kept truncated and must be escaped by whoever shows them.
 */
import type { ConnectionRecord, EndReason, RejectReason } from '../dataplane/conn-log.ts';
import type { DataPlaneEvents } from '../dataplane/events.ts';

/** Every reject reason (the compiler checks the list is complete), plus failures after routing. */
const REJECT_REASONS: Record<RejectReason, true> = {
  'no-sni': true,
  'no-listener': true,
  'no-route': true,
  'not-tls': true,
  'malformed-hello': true,
  'hello-too-large': true,
  'hello-timeout': true,
  'backend-invalid': true,
  'no-endpoints': true,
  'connect-failed': true,
  'proxy-header-invalid': true,
  'pg-cancel-unroutable': true,
  'max-connections': true,
  'rate-limited': true,
  'tls-handshake-failed': true,
  'tls-handshake-timeout': true,
  'internal-error': true,
};

/** The end reasons the ring records: rejects, and a backend that reset an established stream. */
export function isRecordedFailure(end: EndReason): boolean {
  return Object.hasOwn(REJECT_REASONS, end) || end === 'backend-reset';
}

/** Longest DNS name; a longer SNI is an attack or garbage, and is cut here. */
export const MAX_SNI = 253;
const MAX_DETAIL = 200;
/** Counter maps are keyed by configuration, which churns: past this many keys, new ones are folded. */
const MAX_KEYS = 5000;
const OTHER = '(other)';

export interface RejectEntry {
  /** Epoch ms. */
  at: number;
  reason: EndReason;
  bind: string;
  listener: string | null;
  route: string | null;
  /** Client-chosen, truncated to MAX_SNI characters. */
  sni: string | null;
  client: string;
  detail: string | null;
}

export interface Counters {
  /** Connections ended (any reason). */
  total: number;
  /** Of those, rejected or failed (isRecordedFailure). */
  failed: number;
  bytesIn: number;
  bytesOut: number;
  /** Epoch ms of the last connection end, 0 when none. */
  lastAt: number;
  /** Routed and not ended yet. */
  open: number;
}

export interface BindCounters {
  bind: string;
  /** Open now. */
  active: number;
  accepted: number;
}

export interface LiveTrafficOptions {
  /** Ring size (default 200). */
  capacity?: number;
  now?: () => number;
}

const newCounters = (): Counters => ({ total: 0, failed: 0, bytesIn: 0, bytesOut: 0, lastAt: 0, open: 0 });

export class LiveTraffic
  implements Pick<DataPlaneEvents, 'connectionOpened' | 'connectionRouted' | 'connectionClosed'>
{
  readonly #ring: (RejectEntry | undefined)[];
  #next = 0;
  #size = 0;
  readonly #now: () => number;
  readonly #binds = new Map<string, BindCounters>();
  readonly #routes = new Map<string, Counters>();
  /** Route, then backend: no key string is built per connection. */
  readonly #backends = new Map<string, Map<string, Counters>>();
  #backendKeys = 0;
  readonly #reasons = new Map<EndReason, number>();

  constructor(opts: LiveTrafficOptions = {}) {
    const capacity = Math.max(1, Math.floor(opts.capacity ?? 200));
    this.#ring = new Array<RejectEntry | undefined>(capacity);
    this.#now = opts.now ?? Date.now;
  }

  get capacity(): number {
    return this.#ring.length;
  }

  #bind(bind: string): BindCounters {
    let b = this.#binds.get(bind);
    if (b === undefined) {
      const key = this.#binds.size < MAX_KEYS ? bind : OTHER;
      b = this.#binds.get(key);
      if (b === undefined) {
        b = { bind: key, active: 0, accepted: 0 };
        this.#binds.set(key, b);
      }
    }
    return b;
  }

  readonly connectionOpened = (bind: string): void => {
    const b = this.#bind(bind);
    b.active++;
    b.accepted++;
  };

  readonly connectionRouted = (route: string): void => {
    counter(this.#routes, route).open++;
  };

  readonly connectionClosed = (r: ConnectionRecord): void => {
    const now = this.#now();
    const b = this.#bind(r.bind);
    if (b.active > 0) b.active--;
    const failed = isRecordedFailure(r.end);
    if (r.route !== null) {
      const c = counter(this.#routes, r.route);
      if (c.open > 0) c.open--;
      add(c, r, failed, now);
      if (r.backend !== null) add(this.#backendCounter(r.route, r.backend), r, failed, now);
    }
    if (failed) {
      this.#reasons.set(r.end, (this.#reasons.get(r.end) ?? 0) + 1);
      this.#ring[this.#next] = {
        at: now,
        reason: r.end,
        bind: r.bind,
        listener: r.listener,
        route: r.route,
        sni: r.sni === null ? null : r.sni.slice(0, MAX_SNI),
        client: r.client,
        detail: r.detail === null ? null : r.detail.slice(0, MAX_DETAIL),
      };
      this.#next = (this.#next + 1) % this.#ring.length;
      if (this.#size < this.#ring.length) this.#size++;
    }
  };

  /** Newest first, at most `limit`. */
  rejects(limit = this.#ring.length): RejectEntry[] {
    const out: RejectEntry[] = [];
    const n = Math.min(limit, this.#size);
    for (let i = 1; i <= n; i++) {
      const e = this.#ring[(this.#next - i + this.#ring.length) % this.#ring.length];
      if (e !== undefined) out.push({ ...e });
    }
    return out;
  }

  /** Failures recorded since start, by reason (the ring only keeps the last few). */
  reasons(): Record<string, number> {
    return Object.fromEntries(this.#reasons);
  }

  binds(): BindCounters[] {
    return [...this.#binds.values()].map((b) => ({ ...b }));
  }

  /** Counters of `Kind/namespace/name`, or null when no connection of that route ended yet. */
  route(route: string): Counters | null {
    const c = this.#routes.get(route);
    return c === undefined ? null : { ...c };
  }

  backend(route: string, backend: string): Counters | null {
    const c = this.#backends.get(route)?.get(backend);
    return c === undefined ? null : { ...c };
  }

  /** As counter(), over the (route, backend) pairs: past MAX_KEYS pairs, new ones share one (other) entry. */
  #backendCounter(route: string, backend: string): Counters {
    const c = this.#backends.get(route)?.get(backend);
    if (c !== undefined) return c;
    const full = this.#backendKeys >= MAX_KEYS;
    const r = full ? OTHER : route;
    const b = full ? OTHER : backend;
    let inner = this.#backends.get(r);
    if (inner === undefined) {
      inner = new Map();
      this.#backends.set(r, inner);
    }
    let out = inner.get(b);
    if (out === undefined) {
      out = newCounters();
      inner.set(b, out);
      this.#backendKeys++;
    }
    return out;
  }

  routes(): ({ route: string } & Counters)[] {
    return [...this.#routes].map(([route, c]) => ({ route, ...c }));
  }
}

function counter(map: Map<string, Counters>, key: string): Counters {
  let c = map.get(key);
  if (c === undefined) {
    const k = map.size < MAX_KEYS ? key : OTHER;
    c = map.get(k);
    if (c === undefined) {
      c = newCounters();
      map.set(k, c);
    }
  }
  return c;
}

function add(c: Counters, r: ConnectionRecord, failed: boolean, now: number): void {
  c.total++;
  if (failed) c.failed++;
  c.bytesIn += r.bytesIn;
  c.bytesOut += r.bytesOut;
  c.lastAt = now;
}

/**
 * One events object that calls each part's hooks in order (the DataPlane takes exactly one).
 * A hook that throws does not stop the others; the first error is rethrown after all ran.
 */
export function composeEvents(...parts: Partial<DataPlaneEvents>[]): Partial<DataPlaneEvents> {
  const names = [
    'connectionOpened',
    'connectionRouted',
    'connectionClosed',
    'helloParsed',
    'connectFailed',
    'healthChanged',
    'pgCancelRequest',
    'bindFailed',
  ] as const satisfies readonly (keyof DataPlaneEvents)[];
  const out: Record<string, (...args: never[]) => void> = {};
  for (const name of names) {
    const hooks: ((...a: unknown[]) => void)[] = [];
    for (const p of parts) {
      const h = p[name] as ((...a: unknown[]) => void) | undefined;
      // Bound, so hooks written as ordinary methods keep their `this`.
      if (h !== undefined) hooks.push(h.bind(p));
    }
    if (hooks.length === 0) continue;
    if (hooks.length === 1) {
      out[name] = hooks[0]!;
      continue;
    }
    // Two fixed parameters (no hook takes more): no rest array and spread on calls made per connection.
    out[name] = (a?: unknown, b?: unknown) => {
      let failed = false;
      let first: unknown;
      for (const h of hooks) {
        try {
          h(a, b);
        } catch (e) {
          if (!failed) first = e;
          failed = true;
        }
      }
      if (failed) throw first;
    };
  }
  return out as Partial<DataPlaneEvents>;
}
