/** Test-only builders for HTTP listeners, virtual hosts, rules and backends, and a fake RequestContext. */
import type {
  Endpoint,
  HttpBackend,
  HttpFilter,
  HttpMatch,
  HttpRule,
  HttpVirtualHost,
  ListenerMode,
  TableListener,
} from '../table/types.ts';
import { DEFAULT_BACKEND_POLICY } from '../table/types.ts';
import type { RequestContext } from './http-types.ts';

export function httpBackend(
  id: string,
  endpoints: Endpoint[],
  opts: Partial<Omit<HttpBackend, 'id' | 'endpoints'>> = {},
): HttpBackend {
  return {
    id,
    weight: 1,
    endpoints,
    filters: [],
    protocol: 'http',
    ...opts,
    policy: { ...DEFAULT_BACKEND_POLICY, healthCheck: null, connectTimeoutMs: 1000, ...opts.policy },
  };
}

let ruleCounter = 0;

export function rule(
  match: Partial<HttpMatch> = {},
  backends: HttpBackend[] = [],
  opts: Partial<Omit<HttpRule, 'match' | 'backends'>> & { name?: string } = {},
): HttpRule {
  const { name, ...rest } = opts;
  return {
    route: { kind: 'HTTPRoute', namespace: 'ns', name: name ?? `r${ruleCounter++}` },
    ruleIndex: 0,
    filters: [] as HttpFilter[],
    timeouts: { requestMs: 0, backendRequestMs: 0 },
    ...rest,
    match: {
      path: { type: 'PathPrefix', value: '/' },
      headers: [],
      queryParams: [],
      method: null,
      ...match,
    },
    backends,
  };
}

export function vhost(hostname: string, rules: HttpRule[]): HttpVirtualHost {
  return { hostname, rules };
}

export function httpListener(
  name: string,
  hostname: string | null,
  vhosts: HttpVirtualHost[],
  mode: ListenerMode = 'http',
): TableListener {
  return {
    id: `ns/gw/${name}`,
    gateway: { namespace: 'ns', name: 'gw' },
    name,
    hostname,
    mode,
    routes: [],
    http: vhosts,
  };
}

export function fakeCtx(listener: TableListener, over: Partial<RequestContext> = {}): RequestContext {
  return {
    connId: 1,
    listener,
    bindListeners: [listener],
    scheme: 'http',
    client: { address: '127.0.0.1', port: 40000 },
    sni: null,
    clientCert: null,
    localPort: 80,
    ...over,
  };
}
