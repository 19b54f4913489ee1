/** translate(): resources in, routing table + statuses + diagnostics out. Pure: no I/O, no clock, never throws on input. */
import type { Diagnostic } from '../api/diagnostics.ts';
import type { GatewayClass, Namespace, Resources } from '../api/types.ts';
import { HASH_START, hashFinish, hashRange, NameIndex } from '../table/string-table.ts';
import type { Backend } from '../table/types.ts';
import { BackendTlsPolicies } from './backend-tls.ts';
import { BackendIndex, type ResolvedBackend } from './backends.ts';
import { ConditionType, condition, Reason } from './conditions.ts';
import { type GatewayCtx, Targets } from './context.ts';
import { applyBindFailures, buildGateway, detectConflicts, selectGateways } from './gateways.ts';
import { type HttpTarget, httpTarget } from './httproutes.ts';
import { ingressStatuses, isInternal, planIngresses } from './ingress.ts';
import type { ObjectStatus, TranslateOptions, TranslateResult } from './options.ts';
import { Policies } from './policies.ts';
import { attachRoute, type RouteInput } from './routes.ts';
import { byName, sortedByAge } from './sort.ts';
import { gatewayStatus } from './status.ts';
import { buildTable, type RouteTarget } from './table.ts';

export type { ObjectStatus, TranslateOptions, TranslateResult } from './options.ts';
export { DEFAULT_CONTROLLER_NAME } from './options.ts';

export function translate(input: Resources, opts: TranslateOptions): TranslateResult {
  const diags: Diagnostic[] = [];
  const statuses: ObjectStatus[] = [];
  const ingress = planIngresses(input, opts, diags);
  const res = ingress.resources;

  const ourClasses = new Map<string, GatewayClass>();
  for (const gc of [...res.gatewayClasses].sort(byName)) {
    if (gc.spec.controllerName !== opts.controllerName) continue;
    ourClasses.set(gc.metadata.name, gc);
    statuses.push(gatewayClassStatus(gc));
  }

  const internalKeys = new Set<string>();
  for (const list of [res.gateways, res.httpRoutes, res.tlsRoutes]) {
    for (const o of list) {
      if (isInternal(o)) internalKeys.add(`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    }
  }
  const gateways: GatewayCtx[] = selectGateways(res, opts, ourClasses, diags).map((gw, i) =>
    buildGateway(gw, i, res, opts),
  );
  detectConflicts(gateways);
  applyBindFailures(gateways, opts);
  const policies = new Policies(res, opts.controllerName);
  policies.attachClientPolicies(gateways);
  policies.attachSecurityPolicies(gateways);

  const env = {
    gateways: new NameIndex<GatewayCtx>(),
    namespaces: new Map<string, Namespace>(res.namespaces.map((n) => [n.metadata.name, n])),
    backends: new BackendIndex(res),
    controllerName: opts.controllerName,
    policies,
    diags,
  };

  for (const g of gateways) env.gateways.set(g.namespace, g.gateway.metadata.name, g);

  const routes = collectRoutes(res);
  const unique = routeKeysUnique(routes);
  const targets = new Targets<RouteTarget>(unique, routes.length);
  const httpTargets = new Targets<HttpTarget>(unique, routes.length);
  const backendTls = new BackendTlsPolicies(res, opts.controllerName);
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    const result = attachRoute(r, env);
    // Re-encryption is decided per Service port; the policy's ancestors are the Gateways the route is accepted by.
    // Without any BackendTLSPolicy, apply() returns every backend unchanged: skip the per-route work.
    if (!backendTls.empty) {
      const acceptedBy = result.parents.filter((p) =>
        p.conditions.some((c) => c.type === 'Accepted' && c.status === 'True'),
      );
      const accepted = acceptedBy.map((p) => `${p.parentRef.namespace}/${p.parentRef.name}`);
      const clientCert = acceptedBy
        .map((p) => env.gateways.get(p.parentRef.namespace!, p.parentRef.name)?.backendClientCert)
        .find((c) => c !== undefined);
      for (const list of result.backends) {
        for (const b of list) b.backend = backendTls.apply(b.backend, b.service, accepted, clientCert);
      }
    }
    statuses.push({
      apiVersion: r.apiVersion,
      kind: r.kind,
      metadata: { name: r.name, namespace: r.namespace, generation: r.generation },
      status: { parents: result.parents },
    });
    if (r.http) {
      httpTargets.set(r.key, r.order, httpTarget(r.http, r.order, result.backends, env));
    } else {
      // v1 TLSRoute/TCPRoute have one rule; the older v1alpha2 allowed several, which all match the same
      // connections, so their backends form one weighted set.
      targets.set(r.key, r.order, {
        ref: { kind: r.kind, namespace: r.namespace, name: r.name },
        backends: { backends: backendsOf(result.backends) },
      });
    }
  }

  for (const g of gateways) statuses.push(gatewayStatus(g));
  statuses.push(...policies.statuses(), ...backendTls.statuses(res));
  const internal =
    internalKeys.size === 0
      ? []
      : statuses.filter((s) =>
          internalKeys.has(`${s.kind}/${s.metadata.namespace ?? ''}/${s.metadata.name}`),
        );
  const hidden = new Set(internal);
  const shown = hidden.size === 0 ? statuses : statuses.filter((s) => !hidden.has(s));
  shown.push(...ingressStatuses(ingress, internal, opts.statusAddresses, diags));
  const table = buildTable(
    gateways,
    targets,
    httpTargets,
    (k) => policies.clientSettings(k),
    (l) => policies.listenerSecurity(l.gw.namespace, l.gw.gateway.metadata.name, l.spec.name),
  );
  return { table, statuses: sortStatuses(shown), diagnostics: diags };
}

/**
 * Do all routes have distinct `kind/namespace/name` keys? A set of 32-bit hashes of the keys' parts in a
 * typed array: no key string is hashed by V8 or stored, and the strings are compared only on a hash match.
 */
function routeKeysUnique(routes: RouteInput[]): boolean {
  let size = 16;
  while (size < routes.length * 2) size *= 2;
  const mask = size - 1;
  const slots = new Int32Array(size);
  const hashes = new Int32Array(size);
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    const h = hashFinish(
      hashRange(
        hashRange(hashRange(HASH_START, r.name, 0, r.name.length), r.namespace, 0, r.namespace.length),
        r.kind,
        0,
        r.kind.length,
      ),
    );
    let s = h & mask;
    while (slots[s] !== 0) {
      if (hashes[s] === h && routes[slots[s]! - 1]!.key === r.key) return false;
      s = (s + 1) & mask;
    }
    slots[s] = i + 1;
    hashes[s] = h;
  }
  return true;
}

/** All rules' backends in order (what `.flat().map((b) => b.backend)` gives, without its copies). */
function backendsOf(rules: ResolvedBackend[][]): Backend[] {
  if (rules.length === 1) return rules[0]!.map((b) => b.backend);
  const out: Backend[] = [];
  for (const list of rules) for (const b of list) out.push(b.backend);
  return out;
}

function gatewayClassStatus(gc: GatewayClass): ObjectStatus {
  const gen = gc.metadata.generation ?? 1;
  const p = gc.spec.parametersRef;
  const accepted = p
    ? condition(
        ConditionType.Accepted,
        false,
        Reason.InvalidParameters,
        `parametersRef ${p.group}/${p.kind} ${p.name}: snigate takes no GatewayClass parameters; remove parametersRef`,
        gen,
      )
    : condition(ConditionType.Accepted, true, Reason.Accepted, 'GatewayClass is accepted by snigate', gen);
  return {
    apiVersion: gc.apiVersion,
    kind: 'GatewayClass',
    metadata: { name: gc.metadata.name, generation: gen },
    status: { conditions: [accepted] },
  };
}

function collectRoutes(res: Resources): RouteInput[] {
  const out: RouteInput[] = [];
  const all = sortedByAge(
    [
      ...res.tlsRoutes.map((r) => ({
        r,
        kind: 'TLSRoute' as const,
        hostnames: r.spec.hostnames ?? [],
        rules: r.spec.rules,
      })),
      ...res.tcpRoutes.map((r) => ({
        r,
        kind: 'TCPRoute' as const,
        hostnames: undefined,
        rules: r.spec.rules,
      })),
      ...res.httpRoutes.map((r) => ({
        http: r,
        r,
        kind: 'HTTPRoute' as const,
        hostnames: r.spec.hostnames ?? [],
        rules: r.spec.rules ?? [],
      })),
    ],
    (x) => x.r,
  );
  all.forEach((x, order) => {
    const { r, kind, hostnames, rules } = x;
    const namespace = r.metadata.namespace ?? 'default';
    out.push({
      kind,
      apiVersion: r.apiVersion,
      namespace,
      name: r.metadata.name,
      key: `${kind}/${namespace}/${r.metadata.name}`,
      generation: r.metadata.generation ?? 1,
      parentRefs: r.spec.parentRefs ?? [],
      hostnames,
      backendRefs: rules.map((rule) => rule.backendRefs ?? []),
      order,
      http: 'http' in x ? x.http : undefined,
    });
  });
  return out;
}

const KIND_ORDER = [
  'GatewayClass',
  'Gateway',
  'TLSRoute',
  'TCPRoute',
  'HTTPRoute',
  'Ingress',
  'BackendTrafficPolicy',
  'ClientTrafficPolicy',
  'SecurityPolicy',
];
function kindOrder(k: string): number {
  const i = KIND_ORDER.indexOf(k);
  return i < 0 ? KIND_ORDER.length : i;
}

/** Kind order, then namespace/name; the keys are built once per status rather than per comparison. */
function sortStatuses(statuses: ObjectStatus[]): ObjectStatus[] {
  const keyed = statuses.map((s) => ({
    s,
    kind: kindOrder(s.kind),
    name: `${s.metadata.namespace ?? ''}/${s.metadata.name}`,
  }));
  keyed.sort((a, b) => a.kind - b.kind || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return keyed.map((k) => k.s);
}
