/** Gateway API Duration (GEP-2257): `1h`, `30s`, `500ms`, `1h30m` — parsed to milliseconds. */

const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };

/** Milliseconds, or null when the string is not a Gateway API Duration. */
export function parseDuration(s: string): number | null {
  if (!DURATION.test(s)) return null;
  let total = 0;
  for (const m of s.matchAll(/([0-9]+)(ms|h|m|s)/g)) total += Number(m[1]) * (UNIT_MS[m[2]!] ?? 0);
  return total;
}
