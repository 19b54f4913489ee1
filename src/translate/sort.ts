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

/**
 * `items` in byAge order of `objectOf(item)`, as a new array. The keys are built once per item, not
 * twice per comparison: with 100k routes the comparator's strings were millions of short-lived allocations.
 * The sort is stable, so the order is exactly that of `.sort((a, b) => byAge(objectOf(a), objectOf(b)))`.
 */
export function sortedByAge<T>(items: readonly T[], objectOf: (item: T) => KubeObject): T[] {
  const keyed = items.map((item) => {
    const m = objectOf(item).metadata;
    return { item, ts: m.creationTimestamp ?? '', name: `${m.namespace ?? ''}/${m.name}` };
  });
  keyed.sort((a, b) =>
    a.ts !== b.ts ? (a.ts < b.ts ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  return keyed.map((k) => k.item);
}
