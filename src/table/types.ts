/** The RoutingTable: plain data that translate() produces and the data plane compiles. No functions, no I/O. */

/** Everything the data plane serves. Binds are sorted by port, then address. */
export interface RoutingTable {
  binds: Bind[];
}

/**
 * One socket the data plane listens on. Gateways with `spec.addresses` (type IPAddress) bind those
 * addresses; the rest share the run's default address (`address: null`, from `--address`).
 */
export interface Bind {
  address: string | null;
  port: number;
  /**
   * What the first bytes of a connection decide:
   * - `tls`: read the ClientHello, then route by SNI (TLS Passthrough/Terminate and HTTPS listeners);
   * - `http`: plain HTTP (routed by Host);
   * - `tcp`: no peek, the single TCPRoute of the port.
   */
  protocol: 'tls' | 'http' | 'tcp';
  /** Most specific hostname first: exact names, then wildcards by length, then `hostname: null`. */
  listeners: TableListener[];
  client: ClientSettings;
}

/** Per-bind settings for the part of a connection's life before a listener is chosen. */
export interface ClientSettings {
  /** Give up on a ClientHello that has not fully arrived after this long. */
  helloTimeoutMs: number;
  /** Largest ClientHello handshake message accepted (bytes, without record headers). */
  helloMaxBytes: number;
  /** Accept a PROXY v1/v2 header, only from these CIDRs. Empty: PROXY in is off. */
  proxyProtocolTrustedCidrs: string[];
  /** 0 = unlimited. */
  maxConnections: number;
}

export type ListenerMode = 'passthrough' | 'terminate-tls' | 'terminate-https' | 'http' | 'tcp';

export interface TableListener {
  /** `namespace/gateway/listener` */
  id: string;
  gateway: { namespace: string; name: string };
  name: string;
  /** Exact (`a.example.com`), wildcard (`*.example.com`, one or more labels), or null for any. */
  hostname: string | null;
  mode: ListenerMode;
  /** Listeners of other Gateways on the same shared address, hostname and mode, served together with this one. */
  mergedWith?: string[];
  /**
   * For passthrough, terminate-tls and tcp: one entry per (intersected hostname), the winner by
   * precedence already chosen. Exact hostnames first, then wildcards longest first. tcp uses `*`.
   */
  routes: SniRoute[];
  /** For terminate-tls and terminate-https. */
  tls?: ListenerTls;
  /** For terminate-https and http: virtual hosts, most specific hostname first. */
  http?: HttpVirtualHost[];
  /** For passthrough and tcp: new connections per client address (SecurityPolicy connectionRateLimit). */
  connectionRate?: ConnectionRateSettings;
}

export interface ListenerTls {
  /** The one whose names best match the SNI (longest match) is served; the first is the default. */
  certificates: TlsCertificate[];
  /** Client-certificate validation (Gateway spec.tls.frontend), HTTPS listeners only. */
  clientValidation?: {
    /** PEM bundle of the CA certificates that sign acceptable client certificates. */
    caPem: string;
    /** AllowValidOnly: a valid client certificate is required; AllowInsecureFallback: requested, not required. */
    mode: 'AllowValidOnly' | 'AllowInsecureFallback';
  };
  /** ALPN offered: HTTPS listeners offer h2 and http/1.1; TLS Terminate listeners echo what the route needs. */
  alpn: string[];
}

/** One hostname on an HTTP(S) listener: `*` for any, `*.suffix`, or exact. */
export interface HttpVirtualHost {
  hostname: string;
  /** In precedence order (Gateway API HTTPRoute rules): the first rule whose match fits wins. */
  rules: HttpRule[];
}

export interface HttpRule {
  route: RouteRef;
  /** Index of the rule in the route's spec (for logs and metrics). */
  ruleIndex: number;
  match: HttpMatch;
  /** Filters applied to every request of the rule, in spec order. */
  filters: HttpFilter[];
  /** Weighted; an invalid backend's share gets 500, no backends at all gets 500 unless a filter answers. */
  backends: HttpBackend[];
  timeouts: { requestMs: number; backendRequestMs: number };
  /** Ingress-only knobs carried from annotations (body size, source ranges...). */
  limits?: { maxBodyBytes?: number; allowSourceRanges?: string[] };
  /**
   * L7 protection (SecurityPolicy on the Gateway, listener or route, and the ingress-nginx annotations): plain
   * data; the data plane builds the WAF engine and limiters from it.
   */
  security?: HttpSecurity;
}

/** What protects the requests of one rule; every part is optional. */
export interface HttpSecurity {
  waf?: WafSettings;
  rateLimit?: RateLimitSettings;
  /** Client addresses refused (deny) or the only ones served (allow, when non-empty); deny wins. */
  ipAccess?: { allow: string[]; deny: string[] };
  /**
   * Take the client address from X-Forwarded-For when the peer is one of these (and skip trusted hops from the
   * right). Absent: the connection's address (after any trusted PROXY header) is the client.
   */
  xffTrustedCidrs?: string[];
  /** Request body bytes (413 beyond). */
  maxBodyBytes?: number;
  /** Request header bytes: names + values + 4 per field (431 beyond). */
  maxHeaderBytes?: number;
  /** Requests in flight per client address (429 beyond); `scope` names the counter space. */
  concurrency?: { perClientIp: number; scope: string };
  /** Who configured each part, e.g. `SecurityPolicy/default/edge` (logs). */
  sources?: Record<string, string>;
}

export interface WafSettings {
  enabled: boolean;
  mode: 'block' | 'detect';
  paranoia: 1 | 2 | 3 | 4;
  anomalyThreshold: number;
  exclusions: {
    ruleIds: number[];
    paths: { pathPrefix: string; ruleIds: number[] }[];
    targets: {
      ruleIds: number[];
      variable: 'ARGS' | 'ARGS_NAMES' | 'REQUEST_COOKIES' | 'REQUEST_COOKIES_NAMES' | 'REQUEST_HEADERS';
      name: string;
      pathPrefix?: string;
    }[];
  };
}

export interface RateLimitSettings {
  /** Bucket namespace: the policy and its target (`SecurityPolicy/ns/name@Gateway/ns/gw`), or the annotated route. */
  scope: string;
  key: { by: 'client-ip' } | { by: 'route' } | { by: 'header'; name: string };
  rate: number;
  period: 'second' | 'minute';
  burst: number;
  backend: { type: 'local' } | { type: 'redis'; address: string; failMode: 'open' | 'closed' };
}

/** New connections per client address on a passthrough (or TCP) listener; over the limit they are closed. */
export interface ConnectionRateSettings {
  rate: number;
  period: 'second' | 'minute';
  burst: number;
}

export interface HttpMatch {
  path: { type: 'Exact' | 'PathPrefix' | 'RegularExpression'; value: string };
  headers: { type: 'Exact' | 'RegularExpression'; name: string; value: string }[];
  queryParams: { type: 'Exact' | 'RegularExpression'; name: string; value: string }[];
  /** Upper-case method, or null for any. */
  method: string | null;
}

export type HttpFilter =
  | { type: 'RequestHeaderModifier'; set: HeaderPair[]; add: HeaderPair[]; remove: string[] }
  | { type: 'ResponseHeaderModifier'; set: HeaderPair[]; add: HeaderPair[]; remove: string[] }
  | {
      type: 'RequestRedirect';
      scheme: string | null;
      hostname: string | null;
      port: number | null;
      path: PathModifier | null;
      statusCode: number;
    }
  | { type: 'URLRewrite'; hostname: string | null; path: PathModifier | null }
  | { type: 'RequestMirror'; backend: Backend; percent: number };

export interface HeaderPair {
  name: string;
  value: string;
}

export type PathModifier =
  | { type: 'ReplaceFullPath'; value: string }
  | { type: 'ReplacePrefixMatch'; value: string };

export interface HttpBackend extends Backend {
  /** Filters of this backendRef only (applied after the rule's). */
  filters: HttpFilter[];
  /** `http` (default) or `https` (re-encrypt: BackendTLSPolicy or backend-protocol annotation; see `tls`). */
  protocol: 'http' | 'https';
}

export interface TlsCertificate {
  /** `namespace/name` of the Secret. */
  secret: string;
  /** PEM. Never logged; /config redacts it. */
  certPem: string;
  keyPem: string;
}

export interface RouteRef {
  kind: string;
  namespace: string;
  name: string;
}

export interface SniRoute {
  /** Exact, or `*.suffix` (matches one or more labels), or `*` (everything; tcp only). */
  hostname: string;
  route: RouteRef;
  backends: BackendSet;
}

export interface BackendSet {
  /** In spec order. Weight-0 backends are kept: they are the fallback (see Backend.weight). */
  backends: Backend[];
}

export interface Backend {
  /** `Service/namespace/name:port` or `ServiceImport/namespace/name:port`. */
  id: string;
  /**
   * Share of new connections is weight / Σweights. Weight 0 gets no traffic while any weighted
   * backend of the set has a healthy endpoint; when none has, the weight-0 backends take all of it
   * (unless `policy.fallback` is false).
   */
  weight: number;
  /**
   * Set when the ref does not resolve (BackendNotFound, RefNotPermitted, InvalidKind, ...): this
   * backend's share of connections is rejected, never redistributed (Gateway API TLSRoute rules).
   */
  invalid?: string;
  /** Ready endpoints only. Empty and not `invalid` means "no endpoints": also rejected. */
  endpoints: Endpoint[];
  policy: BackendPolicy;
  /** Re-encrypt to the backend (BackendTLSPolicy, or ingress backend-protocol HTTPS). Absent: plain TCP/HTTP. */
  tls?: UpstreamTls;
}

export interface UpstreamTls {
  /** SNI sent to the backend, and the name verified (unless subjectAltNames says otherwise). Empty: no SNI. */
  serverName: string;
  /** PEM bundle to verify against; null with insecureSkipVerify false means the system CAs. */
  caPem: string | null;
  insecureSkipVerify: boolean;
  /** Names the backend certificate must carry instead of serverName (BackendTLSPolicy subjectAltNames). */
  subjectAltNames?: { type: 'Hostname' | 'URI'; value: string }[];
  /** Client certificate presented to the backend (Gateway spec.tls.backend.clientCertificateRef). Never logged. */
  clientCert?: { certPem: string; keyPem: string };
}

export interface Endpoint {
  address: string;
  port: number;
}

export interface BackendPolicy {
  connectTimeoutMs: number;
  /** 0 = no idle timeout (long-lived database connections are normal in passthrough). */
  idleTimeoutMs: number;
  /** 0 = unlimited. */
  maxLifetimeMs: number;
  /** Send a PROXY header to the backend before any other byte. */
  proxyProtocol: 'v1' | 'v2' | null;
  /** How many other endpoints to try after a connect failure (nothing was sent yet). */
  connectRetries: number;
  /** Weight-0 backends take over when no weighted backend is healthy. */
  fallback: boolean;
  healthCheck: HealthCheck | null;
}

export interface HealthCheck {
  /** Active check: a TCP connect, or with `http` an HTTP/1.1 GET whose status must be expected. */
  intervalMs: number;
  timeoutMs: number;
  unhealthyThreshold: number;
  healthyThreshold: number;
  /** HTTP check (terminated backends): plain HTTP/1.1 GET `path` with `Host: host`; healthy on these statuses. */
  http?: { path: string; host: string; expectedStatuses: number[] };
}

export const DEFAULT_CLIENT_SETTINGS: ClientSettings = {
  helloTimeoutMs: 10_000,
  helloMaxBytes: 64 * 1024,
  proxyProtocolTrustedCidrs: [],
  maxConnections: 0,
};

export const DEFAULT_BACKEND_POLICY: BackendPolicy = {
  connectTimeoutMs: 5_000,
  idleTimeoutMs: 0,
  maxLifetimeMs: 0,
  proxyProtocol: null,
  connectRetries: 2,
  fallback: true,
  healthCheck: { intervalMs: 5_000, timeoutMs: 2_000, unhealthyThreshold: 3, healthyThreshold: 2 },
};
