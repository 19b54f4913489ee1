/** Validation of snigate's policy kinds (gateway.snigate.io/v1alpha1): BackendTrafficPolicy, ClientTrafficPolicy, SecurityPolicy. */
import { parseDuration } from './duration.ts';
import { type Checker, isIP, type Obj } from './validate-common.ts';

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
    const type = c.str(active.type, 'spec.healthCheck.active.type', { enum: ['TCP', 'HTTP'] });
    const http = c.obj(active.http, 'spec.healthCheck.active.http');
    if (http && type !== 'HTTP') {
      c.error(
        'spec.healthCheck.active.http',
        'only used with type: HTTP',
        'add `type: HTTP`, or remove `http`',
      );
    }
    if (http) {
      c.str(http.path, 'spec.healthCheck.active.http.path', {
        pattern: /^\/[\x21-\x7e]*$/,
        patternText: 'must start with / and contain no spaces or control characters',
      });
      c.str(http.host, 'spec.healthCheck.active.http.host', {
        min: 1,
        max: 253,
        pattern: /^[A-Za-z0-9.:[\]-]+$/,
        patternText: 'must be a host name',
      });
      c.arr(http.expectedStatuses, 'spec.healthCheck.active.http.expectedStatuses', { max: 16 }).forEach(
        (v, i) => {
          c.int(v, `spec.healthCheck.active.http.expectedStatuses[${i}]`, { min: 100, max: 599 });
        },
      );
    }
  }
  const pp = c.obj(spec.proxyProtocol, 'spec.proxyProtocol');
  if (pp) c.str(pp.version, 'spec.proxyProtocol.version', { required: true, enum: ['V1', 'V2'] });
  const fb = c.obj(spec.fallback, 'spec.fallback');
  if (fb) c.bool(fb.enabled, 'spec.fallback.enabled');
}

/** `address/prefix` with a real IPv4 or IPv6 address and a prefix in range (the data plane skips anything else). */
function isCidr(s: string): boolean {
  const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(s);
  if (!m || !isIP(m[1]!)) return false;
  return Number(m[2]) <= (m[1]!.includes(':') ? 128 : 32);
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
      if (s !== undefined && !isCidr(s)) {
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

const CIDR = /^[0-9a-fA-F:.]+(\/\d{1,3})?$/;

function cidrList(c: Checker, v: unknown, path: string, required: boolean): void {
  const list = c.arr(v, path, { required, min: required ? 1 : 0, max: 1000 });
  list.forEach((x, i) => {
    const s = c.str(x, `${path}[${i}]`, { required: true });
    if (s !== undefined && !validCidr(s))
      c.error(
        `${path}[${i}]`,
        `${JSON.stringify(s)} is not an IP address or CIDR`,
        'write e.g. 203.0.113.0/24 or 2001:db8::/32',
      );
  });
}

/** An IPv4/IPv6 address with an optional prefix length in range. */
export function validCidr(s: string): boolean {
  if (!CIDR.test(s)) return false;
  const [addr, bits] = s.split('/');
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr ?? '');
  if (v4) return v4.slice(1).every((o) => Number(o) <= 255) && (bits === undefined || Number(bits) <= 32);
  return (addr ?? '').includes(':') && (bits === undefined || Number(bits) <= 128);
}

function ruleIdList(c: Checker, v: unknown, path: string, required: boolean): void {
  const ids = c.arr(v, path, { required, min: required ? 1 : 0, max: 1000 });
  ids.forEach((id, i) => {
    c.int(id, `${path}[${i}]`, { required: true, min: 1, max: 99_999_999 });
  });
}

const WAF_PATH_PREFIX = /^\/[A-Za-z0-9._~\-/:@+=!*()$;]{0,255}$/;
const WAF_VAR_NAME = /^[A-Za-z0-9_.\-[\]]{1,128}$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,256}$/;

export function validateSecurityPolicy(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  targetRefs(c, spec.targetRefs, ['Gateway', 'HTTPRoute']);
  const waf = c.obj(spec.waf, 'spec.waf');
  if (waf) {
    c.bool(waf.enabled, 'spec.waf.enabled');
    c.str(waf.mode, 'spec.waf.mode', { enum: ['Block', 'Detect'] });
    c.int(waf.paranoiaLevel, 'spec.waf.paranoiaLevel', {
      min: 1,
      max: 4,
      hint: 'OWASP CRS paranoia level 1..4',
    });
    c.int(waf.anomalyThreshold, 'spec.waf.anomalyThreshold', {
      min: 1,
      max: 10_000,
      hint: 'inbound anomaly score that blocks (CRS default 5: one critical match)',
    });
    const ex = c.obj(waf.exclusions, 'spec.waf.exclusions');
    if (ex) {
      ruleIdList(c, ex.ruleIds, 'spec.waf.exclusions.ruleIds', false);
      c.arr(ex.paths, 'spec.waf.exclusions.paths', { max: 100 }).forEach((e, i) => {
        const p = `spec.waf.exclusions.paths[${i}]`;
        const x = c.obj(e, p, true);
        if (!x) return;
        c.str(x.pathPrefix, `${p}.pathPrefix`, {
          required: true,
          pattern: WAF_PATH_PREFIX,
          patternText: 'a path starting with / (letters, digits and ._~-/:@+=!*()$; only)',
        });
        ruleIdList(c, x.ruleIds, `${p}.ruleIds`, true);
      });
      c.arr(ex.targets, 'spec.waf.exclusions.targets', { max: 100 }).forEach((e, i) => {
        const p = `spec.waf.exclusions.targets[${i}]`;
        const x = c.obj(e, p, true);
        if (!x) return;
        ruleIdList(c, x.ruleIds, `${p}.ruleIds`, true);
        c.str(x.variable, `${p}.variable`, {
          required: true,
          enum: ['ARGS', 'ARGS_NAMES', 'REQUEST_COOKIES', 'REQUEST_COOKIES_NAMES', 'REQUEST_HEADERS'],
        });
        c.str(x.name, `${p}.name`, {
          required: true,
          pattern: WAF_VAR_NAME,
          patternText: 'an argument, cookie or header name',
        });
        if (x.pathPrefix !== undefined)
          c.str(x.pathPrefix, `${p}.pathPrefix`, {
            pattern: WAF_PATH_PREFIX,
            patternText: 'a path starting with /',
          });
      });
    }
  }
  const rl = c.obj(spec.rateLimit, 'spec.rateLimit');
  if (rl) {
    const key = c.obj(rl.key, 'spec.rateLimit.key');
    if (key) {
      const t = c.str(key.type, 'spec.rateLimit.key.type', {
        required: true,
        enum: ['ClientIP', 'Route', 'Header'],
      });
      if (t === 'Header')
        c.str(key.header, 'spec.rateLimit.key.header', {
          required: true,
          pattern: HEADER_NAME,
          patternText: 'an HTTP header name',
          hint: 'e.g. header: X-Api-Key',
        });
      else if (key.header !== undefined) c.error('spec.rateLimit.key.header', 'only with type: Header');
    }
    c.int(rl.requests, 'spec.rateLimit.requests', { required: true, min: 1, max: 1_000_000_000 });
    c.str(rl.unit, 'spec.rateLimit.unit', { required: true, enum: ['Second', 'Minute'] });
    c.int(rl.burst, 'spec.rateLimit.burst', {
      min: 1,
      max: 1_000_000_000,
      hint: 'requests allowed at once after a quiet spell',
    });
    const be = c.obj(rl.backend, 'spec.rateLimit.backend');
    if (be) {
      const t = c.str(be.type, 'spec.rateLimit.backend.type', { required: true, enum: ['Local', 'Redis'] });
      const redis = c.obj(be.redis, 'spec.rateLimit.backend.redis', t === 'Redis');
      if (redis) {
        if (t !== 'Redis') c.error('spec.rateLimit.backend.redis', 'only with type: Redis');
        c.str(redis.address, 'spec.rateLimit.backend.redis.address', {
          required: true,
          pattern: /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/,
          patternText: 'host:port',
          hint: 'e.g. redis.snigate-system.svc:6379',
        });
        c.str(redis.failMode, 'spec.rateLimit.backend.redis.failMode', {
          enum: ['Open', 'Closed'],
          hint: 'Open lets requests through while Redis is unreachable, Closed refuses them (429)',
        });
      }
    }
  }
  const ip = c.obj(spec.ipAccess, 'spec.ipAccess');
  if (ip) {
    cidrList(c, ip.allow, 'spec.ipAccess.allow', false);
    cidrList(c, ip.deny, 'spec.ipAccess.deny', false);
  }
  const det = c.obj(spec.clientIPDetection, 'spec.clientIPDetection');
  const xff = det ? c.obj(det.xForwardedFor, 'spec.clientIPDetection.xForwardedFor') : undefined;
  if (xff) cidrList(c, xff.trustedCIDRs, 'spec.clientIPDetection.xForwardedFor.trustedCIDRs', true);
  const lim = c.obj(spec.requestLimits, 'spec.requestLimits');
  if (lim) {
    c.int(lim.maxBodyBytes, 'spec.requestLimits.maxBodyBytes', {
      min: 1,
      max: 2 ** 40,
      hint: 'bytes, e.g. 1048576',
    });
    c.int(lim.maxHeaderBytes, 'spec.requestLimits.maxHeaderBytes', {
      min: 1024,
      max: 1 << 20,
      hint: 'bytes, e.g. 16384',
    });
    c.int(lim.maxConcurrentPerClientIP, 'spec.requestLimits.maxConcurrentPerClientIP', {
      min: 1,
      max: 1_000_000,
    });
  }
  const cr = c.obj(spec.connectionRateLimit, 'spec.connectionRateLimit');
  if (cr) {
    c.int(cr.connections, 'spec.connectionRateLimit.connections', {
      required: true,
      min: 1,
      max: 1_000_000_000,
    });
    c.str(cr.unit, 'spec.connectionRateLimit.unit', { required: true, enum: ['Second', 'Minute'] });
    c.int(cr.burst, 'spec.connectionRateLimit.burst', { min: 1, max: 1_000_000_000 });
  }
  const known = [
    'targetRefs',
    'waf',
    'rateLimit',
    'ipAccess',
    'clientIPDetection',
    'requestLimits',
    'connectionRateLimit',
  ];
  for (const k of Object.keys(spec))
    if (!known.includes(k))
      c.warn(`spec.${k}`, 'unknown field: ignored', `SecurityPolicy spec has ${known.join(', ')}`);
}
