/**
 * Leader election over a coordination.k8s.io/v1 Lease, as client-go does it: every `retryMs` try to
 * acquire (or, as leader, renew) with an optimistic-concurrency update; a lease is free when its holder is
 * empty or it was not renewed for `leaseDurationMs` of our own clock (no trust in other clocks); a leader
 * that cannot renew for `renewDeadlineMs` steps down. `stop()` releases the lease so another replica
 * takes over at once. Only the status writer cares: every replica serves traffic.
 */
import { HttpMethod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { KubeApiError, type KubeClient, resourcePath } from './kube-source.ts';

type Obj = Record<string, unknown>;

const LEASES = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases' };

export interface LeaderElectorOptions {
  client: KubeClient;
  logger: Logger;
  namespace: string;
  name: string;
  /** This replica's identity (pod name); must be unique among replicas. */
  identity: string;
  /** How long a lease holds without renewal (default 15 s). */
  leaseDurationMs?: number;
  /** A leader that has not renewed for this long steps down (default 10 s). */
  renewDeadlineMs?: number;
  /** Time between attempts to acquire or renew (default 2 s). */
  retryMs?: number;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
}

export class LeaderElector {
  readonly #o: LeaderElectorOptions;
  #leader = false;
  #stopped = true;
  #timer: NodeJS.Timeout | null = null;
  #loop: Promise<void> | null = null;
  #lastRenew = 0;
  /** The lease as we last saw it and when (our clock): the basis of "expired". */
  #observed: { key: string; at: number } | null = null;

  constructor(o: LeaderElectorOptions) {
    this.#o = o;
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  get #durationMs(): number {
    return this.#o.leaseDurationMs ?? 15_000;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#loop = this.#tick();
  }

  /** Stops trying and, if leading, releases the lease (holder emptied, duration 1 s). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#loop;
    if (!this.#leader) return;
    this.#setLeader(false);
    try {
      const path = resourcePath(LEASES, this.#o.namespace, this.#o.name);
      const lease = await this.#o.client.get(path);
      const spec = (lease.spec ?? {}) as Obj;
      if (spec.holderIdentity !== this.#o.identity) return;
      await this.#o.client.request(HttpMethod.PUT, path, {
        body: {
          ...lease,
          spec: { ...spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date()) },
        },
      });
      this.#o.logger.info({ lease: `${this.#o.namespace}/${this.#o.name}` }, 'leader lease released');
    } catch (e) {
      this.#o.logger.warn(
        { err: (e as Error).message },
        'could not release the leader lease; another replica takes over when it expires',
      );
    }
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    let ok = false;
    try {
      ok = await this.#tryAcquireOrRenew();
    } catch (e) {
      this.#o.logger.debug({ err: (e as Error).message }, 'leader election attempt failed');
    }
    if (this.#stopped) {
      if (ok) this.#leader = true; // acquired while stopping: stop() releases it
      return;
    }
    if (ok) {
      this.#lastRenew = Date.now();
      this.#setLeader(true);
    } else if (this.#leader && Date.now() - this.#lastRenew > (this.#o.renewDeadlineMs ?? 10_000)) {
      this.#o.logger.warn('could not renew the leader lease in time: stepping down');
      this.#setLeader(false);
    }
    this.#timer = setTimeout(() => {
      this.#loop = this.#tick();
    }, this.#o.retryMs ?? 2000);
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { client, namespace, name, identity } = this.#o;
    const now = new Date();
    const durationS = Math.max(1, Math.round(this.#durationMs / 1000));
    let lease: Obj;
    try {
      lease = await client.get(resourcePath(LEASES, namespace, name));
    } catch (e) {
      if (!(e instanceof KubeApiError) || e.status !== 404) throw e;
      await client.request(HttpMethod.POST, resourcePath(LEASES, namespace), {
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: durationS,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: 0,
          },
        },
      });
      return true;
    }
    const spec = (lease.spec ?? {}) as Obj;
    const holder = typeof spec.holderIdentity === 'string' ? spec.holderIdentity : '';
    const key = JSON.stringify([holder, spec.renewTime, spec.leaseDurationSeconds]);
    if (this.#observed?.key !== key) this.#observed = { key, at: Date.now() };
    const heldMs = Number(spec.leaseDurationSeconds ?? durationS) * 1000;
    const expired = this.#observed.at + heldMs < Date.now();
    if (holder !== '' && holder !== identity && !expired) return false;
    const mine = holder === identity;
    await client.request(HttpMethod.PUT, resourcePath(LEASES, namespace, name), {
      body: {
        ...lease,
        spec: {
          ...spec,
          holderIdentity: identity,
          leaseDurationSeconds: durationS,
          renewTime: microTime(now),
          acquireTime: mine ? spec.acquireTime : microTime(now),
          leaseTransitions: mine ? spec.leaseTransitions : Number(spec.leaseTransitions ?? 0) + 1,
        },
      },
    });
    return true;
  }

  #setLeader(v: boolean): void {
    if (this.#leader === v) return;
    this.#leader = v;
    this.#o.logger.info(
      { identity: this.#o.identity, lease: `${this.#o.namespace}/${this.#o.name}` },
      v ? 'became leader: writing status' : 'no longer leader',
    );
    if (v) this.#o.onStartedLeading?.();
    else this.#o.onStoppedLeading?.();
  }
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
