/** Node-internal socket access the native pump needs: a plain TCP socket's fd, stopping its reads, errno names. */
import type net from 'node:net';
import tls from 'node:tls';
import util from 'node:util';

interface RawHandle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
}

/** Replaces `_read` on a socket whose fd the native pump owns: Node must never read it again. */
export const noRead = (): void => {};

/** The fd under a plain connected TCP socket (not a TLSSocket), or -1. */
export function rawFd(sock: net.Socket): number {
  if (sock instanceof tls.TLSSocket) return -1;
  const h = (sock as unknown as { _handle: RawHandle | null })._handle;
  return h !== null && typeof h.fd === 'number' ? h.fd : -1;
}

/** Stops libuv reading the socket now (pause() alone lets Node read on until its buffer is full). */
export function stopReading(sock: net.Socket): void {
  const h = (sock as unknown as { _handle: RawHandle | null })._handle;
  if (h?.readStop === undefined) return;
  h.reading = false;
  h.readStop();
}

/** `ECONNRESET` for -104; never throws on an unknown number. */
const errNames = new Map<number, string>();

/** `ECONNRESET` for -104: cached (util.getSystemErrorName builds its errno map lookup each call, ~0.2 us). */
export function errName(err: number): string {
  let name = errNames.get(err);
  if (name === undefined) {
    try {
      name = util.getSystemErrorName(err);
    } catch {
      name = `E${-err}`;
    }
    if (errNames.size < 256) errNames.set(err, name);
  }
  return name;
}
