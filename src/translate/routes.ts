/** Route attachment: each parentRef → listeners, with the upstream Accepted/ResolvedRefs reasons. */
import type { Diagnostic } from '../api/diagnostics.ts';
import type {
  BackendRef,
  Condition,
  HTTPRoute,
  LabelSelector,
  Namespace,
  ParentReference,
} from '../api/types.ts';
import { GATEWAY_GROUP } from '../api/types.ts';
import type { BackendIndex, ResolvedBackend } from './backends.ts';
import { ConditionType, condition, Reason } from './conditions.ts';
import type { GatewayCtx, ListenerCtx } from './context.ts';
import { intersectHostname } from './hostnames.ts';
import type { Policies } from './policies.ts';

/** What the translator needs of any route kind. */
export interface RouteInput {
  kind: 'TLSRoute' | 'TCPRoute' | 'HTTPRoute';
  apiVersion: string;
  namespace: string;
  name: string;
  generation: number;
  parentRefs: ParentReference[];
  /** undefined for kinds without hostnames (TCPRoute); [] means "any" for HTTPRoute. */
  hostnames: string[] | undefined;
  backendRefs: BackendRef[][];
  order: number;
  /** The HTTPRoute itself, for building its HTTP rules. */
  http?: HTTPRoute;
}

export interface RouteResult {
  parents: {
    parentRef: Required<Pick<ParentReference, 'group' | 'kind' | 'name'>> & ParentReference;
    controllerName: string;
    conditions: Condition[];
  }[];
  /** Resolved backends per rule (same order as the spec). */
  backends: ResolvedBackend[][];
}

export interface AttachEnv {
  gateways: Map<string, GatewayCtx>;
  namespaces: Map<string, Namespace>;
  backends: BackendIndex;
  controllerName: string;
  policies: Policies;
  diags: Diagnostic[];
}

export function attachRoute(route: RouteInput, env: AttachEnv): RouteResult {
  const gen = route.generation;
  const backends = route.backendRefs.map((refs) =>
    refs.map((ref) =>
      env.backends.resolve(
        ref,
        route.kind,
        route.namespace,
        env.policies.backendPolicy(ref, route.kind, route.namespace, route.name),
      ),
    ),
  );
  const problems = backends.flat().filter((b) => b.problem);
  const resolved =
    problems.length === 0
      ? condition(ConditionType.ResolvedRefs, true, Reason.ResolvedRefs, 'All references resolved', gen)
      : condition(
          ConditionType.ResolvedRefs,
          false,
          problems[0]!.problem!.reason,
          problems.map((p) => p.problem!.message).join('; '),
          gen,
        );
  for (const b of backends.flat()) {
    if (b.noEndpoints) {
      env.diags.push({
        severity: 'warning',
        code: 'backend-no-endpoints',
        object: { kind: route.kind, namespace: route.namespace, name: route.name },
        message: `backend ${b.backend.id} has no ready endpoints: its share of connections is rejected. Add an EndpointSlice labelled kubernetes.io/service-name for the Service`,
      });
    }
  }

  const result: RouteResult = { parents: [], backends };
  for (const ref of route.parentRefs) {
    const group = ref.group ?? GATEWAY_GROUP;
    const kind = ref.kind ?? 'Gateway';
    const ns = ref.namespace ?? route.namespace;
    const object = { kind: route.kind, namespace: route.namespace, name: route.name };
    if (group !== GATEWAY_GROUP || kind !== 'Gateway') {
      env.diags.push({
        severity: 'warning',
        code: 'parent-kind-unsupported',
        object,
        message: `parentRef ${group}/${kind} ${ns}/${ref.name}: snigate attaches routes to Gateways only`,
      });
      continue;
    }
    const gw = env.gateways.get(`${ns}/${ref.name}`);
    if (!gw) {
      env.diags.push({
        severity: 'warning',
        code: 'parent-not-found',
        object,
        message: `parentRef Gateway ${ns}/${ref.name} is not a Gateway snigate serves (missing, or another class): no status written for it`,
      });
      continue;
    }
    const parentRef = { ...ref, group, kind, namespace: ns };
    const accepted = acceptOnGateway(route, ref, gw, env);
    result.parents.push({
      parentRef,
      controllerName: env.controllerName,
      conditions: [
        condition(ConditionType.Accepted, accepted.ok, accepted.reason, accepted.message, gen),
        resolved,
      ],
    });
  }
  return result;
}

function acceptOnGateway(
  route: RouteInput,
  ref: ParentReference,
  gw: GatewayCtx,
  env: AttachEnv,
): { ok: boolean; reason: string; message: string } {
  const gwName = `${gw.namespace}/${gw.gateway.metadata.name}`;
  const candidates = gw.listeners.filter(
    (l) =>
      (ref.sectionName === undefined || l.spec.name === ref.sectionName) &&
      (ref.port === undefined || l.spec.port === ref.port),
  );
  if (candidates.length === 0) {
    const what = [
      ref.sectionName !== undefined ? `sectionName ${ref.sectionName}` : '',
      ref.port !== undefined ? `port ${ref.port}` : '',
    ]
      .filter(Boolean)
      .join(' and ');
    const have = gw.listeners.map((l) => `${l.spec.name} (${l.spec.protocol}/${l.spec.port})`).join(', ');
    return {
      ok: false,
      reason: Reason.NoMatchingParent,
      message: `Gateway ${gwName} has no listener with ${what}; its listeners are ${have}`,
    };
  }
  const whyNot: string[] = [];
  const allowed = candidates.filter((l) => {
    if (!l.supportedKinds.some((k) => k.kind === route.kind && k.group === GATEWAY_GROUP)) {
      whyNot.push(
        l.supportedKinds.length === 0
          ? `listener ${l.spec.name} accepts no routes (${l.accepted.ok ? 'no valid kinds' : l.accepted.reason})`
          : `listener ${l.spec.name} (${l.spec.protocol}) accepts ${l.supportedKinds.map((k) => k.kind).join(', ')}, not ${route.kind}`,
      );
      return false;
    }
    const from = l.spec.allowedRoutes?.namespaces?.from ?? 'Same';
    if (from === 'Same' && route.namespace !== gw.namespace) {
      whyNot.push(
        `listener ${l.spec.name} allows routes from namespace ${gw.namespace} only (from: Same), not ${route.namespace}`,
      );
      return false;
    }
    if (from === 'Selector') {
      const sel = l.spec.allowedRoutes?.namespaces?.selector;
      const labels = namespaceLabels(route.namespace, env.namespaces);
      if (!sel || !selectorMatches(sel, labels)) {
        whyNot.push(
          `listener ${l.spec.name} allows namespaces by selector, and namespace ${route.namespace} does not match it`,
        );
        return false;
      }
    }
    return true;
  });
  if (allowed.length === 0) {
    return { ok: false, reason: Reason.NotAllowedByListeners, message: whyNot.join('; ') };
  }
  let attachedAny = false;
  for (const l of allowed) {
    const hostnames = attachHostnames(l, route.hostnames);
    if (hostnames.length === 0) continue;
    attachedAny = true;
    l.attachedRoutes++;
    l.attachments.push({
      hostnames,
      routeKey: `${route.kind}/${route.namespace}/${route.name}`,
      order: route.order,
    });
  }
  if (!attachedAny) {
    const ls = allowed.map((l) => `${l.spec.name}: ${l.hostname ?? '(any)'}`).join(', ');
    return {
      ok: false,
      reason: Reason.NoMatchingListenerHostname,
      message: `no route hostname (${(route.hostnames ?? []).join(', ')}) intersects a listener hostname (${ls})`,
    };
  }
  return { ok: true, reason: Reason.Accepted, message: `Route is accepted by Gateway ${gwName}` };
}

/** The hostnames the route serves on this listener: intersections; `*` stands for "any" (TCPRoute, HTTPRoute without hostnames). */
function attachHostnames(l: ListenerCtx, hostnames: string[] | undefined): string[] {
  if (hostnames === undefined || hostnames.length === 0) return [l.hostname ?? '*'];
  const out: string[] = [];
  for (const h of hostnames) {
    const i = intersectHostname(l.hostname, h);
    if (i !== null && !out.includes(i)) out.push(i);
  }
  return out;
}

function namespaceLabels(ns: string, namespaces: Map<string, Namespace>): Record<string, string> {
  // The API server always sets this label; file mode may not have a Namespace object at all.
  return { 'kubernetes.io/metadata.name': ns, ...(namespaces.get(ns)?.metadata.labels ?? {}) };
}

export function selectorMatches(sel: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const val = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (!has || !(e.values ?? []).includes(val!)) return false;
        break;
      case 'NotIn':
        if (has && (e.values ?? []).includes(val!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}
