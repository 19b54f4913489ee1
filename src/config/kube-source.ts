/**
 * The Kubernetes source: list + watch every kind in Resources (one reflector per kind and namespace), kept
 * in memory; `snapshot()` waits for the first full sync. Also the small API client the status writer and
 * leader election share (auth and TLS from the kubeconfig, JSON in and out).
 */
import { HttpMethod, type KubeConfig, RequestContext, Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { fetch } from 'undici';
import type { Diagnostic } from '../api/diagnostics.ts';
import { type ParsedObject, toResources } from '../api/parse.ts';
import {
  CLUSTER_SCOPED,
  GATEWAY_GROUP,
  POLICY_GROUP,
  type Resource,
  type ResourceKind,
} from '../api/types.ts';
import { validateRaw } from '../api/validate.ts';
import type { Source, SourceSnapshot } from './source.ts';

type Obj = Record<string, unknown>;

// ---- API client ---------------------------------------------------------------------------------

export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.name = 'KubeApiError';
    this.status = status;
    this.reason = reason;
  }
}

export interface RequestOptions {
  query?: Record<string, string | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
}

/** JSON requests to the API server with the kubeconfig's credentials; non-2xx answers throw KubeApiError. */
export class KubeClient {
  readonly kc: KubeConfig;
  readonly #watch: Watch;

  constructor(kc: KubeConfig) {
    this.kc = kc;
    this.#watch = new Watch(kc);
  }

  async request(method: HttpMethod, path: string, o: RequestOptions = {}): Promise<Obj> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    const url = new URL(cluster.server.replace(/\/$/, '') + path);
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const ctx = new RequestContext(url.toString(), method);
    await this.kc.applySecurityAuthentication(ctx);
    const headers: Record<string, string> = { ...ctx.getHeaders(), accept: 'application/json' };
    if (o.body !== undefined) headers['content-type'] = o.contentType ?? 'application/json';
    const res = await fetch(url, {
      method,
      headers,
      dispatcher: ctx.getDispatcher(),
      signal: o.signal
        ? AbortSignal.any([o.signal, AbortSignal.timeout(30_000)])
        : AbortSignal.timeout(30_000),
      ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
    });
    const text = await res.text();
    let body: Obj = {};
    try {
      body = text ? (JSON.parse(text) as Obj) : {};
    } catch {
      body = { message: text.slice(0, 200) };
    }
    if (res.status < 200 || res.status > 299) {
      throw new KubeApiError(
        res.status,
        String(body.reason ?? res.statusText),
        `${method} ${path}: ${res.status} ${String(body.message ?? res.statusText)}`,
      );
    }
    return body;
  }

  get(path: string, query?: Record<string, string | undefined>, signal?: AbortSignal): Promise<Obj> {
    return this.request(HttpMethod.GET, path, { ...(query ? { query } : {}), ...(signal ? { signal } : {}) });
  }

  /** Streams watch events until the server or `signal` ends the watch; rejects with the HTTP status if refused. */
  watch(
    path: string,
    query: Record<string, string | undefined>,
    onEvent: (type: string, obj: Obj) => void,
    signal: AbortSignal,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (err: unknown): void => {
        signal.removeEventListener('abort', abort);
        const e = err as { statusCode?: number; name?: string; message?: string } | null | undefined;
        // Closed by the server, by us, or idle for 30 s: all mean "watch again from the last resourceVersion".
        if (!e || signal.aborted || e.name === 'TimeoutError' || e.name === 'AbortError') resolve();
        else if (e.statusCode)
          reject(new KubeApiError(e.statusCode, '', `watch ${path}: ${e.statusCode} ${e.message}`));
        else reject(err);
      };
      let controller: AbortController | undefined;
      const abort = (): void => controller?.abort();
      signal.addEventListener('abort', abort);
      this.#watch
        .watch(path, query, (type, obj) => onEvent(type, obj as Obj), done)
        .then((c) => {
          controller = c;
          if (signal.aborted) c.abort();
        }, done);
    });
  }
}

// ---- what we watch -------------------------------------------------------------------------------

export interface KindSpec {
  kind: ResourceKind;
  group: string;
  version: string;
  plural: string;
}

/** Every kind in Resources, at the version we read it (the served storage versions of the v1.6 CRDs). */
export const KINDS: readonly KindSpec[] = [
  { kind: 'GatewayClass', group: GATEWAY_GROUP, version: 'v1', plural: 'gatewayclasses' },
  { kind: 'Gateway', group: GATEWAY_GROUP, version: 'v1', plural: 'gateways' },
  { kind: 'HTTPRoute', group: GATEWAY_GROUP, version: 'v1', plural: 'httproutes' },
  { kind: 'TLSRoute', group: GATEWAY_GROUP, version: 'v1', plural: 'tlsroutes' },
  { kind: 'TCPRoute', group: GATEWAY_GROUP, version: 'v1', plural: 'tcproutes' },
  { kind: 'ReferenceGrant', group: GATEWAY_GROUP, version: 'v1', plural: 'referencegrants' },
  { kind: 'Service', group: '', version: 'v1', plural: 'services' },
  { kind: 'Secret', group: '', version: 'v1', plural: 'secrets' },
  { kind: 'ConfigMap', group: '', version: 'v1', plural: 'configmaps' },
  { kind: 'Namespace', group: '', version: 'v1', plural: 'namespaces' },
  { kind: 'EndpointSlice', group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices' },
  { kind: 'Ingress', group: 'networking.k8s.io', version: 'v1', plural: 'ingresses' },
  { kind: 'IngressClass', group: 'networking.k8s.io', version: 'v1', plural: 'ingressclasses' },
  { kind: 'ServiceImport', group: 'multicluster.x-k8s.io', version: 'v1alpha1', plural: 'serviceimports' },
  {
    kind: 'BackendTrafficPolicy',
    group: POLICY_GROUP,
    version: 'v1alpha1',
    plural: 'backendtrafficpolicies',
  },
  { kind: 'ClientTrafficPolicy', group: POLICY_GROUP, version: 'v1alpha1', plural: 'clienttrafficpolicies' },
  { kind: 'SecurityPolicy', group: POLICY_GROUP, version: 'v1alpha1', plural: 'securitypolicies' },
];

/** Custom resources switched off by `enableCustomResources: false`: the Gateway API kinds and snigate's policies. */
const CUSTOM_GROUPS: ReadonlySet<string> = new Set([GATEWAY_GROUP, POLICY_GROUP]);

export function apiVersionOf(k: { group: string; version: string }): string {
  return k.group ? `${k.group}/${k.version}` : k.version;
}

/** The REST path of a kind's collection (or of one object, with `name`). */
export function resourcePath(
  k: { group: string; version: string; plural: string },
  namespace?: string,
  name?: string,
): string {
  const base = k.group ? `/apis/${k.group}/${k.version}` : `/api/${k.version}`;
  return `${base}${namespace ? `/namespaces/${encodeURIComponent(namespace)}` : ''}/${k.plural}${name ? `/${encodeURIComponent(name)}` : ''}`;
}

/** Kinds whose status snigate writes: their status changes (our own writes) do not trigger a reload. */
const OWN_STATUS: ReadonlySet<string> = new Set([
  'GatewayClass',
  'Gateway',
  'HTTPRoute',
  'TLSRoute',
  'TCPRoute',
  'Ingress',
]);

// ---- the source -----------------------------------------------------------------------------------

export interface KubeSourceOptions {
  client: KubeClient;
  logger: Logger;
  /** Watch only these namespaces (cluster-scoped kinds are always watched cluster-wide). Empty: all. */
  namespaces?: string[];
  /** false: do not watch the Gateway API kinds nor snigate's policy kinds (Ingress only). Default true. */
  enableCustomResources?: boolean;
  /** Watch every Secret, not just `type: kubernetes.io/tls` ones. Default false. */
  allSecrets?: boolean;
  /** Quiet time before onChange fires (default 200 ms); it fires at the latest 5× this after the first event. */
  debounceMs?: number;
  /** How often a kind whose CRD is missing is listed again (default 60 s). */
  missingRetryMs?: number;
  /** Reconnect backoff after errors: initial and maximum (default 500 ms, 30 s). */
  backoffMs?: { initial: number; max: number };
}

export class KubeSource implements Source {
  readonly name = 'kubernetes';
  readonly #o: KubeSourceOptions;
  readonly #reflectors: Reflector[] = [];
  #running = false;
  #stopped = false;
  #onChange: ((reason: string) => void) | null = null;
  #pending: string[] = [];
  #quiet: NodeJS.Timeout | null = null;
  #deadline: NodeJS.Timeout | null = null;

  constructor(o: KubeSourceOptions) {
    this.#o = o;
    const custom = o.enableCustomResources !== false;
    const namespaces = o.namespaces?.length ? [...new Set(o.namespaces)] : [undefined];
    for (const spec of KINDS) {
      if (!custom && CUSTOM_GROUPS.has(spec.group)) continue;
      const scopes = CLUSTER_SCOPED.has(spec.kind) ? [undefined] : namespaces;
      for (const ns of scopes) this.#reflectors.push(new Reflector(this, spec, ns));
    }
  }

  get options(): KubeSourceOptions {
    return this.#o;
  }

  /** The kinds (and namespaces) watched, e.g. for logs: `TLSRoute@all`, `Service@team-a`. */
  get watched(): string[] {
    return this.#reflectors.map((r) => `${r.spec.kind}@${r.namespace ?? 'all'}`);
  }

  /** Current resourceVersion per watched collection (tests and /status). */
  get resourceVersions(): Record<string, string> {
    return Object.fromEntries(this.#reflectors.map((r) => [`${r.spec.kind}@${r.namespace ?? 'all'}`, r.rv]));
  }

  async snapshot(): Promise<SourceSnapshot> {
    this.#run();
    await Promise.all(this.#reflectors.map((r) => r.firstSync));
    if (this.#stopped) throw new Error('the Kubernetes source was stopped');
    const diagnostics: Diagnostic[] = [];
    const objects: ParsedObject[] = [];
    for (const r of this.#reflectors) {
      for (const raw of r.store.values()) {
        const o = structuredClone(raw);
        const meta = o.metadata as Obj;
        if (meta.generation === undefined) meta.generation = 1;
        const diags = validateRaw(o);
        // The API server accepted the object; where our checks are stricter, skip it rather than refuse everything.
        const errors = diags.some((d) => d.severity === 'error');
        for (const d of diags) {
          diagnostics.push(
            d.severity === 'error'
              ? { ...d, severity: 'warning', message: `ignored: ${d.message}`, file: 'kubernetes' }
              : { ...d, file: 'kubernetes' },
          );
        }
        if (!errors)
          objects.push({ object: o as unknown as Resource, file: 'kubernetes', line: 0, docIndex: 0 });
      }
    }
    const built = toResources(objects);
    return {
      resources: built.resources,
      diagnostics: [...diagnostics, ...built.diagnostics],
      objectCount: objects.length,
    };
  }

  start(onChange: (reason: string) => void): void {
    this.#onChange = onChange;
    this.#run();
  }

  stop(): void {
    this.#onChange = null;
    for (const t of [this.#quiet, this.#deadline]) if (t) clearTimeout(t);
    this.#quiet = this.#deadline = null;
    for (const r of this.#reflectors) r.stop();
    this.#stopped = true;
  }

  #run(): void {
    if (this.#running || this.#stopped) return;
    this.#running = true;
    for (const r of this.#reflectors) r.start();
  }

  /** Called by reflectors after their first sync whenever the snapshot would differ. */
  changed(reason: string): void {
    if (!this.#onChange) return;
    this.#pending.push(reason);
    const ms = this.#o.debounceMs ?? 200;
    if (this.#quiet) clearTimeout(this.#quiet);
    this.#quiet = setTimeout(() => this.#fire(), ms);
    this.#deadline ??= setTimeout(() => this.#fire(), ms * 5);
  }

  #fire(): void {
    for (const t of [this.#quiet, this.#deadline]) if (t) clearTimeout(t);
    this.#quiet = this.#deadline = null;
    const reasons = this.#pending;
    this.#pending = [];
    if (reasons.length === 0 || !this.#onChange) return;
    const more = reasons.length > 1 ? ` (+${reasons.length - 1} more)` : '';
    this.#onChange(`kubernetes: ${reasons[0]}${more}`);
  }
}

// ---- one collection: list, then watch from its resourceVersion ----------------------------------------

class Reflector {
  readonly spec: KindSpec;
  readonly namespace: string | undefined;
  readonly store = new Map<string, Obj>();
  readonly firstSync: Promise<void>;
  rv = '';
  #src: KubeSource;
  #synced = false;
  #missing = false;
  #stopped = false;
  #abort = new AbortController();
  #resolveSync!: () => void;
  #sleepTimer: NodeJS.Timeout | null = null;
  #wake: (() => void) | null = null;

  constructor(src: KubeSource, spec: KindSpec, namespace: string | undefined) {
    this.#src = src;
    this.spec = spec;
    this.namespace = namespace;
    this.firstSync = new Promise<void>((r) => {
      this.#resolveSync = r;
    });
  }

  get #log(): Logger {
    return this.#src.options.logger;
  }

  get #where(): string {
    return `${this.spec.kind}${this.namespace ? ` in ${this.namespace}` : ''}`;
  }

  get #fieldSelector(): string | undefined {
    return this.spec.kind === 'Secret' && !this.#src.options.allSecrets
      ? 'type=kubernetes.io/tls'
      : undefined;
  }

  start(): void {
    void this.#loop();
  }

  stop(): void {
    this.#stopped = true;
    this.#resolveSync(); // a snapshot() waiting for the first sync ends (and reports the stop)
    this.#abort.abort();
    if (this.#sleepTimer) clearTimeout(this.#sleepTimer);
    this.#wake?.();
  }

  async #loop(): Promise<void> {
    const { initial, max } = this.#src.options.backoffMs ?? { initial: 500, max: 30_000 };
    let failures = 0;
    while (!this.#stopped) {
      try {
        if (!this.rv) await this.#list();
        if (this.#stopped) return;
        const started = Date.now();
        const outcome = await this.#watchOnce();
        if (outcome === 'gone') {
          this.#log.info(
            { kind: this.spec.kind, namespace: this.namespace },
            'watch expired (410 Gone): listing again',
          );
          this.rv = '';
          continue;
        }
        // A watch that ends at once without events is a failure in disguise: back off.
        if (outcome === 'quiet' && Date.now() - started < 1000) failures++;
        else failures = 0;
        if (failures > 0) await this.#sleep(backoff(failures, initial, max));
      } catch (e) {
        if (this.#stopped) return;
        const status = e instanceof KubeApiError ? e.status : 0;
        if (status === 410) {
          this.rv = '';
          continue;
        }
        if (status === 404) {
          this.#markMissing();
          await this.#sleep(this.#src.options.missingRetryMs ?? 60_000);
          this.rv = '';
          continue;
        }
        failures++;
        const delay = backoff(failures, initial, max);
        this.#log.warn(
          { kind: this.spec.kind, namespace: this.namespace, err: (e as Error).message, retryInMs: delay },
          status === 403
            ? `not allowed to list/watch ${this.#where}: check the RBAC rules (ClusterRole) of snigate's ServiceAccount`
            : `list/watch of ${this.#where} failed; retrying`,
        );
        await this.#sleep(delay);
      }
    }
  }

  async #list(): Promise<void> {
    const items = new Map<string, Obj>();
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.#src.options.client.get(
        resourcePath(this.spec, this.namespace),
        { limit: '500', continue: cont, fieldSelector: this.#fieldSelector },
        this.#abort.signal,
      );
      for (const raw of (page.items as Obj[] | undefined) ?? []) {
        const o = normalize(this.spec, raw);
        items.set(keyOf(o), o);
      }
      const meta = (page.metadata ?? {}) as Obj;
      rv = String(meta.resourceVersion ?? '');
      cont = (meta.continue as string | undefined) || undefined;
    } while (cont);
    if (this.#missing) {
      this.#missing = false;
      this.#log.info({ kind: this.spec.kind }, `${this.spec.kind} is served now: watching it`);
    }
    const differs =
      items.size !== this.store.size ||
      [...items].some(([k, o]) => !sameContent(this.spec.kind, this.store.get(k), o));
    this.store.clear();
    for (const [k, o] of items) this.store.set(k, o);
    this.rv = rv;
    this.#setSynced(differs ? `listed ${this.#where}` : undefined);
  }

  /** Resolves 'gone' on 410, 'events' if anything arrived, 'quiet' otherwise; rejects on HTTP errors. */
  async #watchOnce(): Promise<'gone' | 'events' | 'quiet'> {
    let outcome: 'gone' | 'events' | 'quiet' = 'quiet';
    let error: Error | undefined;
    const local = new AbortController();
    const onStop = (): void => local.abort();
    this.#abort.signal.addEventListener('abort', onStop);
    try {
      await this.#src.options.client.watch(
        resourcePath(this.spec, this.namespace),
        {
          resourceVersion: this.rv,
          allowWatchBookmarks: 'true',
          fieldSelector: this.#fieldSelector,
          timeoutSeconds: String(240 + Math.floor(Math.random() * 120)),
        },
        (type, obj) => {
          if (local.signal.aborted) return;
          if (type === 'ERROR') {
            const code = Number(obj.code ?? 0);
            if (code === 410) outcome = 'gone';
            else
              error = new KubeApiError(
                code,
                String(obj.reason ?? ''),
                `watch ${this.#where}: ${String(obj.message)}`,
              );
            local.abort();
            return;
          }
          const meta = (obj.metadata ?? {}) as Obj;
          if (meta.resourceVersion) this.rv = String(meta.resourceVersion);
          if (outcome === 'quiet') outcome = 'events';
          if (type === 'BOOKMARK') return;
          this.#apply(type, normalize(this.spec, obj));
        },
        local.signal,
      );
    } finally {
      this.#abort.signal.removeEventListener('abort', onStop);
    }
    if (error) throw error;
    return outcome;
  }

  #apply(type: string, o: Obj): void {
    const key = keyOf(o);
    const prev = this.store.get(key);
    if (type === 'DELETED') {
      if (!prev) return;
      this.store.delete(key);
      this.#src.changed(`DELETED ${this.spec.kind} ${key}`);
      return;
    }
    if (type !== 'ADDED' && type !== 'MODIFIED') return;
    this.store.set(key, o);
    if (!sameContent(this.spec.kind, prev, o)) this.#src.changed(`${type} ${this.spec.kind} ${key}`);
  }

  #markMissing(): void {
    if (!this.#missing) {
      this.#missing = true;
      this.#log.warn(
        { kind: this.spec.kind, apiVersion: apiVersionOf(this.spec) },
        `${this.spec.kind} (${apiVersionOf(this.spec)}) is not served by this cluster (CRD not installed?): skipped; checking again every ${Math.round((this.#src.options.missingRetryMs ?? 60_000) / 1000)} s`,
      );
    }
    const had = this.store.size > 0;
    this.store.clear();
    this.#setSynced(had ? `${this.spec.kind} no longer served` : undefined);
  }

  #setSynced(change: string | undefined): void {
    if (!this.#synced) {
      this.#synced = true;
      this.#resolveSync();
      return;
    }
    if (change) this.#src.changed(change);
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise<void>((r) => {
      this.#wake = r;
      this.#sleepTimer = setTimeout(r, ms);
    });
  }
}

function backoff(failures: number, initial: number, max: number): number {
  const base = Math.min(max, initial * 2 ** Math.min(failures - 1, 20));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/** List items of built-in kinds come without apiVersion/kind; server bookkeeping we never read is dropped. */
export function normalize(spec: KindSpec, raw: Obj): Obj {
  const o: Obj = { ...raw, apiVersion: apiVersionOf(spec), kind: spec.kind };
  const meta: Obj = { ...((raw.metadata as Obj | undefined) ?? {}) };
  delete meta.managedFields;
  const ann = meta.annotations as Record<string, string> | undefined;
  if (ann && 'kubectl.kubernetes.io/last-applied-configuration' in ann) {
    const { 'kubectl.kubernetes.io/last-applied-configuration': _drop, ...rest } = ann;
    meta.annotations = rest;
  }
  o.metadata = meta;
  return o;
}

function keyOf(o: Obj): string {
  const meta = o.metadata as Obj;
  return meta.namespace ? `${String(meta.namespace)}/${String(meta.name)}` : String(meta.name);
}

/** Equal for the translator: resourceVersion and (for kinds whose status we write) status do not count. */
function sameContent(kind: string, a: Obj | undefined, b: Obj): boolean {
  if (!a) return false;
  const strip = (o: Obj): Obj => {
    const { resourceVersion: _rv, ...meta } = o.metadata as Obj;
    const out: Obj = { ...o, metadata: meta };
    if (OWN_STATUS.has(kind)) delete out.status;
    return out;
  };
  return JSON.stringify(strip(a)) === JSON.stringify(strip(b));
}
