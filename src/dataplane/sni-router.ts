/** Compiles a Bind into an SNI lookup: exact, then longest wildcard suffix, then catch-all; Maps only. */
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

/**
 * Host → value with Gateway API precedence. `*.suffix` matches one or more labels in front of
 * `suffix` but not `suffix` itself; the catch-all (`*` or null) matches anything, including no SNI.
 */
export class HostMatcher<T> {
  readonly #exact = new Map<string, T>();
  readonly #wildcard = new Map<string, T>();
  #any: T | undefined;

  /** First insertion wins: inputs are sorted most specific first, duplicates are already resolved. */
  add(hostname: string | null, value: T): void {
    if (hostname === null || hostname === '*') {
      if (this.#any === undefined) this.#any = value;
      return;
    }
    const name = hostname.toLowerCase();
    if (name.startsWith('*.')) {
      const suffix = name.slice(2);
      if (!this.#wildcard.has(suffix)) this.#wildcard.set(suffix, value);
    } else if (!this.#exact.has(name)) {
      this.#exact.set(name, value);
    }
  }

  get catchAll(): T | undefined {
    return this.#any;
  }

  /** `name` must already be lower case. Walking suffixes left to right finds the longest first. */
  lookup(name: string): T | undefined {
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    if (this.#wildcard.size > 0) {
      let dot = name.indexOf('.');
      while (dot !== -1 && dot < name.length - 1) {
        const hit = this.#wildcard.get(name.substring(dot + 1));
        if (hit !== undefined) return hit;
        dot = name.indexOf('.', dot + 1);
      }
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

export function routeKey(listenerId: string, route: SniRoute): string {
  return `${listenerId}|${route.route.kind}/${route.route.namespace}/${route.route.name}`;
}

export function compileBind(bind: Bind): CompiledBind {
  const listeners = new HostMatcher<CompiledListener>();
  const routeKeys = new Set<string>();
  for (const listener of bind.listeners) {
    const routes = new HostMatcher<SniRoute>();
    for (const r of listener.routes) {
      routes.add(r.hostname, r);
      routeKeys.add(routeKey(listener.id, r));
    }
    const routeless = listener.mode === 'terminate-https' || listener.mode === 'http';
    listeners.add(listener.hostname, { listener, routes, routeless });
  }

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
      routeKeys,
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
    return { bind, routeKeys, match: () => m };
  }

  return {
    bind,
    routeKeys,
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
