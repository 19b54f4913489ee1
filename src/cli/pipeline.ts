/** The file-mode pipeline shared by every command: load manifests, translate, and collect diagnostics. */
import { networkInterfaces } from 'node:os';
import type { Diagnostic } from '../api/diagnostics.ts';
import type { ParsedObject } from '../api/parse.ts';
import type { Resources } from '../api/types.ts';
import { loadPaths } from '../config/load.ts';
import type { SourceSnapshot } from '../config/source.ts';
import {
  DEFAULT_CONTROLLER_NAME,
  type TranslateOptions,
  type TranslateResult,
  translate,
} from '../translate/index.ts';

export interface PipelineArgs {
  files: string[];
  namespace?: string;
  strict?: boolean;
  gatewayClass?: string;
  controllerName?: string;
  /** The address the data plane binds by default; it decides what Gateway status reports. */
  address?: string;
  bindFailures?: TranslateOptions['bindFailures'];
  /** Reading the Kubernetes API: Gateways and Ingresses of classes that do not exist are not ours. */
  kubernetes?: boolean;
  /** `--ingress-class-controller` (default snigate.io/ingress-controller). */
  ingressClassController?: string;
  /** `--enable-tls-passthrough` (default true): honour the ssl-passthrough Ingress annotation. */
  enableTlsPassthrough?: boolean;
}

export interface PipelineResult extends TranslateResult {
  resources: Resources;
  objects: ParsedObject[];
  /** Load diagnostics first, then translation diagnostics. */
  allDiagnostics: Diagnostic[];
  loadErrors: number;
  files: string[];
}

export async function runPipeline(args: PipelineArgs): Promise<PipelineResult> {
  const loaded = await loadPaths(args.files, { namespace: args.namespace, strict: args.strict });
  const result = translate(loaded.resources, translateOptions(args));
  const loadErrors = loaded.diagnostics.filter((d) => d.severity === 'error').length;
  return {
    ...result,
    resources: loaded.resources,
    objects: loaded.objects,
    allDiagnostics: [...loaded.diagnostics, ...result.diagnostics],
    loadErrors,
    files: loaded.files,
  };
}

/** Translate a source snapshot (any source) the way the CLI does. */
export function translateSnapshot(snap: SourceSnapshot, args: PipelineArgs): PipelineResult {
  const result = translate(snap.resources, translateOptions(args));
  return {
    ...result,
    resources: snap.resources,
    objects: [],
    allDiagnostics: [...snap.diagnostics, ...result.diagnostics],
    loadErrors: snap.diagnostics.filter((d) => d.severity === 'error').length,
    files: args.files,
  };
}

export function translateOptions(args: PipelineArgs): TranslateOptions {
  return {
    controllerName: args.controllerName ?? DEFAULT_CONTROLLER_NAME,
    gatewayClass: args.gatewayClass,
    // Files have no controller to share them with; in a cluster another controller may own that class.
    serveUnknownClasses: !args.kubernetes,
    ingressController: args.ingressClassController,
    enableTlsPassthrough: args.enableTlsPassthrough,
    statusAddresses: statusAddresses(args.address),
    bindFailures: args.bindFailures,
  };
}

/**
 * A Gateway's status address is where clients reach it. A specific bind address is that address;
 * binding everything (the default) reports the machine's first non-internal IPv4, or loopback.
 */
export function statusAddresses(address: string | undefined): string[] {
  if (address && address !== '0.0.0.0' && address !== '::') return [address];
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) if (i.family === 'IPv4' && !i.internal) return [i.address];
  }
  return ['127.0.0.1'];
}
