/** Summarises a V8 .cpuprofile: self time by function and by area (snigate, node internals, GC...). */
import { readFileSync } from 'node:fs';

interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: CpuNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  idlePct: number;
  areas: { area: string; pct: number }[];
  top: { fn: string; where: string; pct: number }[];
}

function area(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return 'native (libuv, syscalls, V8 runtime)';
  if (url.includes('/src/')) return 'snigate (src/)';
  if (url.startsWith('wasm://') || /amaro|internal\/modules|internal\/bootstrap/.test(url))
    return 'start-up (module loading, type stripping)';
  if (url.includes('node_modules/yaml')) return 'config loading (yaml)';
  if (url.includes('node_modules/pino') || url.includes('thread-stream') || url.includes('sonic-boom'))
    return 'logging (pino)';
  if (url.startsWith('node:')) return 'node core JS (net, stream, events)';
  if (url === '') return 'native (libuv, syscalls, V8 runtime)';
  return 'other JS';
}

export function summarise(file: string, topN = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  let total = 0;
  let idle = 0;
  const byFn = new Map<string, { fn: string; where: string; us: number }>();
  const byArea = new Map<string, number>();
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    total += us;
    const a = area(cf.url, cf.functionName);
    if (a === 'idle') {
      idle += us;
      continue;
    }
    byArea.set(a, (byArea.get(a) ?? 0) + us);
    const where = cf.url
      ? `${cf.url.replace(/^file:\/\/.*?\/(src|node_modules)\//, '$1/')}:${cf.lineNumber + 1}`
      : '';
    const fn = cf.functionName || '(anonymous)';
    const key = `${fn}@${where}`;
    const e = byFn.get(key) ?? { fn, where, us: 0 };
    e.us += us;
    byFn.set(key, e);
  }
  const busy = total - idle;
  return {
    totalMs: total / 1000,
    idlePct: (100 * idle) / total,
    areas: [...byArea].map(([a, us]) => ({ area: a, pct: (100 * us) / busy })).sort((x, y) => y.pct - x.pct),
    top: [...byFn.values()]
      .sort((x, y) => y.us - x.us)
      .slice(0, topN)
      .map((e) => ({ fn: e.fn, where: e.where, pct: (100 * e.us) / busy })),
  };
}

export function profileMarkdown(name: string, s: ProfileSummary): string {
  const lines = [
    `#### ${name}: ${s.totalMs.toFixed(0)} ms sampled, ${s.idlePct.toFixed(0)}% idle; shares below are of busy time`,
    '',
    '| area | % busy |',
    '|---|---|',
    ...s.areas.map((a) => `| ${a.area} | ${a.pct.toFixed(1)} |`),
    '',
    '| function (self time) | where | % busy |',
    '|---|---|---|',
    ...s.top.map((t) => `| \`${t.fn}\` | ${t.where} | ${t.pct.toFixed(1)} |`),
  ];
  return lines.join('\n');
}
