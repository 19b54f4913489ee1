/** Legacy TLSRoute (`rules[].matches[].snis`) → one v1 TLSRoute per rule; the ReferenceGrants the output needs. */
import type { ReferenceGrant } from '../api/types.ts';
import { referenceAllowed } from '../translate/refgrants.ts';
import type { GatewayPlan } from './ingress.ts';
import { type ConvertNote, GW_GROUP, GW_V1, isObj, metaOf, type Obj } from './types.ts';

export function convertTLSRoute(
  o: Obj,
  ns: string,
  notes: ConvertNote[],
): { routes: Obj[]; converted: boolean } {
  const meta = metaOf(o);
  const id = `TLSRoute ${ns}/${meta.name}`;
  const spec = isObj(o.spec) ? o.spec : {};
  const rules = (Array.isArray(spec.rules) ? spec.rules : []).filter(isObj);
  const legacy = rules.some((r) => r.matches !== undefined);
  const version = typeof o.apiVersion === 'string' ? o.apiVersion : '';
  if (!legacy) {
    if (version === GW_V1) return { routes: [o], converted: false };
    if (rules.length > 1) {
      notes.push({
        severity: 'unsupported',
        object: id,
        message: `TLSRoute ${GW_V1} allows one rule; this route has ${rules.length}: merge their backendRefs into one rule (weights) or split the route`,
      });
    }
    notes.push({ severity: 'note', object: id, message: `apiVersion ${version} → ${GW_V1}` });
    return { routes: [{ ...o, apiVersion: GW_V1 }], converted: true };
  }
  const routeHosts = Array.isArray(spec.hostnames) ? spec.hostnames : [];
  const out: Obj[] = [];
  rules.forEach((rule, i) => {
    const snis: string[] = [];
    for (const m of Array.isArray(rule.matches) ? rule.matches : []) {
      if (!isObj(m) || !Array.isArray(m.snis)) continue;
      for (const s of m.snis) if (typeof s === 'string' && !snis.includes(s)) snis.push(s);
    }
    const hostnames = snis.length > 0 ? snis : routeHosts;
    if (hostnames.length === 0) {
      notes.push({
        severity: 'unsupported',
        object: id,
        message: `rule ${i} has no matches[].snis and the route no spec.hostnames: nothing to route by, skipped`,
      });
      return;
    }
    const newMeta: Obj = { name: rules.length === 1 ? meta.name : `${meta.name}-${i}`, namespace: ns };
    const m = isObj(o.metadata) ? o.metadata : {};
    if (isObj(m.labels)) newMeta.labels = m.labels;
    if (Object.keys(meta.annotations).length > 0) newMeta.annotations = meta.annotations;
    const newRule: Obj = {};
    if (rule.name !== undefined) newRule.name = rule.name;
    newRule.backendRefs = rule.backendRefs ?? [];
    const newSpec: Obj = {};
    if (spec.parentRefs !== undefined) newSpec.parentRefs = spec.parentRefs;
    newSpec.hostnames = hostnames;
    newSpec.rules = [newRule];
    out.push({ apiVersion: GW_V1, kind: 'TLSRoute', metadata: newMeta, spec: newSpec });
  });
  const names = out.map((r) => (r.metadata as Obj).name).join(', ');
  notes.push({
    severity: 'note',
    object: id,
    message: `legacy matches[].snis form (removed in Gateway API v0.5.0): one TLSRoute per rule with spec.hostnames: ${names}`,
  });
  return { routes: out, converted: true };
}

/** Grants for listener certificates in other namespaces and TLSRoute backends no existing grant covers. */
export function grantsFor(gw: GatewayPlan, tlsRoutes: Obj[], existing: Obj[]): Obj[] {
  const grants = existing as unknown as ReferenceGrant[];
  const wanted = new Map<
    string,
    { ns: string; fromKind: string; fromNs: string; toKind: string; toGroup: string; names: Set<string> }
  >();
  const want = (
    ns: string,
    fromKind: string,
    fromNs: string,
    toGroup: string,
    toKind: string,
    name: string,
  ) => {
    const k = `${ns}|${fromKind}|${fromNs}|${toGroup}|${toKind}`;
    let w = wanted.get(k);
    if (!w) {
      w = { ns, fromKind, fromNs, toKind, toGroup, names: new Set() };
      wanted.set(k, w);
    }
    w.names.add(name);
  };
  for (const s of gw.secrets) {
    const [ns, name] = s.split('/') as [string, string];
    if (ns !== gw.namespace) want(ns, 'Gateway', gw.namespace, '', 'Secret', name);
  }
  for (const r of tlsRoutes) {
    const from = metaOf(r).namespace ?? 'default';
    const spec = isObj(r.spec) ? r.spec : {};
    for (const rule of (Array.isArray(spec.rules) ? spec.rules : []).filter(isObj)) {
      for (const b of (Array.isArray(rule.backendRefs) ? rule.backendRefs : []).filter(isObj)) {
        const to = typeof b.namespace === 'string' ? b.namespace : from;
        if (to === from || typeof b.name !== 'string') continue;
        const group = typeof b.group === 'string' ? b.group : '';
        const kind = typeof b.kind === 'string' ? b.kind : 'Service';
        const ok = referenceAllowed(
          { group: GW_GROUP, kind: 'TLSRoute', namespace: from },
          { group, kind, namespace: to, name: b.name },
          grants,
        );
        if (!ok) want(to, 'TLSRoute', from, group, kind, b.name);
      }
    }
  }
  return [...wanted.values()].map((w) => ({
    apiVersion: GW_V1,
    kind: 'ReferenceGrant',
    metadata: {
      name: `${w.fromKind}-${w.fromNs}-to-${w.toKind}`.toLowerCase().slice(0, 63).replace(/-+$/, ''),
      namespace: w.ns,
    },
    spec: {
      from: [{ group: GW_GROUP, kind: w.fromKind, namespace: w.fromNs }],
      to: [...w.names].sort().map((name) => ({ group: w.toGroup, kind: w.toKind, name })),
    },
  }));
}
