/**
 * Ingress (networking.k8s.io/v1, ingress-nginx flavour) served through the Gateway API path: the Ingresses
 * that are ours are converted (the same pure convert() as `snigate convert`) into one internal Gateway and
 * its routes, which translate like any others; their problems are reported against the Ingress.
 */
import type { Diagnostic } from '../api/diagnostics.ts';
import type {
  Condition,
  Gateway,
  HTTPRoute,
  Ingress,
  ReferenceGrant,
  Resources,
  TLSRoute,
} from '../api/types.ts';
import { CONVERTED_FROM, convert } from '../convert/index.ts';
import type { ObjectStatus, TranslateOptions } from './options.ts';

export const INGRESS_GATEWAY = 'snigate-ingress';
/** Marks the objects made from Ingresses: served, never shown as objects of their own. */
export const INTERNAL = 'snigate.io/internal';
export const DEFAULT_INGRESS_CONTROLLER = 'snigate.io/ingress-controller';
const CLASS_ANNOTATION = 'kubernetes.io/ingress.class';
const DEFAULT_CLASS = 'ingressclass.kubernetes.io/is-default-class';
const PASSTHROUGH = 'nginx.ingress.kubernetes.io/ssl-passthrough';

export interface IngressPlan {
  /** Resources with the internal Gateway and routes added. */
  resources: Resources;
  served: Ingress[];
}

/** Which Ingresses are ours: their class (ingressClassName, or the legacy annotation, or the default class). */
export function selectIngresses(res: Resources, opts: TranslateOptions, diags: Diagnostic[]): Ingress[] {
  const controller = opts.ingressController ?? DEFAULT_INGRESS_CONTROLLER;
  const classes = new Map(res.ingressClasses.map((c) => [c.metadata.name, c]));
  const defaultClass = res.ingressClasses.find((c) => c.metadata.annotations?.[DEFAULT_CLASS] === 'true');
  const out: Ingress[] = [];
  for (const ing of res.ingresses) {
    const object = { kind: 'Ingress', namespace: ing.metadata.namespace, name: ing.metadata.name };
    const name =
      ing.spec.ingressClassName ??
      ing.metadata.annotations?.[CLASS_ANNOTATION] ??
      defaultClass?.metadata.name;
    const cls = name === undefined ? undefined : classes.get(name);
    if (cls && cls.spec.controller !== controller) {
      diags.push({
        severity: 'info',
        code: 'ingress-other-controller',
        object,
        message: `IngressClass ${name} belongs to controller ${cls.spec.controller}: not served (ours is ${controller})`,
      });
      continue;
    }
    if (!cls && !opts.serveUnknownClasses) {
      diags.push({
        severity: 'warning',
        code: 'ingress-class-not-found',
        object,
        message: name
          ? `IngressClass ${name} does not exist: not served`
          : 'no ingressClassName and no default IngressClass: not served',
      });
      continue;
    }
    if (!cls) {
      diags.push({
        severity: 'info',
        code: 'ingress-class-not-found',
        object,
        message: `${name ? `IngressClass ${name} is not among the manifests` : 'no ingress class'}; snigate serves this Ingress anyway (file mode). Add an IngressClass with controller ${controller} to make it explicit`,
      });
    }
    out.push(ing);
  }
  return out;
}

export function planIngresses(res: Resources, opts: TranslateOptions, diags: Diagnostic[]): IngressPlan {
  const served = selectIngresses(res, opts, diags);
  if (served.length === 0) return { resources: res, served };
  const inputs = served.map((ing) => {
    let object = ing as unknown as Record<string, unknown>;
    if (opts.enableTlsPassthrough === false && ing.metadata.annotations?.[PASSTHROUGH] === 'true') {
      diags.push({
        severity: 'warning',
        code: 'ingress-passthrough-disabled',
        object: { kind: 'Ingress', namespace: ing.metadata.namespace, name: ing.metadata.name },
        message: `${PASSTHROUGH} is set but TLS passthrough is disabled (--enable-tls-passthrough=false): the Ingress is served as a normal, terminating Ingress`,
      });
      const { [PASSTHROUGH]: _, ...rest } = ing.metadata.annotations ?? {};
      object = { ...ing, metadata: { ...ing.metadata, annotations: rest } };
    }
    return { object, file: '' };
  });
  const services = res.services.map((s) => ({ object: s as unknown as Record<string, unknown>, file: '' }));
  const converted = convert([...inputs, ...services], {
    gatewayName: INGRESS_GATEWAY,
    gatewayClass: opts.gatewayClass ?? INGRESS_GATEWAY,
  });
  for (const n of converted.notes) {
    // Notes about the generated manifests themselves mean nothing when they are served directly.
    if (/kept as annotations|is replaced by the Gateway's gatewayClassName/.test(n.message)) continue;
    const m = /^Ingress (\S+)\/(\S+)$/.exec(n.object);
    diags.push({
      severity: n.severity === 'unsupported' ? 'warning' : 'info',
      code: n.severity === 'unsupported' ? 'ingress-unsupported' : 'ingress-note',
      object: m ? { kind: 'Ingress', namespace: m[1], name: m[2]! } : undefined,
      message: n.message,
    });
  }
  const mark = <T extends { metadata: { annotations?: Record<string, string> } }>(o: T): T => {
    o.metadata.annotations = { ...(o.metadata.annotations ?? {}), [INTERNAL]: 'ingress' };
    return o;
  };
  const objs = converted.objects;
  const gateways = objs
    .filter((o) => o.kind === 'Gateway')
    .map((o) => {
      const gw = mark(o as unknown as Gateway);
      // The youngest Gateway: on a shared port, listeners of real Gateways win conflicts.
      gw.metadata.creationTimestamp = '9999-12-31T23:59:59Z';
      gw.metadata.generation = 1;
      return gw;
    });
  const withGen = <T extends { metadata: { generation?: number } }>(o: T): T => {
    o.metadata.generation = 1;
    return o;
  };
  return {
    served,
    resources: {
      ...res,
      gateways: [...res.gateways, ...gateways],
      httpRoutes: [
        ...res.httpRoutes,
        ...objs.filter((o) => o.kind === 'HTTPRoute').map((o) => withGen(mark(o as unknown as HTTPRoute))),
      ],
      tlsRoutes: [
        ...res.tlsRoutes,
        ...objs.filter((o) => o.kind === 'TLSRoute').map((o) => withGen(mark(o as unknown as TLSRoute))),
      ],
      referenceGrants: [
        ...res.referenceGrants,
        ...objs.filter((o) => o.kind === 'ReferenceGrant').map((o) => mark(o as unknown as ReferenceGrant)),
      ],
    },
  };
}

export function isInternal(s: { metadata: { annotations?: Record<string, string> } }): boolean {
  return s.metadata.annotations?.[INTERNAL] !== undefined;
}

/**
 * Ingress status (`status.loadBalancer.ingress`), and every problem of the internal objects reported against
 * the Ingress they came from, since those objects are never shown.
 */
export function ingressStatuses(
  plan: IngressPlan,
  internal: ObjectStatus[],
  statusAddresses: string[],
  diags: Diagnostic[],
): ObjectStatus[] {
  const sourceOf = new Map<string, string>();
  for (const routes of [plan.resources.httpRoutes, plan.resources.tlsRoutes]) {
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i]!;
      const from = r.metadata.annotations?.[CONVERTED_FROM];
      if (from && isInternal(r)) sourceOf.set(`${r.kind}/${r.metadata.namespace}/${r.metadata.name}`, from);
    }
  }
  // Diagnostics already written about internal objects are about the Ingress the user wrote.
  for (const d of diags) {
    const from = d.object
      ? sourceOf.get(`${d.object.kind}/${d.object.namespace}/${d.object.name}`)
      : undefined;
    const m = from ? /^Ingress (\S+)\/(\S+)$/.exec(from) : null;
    if (m) d.object = { kind: 'Ingress', namespace: m[1], name: m[2]! };
    else if (d.object?.kind === 'Gateway' && d.object.name === INGRESS_GATEWAY) d.object = undefined;
  }
  for (const s of internal) {
    const from = sourceOf.get(`${s.kind}/${s.metadata.namespace}/${s.metadata.name}`);
    const m = from ? /^Ingress (\S+)\/(\S+)$/.exec(from) : null;
    const object = m ? { kind: 'Ingress', namespace: m[1], name: m[2]! } : undefined;
    for (const p of (s.status.parents as { conditions: Condition[] }[] | undefined) ?? []) {
      for (const c of p.conditions) {
        if (c.status === 'True') continue;
        diags.push({
          severity: 'warning',
          code: `ingress-${c.type.toLowerCase()}`,
          object,
          message: `${c.reason}: ${c.message}`,
        });
      }
    }
    for (const l of (s.status.listeners as { name: string; conditions: Condition[] }[] | undefined) ?? []) {
      for (const c of l.conditions) {
        const bad =
          (c.type === 'Conflicted' && c.status === 'True') ||
          (c.type !== 'Conflicted' && c.type !== 'OverlappingTLSConfig' && c.status === 'False');
        if (!bad) continue;
        diags.push({
          severity: 'warning',
          code: `ingress-listener-${c.type.toLowerCase()}`,
          message: `Ingress listener ${l.name}: ${c.reason}: ${c.message}`,
        });
      }
    }
  }
  return plan.served.map((ing) => ({
    apiVersion: ing.apiVersion,
    kind: 'Ingress',
    metadata: {
      name: ing.metadata.name,
      namespace: ing.metadata.namespace ?? 'default',
      generation: ing.metadata.generation ?? 1,
    },
    status: { loadBalancer: { ingress: statusAddresses.map((ip) => ({ ip })) } },
  }));
}
