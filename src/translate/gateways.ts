/** Gateways: which are ours, their addresses, listeners, conflicts between listeners sharing a socket. */
import type { Diagnostic } from '../api/diagnostics.ts';
import type { Gateway, GatewayClass, Resources } from '../api/types.ts';
import { GATEWAY_GROUP } from '../api/types.ts';
import { isIP } from '../api/validate-common.ts';
import { Reason } from './conditions.ts';
import type { GatewayCtx, ListenerCtx } from './context.ts';
import { hostnamesOverlap } from './hostnames.ts';
import { buildListener, certificateFromSecret } from './listeners.ts';
import type { TranslateOptions } from './options.ts';
import { referenceAllowed } from './refgrants.ts';
import { byAge } from './sort.ts';

/** Decide which Gateways we serve, in precedence order (oldest first). */
export function selectGateways(
  res: Resources,
  opts: TranslateOptions,
  ourClasses: Map<string, GatewayClass>,
  diags: Diagnostic[],
): Gateway[] {
  const classNames = new Set(res.gatewayClasses.map((c) => c.metadata.name));
  const out: Gateway[] = [];
  for (const gw of res.gateways) {
    const cls = gw.spec.gatewayClassName;
    const object = { kind: 'Gateway', namespace: gw.metadata.namespace, name: gw.metadata.name };
    if (opts.gatewayClass && cls !== opts.gatewayClass) {
      diags.push({
        severity: 'info',
        code: 'gateway-other-class',
        object,
        message: `gatewayClassName ${cls} is not ${opts.gatewayClass} (--gateway-class): not served`,
      });
      continue;
    }
    if (ourClasses.has(cls) || gw.metadata.annotations?.['snigate.io/internal'] !== undefined) {
      out.push(gw);
    } else if (classNames.has(cls)) {
      diags.push({
        severity: 'info',
        code: 'gateway-other-controller',
        object,
        message: `GatewayClass ${cls} belongs to another controller: not served (ours is ${opts.controllerName})`,
      });
    } else if (opts.serveUnknownClasses || opts.gatewayClass === cls) {
      diags.push({
        severity: 'info',
        code: 'gateway-class-not-found',
        object,
        message: `GatewayClass ${cls} is not among the manifests; snigate serves this Gateway anyway (file mode). Add a GatewayClass with controllerName ${opts.controllerName}, or pass --gateway-class to pick one class`,
      });
      out.push(gw);
    } else {
      diags.push({
        severity: 'warning',
        code: 'gateway-class-not-found',
        object,
        message: `GatewayClass ${cls} does not exist: not served`,
      });
    }
  }
  return out.sort(byAge);
}

export function buildGateway(gw: Gateway, order: number, res: Resources, opts: TranslateOptions): GatewayCtx {
  const namespace = gw.metadata.namespace ?? 'default';
  const ctx: GatewayCtx = {
    gateway: gw,
    namespace,
    order,
    bindAddresses: [],
    statusAddresses: [],
    listeners: [],
    gatewayRefProblems: [],
    insecureFrontend: false,
  };
  resolveAddresses(ctx, opts);
  const params = gw.spec.infrastructure?.parametersRef;
  if (params) {
    ctx.acceptProblem = {
      reason: Reason.InvalidParameters,
      message: `spec.infrastructure.parametersRef ${params.group}/${params.kind} ${params.name}: snigate takes no infrastructure parameters; remove it`,
    };
  }
  checkBackendClientCertificate(ctx, res);
  ctx.listeners = gw.spec.listeners.map((l) => buildListener(ctx, l, res));
  return ctx;
}

function resolveAddresses(ctx: GatewayCtx, opts: TranslateOptions): void {
  const spec = ctx.gateway.spec.addresses ?? [];
  const bad: string[] = [];
  for (const a of spec) {
    const type = a.type ?? 'IPAddress';
    if (type !== 'IPAddress') {
      bad.push(`${type} ${a.value ?? ''}`.trim());
      continue;
    }
    if (!a.value) {
      ctx.bindAddresses.push(null);
      continue;
    }
    if (!isIP(a.value)) {
      bad.push(`IPAddress ${a.value}`);
      continue;
    }
    ctx.bindAddresses.push(a.value);
  }
  if (bad.length > 0) {
    ctx.acceptProblem = {
      reason: Reason.UnsupportedAddress,
      message: `spec.addresses: ${bad.join(', ')} not supported; snigate binds IPAddress values (or leave value empty to get the default address)`,
    };
  }
  if (ctx.bindAddresses.length === 0) ctx.bindAddresses.push(null);
  const seen = new Set<string>();
  for (const b of ctx.bindAddresses) {
    for (const value of b === null ? opts.statusAddresses : [b]) {
      if (seen.has(value)) continue;
      seen.add(value);
      ctx.statusAddresses.push({ type: 'IPAddress', value });
    }
  }
}

function checkBackendClientCertificate(ctx: GatewayCtx, res: Resources): void {
  const ref = ctx.gateway.spec.tls?.backend?.clientCertificateRef;
  if (!ref) return;
  const ns = ref.namespace ?? ctx.namespace;
  const where = 'spec.tls.backend.clientCertificateRef';
  if ((ref.group ?? '') !== '' || (ref.kind ?? 'Secret') !== 'Secret') {
    ctx.gatewayRefProblems.push({
      reason: Reason.InvalidClientCertificateRef,
      message: `${where}: ${ref.kind} is not supported; refer to a kubernetes.io/tls Secret`,
    });
    return;
  }
  const to = { group: '', kind: 'Secret', namespace: ns, name: ref.name };
  if (
    !referenceAllowed(
      { group: GATEWAY_GROUP, kind: 'Gateway', namespace: ctx.namespace },
      to,
      res.referenceGrants,
    )
  ) {
    ctx.gatewayRefProblems.push({
      reason: Reason.RefNotPermitted,
      message: `${where}: Secret ${ns}/${ref.name} needs a ReferenceGrant in ${ns} from Gateway/${ctx.namespace}`,
    });
    return;
  }
  const s = res.secrets.find(
    (x) => x.metadata.name === ref.name && (x.metadata.namespace ?? 'default') === ns,
  );
  const pem = s ? certificateFromSecret(s) : 'not found';
  if (typeof pem === 'string') {
    ctx.gatewayRefProblems.push({
      reason: Reason.InvalidClientCertificateRef,
      message: `${where}: Secret ${ns}/${ref.name} ${pem}`,
    });
    return;
  }
  ctx.backendClientCert = { certPem: pem.certPem, keyPem: pem.keyPem };
}

type Family = 'tcp' | 'http' | 'tls';

function familyOf(l: ListenerCtx): Family | null {
  if (l.mode === null) return null;
  if (l.mode === 'tcp') return 'tcp';
  if (l.mode === 'http') return 'http';
  return 'tls';
}

export function bindKey(address: string | null, port: number): string {
  return `${address ?? '*'}|${port}`;
}

/**
 * Listeners that would share one socket must be distinguishable by the first bytes (TCP: not at all,
 * HTTP: plaintext, TLS/HTTPS: the SNI). Within one Gateway every party to a conflict loses (the spec
 * forbids picking a winner). Gateways without their own spec.addresses share the default address: there
 * listeners with the same hostname and mode merge (their routes are served together, route precedence
 * decides ties), and where they cannot merge the older Gateway keeps the port.
 */
export function detectConflicts(gateways: GatewayCtx[]): void {
  const byBind = new Map<string, ListenerCtx[]>();
  for (const gw of gateways) {
    if (gw.acceptProblem) continue;
    for (const l of gw.listeners) {
      if (!l.accepted.ok) continue;
      for (const a of gw.bindAddresses) {
        const k = bindKey(a, l.spec.port);
        const arr = byBind.get(k);
        if (arr) {
          if (!arr.includes(l)) arr.push(l);
        } else byBind.set(k, [l]);
      }
    }
  }
  for (const group of byBind.values()) {
    if (group.length < 2) continue;
    for (const a of group) {
      for (const b of group) {
        if (a === b || a.conflicted) continue;
        const fa = familyOf(a);
        const fb = familyOf(b);
        const sameGw = a.gw === b.gw;
        // Across Gateways the older one wins: only the younger side is marked.
        if (!sameGw && a.gw.order < b.gw.order) continue;
        const other = sameGw
          ? `listener ${b.spec.name}`
          : `Gateway ${b.gw.namespace}/${b.gw.gateway.metadata.name} listener ${b.spec.name}`;
        const addrHint = sameGw ? '' : '; give one Gateway its own spec.addresses to serve both';
        if (fa !== fb || fa === 'tcp') {
          a.conflicted = {
            ok: true,
            reason: Reason.ProtocolConflict,
            message: `port ${a.spec.port} is also used by ${other} (${b.spec.protocol}); ${a.spec.protocol} and ${b.spec.protocol} cannot share a port${addrHint}`,
          };
        } else if ((a.hostname ?? '') === (b.hostname ?? '') && (sameGw || a.mode !== b.mode)) {
          // Same hostname and mode across Gateways is no conflict: the data plane merges their routes.
          a.conflicted = {
            ok: true,
            reason: Reason.HostnameConflict,
            message: `hostname ${a.hostname ?? '(any)'} on port ${a.spec.port} is also claimed by ${other}${addrHint}`,
          };
        }
      }
    }
  }
  for (const group of byBind.values()) {
    for (const l of group) {
      if (!l.conflicted) continue;
      l.accepted = { ok: false, reason: l.conflicted.reason, message: l.conflicted.message };
      l.programmed = { ok: false, reason: l.conflicted.reason, message: l.conflicted.message };
      l.supportedKinds = [];
    }
    markOverlaps(group);
  }
}

/** GEP-3567: terminating listeners whose hostnames overlap another TLS listener's risk HTTP/2 coalescing. */
function markOverlaps(group: ListenerCtx[]): void {
  for (const a of group) {
    if (a.mode !== 'terminate-https' || !a.accepted.ok) continue;
    for (const b of group) {
      if (a === b || !b.accepted.ok || familyOf(b) !== 'tls') continue;
      if (!hostnamesOverlap(a.hostname, b.hostname)) continue;
      const msg = `hostname ${a.hostname ?? '(any)'} overlaps ${b.hostname ?? '(any)'} of listener ${b.spec.name} on port ${a.spec.port}: HTTP/2 clients may reuse a connection across them (misdirected requests get 421)`;
      a.overlapping = { ok: true, reason: Reason.OverlappingHostnames, message: msg };
      if (b.mode === 'terminate-https') {
        b.overlapping = {
          ok: true,
          reason: Reason.OverlappingHostnames,
          message: `hostname ${b.hostname ?? '(any)'} overlaps ${a.hostname ?? '(any)'} of listener ${a.spec.name} on port ${b.spec.port}: HTTP/2 clients may reuse a connection across them (misdirected requests get 421)`,
        };
      }
    }
  }
}

/** Bind failures reported by the data plane make the affected listeners PortUnavailable. */
export function applyBindFailures(gateways: GatewayCtx[], opts: TranslateOptions): void {
  for (const f of opts.bindFailures ?? []) {
    for (const gw of gateways) {
      if (!gw.bindAddresses.includes(f.address)) continue;
      for (const l of gw.listeners) {
        if (l.spec.port !== f.port || !l.accepted.ok) continue;
        const msg = `cannot listen on ${f.address ?? 'the default address'}:${f.port}: ${f.code}`;
        l.accepted = { ok: false, reason: Reason.PortUnavailable, message: msg };
        l.programmed = { ok: false, reason: Reason.PortUnavailable, message: msg };
        if (f.address !== null) gw.programProblem = { reason: Reason.AddressNotUsable, message: msg };
      }
    }
  }
}
