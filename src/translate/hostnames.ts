/** Hostname matching and intersection with Gateway API semantics: a `*.` wildcard covers one or more labels. */

/** Does `pattern` (exact, `*.suffix`, or null = any) match the concrete name? */
export function hostnameMatches(pattern: string | null | undefined, name: string): boolean {
  if (!pattern || pattern === '*') return true;
  if (pattern.startsWith('*.')) return name.length > pattern.length - 1 && name.endsWith(pattern.slice(1));
  return pattern === name;
}

/**
 * The hostname a route hostname serves on a listener, or null when they do not intersect.
 * Listener null means "any". Two wildcards intersect as the more specific one.
 */
export function intersectHostname(listener: string | null | undefined, route: string): string | null {
  if (!listener || listener === '*') return route;
  if (route === '*') return listener;
  const lw = listener.startsWith('*.');
  const rw = route.startsWith('*.');
  if (!lw && !rw) return listener === route ? route : null;
  if (lw && !rw) return hostnameMatches(listener, route) ? route : null;
  if (!lw && rw) return hostnameMatches(route, listener) ? listener : null;
  // Both wildcards: the longer suffix wins if it lies inside the shorter one.
  if (route.length >= listener.length)
    return route.endsWith(listener.slice(1)) || route === listener ? route : null;
  return listener.endsWith(route.slice(1)) ? listener : null;
}

/** Could some name match both patterns? (null = any). Used for conflict and overlap reports. */
export function hostnamesOverlap(a: string | null | undefined, b: string | null | undefined): boolean {
  if (!a || !b) return true;
  return intersectHostname(a, b) !== null;
}

/**
 * Sort key for specificity: exact names first, then wildcards by suffix length (longest first),
 * then the catch-all. Returns a negative number when `a` is more specific.
 */
export function compareSpecificity(a: string | null, b: string | null): number {
  const ra = specificityRank(a);
  const rb = specificityRank(b);
  if (ra !== rb) return ra - rb;
  if (ra === 1) {
    const d = (b as string).length - (a as string).length;
    if (d !== 0) return d;
  }
  return (a ?? '') < (b ?? '') ? -1 : (a ?? '') > (b ?? '') ? 1 : 0;
}

/** 0 exact, 1 wildcard, 2 catch-all: the first key of compareSpecificity. */
export function specificityRank(h: string | null): number {
  return h === null || h === '*' ? 2 : h.startsWith('*.') ? 1 : 0;
}
