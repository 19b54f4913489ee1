/**
 * `snigate explain --port P --sni NAME`: where a connection would go and why, or why it goes nowhere.
 * The decision itself is compileBind().match(), the data plane's own lookup, so the two cannot disagree;
 * everything else here is narration from the table, the statuses and the diagnostics.
 */
import type { Diagnostic } from '../api/diagnostics.ts';
import { formatDiagnostic } from '../api/diagnostics.ts';
import type { Condition, Gateway, ParentReference, Resources } from '../api/types.ts';
import { fastPathBindBlocker, fastPathRouteBlocker } from '../dataplane/fast-eligibility.ts';
import { routerFor } from '../dataplane/http-router.ts';
import { compileBind, type RouteMatch } from '../dataplane/sni-router.ts';
import { ErrorCode, SnigateError } from '../errors.ts';
import type { Backend, Bind, RoutingTable, SniRoute, TableListener } from '../table/types.ts';
import { hostnameMatches, intersectHostname } from '../translate/hostnames.ts';
import type { ObjectStatus } from '../translate/index.ts';
import { type PipelineArgs, runPipeline } from './pipeline.ts';

export interface ExplainInput {
  table: RoutingTable;
  statuses: ObjectStatus[];
  /** Load and translation diagnostics. */
  diagnostics: Diagnostic[];
  resources: Resources;
}

export interface ExplainQuery {
  /** The listener port as the manifests write it (before any --port-offset). */
  port: number;
  /** null: a client that sends no SNI. */
  sni: string | null;
  /** Live endpoint health (`address:port` → healthy), e.g. from a running instance's /status. */
  health?: Map<string, boolean>;
  /** For HTTP(S) listeners: the request to route (Host defaults to the SNI, path to `/`, method to GET). */
  http?: { host?: string; path?: string; method?: string; headers?: Record<string, string> };
}

export type HostMatchKind = 'exact' | 'wildcard' | 'catch-all';

export interface BackendExplanation {
  id: string;
  weight: number;
  /** Percent of new connections while every backend is healthy; weight-0 backends are fallback only. */
  sharePercent: number;
  invalid: string | null;
  endpoints: { endpoint: string; healthy: boolean | null }[];
}

export interface BindExplanation {
  address: string | null;
  protocol: Bind['protocol'];
  listener: { id: string; hostname: string | null; mode: string; match: HostMatchKind } | null;
  route: { kind: string; namespace: string; name: string; hostname: string; match: HostMatchKind } | null;
  backends: BackendExplanation[];
  reject: string | null;
  /** Routed to a plain passthrough route that the native fast path carries (no JavaScript per connection). */
  fastPath: boolean;
}

export interface Explanation {
  port: number;
  sni: string | null;
  /** The listener mode that takes the connection, or `rejected`. */
  outcome: string;
  binds: BindExplanation[];
  /** The explanation for people, one statement per line. */
  lines: string[];
}

export function explain(input: ExplainInput, q: ExplainQuery): Explanation {
  const name = q.sni === null || q.sni === '' ? null : normalize(q.sni);
  const lines: string[] = [];
  const binds: BindExplanation[] = [];
  const onPort = input.table.binds.filter((b) => b.port === q.port);
  const shown = name ?? '(no SNI)';
  lines.push(`connection to port ${q.port} with SNI ${shown}`);
  if (onPort.length === 0) {
    lines.push(`no listener on port ${q.port}`);
    const ports = [...new Set(input.table.binds.map((b) => b.port))];
    lines.push(ports.length > 0 ? `ports served: ${ports.join(', ')}` : 'no port is served at all');
    lines.push(...whyNoPort(input, q.port));
    return { port: q.port, sni: name, outcome: 'rejected', binds, lines };
  }
  let outcome = 'rejected';
  for (const bind of onPort) {
    const ex = explainBind(input, bind, name, q, lines);
    binds.push(ex);
    if (ex.reject === null && ex.listener) outcome = ex.listener.mode;
  }
  return { port: q.port, sni: name, outcome, binds, lines };
}

function explainBind(
  input: ExplainInput,
  bind: Bind,
  name: string | null,
  q: ExplainQuery,
  lines: string[],
): BindExplanation {
  const out: BindExplanation = {
    address: bind.address,
    protocol: bind.protocol,
    listener: null,
    route: null,
    backends: [],
    reject: null,
    fastPath: false,
  };
  const where = bind.address === null ? 'the default address' : bind.address;
  const all = bind.listeners.map(describeListener).join(', ');
  lines.push(`bind ${where}:${bind.port} (${bind.protocol}): listeners ${all}`);
  const m: RouteMatch = compileBind(bind).match(name);
  const l = m.listener;
  if (l !== undefined) {
    const kind = hostMatch(l.hostname, name);
    out.listener = { id: l.id, hostname: l.hostname, mode: l.mode, match: kind };
    lines.push(`listener ${describeListener(l)}: ${listenerWhy(l, kind, name, bind)}`);
    if (l.mergedWith && l.mergedWith.length > 0) {
      lines.push(`  served together with ${l.mergedWith.join(', ')} (same address, hostname and mode)`);
    }
  }
  if (m.reject !== undefined) {
    out.reject = m.reject;
    lines.push(`REJECTED (${m.reject}): the connection is closed without a TLS alert`);
    if (m.reject === 'no-listener' && name !== null) {
      lines.push(
        `no listener on port ${bind.port} matches ${name} (and there is no catch-all listener without hostname)`,
      );
    } else if (m.reject === 'no-sni' && l === undefined) {
      lines.push(
        `the client sent no SNI and port ${bind.port} has no catch-all listener (one without hostname)`,
      );
    } else if (l !== undefined) {
      const routes = l.routes.map((r) => r.hostname).join(', ') || 'none';
      lines.push(
        `listener ${l.hostname ?? '(any hostname)'} has no route for ${name ?? '(no SNI)'}; routes: ${routes}`,
      );
      lines.push(
        '  listener isolation: once a listener is chosen, other listeners on the port are not tried',
      );
    }
    lines.push(...whyNotRouted(input, bind, l ?? null, name));
    return out;
  }
  if (l === undefined) return out;
  if (m.route === null) {
    const what = l.mode === 'http' ? 'plain HTTP' : 'TLS terminated here with the listener certificates';
    lines.push(`${what}, then routed by HTTP Host, path, headers and method (HTTPRoute/Ingress)`);
    explainHttp(input, l, name, q, out, lines);
    return out;
  }
  const r = m.route;
  const rk = hostMatch(r.hostname === '*' ? null : r.hostname, name);
  out.route = { ...r.route, hostname: r.hostname, match: rk };
  lines.push(
    `route ${r.route.kind} ${r.route.namespace}/${r.route.name}: hostname ${r.hostname} (${rk} match)`,
  );
  lines.push(...precedence(input, l, r));
  out.backends = explainBackends(input, r, q.health, lines);
  const usable = out.backends.filter((b) => b.invalid === null && b.endpoints.length > 0);
  if (usable.length === 0) {
    out.reject = out.backends.some((b) => b.invalid !== null) ? 'backend-invalid' : 'no-endpoints';
    lines.push(`REJECTED (${out.reject}): no backend of the route can take a connection`);
    return out;
  }
  const blocker = fastPathBindBlocker(bind) ?? fastPathRouteBlocker(l, r);
  out.fastPath = blocker === null;
  lines.push(
    blocker === null
      ? 'carried by the native fast path: routed and pumped in C, no JavaScript per connection (with the native addon built; an endpoint with failures counted is picked by JavaScript)'
      : `carried by the JavaScript router (not the native fast path): ${blocker}`,
  );
  return out;
}

function describeListener(l: TableListener): string {
  return `${l.id} [${l.hostname ?? '*'} ${l.mode}]`;
}

function listenerWhy(l: TableListener, kind: HostMatchKind, name: string | null, bind: Bind): string {
  const others = bind.listeners.filter((x) => x !== l);
  if (kind === 'exact') return `exact hostname match (${l.mode})`;
  if (kind === 'wildcard') {
    const catchAll = others.find((x) => x.hostname === null);
    const iso = catchAll
      ? `; listener isolation: catch-all ${catchAll.id} is never consulted for this name`
      : '';
    return `wildcard ${l.hostname} is the most specific listener hostname matching ${name} (${l.mode})${iso}`;
  }
  const more = others.map((x) => x.hostname).filter((h) => h !== null);
  const because = name === null ? 'the client sent no SNI' : `no more specific listener matches ${name}`;
  return `catch-all listener (no hostname): ${because}${more.length > 0 ? ` (others: ${more.join(', ')})` : ''} (${l.mode})`;
}

/** Other routes that claim the same hostname on this listener and lost to the winner. */
function precedence(input: ExplainInput, l: TableListener, winner: SniRoute): string[] {
  const losers: string[] = [];
  for (const s of input.statuses) {
    if (s.kind !== winner.route.kind) continue;
    const ns = s.metadata.namespace ?? 'default';
    if (ns === winner.route.namespace && s.metadata.name === winner.route.name) continue;
    if (!acceptedOn(s, l)) continue;
    const hosts = routeHostnames(input.resources, s.kind, ns, s.metadata.name);
    const claims = (hosts.length === 0 ? ['*'] : hosts).some(
      (h) => (intersectHostname(l.hostname, h) ?? '') === winner.hostname,
    );
    if (claims) losers.push(`${s.kind} ${ns}/${s.metadata.name}`);
  }
  if (losers.length === 0) return [];
  return [
    `  precedence: ${losers.join(', ')} also claim ${winner.hostname} on this listener; the oldest route wins (creationTimestamp, then namespace/name), so ${winner.route.namespace}/${winner.route.name} takes it`,
  ];
}

/** The HTTP part: the data plane's own router decides, so explain cannot disagree with it. */
function explainHttp(
  input: ExplainInput,
  l: TableListener,
  sni: string | null,
  q: ExplainQuery,
  out: BindExplanation,
  lines: string[],
): void {
  const host = (q.http?.host ?? sni ?? '').toLowerCase().replace(/:\d+$/, '');
  const [pathOnly, query = ''] = (q.http?.path ?? '/').split('?', 2) as [string, string?];
  const method = (q.http?.method ?? 'GET').toUpperCase();
  const headers = Object.fromEntries(
    Object.entries(q.http?.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]),
  );
  const request = `${method} ${host || '(no Host)'}${q.http?.path ?? '/'}`;
  const hit = routerFor(l).match({
    host,
    path: pathOnly,
    method,
    headers,
    query: new URLSearchParams(query),
  });
  if (hit === null) {
    const hosts = (l.http ?? []).map((v) => v.hostname).join(', ') || 'none';
    lines.push(
      `request ${request}: no HTTPRoute rule matches: 404 (virtual hosts on this listener: ${hosts})`,
    );
    out.reject = 'http-404';
    return;
  }
  const r = hit.rule;
  const m = r.match;
  const conds = [
    `${m.path.type} ${m.path.value}`,
    ...(m.method ? [`method ${m.method}`] : []),
    ...m.headers.map((h) => `header ${h.name}${h.type === 'Exact' ? '=' : '~'}${h.value}`),
    ...m.queryParams.map((h) => `query ${h.name}${h.type === 'Exact' ? '=' : '~'}${h.value}`),
  ];
  out.route = {
    ...r.route,
    hostname: hit.vhost.hostname,
    match: hostMatch(hit.vhost.hostname === '*' ? null : hit.vhost.hostname, host),
  };
  lines.push(
    `request ${request} → ${r.route.kind} ${r.route.namespace}/${r.route.name} rule ${r.ruleIndex} (virtual host ${hit.vhost.hostname}; matches ${conds.join(', ')})`,
  );
  for (const f of r.filters)
    lines.push(
      `  filter ${f.type}${f.type === 'RequestRedirect' ? ` → ${f.statusCode}${f.scheme ? ` ${f.scheme}://` : ''}` : ''}`,
    );
  if (r.filters.some((f) => f.type === 'RequestRedirect')) return;
  const timeouts = [
    r.timeouts.requestMs ? `request ${r.timeouts.requestMs} ms` : '',
    r.timeouts.backendRequestMs ? `backend ${r.timeouts.backendRequestMs} ms` : '',
  ]
    .filter(Boolean)
    .join(', ');
  if (timeouts) lines.push(`  timeouts: ${timeouts}`);
  if (r.backends.length === 0) lines.push('  no usable backends: 500');
  out.backends = explainBackends(
    input,
    { hostname: hit.vhost.hostname, route: r.route, backends: { backends: r.backends } },
    q.health,
    lines,
  );
}

function explainBackends(
  input: ExplainInput,
  r: SniRoute,
  health: Map<string, boolean> | undefined,
  lines: string[],
): BackendExplanation[] {
  const backends = r.backends.backends;
  const total = backends.reduce((n, b) => n + b.weight, 0);
  const resolved = resolvedRefsMessage(input, r);
  const out: BackendExplanation[] = [];
  if (backends.length === 0) lines.push('  no backendRefs: every connection is rejected');
  for (const b of backends) {
    const share = total > 0 ? (b.weight / total) * 100 : 0;
    const pct = `${round(share)}%`;
    const eps = b.endpoints.map((e) => {
      const key = e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
      return { endpoint: key, healthy: health?.get(key) ?? null };
    });
    out.push({
      id: b.id,
      weight: b.weight,
      sharePercent: round(share),
      invalid: b.invalid ?? null,
      endpoints: eps,
    });
    if (b.invalid !== undefined) {
      const detail = detailFor(resolved, b);
      lines.push(
        `  backend ${b.id} is invalid: ${b.invalid}${detail ? ` — ${detail}` : ''} — rejected share ${pct}`,
      );
      continue;
    }
    const weight =
      b.weight === 0
        ? 'weight 0 (fallback: takes over when no weighted backend has a healthy endpoint)'
        : `weight ${b.weight} (${pct})`;
    lines.push(`  backend ${b.id} ${weight}`);
    if (eps.length === 0) {
      lines.push(`    no ready endpoints: its share (${pct}) is rejected (no-endpoints)`);
      continue;
    }
    for (const e of eps) {
      const h = e.healthy === null ? '' : e.healthy ? ' healthy' : ' UNHEALTHY (ejected)';
      lines.push(`    endpoint ${e.endpoint}${h}`);
    }
    const unhealthy = eps.filter((e) => e.healthy === false).length;
    if (unhealthy === eps.length) lines.push(`    every endpoint is unhealthy: ${backendPolicyNote(b)}`);
  }
  return out;
}

function backendPolicyNote(b: Backend): string {
  return b.policy.fallback
    ? 'its share goes to the weight-0 fallback backends if any, else is rejected'
    : 'its share is rejected';
}

function resolvedRefsMessage(input: ExplainInput, r: SniRoute): string {
  const s = findStatus(input.statuses, r.route.kind, r.route.namespace, r.route.name);
  for (const p of parentsOf(s)) {
    const c = p.conditions.find((x) => x.type === 'ResolvedRefs');
    if (c && c.status === 'False') return c.message;
  }
  return '';
}

/** The part of a ResolvedRefs message about this backend (`backendRef ns/name: ...`). */
function detailFor(message: string, b: Backend): string {
  const m = /^[^/]+\/([^/]+)\/([^:]+):/.exec(b.id);
  if (!m) return '';
  const ref = `backendRef ${m[1]}/${m[2]}`;
  return message.split('; ').find((part) => part.startsWith(ref)) ?? '';
}

// ---- why not -----------------------------------------------------------------------------------

interface ParentStatus {
  parentRef: ParentReference;
  conditions: Condition[];
}

function parentsOf(s: ObjectStatus | undefined): ParentStatus[] {
  const parents = s?.status.parents;
  return Array.isArray(parents) ? (parents as ParentStatus[]) : [];
}

function findStatus(
  statuses: ObjectStatus[],
  kind: string,
  ns: string,
  name: string,
): ObjectStatus | undefined {
  return statuses.find(
    (s) => s.kind === kind && (s.metadata.namespace ?? 'default') === ns && s.metadata.name === name,
  );
}

function acceptedOn(s: ObjectStatus, l: TableListener): boolean {
  return parentsOf(s).some(
    (p) =>
      refersTo(p.parentRef, l.gateway) &&
      (p.parentRef.sectionName === undefined || p.parentRef.sectionName === l.name) &&
      p.conditions.some((c) => c.type === 'Accepted' && c.status === 'True'),
  );
}

function refersTo(ref: ParentReference, gw: { namespace: string; name: string }): boolean {
  return ref.name === gw.name && (ref.namespace ?? gw.namespace) === gw.namespace;
}

interface RouteLike {
  kind: string;
  namespace: string;
  name: string;
  hostnames: string[];
  parentRefs: ParentReference[];
}

function allRoutes(res: Resources): RouteLike[] {
  const ns = (m: { namespace?: string }) => m.namespace ?? 'default';
  return [
    ...res.tlsRoutes.map((r) => ({
      kind: 'TLSRoute',
      namespace: ns(r.metadata),
      name: r.metadata.name,
      hostnames: r.spec.hostnames ?? [],
      parentRefs: r.spec.parentRefs ?? [],
    })),
    ...res.tcpRoutes.map((r) => ({
      kind: 'TCPRoute',
      namespace: ns(r.metadata),
      name: r.metadata.name,
      hostnames: [],
      parentRefs: r.spec.parentRefs ?? [],
    })),
    ...res.httpRoutes.map((r) => ({
      kind: 'HTTPRoute',
      namespace: ns(r.metadata),
      name: r.metadata.name,
      hostnames: r.spec.hostnames ?? [],
      parentRefs: r.spec.parentRefs ?? [],
    })),
  ];
}

function routeHostnames(res: Resources, kind: string, ns: string, name: string): string[] {
  return (
    allRoutes(res).find((r) => r.kind === kind && r.namespace === ns && r.name === name)?.hostnames ?? []
  );
}

function gatewaysOn(res: Resources, port: number): { gw: Gateway; listeners: string[] }[] {
  const out: { gw: Gateway; listeners: string[] }[] = [];
  for (const gw of res.gateways) {
    const ls = gw.spec.listeners.filter((l) => l.port === port).map((l) => l.name);
    if (ls.length > 0) out.push({ gw, listeners: ls });
  }
  return out;
}

/** Routes that name this SNI (or name no hostname) and point at a Gateway with a listener on the port. */
function whyNotRouted(
  input: ExplainInput,
  bind: Bind,
  l: TableListener | null,
  name: string | null,
): string[] {
  const lines: string[] = [];
  const gws = gatewaysOn(input.resources, bind.port);
  let candidates = 0;
  for (const r of allRoutes(input.resources)) {
    if (r.kind === 'HTTPRoute' && bind.protocol === 'tls' && l?.mode === 'passthrough') continue;
    const claims =
      r.hostnames.length === 0 || (name !== null && r.hostnames.some((h) => hostnameMatches(h, name)));
    if (!claims) continue;
    for (const ref of r.parentRefs) {
      const ns = ref.namespace ?? r.namespace;
      const g = gws.find(
        (x) => x.gw.metadata.name === ref.name && (x.gw.metadata.namespace ?? 'default') === ns,
      );
      if (!g) continue;
      if (ref.sectionName !== undefined && !g.listeners.includes(ref.sectionName)) continue;
      candidates++;
      const section = ref.sectionName ?? g.listeners.join('/');
      const who = `route ${r.namespace}/${r.name}`;
      const p = parentsOf(findStatus(input.statuses, r.kind, r.namespace, r.name)).find(
        (x) =>
          x.parentRef.name === ref.name &&
          (x.parentRef.namespace ?? r.namespace) === ns &&
          x.parentRef.sectionName === ref.sectionName,
      );
      if (!p) {
        const ds = input.diagnostics.filter(
          (d) =>
            d.object?.kind === r.kind &&
            d.object.name === r.name &&
            (d.object.namespace ?? 'default') === r.namespace,
        );
        lines.push(`${who} has no status for Gateway ${ns}/${ref.name}${ds.length > 0 ? ':' : ''}`);
        for (const d of ds) lines.push(`  ${formatDiagnostic(d)}`);
        continue;
      }
      const acc = p.conditions.find((c) => c.type === 'Accepted');
      if (acc && acc.status !== 'True') {
        lines.push(`${who} is not attached to listener ${section}: ${acc.reason} — ${acc.message}`);
        continue;
      }
      const hosts = r.hostnames.length > 0 ? r.hostnames.join(', ') : '(any)';
      if (
        l &&
        name !== null &&
        !r.hostnames.some((h) => intersectHostname(l.hostname, h) !== null && hostnameMatches(h, name))
      ) {
        lines.push(
          `${who} is attached to Gateway ${ns}/${ref.name} but its hostnames ${hosts} do not reach listener ${l.hostname ?? '*'} for ${name}`,
        );
      } else {
        lines.push(
          `${who} is attached to Gateway ${ns}/${ref.name} (${hosts}) on another listener than the one chosen`,
        );
      }
    }
  }
  if (candidates === 0) {
    lines.push(
      `no route in the manifests names ${name ?? 'a catch-all hostname'} with a parentRef to a Gateway listening on port ${bind.port}`,
    );
  }
  return lines;
}

/** Listeners declared on the port that did not make it into the table, with their status conditions. */
function whyNoPort(input: ExplainInput, port: number): string[] {
  const lines: string[] = [];
  for (const { gw, listeners } of gatewaysOn(input.resources, port)) {
    const ns = gw.metadata.namespace ?? 'default';
    const s = findStatus(input.statuses, 'Gateway', ns, gw.metadata.name);
    if (!s) {
      lines.push(`Gateway ${ns}/${gw.metadata.name} declares port ${port} but is not served:`);
      for (const d of input.diagnostics) {
        if (
          d.object?.kind === 'Gateway' &&
          d.object.name === gw.metadata.name &&
          (d.object.namespace ?? 'default') === ns
        ) {
          lines.push(`  ${formatDiagnostic(d)}`);
        }
      }
      continue;
    }
    const gwConds = (Array.isArray(s.status.conditions) ? s.status.conditions : []) as Condition[];
    for (const c of gwConds) {
      if (c.status === 'False')
        lines.push(`Gateway ${ns}/${gw.metadata.name} ${c.type}=False: ${c.reason} — ${c.message}`);
    }
    const lstat = (Array.isArray(s.status.listeners) ? s.status.listeners : []) as {
      name: string;
      conditions: Condition[];
    }[];
    for (const name of listeners) {
      const ls = lstat.find((x) => x.name === name);
      for (const c of ls?.conditions ?? []) {
        const bad =
          c.type === 'Conflicted' || c.type === 'OverlappingTLSConfig'
            ? c.status === 'True'
            : c.status === 'False';
        if (bad)
          lines.push(
            `listener ${ns}/${gw.metadata.name}/${name} ${c.type}=${c.status}: ${c.reason} — ${c.message}`,
          );
      }
    }
  }
  return lines;
}

// ---- helpers -----------------------------------------------------------------------------------

function hostMatch(pattern: string | null, name: string | null): HostMatchKind {
  if (pattern === null || pattern === '*') return 'catch-all';
  if (pattern.startsWith('*.')) return 'wildcard';
  return name !== null && pattern.toLowerCase() === name ? 'exact' : 'catch-all';
}

function normalize(sni: string): string {
  const s = sni.endsWith('.') ? sni.slice(0, -1) : sni;
  return s.toLowerCase();
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

// ---- command -----------------------------------------------------------------------------------

export interface ExplainArgs extends PipelineArgs {
  port: number;
  sni: string | null;
  http?: ExplainQuery['http'];
  /** A running snigate's admin URL, for live endpoint health. */
  admin?: string;
  output?: string;
}

export async function explainCommand(
  args: ExplainArgs,
  out: (s: string) => void = (s) => process.stdout.write(s),
): Promise<number> {
  const format = args.output ?? 'text';
  if (format !== 'text' && format !== 'json') {
    throw new SnigateError(ErrorCode.InvalidArguments, `-o ${format}: explain prints text (default) or json`);
  }
  const r = await runPipeline(args);
  const health = args.admin ? await liveHealth(args.admin) : undefined;
  const ex = explain(
    { table: r.table, statuses: r.statuses, diagnostics: r.allDiagnostics, resources: r.resources },
    { port: args.port, sni: args.sni, health, ...(args.http ? { http: args.http } : {}) },
  );
  const errors = r.allDiagnostics.filter((d) => d.severity === 'error');
  if (format === 'json') {
    out(`${JSON.stringify({ ...ex, loadErrors: errors.map(formatDiagnostic) }, null, 2)}\n`);
  } else {
    for (const e of errors) out(`note: ${formatDiagnostic(e)}\n`);
    for (const line of ex.lines) out(`${line}\n`);
  }
  return ex.outcome === 'rejected' ? 1 : 0;
}

async function liveHealth(url: string): Promise<Map<string, boolean>> {
  const base = /^https?:\/\//.test(url) ? url : `http://${url}`;
  try {
    const res = await fetch(new URL('/status', base), { signal: AbortSignal.timeout(5000) });
    const doc = (await res.json()) as { endpoints?: { endpoint: string; healthy: boolean }[] };
    return new Map((doc.endpoints ?? []).map((e) => [e.endpoint, e.healthy]));
  } catch (e) {
    throw new SnigateError(
      ErrorCode.InvalidArguments,
      `cannot reach the admin server at ${base}: ${(e as Error).message}`,
    );
  }
}
