/** Build the RoutingTable from accepted listeners and their attached routes, winners chosen by precedence. */
import type {
  BackendSet,
  Bind,
  ClientSettings,
  ConnectionRateSettings,
  HttpSecurity,
  RoutingTable,
  SniRoute,
  TableListener,
} from '../table/types.ts';
import type { GatewayCtx, ListenerCtx, Targets } from './context.ts';
import { listenerId } from './context.ts';
import { bindKey } from './gateways.ts';
import { compareSpecificity, specificityRank } from './hostnames.ts';
import { buildVirtualHosts, type HttpTarget } from './httproutes.ts';

export interface RouteTarget {
  ref: { kind: string; namespace: string; name: string };
  backends: BackendSet;
}

export type ListenerSecurityFn = (l: ListenerCtx) => {
  http?: HttpSecurity;
  connectionRate?: ConnectionRateSettings;
};

export function buildTable(
  gateways: GatewayCtx[],
  targets: Targets<RouteTarget>,
  httpTargets: Targets<HttpTarget>,
  clientFor: (bindKey: string) => ClientSettings,
  securityFor: ListenerSecurityFn = () => ({}),
): RoutingTable {
  const binds = new Map<string, { bind: Bind; merged: Map<string, ListenerCtx[]> }>();
  for (const gw of gateways) {
    if (gw.acceptProblem) continue;
    for (const l of gw.listeners) {
      if (!l.accepted.ok || !l.programmed.ok || l.mode === null) continue;
      for (const address of gw.bindAddresses) {
        const k = bindKey(address, l.spec.port);
        let b = binds.get(k);
        if (!b) {
          b = {
            bind: {
              address,
              port: l.spec.port,
              protocol: protocolOf(l),
              listeners: [],
              client: clientFor(k),
            },
            merged: new Map(),
          };
          binds.set(k, b);
        }
        // Listeners of several Gateways on a shared address with the same hostname and mode serve as one.
        const mk = `${l.hostname ?? '*'}|${l.mode}`;
        const group = b.merged.get(mk);
        if (group) group.push(l);
        else b.merged.set(mk, [l]);
      }
    }
  }
  const out: Bind[] = [];
  for (const { bind, merged } of binds.values()) {
    for (const group of merged.values())
      bind.listeners.push(tableListener(group, targets, httpTargets, securityFor));
    bind.listeners.sort((x, y) => compareSpecificity(x.hostname, y.hostname) || cmp(x.id, y.id));
    out.push(bind);
  }
  out.sort((a, b) => a.port - b.port || cmp(a.address ?? '', b.address ?? ''));
  return { binds: out };
}

function protocolOf(l: ListenerCtx): Bind['protocol'] {
  return l.mode === 'tcp' ? 'tcp' : l.mode === 'http' ? 'http' : 'tls';
}

function tableListener(
  group: ListenerCtx[],
  targets: Targets<RouteTarget>,
  httpTargets: Targets<HttpTarget>,
  securityFor: ListenerSecurityFn,
): TableListener {
  const l = group[0]!;
  // Precedence among routes claiming one hostname: oldest, then namespace/name (attachment order).
  const ordered = group.flatMap((x) => x.attachments).sort((a, b) => a.order - b.order);
  const claims: SniRoute[] = [];
  for (let i = 0; i < ordered.length; i++) {
    const a = ordered[i]!;
    const t = targets.get(a);
    if (!t) continue;
    for (const h of a.hostnames) claims.push({ hostname: h, route: t.ref, backends: t.backends });
  }
  const routes = winnersBySpecificity(claims);
  const out: TableListener = {
    id: listenerId(l),
    gateway: { namespace: l.gw.namespace, name: l.gw.gateway.metadata.name },
    name: l.spec.name,
    hostname: l.hostname,
    mode: l.mode!,
    routes,
  };
  if (group.length > 1) out.mergedWith = group.slice(1).map(listenerId);
  if (l.mode === 'terminate-https' || l.mode === 'terminate-tls') {
    out.tls = { certificates: l.certificates, alpn: l.mode === 'terminate-https' ? ['h2', 'http/1.1'] : [] };
    if (l.clientValidation) out.tls.clientValidation = l.clientValidation;
  }
  // Merged listeners serve together: the first one's SecurityPolicy applies to all of them.
  const sec = securityFor(l);
  if (l.mode === 'terminate-https' || l.mode === 'http') {
    out.http = buildVirtualHosts(
      group.flatMap((x) => x.attachments),
      httpTargets,
      sec.http,
    );
  }
  if ((l.mode === 'passthrough' || l.mode === 'tcp') && sec.connectionRate)
    out.connectionRate = sec.connectionRate;
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The first claim of each hostname, most specific hostname first (compareSpecificity order). A stable sort
 * puts the claims of one hostname next to each other in precedence order, so the winner is the first of
 * each run: no Map of 100k hostnames, and the sort that the table needs anyway does the grouping. The
 * rank of each hostname is computed once, not at every comparison.
 */
export function winnersBySpecificity(claims: SniRoute[]): SniRoute[] {
  const keyed = claims.map((r) => ({ r, h: r.hostname, rank: specificityRank(r.hostname) }));
  keyed.sort((a, b) => {
    if (a.rank !== b.rank) return a.rank - b.rank;
    if (a.rank === 1 && a.h.length !== b.h.length) return b.h.length - a.h.length;
    return a.h < b.h ? -1 : a.h > b.h ? 1 : 0;
  });
  const out: SniRoute[] = [];
  let last: string | undefined;
  for (let i = 0; i < keyed.length; i++) {
    const k = keyed[i]!;
    if (k.h === last) continue;
    last = k.h;
    out.push(k.r);
  }
  return out;
}
