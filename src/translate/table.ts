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
import type { GatewayCtx, ListenerCtx } from './context.ts';
import { listenerId } from './context.ts';
import { bindKey } from './gateways.ts';
import { compareSpecificity } from './hostnames.ts';
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
  targets: Map<string, RouteTarget>,
  httpTargets: Map<string, HttpTarget>,
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
  targets: Map<string, RouteTarget>,
  httpTargets: Map<string, HttpTarget>,
  securityFor: ListenerSecurityFn,
): TableListener {
  const l = group[0]!;
  // Precedence among routes claiming one hostname: oldest, then namespace/name (attachment order).
  const winners = new Map<string, SniRoute>();
  const ordered = group.flatMap((x) => x.attachments).sort((a, b) => a.order - b.order);
  for (const a of ordered) {
    const t = targets.get(a.routeKey);
    if (!t) continue;
    for (const h of a.hostnames) {
      if (!winners.has(h)) winners.set(h, { hostname: h, route: t.ref, backends: t.backends });
    }
  }
  const routes = [...winners.values()].sort((a, b) => compareSpecificity(a.hostname, b.hostname));
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
