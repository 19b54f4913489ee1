/** Compiles a Bind into an SNI lookup: exact, then longest wildcard suffix, then catch-all; hash probes only. */
import { hashStep, StringTable } from '../table/string-table.ts';
import type { Bind, SniRoute, TableListener } from '../table/types.ts';

export type RouteReject = 'no-sni' | 'no-listener' | 'no-route';

/** `route` is null only for listeners that carry no SNI routes (terminate-https, http): the caller hands off. */
export type RouteMatch =
  | { listener: TableListener; route: SniRoute | null; reject?: undefined }
  | { listener?: TableListener; route?: undefined; reject: RouteReject };

export interface CompiledBind {
  readonly bind: Bind;
  match(sni: string | null): RouteMatch;
  /** `listenerId|Kind/ns/name` of every route, to find connections whose route disappeared in a swap. */
  readonly routeKeys: ReadonlySet<string>;
}

const EXACT = 0;
const WILDCARD = 1;
const DOT = 46;

/** Per process: hostnames come from route authors and SNI from anyone, so bucket positions must not be predictable. */
const SEED = (Math.random() * 0x100000000) | 0;

/** Label boundaries of the name being looked up: (start of suffix, hash state) pairs. Lookups never nest. */
let boundaries = new Int32Array(64);

/**
 * Host → value with Gateway API precedence. `*.suffix` matches one or more labels in front of
 * `suffix` but not `suffix` itself; the catch-all (`*` or null) matches anything, including no SNI.
 *
 * Exact names and wildcard suffixes share one StringTable (tagged): a lookup hashes the name once, right to
 * left, which yields the hash of every parent domain on the way, then probes the exact name and only those
 * suffixes whose length some wildcard has (usually one probe in all). A hit reads one 64-byte record (hash,
 * length, characters) and its value: two cache lines even with 100k hostnames, fetched together; no
 * allocation, no V8 string-table lookup.
 */
export class HostMatcher<T> {
  readonly #keys: StringTable<T>;
  #wildcards = 0;
  #any: T | undefined;

  /** `expected`: how many hostnames will be added (sizes the table once instead of growing it). */
  constructor(expected = 0) {
    this.#keys = new StringTable(SEED, expected);
  }

  /** First insertion wins: inputs are sorted most specific first, duplicates are already resolved. */
  add(hostname: string | null, value: T): void {
    if (hostname === null || hostname === '*') {
      if (this.#any === undefined) this.#any = value;
      return;
    }
    const name = hostname.toLowerCase();
    if (name.startsWith('*.')) {
      if (this.#keys.add(name, value, WILDCARD, 2)) this.#wildcards++;
    } else {
      this.#keys.add(name, value, EXACT);
    }
  }

  get catchAll(): T | undefined {
    return this.#any;
  }

  /** `name` must already be lower case. Exact first, then the longest wildcard suffix, then the catch-all. */
  lookup(name: string): T | undefined {
    const keys = this.#keys;
    const len = name.length;
    const exact = keys.mayHaveLength(len, EXACT);
    const wild = this.#wildcards > 0;
    if (!exact && !wild) return this.#any;
    let h = keys.seed;
    let n = 0;
    for (let i = len - 1; i >= 0; i--) {
      const c = name.charCodeAt(i);
      // After a dot, h is the hash of the parent domain name[i + 1, len) (never empty: `*.x` needs a label).
      if (c === DOT && wild && i + 1 < len && keys.mayHaveLength(len - i - 1, WILDCARD)) {
        if (2 * n + 2 > boundaries.length) {
          const bigger = new Int32Array(boundaries.length * 2);
          bigger.set(boundaries);
          boundaries = bigger;
        }
        boundaries[2 * n] = i + 1;
        boundaries[2 * n + 1] = h;
        n++;
      }
      h = hashStep(h, c);
    }
    if (exact) {
      const hit = keys.getHashed(name, 0, len, EXACT, h);
      if (hit !== undefined) return hit;
    }
    // Recorded right to left: the last boundary is the longest suffix.
    for (let k = n - 1; k >= 0; k--) {
      const hit = keys.getHashed(name, boundaries[2 * k]!, len, WILDCARD, boundaries[2 * k + 1]!);
      if (hit !== undefined) return hit;
    }
    return this.#any;
  }
}

interface CompiledListener {
  listener: TableListener;
  routes: HostMatcher<SniRoute>;
  /** terminate-https and http listeners are matched by listener hostname alone. */
  routeless: boolean;
}

/** `Kind/namespace/name` of a route, as logged and counted. */
function routeName(route: SniRoute): string {
  return `${route.route.kind}/${route.route.namespace}/${route.route.name}`;
}

/** What a connection's routeKey is compared with on a swap (the one place that spells its format). */
export function routeKey(listenerId: string, route: SniRoute, name = routeName(route)): string {
  return `${listenerId}|${name}`;
}

export interface RouteNames {
  listenerId: string;
  /** routeKey(listenerId, route) */
  key: string;
  /** `Kind/namespace/name`, as logged and counted. */
  name: string;
}

const names = new WeakMap<SniRoute, RouteNames>();

/**
 * routeKey and the route's name, made on a route's first connection and shared by the next ones: built per
 * connection they were ~6 concatenated strings (~200 bytes) held by every open connection.
 */
export function routeNames(listenerId: string, route: SniRoute): RouteNames {
  let n = names.get(route);
  if (n === undefined || n.listenerId !== listenerId) {
    const name = routeName(route);
    n = { listenerId, key: routeKey(listenerId, route, name), name };
    names.set(route, n);
  }
  return n;
}

export function compileBind(bind: Bind): CompiledBind {
  const listeners = new HostMatcher<CompiledListener>(bind.listeners.length);
  for (const listener of bind.listeners) {
    const routes = new HostMatcher<SniRoute>(listener.routes.length);
    for (const r of listener.routes) routes.add(r.hostname, r);
    const routeless = listener.mode === 'terminate-https' || listener.mode === 'http';
    listeners.add(listener.hostname, { listener, routes, routeless });
  }
  // Only a swap with drainGraceMs and open connections reads the keys: build them then, not on every apply.
  let keys: Set<string> | undefined;
  const routeKeys = (): ReadonlySet<string> => {
    if (keys === undefined) {
      keys = new Set();
      for (const listener of bind.listeners)
        for (const r of listener.routes) keys.add(routeKey(listener.id, r));
    }
    return keys;
  };

  const matchIn = (cl: CompiledListener, name: string | null): RouteMatch => {
    if (cl.routeless) return { listener: cl.listener, route: null };
    const route = name === null ? cl.routes.catchAll : cl.routes.lookup(name);
    if (route !== undefined) return { listener: cl.listener, route };
    return { listener: cl.listener, reject: name === null ? 'no-sni' : 'no-route' };
  };

  // tcp binds never peek: the single catch-all listener and its `*` route take everything.
  if (bind.protocol === 'tcp') {
    return {
      bind,
      get routeKeys() {
        return routeKeys();
      },
      match: () => {
        const cl = listeners.catchAll;
        return cl === undefined ? { reject: 'no-listener' } : matchIn(cl, null);
      },
    };
  }

  // Plain HTTP is routed by Host, not SNI: the handler gets the bind's first listener.
  if (bind.protocol === 'http') {
    const first = bind.listeners[0];
    const m: RouteMatch = first === undefined ? { reject: 'no-listener' } : { listener: first, route: null };
    return {
      bind,
      get routeKeys() {
        return routeKeys();
      },
      match: () => m,
    };
  }

  return {
    bind,
    get routeKeys() {
      return routeKeys();
    },
    match(sni: string | null): RouteMatch {
      if (sni === null || sni === '') {
        const cl = listeners.catchAll;
        return cl === undefined ? { reject: 'no-sni' } : matchIn(cl, null);
      }
      const name = normalize(sni);
      // Listener isolation: once a listener is chosen, a miss inside it never falls back.
      const cl = listeners.lookup(name);
      return cl === undefined ? { reject: 'no-listener' } : matchIn(cl, name);
    },
  };
}

/** SNI is ASCII (A-labels); lower-case only when needed and drop a trailing dot some clients send. */
function normalize(sni: string): string {
  let name = sni;
  if (name.endsWith('.')) name = name.slice(0, -1);
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) return name.toLowerCase();
  }
  return name;
}
