/**
 * Test helper: an in-process Kubernetes API server (node:http on 127.0.0.1) that speaks enough of the
 * protocol for the Kubernetes source, the status writer and leader election: list, watch (JSON lines with
 * ADDED/MODIFIED/DELETED/BOOKMARK and ERROR 410), get, create, update, delete, and the status subresource
 * (merge-patch and PUT) with resourceVersion conflicts. Every request is recorded for assertions.
 */
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

type Obj = Record<string, unknown>;

export interface FakeResource {
  group: string;
  /** Served versions; objects are served at the requested one (same schema, as the Gateway API CRDs do). */
  versions: string[];
  plural: string;
  kind: string;
  namespaced: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType?: string;
  body?: unknown;
}

interface Stored {
  res: FakeResource;
  obj: Obj;
}

interface Watcher {
  res: FakeResource;
  namespace?: string;
  fieldSelector?: string;
  bookmarks: boolean;
  version: string;
  out: ServerResponse;
}

const GW = 'gateway.networking.k8s.io';

/** What a cluster with the Gateway API v1.6 experimental CRDs and the MCS ServiceImport CRD serves. */
export const DEFAULT_RESOURCES: FakeResource[] = [
  {
    group: GW,
    versions: ['v1', 'v1beta1'],
    plural: 'gatewayclasses',
    kind: 'GatewayClass',
    namespaced: false,
  },
  { group: GW, versions: ['v1', 'v1beta1'], plural: 'gateways', kind: 'Gateway', namespaced: true },
  { group: GW, versions: ['v1', 'v1beta1'], plural: 'httproutes', kind: 'HTTPRoute', namespaced: true },
  {
    group: GW,
    versions: ['v1', 'v1alpha3', 'v1alpha2'],
    plural: 'tlsroutes',
    kind: 'TLSRoute',
    namespaced: true,
  },
  { group: GW, versions: ['v1', 'v1alpha2'], plural: 'tcproutes', kind: 'TCPRoute', namespaced: true },
  {
    group: GW,
    versions: ['v1', 'v1beta1'],
    plural: 'referencegrants',
    kind: 'ReferenceGrant',
    namespaced: true,
  },
  { group: '', versions: ['v1'], plural: 'services', kind: 'Service', namespaced: true },
  { group: '', versions: ['v1'], plural: 'secrets', kind: 'Secret', namespaced: true },
  { group: '', versions: ['v1'], plural: 'configmaps', kind: 'ConfigMap', namespaced: true },
  { group: '', versions: ['v1'], plural: 'namespaces', kind: 'Namespace', namespaced: false },
  {
    group: 'discovery.k8s.io',
    versions: ['v1'],
    plural: 'endpointslices',
    kind: 'EndpointSlice',
    namespaced: true,
  },
  { group: 'networking.k8s.io', versions: ['v1'], plural: 'ingresses', kind: 'Ingress', namespaced: true },
  {
    group: 'networking.k8s.io',
    versions: ['v1'],
    plural: 'ingressclasses',
    kind: 'IngressClass',
    namespaced: false,
  },
  {
    group: 'multicluster.x-k8s.io',
    versions: ['v1alpha1'],
    plural: 'serviceimports',
    kind: 'ServiceImport',
    namespaced: true,
  },
  { group: 'coordination.k8s.io', versions: ['v1'], plural: 'leases', kind: 'Lease', namespaced: true },
  {
    group: 'gateway.snigate.io',
    versions: ['v1alpha1'],
    plural: 'backendtrafficpolicies',
    kind: 'BackendTrafficPolicy',
    namespaced: true,
  },
  {
    group: 'gateway.snigate.io',
    versions: ['v1alpha1'],
    plural: 'clienttrafficpolicies',
    kind: 'ClientTrafficPolicy',
    namespaced: true,
  },
  {
    group: 'gateway.snigate.io',
    versions: ['v1alpha1'],
    plural: 'securitypolicies',
    kind: 'SecurityPolicy',
    namespaced: true,
  },
];

/** Kinds whose writes through the main resource ignore `status` and bump `generation` on spec changes. */
const HAS_STATUS = new Set([
  'Gateway',
  'GatewayClass',
  'HTTPRoute',
  'TLSRoute',
  'TCPRoute',
  'Ingress',
  'Service',
]);

export interface FakeKubeOptions {
  resources?: FakeResource[];
  /** creationTimestamp given to new objects (default: now). A fixed value keeps orderings deterministic. */
  creationTimestamp?: string;
}

export class FakeKubeServer {
  readonly requests: RecordedRequest[] = [];
  readonly #resources: FakeResource[];
  readonly #objects = new Map<string, Stored>();
  readonly #watchers = new Set<Watcher>();
  readonly #server: Server;
  readonly #created: string | undefined;
  #rv = 100;
  /** Watches starting before this resourceVersion get 410 Gone (etcd compaction). */
  #compactedRv = 0;
  #statusConflicts = 0;
  #uid = 0;
  url = '';

  private constructor(o: FakeKubeOptions) {
    this.#resources = [...(o.resources ?? DEFAULT_RESOURCES)];
    this.#created = o.creationTimestamp;
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  static async start(o: FakeKubeOptions = {}): Promise<FakeKubeServer> {
    const s = new FakeKubeServer(o);
    s.#server.listen(0, '127.0.0.1');
    await once(s.#server, 'listening');
    s.url = `http://127.0.0.1:${(s.#server.address() as AddressInfo).port}`;
    return s;
  }

  async close(): Promise<void> {
    for (const w of this.#watchers) w.out.end();
    this.#watchers.clear();
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }

  /** A kubeconfig for `KubeConfig.loadFromFile`, written to `dir`. */
  async writeKubeconfig(dir: string): Promise<string> {
    const file = join(dir, 'kubeconfig.json');
    const cfg = {
      apiVersion: 'v1',
      kind: 'Config',
      // client-node refuses plain http unless TLS verification is (explicitly) off.
      clusters: [{ name: 'fake', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'fake', user: { token: 'fake-token' } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake' } }],
      'current-context': 'fake',
    };
    await writeFile(file, JSON.stringify(cfg));
    return file;
  }

  get resourceVersion(): number {
    return this.#rv;
  }

  // ---- test controls -----------------------------------------------------------------------------

  /** Creates or replaces an object (as `kubectl apply` would), emitting ADDED or MODIFIED. */
  apply(input: Obj): Obj {
    const res = this.#resourceFor(input);
    const obj = structuredClone(input);
    const meta = (obj.metadata ?? {}) as Obj;
    obj.metadata = meta;
    if (res.namespaced && !meta.namespace) meta.namespace = 'default';
    if (!res.namespaced) delete meta.namespace;
    if (obj.kind === 'Secret' && obj.stringData) {
      const data = { ...((obj.data as Obj | undefined) ?? {}) };
      for (const [k, v] of Object.entries(obj.stringData as Obj))
        data[k] = Buffer.from(String(v)).toString('base64');
      obj.data = data;
      delete obj.stringData;
    }
    const key = this.#key(res, meta.namespace as string | undefined, meta.name as string);
    const prev = this.#objects.get(key);
    this.#store(res, obj, prev?.obj, 'test');
    return structuredClone(obj);
  }

  delete(kind: string, name: string, namespace?: string): void {
    const res = this.#resources.find((r) => r.kind === kind);
    if (!res) throw new Error(`unknown kind ${kind}`);
    const key = this.#key(res, res.namespaced ? (namespace ?? 'default') : undefined, name);
    const prev = this.#objects.get(key);
    if (!prev) return;
    this.#objects.delete(key);
    const obj = structuredClone(prev.obj);
    (obj.metadata as Obj).resourceVersion = String(++this.#rv);
    this.#emit(res, 'DELETED', obj);
  }

  get(kind: string, name: string, namespace?: string): Obj | undefined {
    const res = this.#resources.find((r) => r.kind === kind);
    if (!res) return undefined;
    const s = this.#objects.get(this.#key(res, res.namespaced ? (namespace ?? 'default') : undefined, name));
    return s ? structuredClone(s.obj) : undefined;
  }

  /** Removes a kind from discovery: lists and watches answer 404 as for a missing CRD. */
  removeResource(kind: string): FakeResource {
    const i = this.#resources.findIndex((r) => r.kind === kind);
    if (i < 0) throw new Error(`unknown kind ${kind}`);
    return this.#resources.splice(i, 1)[0]!;
  }

  addResource(r: FakeResource): void {
    this.#resources.push(r);
  }

  /** Sends a BOOKMARK at the current resourceVersion to every watch that asked for bookmarks. */
  bookmark(): void {
    const rv = String(++this.#rv);
    for (const w of this.#watchers) {
      if (!w.bookmarks) continue;
      const apiVersion = w.res.group ? `${w.res.group}/${w.version}` : w.version;
      this.#send(w, {
        type: 'BOOKMARK',
        object: { kind: w.res.kind, apiVersion, metadata: { resourceVersion: rv } },
      });
    }
  }

  /** Compacts history: open watches get ERROR 410 and end; watches from older versions get 410. */
  compact(): void {
    this.#compactedRv = this.#rv + 1;
    for (const w of this.#watchers) {
      this.#send(w, { type: 'ERROR', object: gone() });
      w.out.end();
    }
    this.#watchers.clear();
  }

  /** Ends every open watch without an error (the server's timeout), so clients re-watch. */
  closeWatches(): void {
    for (const w of this.#watchers) w.out.end();
    this.#watchers.clear();
  }

  /** The next `n` status writes answer 409 Conflict (another writer got there first). */
  injectStatusConflicts(n: number): void {
    this.#statusConflicts = n;
  }

  openWatches(): number {
    return this.#watchers.size;
  }

  // ---- HTTP --------------------------------------------------------------------------------------

  async #handle(req: IncomingMessage, out: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        return sendStatus(out, 400, 'BadRequest', 'body is not JSON');
      }
    }
    const query = Object.fromEntries(url.searchParams);
    this.requests.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      ...(req.headers['content-type'] ? { contentType: req.headers['content-type'] } : {}),
      ...(body !== undefined ? { body } : {}),
    });
    const route = this.#route(url.pathname);
    if (!route) return sendStatus(out, 404, 'NotFound', `the server could not find the requested resource`);
    const { res, version, namespace, name, sub } = route;
    const method = req.method ?? 'GET';
    if (!name) {
      if (method === 'GET') {
        if (query.watch === '1' || query.watch === 'true')
          return this.#watch(res, version, namespace, query, out);
        return this.#list(res, version, namespace, query, out);
      }
      if (method === 'POST') return this.#create(res, version, namespace, body as Obj, out);
      return sendStatus(out, 405, 'MethodNotAllowed', `${method} not allowed`);
    }
    const key = this.#key(res, namespace, name);
    const cur = this.#objects.get(key);
    if (method === 'GET') {
      if (!cur) return notFound(out, res, name);
      return sendJson(out, 200, this.#served(cur.obj, res, version));
    }
    if (method === 'DELETE') {
      if (!cur) return notFound(out, res, name);
      this.delete(res.kind, name, namespace);
      return sendJson(out, 200, this.#served(cur.obj, res, version));
    }
    if (!cur) return notFound(out, res, name);
    if (method !== 'PUT' && method !== 'PATCH') return sendStatus(out, 405, 'MethodNotAllowed', `${method}`);
    const input = (body ?? {}) as Obj;
    const inMeta = (input.metadata ?? {}) as Obj;
    const curRv = (cur.obj.metadata as Obj).resourceVersion;
    if (sub === 'status' && this.#statusConflicts > 0) {
      this.#statusConflicts--;
      return conflict(out, res, name);
    }
    if (inMeta.resourceVersion !== undefined && inMeta.resourceVersion !== curRv)
      return conflict(out, res, name);
    let next: Obj;
    if (method === 'PATCH') {
      const ct = req.headers['content-type'] ?? '';
      if (!ct.startsWith('application/merge-patch+json')) {
        return sendStatus(
          out,
          415,
          'UnsupportedMediaType',
          `the fake server takes merge patches only, not ${ct}`,
        );
      }
      const merged = mergePatch(structuredClone(cur.obj), input) as Obj;
      next = sub === 'status' ? { ...structuredClone(cur.obj), status: merged.status } : merged;
    } else if (sub === 'status') {
      next = { ...structuredClone(cur.obj), status: input.status };
    } else {
      next = structuredClone(input);
    }
    const nm = (next.metadata ?? {}) as Obj;
    next.metadata = nm;
    nm.name = name;
    if (namespace) nm.namespace = namespace;
    this.#store(res, next, cur.obj, sub === 'status' ? 'status' : 'api');
    return sendJson(out, 200, this.#served(next, res, version));
  }

  #create(
    res: FakeResource,
    version: string,
    namespace: string | undefined,
    body: Obj,
    out: ServerResponse,
  ): void {
    const meta = (body?.metadata ?? {}) as Obj;
    const name = meta.name as string | undefined;
    if (!name) {
      sendStatus(out, 422, 'Invalid', 'metadata.name: Required value');
      return;
    }
    if (namespace) meta.namespace = namespace;
    if (this.#objects.has(this.#key(res, namespace, name))) {
      sendStatus(out, 409, 'AlreadyExists', `${res.plural} "${name}" already exists`);
      return;
    }
    const obj = { ...structuredClone(body), apiVersion: apiVersionOf(res, version), kind: res.kind };
    this.#store(res, obj, undefined, 'api');
    sendJson(out, 201, this.#served(obj, res, version));
  }

  /** `api`: a write to the main resource (status ignored); `status`: the subresource; `test`: apply() (keeps a given status). */
  #store(res: FakeResource, obj: Obj, prev: Obj | undefined, mode: 'api' | 'status' | 'test'): void {
    const statusOnly = mode === 'status';
    const meta = obj.metadata as Obj;
    const pm = prev?.metadata as Obj | undefined;
    meta.resourceVersion = String(++this.#rv);
    meta.uid = pm?.uid ?? `uid-${++this.#uid}`;
    meta.creationTimestamp =
      pm?.creationTimestamp ?? this.#created ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    if (HAS_STATUS.has(res.kind)) {
      if (prev && mode === 'api') obj.status = prev.status; // the main resource ignores status
      if (prev && mode === 'test' && obj.status === undefined) obj.status = prev.status;
      const specChanged = !prev || JSON.stringify(specOf(prev)) !== JSON.stringify(specOf(obj));
      meta.generation = !prev
        ? 1
        : statusOnly || !specChanged
          ? pm?.generation
          : Number(pm?.generation ?? 1) + 1;
    } else if (meta.generation === undefined) {
      meta.generation = pm?.generation ?? 1;
    }
    this.#objects.set(this.#key(res, meta.namespace as string | undefined, meta.name as string), {
      res,
      obj,
    });
    this.#emit(res, prev ? 'MODIFIED' : 'ADDED', obj);
  }

  #list(
    res: FakeResource,
    version: string,
    ns: string | undefined,
    q: Record<string, string>,
    out: ServerResponse,
  ): void {
    const items = [...this.#objects.values()]
      .filter((s) => s.res === res && (!ns || (s.obj.metadata as Obj).namespace === ns))
      .filter((s) => matchesFields(s.obj, q.fieldSelector))
      .map((s) => {
        // Like the API server, list items of built-in kinds carry no apiVersion/kind.
        const o = this.#served(s.obj, res, version);
        if (!res.group.includes('.x-k8s.io') && res.group !== GW && res.group !== 'gateway.snigate.io') {
          delete o.apiVersion;
          delete o.kind;
        }
        return o;
      });
    sendJson(out, 200, {
      apiVersion: apiVersionOf(res, version),
      kind: `${res.kind}List`,
      metadata: { resourceVersion: String(this.#rv) },
      items,
    });
  }

  #watch(
    res: FakeResource,
    version: string,
    ns: string | undefined,
    q: Record<string, string>,
    out: ServerResponse,
  ): void {
    out.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    out.flushHeaders();
    const from = Number(q.resourceVersion ?? '0');
    const w: Watcher = {
      res,
      version,
      out,
      bookmarks: q.allowWatchBookmarks === 'true' || q.allowWatchBookmarks === '1',
      ...(ns ? { namespace: ns } : {}),
      ...(q.fieldSelector ? { fieldSelector: q.fieldSelector } : {}),
    };
    if (from > 0 && from < this.#compactedRv) {
      this.#send(w, { type: 'ERROR', object: gone() });
      out.end();
      return;
    }
    this.#watchers.add(w);
    out.on('close', () => this.#watchers.delete(w));
  }

  #emit(res: FakeResource, type: string, obj: Obj): void {
    const meta = obj.metadata as Obj;
    for (const w of this.#watchers) {
      if (w.res !== res) continue;
      if (w.namespace && w.namespace !== meta.namespace) continue;
      if (!matchesFields(obj, w.fieldSelector)) continue;
      this.#send(w, { type, object: this.#served(obj, res, w.version) });
    }
  }

  #send(w: Watcher, ev: unknown): void {
    if (!w.out.writableEnded) w.out.write(`${JSON.stringify(ev)}\n`);
  }

  #served(obj: Obj, res: FakeResource, version: string): Obj {
    return { ...structuredClone(obj), apiVersion: apiVersionOf(res, version), kind: res.kind };
  }

  #route(
    path: string,
  ): { res: FakeResource; version: string; namespace?: string; name?: string; sub?: string } | undefined {
    const parts = path.split('/').filter(Boolean);
    let group: string;
    let rest: string[];
    if (parts[0] === 'api') {
      group = '';
      rest = parts.slice(1);
    } else if (parts[0] === 'apis' && parts[1]) {
      group = parts[1];
      rest = parts.slice(2);
    } else return undefined;
    const version = rest[0];
    if (!version) return undefined;
    rest = rest.slice(1);
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const [plural, name, sub] = rest;
    const res = this.#resources.find(
      (r) => r.group === group && r.plural === plural && r.versions.includes(version),
    );
    if (!res || (namespace && !res.namespaced) || (sub !== undefined && sub !== 'status')) return undefined;
    if (res.namespaced && name && !namespace) return undefined;
    return {
      res,
      version,
      ...(namespace ? { namespace } : {}),
      ...(name ? { name } : {}),
      ...(sub ? { sub } : {}),
    };
  }

  #resourceFor(o: Obj): FakeResource {
    const [group, version] = String(o.apiVersion).includes('/')
      ? String(o.apiVersion).split('/')
      : ['', o.apiVersion];
    const res = this.#resources.find(
      (r) => r.group === group && r.kind === o.kind && r.versions.includes(String(version)),
    );
    if (!res) throw new Error(`the fake API server does not serve ${String(o.kind)} ${String(o.apiVersion)}`);
    return res;
  }

  #key(res: FakeResource, ns: string | undefined, name: string): string {
    return `${res.group}/${res.plural}/${ns ?? ''}/${name}`;
  }
}

function apiVersionOf(res: FakeResource, version: string): string {
  return res.group ? `${res.group}/${version}` : version;
}

function specOf(o: Obj): unknown {
  const { metadata: _m, status: _s, ...rest } = o;
  const meta = (o.metadata ?? {}) as Obj;
  return { rest, labels: meta.labels, annotations: meta.annotations };
}

/** `type=kubernetes.io/tls` and `metadata.name=x`, comma-separated (`=`, `==`, `!=`). */
function matchesFields(o: Obj, selector: string | undefined): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const m = /^([^!=]+)(!=|==|=)(.*)$/.exec(term.trim());
    if (!m) return true;
    let v: unknown = o;
    for (const p of m[1]!.split('.')) v = (v as Obj | undefined)?.[p];
    return m[2] === '!=' ? v !== m[3] : v === m[3];
  });
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Obj =
    target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Obj) } : {};
  for (const [k, v] of Object.entries(patch as Obj)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function gone(): Obj {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    status: 'Failure',
    message: 'too old resource version',
    reason: 'Expired',
    code: 410,
  };
}

function sendJson(out: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  out.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  out.end(text);
}

function sendStatus(out: ServerResponse, code: number, reason: string, message: string): void {
  sendJson(out, code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code });
}

function notFound(out: ServerResponse, res: FakeResource, name: string): void {
  sendStatus(out, 404, 'NotFound', `${res.plural}${res.group ? `.${res.group}` : ''} "${name}" not found`);
}

function conflict(out: ServerResponse, res: FakeResource, name: string): void {
  sendStatus(
    out,
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${res.plural} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
  );
}
