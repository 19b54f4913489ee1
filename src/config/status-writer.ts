/**
 * Writes the translator's statuses through the status subresource: read the live object, merge ours into
 * it (conditions keyed by type with lastTransitionTime kept unless the status flipped; route parents keyed
 * by parentRef + controllerName, other controllers' entries untouched), skip when nothing changes, and
 * merge-patch with the live resourceVersion, retrying on 409 Conflict. Rate-limited; only while leader.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { HttpMethod, KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Condition, Resources } from '../api/types.ts';
import { GATEWAY_GROUP } from '../api/types.ts';
import { ErrorCode, SnigateError } from '../errors.ts';
import type { ObjectStatus } from '../translate/index.ts';
import { KINDS, KubeApiError, KubeClient, KubeSource, resourcePath } from './kube-source.ts';
import { LeaderElector } from './leader.ts';

type Obj = Record<string, unknown>;

export interface StatusWriterOptions {
  client: KubeClient;
  logger: Logger;
  /** Our GatewayClass controllerName: route parent entries carrying it are ours. */
  controllerName: string;
  /** Only the leader writes; default: always. */
  isLeader?: () => boolean;
  /** `--publish-service`: Gateway and Ingress addresses come from this Service's `status.loadBalancer`. */
  publishService?: { namespace: string; name: string };
  /** Attempts per object on 409 Conflict (default 5). */
  maxAttempts?: number;
  /** Requests per second (token bucket; default 10/s with bursts of 20). */
  qps?: number;
  burst?: number;
  /** Forget what was written after this long, so an object whose status someone else changed is repaired (default 10 min). */
  resyncMs?: number;
  now?: () => Date;
}

export interface StatusWriteReport {
  written: number;
  unchanged: number;
  conflicts: number;
  failed: number;
  /** Not the leader, or the object's spec is newer than the snapshot (the next reload writes it). */
  skipped: number;
}

export interface StatusInput {
  statuses: ObjectStatus[];
  /** The snapshot the statuses came from (object uids: a re-created object is written again). */
  resources?: Resources;
}

const SPECS = new Map(KINDS.map((k) => [k.kind as string, k]));

export class StatusWriter {
  readonly #o: StatusWriterOptions;
  readonly #bucket: TokenBucket;
  /** object key → what we last wrote for it (desired input, not the merged result) and when. */
  readonly #written = new Map<string, { desired: string; at: number }>();
  #busy: Promise<unknown> = Promise.resolve();
  #next: { input: StatusInput; promise: Promise<StatusWriteReport> } | null = null;
  #last: StatusInput | null = null;

  constructor(o: StatusWriterOptions) {
    this.#o = o;
    this.#bucket = new TokenBucket(o.qps ?? 10, o.burst ?? 20);
  }

  /** Writes are serialised; while one runs, only the newest waiting input is kept. */
  write(input: StatusInput): Promise<StatusWriteReport> {
    this.#last = input;
    if (this.#next) {
      this.#next.input = input;
      return this.#next.promise;
    }
    const slot = { input, promise: Promise.resolve() as unknown as Promise<StatusWriteReport> };
    slot.promise = this.#busy.then(() => {
      this.#next = null;
      return this.#writeAll(slot.input);
    });
    this.#next = slot;
    this.#busy = slot.promise.catch(() => undefined);
    return slot.promise;
  }

  /** Forget what was written (a new leader re-checks everything) and write the last input again. */
  resync(): Promise<StatusWriteReport> | undefined {
    this.#written.clear();
    return this.#last ? this.write(this.#last) : undefined;
  }

  async #writeAll(input: StatusInput): Promise<StatusWriteReport> {
    const report: StatusWriteReport = { written: 0, unchanged: 0, conflicts: 0, failed: 0, skipped: 0 };
    if (!(this.#o.isLeader?.() ?? true)) {
      report.skipped = input.statuses.length;
      return report;
    }
    const all = input.statuses;
    const addresses = await this.#publishedAddresses();
    const uids = uidIndex(input.resources);
    const now = Date.now();
    const seen = new Set<string>();
    for (const s of all) {
      const desired = addresses ? withAddresses(s, addresses) : s;
      const key = `${s.kind}/${s.metadata.namespace ?? ''}/${s.metadata.name}`;
      seen.add(key);
      const fingerprint = canonical({
        uid: uids.get(key),
        g: desired.metadata.generation,
        s: desired.status,
      });
      const prev = this.#written.get(key);
      if (prev && prev.desired === fingerprint && now - prev.at < (this.#o.resyncMs ?? 600_000)) {
        report.unchanged++;
        continue;
      }
      const outcome = await this.#writeOne(desired, report);
      if (outcome === 'written' || outcome === 'unchanged')
        this.#written.set(key, { desired: fingerprint, at: now });
      report[outcome]++;
    }
    for (const k of this.#written.keys()) if (!seen.has(k)) this.#written.delete(k);
    if (report.written + report.failed > 0) this.#o.logger.info({ ...report }, 'status written');
    return report;
  }

  async #writeOne(
    s: ObjectStatus,
    report: StatusWriteReport,
  ): Promise<'written' | 'unchanged' | 'failed' | 'skipped'> {
    const spec = SPECS.get(s.kind);
    if (!spec) return 'skipped';
    const path = resourcePath(spec, s.metadata.namespace, s.metadata.name);
    const attempts = this.#o.maxAttempts ?? 5;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        await this.#bucket.take();
        const live = await this.#o.client.get(path);
        const meta = (live.metadata ?? {}) as Obj;
        if (Number(meta.generation ?? 0) > s.metadata.generation) return 'skipped';
        const liveStatus = (live.status ?? {}) as Obj;
        const merged = mergeStatus(s.kind, liveStatus, s.status, {
          now: isoSeconds(this.#o.now?.() ?? new Date()),
          controllerName: this.#o.controllerName,
          routeNamespace: s.metadata.namespace ?? 'default',
        });
        if (canonical(merged) === canonical(liveStatus)) return 'unchanged';
        await this.#bucket.take();
        await this.#o.client.request(HttpMethod.PATCH, `${path}/status`, {
          contentType: 'application/merge-patch+json',
          body: { metadata: { resourceVersion: meta.resourceVersion }, status: merged },
        });
        return 'written';
      } catch (e) {
        const status = e instanceof KubeApiError ? e.status : 0;
        if (status === 409 && attempt < attempts) {
          report.conflicts++;
          continue;
        }
        if (status === 404) return 'skipped'; // deleted since the snapshot
        this.#o.logger.warn(
          { kind: s.kind, namespace: s.metadata.namespace, name: s.metadata.name, err: (e as Error).message },
          'status write failed',
        );
        if (status === 409) report.conflicts++;
        return 'failed';
      }
    }
    return 'failed';
  }

  async #publishedAddresses(): Promise<{ type: string; value: string }[] | undefined> {
    const p = this.#o.publishService;
    if (!p) return undefined;
    try {
      await this.#bucket.take();
      const svc = await this.#o.client.get(resourcePath(SPECS.get('Service')!, p.namespace, p.name));
      const lb = ((svc.status as Obj | undefined)?.loadBalancer as Obj | undefined)?.ingress as
        | Obj[]
        | undefined;
      const out = (lb ?? []).flatMap((i) =>
        typeof i.ip === 'string'
          ? [toAddress(i.ip)]
          : typeof i.hostname === 'string'
            ? [toAddress(i.hostname)]
            : [],
      );
      return out.length > 0 ? out : undefined;
    } catch (e) {
      this.#o.logger.warn(
        { service: `${p.namespace}/${p.name}`, err: (e as Error).message },
        'cannot read the publish Service',
      );
      return undefined;
    }
  }
}

// ---- merging (pure) --------------------------------------------------------------------------------

export interface MergeContext {
  /** The time stamped on conditions that are new or whose status changed (RFC 3339, seconds). */
  now: string;
  controllerName: string;
  /** A route's namespace: the default of a parentRef's namespace. */
  routeNamespace: string;
}

/** Our status for one object merged into its live status. */
export function mergeStatus(kind: string, live: Obj, desired: Obj, ctx: MergeContext): Obj {
  const out: Obj = { ...live, ...desired };
  if (Array.isArray(desired.conditions)) {
    out.conditions = mergeConditions(
      live.conditions as Condition[] | undefined,
      desired.conditions as Condition[],
      ctx.now,
      true,
    );
  }
  if (Array.isArray(desired.listeners)) {
    const liveListeners = (Array.isArray(live.listeners) ? live.listeners : []) as Obj[];
    out.listeners = (desired.listeners as Obj[]).map((l) => {
      const old = liveListeners.find((x) => x.name === l.name);
      return {
        ...l,
        conditions: mergeConditions(
          old?.conditions as Condition[] | undefined,
          (l.conditions ?? []) as Condition[],
          ctx.now,
          false,
        ),
      };
    });
  }
  if (Array.isArray(desired.parents)) out.parents = mergeParents(live.parents, desired.parents as Obj[], ctx);
  if (kind === 'Ingress') out.loadBalancer = desired.loadBalancer;
  return out;
}

/**
 * Conditions keyed by type: lastTransitionTime is kept while the status stays the same. With `keepForeign`,
 * domain-prefixed types we do not set (another controller's `example.com/Foo`) are kept untouched.
 */
export function mergeConditions(
  live: Condition[] | undefined,
  desired: Condition[],
  now: string,
  keepForeign: boolean,
): Condition[] {
  const old = new Map((live ?? []).map((c) => [c.type, c]));
  const ours = desired.map((c) => {
    const prev = old.get(c.type);
    const lastTransitionTime =
      prev && prev.status === c.status && prev.lastTransitionTime ? prev.lastTransitionTime : now;
    return { ...c, lastTransitionTime };
  });
  if (!keepForeign) return ours;
  const types = new Set(desired.map((c) => c.type));
  const foreign = (live ?? []).filter((c) => c.type.includes('/') && !types.has(c.type));
  return [...ours, ...foreign];
}

function mergeParents(live: unknown, desired: Obj[], ctx: MergeContext): Obj[] {
  const liveParents = (Array.isArray(live) ? live : []) as Obj[];
  const others = liveParents.filter((p) => p.controllerName !== ctx.controllerName);
  const mine = new Map(
    liveParents.filter((p) => p.controllerName === ctx.controllerName).map((p) => [parentKey(p, ctx), p]),
  );
  const ours = desired.map((p) => {
    const prev = mine.get(parentKey(p, ctx));
    return {
      ...p,
      conditions: mergeConditions(
        prev?.conditions as Condition[] | undefined,
        (p.conditions ?? []) as Condition[],
        ctx.now,
        false,
      ),
    };
  });
  return [...others, ...ours];
}

function parentKey(p: Obj, ctx: MergeContext): string {
  const r = (p.parentRef ?? {}) as Obj;
  return [
    r.group ?? GATEWAY_GROUP,
    r.kind ?? 'Gateway',
    r.namespace ?? ctx.routeNamespace,
    r.name,
    r.sectionName ?? '',
    r.port ?? '',
  ].join('|');
}

// ---- addresses ---------------------------------------------------------------------------------------

function toAddress(v: string): { type: string; value: string } {
  return { type: isIP(v) ? 'IPAddress' : 'Hostname', value: v };
}

/** The published Service's addresses replace the translator's (the pod's) in Gateway and Ingress status. */
function withAddresses(s: ObjectStatus, addresses: { type: string; value: string }[]): ObjectStatus {
  if (s.kind === 'Gateway') return { ...s, status: { ...s.status, addresses } };
  if (s.kind !== 'Ingress') return s;
  const ingress = addresses.map((a) => (a.type === 'IPAddress' ? { ip: a.value } : { hostname: a.value }));
  return { ...s, status: { ...s.status, loadBalancer: { ingress } } };
}

function uidIndex(res: Resources | undefined): Map<string, string | undefined> {
  const m = new Map<string, string | undefined>();
  if (!res) return m;
  for (const list of Object.values(res) as {
    kind: string;
    metadata: { name: string; namespace?: string; uid?: string };
  }[][]) {
    for (const o of list) m.set(`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`, o.metadata.uid);
  }
  return m;
}

// ---- helpers ---------------------------------------------------------------------------------------

/** metav1.Time has second precision: stamp what the API server will store, so comparisons hold. */
export function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** JSON with sorted keys, for equality that ignores key order. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Obj).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  );
}

/** At most `burst` requests at once, refilled at `qps` per second. */
class TokenBucket {
  #tokens: number;
  #at = Date.now();
  readonly #qps: number;
  readonly #burst: number;
  constructor(qps: number, burst: number) {
    this.#qps = qps;
    this.#burst = burst;
    this.#tokens = burst;
  }
  async take(): Promise<void> {
    for (;;) {
      const now = Date.now();
      this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) / 1000) * this.#qps);
      this.#at = now;
      if (this.#tokens >= 1) {
        this.#tokens -= 1;
        return;
      }
      await new Promise((r) => setTimeout(r, Math.ceil(((1 - this.#tokens) / this.#qps) * 1000)));
    }
  }
}

// ---- Kubernetes mode: source + leader election + status writer, for `snigate run --kubernetes` ----------

export interface KubeRuntimeOptions {
  logger: Logger;
  /** `--kubeconfig`; default: in-cluster (the pod's ServiceAccount), else ~/.kube/config. */
  kubeconfig?: string;
  namespaces?: string[];
  enableCustomResources?: boolean;
  controllerName: string;
  /** `ns/name` of snigate's LoadBalancer Service. */
  publishService?: string;
  /** Lease location and identity; defaults from POD_NAMESPACE / POD_NAME (downward API) and the hostname. */
  leaseNamespace?: string;
  leaseName?: string;
  identity?: string;
}

export interface KubeRuntime {
  source: KubeSource;
  writer: StatusWriter;
  elector: LeaderElector;
  /** Hand the statuses of a programmed configuration to the writer (written while leader). Start `elector` once serving. */
  publish(input: StatusInput): void;
  stop(): Promise<void>;
}

export function createKubeRuntime(o: KubeRuntimeOptions): KubeRuntime {
  const kc = new KubeConfig();
  try {
    if (o.kubeconfig) kc.loadFromFile(o.kubeconfig);
    else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else kc.loadFromDefault();
  } catch (e) {
    throw new SnigateError(
      ErrorCode.InvalidArguments,
      `cannot load the kubeconfig ${o.kubeconfig ?? '(default)'}: ${(e as Error).message}`,
    );
  }
  if (!kc.getCurrentCluster()) {
    throw new SnigateError(
      ErrorCode.InvalidArguments,
      'no Kubernetes cluster configured: run in a pod, or pass --kubeconfig PATH',
    );
  }
  const client = new KubeClient(kc);
  const source = new KubeSource({
    client,
    logger: o.logger,
    ...(o.namespaces ? { namespaces: o.namespaces } : {}),
    enableCustomResources: o.enableCustomResources !== false,
  });
  let publish: { namespace: string; name: string } | undefined;
  if (o.publishService) {
    const [namespace, name] = o.publishService.split('/');
    if (!namespace || !name) {
      throw new SnigateError(
        ErrorCode.InvalidArguments,
        `--publish-service ${o.publishService}: write namespace/name`,
      );
    }
    publish = { namespace, name };
  }
  let elector: LeaderElector | undefined;
  const writer = new StatusWriter({
    client,
    logger: o.logger,
    controllerName: o.controllerName,
    isLeader: () => elector?.isLeader ?? false,
    ...(publish ? { publishService: publish } : {}),
  });
  elector = new LeaderElector({
    client,
    logger: o.logger,
    namespace: o.leaseNamespace ?? process.env.POD_NAMESPACE ?? serviceAccountNamespace() ?? 'default',
    name: o.leaseName ?? 'snigate-leader',
    identity: o.identity ?? process.env.POD_NAME ?? `${hostname()}_${randomBytes(4).toString('hex')}`,
    onStartedLeading: () => void writer.resync(),
  });
  return {
    source,
    writer,
    elector,
    publish: (input) => {
      writer
        .write(input)
        .catch((e: unknown) => o.logger.warn({ err: (e as Error).message }, 'status write failed'));
    },
    async stop() {
      source.stop();
      await elector.stop();
    },
  };
}

function serviceAccountNamespace(): string | undefined {
  try {
    return (
      readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || undefined
    );
  } catch {
    return undefined;
  }
}
