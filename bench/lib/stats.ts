/** Medians and spreads across runs, and the markdown table of ratios. */

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Spread {
  med: number;
  lo: number;
  hi: number;
}

export function spread(xs: number[]): Spread {
  const f = xs.filter((x) => Number.isFinite(x));
  return { med: median(f), lo: Math.min(...f), hi: Math.max(...f) };
}

export function fmt(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  const a = Math.abs(x);
  if (a >= 1000) return x.toFixed(0);
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toFixed(3);
}

function fmtSpread(s: Spread, suffix = ''): string {
  if (!Number.isFinite(s.med)) return 'n/a';
  if (s.lo === s.hi) return `${fmt(s.med)}${suffix}`;
  return `${fmt(s.med)}${suffix} (${fmt(s.lo)}–${fmt(s.hi)})`;
}

export interface MetricDef {
  key: string;
  label: string;
  /** true when a larger value is better (throughput); false for CPU, memory, latency. */
  higherBetter: boolean;
}

/** samples[metric][target] = one value per run (NaN where not measured). */
export type Samples = Record<string, Record<string, number[]>>;

/**
 * One row per metric and target: median value with min–max across runs, and the ratio to direct and
 * to HAProxy computed within each run (so machine-wide drift cancels), median and min–max.
 */
export function ratioTable(metrics: MetricDef[], targets: string[], samples: Samples): string {
  const rows = [
    '| metric | target | median (min–max) | × direct (min–max) | × HAProxy (min–max) |',
    '|---|---|---|---|---|',
  ];
  for (const m of metrics) {
    const byT = samples[m.key] ?? {};
    for (const t of targets) {
      const vals = byT[t];
      if (!vals || vals.every((v) => !Number.isFinite(v))) continue;
      const ratio = (ref: string): string => {
        const r = byT[ref];
        if (!r || t === ref) return t === ref ? '1' : 'n/a';
        const rs = vals.map((v, i) => v / (r[i] ?? Number.NaN));
        return fmtSpread(spread(rs), '×');
      };
      rows.push(
        `| ${m.label} | ${t} | ${fmtSpread(spread(vals))} | ${ratio('direct')} | ${ratio('haproxy')} |`,
      );
    }
  }
  return rows.join('\n');
}
