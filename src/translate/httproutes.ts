/** HTTPRoute rules → table HttpRules for one listener's virtual hosts, in Gateway API precedence order. */
import type { Diagnostic } from '../api/diagnostics.ts';
import { parseDuration } from '../api/duration.ts';
import type { HTTPRoute, HTTPRouteFilter, HTTPRouteMatch, HTTPRouteRule } from '../api/types.ts';
import { validCidr } from '../api/validate-policies.ts';
import type {
  HttpBackend,
  HttpFilter,
  HttpMatch,
  HttpRule,
  HttpSecurity,
  HttpVirtualHost,
  PathModifier,
  RouteRef,
} from '../table/types.ts';
import type { BackendIndex, ResolvedBackend } from './backends.ts';
import type { Attachment, Targets } from './context.ts';
import { compareSpecificity } from './hostnames.ts';
import type { Policies } from './policies.ts';
import { annotationSecurity, mergeSecurity } from './security.ts';

/** One HTTP route as the table builder needs it: its rules with resolved backends, and its precedence. */
export interface HttpTarget {
  ref: RouteRef;
  order: number;
  /** Per spec rule, the HttpRules it expands to (one per match). */
  rules: HttpRule[][];
}

export interface HttpTargetEnv {
  backends: BackendIndex;
  policies: Policies;
  diags: Diagnostic[];
}

/** Build the route's HttpRules once; the per-listener vhost builder only sorts them by hostname. */
export function httpTarget(
  route: HTTPRoute,
  order: number,
  resolved: ResolvedBackend[][],
  env: HttpTargetEnv,
): HttpTarget {
  const ns = route.metadata.namespace ?? 'default';
  const ref: RouteRef = { kind: 'HTTPRoute', namespace: ns, name: route.metadata.name };
  const extras = annotationExtras(route, env.diags);
  // Route level: the annotations, then a SecurityPolicy targeting the route (section by section).
  const security = mergeSecurity(
    annotationSecurity(route, env.diags),
    env.policies.routeSecurity(ns, ref.name),
  );
  if (security !== undefined) extras.security = security;
  const rules = (route.spec.rules ?? []).map((rule, ruleIndex) =>
    expandRule(rule, ruleIndex, ref, resolved[ruleIndex] ?? [], env).map((r) => withExtras(r, extras)),
  );
  return { ref, order, rules };
}

const NGINX = 'nginx.ingress.kubernetes.io/';

interface Extras {
  https: boolean;
  maxBodyBytes?: number;
  allowSourceRanges?: string[];
  backendTimeoutMs?: number;
  security?: HttpSecurity;
}

/**
 * The ingress-nginx annotations snigate honours on an HTTPRoute (carried there from an Ingress by convert,
 * or written by hand): backend-protocol, proxy-body-size, whitelist-source-range, proxy-read/send-timeout.
 */
function annotationExtras(route: HTTPRoute, diags: Diagnostic[]): Extras {
  const a = route.metadata.annotations ?? {};
  const object = { kind: 'HTTPRoute', namespace: route.metadata.namespace, name: route.metadata.name };
  const out: Extras = { https: false };
  const proto = a[`${NGINX}backend-protocol`];
  if (proto !== undefined) {
    if (proto.toUpperCase() === 'HTTPS') out.https = true;
    else if (proto.toUpperCase() !== 'HTTP') {
      diags.push({
        severity: 'warning',
        code: 'annotation-unsupported',
        object,
        message: `${NGINX}backend-protocol ${proto} is not supported (HTTP and HTTPS are): requests go over HTTP`,
      });
    }
  }
  const size = a[`${NGINX}proxy-body-size`];
  if (size !== undefined) {
    const m = /^(\d+)([kKmMgG]?)$/.exec(size.trim());
    if (!m)
      diags.push({
        severity: 'warning',
        code: 'annotation-invalid',
        object,
        message: `${NGINX}proxy-body-size ${JSON.stringify(size)}: write a size like 8k, 10m or 1g (0 = no limit)`,
      });
    else {
      const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[
        m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'
      ];
      const bytes = Number(m[1]) * mult;
      if (bytes > 0) out.maxBodyBytes = bytes;
    }
  }
  const ranges = a[`${NGINX}whitelist-source-range`];
  if (ranges !== undefined) {
    const list = ranges
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
    // The same check as the deny list and SecurityPolicy: hex-letter words such as "bad" are not addresses.
    const bad = list.filter((c) => !validCidr(c));
    if (bad.length > 0)
      diags.push({
        severity: 'warning',
        code: 'annotation-invalid',
        object,
        message: `${NGINX}whitelist-source-range: ${bad.join(', ')} is not a CIDR; those entries are ignored`,
      });
    out.allowSourceRanges = list.filter((c) => !bad.includes(c));
  }
  const secs = [a[`${NGINX}proxy-read-timeout`], a[`${NGINX}proxy-send-timeout`]]
    .filter((x) => x !== undefined)
    .map(Number);
  if (secs.some((n) => !Number.isFinite(n) || n <= 0)) {
    diags.push({
      severity: 'warning',
      code: 'annotation-invalid',
      object,
      message: `${NGINX}proxy-read-timeout / proxy-send-timeout are whole seconds, e.g. "60"`,
    });
  } else if (secs.length > 0) out.backendTimeoutMs = secs.sort((a, b) => b - a)[0]! * 1000;
  return out;
}

function withExtras(r: HttpRule, x: Extras): HttpRule {
  if (
    !x.https &&
    x.maxBodyBytes === undefined &&
    x.allowSourceRanges === undefined &&
    x.backendTimeoutMs === undefined &&
    x.security === undefined
  )
    return r;
  const out: HttpRule = { ...r };
  if (x.security !== undefined) out.security = x.security;
  if (x.https) {
    // ingress-nginx's default for backend-protocol HTTPS: no SNI, no verification (proxy_ssl_verify off).
    out.backends = r.backends.map((b) => ({
      ...b,
      protocol: 'https' as const,
      tls: { serverName: '', caPem: null, insecureSkipVerify: true },
    }));
  }
  if (x.maxBodyBytes !== undefined || x.allowSourceRanges !== undefined) {
    out.limits = {
      ...(x.maxBodyBytes !== undefined ? { maxBodyBytes: x.maxBodyBytes } : {}),
      ...(x.allowSourceRanges ? { allowSourceRanges: x.allowSourceRanges } : {}),
    };
  }
  if (x.backendTimeoutMs !== undefined && r.timeouts.backendRequestMs === 0) {
    out.timeouts = { ...r.timeouts, backendRequestMs: x.backendTimeoutMs };
  }
  return out;
}

function expandRule(
  rule: HTTPRouteRule,
  ruleIndex: number,
  ref: RouteRef,
  resolved: ResolvedBackend[],
  env: HttpTargetEnv,
): HttpRule[] {
  const problems: string[] = [];
  const filters = (rule.filters ?? []).flatMap((f) => filter(f, ref, env, problems));
  const backends: HttpBackend[] = (rule.backendRefs ?? []).map((br, i) => {
    const b = resolved[i]!.backend;
    return {
      ...b,
      filters: (br.filters ?? []).flatMap((f) => filter(f, ref, env, problems)),
      protocol: 'http' as const,
    };
  });
  if (problems.length > 0) {
    env.diags.push({
      severity: 'warning',
      code: 'httproute-filter-unsupported',
      object: { kind: 'HTTPRoute', namespace: ref.namespace, name: ref.name },
      path: `spec.rules[${ruleIndex}]`,
      message: `${problems.join('; ')}: requests matching this rule get 500 instead of reaching a backend`,
    });
  }
  const timeouts = {
    requestMs: durationMs(rule.timeouts?.request),
    backendRequestMs: durationMs(rule.timeouts?.backendRequest),
  };
  const matches: HTTPRouteMatch[] = rule.matches && rule.matches.length > 0 ? rule.matches : [{}];
  return matches.map((m) => ({
    route: ref,
    ruleIndex,
    match: toMatch(m),
    filters,
    // A rule whose filters cannot be honoured must not forward (the spec's 500 for unsupported filters).
    backends: problems.length > 0 ? [] : backends,
    timeouts,
  }));
}

function durationMs(s: string | undefined): number {
  return s === undefined ? 0 : (parseDuration(s) ?? 0);
}

function toMatch(m: HTTPRouteMatch): HttpMatch {
  return {
    path: { type: m.path?.type ?? 'PathPrefix', value: m.path?.value ?? '/' },
    headers: (m.headers ?? []).map((h) => ({ type: h.type ?? 'Exact', name: h.name, value: h.value })),
    queryParams: (m.queryParams ?? []).map((q) => ({
      type: q.type ?? 'Exact',
      name: q.name,
      value: q.value,
    })),
    method: m.method ? m.method.toUpperCase() : null,
  };
}

function pathModifier(
  p: { type: string; replaceFullPath?: string; replacePrefixMatch?: string } | undefined,
): PathModifier | null {
  if (!p) return null;
  return p.type === 'ReplaceFullPath'
    ? { type: 'ReplaceFullPath', value: p.replaceFullPath ?? '/' }
    : { type: 'ReplacePrefixMatch', value: p.replacePrefixMatch ?? '/' };
}

function filter(f: HTTPRouteFilter, ref: RouteRef, env: HttpTargetEnv, problems: string[]): HttpFilter[] {
  switch (f.type) {
    case 'RequestHeaderModifier':
    case 'ResponseHeaderModifier': {
      const m = f.type === 'RequestHeaderModifier' ? f.requestHeaderModifier : f.responseHeaderModifier;
      return [{ type: f.type, set: m?.set ?? [], add: m?.add ?? [], remove: m?.remove ?? [] }];
    }
    case 'RequestRedirect': {
      const r = f.requestRedirect ?? {};
      return [
        {
          type: 'RequestRedirect',
          scheme: r.scheme ?? null,
          hostname: r.hostname ?? null,
          port: r.port ?? null,
          path: pathModifier(r.path),
          statusCode: r.statusCode ?? 302,
        },
      ];
    }
    case 'URLRewrite':
      return [
        {
          type: 'URLRewrite',
          hostname: f.urlRewrite?.hostname ?? null,
          path: pathModifier(f.urlRewrite?.path),
        },
      ];
    case 'RequestMirror': {
      const m = f.requestMirror;
      if (!m) return [];
      const r = env.backends.resolve(
        m.backendRef,
        'HTTPRoute',
        ref.namespace,
        env.policies.backendPolicy(m.backendRef, 'HTTPRoute', ref.namespace, ref.name),
      );
      if (r.problem) {
        problems.push(`RequestMirror to ${m.backendRef.name}: ${r.problem.reason}`);
        return [];
      }
      const percent =
        m.percent ?? (m.fraction ? (100 * m.fraction.numerator) / (m.fraction.denominator ?? 100) : 100);
      return [{ type: 'RequestMirror', backend: r.backend, percent }];
    }
    default:
      problems.push(`filter type ${f.type} is not supported`);
      return [];
  }
}

/**
 * Gateway API precedence among rules that match the same host: Exact path, then the longest prefix, then
 * regular expressions; then a method match; then more header matches; then more query matches; then the
 * oldest route, then namespace/name; then rule and match order.
 */
function compareRules(
  a: { rule: HttpRule; order: number; seq: number },
  b: { rule: HttpRule; order: number; seq: number },
): number {
  const pa = a.rule.match.path;
  const pb = b.rule.match.path;
  const rank = (t: string) => (t === 'Exact' ? 0 : t === 'PathPrefix' ? 1 : 2);
  if (rank(pa.type) !== rank(pb.type)) return rank(pa.type) - rank(pb.type);
  if (pa.type !== 'Exact' && pa.value.length !== pb.value.length) return pb.value.length - pa.value.length;
  const ma = a.rule.match.method ? 0 : 1;
  const mb = b.rule.match.method ? 0 : 1;
  if (ma !== mb) return ma - mb;
  if (a.rule.match.headers.length !== b.rule.match.headers.length)
    return b.rule.match.headers.length - a.rule.match.headers.length;
  if (a.rule.match.queryParams.length !== b.rule.match.queryParams.length) {
    return b.rule.match.queryParams.length - a.rule.match.queryParams.length;
  }
  return a.order - b.order || a.seq - b.seq;
}

/** Virtual hosts for one listener from its HTTP attachments (hostname lists already intersected). */
export function buildVirtualHosts(
  attachments: Attachment[],
  targets: Targets<HttpTarget>,
  listenerSecurity?: HttpSecurity,
): HttpVirtualHost[] {
  // The listener's (and its Gateway's) SecurityPolicy under each rule's own: one copy of the rule per listener.
  const copies = new Map<HttpRule, HttpRule>();
  const withListener = (rule: HttpRule): HttpRule => {
    if (listenerSecurity === undefined) return rule;
    let c = copies.get(rule);
    if (c === undefined)
      copies.set(rule, (c = { ...rule, security: mergeSecurity(listenerSecurity, rule.security) }));
    return c;
  };
  const byHost = new Map<string, { rule: HttpRule; order: number; seq: number }[]>();
  for (const a of attachments) {
    const t = targets.get(a);
    if (!t) continue;
    for (const h of a.hostnames) {
      let list = byHost.get(h);
      if (!list) byHost.set(h, (list = []));
      let seq = 0;
      for (const expanded of t.rules)
        for (const rule of expanded) list.push({ rule: withListener(rule), order: t.order, seq: seq++ });
    }
  }
  return [...byHost.entries()]
    .sort(([a], [b]) => compareSpecificity(a, b))
    .map(([hostname, list]) => ({ hostname, rules: list.sort(compareRules).map((x) => x.rule) }));
}
