/** Text to objects: multi-document YAML/JSON, `kind: List`, namespace defaulting, legacy rewrites and validation, with file:line on every diagnostic. */

import { type Document, isMap, isSeq, LineCounter, type Node, parseAllDocuments } from 'yaml';
import type { Diagnostic, ObjectKey } from './diagnostics.ts';
import { mapLegacyPath, rewriteLegacyTLSRoute } from './legacy.ts';
import { CLUSTER_SCOPED, emptyResources, type Resource, type ResourceKind, type Resources } from './types.ts';
import { isKnownKind, objectKeyOf, validateRaw } from './validate.ts';
import { isObj, type Obj } from './validate-common.ts';

export interface ParsedObject {
  object: Resource;
  file: string;
  line: number;
  docIndex: number;
}

export interface ParseOptions {
  /** `--namespace`: like `kubectl apply -n`, fills in and must agree with `metadata.namespace`. */
  namespace?: string;
  /** `--strict`: legacy forms are errors instead of rewritten with a warning. */
  strict?: boolean;
}

type Segment = string | number;

/** Where one object sits: its YAML document and the path of the object inside it (non-empty for List items). */
interface Origin {
  doc: Document.Parsed | undefined;
  lc: LineCounter;
  base: Segment[];
  file: string;
  line: number;
  docIndex: number;
}

export function parseManifests(
  text: string,
  file: string,
  opts: ParseOptions = {},
): { objects: ParsedObject[]; diagnostics: Diagnostic[] } {
  const objects: ParsedObject[] = [];
  const diagnostics: Diagnostic[] = [];
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [];
  const failed = list.some((d) => d.errors.length > 0);
  if (failed && file.endsWith('.json')) {
    // YAML rejects some valid JSON (tab indentation); JSON.parse loses lines but gets the objects.
    try {
      const value: unknown = JSON.parse(text);
      handle(value, { doc: undefined, lc, base: [], file, line: 1, docIndex: 0 }, opts, objects, diagnostics);
      return { objects, diagnostics };
    } catch {
      // fall through to the YAML errors, which carry line numbers
    }
  }
  list.forEach((doc, docIndex) => {
    if (doc.errors.length > 0) {
      // Only the first error: the rest of a broken document are usually echoes of it.
      for (const err of doc.errors.slice(0, 1)) {
        diagnostics.push({
          severity: 'error',
          code: 'yaml-syntax',
          message: err.message.split('\n')[0] ?? err.message,
          file,
          line: lc.linePos(err.pos[0]).line,
          hint: 'check the indentation (spaces, not tabs) and that every `key: value` has a space after the colon',
        });
      }
      return;
    }
    if (doc.contents === null) return;
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    const line = lc.linePos(doc.contents.range[0]).line;
    handle(value, { doc, lc, base: [], file, line, docIndex }, opts, objects, diagnostics);
  });
  return { objects, diagnostics };
}

function handle(
  raw: unknown,
  at: Origin,
  opts: ParseOptions,
  objects: ParsedObject[],
  out: Diagnostic[],
): void {
  const report = (ds: Diagnostic[], object?: ObjectKey, mapPath: (p: string) => string = (p) => p): void => {
    for (const d of ds) out.push(locate(d, at, object, mapPath));
  };
  if (!isObj(raw)) {
    report([
      {
        severity: 'error',
        code: 'invalid-document',
        message: 'a manifest must be a mapping with apiVersion, kind and metadata',
      },
    ]);
    return;
  }
  if (
    raw.kind === 'List' ||
    (typeof raw.kind === 'string' && raw.kind.endsWith('List') && Array.isArray(raw.items))
  ) {
    const items = Array.isArray(raw.items) ? raw.items : [];
    items.forEach((item, i) => {
      const base = [...at.base, 'items', i];
      handle(item, { ...at, base, line: lineOf(at, base) }, opts, objects, out);
    });
    return;
  }
  const kind = raw.kind;
  if (!isKnownKind(kind)) {
    const missing = typeof kind !== 'string' || kind === '';
    report([
      missing
        ? {
            severity: 'error',
            code: 'missing-kind',
            message: 'every manifest needs `apiVersion` and `kind`',
            path: 'kind',
          }
        : {
            severity: 'warning',
            code: 'unknown-kind',
            message: `snigate does not read ${kind} (${String(raw.apiVersion)}); skipped`,
            object: objectKeyOf(raw),
          },
    ]);
    return;
  }
  if (!namespaceOf(raw, kind, opts, report)) return;
  foldStringData(raw);
  const key = objectKeyOf(raw);

  if (kind === 'TLSRoute') {
    const legacy = rewriteLegacyTLSRoute(raw, opts.strict === true);
    if (legacy) {
      report(legacy.diagnostics);
      const checked = legacy.parts.map((p) => ({ part: p, diags: validateRaw(p.object) }));
      for (const { part, diags } of checked) {
        // Name the route the user wrote, not the generated part, so the message matches their file.
        const own = diags.map((d) => (key ? { ...d, object: key } : d));
        report(own, key, (p) => mapLegacyPath(p, part.ruleIndex));
      }
      if (legacy.parts.length === 0 || checked.some((x) => x.diags.some((d) => d.severity === 'error')))
        return;
      for (const p of legacy.parts) accept(p.object, at, objects);
      return;
    }
  }
  const diags = validateRaw(raw);
  report(diags, key);
  if (diags.some((d) => d.severity === 'error')) return;
  accept(raw, at, objects);
}

function accept(o: Obj, at: Origin, objects: ParsedObject[]): void {
  const meta = o.metadata as Obj;
  if (meta.generation === undefined) meta.generation = 1;
  delete o.stringData;
  objects.push({ object: o as unknown as Resource, file: at.file, line: at.line, docIndex: at.docIndex });
}

/** Applies `-n` and the `default` namespace; returns false (after reporting) when the object contradicts `-n`. */
function namespaceOf(
  raw: Obj,
  kind: ResourceKind,
  opts: ParseOptions,
  report: (d: Diagnostic[]) => void,
): boolean {
  if (!isObj(raw.metadata)) return true; // validation reports the missing metadata
  const meta = raw.metadata;
  if (CLUSTER_SCOPED.has(kind)) {
    // The API server ignores a namespace on cluster-scoped kinds; drop it so keys stay unique.
    delete meta.namespace;
    return true;
  }
  const stated = typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : undefined;
  if (opts.namespace !== undefined && stated !== undefined && stated !== opts.namespace) {
    report([
      {
        severity: 'error',
        code: 'namespace-mismatch',
        message: `the namespace from the provided object "${stated}" does not match the namespace "${opts.namespace}"`,
        object: objectKeyOf(raw),
        path: 'metadata.namespace',
        hint: `remove \`metadata.namespace\`, or run without --namespace / with --namespace ${stated}`,
      },
    ]);
    return false;
  }
  meta.namespace = stated ?? opts.namespace ?? 'default';
  return true;
}

/** Like the API server: `stringData` values are base64-encoded into `data` (and win over `data`). */
function foldStringData(raw: Obj): void {
  if (raw.kind !== 'Secret' || !isObj(raw.stringData)) return;
  const data: Obj = isObj(raw.data) ? { ...raw.data } : {};
  for (const [k, v] of Object.entries(raw.stringData)) {
    if (typeof v === 'string') data[k] = Buffer.from(v, 'utf8').toString('base64');
  }
  raw.data = data;
}

function locate(
  d: Diagnostic,
  at: Origin,
  object: ObjectKey | undefined,
  mapPath: (p: string) => string,
): Diagnostic {
  const out: Diagnostic = { ...d };
  if (out.path !== undefined) out.path = mapPath(out.path);
  if (!out.object && object) out.object = object;
  out.file = at.file;
  out.line = out.path ? lineOf(at, [...at.base, ...splitPath(out.path)]) : at.line;
  return out;
}

/** `spec.rules[0]["tls.crt"]` → ['spec', 'rules', 0, 'tls.crt']. */
export function splitPath(path: string): Segment[] {
  const out: Segment[] = [];
  for (const m of path.matchAll(/([^.[\]"]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/g)) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else if (m[3] !== undefined) out.push(JSON.parse(m[3]) as string);
  }
  return out;
}

/** Line of the deepest node on `path` that exists: the key's line for mappings, so a missing field points at its parent. */
function lineOf(at: Origin, path: Segment[]): number {
  if (!at.doc) return at.line;
  let node: unknown = at.doc.contents;
  let pos = (node as Node | null)?.range?.[0];
  for (const seg of path) {
    if (typeof seg === 'number' && isSeq(node)) {
      node = node.items[seg];
    } else if (typeof seg === 'string' && isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === seg);
      if (!pair) break;
      const keyPos = (pair.key as Node | null)?.range?.[0];
      if (keyPos !== undefined) pos = keyPos;
      node = pair.value;
      continue;
    } else {
      break;
    }
    if (node === undefined) break;
    const p = (node as Node | null)?.range?.[0];
    if (p !== undefined) pos = p;
  }
  return pos === undefined ? at.line : at.lc.linePos(pos).line;
}

const LISTS: Record<ResourceKind, keyof Resources> = {
  GatewayClass: 'gatewayClasses',
  Gateway: 'gateways',
  TLSRoute: 'tlsRoutes',
  TCPRoute: 'tcpRoutes',
  HTTPRoute: 'httpRoutes',
  ReferenceGrant: 'referenceGrants',
  Service: 'services',
  EndpointSlice: 'endpointSlices',
  Secret: 'secrets',
  ConfigMap: 'configMaps',
  Namespace: 'namespaces',
  Ingress: 'ingresses',
  IngressClass: 'ingressClasses',
  ServiceImport: 'serviceImports',
  BackendTrafficPolicy: 'backendTrafficPolicies',
  ClientTrafficPolicy: 'clientTrafficPolicies',
  SecurityPolicy: 'securityPolicies',
  BackendTLSPolicy: 'backendTLSPolicies',
};

/** The same object written twice (e.g. a shared Gateway in two example folders) is no conflict. */
function sameContent(a: Resource, b: Resource): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Duplicates (same kind/namespace/name) with different content: the later wins, with a warning. */
export function toResources(objects: ParsedObject[]): { resources: Resources; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const byKey = new Map<string, ParsedObject>();
  for (const p of objects) {
    const m = p.object.metadata;
    const id = `${p.object.kind}/${m.namespace ?? ''}/${m.name}`;
    const prev = byKey.get(id);
    if (prev && sameContent(prev.object, p.object)) continue;
    if (prev) {
      // Delete first so the Map keeps insertion order meaningful for "last wins".
      byKey.delete(id);
      const object: ObjectKey = m.namespace
        ? { kind: p.object.kind, namespace: m.namespace, name: m.name }
        : { kind: p.object.kind, name: m.name };
      diagnostics.push({
        severity: 'warning',
        code: 'duplicate-object',
        message: `defined twice: ${prev.file}:${prev.line} and ${p.file}:${p.line}; the later one wins`,
        object,
        file: p.file,
        line: p.line,
        hint: 'remove or rename one of them',
      });
    }
    byKey.set(id, p);
  }
  const resources = emptyResources();
  for (const p of byKey.values()) (resources[LISTS[p.object.kind]] as Resource[]).push(p.object);
  const order = (a: Resource, b: Resource): number => {
    const an = `${a.metadata.namespace ?? ''}/${a.metadata.name}`;
    const bn = `${b.metadata.namespace ?? ''}/${b.metadata.name}`;
    return an < bn ? -1 : an > bn ? 1 : 0;
  };
  for (const k of Object.keys(resources) as (keyof Resources)[]) (resources[k] as Resource[]).sort(order);
  return { resources, diagnostics };
}
