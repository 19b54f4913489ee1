/**
 * The optional native byte pump (native/pump, Node-API + libuv, its own epoll set): a routed passthrough
 * connection's client fd is handed to it, it connects to the backend and moves the bytes, and no JavaScript
 * runs per chunk. Loaded once; when the addon is missing (not built, no compiler) or `SNIGATE_PUMP=js`,
 * `nativePump` is null and the JavaScript path (net.Socket pair) is used instead.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';

export type PumpHandle = object;
export type ListenHandle = object;

/**
 * Per connection accepted and given to JS: returns the object its events are delivered to (`this` of the event
 * callback). `waitedMs`: how long the fast path held it first (its bytes are still unread); `failedEndpoint` and
 * `failedErr`: the fast path's backend attempt that failed (JS reports it and goes on from there).
 */
export type AcceptCallback = (
  h: PumpHandle,
  ip: string,
  port: number,
  waitedMs: number,
  failedEndpoint?: string,
  failedErr?: number,
) => object | undefined;

/** The fast path's shared memory (fastSetup): record buffers, the connection id counter, endpoint health. */
export interface FastShared {
  /** 18 doubles per record (layout in native/pump/pump.c, fast_record). */
  records: Float64Array;
  /** The records' strings (client address, SNI, ALPN list), latin1. */
  strings: Buffer;
  /** [0]: the last connection id handed out, by C or by allocConnId(). */
  ids: Float64Array;
  /** Per health slot: 1 when the endpoint is clean (healthy, no failure counted); C picks only those. */
  health: Uint8Array;
}
/**
 * Events of accepted connections (PUMP_* kinds; with PUMP_DATA `err` is the byte count, in pumpBuffer), and
 * PUMP_ACCEPT_ERROR with `this` unset.
 */
export type EventCallback = (this: unknown, kind: number, side: number, err: number) => void;

/** `kind` is one of the PUMP_* values; `side` 0 is the client, 1 the backend; `err` a negative errno. */
export type PumpCallback = (kind: number, side: number, err: number) => void;

export interface NativePump {
  /**
   * Borrowed fds (the JS sockets keep owning them): a handle, or a negative errno when the fds cannot be
   * polled (the caller keeps the JS pump).
   */
  start(fdClient: number, fdBackend: number, cb: PumpCallback): PumpHandle | number;
  /** Stops a borrowed-fd pump; the sockets stay open. */
  stop(h: PumpHandle): void;
  /**
   * Owned fds: dups the client fd (the caller then destroys its net.Socket); a handle, or a negative errno
   * (EMFILE...) and the caller keeps the JavaScript path.
   */
  open(fdClient: number, cb: PumpCallback): PumpHandle | number;
  /**
   * One backend attempt on an opened handle: 0, the result follows as PUMP_CONNECTED or
   * PUMP_CONNECT_FAILED; or a negative errno at once. Once connected `prefix` (a PROXY header) and then
   * `head` are sent before anything else. `head` is copied and kept: later attempts pass an empty one.
   * With `quietEpoch` (pumpShared[0] now), PUMP_CONNECTED is sent only if pumpShared[0] changed meanwhile
   * (an endpoint failed somewhere): otherwise its success report would change nothing.
   */
  connect(
    h: PumpHandle,
    ip: string,
    port: number,
    timeoutMs: number,
    idleMs: number,
    prefix: Buffer,
    head: Buffer,
    quietEpoch?: number,
  ): number;
  /** Closes an owned-fd pump's sockets now (reset: RST instead of FIN); no callback follows. */
  close(h: PumpHandle, reset: boolean): void;
  bytes(h: PumpHandle, side: 0 | 1): number;
  /** A listening socket accepting in C; a negative errno (EADDRINUSE, EACCES...) when it cannot bind. */
  listen(
    ip: string,
    port: number,
    ipv6Only: boolean,
    onAccept: AcceptCallback,
    onEvent: EventCallback,
  ): ListenHandle | number;
  listenPort(l: ListenHandle): number;
  unlisten(l: ListenHandle): void;
  /**
   * Accepted, before connect: reads the client at once and returns the byte count read into pumpBuffer
   * (valid until control returns to the event loop), 0 when nothing was there, UV_EOF, or a negative errno.
   * Later reads come as PUMP_DATA events, and PUMP_READ_TIMEOUT once if reading is not stopped within
   * `timeoutMs` (0: no limit).
   */
  readStart(h: PumpHandle, timeoutMs: number): number;
  readStop(h: PumpHandle): void;
  /** Accepted, before connect: bytes written at once, or a negative errno (EAGAIN when not all fit). */
  write(h: PumpHandle, b: Buffer): number;
  /** Accepted, before connect: gives the client fd away (for `new net.Socket({ fd })`); no more events. */
  release(h: PumpHandle): number;
  localAddress(h: PumpHandle): { address: string; port: number };
  /** The pump's read buffer (the bytes of readStart and PUMP_DATA are at its start). */
  buffer(): Buffer;
  /** Shared with C: [0] is the endpoint failure epoch (see pumpShared), [2] fast records dropped. */
  shared(): Int32Array;
  /** Once per process: `onRecords(n)` receives each batch of fast-path records. */
  fastSetup(onRecords: (n: number) => void): FastShared;
  /** The fast routes of a native listener's next connections (null: none); 0 or a negative errno. */
  fastTable(l: ListenHandle, spec: object | null): number;
  /** Closes fast connections of a table (-1: any) whose route is marked (null: all); returns how many. */
  fastClose(l: ListenHandle, tableId: number, routes: Uint8Array | null, end: number): number;
  /** Fast connections of the listener still open (waiting for a hello, connecting or pumping). */
  fastCount(l: ListenHandle): number;
  /** Test hook: the C ClientHello check (null: left to JavaScript); `alpn` is the raw protocol list. */
  fastParse(b: Buffer, maxBytes?: number): { sni: string; alpn: Buffer } | null;
  /** Test hook: the C hostname table's value for each name (-1: no key matches). */
  fastLookup(keys: string, values: Int32Array, names: string[]): Int32Array;
}

/**
 * EOF read on `side`; the other side gets a FIN once everything read before it was sent. Borrowed fds and
 * accepted connections before connect only: an owned pump reports the side that ended first with PUMP_DONE.
 */
export const PUMP_EOF = 1;
/** Error on `side`; stopped (owned fds: the other side was reset and both are closed). */
export const PUMP_ERROR = 2;
/** Both directions finished; stopped (owned fds: closed, and `side` is the side whose EOF came first). */
export const PUMP_DONE = 3;
/** Owned fds: the backend connected; the head is being sent and bytes flow. */
export const PUMP_CONNECTED = 4;
/** Owned fds: this backend attempt failed (`err`); the client fd stays open for another attempt. */
export const PUMP_CONNECT_FAILED = 5;
/** Owned fds: no byte moved for the idle timeout; stopped and closed. */
export const PUMP_IDLE = 6;
/** Accepted, reading before connect: `err` bytes read into pumpBuffer, valid only during the call. */
export const PUMP_DATA = 7;
/** Listener: accept(2) failed with `err` (EMFILE pauses accepting for 100 ms). */
export const PUMP_ACCEPT_ERROR = 8;
/** Accepted, reading before connect: the read timeout passed (the connection is still open). */
export const PUMP_READ_TIMEOUT = 9;
/** libuv's end-of-file code, as readStart returns it. */
export const UV_EOF = -4095;
/** -ECONNREFUSED, as the pump reports a refused connect. */
export const UV_ECONNREFUSED = -111;

function load(): NativePump | null {
  if (process.env.SNIGATE_PUMP === 'js') return null;
  // One epoll set on the main thread's loop (native/pump reactor_init): a worker thread uses the JS path.
  if (!isMainThread) return null;
  const file = fileURLToPath(new URL('../../native/pump/build/pump.node', import.meta.url));
  if (!existsSync(file)) return null;
  try {
    const m = createRequire(import.meta.url)(file) as NativePump;
    return typeof m.start === 'function' && typeof m.listen === 'function' ? m : null;
  } catch {
    return null;
  }
}

export const nativePump: NativePump | null = load();
/** View of the pump's read buffer, made once. */
export const pumpBuffer: Buffer | null = nativePump?.buffer() ?? null;
/**
 * [0]: bumped on every endpoint failure (HealthRegistry). A native connect to an endpoint without failures
 * passes it, and the pump skips PUMP_CONNECTED unless it moved meanwhile.
 */
export const pumpShared: Int32Array = nativePump?.shared() ?? new Int32Array(4);

let recordsHandler: (n: number) => void = () => {};

/** Where fast-path records go (src/dataplane/fast-path.ts sets it; one handler per process). */
export function onFastRecords(handler: (n: number) => void): void {
  recordsHandler = handler;
}

/** The fast path's shared memory, set up once with the pump. */
export const fastShared: FastShared | null = nativePump?.fastSetup((n) => recordsHandler(n)) ?? null;

const ids: Float64Array = fastShared?.ids ?? new Float64Array(2);

/** The next connection id: one sequence for Connection and the fast path's connections (in logs and records). */
export function allocConnId(): number {
  ids[0] = ids[0]! + 1;
  return ids[0]!;
}
