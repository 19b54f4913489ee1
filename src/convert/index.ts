/**
 * convert(): Ingress (ingress-nginx flavour) and legacy TLSRoute manifests → standard Gateway API v1.
 * Pure: objects in, objects and notes out. Objects that need no conversion pass through (deprecated
 * Gateway API versions are bumped to v1), so the output replaces the input as a whole.
 */
import { stringify } from 'yaml';
import {
  CARRIED,
  convertIngress,
  type GatewayPlan,
  type IngressEnv,
  ingressHosts,
  isPassthrough,
} from './ingress.ts';
import { convertTLSRoute, grantsFor } from './tlsroute.ts';
import {
  type ConvertNote,
  type ConvertOptions,
  type ConvertResult,
  GW_GROUP,
  GW_V1,
  type InputObject,
  isObj,
  metaOf,
  type Obj,
} from './types.ts';

export type { ConvertNote, ConvertOptions, ConvertResult, InputObject } from './types.ts';

/** Annotation on every object convert() generates: where it came from. */
export const CONVERTED_FROM = 'snigate.io/converted-from';

const CLUSTER_SCOPED = new Set(['GatewayClass', 'Namespace', 'IngressClass']);

export function convert(inputs: InputObject[], opts: ConvertOptions = {}): ConvertResult {
  const notes: ConvertNote[] = [];
  const objects = inputs.map((i) => withNamespace(i.object, opts.namespace));
  const ingresses = objects.filter((o) => o.kind === 'Ingress');
  const gw: GatewayPlan = {
    name: opts.gatewayName ?? 'snigate',
    namespace: opts.namespace ?? (ingresses[0] ? nsOf(ingresses[0]) : 'default'),
    className: opts.gatewayClass ?? 'snigate',
    listeners: new Map(),
    routeNamespaces: new Set(),
    secrets: new Set(),
  };
  const services = new Map<string, Obj>();
  for (const o of objects) if (o.kind === 'Service') services.set(`${nsOf(o)}/${metaOf(o).name}`, o);
  const passthroughHosts = new Set(ingresses.filter(isPassthrough).flatMap(ingressHosts));
  const env: IngressEnv = { gw, services, passthroughHosts, routes: [], notes };
  for (const ing of ingresses) {
    const before = env.routes.length;
    convertIngress(ing, nsOf(ing), env);
    tagDerived(ing, env.routes.slice(before), notes);
  }

  const out: Obj[] = [];
  const tlsRoutes: Obj[] = [];
  let converted = ingresses.length;
  for (const o of objects) {
    if (o.kind === 'Ingress') continue;
    if (o.kind === 'TLSRoute') {
      const r = convertTLSRoute(o, nsOf(o), notes);
      if (r.converted) converted++;
      tlsRoutes.push(...r.routes);
      continue;
    }
    out.push(bumpVersion(o, notes));
  }

  const result: Obj[] = [];
  if (gw.listeners.size > 0) result.push(gateway(gw, notes));
  result.push(...env.routes, ...tlsRoutes);
  const existingGrants = [
    ...out.filter((o) => o.kind === 'ReferenceGrant'),
    ...result.filter((o) => o.kind === 'ReferenceGrant'),
  ];
  result.push(...grantsFor(gw, tlsRoutes, existingGrants));
  result.push(...out);
  return { objects: result, notes, converted };
}

/**
 * Each generated route names its Ingress (`snigate.io/converted-from`), and carries the annotations snigate
 * honours on HTTPRoutes (body size, source ranges, timeouts, backend protocol).
 */
function tagDerived(ing: Obj, routes: Obj[], notes: ConvertNote[]): void {
  const m = metaOf(ing);
  const from = `Ingress ${nsOf(ing)}/${m.name}`;
  const carried = Object.entries(m.annotations).filter(([k]) => CARRIED.has(k));
  for (const r of routes) {
    const meta = r.metadata as Obj;
    const annotations: Record<string, string> = { [CONVERTED_FROM]: from };
    if (r.kind === 'HTTPRoute') for (const [k, v] of carried) annotations[k] = v;
    meta.annotations = annotations;
  }
  if (carried.length > 0) {
    notes.push({
      severity: 'note',
      object: from,
      message: `${carried.map(([k]) => k).join(', ')}: kept as annotations on the HTTPRoutes; snigate honours them, other Gateway API implementations do not`,
    });
  }
}

function gateway(gw: GatewayPlan, notes: ConvertNote[]): Obj {
  const listeners = [...gw.listeners.values()];
  const foreign = [...gw.routeNamespaces].filter((n) => n !== gw.namespace);
  if (foreign.length > 0) {
    for (const l of listeners) (l.allowedRoutes as Obj).namespaces = { from: 'All' };
    notes.push({
      severity: 'note',
      object: `Gateway ${gw.namespace}/${gw.name}`,
      message: `routes in ${foreign.join(', ')} attach to it, so its listeners allow routes from All namespaces; narrow with from: Selector if other teams share the cluster`,
    });
  }
  return {
    apiVersion: GW_V1,
    kind: 'Gateway',
    metadata: { name: gw.name, namespace: gw.namespace },
    spec: { gatewayClassName: gw.className, listeners },
  };
}

/** Deprecated Gateway API versions of kinds whose v1 has the same shape. */
function bumpVersion(o: Obj, notes: ConvertNote[]): Obj {
  const v = typeof o.apiVersion === 'string' ? o.apiVersion : '';
  if (!v.startsWith(`${GW_GROUP}/`) || v === GW_V1) return o;
  if (!['Gateway', 'GatewayClass', 'HTTPRoute', 'ReferenceGrant'].includes(String(o.kind))) return o;
  notes.push({
    severity: 'note',
    object: `${String(o.kind)} ${nsOf(o)}/${metaOf(o).name}`,
    message: `apiVersion ${v} → ${GW_V1}`,
  });
  return { ...o, apiVersion: GW_V1 };
}

function nsOf(o: Obj): string {
  return metaOf(o).namespace ?? 'default';
}

/** Like `kubectl apply -n`: namespaced objects without one get it (or `default`). */
function withNamespace(o: Obj, ns: string | undefined): Obj {
  if (CLUSTER_SCOPED.has(String(o.kind)) || !isObj(o.metadata) || typeof o.metadata.namespace === 'string')
    return o;
  return { ...o, metadata: { ...o.metadata, namespace: ns ?? 'default' } };
}

/** The YAML for stdout: what was not converted, as comments on top, then the objects. */
export function renderConverted(r: ConvertResult, sources: string[]): string {
  const head: string[] = [`# Generated by snigate convert from ${sources.join(', ')}`];
  const unsupported = r.notes.filter((n) => n.severity === 'unsupported');
  const caveats = r.notes.filter((n) => n.severity === 'note');
  if (unsupported.length > 0) {
    head.push('#', '# NOT CONVERTED (review before applying):');
    for (const n of unsupported) head.push(`#   ${n.object}: ${oneLine(n.message)}`);
  }
  if (caveats.length > 0) {
    head.push('#', '# Notes:');
    for (const n of caveats) head.push(`#   ${n.object}: ${oneLine(n.message)}`);
  }
  const docs = r.objects.map((o) => stringify(o, { lineWidth: 0 }).trimEnd());
  return `${head.join('\n')}\n${docs.map((d) => `---\n${d}\n`).join('')}`;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ');
}
