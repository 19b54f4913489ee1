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
import type { NameIndex } from '../table/string-table.ts';
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
  /** `kind/namespace/name`: the key of the route's target and of its attachments. */
  key: string;
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
  gateways: NameIndex<GatewayCtx>;
  namespaces: Map<string, Namespace>;
  backends: BackendIndex;
  controllerName: string;
  policies: Policies;
  diags: Diagnostic[];
}

// Runs once per route: no flat()/filter() copies and no per-route strings that can be shared (at 100k
// routes they were about a third of translate()'s allocations).
export function attachRoute(route: RouteInput, env: AttachEnv): RouteResult {
  const gen = route.generation;
  let problems: ResolvedBackend[] | undefined;
  // map() sizes each array once; an empty [] grown by push() starts with room for 17 elements.
  const backends = route.backendRefs.map((refs) =>
    refs.map((ref) => {
      const policy = env.policies.backendPolicy(ref, route.kind, route.namespace, route.name);
      const b = env.backends.resolve(ref, route.kind, route.namespace, policy);
      if (b.problem) (problems ??= []).push(b);
      return b;
    }),
  );
  const resolved =
    problems === undefined
      ? condition(ConditionType.ResolvedRefs, true, Reason.ResolvedRefs, 'All references resolved', gen)
      : condition(
          ConditionType.ResolvedRefs,
          false,
          problems[0]!.problem!.reason,
          problems.map((p) => p.problem!.message).join('; '),
          gen,
        );
  for (const list of backends) {
    for (const b of list) {
      if (!b.noEndpoints) continue;
      env.diags.push({
        severity: 'warning',
        code: 'backend-no-endpoints',
        object: { kind: route.kind, namespace: route.namespace, name: route.name },
        message: `backend ${b.backend.id} has no ready endpoints: its share of connections is rejected. Add an EndpointSlice labelled kubernetes.io/service-name for the Service`,
      });
    }
  }

  // Most routes have one parentRef: an exact-size array then (the status keeps it for the table's lifetime).
  const parents: RouteResult['parents'] = [];
  if (route.parentRefs.length === 1) {
    const p = parentStatus(route, route.parentRefs[0]!, resolved, env);
    return { parents: p === null ? [] : [p], backends };
  }
  for (const ref of route.parentRefs) {
    const p = parentStatus(route, ref, resolved, env);
    if (p !== null) parents.push(p);
  }
  return { parents, backends };
}

/** The route's status for one parentRef (attaching it on the way), or null when no status is written for it. */
function parentStatus(
  route: RouteInput,
  ref: ParentReference,
  resolved: Condition,
  env: AttachEnv,
): RouteResult['parents'][number] | null {
  const gen = route.generation;
  const group = ref.group ?? GATEWAY_GROUP;
  const kind = ref.kind ?? 'Gateway';
  const ns = ref.namespace ?? route.namespace;
  if (group !== GATEWAY_GROUP || kind !== 'Gateway') {
    env.diags.push({
      severity: 'warning',
      code: 'parent-kind-unsupported',
      object: { kind: route.kind, namespace: route.namespace, name: route.name },
      message: `parentRef ${group}/${kind} ${ns}/${ref.name}: snigate attaches routes to Gateways only`,
    });
    return null;
  }
  const gw = env.gateways.get(ns, ref.name);
  if (!gw) {
    env.diags.push({
      severity: 'warning',
      code: 'parent-not-found',
      object: { kind: route.kind, namespace: route.namespace, name: route.name },
      message: `parentRef Gateway ${ns}/${ref.name} is not a Gateway snigate serves (missing, or another class): no status written for it`,
    });
    return null;
  }
  const parentRef = { ...ref, group, kind, namespace: ns };
  const accepted = acceptOnGateway(route, ref, gw, env);
  return {
    parentRef,
    controllerName: env.controllerName,
    conditions: [
      condition(ConditionType.Accepted, accepted.ok, accepted.reason, accepted.message, gen),
      resolved,
    ],
  };
}

function acceptOnGateway(
  route: RouteInput,
  ref: ParentReference,
  gw: GatewayCtx,
  env: AttachEnv,
): { ok: boolean; reason: string; message: string } {
  const isCandidate = (l: ListenerCtx): boolean =>
    (ref.sectionName === undefined || l.spec.name === ref.sectionName) &&
    (ref.port === undefined || l.spec.port === ref.port);
  // One pass: attaching to a listener reads nothing that deciding about the next one depends on, and
  // when no listener allows the route nothing has been attached.
  let candidates = 0;
  let allowedAny = false;
  let attachedAny = false;
  let whyNot: string[] | undefined;
  for (let i = 0; i < gw.listeners.length; i++) {
    const l = gw.listeners[i]!;
    if (!isCandidate(l)) continue;
    candidates++;
    const why = notAllowed(l, route, gw, env);
    if (why !== null) {
      (whyNot ??= []).push(why);
      continue;
    }
    allowedAny = true;
    const hostnames = attachHostnames(l, route.hostnames);
    if (hostnames.length === 0) continue;
    attachedAny = true;
    l.attachedRoutes++;
    l.attachments.push({ hostnames, routeKey: route.key, order: route.order });
  }
  if (candidates === 0) {
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
      message: `Gateway ${gw.namespace}/${gw.gateway.metadata.name} has no listener with ${what}; its listeners are ${have}`,
    };
  }
  if (!allowedAny) {
    return { ok: false, reason: Reason.NotAllowedByListeners, message: (whyNot ?? []).join('; ') };
  }
  if (!attachedAny) {
    const allowed = gw.listeners.filter((l) => isCandidate(l) && notAllowed(l, route, gw, env) === null);
    const ls = allowed.map((l) => `${l.spec.name}: ${l.hostname ?? '(any)'}`).join(', ');
    return {
      ok: false,
      reason: Reason.NoMatchingListenerHostname,
      message: `no route hostname (${(route.hostnames ?? []).join(', ')}) intersects a listener hostname (${ls})`,
    };
  }
  return acceptedBy(gw);
}

/** Why listener `l` does not take this route (kind, namespaces), or null when it does. */
function notAllowed(l: ListenerCtx, route: RouteInput, gw: GatewayCtx, env: AttachEnv): string | null {
  let kindOk = false;
  for (let i = 0; i < l.supportedKinds.length; i++) {
    const k = l.supportedKinds[i]!;
    if (k.kind === route.kind && k.group === GATEWAY_GROUP) {
      kindOk = true;
      break;
    }
  }
  if (!kindOk) {
    return l.supportedKinds.length === 0
      ? `listener ${l.spec.name} accepts no routes (${l.accepted.ok ? 'no valid kinds' : l.accepted.reason})`
      : `listener ${l.spec.name} (${l.spec.protocol}) accepts ${l.supportedKinds.map((k) => k.kind).join(', ')}, not ${route.kind}`;
  }
  const from = l.spec.allowedRoutes?.namespaces?.from ?? 'Same';
  if (from === 'Same' && route.namespace !== gw.namespace) {
    return `listener ${l.spec.name} allows routes from namespace ${gw.namespace} only (from: Same), not ${route.namespace}`;
  }
  if (from === 'Selector') {
    const sel = l.spec.allowedRoutes?.namespaces?.selector;
    const labels = namespaceLabels(route.namespace, env.namespaces);
    if (!sel || !selectorMatches(sel, labels)) {
      return `listener ${l.spec.name} allows namespaces by selector, and namespace ${route.namespace} does not match it`;
    }
  }
  return null;
}

/**
 * The Accepted outcome on a Gateway, one object per Gateway shared by all its routes: the caller only
 * reads it (to build the condition), and its message would otherwise be built once per route.
 */
const acceptedResults = new WeakMap<GatewayCtx, { ok: boolean; reason: string; message: string }>();
function acceptedBy(gw: GatewayCtx): { ok: boolean; reason: string; message: string } {
  let r = acceptedResults.get(gw);
  if (r === undefined) {
    r = {
      ok: true,
      reason: Reason.Accepted,
      message: `Route is accepted by Gateway ${gw.namespace}/${gw.gateway.metadata.name}`,
    };
    acceptedResults.set(gw, r);
  }
  return r;
}

/** The hostnames the route serves on this listener: intersections; `*` stands for "any" (TCPRoute, HTTPRoute without hostnames). */
function attachHostnames(l: ListenerCtx, hostnames: string[] | undefined): string[] {
  if (hostnames === undefined || hostnames.length === 0) return [l.hostname ?? '*'];
  if (hostnames.length === 1) {
    const i = intersectHostname(l.hostname, hostnames[0]!);
    return i === null ? [] : [i];
  }
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
