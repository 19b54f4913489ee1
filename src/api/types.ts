/** Types for the Kubernetes kinds snigate reads: only the fields it uses, all optional where the API allows. */

export interface ObjectMeta {
  name: string;
  namespace?: string;
  generation?: number;
  creationTimestamp?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** Every object we read has these; `spec`/`status` are typed per kind below. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

// ---- Gateway API ----------------------------------------------------------------------------

export interface ParentReference {
  group?: string;
  kind?: string;
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
}

export interface BackendRef {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  port?: number;
  weight?: number;
}

export interface SecretObjectReference {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
}

export interface ObjectReference {
  group: string;
  kind: string;
  name: string;
  namespace?: string;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: {
    key: string;
    operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
    values?: string[];
  }[];
}

export interface GatewayClass extends KubeObject {
  kind: 'GatewayClass';
  spec: {
    controllerName: string;
    parametersRef?: { group: string; kind: string; name: string; namespace?: string };
    description?: string;
  };
}

export interface Listener {
  name: string;
  hostname?: string;
  port: number;
  protocol: string;
  tls?: {
    mode?: 'Terminate' | 'Passthrough';
    certificateRefs?: SecretObjectReference[];
    options?: Record<string, string>;
  };
  allowedRoutes?: {
    namespaces?: { from?: 'All' | 'Same' | 'Selector'; selector?: LabelSelector };
    kinds?: { group?: string; kind: string }[];
  };
}

export interface FrontendValidation {
  caCertificateRefs?: ObjectReference[];
  mode?: 'AllowValidOnly' | 'AllowInsecureFallback';
}

export interface Gateway extends KubeObject {
  kind: 'Gateway';
  spec: {
    gatewayClassName: string;
    listeners: Listener[];
    addresses?: { type?: string; value?: string }[];
    infrastructure?: {
      labels?: Record<string, string>;
      annotations?: Record<string, string>;
      parametersRef?: { group: string; kind: string; name: string };
    };
    tls?: {
      frontend?: {
        default?: { validation?: FrontendValidation };
        perPort?: { port: number; tls: { validation?: FrontendValidation } }[];
      };
      backend?: { clientCertificateRef?: SecretObjectReference };
    };
  };
}

/** TLSRoute v1 (v1alpha2/v1alpha3 share the shape). `matches` exists only for the legacy v1alpha1 form. */
export interface TLSRoute extends KubeObject {
  kind: 'TLSRoute';
  spec: {
    parentRefs?: ParentReference[];
    hostnames?: string[];
    rules: {
      name?: string;
      backendRefs?: BackendRef[];
      /** Legacy (v1alpha1, removed in v0.5.0). The loader rewrites it; translate never sees it. */
      matches?: { snis?: string[] }[];
    }[];
  };
}

export interface TCPRoute extends KubeObject {
  kind: 'TCPRoute';
  spec: {
    parentRefs?: ParentReference[];
    rules: { name?: string; backendRefs?: BackendRef[] }[];
  };
}

export interface HTTPHeaderMatch {
  type?: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}

export interface HTTPRouteMatch {
  path?: { type?: 'Exact' | 'PathPrefix' | 'RegularExpression'; value?: string };
  headers?: HTTPHeaderMatch[];
  queryParams?: HTTPHeaderMatch[];
  method?: string;
}

export interface HTTPHeaderFilter {
  set?: { name: string; value: string }[];
  add?: { name: string; value: string }[];
  remove?: string[];
}

export interface HTTPPathModifier {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}

export interface HTTPRouteFilter {
  type: string;
  requestHeaderModifier?: HTTPHeaderFilter;
  responseHeaderModifier?: HTTPHeaderFilter;
  requestRedirect?: {
    scheme?: string;
    hostname?: string;
    path?: HTTPPathModifier;
    port?: number;
    statusCode?: number;
  };
  urlRewrite?: { hostname?: string; path?: HTTPPathModifier };
  requestMirror?: {
    backendRef: BackendRef;
    percent?: number;
    fraction?: { numerator: number; denominator?: number };
  };
  extensionRef?: { group: string; kind: string; name: string };
}

export interface HTTPBackendRef extends BackendRef {
  filters?: HTTPRouteFilter[];
}

export interface HTTPRouteRule {
  name?: string;
  matches?: HTTPRouteMatch[];
  filters?: HTTPRouteFilter[];
  backendRefs?: HTTPBackendRef[];
  timeouts?: { request?: string; backendRequest?: string };
}

export interface HTTPRoute extends KubeObject {
  kind: 'HTTPRoute';
  spec: {
    parentRefs?: ParentReference[];
    hostnames?: string[];
    rules?: HTTPRouteRule[];
  };
}

export interface ReferenceGrant extends KubeObject {
  kind: 'ReferenceGrant';
  spec: {
    from: { group: string; kind: string; namespace: string }[];
    to: { group: string; kind: string; name?: string }[];
  };
}

// ---- core / discovery / networking / multicluster ---------------------------------------------

export interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
}

export interface Service extends KubeObject {
  kind: 'Service';
  spec: {
    type?: string;
    clusterIP?: string;
    externalName?: string;
    selector?: Record<string, string>;
    ports?: ServicePort[];
  };
  status?: { loadBalancer?: { ingress?: { ip?: string; hostname?: string }[] } };
}

export interface EndpointSlice extends KubeObject {
  kind: 'EndpointSlice';
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints: {
    addresses: string[];
    conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
    targetRef?: { kind?: string; name?: string; namespace?: string };
    nodeName?: string;
    zone?: string;
  }[];
  ports?: { name?: string; port?: number; protocol?: string; appProtocol?: string }[];
}

export interface Secret extends KubeObject {
  kind: 'Secret';
  type?: string;
  /** base64 values, as the API stores them. The loader folds `stringData` in here. */
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

export interface ConfigMap extends KubeObject {
  kind: 'ConfigMap';
  data?: Record<string, string>;
}

export interface Namespace extends KubeObject {
  kind: 'Namespace';
}

export interface IngressBackend {
  service?: { name: string; port?: { number?: number; name?: string } };
  resource?: { apiGroup?: string; kind: string; name: string };
}

export interface Ingress extends KubeObject {
  kind: 'Ingress';
  spec: {
    ingressClassName?: string;
    defaultBackend?: IngressBackend;
    tls?: { hosts?: string[]; secretName?: string }[];
    rules?: {
      host?: string;
      http?: {
        paths: {
          path?: string;
          pathType: 'Prefix' | 'Exact' | 'ImplementationSpecific';
          backend: IngressBackend;
        }[];
      };
    }[];
  };
  status?: { loadBalancer?: { ingress?: { ip?: string; hostname?: string }[] } };
}

export interface IngressClass extends KubeObject {
  kind: 'IngressClass';
  spec: { controller?: string; parameters?: unknown };
}

export interface ServiceImport extends KubeObject {
  kind: 'ServiceImport';
  spec: {
    type?: 'ClusterSetIP' | 'Headless';
    ips?: string[];
    ports?: ServicePort[];
  };
}

/** BackendTLSPolicy v1: re-encrypt to a Service's backends, with this SNI, validated against these CAs. */
export interface BackendTLSPolicy extends KubeObject {
  kind: 'BackendTLSPolicy';
  spec: {
    targetRefs: { group: string; kind: string; name: string; sectionName?: string }[];
    validation: {
      caCertificateRefs?: { group: string; kind: string; name: string }[];
      wellKnownCACertificates?: 'System';
      hostname: string;
      subjectAltNames?: { type: 'Hostname' | 'URI'; hostname?: string; uri?: string }[];
    };
    options?: Record<string, string>;
  };
}

// ---- snigate policies (gateway.snigate.io, GEP-713 policy attachment) ---------------------------

export const POLICY_GROUP = 'gateway.snigate.io';

export interface PolicyTargetRef {
  group: string;
  kind: string;
  name: string;
  sectionName?: string;
}

/** Per-backend connection settings. Targets Services (all routes using them) or TLSRoute/TCPRoute (their backends). */
export interface BackendTrafficPolicy extends KubeObject {
  kind: 'BackendTrafficPolicy';
  spec: {
    targetRefs: PolicyTargetRef[];
    /** Gateway API Duration strings (`5s`, `1h30m`, `0s` = off where allowed). */
    timeouts?: { connect?: string; idle?: string; maxLifetime?: string };
    connectRetries?: number;
    healthCheck?: {
      active?: {
        enabled?: boolean;
        interval?: string;
        timeout?: string;
        unhealthyThreshold?: number;
        healthyThreshold?: number;
        /** TCP (default): connect only. HTTP: GET `http.path`, healthy on `http.expectedStatuses` (default 200-399). */
        type?: 'TCP' | 'HTTP';
        http?: { path?: string; host?: string; expectedStatuses?: number[] };
      };
    };
    proxyProtocol?: { version: 'V1' | 'V2' };
    /** Weight-0 backends take over when no weighted backend is healthy (default true). */
    fallback?: { enabled?: boolean };
  };
}

/** Per-port client settings: the part of a connection before a listener is chosen. Targets Gateways or listeners. */
export interface ClientTrafficPolicy extends KubeObject {
  kind: 'ClientTrafficPolicy';
  spec: {
    targetRefs: PolicyTargetRef[];
    clientHello?: { timeout?: string; maxSize?: number };
    proxyProtocol?: { trustedCIDRs: string[] };
    connectionLimit?: { max: number };
  };
}

/**
 * L7 protection (issue 8): WAF, rate limiting, IP allow/deny, request size limits, and for passthrough listeners a
 * new-connection rate limit. Targets a Gateway (optionally one listener by sectionName) or an HTTPRoute; the most
 * specific policy's section wins (route over listener over Gateway), section by section.
 */
export interface SecurityPolicy extends KubeObject {
  kind: 'SecurityPolicy';
  spec: {
    targetRefs: PolicyTargetRef[];
    waf?: {
      /** Default true. false on a route turns off a WAF its Gateway or listener asks for. */
      enabled?: boolean;
      /** Block (default): 403. Detect: rules run, an audit line is logged, the request is forwarded. */
      mode?: 'Block' | 'Detect';
      paranoiaLevel?: number;
      anomalyThreshold?: number;
      exclusions?: {
        ruleIds?: number[];
        paths?: { pathPrefix: string; ruleIds: number[] }[];
        targets?: { ruleIds: number[]; variable: string; name: string; pathPrefix?: string }[];
      };
    };
    rateLimit?: {
      /** Default ClientIP. Header: one bucket per value of `header` (the client address when absent). */
      key?: { type: 'ClientIP' | 'Route' | 'Header'; header?: string };
      requests: number;
      unit: 'Second' | 'Minute';
      /** Default: requests (one period's worth). */
      burst?: number;
      /** Default Local (one bucket per snigate process). Redis: shared by every replica. */
      backend?: { type: 'Local' | 'Redis'; redis?: { address: string; failMode?: 'Open' | 'Closed' } };
    };
    ipAccess?: { allow?: string[]; deny?: string[] };
    clientIPDetection?: { xForwardedFor?: { trustedCIDRs: string[] } };
    requestLimits?: { maxBodyBytes?: number; maxHeaderBytes?: number; maxConcurrentPerClientIP?: number };
    /** Passthrough (and TCP) listeners: new connections per client address; beyond, the connection is closed. */
    connectionRateLimit?: { connections: number; unit: 'Second' | 'Minute'; burst?: number };
  };
}

/** The kinds a source can hand to the store. */
export type Resource =
  | GatewayClass
  | Gateway
  | TLSRoute
  | TCPRoute
  | HTTPRoute
  | ReferenceGrant
  | Service
  | EndpointSlice
  | Secret
  | ConfigMap
  | Namespace
  | Ingress
  | IngressClass
  | ServiceImport
  | BackendTrafficPolicy
  | ClientTrafficPolicy
  | SecurityPolicy
  | BackendTLSPolicy;

export type ResourceKind = Resource['kind'];

/** One consistent snapshot of everything the translator reads; every list sorted by namespace/name. */
export interface Resources {
  gatewayClasses: GatewayClass[];
  gateways: Gateway[];
  tlsRoutes: TLSRoute[];
  tcpRoutes: TCPRoute[];
  httpRoutes: HTTPRoute[];
  referenceGrants: ReferenceGrant[];
  services: Service[];
  endpointSlices: EndpointSlice[];
  secrets: Secret[];
  configMaps: ConfigMap[];
  namespaces: Namespace[];
  ingresses: Ingress[];
  ingressClasses: IngressClass[];
  serviceImports: ServiceImport[];
  backendTrafficPolicies: BackendTrafficPolicy[];
  clientTrafficPolicies: ClientTrafficPolicy[];
  securityPolicies: SecurityPolicy[];
  backendTLSPolicies: BackendTLSPolicy[];
}

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';
export const MULTICLUSTER_GROUP = 'multicluster.x-k8s.io';

/** apiVersions accepted per kind (served versions of the v1.6 CRDs, plus the legacy ones we convert). */
export const SUPPORTED_VERSIONS: Record<ResourceKind, readonly string[]> = {
  GatewayClass: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  Gateway: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  HTTPRoute: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  TLSRoute: [
    'gateway.networking.k8s.io/v1',
    'gateway.networking.k8s.io/v1alpha3',
    'gateway.networking.k8s.io/v1alpha2',
  ],
  TCPRoute: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1alpha2'],
  ReferenceGrant: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  Service: ['v1'],
  EndpointSlice: ['discovery.k8s.io/v1'],
  Secret: ['v1'],
  ConfigMap: ['v1'],
  Namespace: ['v1'],
  Ingress: ['networking.k8s.io/v1'],
  IngressClass: ['networking.k8s.io/v1'],
  ServiceImport: ['multicluster.x-k8s.io/v1alpha1'],
  BackendTrafficPolicy: ['gateway.snigate.io/v1alpha1'],
  ClientTrafficPolicy: ['gateway.snigate.io/v1alpha1'],
  SecurityPolicy: ['gateway.snigate.io/v1alpha1'],
  BackendTLSPolicy: ['gateway.networking.k8s.io/v1'],
};

/** Kinds that live in a namespace (everything but GatewayClass, Namespace, IngressClass). */
export const CLUSTER_SCOPED: ReadonlySet<string> = new Set(['GatewayClass', 'Namespace', 'IngressClass']);

export function emptyResources(): Resources {
  return {
    gatewayClasses: [],
    gateways: [],
    tlsRoutes: [],
    tcpRoutes: [],
    httpRoutes: [],
    referenceGrants: [],
    services: [],
    endpointSlices: [],
    secrets: [],
    configMaps: [],
    namespaces: [],
    ingresses: [],
    ingressClasses: [],
    serviceImports: [],
    backendTrafficPolicies: [],
    clientTrafficPolicies: [],
    securityPolicies: [],
    backendTLSPolicies: [],
  };
}
