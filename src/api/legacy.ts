/** The two legacy shapes users copy from old blog posts: TLSRoute `matches[].snis` (rewritten) and Ingress `tcp`/`serviceName` (rejected with the fix). */

import { stringify } from 'yaml';
import type { Diagnostic } from './diagnostics.ts';
import { type Checker, isObj, type Obj } from './validate-common.ts';

export const CONVERTED_FROM = 'snigate.io/converted-from';
const TLSROUTE_V1 = 'gateway.networking.k8s.io/v1';

export interface LegacyPart {
  object: Obj;
  /** The rule of the original route this part came from, to map diagnostics back to the user's file. */
  ruleIndex: number;
}

export interface LegacyResult {
  parts: LegacyPart[];
  diagnostics: Diagnostic[];
}

function yamlBlock(objects: Obj[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0 }).trimEnd()).join('\n---\n');
}

/**
 * A TLSRoute with `spec.rules[].matches[].snis` (v1alpha1, removed in v0.5.0) becomes one standard TLSRoute per rule.
 * Returns undefined when the route is not legacy. With `strict`, the same message is an error and no parts are returned.
 */
export function rewriteLegacyTLSRoute(o: Obj, strict: boolean): LegacyResult | undefined {
  const spec = isObj(o.spec) ? o.spec : undefined;
  const rules = Array.isArray(spec?.rules) ? (spec.rules as unknown[]) : [];
  if (!spec || !rules.some((r) => isObj(r) && r.matches !== undefined)) return undefined;
  const meta = (isObj(o.metadata) ? o.metadata : {}) as Obj;
  const name = String(meta.name ?? '');
  const namespace = typeof meta.namespace === 'string' ? meta.namespace : undefined;
  const object = { kind: 'TLSRoute', name, ...(namespace ? { namespace } : {}) };
  const routeHosts = Array.isArray(spec.hostnames) ? (spec.hostnames as unknown[]) : [];
  const diagnostics: Diagnostic[] = [];
  const parts: LegacyPart[] = [];
  const firstLegacy = rules.findIndex((r) => isObj(r) && r.matches !== undefined);

  rules.forEach((r, i) => {
    const rule = isObj(r) ? r : {};
    const snis: unknown[] = [];
    for (const m of Array.isArray(rule.matches) ? rule.matches : []) {
      if (!isObj(m) || !Array.isArray(m.snis)) continue;
      for (const s of m.snis) if (!snis.includes(s)) snis.push(s);
    }
    const hostnames = snis.length > 0 ? snis : routeHosts;
    if (hostnames.length === 0) {
      diagnostics.push({
        severity: 'error',
        code: 'legacy-tlsroute-snis',
        message: `rule ${i} has no \`matches[].snis\` and the route has no \`spec.hostnames\`, so there is no SNI to route by`,
        object,
        path: `spec.rules[${i}]`,
        hint: 'add `matches: [{snis: ["app.example.com"]}]` to this rule, or better, write one TLSRoute per backend with `spec.hostnames`',
      });
      return;
    }
    const newRule: Obj = {};
    if (rule.name !== undefined) newRule.name = rule.name;
    newRule.backendRefs = rule.backendRefs;
    const newMeta: Obj = { name: rules.length === 1 ? name : `${name}-${i}` };
    if (namespace) newMeta.namespace = namespace;
    if (meta.labels !== undefined) newMeta.labels = meta.labels;
    newMeta.annotations = {
      ...(isObj(meta.annotations) ? meta.annotations : {}),
      [CONVERTED_FROM]: `${name} spec.rules[${i}]`,
    };
    if (meta.generation !== undefined) newMeta.generation = meta.generation;
    const newSpec: Obj = {};
    if (spec.parentRefs !== undefined) newSpec.parentRefs = spec.parentRefs;
    newSpec.hostnames = hostnames;
    newSpec.rules = [newRule];
    parts.push({
      object: { apiVersion: TLSROUTE_V1, kind: 'TLSRoute', metadata: newMeta, spec: newSpec },
      ruleIndex: i,
    });
  });

  const shown = parts.map((p) => {
    const m = { ...(p.object.metadata as Obj) };
    const ann = { ...(m.annotations as Obj) };
    delete ann[CONVERTED_FROM];
    if (Object.keys(ann).length > 0) m.annotations = ann;
    else delete m.annotations;
    delete m.generation;
    return { ...p.object, metadata: m };
  });
  const names = parts.map((p) => (p.object.metadata as Obj).name).join(', ');
  const message =
    'TLSRoute `spec.rules[].matches[].snis` is the v1alpha1 form, removed in Gateway API v0.5.0; the standard form is ' +
    'one TLSRoute per backend with `spec.hostnames` (TLSRoute v1 allows exactly one rule). ' +
    (strict
      ? 'Rejected (--strict).'
      : `snigate converted it into ${parts.length} TLSRoute${parts.length === 1 ? '' : 's'}: ${names}.`);
  diagnostics.unshift({
    severity: strict ? 'error' : 'warning',
    code: 'legacy-tlsroute-snis',
    message,
    object,
    path: `spec.rules[${firstLegacy}].matches`,
    hint: `write instead:\n${yamlBlock(shown)}`,
  });
  const failed = diagnostics.some((d) => d.severity === 'error');
  return { parts: failed ? [] : parts, diagnostics };
}

/** Maps a path in converted part `ruleIndex` back to the field the user wrote in the original route. */
export function mapLegacyPath(path: string, ruleIndex: number): string {
  if (path.startsWith('spec.rules[0]'))
    return `spec.rules[${ruleIndex}]${path.slice('spec.rules[0]'.length)}`;
  if (path.startsWith('spec.hostnames')) return `spec.rules[${ruleIndex}].matches`;
  return path;
}

/** Ingress `rules[].tcp` and `serviceName`/`servicePort` do not exist in networking.k8s.io/v1: reject them with the fix. */
export function ingressLegacyFields(c: Checker, o: Obj): void {
  const spec = isObj(o.spec) ? o.spec : {};
  const meta = (isObj(o.metadata) ? o.metadata : {}) as Obj;
  const rules = Array.isArray(spec.rules) ? (spec.rules as unknown[]) : [];
  rules.forEach((r, i) => {
    if (!isObj(r)) return;
    if (r.tcp !== undefined) {
      const tcp = isObj(r.tcp) ? r.tcp : {};
      const first = Array.isArray(tcp.paths) && isObj(tcp.paths[0]) ? tcp.paths[0] : {};
      const b = isObj(first.backend) ? first.backend : {};
      const svc = isObj(b.service) ? b.service : {};
      const service = String(b.serviceName ?? svc.name ?? '<service>');
      const rawPort =
        b.servicePort ?? (isObj(svc.port) ? (svc.port.number ?? svc.port.name) : undefined) ?? 443;
      const port =
        typeof rawPort === 'number' || /^\d+$/.test(String(rawPort))
          ? { number: Number(rawPort) }
          : { name: String(rawPort) };
      const fixed: Obj = {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'Ingress',
        metadata: {
          name: meta.name,
          ...(meta.namespace && meta.namespace !== 'default' ? { namespace: meta.namespace } : {}),
          annotations: {
            ...(isObj(meta.annotations) ? meta.annotations : {}),
            'nginx.ingress.kubernetes.io/ssl-passthrough': 'true',
          },
        },
        spec: {
          ...(spec.ingressClassName ? { ingressClassName: spec.ingressClassName } : {}),
          rules: [
            {
              ...(r.host !== undefined ? { host: r.host } : {}),
              http: {
                paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: service, port } } }],
              },
            },
          ],
        },
      };
      c.error(
        `spec.rules[${i}].tcp`,
        `networking.k8s.io/v1 Ingress has no \`tcp\` rules; to pass TLS through to ${service}, use \`http.paths\` with the annotation ` +
          '`nginx.ingress.kubernetes.io/ssl-passthrough: "true"` (snigate passes the whole host through), or a Gateway API TLSRoute',
        `write instead:\n${yamlBlock([fixed])}`,
        'ingress-tcp-not-supported',
      );
      return;
    }
    const http = isObj(r.http) ? r.http : {};
    const paths = Array.isArray(http.paths) ? (http.paths as unknown[]) : [];
    paths.forEach((x, j) => {
      if (isObj(x)) legacyBackend(c, x.backend, `spec.rules[${i}].http.paths[${j}].backend`);
    });
  });
  legacyBackend(c, spec.defaultBackend, 'spec.defaultBackend');
}

function legacyBackend(c: Checker, v: unknown, p: string): void {
  if (!isObj(v) || (v.serviceName === undefined && v.servicePort === undefined)) return;
  const name = String(v.serviceName ?? '<service>');
  const sp = v.servicePort;
  const port =
    typeof sp === 'number' || /^\d+$/.test(String(sp))
      ? `number: ${String(sp)}`
      : `name: ${String(sp ?? '<port>')}`;
  c.error(
    `${p}.${v.serviceName !== undefined ? 'serviceName' : 'servicePort'}`,
    '`serviceName`/`servicePort` are the extensions/v1beta1 form; networking.k8s.io/v1 uses `backend.service.name` and `backend.service.port.number`',
    `write instead:\nbackend:\n  service:\n    name: ${name}\n    port:\n      ${port}`,
    'ingress-legacy-backend',
  );
}
