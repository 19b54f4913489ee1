/**
 * snigate policies (GEP-713 attachment): BackendTrafficPolicy → per-backend settings, ClientTrafficPolicy → per-port,
 * SecurityPolicy → per-listener and per-route protection (security.ts).
 */
import { parseDuration } from '../api/duration.ts';
import type {
  BackendRef,
  BackendTrafficPolicy,
  ClientTrafficPolicy,
  KubeObject,
  PolicyTargetRef,
  Resources,
  SecurityPolicy,
  Service,
} from '../api/types.ts';
import { GATEWAY_GROUP } from '../api/types.ts';
import type {
  BackendPolicy,
  ClientSettings,
  ConnectionRateSettings,
  HealthCheck,
  HttpSecurity,
} from '../table/types.ts';
import { DEFAULT_BACKEND_POLICY, DEFAULT_CLIENT_SETTINGS } from '../table/types.ts';
import { ConditionType, condition } from './conditions.ts';
import type { GatewayCtx } from './context.ts';
import { bindKey } from './gateways.ts';
import type { ObjectStatus } from './options.ts';
import { mergeSecurity, policyConnectionRate, policySecurity } from './security.ts';
import { byAge } from './sort.ts';

const PolicyReason = {
  Accepted: 'Accepted',
  TargetNotFound: 'TargetNotFound',
  Conflicted: 'Conflicted',
} as const;

interface AncestorResult {
  ref: PolicyTargetRef & { namespace: string };
  ok: boolean;
  reason: string;
  message: string;
}

/** Collects per-target outcomes while the translator runs, then renders policy statuses. */
export class Policies {
  readonly #res: Resources;
  readonly #controllerName: string;
  /** `Service/ns/name[/sectionName]` or `TLSRoute/ns/name` → winning policy (oldest first). */
  readonly #backendByTarget = new Map<string, BackendTrafficPolicy>();
  #services: Map<string, Service> | undefined;
  readonly #results = new Map<KubeObject, AncestorResult[]>();
  #clientByBind = new Map<string, ClientSettings>();
  /** `Gateway/ns/name`, `Gateway/ns/name/section` or `HTTPRoute/ns/name` → the winning SecurityPolicy's settings. */
  readonly #security = new Map<string, { http?: HttpSecurity; connectionRate?: ConnectionRateSettings }>();

  constructor(res: Resources, controllerName: string) {
    this.#res = res;
    this.#controllerName = controllerName;
    for (const p of [...res.backendTrafficPolicies].sort(byAge)) this.#attachBackendPolicy(p);
  }

  #attachBackendPolicy(p: BackendTrafficPolicy): void {
    const ns = p.metadata.namespace ?? 'default';
    const out: AncestorResult[] = [];
    for (const t of p.spec.targetRefs) {
      const ref = { ...t, namespace: ns };
      const exists =
        t.kind === 'Service'
          ? this.#res.services.some(
              (s) =>
                s.metadata.name === t.name &&
                (s.metadata.namespace ?? 'default') === ns &&
                (t.sectionName === undefined || (s.spec.ports ?? []).some((sp) => sp.name === t.sectionName)),
            )
          : (t.kind === 'TLSRoute' ? this.#res.tlsRoutes : this.#res.tcpRoutes).some(
              (r) => r.metadata.name === t.name && (r.metadata.namespace ?? 'default') === ns,
            );
      if (!exists) {
        out.push({
          ref,
          ok: false,
          reason: PolicyReason.TargetNotFound,
          message: `${t.kind} ${ns}/${t.name}${t.sectionName ? ` port ${t.sectionName}` : ''} not found`,
        });
        continue;
      }
      const key = `${t.kind}/${ns}/${t.name}${t.sectionName ? `/${t.sectionName}` : ''}`;
      const prev = this.#backendByTarget.get(key);
      if (prev) {
        out.push({
          ref,
          ok: false,
          reason: PolicyReason.Conflicted,
          message: `${t.kind} ${ns}/${t.name} already has BackendTrafficPolicy ${prev.metadata.name} (older policies win)`,
        });
        continue;
      }
      this.#backendByTarget.set(key, p);
      out.push({ ref, ok: true, reason: PolicyReason.Accepted, message: 'Policy is attached' });
    }
    this.#results.set(p, out);
  }

  /** Defaults ← policy on the Service (port-specific over whole-Service) ← policy on the route. */
  backendPolicy(
    ref: BackendRef,
    routeKind: string,
    routeNamespace: string,
    routeName: string,
  ): BackendPolicy {
    let policy = DEFAULT_BACKEND_POLICY;
    // No BackendTrafficPolicy attached: every lookup below would miss (the common case, once per backendRef).
    if (this.#backendByTarget.size === 0) return policy;
    if ((ref.group ?? '') === '' && (ref.kind ?? 'Service') === 'Service') {
      const ns = ref.namespace ?? routeNamespace;
      const svc = this.#service(ns, ref.name);
      const portName = svc?.spec.ports?.find((p) => p.port === ref.port)?.name;
      const whole = this.#backendByTarget.get(`Service/${ns}/${ref.name}`);
      if (whole) policy = applyBackend(policy, whole);
      const port = portName ? this.#backendByTarget.get(`Service/${ns}/${ref.name}/${portName}`) : undefined;
      if (port) policy = applyBackend(policy, port);
    }
    const route = this.#backendByTarget.get(`${routeKind}/${routeNamespace}/${routeName}`);
    if (route) policy = applyBackend(policy, route);
    return policy;
  }

  /** The first Service of that namespace/name, as `services.find` would return, without a scan per backendRef. */
  #service(ns: string, name: string): Service | undefined {
    if (this.#services === undefined) {
      this.#services = new Map();
      for (const s of this.#res.services) {
        const k = `${s.metadata.namespace ?? 'default'}/${s.metadata.name}`;
        if (!this.#services.has(k)) this.#services.set(k, s);
      }
    }
    return this.#services.get(`${ns}/${name}`);
  }

  /** Resolve ClientTrafficPolicies against the Gateways' binds (after conflicts are known). */
  attachClientPolicies(gateways: GatewayCtx[]): void {
    const byName = new Map(gateways.map((g) => [`${g.namespace}/${g.gateway.metadata.name}`, g]));
    const settings = new Map<string, { s: ClientSettings; by: ClientTrafficPolicy }>();
    for (const p of [...this.#res.clientTrafficPolicies].sort(byAge)) {
      const ns = p.metadata.namespace ?? 'default';
      const out: AncestorResult[] = [];
      for (const t of p.spec.targetRefs) {
        const ref = { ...t, namespace: ns };
        const gw =
          t.group === GATEWAY_GROUP && t.kind === 'Gateway' ? byName.get(`${ns}/${t.name}`) : undefined;
        const listeners =
          gw?.listeners.filter((l) => t.sectionName === undefined || l.spec.name === t.sectionName) ?? [];
        if (!gw || listeners.length === 0) {
          out.push({
            ref,
            ok: false,
            reason: PolicyReason.TargetNotFound,
            message: `Gateway ${ns}/${t.name}${t.sectionName ? ` listener ${t.sectionName}` : ''} not found among the Gateways snigate serves`,
          });
          continue;
        }
        const s = applyClient(DEFAULT_CLIENT_SETTINGS, p);
        const clashes: string[] = [];
        const applied: number[] = [];
        for (const l of listeners) {
          for (const a of gw.bindAddresses) {
            const k = bindKey(a, l.spec.port);
            const prev = settings.get(k);
            if (!prev) settings.set(k, { s, by: p });
            if (!prev || prev.by === p) applied.push(l.spec.port);
            else
              clashes.push(
                `port ${l.spec.port} already takes its client settings from ClientTrafficPolicy ${prev.by.metadata.namespace}/${prev.by.metadata.name}`,
              );
          }
        }
        const why = `${clashes.join('; ')} (a port has one set of client settings; the older policy wins)`;
        out.push(
          clashes.length === 0
            ? { ref, ok: true, reason: PolicyReason.Accepted, message: 'Policy is attached' }
            : applied.length > 0
              ? {
                  ref,
                  ok: true,
                  reason: PolicyReason.Accepted,
                  message: `Policy is attached to port ${[...new Set(applied)].join(', ')}; ${why}`,
                }
              : { ref, ok: false, reason: PolicyReason.Conflicted, message: why },
        );
      }
      this.#results.set(p, out);
    }
    this.#clientByBind = new Map([...settings].map(([k, v]) => [k, v.s]));
  }

  /**
   * Resolve SecurityPolicies: targets are Gateways (a listener with sectionName) snigate serves, or HTTPRoutes.
   * One policy per target: the oldest wins, the others are Conflicted there.
   */
  attachSecurityPolicies(gateways: GatewayCtx[]): void {
    const byName = new Map(gateways.map((g) => [`${g.namespace}/${g.gateway.metadata.name}`, g]));
    const owner = new Map<string, SecurityPolicy>();
    for (const p of [...this.#res.securityPolicies].sort(byAge)) {
      const ns = p.metadata.namespace ?? 'default';
      const out: AncestorResult[] = [];
      for (const t of p.spec.targetRefs) {
        const ref = { ...t, namespace: ns };
        let found: string | null = null;
        const notes: string[] = [];
        if (t.group === GATEWAY_GROUP && t.kind === 'Gateway') {
          const gw = byName.get(`${ns}/${t.name}`);
          const listeners =
            gw?.listeners.filter((l) => t.sectionName === undefined || l.spec.name === t.sectionName) ?? [];
          if (gw && listeners.length > 0) {
            const modes = new Set(listeners.map((l) => l.mode));
            const http = modes.has('terminate-https') || modes.has('http');
            const pt = modes.has('passthrough') || modes.has('tcp');
            const s = p.spec;
            const httpParts = s.waf ?? s.rateLimit ?? s.ipAccess ?? s.requestLimits ?? s.clientIPDetection;
            if (httpParts !== undefined && !http)
              notes.push('its HTTP settings apply to HTTPS and HTTP listeners only (none targeted)');
            if (s.connectionRateLimit !== undefined && !pt)
              notes.push(
                'connectionRateLimit applies to TLS passthrough and TCP listeners only (none targeted)',
              );
            found = `Gateway/${ns}/${t.name}${t.sectionName ? `/${t.sectionName}` : ''}`;
          }
        } else if (t.group === GATEWAY_GROUP && t.kind === 'HTTPRoute' && t.sectionName === undefined) {
          if (
            this.#res.httpRoutes.some(
              (r) => r.metadata.name === t.name && (r.metadata.namespace ?? 'default') === ns,
            )
          ) {
            found = `HTTPRoute/${ns}/${t.name}`;
            if (p.spec.connectionRateLimit !== undefined)
              notes.push('connectionRateLimit applies to listeners only (ignored on an HTTPRoute)');
          }
        }
        if (found === null) {
          out.push({
            ref,
            ok: false,
            reason: PolicyReason.TargetNotFound,
            message:
              t.kind === 'HTTPRoute' && t.sectionName !== undefined
                ? `HTTPRoute ${ns}/${t.name}: sectionName (a rule name) is not supported; target the whole route`
                : `${t.kind} ${ns}/${t.name}${t.sectionName ? ` ${t.kind === 'Gateway' ? 'listener' : 'section'} ${t.sectionName}` : ''} not found among the ${t.kind === 'Gateway' ? 'Gateways snigate serves' : 'HTTPRoutes'}`,
          });
          continue;
        }
        const prev = owner.get(found);
        if (prev !== undefined && prev !== p) {
          out.push({
            ref,
            ok: false,
            reason: PolicyReason.Conflicted,
            message: `${found.replace(/\//, ' ')} already has SecurityPolicy ${prev.metadata.namespace ?? 'default'}/${prev.metadata.name} (one per target; older policies win)`,
          });
          continue;
        }
        owner.set(found, p);
        const scope = `SecurityPolicy/${ns}/${p.metadata.name}@${found}`;
        const http = policySecurity(p, scope);
        const connectionRate = policyConnectionRate(p);
        this.#security.set(found, {
          ...(http ? { http } : {}),
          ...(connectionRate ? { connectionRate } : {}),
        });
        out.push({
          ref,
          ok: true,
          reason: PolicyReason.Accepted,
          message: notes.length === 0 ? 'Policy is attached' : `Policy is attached; ${notes.join('; ')}`,
        });
      }
      this.#results.set(p, out);
    }
  }

  /** Gateway-wide settings, then the listener's own (section by section). */
  listenerSecurity(
    gwNamespace: string,
    gwName: string,
    listener: string,
  ): { http?: HttpSecurity; connectionRate?: ConnectionRateSettings } {
    const whole = this.#security.get(`Gateway/${gwNamespace}/${gwName}`);
    const own = this.#security.get(`Gateway/${gwNamespace}/${gwName}/${listener}`);
    const http = mergeSecurity(whole?.http, own?.http);
    const connectionRate = own?.connectionRate ?? whole?.connectionRate;
    return { ...(http ? { http } : {}), ...(connectionRate ? { connectionRate } : {}) };
  }

  routeSecurity(namespace: string, name: string): HttpSecurity | undefined {
    return this.#security.get(`HTTPRoute/${namespace}/${name}`)?.http;
  }

  clientSettings(key: string): ClientSettings {
    return this.#clientByBind.get(key) ?? DEFAULT_CLIENT_SETTINGS;
  }

  statuses(): ObjectStatus[] {
    const out: ObjectStatus[] = [];
    for (const [p, results] of this.#results) {
      const gen = p.metadata.generation ?? 1;
      out.push({
        apiVersion: p.apiVersion,
        kind: p.kind,
        metadata: { name: p.metadata.name, namespace: p.metadata.namespace ?? 'default', generation: gen },
        status: {
          ancestors: results.map((r) => ({
            ancestorRef: {
              group: r.ref.group,
              kind: r.ref.kind,
              name: r.ref.name,
              namespace: r.ref.namespace,
              ...(r.ref.sectionName ? { sectionName: r.ref.sectionName } : {}),
            },
            controllerName: this.#controllerName,
            conditions: [condition(ConditionType.Accepted, r.ok, r.reason, r.message, gen)],
          })),
        },
      });
    }
    return out;
  }
}

function ms(s: string | undefined, dflt: number): number {
  if (s === undefined) return dflt;
  return parseDuration(s) ?? dflt;
}

function applyBackend(base: BackendPolicy, p: BackendTrafficPolicy): BackendPolicy {
  const s = p.spec;
  const active = s.healthCheck?.active;
  let healthCheck: HealthCheck | null = base.healthCheck;
  if (active) {
    if (active.enabled === false) healthCheck = null;
    else {
      const b = base.healthCheck ?? DEFAULT_BACKEND_POLICY.healthCheck!;
      healthCheck = {
        intervalMs: ms(active.interval, b.intervalMs),
        timeoutMs: ms(active.timeout, b.timeoutMs),
        unhealthyThreshold: active.unhealthyThreshold ?? b.unhealthyThreshold,
        healthyThreshold: active.healthyThreshold ?? b.healthyThreshold,
      };
      if (active.type === 'HTTP') {
        healthCheck.http = {
          path: active.http?.path ?? '/',
          host: active.http?.host ?? '',
          expectedStatuses: active.http?.expectedStatuses ?? [],
        };
      } else if (active.type === undefined && b.http) healthCheck.http = b.http;
    }
  }
  return {
    connectTimeoutMs: ms(s.timeouts?.connect, base.connectTimeoutMs),
    idleTimeoutMs: ms(s.timeouts?.idle, base.idleTimeoutMs),
    maxLifetimeMs: ms(s.timeouts?.maxLifetime, base.maxLifetimeMs),
    proxyProtocol: s.proxyProtocol ? (s.proxyProtocol.version === 'V1' ? 'v1' : 'v2') : base.proxyProtocol,
    connectRetries: s.connectRetries ?? base.connectRetries,
    fallback: s.fallback?.enabled ?? base.fallback,
    healthCheck,
  };
}

function applyClient(base: ClientSettings, p: ClientTrafficPolicy): ClientSettings {
  const s = p.spec;
  return {
    helloTimeoutMs: ms(s.clientHello?.timeout, base.helloTimeoutMs),
    helloMaxBytes: s.clientHello?.maxSize ?? base.helloMaxBytes,
    proxyProtocolTrustedCidrs: s.proxyProtocol?.trustedCIDRs ?? base.proxyProtocolTrustedCidrs,
    maxConnections: s.connectionLimit?.max ?? base.maxConnections,
  };
}
