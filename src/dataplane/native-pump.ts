/**
 * The optional native byte pump (native/pump, Node-API + libuv uv_poll): once a passthrough connection is
 * established, both sockets' fds are handed to it and no JavaScript runs per chunk. Loaded once; when the
 * addon is missing (not built, no compiler) or `SNIGATE_PUMP=js`, `nativePump` is null and the JavaScript
 * pump is used instead.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export type PumpHandle = object;

/** kind 1: EOF on `side` (0 client, 1 backend); 2: error on `side` (`err` = -errno); 3: both directions done. */
export type PumpCallback = (kind: number, side: number, err: number) => void;

export interface NativePump {
  /** A handle, or a negative errno when the fds cannot be polled (the caller keeps the JS pump). */
  start(fdClient: number, fdBackend: number, cb: PumpCallback): PumpHandle | number;
  stop(h: PumpHandle): void;
  bytes(h: PumpHandle, side: 0 | 1): number;
}

export const PUMP_EOF = 1;
export const PUMP_ERROR = 2;
export const PUMP_DONE = 3;

function load(): NativePump | null {
  if (process.env.SNIGATE_PUMP === 'js') return null;
  const file = fileURLToPath(new URL('../../native/pump/build/pump.node', import.meta.url));
  if (!existsSync(file)) return null;
  try {
    const m = createRequire(import.meta.url)(file) as NativePump;
    return typeof m.start === 'function' ? m : null;
  } catch {
    return null;
  }
}

export const nativePump: NativePump | null = load();
