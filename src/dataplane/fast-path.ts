/**
 * The native fast path's JavaScript side: which routes of a compiled bind C may carry alone (a fast table per
 * native listener), and the records of the connections it carried, turned into the same metrics, logs and
 * health reports as a connection run by Connection. See native/pump/pump.c, section "Fast path".
 */
import type { Backend, SniRoute, TableListener } from '../table/types.ts';
import { alpnName } from './clienthello.ts';
import type { ConnectionRecord, EndReason } from './conn-log.ts';
import { logConnection } from './conn-log.ts';
import type { CompiledState, Shared } from './connection.ts';
import { fastPathBindBlocker, fastPathRouteBlocker } from './fast-eligibility.ts';
import { endpointKey, type HealthRegistry } from './health.ts';
import {
  fastShared,
  type ListenHandle,
  type NativePump,
  onFastRecords,
  PUMP_DONE,
  PUMP_ERROR,
  PUMP_IDLE,
} from './native-pump.ts';
import { type RouteNames, routeNames } from './sni-router.ts';
import { errName } from './socket-fd.ts';

/** What a listener's records need from it: its name and the hooks records feed. */
export interface FastRuntime {
  display: string;
  shared: Shared;
}

export interface FastRoute {
  listener: TableListener;
  route: SniRoute;
  backend: Backend;
}

/** The route's names as logged and drained by (made on first use, shared with Connection's path). */
export function fastRouteNames(r: FastRoute): RouteNames {
  return routeNames(r.listener.id, r.route);
}

/** One installed fast table, kept until C says its last connection is gone. */
export interface FastTable {
  id: number;
  rt: FastRuntime;
  /** The bind's connection counter (ClientTrafficPolicy maxConnections reads it). */
  active: { n: number };
  routes: FastRoute[];
  /** Per endpoint slot: its key (endpointKey). */
  epKeys: string[];
  /** The hostname keys given to C, in order: an SNI equal to one is this string (no string made per record). */
  keys: string[];
}

/**
 * What a compiled bind's fast tables are made of: built once per configuration and shared by the bind's
 * listeners (the default address is 0.0.0.0 and ::, two native listeners), each installing it with its own id.
 */
export interface FastPlan {
  spec: Omit<FastSpec, 'id'>;
  active: { n: number };
  routes: FastRoute[];
  epKeys: string[];
  keys: string[];
}

/** The spec fastTable() takes (native/pump js_fast_table). */
export interface FastSpec {
  id: number;
  keys: string;
  values: Int32Array;
  catchAll: number;
  helloMax: number;
  helloTimeoutMs: number;
  routes: Float64Array;
  epIps: string;
  epPorts: Int32Array;
  epHealth: Int32Array;
}

/** End codes fastClose() is given (beyond the pump's own kinds). */
export const FAST_END_DRAINED = 101;
export const FAST_END_SHUTDOWN = 102;

const REC_STRIDE = 20;
const REC_OPEN = 1;
const REC_CLOSE = 2;
const REC_TABLE_FREED = 3;

let nextTableId = 1;
const tables = new Map<number, FastTable>();
onFastRecords(onRecords);

/** Off with SNIGATE_FASTPATH=0 (every connection then runs through Connection, as before the fast path). */
export function fastPathEnabled(): boolean {
  return process.env.SNIGATE_FASTPATH !== '0';
}

/**
 * The fast plan of `state`'s bind, or null when nothing on it can be fast (not a TLS bind, PROXY in, a
 * connection limit, too many hostnames). A key's route is fast when the connection the JavaScript path would
 * route for any name whose most specific key it is would be a plain passthrough: a passthrough listener without
 * rate limits, one weighted backend, valid, IP endpoints only, no PROXY out and no lifetime limit.
 */
export function planFastTable(state: CompiledState, health: HealthRegistry): FastPlan | null {
  const bind = state.compiled.bind;
  if (fastPathBindBlocker(bind) !== null) return null;
  const keys: string[] = [];
  const seen = new Set<string>();
  const add = (h: string | null): void => {
    if (h === null || h === '*') return;
    const k = h.toLowerCase();
    if (!seen.has(k)) {
      seen.add(k);
      keys.push(k);
    }
  };
  for (const l of bind.listeners) {
    add(l.hostname);
    for (const r of l.routes) add(r.hostname);
  }

  const table = { routes: [] as FastRoute[], epKeys: [] as string[] };
  /** Route -> its index; a route met again under another listener (merged Gateways) gets its own entry. */
  const routeIndex = new Map<SniRoute, number>();
  const routeSpec: number[] = [];
  const epIps: string[] = [];
  const epPorts: number[] = [];
  const epHealth: number[] = [];

  const fastRoute = (name: string): number => {
    const m = state.compiled.match(name);
    if (m.reject !== undefined || m.route === null) return -1;
    const listener = m.listener;
    const route = m.route;
    if (fastPathRouteBlocker(listener, route) !== null) return -1;
    const backend = route.backends.backends[0]!;
    const p = backend.policy;
    const known = routeIndex.get(route);
    if (known !== undefined && table.routes[known]!.listener === listener) return known;
    const index = table.routes.length;
    if (known === undefined) routeIndex.set(route, index);
    table.routes.push({ listener, route, backend });
    routeSpec.push(epIps.length, backend.endpoints.length, p.connectTimeoutMs, p.idleTimeoutMs);
    for (const e of backend.endpoints) {
      const key = endpointKey(e);
      table.epKeys.push(key);
      epIps.push(e.address);
      epPorts.push(e.port);
      epHealth.push(health.cleanSlot(key));
    }
    return index;
  };

  const values = new Int32Array(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const name = k.startsWith('*.') ? representative(seen, k) : k;
    values[i] = name === null ? -1 : fastRoute(name);
  }
  // A name no key matches: the catch-all listener/route, when there is one.
  const none = ['snigate-probe.invalid', 'snigate-probe.test', 'snigate-probe.example'].find(
    (n) => !seen.has(n) && !seen.has(`*.${n.slice(n.indexOf('.') + 1)}`),
  );
  const catchAll = none === undefined ? -1 : fastRoute(none);
  if (table.routes.length === 0) return null;
  return {
    active: state.active,
    routes: table.routes,
    epKeys: table.epKeys,
    keys,
    spec: {
      keys: keys.join('\0'),
      values,
      catchAll,
      helloMax: bind.client.helloMaxBytes,
      helloTimeoutMs: bind.client.helloTimeoutMs,
      routes: Float64Array.from(routeSpec),
      epIps: epIps.join('\0'),
      epPorts: Int32Array.from(epPorts),
      epHealth: Int32Array.from(epHealth),
    },
  };
}

/**
 * A name whose most specific key is the wildcard `key` (every such name routes alike), or null: one label in
 * front of its suffix, not itself an exact key (any other wildcard matching it has a shorter suffix).
 */
function representative(keys: ReadonlySet<string>, key: string): string | null {
  for (let i = 0; i < 16; i++) {
    const name = `x${i === 0 ? '' : i}${key.slice(1)}`;
    if (!keys.has(name)) return name;
  }
  return null;
}

/** Installs `plan` on the native listener `l` of `rt` (null: none); returns the table now in use, or null. */
export function installFastTable(
  pump: NativePump,
  l: ListenHandle,
  plan: FastPlan | null,
  rt: FastRuntime,
): FastTable | null {
  if (plan === null) {
    pump.fastTable(l, null);
    return null;
  }
  const t: FastTable = {
    id: nextTableId++,
    rt,
    active: plan.active,
    routes: plan.routes,
    epKeys: plan.epKeys,
    keys: plan.keys,
  };
  tables.set(t.id, t);
  const spec: FastSpec = { ...plan.spec, id: t.id };
  if (pump.fastTable(l, spec) !== 0) {
    tables.delete(t.id);
    return null;
  }
  return t;
}

/** Tables of `rt` other than `current` (connections on them may carry routes a swap removed). */
export function olderTables(rt: FastRuntime, current: FastTable | null): FastTable[] {
  const out: FastTable[] = [];
  for (const t of tables.values()) if (t.rt === rt && t !== current) out.push(t);
  return out;
}

function onRecords(n: number): void {
  const s = fastShared!;
  const r = s.records;
  for (let i = 0; i < n; i++) {
    const o = i * REC_STRIDE;
    const type = r[o]!;
    const id = r[o + 2]!;
    if (type === REC_TABLE_FREED) {
      tables.delete(id);
      continue;
    }
    const t = tables.get(id);
    if (t === undefined) continue;
    try {
      if (type === REC_OPEN) opened(t, r, o, s.strings);
      else if (type === REC_CLOSE) closed(t, r, o, s.strings);
    } catch (err) {
      t.rt.shared.logger.error({ connId: r[o + 1], err }, 'fast connection record failed');
    }
  }
}

function sniOf(t: FastTable, r: Float64Array, o: number, str: Buffer): string | null {
  const len = r[o + 14]!;
  if (len === 0) return null;
  const key = r[o + 18]!;
  if (key >= 0) return t.keys[key]!;
  const at = r[o + 12]! + r[o + 13]!;
  return str.toString('latin1', at, at + len);
}

function announce(t: FastTable, r: Float64Array, o: number, str: Buffer): void {
  const ev = t.rt.shared.events;
  ev.connectionOpened(t.rt.display);
  const route = r[o + 3]!;
  if (route < 0) return;
  ev.helloParsed(r[o + 8]!, sniOf(t, r, o, str));
  ev.connectionRouted(fastRouteNames(t.routes[route]!).name);
}

function opened(t: FastTable, r: Float64Array, o: number, str: Buffer): void {
  t.active.n++;
  announce(t, r, o, str);
  // C picked a clean endpoint; only if some endpoint failed since can this one have a failure to reset, as the
  // JavaScript path's success report would.
  if (r[o + 17] !== 1) return;
  const health = t.rt.shared.health;
  const key = t.epKeys[r[o + 4]!]!;
  if (!health.isClean(key)) health.reportSuccess(key);
}

function endOf(code: number, side: number): EndReason {
  switch (code) {
    case PUMP_DONE:
      return side === 0 ? 'client-closed' : 'backend-closed';
    case PUMP_ERROR:
      return side === 0 ? 'client-reset' : 'backend-reset';
    case PUMP_IDLE:
      return 'idle-timeout';
    case FAST_END_DRAINED:
      return 'drained';
    default:
      return 'shutdown';
  }
}

function alpnOf(r: Float64Array, o: number, str: Buffer): string[] {
  let p = r[o + 12]! + r[o + 13]! + r[o + 14]!;
  const e = p + r[o + 15]!;
  const out: string[] = [];
  while (p < e) {
    const n = str[p++]!;
    out.push(alpnName(str, p, n));
    p += n;
  }
  return out;
}

function closed(t: FastTable, r: Float64Array, o: number, str: Buffer): void {
  if (r[o + 16] === 1) t.active.n--;
  else announce(t, r, o, str);
  const ri = r[o + 3]!;
  const route = ri >= 0 ? t.routes[ri]! : null;
  const code = r[o + 9]!;
  const helloMs = r[o + 8]!;
  const record: ConnectionRecord = {
    connId: r[o + 1]!,
    client: str.toString('latin1', r[o + 12]!, r[o + 12]! + r[o + 13]!),
    bind: t.rt.display,
    listener: route?.listener.id ?? null,
    sni: sniOf(t, r, o, str),
    alpn: route === null ? null : alpnOf(r, o, str),
    route: route === null ? null : fastRouteNames(route).name,
    backend: route?.backend.id ?? null,
    endpoint: route === null ? null : t.epKeys[r[o + 4]!]!,
    bytesIn: r[o + 5]!,
    bytesOut: r[o + 6]!,
    durationMs: Math.round(r[o + 7]!),
    helloMs: helloMs < 0 ? null : Math.round(helloMs * 1000) / 1000,
    end: endOf(code, r[o + 10]!),
    detail: code === PUMP_ERROR ? errName(r[o + 11]!) : null,
  };
  const sh = t.rt.shared;
  logConnection(sh.logger, record);
  sh.events.connectionClosed(record);
}
