/** TLSRoute and TCPRoute validation, per served version of the v1.6 CRDs (v1alpha2 is looser than v1). */

import type { Checker, Obj } from './validate-common.ts';

const V1ALPHA2 = 'gateway.networking.k8s.io/v1alpha2';

export function validateTLSRoute(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  // v1 and v1alpha3 share one schema; the experimental-only v1alpha2 has optional hostnames and up to 16 rules.
  const alpha2 = o.apiVersion === V1ALPHA2;
  c.parentRefs(spec.parentRefs, 'spec.parentRefs');
  const hostnames = c.arr(spec.hostnames, 'spec.hostnames', {
    required: !alpha2,
    min: alpha2 ? 0 : 1,
    max: 1024,
    hint: 'a TLSRoute matches connections by SNI: list the names, e.g. `hostnames: ["app.example.com"]`',
  });
  hostnames.forEach((h, i) => {
    c.hostname(h, `spec.hostnames[${i}]`, true);
  });
  const rules = c.arr(spec.rules, 'spec.rules', {
    required: true,
    min: 1,
    max: alpha2 ? 16 : 1,
    hint: alpha2
      ? undefined
      : 'a TLSRoute has exactly one rule; to send different hostnames to different backends, write one TLSRoute per backend',
  });
  routeRules(c, rules, 'TLSRoute');
}

export function validateTCPRoute(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  const alpha2 = o.apiVersion === V1ALPHA2;
  c.parentRefs(spec.parentRefs, 'spec.parentRefs');
  const rules = c.arr(spec.rules, 'spec.rules', {
    required: true,
    min: 1,
    max: alpha2 ? 16 : 1,
    hint: alpha2 ? undefined : 'a TCPRoute has exactly one rule; use one TCPRoute per listener port',
  });
  routeRules(c, rules, 'TCPRoute');
}

function routeRules(c: Checker, rules: unknown[], kind: string): void {
  const names = new Set<unknown>();
  rules.forEach((r, i) => {
    const p = `spec.rules[${i}]`;
    const rule = c.obj(r, p, true);
    if (!rule) return;
    if (rule.name !== undefined) {
      c.sectionName(rule.name, `${p}.name`);
      if (names.has(rule.name)) c.error(`${p}.name`, 'Rule name must be unique within the route');
      names.add(rule.name);
    }
    if (kind === 'TLSRoute' && rule.matches !== undefined) {
      c.error(
        `${p}.matches`,
        'TLSRoute has no `matches` (the v1alpha1 `snis` form was removed in Gateway API v0.5.0)',
        'move the SNI names to `spec.hostnames`, one TLSRoute per backend',
        'legacy-tlsroute-snis',
      );
    }
    const refs = c.arr(rule.backendRefs, `${p}.backendRefs`, {
      required: true,
      min: 1,
      max: 16,
      hint: 'e.g. `backendRefs: [{name: my-service, port: 443}]`',
    });
    refs.forEach((b, j) => {
      c.backendRef(b, `${p}.backendRefs[${j}]`);
    });
  });
}
