/** Options and result types of translate(); everything the caller knows that the manifests don't say. */
import type { Diagnostic } from '../api/diagnostics.ts';
import type { RoutingTable } from '../table/types.ts';

export interface TranslateOptions {
  /** GatewayClasses with this controllerName are ours. */
  controllerName: string;
  /** Serve only Gateways of this class (`--gateway-class`). */
  gatewayClass?: string;
  /**
   * Serve Gateways whose class has no GatewayClass object (file mode: the seeds use `nginx-gateway`,
   * `istio-gateway`...). Off for the Kubernetes source, where another controller may own them.
   */
  serveUnknownClasses: boolean;
  /** Addresses reported in Gateway status for Gateways without `spec.addresses`. */
  statusAddresses: string[];
  /** IngressClass controller that is ours (default snigate.io/ingress-controller). */
  ingressController?: string;
  /** Honour `nginx.ingress.kubernetes.io/ssl-passthrough` (default true). */
  enableTlsPassthrough?: boolean;
  /** Binds the data plane could not open last time (address null = default), reported as PortUnavailable. */
  bindFailures?: { address: string | null; port: number; code: string }[];
}

export const DEFAULT_CONTROLLER_NAME = 'snigate.io/gateway-controller';

/** An object's computed status, shaped as `kubectl get -o yaml` shows it. */
export interface ObjectStatus {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; generation: number };
  status: Record<string, unknown>;
}

export interface TranslateResult {
  table: RoutingTable;
  statuses: ObjectStatus[];
  diagnostics: Diagnostic[];
}
