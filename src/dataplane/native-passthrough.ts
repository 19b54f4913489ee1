/**
 * A routed passthrough connection run by the native pump from the backend connect on: the client fd is
 * dup'ed into C and Node's socket is destroyed, so an established connection holds no net.Socket, stream
 * state or per-chunk JavaScript. Same semantics as Passthrough (retries, fallback, PROXY out, half-close,
 * resets, idle and lifetime limits); used when the addon is built and the connection needs nothing the
 * JavaScript path alone can do (Postgres SSLRequest, re-encryption, hostname endpoints).
 */
import type net from 'node:net';
import type { Backend } from '../table/types.ts';
import type { Balancer, PickedEndpoint } from './balancer.ts';
import type { EndReason } from './conn-log.ts';
import type { DataPlaneEvents } from './events.ts';
import type { HealthRegistry } from './health.ts';
import {
  type NativePump,
  nativePump,
  PUMP_CONNECT_FAILED,
  PUMP_CONNECTED,
  PUMP_DONE,
  PUMP_ERROR,
  PUMP_IDLE,
  type PumpHandle,
  pumpShared,
} from './native-pump.ts';
import type { PassthroughDone } from './passthrough.ts';
import { encodeProxyV1, encodeProxyV2, type ProxyAddresses } from './proxy-protocol.ts';
import { errName, noRead, rawFd, stopReading } from './socket-fd.ts';

export interface NativePassthroughOptions {
  balancer: Balancer;
  backend: Backend;
  first: PickedEndpoint;
  /** Client bytes read so far (ClientHello and anything after it). */
  head: Buffer;
  /** Addresses for the PROXY header out, read before the client socket goes away. */
  proxyOut: () => ProxyAddresses;
  health: HealthRegistry;
  events: DataPlaneEvents;
  /** Endpoints already tried and failed (a fast-path attempt): retries count them. */
  tried?: string[];
}

const EMPTY = Buffer.alloc(0);

export class NativePassthrough {
  readonly #pump: NativePump;
  /** Set by #open before the instance is handed out. */
  #h!: PumpHandle;
  readonly #balancer: Balancer;
  readonly #health: HealthRegistry;
  readonly #events: DataPlaneEvents;
  readonly #done: PassthroughDone;
  #first: PickedEndpoint | null;
  #head: Buffer = EMPTY;
  #proxy: ProxyAddresses | null;
  /** Endpoints tried, made on the first failure (most connections never need it). */
  #tried: string[] | null = null;
  #forced: EndReason | null = null;
  #error: EndReason | null = null;
  #fin: EndReason | null = null;
  #detail: string | null = null;
  #ended = false;
  #lifetime: NodeJS.Timeout | null = null;
  pumpedIn = 0;
  pumpedOut = 0;
  endpoint: string;
  backend: Backend;

  /**
   * Takes the client's fd when the connection qualifies, or returns null (nothing changed: the caller uses
   * Passthrough). On success Node no longer reads the socket and the bytes it had buffered are in the head;
   * the caller must then detach its listeners and destroy the socket.
   */
  static take(
    client: net.Socket,
    o: NativePassthroughOptions,
    done: PassthroughDone,
  ): NativePassthrough | null {
    const pump = nativePump;
    if (pump === null || !o.balancer.ipEndpointsOnly) return null;
    if (client.destroyed || client.readableEnded || client.writableLength > 0) return null;
    const fd = rawFd(client);
    if (fd < 0) return null;
    const proxy = o.balancer.proxyProtocol ? o.proxyOut() : null;
    stopReading(client);
    const np = new NativePassthrough(pump, o, proxy, done);
    return np.#open(client, fd, o.head) ? np : null;
  }

  /**
   * Runs a connection accepted in C (its pump handle already owns the client fd). Its events arrive
   * through the connection (Connection.onNative → event).
   */
  static adopt(
    pump: NativePump,
    h: PumpHandle,
    o: NativePassthroughOptions,
    done: PassthroughDone,
  ): NativePassthrough {
    const np = new NativePassthrough(pump, o, o.balancer.proxyProtocol ? o.proxyOut() : null, done);
    np.#h = h;
    np.#head = o.head;
    return np;
  }

  private constructor(
    pump: NativePump,
    o: NativePassthroughOptions,
    proxy: ProxyAddresses | null,
    done: PassthroughDone,
  ) {
    this.#pump = pump;
    this.#balancer = o.balancer;
    this.#health = o.health;
    this.#events = o.events;
    this.#done = done;
    this.#first = o.first;
    this.#proxy = proxy;
    if (o.tried !== undefined) this.#tried = [...o.tried];
    this.endpoint = o.first.key;
    this.backend = o.backend;
  }

  #open(client: net.Socket, fd: number, head: Buffer): boolean {
    const h = this.#pump.open(fd, (kind, side, err) => this.event(kind, side, err));
    // EMFILE and the like: the socket is untouched but for its reads (Passthrough resumes them).
    if (typeof h === 'number') return false;
    this.#h = h;
    // Whatever Node read past the ClientHello before reads stopped goes to the backend right after it.
    client._read = noRead;
    const extra = client.readableLength > 0 ? (client.read() as Buffer | null) : null;
    this.#head = extra === null ? head : Buffer.concat([head, extra]);
    return true;
  }

  start(): void {
    const first = this.#first!;
    this.#first = null;
    this.#connect(first);
  }

  /** Forced end (idle, lifetime, drain, shutdown): both sides are closed now. */
  abort(reason: EndReason): void {
    if (this.#ended) return;
    this.#forced ??= reason;
    this.#pump.close(this.#h, false);
    this.#finish();
  }

  // The client's socket events never reach a native passthrough (the socket is gone); these keep the
  // connection's dispatch uniform.
  clientError(): void {}
  clientEnd(): void {}
  clientClose(): void {}

  #connect(ep: PickedEndpoint): void {
    this.endpoint = ep.key;
    this.#tried?.push(ep.key);
    const policy = this.backend.policy;
    const pp = policy.proxyProtocol;
    const proxy = this.#proxy;
    const prefix =
      pp === null || proxy === null ? EMPTY : pp === 'v2' ? encodeProxyV2(proxy) : encodeProxyV1(proxy);
    // The pump copies the head on the first attempt and keeps it for retries: the buffer may be a view of
    // its read buffer, valid only now.
    const head = this.#head;
    this.#head = EMPTY;
    // PUMP_CONNECTED is needed for a lifetime timer, to drop the PROXY addresses kept for retries, and for a
    // success report that changes something; otherwise the pump skips it unless an endpoint fails meanwhile.
    const quiet =
      policy.maxLifetimeMs <= 0 && proxy === null && this.#health.isClean(ep.key) ? pumpShared[0] : undefined;
    const r = this.#pump.connect(
      this.#h,
      ep.endpoint.address,
      ep.endpoint.port,
      policy.connectTimeoutMs,
      policy.idleTimeoutMs,
      prefix,
      head,
      quiet,
    );
    // A failure at once (EMFILE, a refused loopback connect) is reported like a later one, never re-entrantly.
    if (r < 0) process.nextTick(() => this.event(PUMP_CONNECT_FAILED, 1, r));
  }

  /** The pump's events (PUMP_* kinds) for this connection. */
  event(kind: number, side: number, err: number): void {
    if (this.#ended) return;
    switch (kind) {
      case PUMP_CONNECTED: {
        this.#health.reportSuccess(this.endpoint);
        this.#head = EMPTY;
        this.#proxy = null;
        const life = this.backend.policy.maxLifetimeMs;
        // A closure only for the connections that have a lifetime limit.
        if (life > 0) this.#lifetime = setTimeout(() => this.#onLifetime(), life);
        return;
      }
      case PUMP_CONNECT_FAILED:
        this.#connectFailed(errName(err));
        return;
      case PUMP_ERROR:
        this.#error ??= side === 0 ? 'client-reset' : 'backend-reset';
        this.#detail ??= errName(err);
        break;
      case PUMP_IDLE:
        this.#forced ??= 'idle-timeout';
        break;
      case PUMP_DONE:
        this.#fin ??= side === 0 ? 'client-closed' : 'backend-closed';
        break;
      default:
        return;
    }
    this.#finish();
  }

  #onLifetime(): void {
    this.#lifetime = null;
    this.abort('max-lifetime');
  }

  #connectFailed(code: string): void {
    this.#health.reportFailure(this.endpoint, this.backend.policy.healthCheck?.unhealthyThreshold ?? 1, code);
    this.#events.connectFailed(this.endpoint, code);
    if (this.#forced === null) {
      const next = this.#balancer.retryEndpoint(this.backend, (this.#tried ??= [this.endpoint]));
      if (next !== null) {
        this.backend = next.backend;
        this.#connect(next);
        return;
      }
    }
    this.#error ??= 'connect-failed';
    this.#detail ??= code;
    this.#pump.close(this.#h, false);
    this.#finish();
  }

  #finish(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#lifetime !== null) clearTimeout(this.#lifetime);
    this.#head = EMPTY;
    this.pumpedIn = this.#pump.bytes(this.#h, 0);
    this.pumpedOut = this.#pump.bytes(this.#h, 1);
    const reason = this.#forced ?? this.#error ?? this.#fin ?? 'client-closed';
    this.#done.passthroughDone(reason, this.#forced === null ? this.#detail : null);
  }
}
