/** Loads the libmodsecurity addon built by native/build.sh; says why when it cannot. */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** A rule that matched, as the addon reports it (msg and data already clipped to 512 / 256 bytes). */
export interface NativeMessage {
  id: number;
  /** 0-based: 0 = request headers (phase 1), 1 = request body, 2 = response headers, 3 = response body, 4 = logging. */
  phase: number;
  /** ModSecurity severity: 0 emergency .. 2 critical, 3 error, 4 warning, 5 notice. */
  severity: number;
  disruptive: boolean;
  msg: string;
  data: string;
}

export interface NativeStep {
  disruptive: boolean;
  status: number;
  /** The disruptive rule (0 when none). */
  ruleId: number;
  ruleMsg: string;
  messages: NativeMessage[];
  /** Messages not kept because the addon's per-step cap (64) was reached. */
  dropped: number;
}

declare const engineBrand: unique symbol;
declare const txBrand: unique symbol;
export type NativeEngine = { readonly [engineBrand]: true };
export type NativeTx = { readonly [txBrand]: true };

export interface ModSecurityAddon {
  version(): string;
  createEngine(parts: string[]): NativeEngine;
  /**
   * `deferred`: the ModSecurity transaction (tens of µs to construct) is created by beginAsync on the threadpool;
   * until then only beginAsync, finish and finishAsync accept it.
   */
  newTransaction(engine: NativeEngine, id: string, deferred?: boolean): NativeTx;
  processConnection(
    tx: NativeTx,
    clientIp: string,
    clientPort: number,
    serverIp: string,
    serverPort: number,
  ): NativeStep;
  processUri(tx: NativeTx, uri: string, method: string, httpVersion: string): NativeStep;
  processRequestHeaders(tx: NativeTx, headers: string[]): NativeStep;
  appendRequestBody(tx: NativeTx, chunk: Uint8Array): NativeStep;
  processRequestBody(tx: NativeTx): NativeStep;
  processResponseHeaders(tx: NativeTx, status: number, protocol: string, headers: string[]): NativeStep;
  finish(tx: NativeTx): NativeStep;
  /**
   * Async variants: the ModSecurity work runs on libuv's threadpool. One work item per transaction at a time: any
   * call (sync or async) on a transaction whose work item is running throws "transaction busy".
   */
  /** processConnection + processUri + processRequestHeaders, stopping after the first disruptive step. */
  beginAsync(
    tx: NativeTx,
    clientIp: string,
    clientPort: number,
    serverIp: string,
    serverPort: number,
    uri: string,
    method: string,
    httpVersion: string,
    headers: string[],
  ): Promise<NativeStep[]>;
  /** appendRequestBody per chunk (stopping at a disruptive step), then processRequestBody when `processBody`. */
  bodyAsync(tx: NativeTx, chunks: readonly Uint8Array[], processBody: boolean): Promise<NativeStep[]>;
  /** Logging phase + frees the ModSecurity transaction; idempotent. */
  finishAsync(tx: NativeTx): Promise<NativeStep>;
}

export type AddonLoad =
  | { ok: true; addon: ModSecurityAddon; version: string }
  | { ok: false; reason: string };

const BUILD_DIR = fileURLToPath(new URL('../../native/modsecurity/build/', import.meta.url));
export const DEFAULT_ADDON_PATH = `${BUILD_DIR}modsecurity.node`;

const cache = new Map<string, AddonLoad>();

/**
 * The addon at `path` (default: native/modsecurity/build/modsecurity.node, or $SNIGATE_MODSECURITY_ADDON).
 * Never throws: a missing or broken addon is `{ ok: false, reason }`, with the build script's reason when it left one.
 */
export function loadAddon(path = process.env.SNIGATE_MODSECURITY_ADDON ?? DEFAULT_ADDON_PATH): AddonLoad {
  const hit = cache.get(path);
  if (hit !== undefined) return hit;
  const result = tryLoad(path);
  cache.set(path, result);
  return result;
}

function tryLoad(path: string): AddonLoad {
  if (!existsSync(path)) {
    const marker = path === DEFAULT_ADDON_PATH ? `${BUILD_DIR}UNAVAILABLE` : null;
    const why = marker !== null && existsSync(marker) ? readFileSync(marker, 'utf8').trim() : 'not built';
    return { ok: false, reason: `WAF addon ${path} missing (${why}); run native/build.sh` };
  }
  try {
    const addon = createRequire(import.meta.url)(path) as ModSecurityAddon;
    if (
      typeof addon.createEngine !== 'function' ||
      typeof addon.version !== 'function' ||
      typeof addon.beginAsync !== 'function'
    )
      return {
        ok: false,
        reason: `WAF addon ${path} is not the snigate modsecurity addon, or is out of date (run native/build.sh)`,
      };
    return { ok: true, addon, version: addon.version() };
  } catch (err) {
    // Typically libmodsecurity.so.3 absent at run time (built elsewhere) or an incompatible binary.
    return { ok: false, reason: `WAF addon ${path} failed to load: ${(err as Error).message}` };
  }
}
