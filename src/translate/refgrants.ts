/** ReferenceGrant checks: may an object in one namespace refer to an object in another? */
import type { ReferenceGrant } from '../api/types.ts';

export interface RefFrom {
  group: string;
  kind: string;
  namespace: string;
}

export interface RefTo {
  group: string;
  kind: string;
  namespace: string;
  name: string;
}

/** Same-namespace references are always allowed; cross-namespace ones need a grant in the target namespace. */
export function referenceAllowed(from: RefFrom, to: RefTo, grants: readonly ReferenceGrant[]): boolean {
  if (from.namespace === to.namespace) return true;
  for (const g of grants) {
    if ((g.metadata.namespace ?? 'default') !== to.namespace) continue;
    const fromOk = g.spec.from.some(
      (f) => f.group === from.group && f.kind === from.kind && f.namespace === from.namespace,
    );
    if (!fromOk) continue;
    const toOk = g.spec.to.some(
      (t) =>
        t.group === to.group &&
        t.kind === to.kind &&
        (t.name === undefined || t.name === '' || t.name === to.name),
    );
    if (toOk) return true;
  }
  return false;
}
