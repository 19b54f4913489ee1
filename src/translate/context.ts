/** Working state the translator accumulates per Gateway and listener before it becomes status and table. */
import type { Gateway, Listener } from '../api/types.ts';
import type { ListenerMode, TlsCertificate } from '../table/types.ts';

export interface CondState {
  ok: boolean;
  reason: string;
  message: string;
}

export interface RouteKind {
  group: string;
  kind: string;
}

/** An attached route's contribution to one listener, before precedence picks winners per hostname. */
export interface Attachment {
  hostnames: string[];
  routeKey: string;
  order: number;
}

export interface ListenerCtx {
  gw: GatewayCtx;
  spec: Listener;
  /** null when the protocol is not one we serve. */
  mode: ListenerMode | null;
  hostname: string | null;
  supportedKinds: RouteKind[];
  accepted: CondState;
  programmed: CondState;
  /** Problems with references; empty means ResolvedRefs=True. */
  refProblems: { reason: string; message: string }[];
  conflicted?: CondState;
  overlapping?: CondState;
  certificates: TlsCertificate[];
  /** Frontend client-certificate validation for HTTPS listeners (Gateway spec.tls.frontend). */
  clientValidation?: { caPem: string; mode: 'AllowValidOnly' | 'AllowInsecureFallback' };
  attachedRoutes: number;
  attachments: Attachment[];
}

export interface GatewayCtx {
  gateway: Gateway;
  namespace: string;
  /** Precedence among Gateways sharing an address: oldest first, then namespace/name. */
  order: number;
  /** Addresses to bind; `null` entries mean the run's default address. */
  bindAddresses: (string | null)[];
  statusAddresses: { type: string; value: string }[];
  listeners: ListenerCtx[];
  /** Gateway-level problems that make it Accepted=False. */
  acceptProblem?: { reason: string; message: string };
  programProblem?: { reason: string; message: string };
  gatewayRefProblems: { reason: string; message: string }[];
  /** spec.tls.backend.clientCertificateRef, resolved: presented to TLS backends. */
  backendClientCert?: { certPem: string; keyPem: string };
  insecureFrontend: boolean;
}

export function listenerId(l: ListenerCtx): string {
  return `${l.gw.namespace}/${l.gw.gateway.metadata.name}/${l.spec.name}`;
}

/**
 * The target (backends, HTTP rules) of each route, found from an attachment. Keyed by `kind/ns/name` like
 * a Map, but when no two routes share a key (always, for what the loaders produce) by route order: a Map
 * of 100k freshly built strings cost more than the rest of the table building.
 */
export class Targets<T> {
  readonly #byOrder: (T | undefined)[];
  readonly #byKey: Map<string, T> | null;

  /** `unique`: no two routes have the same key (see routeKeysUnique); `routes`: how many there are. */
  constructor(unique: boolean, routes: number) {
    this.#byKey = unique ? null : new Map();
    this.#byOrder = unique ? new Array<T | undefined>(routes) : [];
  }

  /** A later route with the same key replaces the earlier one's target, for both routes' attachments. */
  set(key: string, order: number, target: T): void {
    if (this.#byKey !== null) this.#byKey.set(key, target);
    else this.#byOrder[order] = target;
  }

  get(a: Attachment): T | undefined {
    return this.#byKey !== null ? this.#byKey.get(a.routeKey) : this.#byOrder[a.order];
  }
}
