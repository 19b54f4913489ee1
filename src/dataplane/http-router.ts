/**
 * HTTP routing for one request: listener by Host (plain HTTP, listener isolation) or by SNI (HTTPS, with 421 for a
 * Host of another listener), then virtual host, then the first rule (already in Gateway API precedence order) whose
 * path, method, headers and query parameters all match. Compiled once per TableListener (WeakMap).
 *
 * Virtual hosts: the exact one, then matching wildcards longest suffix first, then `*`. A Host that matches several
 * virtual hosts tries them in that order and the first with a matching rule wins: Gateway API ranks a rule by its
 * hostname's specificity first, so a wildcard route still serves paths the exact route does not have.
 */
import type { HttpMatch, HttpRule, HttpVirtualHost, TableListener } from '../table/types.ts';
import { compileSafeRegex, type SafeRegex } from './safe-regex.ts';
import { HostMatcher } from './sni-router.ts';

/** What a request looks like to the matcher. `path` is normalized (see normalizePath), without the query. */
export interface MatchInput {
  /** Lower case, no port, no trailing dot. */
  host: string;
  path: string;
  method: string;
  /** Lower-case names; repeated headers joined with `, ` (Node's IncomingMessage.headers form). */
  headers: Record<string, string | string[] | undefined>;
  /** Query parameters (names case-sensitive); the first value of a repeated name is matched. */
  query: URLSearchParams;
}

/** One per compiled rule, returned as is by every match: never modify it. */
export interface RouteHit {
  rule: HttpRule;
  vhost: HttpVirtualHost;
  /** For PathPrefix matches: the prefix that matched, without its trailing slash (`''` for `/`). */
  prefix: string | null;
  /** `HTTPRoute/ns/name` (or `Ingress/ns/name`): the access log's and the metrics' route, built once. */
  routeId: string;
}

interface CompiledRule {
  hit: RouteHit;
  test(m: MatchInput): boolean;
}

interface CompiledVhost {
  vhost: HttpVirtualHost;
  rules: CompiledRule[];
}

export interface CompiledRouter {
  match(m: MatchInput): RouteHit | null;
  /** Rules that can never match (bad regular expressions), for a warning at compile time. */
  readonly errors: string[];
}

const cache = new WeakMap<TableListener, CompiledRouter>();

export function routerFor(listener: TableListener): CompiledRouter {
  let r = cache.get(listener);
  if (r === undefined) {
    r = compileRouter(listener.http ?? []);
    cache.set(listener, r);
  }
  return r;
}

export function compileRouter(vhosts: HttpVirtualHost[]): CompiledRouter {
  const errors: string[] = [];
  const exact = new Map<string, CompiledVhost>();
  const wildcard = new Map<string, CompiledVhost>();
  let any: CompiledVhost | undefined;
  for (const vhost of vhosts) {
    const cv: CompiledVhost = { vhost, rules: vhost.rules.map((r) => compileRule(r, vhost, errors)) };
    const name = vhost.hostname.toLowerCase();
    if (name === '*') any ??= cv;
    else if (name.startsWith('*.')) {
      if (!wildcard.has(name.slice(2))) wildcard.set(name.slice(2), cv);
    } else if (!exact.has(name)) exact.set(name, cv);
  }

  const tryVhost = (cv: CompiledVhost | undefined, m: MatchInput): RouteHit | null => {
    if (cv === undefined) return null;
    for (const cr of cv.rules) if (cr.test(m)) return cr.hit;
    return null;
  };

  return {
    errors,
    match(m: MatchInput): RouteHit | null {
      const hit = tryVhost(exact.get(m.host), m);
      if (hit !== null) return hit;
      if (wildcard.size > 0) {
        // Longest suffix first: walk the dots left to right.
        for (
          let dot = m.host.indexOf('.');
          dot !== -1 && dot < m.host.length - 1;
          dot = m.host.indexOf('.', dot + 1)
        ) {
          const h = tryVhost(wildcard.get(m.host.substring(dot + 1)), m);
          if (h !== null) return h;
        }
      }
      return tryVhost(any, m);
    },
  };
}

const NEVER = (): boolean => false;

function compileRule(rule: HttpRule, vhost: HttpVirtualHost, errors: string[]): CompiledRule {
  const routeId = `${rule.route.kind}/${rule.route.namespace}/${rule.route.name}`;
  const where = `${routeId} rule ${rule.ruleIndex}`;
  const checks: ((m: MatchInput) => boolean)[] = [];
  const match: HttpMatch = rule.match;
  let prefix: string | null = null;
  const done = (test: (m: MatchInput) => boolean): CompiledRule => ({
    hit: { rule, vhost, prefix, routeId },
    test,
  });
  const regex = (src: string, what: string): SafeRegex | null => {
    const re = compileSafeRegex(src);
    if ('error' in re) {
      errors.push(`${where}: ${what} ${JSON.stringify(src)}: ${re.error}`);
      return null;
    }
    return re;
  };

  const p = match.path;
  if (p.type === 'Exact') {
    const v = p.value;
    checks.push((m) => m.path === v);
  } else if (p.type === 'PathPrefix') {
    prefix = trimTrailingSlashes(p.value);
    const pre = prefix;
    if (pre !== '') checks.push((m) => pathHasPrefix(m.path, pre));
  } else {
    const re = regex(p.value, 'path');
    if (re === null) return done(NEVER);
    checks.push((m) => re.test(m.path));
  }

  if (match.method !== null) {
    const method = match.method.toUpperCase();
    checks.push((m) => m.method === method);
  }

  // Gateway API: of several matches on the same header or query name, only the first counts.
  const seenHeaders = new Set<string>();
  for (const h of match.headers) {
    const name = h.name.toLowerCase();
    if (seenHeaders.has(name)) continue;
    seenHeaders.add(name);
    if (h.type === 'Exact') {
      const v = h.value;
      checks.push((m) => headerValue(m.headers, name) === v);
    } else {
      const re = regex(h.value, `header ${name}`);
      if (re === null) return done(NEVER);
      checks.push((m) => {
        const v = headerValue(m.headers, name);
        return v !== undefined && re.test(v);
      });
    }
  }

  const seenQuery = new Set<string>();
  for (const q of match.queryParams) {
    if (seenQuery.has(q.name)) continue;
    seenQuery.add(q.name);
    const name = q.name;
    if (q.type === 'Exact') {
      const v = q.value;
      checks.push((m) => m.query.get(name) === v);
    } else {
      const re = regex(q.value, `query ${name}`);
      if (re === null) return done(NEVER);
      checks.push((m) => {
        const v = m.query.get(name);
        return v !== null && re.test(v);
      });
    }
  }

  const test =
    checks.length === 0
      ? () => true
      : (m: MatchInput) => {
          for (const c of checks) if (!c(m)) return false;
          return true;
        };
  return done(test);
}

function headerValue(headers: MatchInput['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** `/foo/` and `/foo` are the same prefix (Gateway API: a trailing `/` is ignored); `/` becomes `''`. */
export function trimTrailingSlashes(p: string): string {
  let end = p.length;
  while (end > 0 && p.charCodeAt(end - 1) === 47) end--;
  return p.slice(0, end);
}

/** Prefix match on path-segment boundaries: `/foo` matches `/foo`, `/foo/`, `/foo/bar`, not `/foobar`. */
export function pathHasPrefix(path: string, prefix: string): boolean {
  if (prefix === '') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47;
}

const UNRESERVED = /%(2[DdEe]|5[Ff]|7[Ee]|[46][1-9A-Fa-f]|[57][0-9Aa]|3[0-9])/g;

/**
 * RFC 3986 normalization of a request path before matching (and forwarding, so the backend sees what was routed):
 * percent-encoded unreserved characters are decoded (`%2e` is `.`), then `.` and `..` segments are removed. Other
 * escapes (`%2F`) stay encoded; repeated slashes are kept.
 */
export function normalizePath(raw: string): string {
  let p = raw.includes('%')
    ? raw.replace(UNRESERVED, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    : raw;
  if (!p.startsWith('/')) p = `/${p}`;
  if (!p.includes('/.')) return p;
  const out: string[] = [];
  const segs = p.split('/');
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i]!;
    const last = i === segs.length - 1;
    if (s === '.') {
      if (last) out.push('');
    } else if (s === '..') {
      out.pop();
      if (last) out.push('');
    } else out.push(s);
  }
  return `/${out.join('/')}`;
}

/** `Host` / `:authority` → lower case, without port and trailing dot. IPv6 literals keep their brackets. */
export function normalizeHost(authority: string): string {
  let h = authority;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    h = end === -1 ? h : h.slice(0, end + 1);
  } else {
    const colon = h.lastIndexOf(':');
    if (colon !== -1) h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h.toLowerCase();
}

export type ListenerChoice =
  | { listener: TableListener; reject?: undefined }
  | { listener?: undefined; reject: 'no-listener' | 'misdirected' };

const listenerCache = new WeakMap<TableListener[], HostMatcher<TableListener>>();

function listenerMatcher(listeners: TableListener[]): HostMatcher<TableListener> {
  let m = listenerCache.get(listeners);
  if (m === undefined) {
    m = new HostMatcher<TableListener>();
    for (const l of listeners) m.add(l.hostname, l);
    listenerCache.set(listeners, m);
  }
  return m;
}

/**
 * The listener a request belongs to. Plain HTTP: the most specific listener of the bind whose hostname matches the
 * Host (listener isolation: no fallback to a less specific one). HTTPS: the listener chosen by SNI, unless the Host
 * belongs to a listener with another hostname (421 Misdirected Request).
 */
export function chooseListener(
  scheme: 'http' | 'https',
  sniListener: TableListener,
  bindListeners: TableListener[],
  host: string,
): ListenerChoice {
  if (bindListeners.length === 0) return { listener: sniListener };
  const byHost = listenerMatcher(bindListeners).lookup(host);
  if (scheme === 'http') return byHost === undefined ? { reject: 'no-listener' } : { listener: byHost };
  if (byHost !== undefined && byHost !== sniListener && byHost.hostname !== sniListener.hostname) {
    return { reject: 'misdirected' };
  }
  return { listener: sniListener };
}
