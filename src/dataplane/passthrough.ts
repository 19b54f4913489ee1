/**
 * The net.Socket passthrough, for what NativePassthrough cannot carry (the Postgres SSLRequest exchange,
 * hostname endpoints, re-encryption, no addon): connects to a backend (retrying other endpoints), replays the
 * buffered bytes, then pumps both ways with half-close, handing both fds to the native pump (borrowed) when
 * it is built and nothing is buffered in Node, otherwise through a JavaScript pump with the same semantics.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Backend, UpstreamTls } from '../table/types.ts';
import type { Balancer, PickedEndpoint } from './balancer.ts';
import type { EndReason } from './conn-log.ts';
import type { DataPlaneEvents } from './events.ts';
import type { HealthRegistry } from './health.ts';
import { nativePump, PUMP_DONE, PUMP_EOF, type PumpHandle } from './native-pump.ts';
import { PG_ACCEPT_SSL, SSL_REQUEST } from './postgres.ts';
import { encodeProxyV1, encodeProxyV2, type ProxyAddresses } from './proxy-protocol.ts';
import { errName, noRead, rawFd, stopReading } from './socket-fd.ts';

export interface PassthroughOptions {
  client: net.Socket;
  balancer: Balancer;
  backend: Backend;
  first: PickedEndpoint;
  /** Client bytes read so far (ClientHello and anything after it), without the SSLRequest. */
  head: Buffer;
  /** Replay an SSLRequest first and swallow the backend's 'S'. */
  pgSsl: boolean;
  /** Addresses for the PROXY header out; used only when the backend policy asks for one. */
  proxyOut: () => ProxyAddresses;
  health: HealthRegistry;
  events: DataPlaneEvents;
  /**
   * TLS Terminate listeners: speak TLS to backends whose `tls` is set (BackendTLSPolicy). Never for
   * passthrough, where the client's own TLS already goes through untouched.
   */
  reencrypt?: boolean;
  /** Endpoints already tried and failed (a fast-path attempt): retries count them. */
  tried?: string[];
}

/**
 * Told exactly once, after both sockets are closed. An object with a method rather than a callback: the
 * connection passes itself, so an open connection holds no closure (and its context) for it.
 */
export interface PassthroughDone {
  passthroughDone(reason: EndReason, detail: string | null): void;
}

type State = 'connecting' | 'pg' | 'piping' | 'ended';

const noop = (): void => {};
const EMPTY = Buffer.alloc(0);

/** BackendTLSPolicy subjectAltNames: the certificate must carry one of these (instead of the SNI name). */
function sanChecker(sans: NonNullable<UpstreamTls['subjectAltNames']>) {
  return (_host: string, cert: tls.PeerCertificate): Error | undefined => {
    const have = (cert.subjectaltname ?? '').split(', ');
    const ok = sans.some((s) => have.includes(s.type === 'URI' ? `URI:${s.value}` : `DNS:${s.value}`));
    return ok
      ? undefined
      : new Error(
          `backend certificate has none of the required subjectAltNames (${sans.map((s) => s.value).join(', ')})`,
        );
  };
}

export class Passthrough {
  readonly #o: PassthroughOptions;
  readonly #done: PassthroughDone;
  #state: State = 'connecting';
  #sock: net.Socket | null = null;
  #tried: string[];
  #forced: EndReason | null = null;
  #error: EndReason | null = null;
  #fin: EndReason | null = null;
  #detail: string | null = null;
  #clientClosed = false;
  #backendClosed = true;
  #lifetime: NodeJS.Timeout | null = null;
  /** Set while the native pump owns both fds. */
  #pump: PumpHandle | null = null;
  /** Bytes the native pump moved: client → backend, backend → client (not in the sockets' counters). */
  pumpedIn = 0;
  pumpedOut = 0;
  /** `address:port` of the endpoint in use (or last tried). */
  endpoint: string;
  /** The backend in use: the picked one, or a weight-0 fallback after its endpoints all refused. */
  backend: Backend;

  constructor(opts: PassthroughOptions, done: PassthroughDone) {
    this.#o = opts;
    this.#done = done;
    this.endpoint = opts.first.key;
    this.backend = opts.backend;
    this.#tried = opts.tried === undefined ? [] : [...opts.tried];
  }

  start(): void {
    this.#connect(this.#o.first);
  }

  /** Forced end (idle, lifetime, drain, shutdown): both sides are closed now. */
  abort(reason: EndReason): void {
    if (this.#state === 'ended') return;
    this.#forced ??= reason;
    this.#stopPump();
    this.#o.client.destroy();
    this.#sock?.destroy();
  }

  /** The connection forwards client socket events here once the passthrough owns the client. */
  clientError(err: NodeJS.ErrnoException): void {
    this.#error ??= 'client-reset';
    this.#detail ??= err.code ?? err.message;
    this.#stopPump();
    const s = this.#sock;
    if (s === null || s.destroyed) return;
    if (this.#state === 'piping' || this.#state === 'pg') s.resetAndDestroy();
    else s.destroy();
  }

  clientEnd(): void {
    this.#fin ??= 'client-closed';
    if (this.#state === 'piping') this.#endBackend();
  }

  clientClose(): void {
    this.#clientClosed = true;
    // A client gone before the backend answered leaves nothing to wait for.
    if (this.#state === 'connecting' || this.#state === 'pg') this.#sock?.destroy();
    this.#maybeDone();
  }

  #connect(ep: PickedEndpoint): void {
    this.endpoint = ep.key;
    this.#tried.push(ep.key);
    const s = net.connect({
      host: ep.endpoint.address,
      port: ep.endpoint.port,
      allowHalfOpen: true,
      noDelay: true,
      timeout: this.backend.policy.connectTimeoutMs,
    });
    this.#sock = s;
    this.#backendClosed = false;
    s.on('connect', this.#onConnect);
    s.on('timeout', this.#onTimeout);
    s.on('error', this.#onError);
    s.on('end', this.#onEnd);
    s.on('close', this.#onClose);
  }

  #onConnect = (): void => {
    const s = this.#sock!;
    const o = this.#o;
    if (!(s instanceof tls.TLSSocket)) {
      const pp = this.backend.policy.proxyProtocol;
      if (pp !== null) s.write(pp === 'v2' ? encodeProxyV2(o.proxyOut()) : encodeProxyV1(o.proxyOut()));
      const up = o.reencrypt ? this.backend.tls : undefined;
      if (up !== undefined) {
        this.#startTls(s, up);
        return;
      }
    }
    o.health.reportSuccess(this.endpoint);
    if (o.pgSsl) {
      // Postgres refuses data pipelined after an SSLRequest: wait for its 'S' before the ClientHello.
      this.#state = 'pg';
      s.write(SSL_REQUEST);
      s.once('data', this.#onPgReply);
      return;
    }
    this.#pipe();
  };

  /** Re-encrypt over the connected socket; a failed handshake or verification counts as a failed connect. */
  #startTls(raw: net.Socket, up: UpstreamTls): void {
    raw.removeListener('connect', this.#onConnect);
    raw.removeListener('timeout', this.#onTimeout);
    raw.removeListener('end', this.#onEnd);
    raw.removeListener('close', this.#onClose);
    raw.setTimeout(0);
    const t = tls.connect({
      socket: raw,
      servername: up.serverName || undefined,
      ca: up.caPem ?? undefined,
      rejectUnauthorized: !up.insecureSkipVerify,
      ...(up.clientCert ? { cert: up.clientCert.certPem, key: up.clientCert.keyPem } : {}),
      ...(up.subjectAltNames ? { checkServerIdentity: sanChecker(up.subjectAltNames) } : {}),
    });
    this.#sock = t;
    t.setTimeout(this.backend.policy.connectTimeoutMs);
    t.on('secureConnect', this.#onConnect);
    t.on('timeout', this.#onTimeout);
    t.on('error', this.#onError);
    t.on('end', this.#onEnd);
    t.on('close', this.#onClose);
  }

  #onPgReply = (chunk: Buffer): void => {
    const s = this.#sock!;
    s.pause();
    if (chunk[0] !== PG_ACCEPT_SSL) {
      this.#error ??= 'connect-failed';
      this.#detail ??= `postgres backend answered 0x${(chunk[0] ?? 0).toString(16)} to SSLRequest`;
      this.#o.client.destroy();
      s.destroy();
      return;
    }
    if (chunk.length > 1) this.#o.client.write(chunk.subarray(1));
    this.#pipe();
  };

  #pipe(): void {
    const s = this.#sock!;
    const c = this.#o.client;
    const policy = this.backend.policy;
    this.#state = 'piping';
    s.setTimeout(0);
    const head = this.#o.head;
    // Written once: the passthrough keeps no reference to the ClientHello bytes after this.
    this.#o.head = EMPTY;
    if (head.length > 0) s.write(head);
    if (policy.idleTimeoutMs === 0 && this.#startPump(s, c)) {
      if (policy.maxLifetimeMs > 0) this.#lifetime = setTimeout(this.#onLifetime, policy.maxLifetimeMs);
      return;
    }
    // A hand-written pump instead of pipe(): the same flow control (pause the reader while the other
    // side's buffer is above its high-water mark, resume on 'drain') and the same half-close (an 'end'
    // on one side ends the other), with one listener per event instead of pipe()'s set per direction.
    // Backend first too: servers that speak first (banners, MySQL) must reach the client at once.
    s.on('data', this.#onBackendData);
    s.on('drain', this.#onBackendDrain);
    c.on('data', this.#onClientData);
    c.on('drain', this.#onClientDrain);
    s.resume();
    if (c.readableEnded) this.#endBackend();
    else c.resume();
    if (policy.idleTimeoutMs > 0) {
      // The client socket carries both directions, so its inactivity timer is the connection's.
      c.setTimeout(policy.idleTimeoutMs);
      c.on('timeout', this.#onIdle);
    }
    if (policy.maxLifetimeMs > 0) this.#lifetime = setTimeout(this.#onLifetime, policy.maxLifetimeMs);
  }

  /**
   * Hands both fds to the native pump when it is loaded and nothing is buffered in Node on either side
   * (so no byte can be reordered); otherwise the JavaScript pump is used. Idle timeouts need Node's
   * socket timers, so they keep the JavaScript pump too.
   */
  #startPump(s: net.Socket, c: net.Socket): boolean {
    if (nativePump === null) return false;
    const fc = rawFd(c);
    const fs = rawFd(s);
    if (fc < 0 || fs < 0) return false;
    if (c.readableEnded || s.readableEnded || c.writableEnded || s.writableEnded) return false;
    if (c.destroyed || s.destroyed) return false;
    stopReading(c);
    stopReading(s);
    if (
      c.readableLength > 0 ||
      s.readableLength > 0 ||
      c.writableLength > 0 ||
      s.writableLength > 0 ||
      c.writableNeedDrain ||
      s.writableNeedDrain
    ) {
      return false;
    }
    const h = nativePump.start(fc, fs, this.#onPump);
    if (typeof h === 'number') return false;
    this.#pump = h;
    // Node must not read these fds again, not even on a late read(0): the pump owns them until stopped.
    c.pause();
    s.pause();
    c._read = noRead;
    s._read = noRead;
    return true;
  }

  /** Stops the native pump (before any socket is closed: it polls their fds) and keeps its byte counts. */
  #stopPump(): void {
    const h = this.#pump;
    if (h === null || nativePump === null) return;
    this.#pump = null;
    nativePump.stop(h);
    this.pumpedIn = nativePump.bytes(h, 0);
    this.pumpedOut = nativePump.bytes(h, 1);
  }

  #onPump = (kind: number, side: number, err: number): void => {
    if (kind === PUMP_EOF) {
      this.#fin ??= side === 0 ? 'client-closed' : 'backend-closed';
      return;
    }
    this.#stopPump();
    const c = this.#o.client;
    const s = this.#sock;
    if (kind === PUMP_DONE) {
      c.destroy();
      s?.destroy();
      return;
    }
    const code = errName(err);
    if (side === 0) {
      this.#error ??= 'client-reset';
      this.#detail ??= code;
      if (s !== null && !s.destroyed) s.resetAndDestroy();
      c.destroy();
    } else {
      this.#error ??= 'backend-reset';
      this.#detail ??= code;
      if (!c.destroyed) c.resetAndDestroy();
      s?.destroy();
    }
  };

  #onClientData = (chunk: Buffer): void => {
    const s = this.#sock!;
    if (!s.write(chunk) && !s.destroyed) this.#o.client.pause();
  };

  #onBackendData = (chunk: Buffer): void => {
    const c = this.#o.client;
    if (!c.write(chunk) && !c.destroyed) this.#sock!.pause();
  };

  #onBackendDrain = (): void => {
    const c = this.#o.client;
    if (!c.readableEnded) c.resume();
  };

  #onClientDrain = (): void => {
    const s = this.#sock;
    if (s !== null && !s.readableEnded) s.resume();
  };

  #endBackend(): void {
    const s = this.#sock;
    if (s !== null && !s.writableEnded) s.end();
  }

  #onIdle = (): void => this.abort('idle-timeout');
  #onLifetime = (): void => this.abort('max-lifetime');

  #onTimeout = (): void => {
    if (this.#state === 'connecting') this.#connectFailed('ETIMEDOUT');
    else if (this.#state === 'pg') {
      this.#error ??= 'connect-failed';
      this.#detail ??= 'postgres backend did not answer SSLRequest';
      this.#o.client.destroy();
      this.#sock?.destroy();
    }
  };

  #onError = (err: NodeJS.ErrnoException): void => {
    if (this.#state === 'connecting') {
      this.#connectFailed(err.code ?? err.message);
      return;
    }
    this.#stopPump();
    this.#error ??= this.#state === 'pg' ? 'connect-failed' : 'backend-reset';
    this.#detail ??= err.code ?? err.message;
    const c = this.#o.client;
    if (!c.destroyed) c.resetAndDestroy();
  };

  #onEnd = (): void => {
    if (this.#state === 'pg') {
      this.#error ??= 'connect-failed';
      this.#detail ??= 'postgres backend closed before answering SSLRequest';
      this.#o.client.destroy();
      this.#sock?.destroy();
      return;
    }
    this.#fin ??= 'backend-closed';
    const c = this.#o.client;
    if (this.#state === 'piping' && !c.writableEnded) c.end();
  };

  #onClose = (): void => {
    this.#backendClosed = true;
    this.#maybeDone();
  };

  #connectFailed(code: string): void {
    const s = this.#sock!;
    // Detach before destroying: this attempt's late events must not touch the next one.
    s.removeListener('connect', this.#onConnect);
    s.removeListener('timeout', this.#onTimeout);
    s.removeListener('error', this.#onError);
    s.removeListener('end', this.#onEnd);
    s.removeListener('close', this.#onClose);
    s.on('error', noop);
    s.destroy();
    this.#sock = null;
    this.#backendClosed = true;
    const o = this.#o;
    o.health.reportFailure(this.endpoint, this.backend.policy.healthCheck?.unhealthyThreshold ?? 1, code);
    o.events.connectFailed(this.endpoint, code);
    if (this.#forced === null && !this.#clientClosed) {
      const next = o.balancer.retryEndpoint(this.backend, this.#tried);
      if (next !== null) {
        this.backend = next.backend;
        this.#connect(next);
        return;
      }
    }
    this.#error ??= 'connect-failed';
    this.#detail ??= code;
    o.client.destroy();
    this.#maybeDone();
  }

  #maybeDone(): void {
    if (!this.#clientClosed || !this.#backendClosed || this.#state === 'ended') return;
    this.#state = 'ended';
    if (this.#lifetime !== null) clearTimeout(this.#lifetime);
    const reason = this.#forced ?? this.#error ?? this.#fin ?? 'client-closed';
    this.#done.passthroughDone(reason, this.#forced === null ? this.#detail : null);
  }
}
