/** One accepted connection's life: preamble under a deadline, SNI lookup, passthrough or hand-off, one log record. */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Backend, BackendSet, SniRoute, TableListener } from '../table/types.ts';
import type { Balancer, PickedEndpoint } from './balancer.ts';
import type { ClientHello } from './clienthello.ts';
import { type ConnectionRecord, type EndReason, hostPort, logConnection } from './conn-log.ts';
import { admitConnection } from './conn-rate.ts';
import type { DataPlaneEvents } from './events.ts';
import type { HealthRegistry } from './health.ts';
import { NativePassthrough } from './native-passthrough.ts';
import {
  allocConnId,
  nativePump,
  PUMP_DATA,
  PUMP_EOF,
  PUMP_ERROR,
  PUMP_READ_TIMEOUT,
  type PumpHandle,
  pumpBuffer,
  UV_EOF,
} from './native-pump.ts';
import { Passthrough } from './passthrough.ts';
import { PreambleReader } from './preamble.ts';
import { isTrusted, type ProxyAddresses, proxyAddressesFor } from './proxy-protocol.ts';
import { type CompiledBind, routeNames } from './sni-router.ts';
import { errName } from './socket-fd.ts';

/** A compiled Bind plus its balancers; replaced as a whole on every swap. */
export interface CompiledState {
  compiled: CompiledBind;
  balancers: Map<BackendSet, Balancer>;
  /**
   * Open connections of the table bind (address, port), shared by its sockets (0.0.0.0 and :: for the
   * default address) and kept across swaps: ClientTrafficPolicy's connection limit is per port.
   */
  active: { n: number };
}

/** What a terminating path receives when the chosen listener is not passthrough. */
export interface HandOff {
  connId: number;
  socket: net.Socket;
  /** Bytes already read (the ClientHello and anything after it); unshift them before the TLS layer. */
  head: Buffer;
  /** An SSLRequest was answered 'S' already. */
  pgSsl: boolean;
  hello: ClientHello | null;
  listener: TableListener;
  route: SniRoute | null;
  /** Real client address (after PROXY in). */
  client: { address: string; port: number };
  /** The bind's table as it is now (swaps replace it): its listeners and SNI lookup. */
  current: () => CompiledBind;
  /** Filled by the taker; read when the connection record is written. */
  outcome: HandOffOutcome;
}

/** What the taker of a hand-off reports back, so the connection record and drains stay right. */
export interface HandOffOutcome {
  backend: string | null;
  endpoint: string | null;
  /** First cause the taker knows (handshake failure, backend reset...): wins over what the raw socket saw. */
  reason: EndReason | null;
  detail: string | null;
  /** How to end the connection on a drain or shutdown; null: destroy the raw socket. */
  close: ((reason: EndReason) => void) | null;
  /** True while the taker still works after the raw socket closed (a backend closing): the record waits. */
  pending: boolean;
  /** Set by the connection; the taker calls it once `pending` turns false. */
  settled: () => void;
}

export interface Shared {
  logger: Logger;
  events: DataPlaneEvents;
  health: HealthRegistry;
  /** Takes over the socket for terminate-* and http listeners; without it those connections are refused. */
  handOff: ((h: HandOff) => void) | null;
}

/** One listening socket: its current table and the connections it accepted. */
export interface BindRuntime {
  /** `address:port` as logged. */
  display: string;
  state: CompiledState;
  connections: Set<Connection>;
  shared: Shared;
}

interface SocketHandlers {
  error: (err: NodeJS.ErrnoException) => void;
  end: () => void;
  close: (hadError: boolean) => void;
  data: (chunk: Buffer) => void;
}

const noop = (): void => {};

export class Connection {
  readonly connId = allocConnId();
  readonly #rt: BindRuntime;
  /** The counter this connection was counted in (the state may be swapped before it ends). */
  #active: { n: number } = { n: 0 };
  /**
   * The client socket. Null while a connection accepted in C is still native (#h), and once the native
   * pump took the socket's fd (#detach).
   */
  #socket: net.Socket | null;
  /** A connection accepted in C (server.ts): the pump handle, until it is given to a net.Socket (#toSocket). */
  #h: PumpHandle | null = null;
  /** Bytes moved by carriers gone before the record: the native pre-routing reads, a detached socket. */
  #bytesRead = 0;
  #bytesWritten = 0;
  readonly #startedAt: number;
  /** How long the fast path held the connection before JS got it (its hello timeout already ran that long). */
  readonly #waitedMs: number;
  /** A fast-path backend attempt that failed before C handed the connection over (native/pump). */
  #fastFailed: { key: string; err: number } | null = null;
  /** Its endpoint, for the record when nothing else was tried. */
  #failedEndpoint: string | null = null;
  #clientAddress = '';
  #clientPort = 0;
  /** Until routed; then only what the record needs is kept (#sni, #alpn, #proxyIn). */
  #reader: PreambleReader | null = null;
  #sni: string | null = null;
  #alpn: string[] | null = null;
  /** Addresses from a PROXY header in. */
  #proxyIn: ProxyAddresses | null = null;
  /** Listeners on the net.Socket, made only for connections that have one (native ones never do). */
  #handlers: SocketHandlers | null = null;
  #helloTimer: NodeJS.Timeout | null = null;
  #helloMs: number | null = null;
  #pt: Passthrough | NativePassthrough | null = null;
  #handedOff = false;
  #outcome: HandOffOutcome | null = null;
  #reason: EndReason | null = null;
  #detail: string | null = null;
  #finished = false;
  #listener: TableListener | null = null;
  /** `Kind/namespace/name` of #route, as logged and counted. */
  #routeName: string | null = null;
  #backend: string | null = null;
  /** `listenerId|Kind/ns/name` once routed: a swap drains the connection when this key disappears. */
  routeKey: string | null = null;

  /** `socket` from a net.Server, or null with `native` for a connection accepted in C. */
  constructor(
    rt: BindRuntime,
    socket: net.Socket | null,
    native?: {
      h: PumpHandle;
      address: string;
      port: number;
      /** How long the fast path held the connection before handing it over (its bytes still unread). */
      waitedMs?: number;
      failed?: { key: string; err: number };
    },
  ) {
    this.#rt = rt;
    this.#socket = socket;
    this.#waitedMs = native?.waitedMs ?? 0;
    this.#startedAt = performance.now() - this.#waitedMs;
    if (native !== undefined) {
      this.#h = native.h;
      this.#clientAddress = native.address;
      this.#clientPort = native.port;
      this.#fastFailed = native.failed ?? null;
    }
  }

  /** Never throws: the accept loop calls this and nothing else. */
  start(): void {
    const socket = this.#socket;
    if (socket !== null) this.#listen(socket);
    this.#rt.connections.add(this);
    this.#active = this.#rt.state.active;
    this.#active.n++;
    this.#rt.shared.events.connectionOpened(this.#rt.display);
    try {
      this.#begin();
    } catch (err) {
      this.#fail(err);
    }
  }

  /** The passthrough carrying this connection ended (PassthroughDone). */
  passthroughDone(reason: EndReason, detail: string | null): void {
    this.#finish(reason, detail);
  }

  /** Forced end from a drain or shutdown. */
  close(reason: EndReason): void {
    if (this.#finished) return;
    if (this.#pt !== null) {
      this.#pt.abort(reason);
      return;
    }
    this.#reason ??= reason;
    const close = this.#outcome?.close;
    if (close) close(reason);
    else this.#destroy();
  }

  /**
   * Events of a connection accepted in C, delivered by native/pump with this connection as `this`: the
   * client's bytes, EOF and errors before routing; the native passthrough's events after.
   */
  onNative(kind: number, side: number, err: number): void {
    const pt = this.#pt;
    if (pt instanceof NativePassthrough) {
      pt.event(kind, side, err);
      return;
    }
    if (kind === PUMP_DATA) this.#onData(pumpBuffer!.subarray(0, err), true);
    else if (kind === PUMP_READ_TIMEOUT) this.#onHelloTimeout();
    else if (kind === PUMP_EOF) this.#onEnd();
    else if (kind === PUMP_ERROR) {
      // The pump closed the fd already.
      this.#reason ??= 'client-reset';
      this.#detail ??= errName(err);
      this.#destroy();
    }
  }

  #listen(socket: net.Socket): void {
    const h = (this.#handlers ??= {
      error: (err) => this.#onError(err),
      end: () => this.#onEnd(),
      close: (hadError) => this.#onClose(hadError),
      data: (chunk) => this.#onData(chunk),
    });
    socket.on('error', h.error);
    socket.on('end', h.end);
    socket.on('close', h.close);
  }

  /** Closes the client now (a native one) or soon (a socket: its 'close' event ends the record). */
  #destroy(): void {
    const h = this.#h;
    if (h !== null) {
      nativePump!.close(h, false);
      this.#onClose(false);
      return;
    }
    this.#socket?.destroy();
  }

  /**
   * Gives a native client's fd to a net.Socket, for what only Node can do with it (TLS termination, HTTP,
   * the Postgres SSLRequest exchange, hostname backends, re-encryption).
   */
  #toSocket(): net.Socket {
    const h = this.#h!;
    const pump = nativePump!;
    this.#bytesRead += pump.bytes(h, 0);
    const fd = pump.release(h);
    this.#h = null;
    if (fd < 0) throw new Error(`cannot hand the client socket to Node: ${errName(fd)}`);
    const socket = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
    socket.pause();
    this.#socket = socket;
    this.#listen(socket);
    return socket;
  }

  #begin(): void {
    const socket = this.#socket;
    const bind = this.#rt.state.compiled.bind;
    if (socket !== null) {
      this.#clientAddress = socket.remoteAddress ?? '';
      this.#clientPort = socket.remotePort ?? 0;
    }
    const max = bind.client.maxConnections;
    if (max > 0 && this.#active.n > max) {
      this.#reject('max-connections', null);
      return;
    }
    const cidrs = bind.client.proxyProtocolTrustedCidrs;
    const trusted = cidrs.length > 0 && isTrusted(this.#clientAddress, cidrs);
    const reader = new PreambleReader(
      {
        expectProxy: trusted,
        refuseProxy: cidrs.length > 0 && !trusted,
        readHello: bind.protocol === 'tls',
        helloMaxBytes: bind.client.helloMaxBytes,
      },
      (b) => this.#reply(b),
    );
    this.#reader = reader;
    if (reader.immediate) {
      this.#routeNow();
      return;
    }
    if (socket !== null) {
      this.#helloTimer = setTimeout(() => this.#onHelloTimeout(), bind.client.helloTimeoutMs);
      socket.on('data', this.#handlers!.data);
    } else {
      // The pump's own timer: no Node timer per connection. The ClientHello is usually there already. Time the
      // fast path spent waiting for it counts (at least 1 ms is left: 0 would mean no limit).
      const r = nativePump!.readStart(this.#h!, Math.max(1, bind.client.helloTimeoutMs - this.#waitedMs));
      if (r > 0) this.#onData(pumpBuffer!.subarray(0, r), true);
      else if (r === UV_EOF) this.#onEnd();
      else if (r < 0) {
        this.#reason ??= 'client-reset';
        this.#detail ??= errName(r);
        this.#stopReading();
        this.#destroy();
      }
    }
  }

  #reply(b: Buffer): void {
    const h = this.#h;
    if (h === null) {
      this.#socket?.write(b);
      return;
    }
    const n = nativePump!.write(h, b);
    if (n > 0) this.#bytesWritten += n;
  }

  /** `transient`: the chunk is a view of the pump's read buffer, valid only during this call. */
  #onData(chunk: Buffer, transient = false): void {
    try {
      const reader = this.#reader!;
      const status = reader.push(chunk);
      if (status === 'need-more') {
        if (transient) reader.own();
        return;
      }
      this.#stopReading();
      if (status === 'reject') {
        this.#reject(reader.rejectReason!, reader.rejectDetail);
        return;
      }
      if (reader.hello !== null) {
        this.#helloMs = performance.now() - this.#startedAt;
        this.#rt.shared.events.helloParsed(this.#helloMs, reader.hello.sni);
      }
      if (reader.proxy !== null) {
        this.#clientAddress = reader.proxy.sourceAddress;
        this.#clientPort = reader.proxy.sourcePort;
      }
      this.#routeNow();
    } catch (err) {
      this.#fail(err);
    }
  }

  #stopReading(): void {
    if (this.#helloTimer !== null) clearTimeout(this.#helloTimer);
    this.#helloTimer = null;
    if (this.#h !== null) {
      nativePump!.readStop(this.#h);
      return;
    }
    const socket = this.#socket;
    if (socket === null) return;
    socket.pause();
    if (this.#handlers !== null) socket.removeListener('data', this.#handlers.data);
  }

  #onHelloTimeout(): void {
    this.#helloTimer = null;
    this.#stopReading();
    this.#reject('hello-timeout', `${this.#reader?.tail().length ?? 0} bytes read`);
  }

  /** Reads the table current now: a hello completed after a swap follows the new table. */
  #routeNow(): void {
    const reader = this.#reader!;
    const hello = reader.hello;
    if (hello !== null) {
      // Not the parsed hello itself: only these two are kept for the record (the ALPN array is made at its size).
      this.#sni = hello.sni;
      this.#alpn = hello.alpn;
    }
    this.#proxyIn = reader.proxy;
    const state = this.#rt.state;
    const m = state.compiled.match(reader.hello?.sni ?? null);
    if (m.listener !== undefined) this.#listener = m.listener;
    if (m.reject !== undefined) {
      this.#reject(m.reject, null);
      return;
    }
    const listener = m.listener;
    if (m.route !== null) {
      const n = routeNames(listener.id, m.route);
      this.routeKey = n.key;
      this.#routeName = n.name;
      this.#rt.shared.events.connectionRouted(n.name);
    }
    if (m.route === null || (listener.mode !== 'passthrough' && listener.mode !== 'tcp')) {
      this.#handOff(listener, m.route);
      return;
    }
    if (!admitConnection(listener, this.#clientAddress)) {
      this.#reject('rate-limited', 'over the listener connectionRateLimit for this client');
      return;
    }
    const balancer = state.balancers.get(m.route.backends);
    if (balancer === undefined) {
      this.#reject('backend-invalid', 'no balancer for route');
      return;
    }
    const pick = balancer.pick();
    if (pick.backend !== undefined) this.#backend = pick.backend.id;
    if (pick.reject !== undefined) {
      this.#reject(pick.reject, pick.reason);
      return;
    }
    const shared = this.#rt.shared;
    let first: PickedEndpoint & { backend: Backend } = pick;
    let tried: string[] | undefined;
    const failed = this.#fastFailed;
    if (failed !== null) {
      // The fast path's attempt was this connection's first: reported and retried as Passthrough would.
      this.#fastFailed = null;
      const code = errName(failed.err);
      shared.health.reportFailure(failed.key, pick.backend.policy.healthCheck?.unhealthyThreshold ?? 1, code);
      shared.events.connectFailed(failed.key, code);
      tried = [failed.key];
      const next = balancer.retryEndpoint(pick.backend, tried);
      if (next === null) {
        this.#failedEndpoint = failed.key;
        this.#reject('connect-failed', code);
        return;
      }
      first = next;
      this.#backend = next.backend.id;
    }
    // Native when it can carry the connection: accepted in C (adopt its handle), or a net.Socket whose fd it
    // takes a dup of; the Postgres SSLRequest exchange and hostname endpoints need the JavaScript path.
    const native = !reader.pgSsl && balancer.ipEndpointsOnly;
    const opts = {
      balancer,
      backend: first.backend,
      first,
      tried,
      // Adopted, the head is sent on (copied by the pump) before this call returns; anything else keeps it.
      head: this.#h !== null && !native ? Buffer.from(reader.tail()) : reader.tail(),
      proxyOut: () => this.#proxyOut(),
      health: shared.health,
      events: shared.events,
    };
    reader.release();
    this.#reader = null;
    let pt: Passthrough | NativePassthrough | null = null;
    if (this.#h !== null) {
      if (native) pt = NativePassthrough.adopt(nativePump!, this.#h, opts, this);
      else this.#toSocket();
    }
    const socket = this.#socket;
    if (pt === null && native && socket !== null) {
      pt = NativePassthrough.take(socket, opts, this);
      if (pt !== null) this.#detach(socket);
    }
    pt ??= new Passthrough({ ...opts, client: socket!, pgSsl: reader.pgSsl }, this);
    this.#pt = pt;
    pt.start();
  }

  /**
   * The native pump owns a dup of the client fd now: Node's socket is closed (no FIN or RST: the dup keeps
   * the connection open) and forgotten, so an established connection keeps no net.Socket alive.
   */
  #detach(socket: net.Socket): void {
    const h = this.#handlers;
    if (h !== null) {
      socket.removeListener('error', h.error);
      socket.removeListener('end', h.end);
      socket.removeListener('close', h.close);
      this.#handlers = null;
    }
    socket.on('error', noop);
    this.#bytesRead += socket.bytesRead;
    this.#bytesWritten += socket.bytesWritten;
    socket.destroy();
    this.#socket = null;
  }

  #handOff(listener: TableListener, route: SniRoute | null): void {
    const handOff = this.#rt.shared.handOff;
    if (handOff === null) {
      this.#reject('no-route', `no terminator for ${listener.mode} listener`);
      return;
    }
    const reader = this.#reader!;
    // The taker keeps the head: a copy when it is a view of the pump's read buffer.
    const head = this.#h !== null ? Buffer.from(reader.tail()) : reader.tail();
    if (this.#h !== null) this.#toSocket();
    this.#handedOff = true;
    const outcome: HandOffOutcome = {
      backend: null,
      endpoint: null,
      reason: null,
      detail: null,
      close: null,
      pending: false,
      settled: () => {},
    };
    this.#outcome = outcome;
    const rt = this.#rt;
    handOff({
      connId: this.connId,
      socket: this.#socket!,
      head,
      pgSsl: reader.pgSsl,
      hello: reader.hello,
      listener,
      route,
      client: { address: this.#clientAddress, port: this.#clientPort },
      current: () => rt.state.compiled,
      outcome,
    });
    reader.release();
    this.#reader = null;
  }

  #proxyOut(): ProxyAddresses {
    const p = this.#proxyIn;
    let local: { address?: string; port?: number } = {};
    if (this.#h !== null) local = nativePump!.localAddress(this.#h);
    else if (this.#socket !== null)
      local = { address: this.#socket.localAddress, port: this.#socket.localPort };
    return proxyAddressesFor(
      this.#clientAddress,
      this.#clientPort,
      p?.destAddress ?? local.address ?? '0.0.0.0',
      p?.destPort ?? local.port ?? 0,
    );
  }

  #reject(reason: EndReason, detail: string | null): void {
    this.#reason ??= reason;
    this.#detail ??= detail;
    // A plain close, never a TLS alert: conformance expects EOF or ECONNRESET.
    this.#destroy();
  }

  #fail(err: unknown): void {
    this.#rt.shared.logger.error({ connId: this.connId, err }, 'connection handler failed');
    if (this.#pt !== null) this.#pt.abort('internal-error');
    else this.#reject('internal-error', err instanceof Error ? err.message : String(err));
  }

  #onError(err: NodeJS.ErrnoException): void {
    if (this.#pt !== null) {
      this.#pt.clientError(err);
      return;
    }
    this.#reason ??= 'client-reset';
    this.#detail ??= err.code ?? err.message;
  }

  #onEnd(): void {
    if (this.#pt !== null) {
      this.#pt.clientEnd();
      return;
    }
    if (this.#handedOff) return;
    // EOF before routing: with allowHalfOpen nothing would close the socket for us.
    this.#stopReading();
    this.#reject('client-closed', 'eof before routing');
  }

  #onClose(hadError: boolean): void {
    if (this.#pt !== null) {
      this.#pt.clientClose();
      return;
    }
    const o = this.#outcome;
    const end = (): void => {
      this.#finish(
        o?.reason ?? this.#reason ?? (hadError ? 'client-reset' : 'client-closed'),
        o?.reason ? o.detail : this.#detail,
      );
    };
    // The taker may still be closing a backend stream: the record waits for it.
    if (o?.pending) o.settled = end;
    else end();
  }

  #finish(reason: EndReason, detail: string | null): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#helloTimer !== null) clearTimeout(this.#helloTimer);
    this.#rt.connections.delete(this);
    this.#active.n--;
    const hello = this.#reader?.hello ?? null;
    const record: ConnectionRecord = {
      connId: this.connId,
      client: hostPort(this.#clientAddress, this.#clientPort),
      bind: this.#rt.display,
      listener: this.#listener?.id ?? null,
      sni: this.#sni ?? hello?.sni ?? null,
      alpn: this.#alpn ?? hello?.alpn ?? null,
      route: this.#routeName,
      backend: this.#pt?.backend.id ?? this.#backend ?? this.#outcome?.backend ?? null,
      endpoint: this.#pt?.endpoint ?? this.#outcome?.endpoint ?? this.#failedEndpoint,
      bytesIn: this.#bytesRead + (this.#socket?.bytesRead ?? 0) + (this.#pt?.pumpedIn ?? 0),
      bytesOut: this.#bytesWritten + (this.#socket?.bytesWritten ?? 0) + (this.#pt?.pumpedOut ?? 0),
      durationMs: Math.round(performance.now() - this.#startedAt),
      helloMs: this.#helloMs === null ? null : Math.round(this.#helloMs * 1000) / 1000,
      end: reason,
      detail,
    };
    const shared = this.#rt.shared;
    try {
      logConnection(shared.logger, record);
      shared.events.connectionClosed(record);
    } catch (err) {
      shared.logger.error({ connId: this.connId, err }, 'connection record failed');
    }
  }
}
