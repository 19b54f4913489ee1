/**
 * SecurityPolicy and the ingress-nginx protection annotations → plain HttpSecurity / ConnectionRateSettings data in
 * the table. Pure: the data plane builds the WAF engines and limiters from this data.
 */
import type { Diagnostic } from '../api/diagnostics.ts';
import type { HTTPRoute, SecurityPolicy } from '../api/types.ts';
import { validCidr } from '../api/validate-policies.ts';
import type { ConnectionRateSettings, HttpSecurity, WafSettings } from '../table/types.ts';

const NGINX = 'nginx.ingress.kubernetes.io/';

/** The ingress-nginx annotations this module reads (carried from Ingresses onto the generated HTTPRoutes). */
export const SECURITY_ANNOTATIONS = [
  `${NGINX}enable-modsecurity`,
  `${NGINX}enable-owasp-core-rules`,
  `${NGINX}modsecurity-snippet`,
  `${NGINX}limit-rps`,
  `${NGINX}limit-rpm`,
  `${NGINX}limit-burst-multiplier`,
  `${NGINX}limit-connections`,
  `${NGINX}denylist-source-range`,
] as const;

const DEFAULT_WAF: WafSettings = {
  enabled: true,
  mode: 'block',
  paranoia: 1,
  anomalyThreshold: 5,
  exclusions: { ruleIds: [], paths: [], targets: [] },
};

/** A more specific level's sections replace the less specific one's, section by section. */
export function mergeSecurity(
  base: HttpSecurity | undefined,
  over: HttpSecurity | undefined,
): HttpSecurity | undefined {
  if (base === undefined) return over;
  if (over === undefined) return base;
  const out: HttpSecurity = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined || k === 'sources') continue;
    (out as Record<string, unknown>)[k] = v;
  }
  if (base.sources !== undefined || over.sources !== undefined)
    out.sources = { ...(base.sources ?? {}), ...(over.sources ?? {}) };
  return out;
}

/** One policy's HTTP settings; `scope` names the bucket / counter space (the policy and its target). */
export function policySecurity(p: SecurityPolicy, scope: string): HttpSecurity | undefined {
  const s = p.spec;
  const source = `SecurityPolicy/${p.metadata.namespace ?? 'default'}/${p.metadata.name}`;
  const out: HttpSecurity = {};
  const sources: Record<string, string> = {};
  if (s.waf !== undefined) {
    const ex = s.waf.exclusions ?? {};
    out.waf = {
      enabled: s.waf.enabled !== false,
      mode: s.waf.mode === 'Detect' ? 'detect' : 'block',
      paranoia: (s.waf.paranoiaLevel ?? 1) as WafSettings['paranoia'],
      anomalyThreshold: s.waf.anomalyThreshold ?? 5,
      exclusions: {
        ruleIds: ex.ruleIds ?? [],
        paths: (ex.paths ?? []).map((x) => ({ pathPrefix: x.pathPrefix, ruleIds: x.ruleIds })),
        targets: (ex.targets ?? []).map((x) => ({
          ruleIds: x.ruleIds,
          variable: x.variable as WafSettings['exclusions']['targets'][number]['variable'],
          name: x.name,
          ...(x.pathPrefix !== undefined ? { pathPrefix: x.pathPrefix } : {}),
        })),
      },
    };
    sources.waf = source;
  }
  const rl = s.rateLimit;
  if (rl !== undefined) {
    const key = rl.key ?? { type: 'ClientIP' };
    const redis = rl.backend?.type === 'Redis' ? rl.backend.redis : undefined;
    out.rateLimit = {
      scope,
      key:
        key.type === 'Route'
          ? { by: 'route' }
          : key.type === 'Header'
            ? { by: 'header', name: (key.header ?? '').toLowerCase() }
            : { by: 'client-ip' },
      rate: rl.requests,
      period: rl.unit === 'Minute' ? 'minute' : 'second',
      burst: rl.burst ?? rl.requests,
      backend:
        redis !== undefined
          ? {
              type: 'redis',
              address: redis.address,
              failMode: redis.failMode === 'Closed' ? 'closed' : 'open',
            }
          : { type: 'local' },
    };
    sources.rateLimit = source;
  }
  if (s.ipAccess !== undefined) {
    out.ipAccess = { allow: s.ipAccess.allow ?? [], deny: s.ipAccess.deny ?? [] };
    sources.ipAccess = source;
  }
  const xff = s.clientIPDetection?.xForwardedFor?.trustedCIDRs;
  if (xff !== undefined) out.xffTrustedCidrs = xff;
  const lim = s.requestLimits;
  if (lim?.maxBodyBytes !== undefined) out.maxBodyBytes = lim.maxBodyBytes;
  if (lim?.maxHeaderBytes !== undefined) out.maxHeaderBytes = lim.maxHeaderBytes;
  if (lim?.maxConcurrentPerClientIP !== undefined)
    out.concurrency = { perClientIp: lim.maxConcurrentPerClientIP, scope };
  if (Object.keys(out).length === 0) return undefined;
  if (Object.keys(sources).length > 0) out.sources = sources;
  return out;
}

export function policyConnectionRate(p: SecurityPolicy): ConnectionRateSettings | undefined {
  const c = p.spec.connectionRateLimit;
  if (c === undefined) return undefined;
  return {
    rate: c.connections,
    period: c.unit === 'Minute' ? 'minute' : 'second',
    burst: c.burst ?? c.connections,
  };
}

/**
 * The ingress-nginx protection annotations of an HTTPRoute (carried from an Ingress by convert, or written by hand):
 * enable-modsecurity / enable-owasp-core-rules / modsecurity-snippet → WAF; limit-rps / limit-rpm /
 * limit-burst-multiplier → a per-client-address rate limit; limit-connections → requests in flight per client
 * address; denylist-source-range → deny list. whitelist-source-range stays in HttpRule.limits (httproutes.ts).
 */
export function annotationSecurity(route: HTTPRoute, diags: Diagnostic[]): HttpSecurity | undefined {
  const a = route.metadata.annotations ?? {};
  const ns = route.metadata.namespace ?? 'default';
  const object = { kind: 'HTTPRoute', namespace: ns, name: route.metadata.name };
  const scope = `HTTPRoute/${ns}/${route.metadata.name}`;
  const source = `annotations of ${scope}`;
  const warn = (code: string, message: string, hint?: string) =>
    diags.push({ severity: 'warning', code, object, message, ...(hint ? { hint } : {}) });
  const out: HttpSecurity = {};
  const sources: Record<string, string> = {};

  const modsec = a[`${NGINX}enable-modsecurity`];
  const crs = a[`${NGINX}enable-owasp-core-rules`];
  const snippet = a[`${NGINX}modsecurity-snippet`];
  if (modsec === 'true' || crs === 'true') {
    // ingress-nginx's modsecurity.conf says `SecRuleEngine DetectionOnly`: the snippet's SecRuleEngine On blocks.
    const waf: WafSettings = {
      ...DEFAULT_WAF,
      mode: 'detect',
      exclusions: { ruleIds: [], paths: [], targets: [] },
    };
    if (snippet !== undefined) applySnippet(waf, snippet, warn);
    if (crs === 'false')
      warn(
        'annotation-unsupported',
        `${NGINX}enable-owasp-core-rules "false": snigate's WAF always runs the OWASP Core Rule Set`,
      );
    out.waf = waf;
    sources.waf = source;
  } else if (snippet !== undefined) {
    warn(
      'annotation-ignored',
      `${NGINX}modsecurity-snippet is set but ${NGINX}enable-modsecurity is not "true": no WAF`,
      `add ${NGINX}enable-modsecurity: "true"`,
    );
  }

  const num = (name: string): number | undefined => {
    const v = a[`${NGINX}${name}`];
    if (v === undefined) return undefined;
    if (!/^\d{1,9}$/.test(v.trim()) || Number(v) < 1) {
      warn(
        'annotation-invalid',
        `${NGINX}${name} ${JSON.stringify(v)}: write a positive whole number; ignored`,
      );
      return undefined;
    }
    return Number(v);
  };
  const rps = num('limit-rps');
  const rpm = num('limit-rpm');
  const mult = num('limit-burst-multiplier') ?? 5;
  if (rps !== undefined || rpm !== undefined) {
    if (rps !== undefined && rpm !== undefined)
      warn(
        'annotation-unsupported',
        `${NGINX}limit-rps and limit-rpm are both set: snigate applies one rate per route, limit-rps (${rps}/s)`,
      );
    const rate = rps ?? rpm!;
    out.rateLimit = {
      scope,
      key: { by: 'client-ip' },
      rate,
      period: rps !== undefined ? 'second' : 'minute',
      burst: rate * mult,
      backend: { type: 'local' },
    };
    sources.rateLimit = source;
  }
  const conns = num('limit-connections');
  if (conns !== undefined) out.concurrency = { perClientIp: conns, scope };

  const deny = a[`${NGINX}denylist-source-range`];
  if (deny !== undefined) {
    const list = deny
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
    const bad = list.filter((c) => !validCidr(c));
    if (bad.length > 0)
      warn(
        'annotation-invalid',
        `${NGINX}denylist-source-range: ${bad.join(', ')} is not a CIDR; those entries are ignored`,
      );
    out.ipAccess = { allow: [], deny: list.filter((c) => !bad.includes(c)) };
    sources.ipAccess = source;
  }
  if (Object.keys(out).length === 0) return undefined;
  if (Object.keys(sources).length > 0) out.sources = sources;
  return out;
}

const ENGINE = /^SecRuleEngine\s+(On|DetectionOnly)$/i;
const REMOVE = /^SecRuleRemoveById\s+([\d\s-]+)$/;
const CRS_INCLUDE = /^Include\s+\S*owasp-modsecurity-crs\/nginx-modsecurity\.conf$/;
const SETVAR =
  /^SecAction\s+"id:\d{1,8},\s*phase:1,\s*(?:nolog,\s*)?pass,\s*(?:t:none,\s*)?setvar:'?tx\.(paranoia_level|inbound_anomaly_score_threshold)=(\d{1,5})'?"$/;

/**
 * The safe subset of modsecurity-snippet: `SecRuleEngine On|DetectionOnly`, `SecRuleRemoveById N [N-M ...]`, the
 * CRS setup SecActions for paranoia level and inbound threshold, and ingress-nginx's CRS Include (a no-op: the CRS
 * is always loaded). Every other line is refused with a diagnostic and not applied; the accepted ones are.
 */
function applySnippet(
  waf: WafSettings,
  snippet: string,
  warn: (code: string, message: string, hint?: string) => void,
): void {
  const refused: string[] = [];
  for (const raw of snippet.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    let m = ENGINE.exec(line);
    if (m) {
      waf.mode = m[1]!.toLowerCase() === 'on' ? 'block' : 'detect';
      continue;
    }
    m = REMOVE.exec(line);
    if (m) {
      const ids: number[] = [];
      let ok = true;
      for (const tok of m[1]!.trim().split(/\s+/)) {
        const r = /^(\d{1,8})(?:-(\d{1,8}))?$/.exec(tok);
        const lo = r ? Number(r[1]) : 0;
        const hi = r?.[2] !== undefined ? Number(r[2]) : lo;
        if (!r || lo < 1 || hi < lo || hi - lo > 1000) ok = false;
        else for (let id = lo; id <= hi; id++) ids.push(id);
      }
      if (ok) {
        waf.exclusions.ruleIds.push(...ids.filter((id) => !waf.exclusions.ruleIds.includes(id)));
        continue;
      }
    }
    if (CRS_INCLUDE.test(line)) continue;
    m = SETVAR.exec(line);
    if (m) {
      const n = Number(m[2]);
      if (m[1] === 'paranoia_level' && n >= 1 && n <= 4) {
        waf.paranoia = n as WafSettings['paranoia'];
        continue;
      }
      if (m[1] === 'inbound_anomaly_score_threshold' && n >= 1 && n <= 10_000) {
        waf.anomalyThreshold = n;
        continue;
      }
    }
    refused.push(line.length > 80 ? `${line.slice(0, 80)}…` : line);
  }
  if (refused.length > 0)
    warn(
      'annotation-refused',
      `${NGINX}modsecurity-snippet: ${refused.map((l) => JSON.stringify(l)).join(', ')} refused (not applied); the rest of the snippet is`,
      'snigate accepts SecRuleEngine On|DetectionOnly, SecRuleRemoveById, and the CRS paranoia_level / inbound_anomaly_score_threshold SecActions; use a SecurityPolicy for exclusions',
    );
}
