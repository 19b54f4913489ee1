/**
 * The operator's dashboard: `/` (and `/dashboard`) serves one self-contained HTML page that polls
 * `/dashboard.json` every 2 s; buildDashboard() makes that document from the serving table, the
 * statuses, the last reload, live endpoint health and the live traffic counters.
 *
 * Never in the document: certificate or key PEM (only Secret names). Client-chosen strings (SNI,
 * reject detail) are in it, truncated: the page only ever writes data with textContent, and its
 * Content-Security-Policy allows no script but its own.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Diagnostic } from '../api/diagnostics.ts';
import type { ReloadRecord, ServingState } from '../config/reconciler.ts';
import type { EndpointHealth } from '../dataplane/health.ts';
import { endpointKey } from '../dataplane/health.ts';
import type { Backend, Bind, RouteRef, TableListener } from '../table/types.ts';
import type { ObjectStatus } from '../translate/index.ts';
import type { BindCounters, Counters, LiveTraffic, RejectEntry } from './recent-rejects.ts';

export interface DashboardSources {
  reconciler: {
    readonly serving: ServingState | null;
    readonly lastReload: ReloadRecord | null;
    readonly counts: { reloads: number; failures: number };
  };
  dataPlane: {
    listening(): { address: string; port: number }[];
    activeConnections(): number;
    readonly health: { snapshot(): EndpointHealth[] };
  };
  traffic: LiveTraffic;
  /** Epoch ms the process started serving. */
  startedAt: number;
  now?: () => number;
  version?: string;
}

export interface Cond {
  type: string;
  status: string;
  reason: string;
  message: string;
  /** True when this condition says something is wrong (False, or True for Conflicted & co.). */
  bad: boolean;
}

export interface DashEndpoint {
  endpoint: string;
  /** null: not watched by the health registry (yet). */
  healthy: boolean | null;
  lastError: string | null;
}

export interface DashBackend {
  id: string;
  weight: number;
  /** Configured share of new connections, percent (0 for weight-0 fallbacks). */
  sharePct: number;
  invalid: string | null;
  endpoints: DashEndpoint[];
  traffic: Counters | null;
}

export interface DashRoute {
  /** SNI hostname (passthrough, tcp) or virtual host (HTTP). */
  hostname: string;
  /** HTTP rules only: `PathPrefix /api GET`. */
  match: string | null;
  /** `Kind/namespace/name` */
  route: string;
  kind: string;
  name: string;
  conditions: Cond[];
  traffic: Counters | null;
  backends: DashBackend[];
}

export interface DashListener {
  id: string;
  hostname: string | null;
  mode: string;
  mergedWith: string[];
  /** Secret `namespace/name` only: never PEM. */
  certificates: string[];
  conditions: Cond[];
  routes: DashRoute[];
}

export interface DashBind {
  /** `address:port` (`*:port` for the default addresses). */
  bind: string;
  port: number;
  protocol: string;
  listening: boolean;
  failure: string | null;
  active: number;
  accepted: number;
  listeners: DashListener[];
}

export interface Problem {
  severity: 'error' | 'warning';
  where: string;
  what: string;
  detail: string;
}

export interface DashboardDoc {
  version: string;
  now: string;
  startedAt: string;
  uptimeSec: number;
  ready: boolean;
  programmedAt: string | null;
  lastReload: ReloadRecord | null;
  reloads: { reloads: number; failures: number };
  activeConnections: number;
  binds: DashBind[];
  traffic: ({ route: string; inTable: boolean } & Counters)[];
  bindTraffic: BindCounters[];
  rejects: (Omit<RejectEntry, 'at'> & { at: string })[];
  rejectsByReason: Record<string, number>;
  problems: Problem[];
}

/** Conditions where True is the bad news. */
const NEGATIVE = new Set([
  'Conflicted',
  'OverlappingTLSConfig',
  'PartiallyInvalid',
  'InsecureFrontendValidationMode',
]);

let cachedVersion: string | undefined;
function packageVersion(): string {
  if (cachedVersion === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
        version?: unknown;
      };
      cachedVersion = typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      cachedVersion = 'unknown';
    }
  }
  return cachedVersion;
}

export function buildDashboard(src: DashboardSources): DashboardDoc {
  const now = (src.now ?? Date.now)();
  const serving = src.reconciler.serving;
  const lastReload = src.reconciler.lastReload;
  const health = new Map(src.dataPlane.health.snapshot().map((h) => [h.endpoint, h]));
  const statuses = serving?.result.statuses ?? [];
  const bindTraffic = src.traffic.binds();
  const listening = src.dataPlane.listening();
  const problems: Problem[] = [];

  if (lastReload && !lastReload.ok)
    problems.push({
      severity: 'error',
      where: `reload (${lastReload.trigger})`,
      what: serving
        ? 'configuration change refused: the last good configuration keeps serving'
        : 'configuration invalid',
      detail: lastReload.errors.join('\n'),
    });
  if (!serving)
    problems.push({
      severity: 'error',
      where: 'gateway',
      what: 'not ready',
      detail: 'no configuration programmed yet',
    });

  const binds: DashBind[] = (serving?.table.binds ?? []).map((b) => {
    const counters = bindTraffic.filter(
      (t) => portOf(t.bind) === b.port && (b.address === null || t.bind === hp(b.address, b.port)),
    );
    const failure = serving?.bindFailures.find((f) => sameBind(f, b, serving));
    const open = listening.filter(
      (l) => l.port === b.port && (b.address === null || l.address === b.address),
    );
    return {
      // The default addresses (`address: null`) are shown as what they resolved to.
      bind:
        b.address !== null
          ? hp(b.address, b.port)
          : open.length > 0
            ? open.map((l) => hp(l.address, l.port)).join(', ')
            : `*:${b.port}`,
      port: b.port,
      protocol: b.protocol,
      listening: open.length > 0,
      failure: failure?.code ?? null,
      active: counters.reduce((n, c) => n + c.active, 0),
      accepted: counters.reduce((n, c) => n + c.accepted, 0),
      listeners: b.listeners.map((l) => dashListener(l, statuses, src.traffic, health)),
    };
  });

  for (const f of serving?.bindFailures ?? [])
    problems.push({
      severity: 'error',
      where: `bind ${f.address ?? '*'}:${f.port}`,
      what: `cannot listen: ${f.code}`,
      detail: f.code === 'EACCES' ? 'ports below 1024 need root or CAP_NET_BIND_SERVICE' : '',
    });
  for (const s of statuses) problems.push(...statusProblems(s));
  for (const d of serving?.result.allDiagnostics ?? []) {
    if (d.severity === 'error' || d.severity === 'warning') problems.push(diagnosticProblem(d));
  }
  problems.push(...backendProblems(binds));

  const inTable = new Set<string>();
  for (const b of binds) for (const l of b.listeners) for (const r of l.routes) inTable.add(r.route);
  const traffic = src.traffic.routes().map((r) => ({ ...r, inTable: inTable.has(r.route) }));
  for (const route of inTable) {
    if (!traffic.some((t) => t.route === route))
      traffic.push({
        route,
        inTable: true,
        total: 0,
        failed: 0,
        bytesIn: 0,
        bytesOut: 0,
        lastAt: 0,
        open: 0,
      });
  }
  traffic.sort((a, b) => a.route.localeCompare(b.route));

  return {
    version: src.version ?? packageVersion(),
    now: new Date(now).toISOString(),
    startedAt: new Date(src.startedAt).toISOString(),
    uptimeSec: Math.max(0, Math.round((now - src.startedAt) / 1000)),
    ready: serving !== null,
    programmedAt: serving?.programmedAt ?? null,
    lastReload,
    reloads: src.reconciler.counts,
    activeConnections: src.dataPlane.activeConnections(),
    binds,
    traffic,
    bindTraffic,
    rejects: src.traffic.rejects(100).map((r) => ({ ...r, at: new Date(r.at).toISOString() })),
    rejectsByReason: src.traffic.reasons(),
    problems,
  };
}

function hp(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function portOf(display: string): number {
  return Number(display.slice(display.lastIndexOf(':') + 1));
}

/** bindFailures carry unshifted ports; the table's are shifted by the same offset for every bind. */
function sameBind(f: { address: string | null; port: number }, b: Bind, s: ServingState): boolean {
  const offset =
    s.table.binds.length > 0 && s.result.table.binds.length === s.table.binds.length
      ? s.table.binds[0]!.port - s.result.table.binds[0]!.port
      : 0;
  return f.port + offset === b.port && f.address === b.address;
}

function routeName(r: RouteRef): string {
  return `${r.kind}/${r.namespace}/${r.name}`;
}

function dashListener(
  l: TableListener,
  statuses: ObjectStatus[],
  traffic: LiveTraffic,
  health: Map<string, EndpointHealth>,
): DashListener {
  const routes: DashRoute[] = [];
  const route = (hostname: string, match: string | null, ref: RouteRef, backends: Backend[]): DashRoute => {
    const name = routeName(ref);
    return {
      hostname,
      match,
      route: name,
      kind: ref.kind,
      name: `${ref.namespace}/${ref.name}`,
      conditions: routeConditions(statuses, ref, l),
      traffic: traffic.route(name),
      backends: dashBackends(backends, name, traffic, health),
    };
  };
  for (const r of l.routes) routes.push(route(r.hostname, null, r.route, r.backends.backends));
  for (const vh of l.http ?? []) {
    for (const rule of vh.rules) {
      const m = rule.match;
      const match = [
        `${m.path.type} ${m.path.value}`,
        m.method ?? '',
        m.headers.length ? `${m.headers.length} header match${m.headers.length > 1 ? 'es' : ''}` : '',
        m.queryParams.length
          ? `${m.queryParams.length} query match${m.queryParams.length > 1 ? 'es' : ''}`
          : '',
      ]
        .filter(Boolean)
        .join(' · ');
      routes.push(route(vh.hostname, match, rule.route, rule.backends));
    }
  }
  return {
    id: l.id,
    hostname: l.hostname,
    mode: l.mode,
    mergedWith: l.mergedWith ?? [],
    certificates: (l.tls?.certificates ?? []).map((c) => c.secret),
    conditions: listenerConditions(statuses, l),
    routes,
  };
}

function dashBackends(
  backends: Backend[],
  route: string,
  traffic: LiveTraffic,
  health: Map<string, EndpointHealth>,
): DashBackend[] {
  const sum = backends.reduce((n, b) => n + Math.max(0, b.weight), 0);
  return backends.map((b) => ({
    id: b.id,
    weight: b.weight,
    sharePct: sum > 0 ? Math.round((Math.max(0, b.weight) / sum) * 1000) / 10 : 0,
    invalid: b.invalid ?? null,
    endpoints: b.endpoints.map((e) => {
      const key = endpointKey(e);
      const h = health.get(key);
      return { endpoint: key, healthy: h ? h.healthy : null, lastError: h?.lastError ?? null };
    }),
    traffic: traffic.backend(route, b.id),
  }));
}

function conds(v: unknown): Cond[] {
  if (!Array.isArray(v)) return [];
  return v
    .filter((c): c is Record<string, unknown> => typeof c === 'object' && c !== null)
    .map((c) => {
      const type = String(c.type ?? '');
      const status = String(c.status ?? 'Unknown');
      return {
        type,
        status,
        reason: String(c.reason ?? ''),
        message: String(c.message ?? ''),
        bad: NEGATIVE.has(type) ? status === 'True' : status !== 'True',
      };
    });
}

function findStatus(
  statuses: ObjectStatus[],
  kind: string,
  namespace: string,
  name: string,
): ObjectStatus | undefined {
  return statuses.find(
    (s) => s.kind === kind && s.metadata.name === name && (s.metadata.namespace ?? namespace) === namespace,
  );
}

function listenerConditions(statuses: ObjectStatus[], l: TableListener): Cond[] {
  const gw = findStatus(statuses, 'Gateway', l.gateway.namespace, l.gateway.name);
  const ls = gw?.status.listeners;
  if (!Array.isArray(ls)) return [];
  const mine = ls.find((x) => (x as { name?: unknown }).name === l.name) as
    | { conditions?: unknown }
    | undefined;
  return conds(mine?.conditions);
}

function routeConditions(statuses: ObjectStatus[], ref: RouteRef, l: TableListener): Cond[] {
  const st = findStatus(statuses, ref.kind, ref.namespace, ref.name);
  const parents = st?.status.parents;
  if (!Array.isArray(parents)) return [];
  const p = parents.find((x) => {
    const pr = (x as { parentRef?: { name?: string; namespace?: string; sectionName?: string } }).parentRef;
    return (
      pr?.name === l.gateway.name &&
      (pr.namespace ?? ref.namespace) === l.gateway.namespace &&
      (pr.sectionName === undefined || pr.sectionName === l.name)
    );
  }) as { conditions?: unknown } | undefined;
  return conds(p?.conditions);
}

function statusProblems(s: ObjectStatus): Problem[] {
  const obj = `${s.kind} ${s.metadata.namespace ? `${s.metadata.namespace}/` : ''}${s.metadata.name}`;
  const out: Problem[] = [];
  const push = (where: string, cs: Cond[]) => {
    for (const c of cs) {
      if (!c.bad) continue;
      out.push({
        severity: c.type === 'InsecureFrontendValidationMode' ? 'warning' : 'error',
        where,
        what: `${c.type}=${c.status} (${c.reason})`,
        detail: c.message,
      });
    }
  };
  push(obj, conds(s.status.conditions));
  for (const l of arr(s.status.listeners)) push(`${obj} listener ${String(l.name)}`, conds(l.conditions));
  for (const p of arr(s.status.parents)) {
    const pr = (p.parentRef ?? {}) as { name?: string; namespace?: string; sectionName?: string };
    const section = pr.sectionName ? `/${pr.sectionName}` : '';
    push(
      `${obj} → ${pr.namespace ? `${pr.namespace}/` : ''}${pr.name ?? '?'}${section}`,
      conds(p.conditions),
    );
  }
  for (const a of arr(s.status.ancestors)) push(`${obj} (ancestor)`, conds(a.conditions));
  return out;
}

function arr(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v)
    ? v.filter((x): x is Record<string, unknown> => typeof x === 'object' && x !== null)
    : [];
}

function diagnosticProblem(d: Diagnostic): Problem {
  const obj = d.object
    ? `${d.object.kind} ${d.object.namespace ? `${d.object.namespace}/` : ''}${d.object.name}`
    : '';
  const loc = d.file ? `${d.file}${d.line ? `:${d.line}` : ''}` : '';
  return {
    severity: d.severity === 'error' ? 'error' : 'warning',
    where: [obj, d.path].filter(Boolean).join(' ') || loc || 'configuration',
    what: `${d.code}: ${d.message}`,
    detail: [d.hint ? `hint: ${d.hint}` : '', loc].filter(Boolean).join('\n'),
  };
}

function backendProblems(binds: DashBind[]): Problem[] {
  const out: Problem[] = [];
  const seenBackend = new Set<string>();
  const seenEndpoint = new Set<string>();
  for (const b of binds)
    for (const l of b.listeners)
      for (const r of l.routes)
        for (const be of r.backends) {
          const key = `${r.route} ${be.id}`;
          if (!seenBackend.has(key)) {
            seenBackend.add(key);
            if (be.invalid)
              out.push({
                severity: 'error',
                where: `${r.kind} ${r.name}`,
                what: `backend ${be.id} invalid: ${be.invalid}`,
                detail: `its ${be.sharePct}% share of connections is rejected`,
              });
            else if (be.endpoints.length === 0 && be.weight > 0)
              out.push({
                severity: 'error',
                where: `${r.kind} ${r.name}`,
                what: `backend ${be.id} has no ready endpoints`,
                detail: `its ${be.sharePct}% share of connections is rejected (no-endpoints)`,
              });
          }
          for (const e of be.endpoints) {
            if (e.healthy !== false || seenEndpoint.has(e.endpoint)) continue;
            seenEndpoint.add(e.endpoint);
            out.push({
              severity: 'warning',
              where: `endpoint ${e.endpoint}`,
              what: `unhealthy (backend ${be.id})`,
              detail: e.lastError ?? '',
            });
          }
        }
  return out;
}

const STYLE = `
:root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1b1f24;--muted:#57606a;--card:#fff;--line:#d0d7de;--ok:#116329;--ok-bg:#dafbe1;--bad:#a40e26;--bad-bg:#ffebe9;--warn:#7d4e00;--warn-bg:#fff8c5;--bar:#0969da;--bar-bg:#e7ecf2;--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9da7b3;--card:#161b22;--line:#30363d;--ok:#3fb950;--ok-bg:#12261e;--bad:#ff7b72;--bad-bg:#3c1618;--warn:#e3b341;--warn-bg:#2e2411;--bar:#4493f8;--bar-bg:#262c36}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif}
header.top{position:sticky;top:0;z-index:1;display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;padding:.6rem 1.25rem;background:var(--card);border-bottom:1px solid var(--line)}
header.top h1{font-size:1.15rem;margin:0 .5rem 0 0}
main{max-width:1500px;margin:0 auto;padding:1rem 1.25rem 3rem}
section{margin:0 0 1.5rem}
h2{font-size:1.05rem;margin:0 0 .5rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
h3{font-size:1rem;margin:0}
h4{font-size:.95rem;margin:0}
code,.mono{font-family:var(--mono);font-size:.9em;overflow-wrap:anywhere}
.muted{color:var(--muted)}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.75rem 1rem;margin:0 0 .75rem}
.row{display:flex;flex-wrap:wrap;gap:.35rem .75rem;align-items:center}
.pill{display:inline-block;padding:.05rem .55rem;border-radius:999px;border:1px solid var(--line);font-size:.85rem;white-space:nowrap}
.ok{color:var(--ok);background:var(--ok-bg);border-color:transparent}
.bad{color:var(--bad);background:var(--bad-bg);border-color:transparent;font-weight:600}
.warn{color:var(--warn);background:var(--warn-bg);border-color:transparent}
.alert{border:2px solid var(--bad);background:var(--bad-bg);color:var(--fg);border-radius:8px;padding:.75rem 1rem;margin:0 0 1.25rem}
.alert strong{color:var(--bad)}
.alert pre{white-space:pre-wrap;margin:.5rem 0 0;font-family:var(--mono);font-size:.85rem}
.listener{border-top:1px solid var(--line);margin-top:.6rem;padding-top:.6rem}
.route{margin:.6rem 0 0 .75rem;padding-left:.75rem;border-left:3px solid var(--line)}
table{border-collapse:collapse;width:100%;margin-top:.35rem}
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.8rem;font-weight:600;color:var(--muted);text-transform:uppercase;letter-spacing:.03em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bar{display:inline-block;width:120px;height:.7rem;background:var(--bar-bg);border-radius:4px;overflow:hidden;vertical-align:middle;margin-right:.4rem}
.bar>span{display:block;height:100%;background:var(--bar)}
.dot{display:inline-block;width:.7rem;height:.7rem;border-radius:50%;margin-right:.3rem;vertical-align:baseline;background:var(--muted)}
.dot.up{background:#1a7f37}.dot.down{background:#cf222e}
.ep{display:block;overflow-wrap:anywhere}
.route table{table-layout:fixed}
.w-backend{width:30%}.w-weight{width:9%}.w-share{width:17%}.w-eps{width:30%}.w-conns{width:14%}
ul.problems{list-style:none;margin:0;padding:0}
ul.problems li{display:grid;grid-template-columns:6.5rem 1fr;gap:.1rem .75rem;padding:.45rem .75rem;border-bottom:1px solid var(--line)}
ul.problems li:last-child{border-bottom:0}
.detail{grid-column:2;white-space:pre-wrap;color:var(--muted);font-size:.9rem}
.empty{color:var(--muted);font-style:italic}
.good{color:var(--ok)}
.bad-text{color:var(--bad);font-weight:600}
`;

const SCRIPT = `
'use strict';
(function () {
  var POLL_MS = 2000;
  var lastOk = null;
  var bannerKey = null;
  var MODES = { passthrough: 'TLS passthrough', 'terminate-tls': 'TLS terminate', 'terminate-https': 'HTTPS (terminate)', http: 'HTTP', tcp: 'TCP' };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function add(parent) {
    for (var i = 1; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      parent.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    }
    return parent;
  }
  function pill(text, kind, title) {
    var p = el('span', 'pill' + (kind ? ' ' + kind : ''), text);
    if (title) p.title = title;
    return p;
  }
  function code(text) { return el('code', null, text); }
  function bytes(n) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + ' ' + u[i];
  }
  function dur(s) {
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), sec = s % 60;
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + sec + 's';
    return sec + 's';
  }
  function time(iso) {
    var t = el('time', null, new Date(iso).toLocaleTimeString([], { hour12: false }));
    t.dateTime = iso;
    t.title = iso;
    return t;
  }
  function th(text, cls) { var h = el('th', cls, text); h.scope = 'col'; return h; }
  function table(headers, rows) {
    var t = el('table');
    var tr = el('tr');
    headers.forEach(function (h) { tr.appendChild(th(h[0], h[1])); });
    add(t, add(el('thead'), tr));
    var body = el('tbody');
    rows.forEach(function (r) { body.appendChild(r); });
    t.appendChild(body);
    return t;
  }
  function cell(content, cls) { return add(el('td', cls), content); }
  function health(h) {
    var label = h === true ? 'healthy' : h === false ? 'unhealthy' : 'unknown';
    var s = el('span', h === false ? 'bad-text' : null);
    add(s, el('span', 'dot ' + (h === true ? 'up' : h === false ? 'down' : '')), label);
    return s;
  }
  function chips(conds) {
    var box = el('span', 'row');
    conds.forEach(function (c) {
      var text = c.bad ? c.type + ': ' + (c.reason || c.status) : c.type;
      box.appendChild(pill((c.bad ? '\\u2716 ' : '\\u2714 ') + text, c.bad ? 'bad' : 'ok', c.reason + ': ' + c.message));
    });
    return box;
  }
  function section(id) {
    var s = document.getElementById(id);
    var h = s.querySelector('h2');
    s.replaceChildren(h);
    return s;
  }

  function renderHeader(d) {
    var h = document.getElementById('hdr');
    h.replaceChildren(el('h1', null, 'snigate'));
    add(h,
      pill('v' + d.version),
      pill('up ' + dur(d.uptimeSec), null, 'started ' + d.startedAt),
      d.ready ? pill('\\u2714 ready', 'ok') : pill('\\u2716 not ready', 'bad'),
      !d.lastReload ? pill('no reload yet', 'warn')
        : d.lastReload.ok ? pill('\\u2714 last reload OK ' + new Date(d.lastReload.at).toLocaleTimeString([], { hour12: false }), 'ok', d.lastReload.trigger)
        : pill('\\u2716 last reload REFUSED ' + new Date(d.lastReload.at).toLocaleTimeString([], { hour12: false }), 'bad', d.lastReload.trigger),
      pill(d.activeConnections + ' open connection' + (d.activeConnections === 1 ? '' : 's')),
      pill(d.problems.length ? d.problems.length + ' problem' + (d.problems.length === 1 ? '' : 's') : 'no problems',
        d.problems.some(function (p) { return p.severity === 'error'; }) ? 'bad' : d.problems.length ? 'warn' : 'ok'),
      add(el('span', 'muted'), 'updated ', time(d.now)));
    document.title = (d.problems.length ? '(' + d.problems.length + ') ' : '') + 'snigate dashboard';
  }

  function renderBanner(d) {
    var b = document.getElementById('refused');
    var r = d.lastReload;
    var key = r && !r.ok ? r.at + r.errors.join() : '';
    if (key === bannerKey) return;
    bannerKey = key;
    if (!key) { b.hidden = true; b.replaceChildren(); return; }
    b.replaceChildren(
      add(el('strong'), d.ready ? 'Configuration change REFUSED' : 'Configuration INVALID'),
      add(el('span'), ' at ', time(r.at), ' (', r.trigger, '). ',
        d.ready ? 'The last good configuration (programmed ' + new Date(d.programmedAt).toLocaleString() + ') keeps serving.' : 'Nothing is being served.'),
      el('pre', null, r.errors.join('\\n')));
    b.hidden = false;
  }

  function renderProblems(d) {
    var s = section('problems');
    if (!d.problems.length) { s.appendChild(el('p', 'card good', '\\u2714 No problems: every condition is True and every endpoint is healthy.')); return; }
    var ul = el('ul', 'problems card');
    d.problems.forEach(function (p) {
      var li = el('li');
      add(li, add(el('span'), pill(p.severity, p.severity === 'error' ? 'bad' : 'warn')),
        add(el('div'), add(el('strong'), p.where), ' \\u2014 ', p.what));
      if (p.detail) li.appendChild(el('div', 'detail', p.detail));
      ul.appendChild(li);
    });
    s.appendChild(ul);
  }

  function backendRows(r) {
    var observed = r.backends.reduce(function (n, b) { return n + (b.traffic ? b.traffic.total : 0); }, 0);
    return r.backends.map(function (b) {
      var bar = el('span', 'bar');
      bar.setAttribute('aria-hidden', 'true');
      var fill = el('span');
      fill.style.width = Math.min(100, b.sharePct) + '%';
      bar.appendChild(fill);
      var share = add(el('td', 'num'), bar, add(el('strong'), b.sharePct + '%'));
      var eps = el('td');
      if (b.invalid) eps.appendChild(pill('invalid: ' + b.invalid, 'bad'));
      else if (!b.endpoints.length) eps.appendChild(pill('no ready endpoints', 'bad'));
      b.endpoints.forEach(function (e) {
        var line = add(el('span', 'ep'), health(e.healthy), ' ', code(e.endpoint));
        if (e.lastError) line.appendChild(el('span', 'muted', ' (' + e.lastError + ')'));
        eps.appendChild(line);
      });
      var n = b.traffic ? b.traffic.total : 0;
      return add(el('tr'),
        cell(code(b.id)),
        cell(String(b.weight) + (b.weight === 0 ? ' (fallback)' : ''), 'num'),
        share,
        eps,
        cell(n + (observed ? ' (' + Math.round(n * 1000 / observed) / 10 + '%)' : ''), 'num'));
    });
  }

  function renderListeners(d) {
    var s = section('listeners');
    if (!d.binds.length) { s.appendChild(el('p', 'empty', 'No listeners programmed.')); return; }
    d.binds.forEach(function (b) {
      var card = el('article', 'card');
      add(card, add(el('div', 'row'),
        add(el('h3'), code(b.bind)),
        pill(b.protocol.toUpperCase()),
        b.listening ? pill('\\u2714 listening', 'ok') : pill('\\u2716 not listening' + (b.failure ? ': ' + b.failure : ''), 'bad'),
        el('span', 'muted', b.active + ' open \\u00b7 ' + b.accepted + ' accepted')));
      b.listeners.forEach(function (l) {
        var ld = el('div', 'listener');
        add(ld, add(el('div', 'row'),
          add(el('h4'), 'Listener ', code(l.id)),
          pill(l.hostname === null ? 'any hostname' : l.hostname),
          pill(MODES[l.mode] || l.mode),
          chips(l.conditions)));
        if (l.certificates.length) ld.appendChild(add(el('div', 'muted'), 'certificates (Secrets): ', code(l.certificates.join(', '))));
        if (l.mergedWith.length) ld.appendChild(add(el('div', 'muted'), 'served together with: ', code(l.mergedWith.join(', '))));
        if (!l.routes.length) ld.appendChild(el('p', 'empty', 'No routes attached.'));
        var groups = [];
        var byKey = {};
        l.routes.forEach(function (r) {
          var k = r.route + '|' + (r.match || '');
          if (!byKey[k]) { byKey[k] = { r: r, hosts: [] }; groups.push(byKey[k]); }
          byKey[k].hosts.push(r.hostname);
        });
        groups.forEach(function (g) {
          var r = g.r;
          var rd = el('div', 'route');
          var t = r.traffic;
          add(rd, add(el('div', 'row'),
            add(el('strong'), r.kind + ' ', code(r.name)),
            el('span', 'muted', '\\u2190 ' + g.hosts.join(', ') + (r.match ? ' \\u00b7 ' + r.match : '')),
            chips(r.conditions),
            el('span', 'muted', t ? (t.open || 0) + ' open \\u00b7 ' + t.total + ' connections ended \\u00b7 ' + bytes(t.bytesIn) + ' in \\u00b7 ' + bytes(t.bytesOut) + ' out' : 'no connections yet')));
          rd.appendChild(table([['Backend', 'w-backend'], ['Weight', 'num w-weight'], ['Share', 'num w-share'], ['Endpoints (health)', 'w-eps'], ['Connections', 'num w-conns']], backendRows(r)));
          ld.appendChild(rd);
        });
        card.appendChild(ld);
      });
      s.appendChild(card);
    });
  }

  function renderTraffic(d) {
    var s = section('traffic');
    var card = el('div', 'card');
    card.appendChild(el('h3', null, 'Open connections by bind'));
    card.appendChild(d.bindTraffic.length
      ? table([['Bind'], ['Open now', 'num'], ['Accepted', 'num']], d.bindTraffic.map(function (b) {
          return add(el('tr'), cell(code(b.bind)), cell(String(b.active), 'num'), cell(String(b.accepted), 'num'));
        }))
      : el('p', 'empty', 'No connection accepted yet.'));
    var h = el('h3', null, 'Per route (connections, failed and bytes: ended; open: now)');
    h.style.marginTop = '1rem';
    card.appendChild(h);
    card.appendChild(d.traffic.length
      ? table([['Route'], ['Connections', 'num'], ['Failed', 'num'], ['Bytes in', 'num'], ['Bytes out', 'num'], ['Last'], ['Open now', 'num']], d.traffic.map(function (t) {
          return add(el('tr'),
            cell(add(el('span'), code(t.route), t.inTable ? null : el('span', 'muted', ' (removed)'))),
            cell(String(t.total), 'num'),
            cell(t.failed ? pill(String(t.failed), 'bad') : '0', 'num'),
            cell(bytes(t.bytesIn), 'num'),
            cell(bytes(t.bytesOut), 'num'),
            cell(t.lastAt ? time(new Date(t.lastAt).toISOString()) : el('span', 'muted', '\\u2014')),
            cell(String(t.open || 0), 'num'));
        }))
      : el('p', 'empty', 'No routes.'));
    s.appendChild(card);
  }

  function renderRejects(d) {
    var s = section('rejects');
    var card = el('div', 'card');
    var reasons = Object.keys(d.rejectsByReason).sort();
    card.appendChild(reasons.length
      ? add(el('div', 'row'), el('span', 'muted', 'since start:'), reasons.map(function (k) { return pill(k + ' \\u00d7 ' + d.rejectsByReason[k], 'warn'); }).reduce(function (f, p) { f.appendChild(p); return f; }, document.createDocumentFragment()))
      : el('p', 'empty good', '\\u2714 No rejected connections since start.'));
    if (d.rejects.length)
      card.appendChild(table([['Time'], ['Reason'], ['SNI'], ['Client'], ['Bind'], ['Listener / route'], ['Detail']], d.rejects.map(function (r) {
        return add(el('tr'),
          cell(time(r.at)),
          cell(pill(r.reason, 'bad')),
          cell(r.sni === null ? el('span', 'muted', '(none)') : code(r.sni)),
          cell(code(r.client)),
          cell(code(r.bind)),
          cell(r.route ? code(r.route) : r.listener ? code(r.listener) : el('span', 'muted', '\\u2014')),
          cell(r.detail === null ? '' : el('span', 'muted', r.detail)));
      })));
    s.appendChild(card);
  }

  function render(d) {
    renderHeader(d);
    renderBanner(d);
    renderProblems(d);
    renderListeners(d);
    renderTraffic(d);
    renderRejects(d);
  }

  function stale(err) {
    var h = document.getElementById('hdr');
    var old = document.getElementById('stale');
    if (old) old.remove();
    var p = pill('\\u2716 admin unreachable (' + err + ')' + (lastOk ? '; data from ' + lastOk.toLocaleTimeString([], { hour12: false }) : ''), 'bad');
    p.id = 'stale';
    p.setAttribute('role', 'status');
    h.appendChild(p);
  }

  function poll() {
    fetch('dashboard.json', { cache: 'no-store', headers: { accept: 'application/json' } })
      .then(function (res) {
        if (!res.ok) throw new Error('HTTP ' + res.status);
        return res.json();
      })
      .then(function (d) {
        lastOk = new Date();
        render(d);
        document.body.dataset.loaded = 'true';
      })
      .catch(function (e) { stale(e && e.message ? e.message : String(e)); })
      .finally(function () { setTimeout(poll, POLL_MS); });
  }
  poll();
})();
`;

const hash = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>snigate dashboard</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header class="top" id="hdr"><h1>snigate</h1><span class="muted">loading…</span></header>
<main>
<div id="refused" class="alert" role="alert" hidden></div>
<section id="problems" aria-labelledby="h-problems"><h2 id="h-problems">Problems</h2><p class="empty">loading…</p></section>
<section id="listeners" aria-labelledby="h-listeners"><h2 id="h-listeners">Listeners</h2><p class="empty">loading…</p></section>
<section id="traffic" aria-labelledby="h-traffic"><h2 id="h-traffic">Traffic</h2><p class="empty">loading…</p></section>
<section id="rejects" aria-labelledby="h-rejects"><h2 id="h-rejects">Recent rejects</h2><p class="empty">loading…</p></section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;

/** Only the page's own inline script and style run; data is fetched from the same origin. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export type AdminHandler = () => Promise<{ type: string; body: string; headers?: Record<string, string> }>;

/** The admin routes of the dashboard: `/`, `/dashboard` and `/dashboard.json`. */
export function dashboardRoutes(src: DashboardSources): Map<string, AdminHandler> {
  const page: AdminHandler = async () => ({
    type: 'text/html; charset=utf-8',
    body: DASHBOARD_HTML,
    headers: { 'content-security-policy': DASHBOARD_CSP, 'x-content-type-options': 'nosniff' },
  });
  const data: AdminHandler = async () => ({
    type: 'application/json',
    body: `${JSON.stringify(buildDashboard(src))}\n`,
    headers: { 'x-content-type-options': 'nosniff' },
  });
  return new Map([
    ['/', page],
    ['/dashboard', page],
    ['/dashboard.json', data],
  ]);
}
