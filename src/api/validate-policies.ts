/** Validation of snigate's policy kinds (gateway.snigate.io/v1alpha1): BackendTrafficPolicy, ClientTrafficPolicy. */
import { parseDuration } from './duration.ts';
import type { Checker, Obj } from './validate-common.ts';

const DURATION_HINT = 'write a Gateway API duration such as 500ms, 5s, 10m or 1h30m';

function duration(c: Checker, v: unknown, path: string): void {
  const s = c.str(v, path);
  if (s !== undefined && parseDuration(s) === null)
    c.error(path, `${JSON.stringify(s)} is not a duration`, DURATION_HINT);
}

function targetRefs(c: Checker, v: unknown, allowed: string[]): void {
  const refs = c.arr(v, 'spec.targetRefs', { required: true, min: 1, max: 16 });
  refs.forEach((r, i) => {
    const p = `spec.targetRefs[${i}]`;
    const ref = c.obj(r, p, true);
    if (!ref) return;
    c.str(ref.group, `${p}.group`, {
      required: true,
      hint: 'use "" for Service, gateway.networking.k8s.io for Gateway API kinds',
    });
    c.str(ref.kind, `${p}.kind`, {
      required: true,
      enum: allowed,
      hint: `this policy can target ${allowed.join(', ')}`,
    });
    c.str(ref.name, `${p}.name`, { required: true, min: 1, max: 253 });
    if (ref.sectionName !== undefined) c.str(ref.sectionName, `${p}.sectionName`, { min: 1, max: 253 });
  });
}

export function validateBackendTrafficPolicy(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  targetRefs(c, spec.targetRefs, ['Service', 'TLSRoute', 'TCPRoute']);
  const t = c.obj(spec.timeouts, 'spec.timeouts');
  if (t)
    for (const k of ['connect', 'idle', 'maxLifetime'])
      if (t[k] !== undefined) duration(c, t[k], `spec.timeouts.${k}`);
  c.int(spec.connectRetries, 'spec.connectRetries', { min: 0, max: 10 });
  const hc = c.obj(spec.healthCheck, 'spec.healthCheck');
  const active = hc ? c.obj(hc.active, 'spec.healthCheck.active') : undefined;
  if (active) {
    c.bool(active.enabled, 'spec.healthCheck.active.enabled');
    for (const k of ['interval', 'timeout'])
      if (active[k] !== undefined) duration(c, active[k], `spec.healthCheck.active.${k}`);
    c.int(active.unhealthyThreshold, 'spec.healthCheck.active.unhealthyThreshold', { min: 1, max: 100 });
    c.int(active.healthyThreshold, 'spec.healthCheck.active.healthyThreshold', { min: 1, max: 100 });
  }
  const pp = c.obj(spec.proxyProtocol, 'spec.proxyProtocol');
  if (pp) c.str(pp.version, 'spec.proxyProtocol.version', { required: true, enum: ['V1', 'V2'] });
  const fb = c.obj(spec.fallback, 'spec.fallback');
  if (fb) c.bool(fb.enabled, 'spec.fallback.enabled');
}

export function validateClientTrafficPolicy(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  targetRefs(c, spec.targetRefs, ['Gateway']);
  const ch = c.obj(spec.clientHello, 'spec.clientHello');
  if (ch) {
    if (ch.timeout !== undefined) duration(c, ch.timeout, 'spec.clientHello.timeout');
    c.int(ch.maxSize, 'spec.clientHello.maxSize', { min: 512, max: 1 << 20, hint: 'bytes, e.g. 65536' });
  }
  const pp = c.obj(spec.proxyProtocol, 'spec.proxyProtocol');
  if (pp) {
    const cidrs = c.arr(pp.trustedCIDRs, 'spec.proxyProtocol.trustedCIDRs', {
      required: true,
      min: 1,
      hint: 'list the load balancers allowed to send a PROXY header, e.g. ["10.0.0.0/8"]',
    });
    cidrs.forEach((v, i) => {
      const s = c.str(v, `spec.proxyProtocol.trustedCIDRs[${i}]`, { required: true });
      if (s !== undefined && !/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(s)) {
        c.error(
          `spec.proxyProtocol.trustedCIDRs[${i}]`,
          `${JSON.stringify(s)} is not a CIDR`,
          'write e.g. 10.0.0.0/8 or 2001:db8::/32',
        );
      }
    });
  }
  const cl = c.obj(spec.connectionLimit, 'spec.connectionLimit');
  if (cl) c.int(cl.max, 'spec.connectionLimit.max', { required: true, min: 1 });
}

/** BackendTLSPolicy v1 (standard channel, v1.6 CRD): targets Services; CA refs xor well-known CAs; hostname required. */
export function validateBackendTLSPolicy(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  const refs = c.arr(spec.targetRefs, 'spec.targetRefs', { required: true, min: 1, max: 16 });
  refs.forEach((r, i) => {
    const p = `spec.targetRefs[${i}]`;
    const ref = c.obj(r, p, true);
    if (!ref) return;
    c.str(ref.group, `${p}.group`, {
      required: true,
      enum: [''],
      hint: 'BackendTLSPolicy targets Services: group ""',
    });
    c.str(ref.kind, `${p}.kind`, { required: true, enum: ['Service'] });
    c.str(ref.name, `${p}.name`, { required: true, min: 1, max: 253 });
  });
  const v = c.obj(spec.validation, 'spec.validation', true);
  if (!v) return;
  c.hostname(v.hostname, 'spec.validation.hostname', true);
  const cas = c.arr(v.caCertificateRefs, 'spec.validation.caCertificateRefs', { max: 16 });
  const wk = v.wellKnownCACertificates;
  if (wk !== undefined) c.str(wk, 'spec.validation.wellKnownCACertificates', { enum: ['System'] });
  if (cas.length > 0 === (wk !== undefined)) {
    c.error(
      'spec.validation',
      'exactly one of caCertificateRefs and wellKnownCACertificates must be set',
      'list the ConfigMaps holding ca.crt in caCertificateRefs, or write `wellKnownCACertificates: System`',
    );
  }
  cas.forEach((r, i) => {
    const ref = c.obj(r, `spec.validation.caCertificateRefs[${i}]`, true);
    if (!ref) return;
    c.str(ref.kind, `spec.validation.caCertificateRefs[${i}].kind`, { required: true });
    c.str(ref.name, `spec.validation.caCertificateRefs[${i}].name`, { required: true, min: 1 });
  });
  c.arr(v.subjectAltNames, 'spec.validation.subjectAltNames', { max: 5 });
}
