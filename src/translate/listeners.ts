/** Per-listener checks: protocol and mode, allowed route kinds, certificate and CA references. */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { FrontendValidation, Listener, Resources, Secret, SecretObjectReference } from '../api/types.ts';
import { GATEWAY_GROUP } from '../api/types.ts';
import type { ListenerMode, TlsCertificate } from '../table/types.ts';
import { Reason } from './conditions.ts';
import type { GatewayCtx, ListenerCtx, RouteKind } from './context.ts';
import { referenceAllowed } from './refgrants.ts';

/** Route kinds each protocol serves (GEP-2907; TCPRoute on a TLS listener is InvalidRouteKinds per conformance). */
const KINDS_BY_PROTOCOL: Record<string, string[]> = {
  HTTP: ['HTTPRoute'],
  HTTPS: ['HTTPRoute'],
  TLS: ['TLSRoute'],
  TCP: ['TCPRoute'],
};

export function modeOf(l: Listener): ListenerMode | null {
  switch (l.protocol) {
    case 'HTTP':
      return 'http';
    case 'HTTPS':
      return 'terminate-https';
    case 'TLS':
      return l.tls?.mode === 'Passthrough' ? 'passthrough' : 'terminate-tls';
    case 'TCP':
      return 'tcp';
    default:
      return null;
  }
}

export function buildListener(gw: GatewayCtx, spec: Listener, res: Resources): ListenerCtx {
  const mode = modeOf(spec);
  const l: ListenerCtx = {
    gw,
    spec,
    mode,
    hostname: spec.hostname ?? null,
    supportedKinds: [],
    accepted: { ok: true, reason: Reason.Accepted, message: 'Listener is valid' },
    programmed: { ok: true, reason: Reason.Programmed, message: 'Listener is programmed in the data plane' },
    refProblems: [],
    certificates: [],
    attachedRoutes: 0,
    attachments: [],
  };
  if (mode === null) {
    const hint = spec.protocol === 'UDP' ? ' (snigate does not proxy UDP)' : '';
    l.accepted = {
      ok: false,
      reason: Reason.UnsupportedProtocol,
      message: `protocol ${spec.protocol} is not supported${hint}; use HTTP, HTTPS, TLS or TCP`,
    };
    l.programmed = { ok: false, reason: Reason.Invalid, message: 'Listener is not accepted' };
    return l;
  }

  checkKinds(l, spec);
  if (mode === 'terminate-https' || mode === 'terminate-tls') checkCertificates(l, spec, res);
  if (mode === 'terminate-https') checkFrontendValidation(l, res);
  return l;
}

function checkKinds(l: ListenerCtx, spec: Listener): void {
  const allowed = KINDS_BY_PROTOCOL[spec.protocol] ?? [];
  const requested = spec.allowedRoutes?.kinds;
  if (!requested || requested.length === 0) {
    l.supportedKinds = allowed.map((kind) => ({ group: GATEWAY_GROUP, kind }));
    return;
  }
  const ok: RouteKind[] = [];
  const bad: string[] = [];
  for (const k of requested) {
    const group = k.group ?? GATEWAY_GROUP;
    if (group === GATEWAY_GROUP && allowed.includes(k.kind)) {
      if (!ok.some((o) => o.kind === k.kind)) ok.push({ group, kind: k.kind });
    } else bad.push(`${group}/${k.kind}`);
  }
  l.supportedKinds = ok;
  if (bad.length > 0) {
    l.refProblems.push({
      reason: Reason.InvalidRouteKinds,
      message: `allowedRoutes.kinds ${bad.join(', ')} cannot attach to a ${spec.protocol} listener; it serves ${allowed.join(', ')}`,
    });
  }
}

function checkCertificates(l: ListenerCtx, spec: Listener, res: Resources): void {
  const refs = spec.tls?.certificateRefs ?? [];
  const ns = l.gw.namespace;
  for (const [i, ref] of refs.entries()) {
    const r = resolveSecret(ref, ns, res, `tls.certificateRefs[${i}]`);
    if ('problem' in r) {
      l.refProblems.push(r.problem);
      continue;
    }
    const pem = certificateFromSecret(r.secret);
    if (typeof pem === 'string') {
      l.refProblems.push({
        reason: Reason.InvalidCertificateRef,
        message: `tls.certificateRefs[${i}]: Secret ${r.secret.metadata.namespace}/${r.secret.metadata.name} ${pem}`,
      });
      continue;
    }
    l.certificates.push(pem);
  }
  if (l.certificates.length === 0) {
    l.programmed = {
      ok: false,
      reason: Reason.Invalid,
      message:
        refs.length === 0
          ? 'a Terminate listener needs tls.certificateRefs with a kubernetes.io/tls Secret'
          : 'no valid certificate: see ResolvedRefs',
    };
  }
}

function resolveSecret(
  ref: SecretObjectReference,
  gwNamespace: string,
  res: Resources,
  path: string,
): { secret: Secret } | { problem: { reason: string; message: string } } {
  const group = ref.group ?? '';
  const kind = ref.kind ?? 'Secret';
  const namespace = ref.namespace ?? gwNamespace;
  if (group !== '' || kind !== 'Secret') {
    return {
      problem: {
        reason: Reason.InvalidCertificateRef,
        message: `${path}: ${group ? `${group}/` : ''}${kind} is not supported; refer to a core Secret (group "", kind Secret)`,
      },
    };
  }
  const to = { group: '', kind: 'Secret', namespace, name: ref.name };
  if (
    !referenceAllowed(
      { group: GATEWAY_GROUP, kind: 'Gateway', namespace: gwNamespace },
      to,
      res.referenceGrants,
    )
  ) {
    return {
      problem: {
        reason: Reason.RefNotPermitted,
        message: `${path}: Secret ${namespace}/${ref.name} is in another namespace; add a ReferenceGrant in ${namespace} from Gateway/${gwNamespace} to Secret ${ref.name}`,
      },
    };
  }
  const secret = res.secrets.find(
    (s) => s.metadata.name === ref.name && (s.metadata.namespace ?? 'default') === namespace,
  );
  if (!secret) {
    return {
      problem: {
        reason: Reason.InvalidCertificateRef,
        message: `${path}: Secret ${namespace}/${ref.name} not found`,
      },
    };
  }
  return { secret };
}

/** The certificate and key of a kubernetes.io/tls Secret, or why they are unusable. Never echoes key material. */
export function certificateFromSecret(secret: Secret): TlsCertificate | string {
  const crtB64 = secret.data?.['tls.crt'];
  const keyB64 = secret.data?.['tls.key'];
  if (!crtB64 || !keyB64) return 'has no tls.crt and tls.key: create it with `kubectl create secret tls`';
  const certPem = Buffer.from(crtB64, 'base64').toString('utf8');
  const keyPem = Buffer.from(keyB64, 'base64').toString('utf8');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return 'tls.crt is not a PEM certificate';
  }
  try {
    const key = createPrivateKey(keyPem);
    if (!cert.checkPrivateKey(key)) return 'tls.key does not match the certificate in tls.crt';
  } catch {
    return 'tls.key is not a PEM private key';
  }
  return { secret: `${secret.metadata.namespace ?? 'default'}/${secret.metadata.name}`, certPem, keyPem };
}

/** Frontend client-certificate validation (spec.tls.frontend) applies to HTTPS listeners on the matching port. */
function checkFrontendValidation(l: ListenerCtx, res: Resources): void {
  const fe = l.gw.gateway.spec.tls?.frontend;
  if (!fe) return;
  const perPort = fe.perPort?.find((p) => p.port === l.spec.port);
  const v: FrontendValidation | undefined = perPort ? perPort.tls.validation : fe.default?.validation;
  if (!v) return;
  const path = perPort ? `spec.tls.frontend.perPort[port=${l.spec.port}]` : 'spec.tls.frontend.default';
  if (v.mode === 'AllowInsecureFallback') l.gw.insecureFrontend = true;
  const refs = v.caCertificateRefs ?? [];
  let valid = 0;
  const pems: string[] = [];
  for (const [i, ref] of refs.entries()) {
    const where = `${path}.validation.caCertificateRefs[${i}]`;
    const ns = ref.namespace ?? l.gw.namespace;
    if ((ref.group ?? '') !== '' || ref.kind !== 'ConfigMap') {
      l.refProblems.push({
        reason: Reason.InvalidCACertificateKind,
        message: `${where}: ${ref.kind} is not supported; refer to a ConfigMap with key ca.crt`,
      });
      continue;
    }
    const to = { group: '', kind: 'ConfigMap', namespace: ns, name: ref.name };
    if (
      !referenceAllowed(
        { group: GATEWAY_GROUP, kind: 'Gateway', namespace: l.gw.namespace },
        to,
        res.referenceGrants,
      )
    ) {
      l.refProblems.push({
        reason: Reason.RefNotPermitted,
        message: `${where}: ConfigMap ${ns}/${ref.name} is in another namespace; add a ReferenceGrant from Gateway/${l.gw.namespace} to ConfigMap ${ref.name}`,
      });
      continue;
    }
    const cm = res.configMaps.find(
      (c) => c.metadata.name === ref.name && (c.metadata.namespace ?? 'default') === ns,
    );
    const pem = cm?.data?.['ca.crt'];
    let ok = false;
    if (pem) {
      try {
        new X509Certificate(pem);
        pems.push(pem);
        ok = true;
      } catch {
        ok = false;
      }
    }
    if (!ok) {
      l.refProblems.push({
        reason: Reason.InvalidCACertificateRef,
        message: cm
          ? `${where}: ConfigMap ${ns}/${ref.name} has no PEM certificate under key ca.crt`
          : `${where}: ConfigMap ${ns}/${ref.name} not found`,
      });
      continue;
    }
    valid++;
  }
  if (valid > 0) l.clientValidation = { caPem: pems.join('\n'), mode: v.mode ?? 'AllowValidOnly' };
  if (refs.length > 0 && valid === 0) {
    l.accepted = {
      ok: false,
      reason: Reason.NoValidCACertificate,
      message: `${path}: none of the CA certificate references is usable`,
    };
    l.programmed = {
      ok: false,
      reason: Reason.Invalid,
      message: 'no valid CA certificate for client validation',
    };
  }
}
