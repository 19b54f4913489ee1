/** translate(): resources in, routing table + statuses + diagnostics out. Pure: no I/O, no clock, never throws on input. */
import type { Diagnostic } from '../api/diagnostics.ts';
import type { GatewayClass, Namespace, Resources } from '../api/types.ts';
import { BackendTlsPolicies } from './backend-tls.ts';
import { BackendIndex } from './backends.ts';
import { ConditionType, condition, Reason } from './conditions.ts';
import type { GatewayCtx } from './context.ts';
import { applyBindFailures, buildGateway, detectConflicts, selectGateways } from './gateways.ts';
import { type HttpTarget, httpTarget } from './httproutes.ts';
import { ingressStatuses, isInternal, planIngresses } from './ingress.ts';
import type { ObjectStatus, TranslateOptions, TranslateResult } from './options.ts';
import { Policies } from './policies.ts';
import { attachRoute, type RouteInput } from './routes.ts';
import { byAge, byName } from './sort.ts';
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

  const internalKeys = new Set(
    [...res.gateways, ...res.httpRoutes, ...res.tlsRoutes]
      .filter(isInternal)
      .map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`),
  );
  const gateways: GatewayCtx[] = selectGateways(res, opts, ourClasses, diags).map((gw, i) =>
    buildGateway(gw, i, res, opts),
  );
  detectConflicts(gateways);
  applyBindFailures(gateways, opts);
  const policies = new Policies(res, opts.controllerName);
  policies.attachClientPolicies(gateways);
  policies.attachSecurityPolicies(gateways);

  const env = {
    gateways: new Map(gateways.map((g) => [`${g.namespace}/${g.gateway.metadata.name}`, g])),
    namespaces: new Map<string, Namespace>(res.namespaces.map((n) => [n.metadata.name, n])),
    backends: new BackendIndex(res),
    controllerName: opts.controllerName,
    policies,
    diags,
  };

  const targets = new Map<string, RouteTarget>();
  const httpTargets = new Map<string, HttpTarget>();
  const routes = collectRoutes(res);
  const backendTls = new BackendTlsPolicies(res, opts.controllerName);
  for (const r of routes) {
    const result = attachRoute(r, env);
    // Re-encryption is decided per Service port; the policy's ancestors are the Gateways the route is accepted by.
    const accepted = result.parents
      .filter((p) => p.conditions.some((c) => c.type === 'Accepted' && c.status === 'True'))
      .map((p) => `${p.parentRef.namespace}/${p.parentRef.name}`);
    const clientCert = accepted
      .map((g) => env.gateways.get(g)?.backendClientCert)
      .find((c) => c !== undefined);
    for (const list of result.backends) {
      for (const b of list) b.backend = backendTls.apply(b.backend, b.service, accepted, clientCert);
    }
    statuses.push({
      apiVersion: r.apiVersion,
      kind: r.kind,
      metadata: { name: r.name, namespace: r.namespace, generation: r.generation },
      status: { parents: result.parents },
    });
    if (r.http) {
      httpTargets.set(
        `HTTPRoute/${r.namespace}/${r.name}`,
        httpTarget(r.http, r.order, result.backends, env),
      );
    } else {
      // v1 TLSRoute/TCPRoute have one rule; the older v1alpha2 allowed several, which all match the same
      // connections, so their backends form one weighted set.
      targets.set(`${r.kind}/${r.namespace}/${r.name}`, {
        ref: { kind: r.kind, namespace: r.namespace, name: r.name },
        backends: { backends: result.backends.flat().map((b) => b.backend) },
      });
    }
  }

  for (const g of gateways) statuses.push(gatewayStatus(g));
  statuses.push(...policies.statuses(), ...backendTls.statuses(res));
  const internal = statuses.filter((s) =>
    internalKeys.has(`${s.kind}/${s.metadata.namespace ?? ''}/${s.metadata.name}`),
  );
  const shown = statuses.filter((s) => !internal.includes(s));
  shown.push(...ingressStatuses(ingress, internal, opts.statusAddresses, diags));
  const table = buildTable(
    gateways,
    targets,
    httpTargets,
    (k) => policies.clientSettings(k),
    (l) => policies.listenerSecurity(l.gw.namespace, l.gw.gateway.metadata.name, l.spec.name),
  );
  shown.sort((a, b) => kindOrder(a.kind) - kindOrder(b.kind) || cmpMeta(a, b));
  return { table, statuses: shown, diagnostics: diags };
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
  const all = [
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
  ].sort((a, b) => byAge(a.r, b.r));
  all.forEach((x, order) => {
    const { r, kind, hostnames, rules } = x;
    out.push({
      kind,
      apiVersion: r.apiVersion,
      namespace: r.metadata.namespace ?? 'default',
      name: r.metadata.name,
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

function cmpMeta(a: ObjectStatus, b: ObjectStatus): number {
  const ka = `${a.metadata.namespace ?? ''}/${a.metadata.name}`;
  const kb = `${b.metadata.namespace ?? ''}/${b.metadata.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}
