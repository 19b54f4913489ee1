/** Deterministic ordering: oldest creationTimestamp first, then namespace/name (the Gateway API tie-break). */
import type { KubeObject } from '../api/types.ts';

export function byAge(a: KubeObject, b: KubeObject): number {
  // Objects without a timestamp (file mode) sort as "oldest" together, then by namespace/name.
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  return byName(a, b);
}

export function byName(a: KubeObject, b: KubeObject): number {
  const ka = `${a.metadata.namespace ?? ''}/${a.metadata.name}`;
  const kb = `${b.metadata.namespace ?? ''}/${b.metadata.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}
