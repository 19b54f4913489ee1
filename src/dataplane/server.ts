/** The DataPlane: listens per bind, swaps compiled tables atomically, drains, shuts down. */
import net from 'node:net';
import type { Logger } from 'pino';
import type { Backend, BackendSet, Bind, Endpoint, RoutingTable } from '../table/types.ts';
import { Balancer } from './balancer.ts';
import { hostPort } from './conn-log.ts';
import { type BindRuntime, type CompiledState, Connection, type HandOff, type Shared } from './connection.ts';
import { type DataPlaneEvents, withDefaults } from './events.ts';
import {
  FAST_END_DRAINED,
  FAST_END_SHUTDOWN,
  type FastPlan,
  type FastTable,
  fastPathEnabled,
  fastRouteNames,
  installFastTable,
  olderTables,
  planFastTable,
} from './fast-path.ts';
import { endpointKey, HealthRegistry, type WatchedEndpoint } from './health.ts';
import {
  type ListenHandle,
  type NativePump,
  nativePump,
  PUMP_ACCEPT_ERROR,
  type PumpHandle,
  pumpShared,
  UV_ECONNREFUSED,
} from './native-pump.ts';
import { compileBind } from './sni-router.ts';
import { errName } from './socket-fd.ts';

/** The addon when it may accept (SNIGATE_ACCEPT=node keeps Node's net.Server for every listener). */
function nativeAccept(): NativePump | null {
  return process.env.SNIGATE_ACCEPT === 'node' ? null : nativePump;
}

export interface DataPlaneOptions {
  /** Where `address: null` binds listen, e.g. ['0.0.0.0', '::'] or ['127.0.0.1']. */
  defaultAddresses: string[];
  logger: Logger;
  events?: Partial<DataPlaneEvents>;
  /**
   * After a swap, connections whose route (or bind) disappeared are closed this long after the swap.
   * 0 (default): they are left alone until they end by themselves (long-lived streams are not cut).
   */
  drainGraceMs?: number;
  random?: () => number;
  /** How long a passively ejected endpoint without an active check stays out (default 10 s). */
  ejectMs?: number;
  handOff?: (h: HandOff) => void;
}

export type BindResult =
  | { address: string; port: number; ok: true }
  | { address: string; port: number; ok: false; error: string };

export interface ApplyResult {
  binds: BindResult[];
}

interface Listening extends BindRuntime {
  host: string;
  port: number;
  /** Accepting in C: its listener handle (the fast path's tables and connections hang on it). */
  native: ListenHandle | null;
  /** The fast table new connections use, if any. */
  fast: FastTable | null;
  /** Stops accepting; resolves when the socket is closed (a net.Server's once its connections ended too). */
  stop: () => Promise<void>;
  /** The bound address (port 0 resolved), null before listening. */
  address: () => { address: string; port: number } | null;
}

export class DataPlane {
  readonly #opts: DataPlaneOptions;
  readonly #shared: Shared;
  readonly #health: HealthRegistry;
  readonly #listening = new Map<string, Listening>();
  /** Connections of binds that were removed: still ours to drain and shut down. */
  readonly #orphans = new Set<Listening>();
  readonly #drainTimers = new Set<NodeJS.Timeout>();
  /** Open connections per table bind (address|port), shared by its sockets and kept across swaps. */
  readonly #active = new Map<string, { n: number }>();
  #closed = false;
  /** Fast plans per compiled state: the listeners of one bind (0.0.0.0 and ::) share one. */
  readonly #fastPlans = new WeakMap<CompiledState, FastPlan | null>();
  #applying: Promise<unknown> = Promise.resolve();

  constructor(opts: DataPlaneOptions) {
    this.#opts = opts;
    const events = withDefaults(opts.events);
    this.#health = new HealthRegistry({ ejectMs: opts.ejectMs, onChange: events.healthChanged });
    this.#shared = { logger: opts.logger, events, health: this.#health, handOff: opts.handOff ?? null };
  }

  get health(): HealthRegistry {
    return this.#health;
  }

  /**
   * Swaps to `table`. Never throws for a bind that cannot listen: it is reported in the result.
   * Calls are serialized, so overlapping applies cannot open the same bind twice.
   */
  apply(table: RoutingTable): Promise<ApplyResult> {
    const run = this.#applying.then(() => this.#apply(table));
    this.#applying = run.catch(() => {});
    return run;
  }

  async #apply(table: RoutingTable): Promise<ApplyResult> {
    if (this.#closed) throw new Error('DataPlane is shut down');
    for (const o of this.#orphans) if (open(o) === 0) this.#orphans.delete(o);
    const random = this.#opts.random ?? Math.random;
    const wanted = new Map<string, { host: string; bind: Bind; state: CompiledState }>();
    const watched = new Map<string, WatchedEndpoint>();
    for (const bind of table.binds) {
      const ck = `${bind.address ?? '*'}|${bind.port}`;
      let active = this.#active.get(ck);
      if (active === undefined) this.#active.set(ck, (active = { n: 0 }));
      const state = compileState(bind, this.#health, random, watched, active);
      const hosts = bind.address === null ? this.#opts.defaultAddresses : [bind.address];
      for (const host of hosts) wanted.set(key(host, bind.port), { host, bind, state });
    }
    this.#health.sync(watched);

    const results: BindResult[] = [];
    const opening: Promise<void>[] = [];
    for (const [k, w] of wanted) {
      const existing = this.#listening.get(k);
      if (existing !== undefined) {
        existing.state = w.state;
        this.#installFast(existing);
        this.#drainMissing(existing);
        results.push({ address: w.host, port: w.bind.port, ok: true });
        continue;
      }
      const dualStack = w.host === '::' && wanted.has(key('0.0.0.0', w.bind.port));
      opening.push(
        this.#open(k, w.host, w.bind.port, w.state, dualStack).then((error) => {
          if (error === null) results.push({ address: w.host, port: w.bind.port, ok: true });
          else results.push({ address: w.host, port: w.bind.port, ok: false, error });
        }),
      );
    }
    for (const [k, l] of this.#listening) {
      if (wanted.has(k)) continue;
      // Stop accepting; established connections are never touched by a swap, only drained.
      this.#listening.delete(k);
      void l.stop();
      if (open(l) > 0) {
        this.#orphans.add(l);
        this.#drainMissing(l, true);
      }
    }
    await Promise.all(opening);
    return { binds: results };
  }

  /** Actual listening addresses (port 0 in the table resolves to the kernel's choice). */
  listening(): { address: string; port: number }[] {
    const out: { address: string; port: number }[] = [];
    for (const l of this.#listening.values()) {
      const a = l.address();
      if (a !== null) out.push(a);
    }
    return out;
  }

  activeConnections(): number {
    let n = 0;
    for (const l of this.#listening.values()) n += open(l);
    for (const o of this.#orphans) n += open(o);
    return n;
  }

  /** For metrics: open fast-path connections, and records lost since start (process-wide). */
  fastPathStats(): { connections: number; recordsDropped: number } {
    return { connections: this.fastConnections(), recordsDropped: pumpShared[2] ?? 0 };
  }

  /** Open connections carried by the native fast path (a subset of activeConnections()). */
  fastConnections(): number {
    let n = 0;
    for (const l of [...this.#listening.values(), ...this.#orphans])
      if (l.native !== null) n += nativePump!.fastCount(l.native);
    return n;
  }

  /** Stops accepting, lets connections finish for up to `graceMs`, then closes the rest. */
  async shutdown(graceMs: number): Promise<void> {
    this.#closed = true;
    this.#health.close();
    for (const t of this.#drainTimers) clearTimeout(t);
    this.#drainTimers.clear();
    const servers: Promise<void>[] = [];
    for (const l of this.#listening.values()) {
      this.#orphans.add(l);
      servers.push(l.stop());
    }
    this.#listening.clear();
    await this.#waitIdle(Date.now() + Math.max(0, graceMs));
    for (const o of this.#orphans) {
      for (const c of [...o.connections]) c.close('shutdown');
      if (o.native !== null) nativePump!.fastClose(o.native, -1, null, FAST_END_SHUTDOWN);
    }
    // Destroyed sockets report 'close' a tick later; their records are written by then.
    await this.#waitIdle(Date.now() + 1000);
    await Promise.all(servers);
    this.#orphans.clear();
  }

  async #waitIdle(deadline: number): Promise<void> {
    while (this.activeConnections() > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(20, Math.max(1, deadline - Date.now()))));
    }
  }

  #open(
    k: string,
    host: string,
    port: number,
    state: CompiledState,
    ipv6Only: boolean,
  ): Promise<string | null> {
    const l: Listening = {
      host,
      port,
      display: hostPort(host, port),
      state,
      connections: new Set(),
      native: null,
      fast: null,
      shared: this.#shared,
      stop: () => Promise.resolve(),
      address: () => null,
    };
    const pump = nativeAccept();
    if (pump !== null && net.isIP(host) !== 0) return Promise.resolve(this.#openNative(pump, k, l, ipv6Only));
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    l.stop = () => new Promise((resolve) => server.close(() => resolve()));
    l.address = () => {
      const a = server.address();
      return a !== null && typeof a === 'object' ? { address: a.address, port: a.port } : null;
    };
    server.on('connection', (socket: net.Socket) => {
      try {
        new Connection(l, socket).start();
      } catch (err) {
        // Connection.start() catches its own failures; this is the last line so the accept loop survives.
        socket.on('error', () => {});
        socket.destroy();
        this.#shared.logger.error({ err }, 'accept handler failed');
      }
    });
    return new Promise((resolve) => {
      const onError = (err: NodeJS.ErrnoException) => {
        server.removeListener('listening', onListening);
        resolve(this.#bindFailed(l, err.code ?? err.message));
      };
      const onListening = () => {
        server.removeListener('error', onError);
        server.on('error', (err) => this.#shared.logger.error({ bind: l.display, err }, 'listener error'));
        // The actual port matters when the table says 0 (tests, ephemeral binds).
        const a = server.address();
        if (a !== null && typeof a === 'object') l.display = hostPort(host, a.port);
        this.#listening.set(k, l);
        resolve(null);
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen({ host, port, ipv6Only, exclusive: true });
    });
  }

  /**
   * Accepts in C (native/pump): a passthrough connection then never becomes a net.Socket; the ones Node
   * must serve (termination, HTTP) are handed a net.Socket built on their fd after the ClientHello.
   */
  #openNative(pump: NativePump, k: string, l: Listening, ipv6Only: boolean): string | null {
    const logger = this.#shared.logger;
    const onAccept = (
      h: PumpHandle,
      address: string,
      port: number,
      waitedMs: number,
      failedEndpoint?: string,
      failedErr?: number,
    ): object | undefined => {
      try {
        const failed =
          failedEndpoint === undefined
            ? undefined
            : { key: failedEndpoint, err: failedErr ?? UV_ECONNREFUSED };
        const c = new Connection(l, null, { h, address, port, waitedMs, failed });
        c.start();
        return c;
      } catch (err) {
        pump.close(h, false);
        logger.error({ err }, 'accept handler failed');
        return undefined;
      }
    };
    let lastAcceptError = 0;
    const onEvent = function (this: unknown, kind: number, side: number, err: number): void {
      if (kind !== PUMP_ACCEPT_ERROR) {
        (this as Connection).onNative(kind, side, err);
        return;
      }
      // Out of fds and the like: logged at most once a second (accepting pauses 100 ms on EMFILE).
      const now = Date.now();
      if (now - lastAcceptError < 1000) return;
      lastAcceptError = now;
      logger.error({ bind: l.display, code: errName(err) }, 'accept failed');
    };
    const h = pump.listen(l.host, l.port, ipv6Only, onAccept, onEvent);
    if (typeof h === 'number') return this.#bindFailed(l, errName(h));
    const port = pump.listenPort(h);
    l.display = hostPort(l.host, port);
    l.stop = () => {
      pump.unlisten(h);
      return Promise.resolve();
    };
    l.address = () => ({ address: l.host, port });
    l.native = h;
    this.#installFast(l);
    this.#listening.set(k, l);
    return null;
  }

  /** Gives a native listener the fast table of its current state (none when the fast path is off). */
  #installFast(l: Listening): void {
    if (l.native === null) return;
    try {
      let plan = this.#fastPlans.get(l.state);
      if (plan === undefined) {
        plan = fastPathEnabled() ? planFastTable(l.state, this.#health) : null;
        this.#fastPlans.set(l.state, plan);
      }
      l.fast = installFastTable(nativePump!, l.native, plan, l);
    } catch (err) {
      // A bug here must not fail the swap: without a table every connection takes the JavaScript path.
      l.fast = null;
      this.#shared.logger.error({ bind: l.display, err }, 'fast path table not installed');
      try {
        nativePump!.fastTable(l.native, null);
      } catch {}
    }
  }

  #bindFailed(l: Listening, code: string): string {
    this.#shared.events.bindFailed(l.display, code);
    this.#shared.logger.error({ bind: l.display, code }, 'bind failed');
    return code;
  }

  /** Schedules closing the connections whose route is gone (all of them when the bind is gone). */
  #drainMissing(rt: Listening, all = false): void {
    const grace = this.#opts.drainGraceMs ?? 0;
    if (grace <= 0) return;
    const keys = rt.state.compiled.routeKeys;
    const doomed: Connection[] = [];
    for (const c of rt.connections) if (all || (c.routeKey !== null && !keys.has(c.routeKey))) doomed.push(c);
    // Fast connections are on the tables installed before this swap; those whose route is gone are closed.
    const fastDoomed: { id: number; routes: Uint8Array | null }[] = [];
    if (rt.native !== null) {
      if (all) fastDoomed.push({ id: -1, routes: null });
      else {
        for (const t of olderTables(rt, rt.fast)) {
          const routes = new Uint8Array(t.routes.length);
          let any = false;
          t.routes.forEach((r, i) => {
            if (keys.has(fastRouteNames(r).key)) return;
            routes[i] = 1;
            any = true;
          });
          if (any) fastDoomed.push({ id: t.id, routes });
        }
      }
    }
    if (doomed.length === 0 && fastDoomed.length === 0) return;
    const native = rt.native;
    const timer = setTimeout(() => {
      this.#drainTimers.delete(timer);
      for (const c of doomed) c.close('drained');
      if (native !== null)
        for (const d of fastDoomed) nativePump!.fastClose(native, d.id, d.routes, FAST_END_DRAINED);
    }, grace);
    timer.unref();
    this.#drainTimers.add(timer);
  }
}

/** Connections a listener still has open: its Connection objects and the fast path's. */
function open(l: Listening): number {
  return l.connections.size + (l.native === null ? 0 : nativePump!.fastCount(l.native));
}

function key(host: string, port: number): string {
  return `${host}|${port}`;
}

function watch(
  backends: readonly Backend[],
  watched: Map<string, WatchedEndpoint>,
  seen: Set<readonly Endpoint[]>,
): void {
  for (const b of backends) {
    // The translator shares one endpoint list among the backends of a Service port: its keys are in already.
    if (seen.has(b.endpoints)) continue;
    seen.add(b.endpoints);
    for (const e of b.endpoints) {
      const k = endpointKey(e);
      if (!watched.has(k)) watched.set(k, { endpoint: e, check: b.policy.healthCheck });
    }
  }
}

/**
 * The balancers of one compiled bind, each built on the first connection of its route: an apply of 100k
 * routes would otherwise build 100k balancers (and their endpoint keys) that mostly never serve.
 * get() answers only for the backend sets of this bind, as an eagerly filled Map would.
 */
class LazyBalancers extends Map<BackendSet, Balancer> {
  readonly #known: Set<BackendSet>;
  readonly #health: HealthRegistry;
  readonly #random: () => number;

  constructor(known: Set<BackendSet>, health: HealthRegistry, random: () => number) {
    super();
    this.#known = known;
    this.#health = health;
    this.#random = random;
  }

  override get(set: BackendSet): Balancer | undefined {
    let b = super.get(set);
    if (b === undefined && this.#known.has(set)) {
      b = new Balancer(set, this.#health, this.#random);
      super.set(set, b);
    }
    return b;
  }

  override has(set: BackendSet): boolean {
    return this.#known.has(set);
  }
}

function compileState(
  bind: Bind,
  health: HealthRegistry,
  random: () => number,
  watched: Map<string, WatchedEndpoint>,
  active: { n: number },
): CompiledState {
  const known = new Set<BackendSet>();
  const seen = new Set<readonly Endpoint[]>();
  for (const listener of bind.listeners) {
    for (const route of listener.routes) {
      if (known.has(route.backends)) continue;
      known.add(route.backends);
      watch(route.backends.backends, watched, seen);
    }
    // Terminated HTTP backends are checked too (TCP, or HTTP with a BackendTrafficPolicy type: HTTP).
    for (const vhost of listener.http ?? [])
      for (const rule of vhost.rules) watch(rule.backends, watched, seen);
  }
  return { compiled: compileBind(bind), balancers: new LazyBalancers(known, health, random), active };
}
