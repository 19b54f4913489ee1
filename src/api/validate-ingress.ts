/** networking.k8s.io/v1 Ingress and IngressClass validation, mirroring the API server's Go validation. */

import { ingressLegacyFields } from './legacy.ts';
import { type Checker, DNS1035_LABEL, isIP, type Obj } from './validate-common.ts';

const WILDCARD_HOST = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const BAD_SEQUENCES = ['//', '/./', '/../', '%2f', '%2F'];

export function validateIngress(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  ingressLegacyFields(c, o);
  c.str(spec.ingressClassName, 'spec.ingressClassName', { min: 1, max: 253 });
  if (spec.defaultBackend !== undefined) backend(c, spec.defaultBackend, 'spec.defaultBackend');
  const rules = c.arr(spec.rules, 'spec.rules');
  if (spec.defaultBackend === undefined && rules.length === 0) {
    c.error(
      'spec',
      'either `defaultBackend` or `rules` must be specified',
      'add `rules: [{host: ..., http: {paths: [...]}}]`',
    );
  }
  rules.forEach((r, i) => {
    const p = `spec.rules[${i}]`;
    const rule = c.obj(r, p, true);
    if (!rule) return;
    host(c, rule.host, `${p}.host`);
    const http = c.obj(rule.http, `${p}.http`);
    if (!http) return;
    c.arr(http.paths, `${p}.http.paths`, { required: true, min: 1 }).forEach((x, j) => {
      path(c, x, `${p}.http.paths[${j}]`);
    });
  });
  c.arr(spec.tls, 'spec.tls').forEach((t, i) => {
    const tls = c.obj(t, `spec.tls[${i}]`, true);
    if (!tls) return;
    c.arr(tls.hosts, `spec.tls[${i}].hosts`).forEach((h, j) => {
      host(c, h, `spec.tls[${i}].hosts[${j}]`);
    });
    c.str(tls.secretName, `spec.tls[${i}].secretName`, { max: 253 });
  });
}

function host(c: Checker, v: unknown, p: string): void {
  const h = c.str(v, p, {
    max: 253,
    pattern: WILDCARD_HOST,
    patternText: 'must be a lowercase DNS name, optionally starting with "*."',
    hint: 'e.g. "api.example.com"; no port, no scheme',
  });
  if (h !== undefined && isIP(h))
    c.error(p, `${JSON.stringify(h)} must be a DNS name, not an IP address`, 'omit `host` to match any host');
}

function path(c: Checker, v: unknown, p: string): void {
  const hp = c.obj(v, p, true);
  if (!hp) return;
  const type = c.str(hp.pathType, `${p}.pathType`, {
    required: true,
    enum: ['Prefix', 'Exact', 'ImplementationSpecific'],
    hint: 'add `pathType: Prefix` (matches the path and everything under it)',
  });
  const value = c.str(hp.path, `${p}.path`) ?? '';
  if (type === 'Prefix' || type === 'Exact') {
    if (!value.startsWith('/')) {
      c.error(
        `${p}.path`,
        `${JSON.stringify(value)} must be an absolute path`,
        value ? `write "/${value}"` : 'write `path: /`',
      );
    } else if (
      BAD_SEQUENCES.some((s) => value.includes(s)) ||
      value.endsWith('/..') ||
      value.endsWith('/.')
    ) {
      c.error(
        `${p}.path`,
        `${JSON.stringify(value)} must not contain '//', '/./', '/../', '%2f' or end with '/.' or '/..'`,
      );
    }
  } else if (type === 'ImplementationSpecific' && value !== '' && !value.startsWith('/')) {
    c.error(`${p}.path`, `${JSON.stringify(value)} must be an absolute path`, `write "/${value}"`);
  }
  backend(c, hp.backend, `${p}.backend`);
}

function backend(c: Checker, v: unknown, p: string): void {
  const b = c.obj(v, p, true);
  if (!b) return;
  // serviceName/servicePort (extensions/v1beta1) are reported by ingressLegacyFields; avoid a second error.
  if (b.serviceName !== undefined || b.servicePort !== undefined) return;
  const svc = c.obj(b.service, `${p}.service`);
  const res = c.obj(b.resource, `${p}.resource`);
  if (svc && res) c.error(p, 'cannot set both `service` and `resource`');
  if (!svc && !res) {
    c.missing(`${p}.service`, 'write `service: {name: my-service, port: {number: 443}}`');
    return;
  }
  if (svc) {
    c.str(svc.name, `${p}.service.name`, {
      required: true,
      max: 63,
      pattern: DNS1035_LABEL,
      patternText: 'must be a Service name (lowercase RFC 1035 label)',
    });
    const port = c.obj(svc.port, `${p}.service.port`, true);
    if (port) {
      if (port.number !== undefined && port.name !== undefined)
        c.error(`${p}.service.port`, 'set either `number` or `name`, not both');
      if (port.number === undefined && port.name === undefined) {
        c.missing(`${p}.service.port.number`, 'write `port: {number: 443}` or `port: {name: https}`');
      }
      c.port(port.number, `${p}.service.port.number`);
      c.str(port.name, `${p}.service.port.name`, { min: 1, max: 15 });
    }
  }
  if (res) {
    c.str(res.apiGroup, `${p}.resource.apiGroup`);
    c.kind(res.kind, `${p}.resource.kind`, true);
    c.refName(res.name, `${p}.resource.name`);
  }
}

export function validateIngressClass(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec');
  if (!spec) return;
  c.str(spec.controller, 'spec.controller', {
    max: 250,
    pattern: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/.+$/,
    patternText: 'must be a domain-prefixed path like "example.com/ingress-controller"',
  });
}
