/** RequestMirror: fire-and-forget copies of requests; a mirror's response is read and dropped, never seen by the client. */
import type { PassThrough } from 'node:stream';
import type { Logger } from 'pino';
import type { Backend } from '../table/types.ts';
import { Balancer } from './balancer.ts';
import type { HealthView } from './health.ts';
import type { RequestPlan } from './http-filters.ts';
import { toUndiciHeaders } from './http-headers.ts';
import type { UpstreamPools } from './http-upstream.ts';

/** A mirror gets this long for its whole exchange. */
const MIRROR_TIMEOUT_MS = 30_000;

export interface MirrorDeps {
  readonly logger: Logger;
  readonly health: HealthView;
  readonly random: () => number;
  readonly pools: UpstreamPools;
}

export class Mirrors {
  readonly #deps: MirrorDeps;
  readonly #balancers = new WeakMap<Backend, Balancer>();

  constructor(deps: MirrorDeps) {
    this.#deps = deps;
  }

  /** Sends the planned request (and `body`, a tee of the client's) to the mirror backend, `percent` of the time. */
  fire(
    requestId: string,
    method: string,
    plan: RequestPlan,
    m: RequestPlan['mirrors'][number],
    body: PassThrough | undefined,
  ): void {
    const d = this.#deps;
    if (m.percent < 100 && d.random() * 100 >= m.percent) {
      body?.destroy();
      return;
    }
    let balancer = this.#balancers.get(m.backend);
    if (balancer === undefined) {
      balancer = new Balancer({ backends: [m.backend] }, d.health, d.random);
      this.#balancers.set(m.backend, balancer);
    }
    const pick = balancer.pick();
    if (pick.reject !== undefined) {
      body?.destroy();
      return;
    }
    const lease = d.pools.acquire({ protocol: 'http', policy: m.backend.policy }, pick.endpoint, pick.key);
    lease.pool
      .request({
        method,
        path: plan.path + plan.search,
        headers: toUndiciHeaders(plan.headers, plan.authority),
        body: body ?? null,
        signal: AbortSignal.timeout(MIRROR_TIMEOUT_MS),
      })
      .then(
        (up) => {
          up.body.on('error', () => {});
          up.body.once('close', () => lease.release());
          up.body.resume();
        },
        (err: Error) => {
          lease.release();
          d.logger.debug({ requestId, backend: m.backend.id, err: err.message }, 'mirror failed');
        },
      );
  }
}
