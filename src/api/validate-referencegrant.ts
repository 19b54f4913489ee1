/** ReferenceGrant validation: 1..16 `from` and `to` entries, each naming a group and kind. */

import type { Checker, Obj } from './validate-common.ts';

export function validateReferenceGrant(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  const from = c.arr(spec.from, 'spec.from', {
    required: true,
    min: 1,
    max: 16,
    hint: 'e.g. `from: [{group: gateway.networking.k8s.io, kind: TLSRoute, namespace: frontend}]`',
  });
  from.forEach((f, i) => {
    const p = `spec.from[${i}]`;
    const fo = c.obj(f, p, true);
    if (!fo) return;
    c.group(fo.group, `${p}.group`, true);
    c.kind(fo.kind, `${p}.kind`, true);
    c.namespaceRef(fo.namespace, `${p}.namespace`, true);
  });
  const to = c.arr(spec.to, 'spec.to', {
    required: true,
    min: 1,
    max: 16,
    hint: 'e.g. `to: [{group: "", kind: Service}]` (the core group is written "")',
  });
  to.forEach((t, i) => {
    const p = `spec.to[${i}]`;
    const to = c.obj(t, p, true);
    if (!to) return;
    c.group(to.group, `${p}.group`, true);
    c.kind(to.kind, `${p}.kind`, true);
    c.str(to.name, `${p}.name`, { min: 1, max: 253 });
  });
}
