/** Resolve a route's backendRef to a table Backend: Service port → ready EndpointSlice endpoints, or ServiceImport. */
import type {
  BackendRef,
  EndpointSlice,
  Resources,
  Service,
  ServiceImport,
  ServicePort,
} from '../api/types.ts';
import { GATEWAY_GROUP, MULTICLUSTER_GROUP } from '../api/types.ts';
import { NameIndex, StringMap } from '../table/string-table.ts';
import type { Backend, BackendPolicy, Endpoint } from '../table/types.ts';
import { Reason } from './conditions.ts';
import { referenceAllowed } from './refgrants.ts';

export interface ResolvedBackend {
  backend: Backend;
  /** Set when the ref does not resolve: the ResolvedRefs=False reason and message. */
  problem?: { reason: string; message: string };
  /** Resolved, but nothing to send to (no ready endpoints): worth a diagnostic, not a condition. */
  noEndpoints?: boolean;
  /** The Service port it resolved to (BackendTLSPolicy targets Services and their port names). */
  service?: { namespace: string; name: string; portName: string };
}

interface ResolvedPort {
  /** The Backend id, as resolve() builds it: `Service/namespace/name:port`. */
  id: string;
  endpoints: Endpoint[];
  service: { namespace: string; name: string; portName: string };
}

/** Index of the objects backends resolve against, built once per translate(). */
export class BackendIndex {
  // Looked up once or twice per backendRef with freshly built keys: StringMap, not Map (see string-table.ts).
  readonly services = new NameIndex<Service>();
  readonly imports = new NameIndex<ServiceImport>();
  readonly slicesByService = new StringMap<EndpointSlice[]>();
  readonly slicesByImport = new StringMap<EndpointSlice[]>();
  readonly res: Resources;
  /**
   * What a Service port resolves to: many routes share a Service, and its endpoints are the same for each
   * of them. Shared between backends and never mutated.
   */
  readonly #ports = new Map<ServicePort, ResolvedPort>();

  constructor(res: Resources) {
    this.res = res;
    for (const s of res.services) this.services.set(s.metadata.namespace ?? 'default', s.metadata.name, s);
    for (const s of res.serviceImports)
      this.imports.set(s.metadata.namespace ?? 'default', s.metadata.name, s);
    for (const sl of res.endpointSlices) {
      const labels = sl.metadata.labels ?? {};
      const svc = labels['kubernetes.io/service-name'];
      if (svc) push(this.slicesByService, key(sl.metadata.namespace, svc), sl);
      const imp = labels['multicluster.kubernetes.io/service-name'];
      if (imp) push(this.slicesByImport, key(sl.metadata.namespace, imp), sl);
    }
  }

  /** `routeKind` and `routeNamespace` say who refers, for ReferenceGrant checks. */
  resolve(
    ref: BackendRef,
    routeKind: string,
    routeNamespace: string,
    policy: BackendPolicy,
  ): ResolvedBackend {
    const group = ref.group ?? '';
    const kind = ref.kind ?? 'Service';
    const namespace = ref.namespace ?? routeNamespace;
    const weight = ref.weight ?? 1;
    // The id of a resolved Service port is cached with it; the error paths build their own.
    const id = (): string => `${kind}/${namespace}/${ref.name}:${ref.port ?? ''}`;

    const isService = group === '' && kind === 'Service';
    const isImport = group === MULTICLUSTER_GROUP && kind === 'ServiceImport';
    if (!isService && !isImport) {
      return invalidBackend(
        id(),
        weight,
        policy,
        Reason.InvalidKind,
        `backendRef ${ref.name}: kind ${group ? `${group}/` : ''}${kind} is not supported; use a Service (group "") or a ServiceImport (group ${MULTICLUSTER_GROUP})`,
      );
    }
    // Same namespace needs no ReferenceGrant (referenceAllowed says so first): skip building its arguments.
    if (
      namespace !== routeNamespace &&
      !referenceAllowed(
        { group: GATEWAY_GROUP, kind: routeKind, namespace: routeNamespace },
        { group, kind, namespace, name: ref.name },
        this.res.referenceGrants,
      )
    ) {
      return invalidBackend(
        id(),
        weight,
        policy,
        Reason.RefNotPermitted,
        `backendRef ${namespace}/${ref.name}: a ${routeKind} in namespace ${routeNamespace} may not refer to a ${kind} in namespace ${namespace} without a ReferenceGrant in ${namespace} (from ${routeKind}/${routeNamespace} to ${kind}/${ref.name})`,
      );
    }
    if (ref.port === undefined) {
      return invalidBackend(
        id(),
        weight,
        policy,
        Reason.BackendNotFound,
        `backendRef ${namespace}/${ref.name}: port is required`,
      );
    }
    if (isImport) return this.resolveImport(ref, namespace, id(), weight, policy);

    const svc = this.services.get(namespace, ref.name);
    if (!svc)
      return invalidBackend(
        id(),
        weight,
        policy,
        Reason.BackendNotFound,
        `backendRef ${namespace}/${ref.name}: Service not found`,
      );
    const ports = svc.spec.ports ?? [];
    let sp: ServicePort | undefined;
    for (let i = 0; i < ports.length; i++) {
      if (ports[i]!.port === ref.port) {
        sp = ports[i];
        break;
      }
    }
    if (!sp) {
      const have = ports.map((p) => p.port).join(', ') || 'none';
      return invalidBackend(
        id(),
        weight,
        policy,
        Reason.BackendNotFound,
        `backendRef ${namespace}/${ref.name}: Service has no port ${ref.port} (ports: ${have})`,
      );
    }
    const port = this.#servicePort(namespace, ref.name, sp);
    return {
      backend: { id: port.id, weight, endpoints: port.endpoints, policy },
      noEndpoints: port.endpoints.length === 0,
      service: port.service,
    };
  }

  /** `sp` is a port of the Service stored under namespace/name, so the port object alone identifies the entry. */
  #servicePort(namespace: string, name: string, sp: ServicePort): ResolvedPort {
    let port = this.#ports.get(sp);
    if (port === undefined) {
      const slices = this.slicesByService.get(key(namespace, name)) ?? [];
      port = {
        id: `Service/${namespace}/${name}:${sp.port}`,
        endpoints: endpointsFor(slices, sp.name ?? '', sp.targetPort),
        service: { namespace, name, portName: sp.name ?? '' },
      };
      this.#ports.set(sp, port);
    }
    return port;
  }

  private resolveImport(
    ref: BackendRef,
    namespace: string,
    id: string,
    weight: number,
    policy: BackendPolicy,
  ): ResolvedBackend {
    const invalid = (reason: string, message: string): ResolvedBackend =>
      invalidBackend(id, weight, policy, reason, message);
    const imp = this.imports.get(namespace, ref.name);
    if (!imp)
      return invalid(Reason.BackendNotFound, `backendRef ${namespace}/${ref.name}: ServiceImport not found`);
    const sp = (imp.spec.ports ?? []).find((p) => p.port === ref.port);
    if (!sp)
      return invalid(
        Reason.BackendNotFound,
        `backendRef ${namespace}/${ref.name}: ServiceImport has no port ${ref.port}`,
      );
    const slices = this.slicesByImport.get(key(namespace, ref.name)) ?? [];
    let endpoints = endpointsFor(slices, sp.name ?? '', sp.targetPort);
    // A ClusterSetIP import without slices is reached through its VIPs.
    if (endpoints.length === 0)
      endpoints = (imp.spec.ips ?? []).map((address) => ({ address, port: sp.port }));
    return { backend: { id, weight, endpoints, policy }, noEndpoints: endpoints.length === 0 };
  }
}

/** Ready endpoints of the slices, on the slice port whose name matches the Service port's name. */
function endpointsFor(
  slices: EndpointSlice[],
  portName: string,
  targetPort: number | string | undefined,
): Endpoint[] {
  const out: Endpoint[] = [];
  const seen = new Set<string>();
  for (const sl of slices) {
    const ports = sl.ports ?? [];
    let port = ports.find((p) => (p.name ?? '') === portName)?.port;
    // A slice written by hand often leaves the port unnamed; fall back to a numeric targetPort.
    if (port === undefined && ports.length === 0 && typeof targetPort === 'number') port = targetPort;
    if (port === undefined) continue;
    for (const ep of sl.endpoints ?? []) {
      if (ep.conditions?.ready === false) continue;
      for (const address of ep.addresses ?? []) {
        const k = `${address}|${port}`;
        if (seen.has(k)) continue;
        seen.add(k);
        out.push({ address, port });
      }
    }
  }
  return out.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port));
}

function invalidBackend(
  id: string,
  weight: number,
  policy: BackendPolicy,
  reason: string,
  message: string,
): ResolvedBackend {
  return { backend: { id, weight, invalid: reason, endpoints: [], policy }, problem: { reason, message } };
}

function key(ns: string | undefined, name: string): string {
  return `${ns ?? 'default'}/${name}`;
}

function push<V>(m: StringMap<V[]>, k: string, v: V): void {
  const arr = m.get(k);
  if (arr) arr.push(v);
  else m.set(k, [v]);
}
