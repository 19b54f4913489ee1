/** The DataPlane: listens per bind, swaps compiled tables atomically, drains, shuts down. */
import net from 'node:net';
import type { Logger } from 'pino';
import type { Backend, BackendSet, Bind, RoutingTable } from '../table/types.ts';
import { Balancer } from './balancer.ts';
import { hostPort } from './conn-log.ts';
import { type BindRuntime, type CompiledState, Connection, type HandOff, type Shared } from './connection.ts';
import { type DataPlaneEvents, withDefaults } from './events.ts';
import { endpointKey, HealthRegistry, type WatchedEndpoint } from './health.ts';
import { compileBind } from './sni-router.ts';

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
  server: net.Server;
}

export class DataPlane {
  readonly #opts: DataPlaneOptions;
  readonly #shared: Shared;
  readonly #health: HealthRegistry;
  readonly #listening = new Map<string, Listening>();
  /** Connections of binds that were removed: still ours to drain and shut down. */
  readonly #orphans = new Set<BindRuntime>();
  readonly #drainTimers = new Set<NodeJS.Timeout>();
  /** Open connections per table bind (address|port), shared by its sockets and kept across swaps. */
  readonly #active = new Map<string, { n: number }>();
  #closed = false;
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
    for (const o of this.#orphans) if (o.connections.size === 0) this.#orphans.delete(o);
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
      l.server.close();
      if (l.connections.size > 0) {
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
      const a = l.server.address();
      if (a !== null && typeof a === 'object') out.push({ address: a.address, port: a.port });
    }
    return out;
  }

  activeConnections(): number {
    let n = 0;
    for (const l of this.#listening.values()) n += l.connections.size;
    for (const o of this.#orphans) n += o.connections.size;
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
      servers.push(new Promise((resolve) => l.server.close(() => resolve())));
    }
    this.#listening.clear();
    await this.#waitIdle(Date.now() + Math.max(0, graceMs));
    for (const o of this.#orphans) for (const c of [...o.connections]) c.close('shutdown');
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
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    const l: Listening = {
      host,
      port,
      server,
      display: hostPort(host, port),
      state,
      connections: new Set(),
      shared: this.#shared,
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
        const code = err.code ?? err.message;
        this.#shared.events.bindFailed(l.display, code);
        this.#shared.logger.error({ bind: l.display, code }, 'bind failed');
        resolve(code);
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

  /** Schedules closing the connections whose route is gone (all of them when the bind is gone). */
  #drainMissing(rt: BindRuntime, all = false): void {
    const grace = this.#opts.drainGraceMs ?? 0;
    if (grace <= 0) return;
    const keys = rt.state.compiled.routeKeys;
    const doomed: Connection[] = [];
    for (const c of rt.connections) if (all || (c.routeKey !== null && !keys.has(c.routeKey))) doomed.push(c);
    if (doomed.length === 0) return;
    const timer = setTimeout(() => {
      this.#drainTimers.delete(timer);
      for (const c of doomed) c.close('drained');
    }, grace);
    timer.unref();
    this.#drainTimers.add(timer);
  }
}

function key(host: string, port: number): string {
  return `${host}|${port}`;
}

function watch(backends: readonly Backend[], watched: Map<string, WatchedEndpoint>): void {
  for (const b of backends) {
    for (const e of b.endpoints) {
      const k = endpointKey(e);
      if (!watched.has(k)) watched.set(k, { endpoint: e, check: b.policy.healthCheck });
    }
  }
}

function compileState(
  bind: Bind,
  health: HealthRegistry,
  random: () => number,
  watched: Map<string, WatchedEndpoint>,
  active: { n: number },
): CompiledState {
  const balancers = new Map<BackendSet, Balancer>();
  for (const listener of bind.listeners) {
    for (const route of listener.routes) {
      if (balancers.has(route.backends)) continue;
      balancers.set(route.backends, new Balancer(route.backends, health, random));
      watch(route.backends.backends, watched);
    }
    // Terminated HTTP backends are checked too (TCP, or HTTP with a BackendTrafficPolicy type: HTTP).
    for (const vhost of listener.http ?? []) for (const rule of vhost.rules) watch(rule.backends, watched);
  }
  return { compiled: compileBind(bind), balancers, active };
}
