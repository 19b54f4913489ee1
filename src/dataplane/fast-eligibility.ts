/** Which routed connections the native fast path may carry alone: the rule fast-path.ts builds tables by and `snigate explain` narrates. */
import { isIP } from 'node:net';
import type { Bind, SniRoute, TableListener } from '../table/types.ts';

/**
 * Binds with more listener and route hostnames than this keep the JavaScript path: building a fast plan
 * resolves each key through the JavaScript router and lists each route's endpoints, ~2-4 us per key (45k
 * wildcard routes: swap 160 ms, translate + swap 0.38 s), which every reload would pay.
 */
export const MAX_FAST_KEYS = 50_000;

/** Why the port's connections never take the fast path, or null when some can. */
export function fastPathBindBlocker(bind: Bind): string | null {
  if (bind.protocol !== 'tls') return `the port is ${bind.protocol}, not TLS`;
  if (bind.client.proxyProtocolTrustedCidrs.length > 0) return 'the port accepts PROXY protocol in';
  if (bind.client.maxConnections > 0) return 'the port has a connection limit (maxConnections)';
  let hostnames = 0;
  for (const l of bind.listeners) hostnames += l.routes.length + 1;
  if (hostnames > MAX_FAST_KEYS) return `the port has more than ${MAX_FAST_KEYS} hostnames`;
  return null;
}

/**
 * Why a connection the router gives to `route` of `listener` is not carried by the fast path, or null when it
 * is a plain passthrough: a passthrough listener without rate limits, one weighted backend, valid, IP endpoints
 * only (the pump does no DNS), no PROXY out, no lifetime limit.
 */
export function fastPathRouteBlocker(listener: TableListener, route: SniRoute | null): string | null {
  if (route === null || listener.mode !== 'passthrough') return `the listener is ${listener.mode}`;
  if (listener.connectionRate !== undefined) return 'the listener has a per-client connection rate limit';
  const backends = route.backends.backends;
  if (backends.length !== 1) return `the route has ${backends.length} backends (the fast path takes one)`;
  const b = backends[0]!;
  if (b.weight <= 0) return 'its backend has weight 0';
  if (b.invalid !== undefined) return 'its backend is invalid';
  if (b.endpoints.length === 0) return 'its backend has no ready endpoints';
  if (!b.endpoints.every((e) => isIP(e.address) !== 0)) return 'an endpoint is a hostname';
  if (b.policy.proxyProtocol !== null) return 'its backend is sent a PROXY header';
  if (b.policy.maxLifetimeMs > 0) return 'its backend policy limits the connection lifetime';
  return null;
}
