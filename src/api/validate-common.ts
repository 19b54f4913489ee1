/** Shared building blocks for the per-kind validators: a diagnostic collector with typed field checks and the CRD patterns. */

import type { Diagnostic, ObjectKey } from './diagnostics.ts';

export type Obj = Record<string, unknown>;

// Patterns copied from the v1.6 CRDs (config/crd/standard) and Kubernetes' apimachinery validation.
export const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
export const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const GROUP = /^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const KIND = /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
export const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function isIP(s: string): boolean {
  const m = IPV4.exec(s);
  if (m) return m.slice(1).every((p) => Number(p) <= 255);
  return s.includes(':') && /^[0-9a-fA-F:.]+$/.test(s);
}

/** `a.b`, or `a["b.c"]` when the key is not a plain identifier, so paths stay parseable for line lookup. */
export function child(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  if (/^[A-Za-z_$][\w$-]*$/.test(key)) return path ? `${path}.${key}` : key;
  return `${path}[${JSON.stringify(key)}]`;
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(JSON.stringify(v));
}

export interface StrRule {
  required?: boolean;
  pattern?: RegExp;
  /** Human wording of the pattern for messages, e.g. "a lowercase RFC 1123 hostname". */
  patternText?: string;
  min?: number;
  max?: number;
  enum?: readonly string[];
  hint?: string;
}

export interface IntRule {
  required?: boolean;
  min?: number;
  max?: number;
  enum?: readonly number[];
  hint?: string;
}

/** Collects diagnostics for one object; every check returns the value when usable so callers can descend. */
export class Checker {
  readonly diagnostics: Diagnostic[] = [];
  readonly object: ObjectKey | undefined;

  constructor(object?: ObjectKey) {
    this.object = object;
  }

  error(path: string, message: string, hint?: string, code = 'invalid-field'): void {
    this.push({ severity: 'error', code, message, path, hint });
  }

  warn(path: string, message: string, hint?: string, code = 'invalid-field'): void {
    this.push({ severity: 'warning', code, message, path, hint });
  }

  private push(d: Diagnostic): void {
    const out: Diagnostic = { severity: d.severity, code: d.code, message: d.message };
    if (this.object) out.object = this.object;
    if (d.path) out.path = d.path;
    if (d.hint) out.hint = d.hint;
    this.diagnostics.push(out);
  }

  missing(path: string, hint?: string): void {
    this.error(path, 'required field is missing', hint, 'missing-field');
  }

  obj(v: unknown, path: string, required = false): Obj | undefined {
    if (v === undefined || v === null) {
      if (required) this.missing(path);
      return undefined;
    }
    if (!isObj(v)) {
      this.error(path, `must be a mapping (key: value), got ${show(v)}`);
      return undefined;
    }
    return v;
  }

  arr(
    v: unknown,
    path: string,
    rule: { required?: boolean; min?: number; max?: number; hint?: string } = {},
  ): unknown[] {
    if (v === undefined || v === null) {
      if (rule.required) this.missing(path, rule.hint);
      return [];
    }
    if (!Array.isArray(v)) {
      this.error(
        path,
        `must be a list, got ${show(v)}`,
        'write each entry on its own line starting with "- "',
      );
      return [];
    }
    if (rule.min !== undefined && v.length < rule.min) {
      this.error(
        path,
        `must have at least ${rule.min} item${rule.min === 1 ? '' : 's'}, has ${v.length}`,
        rule.hint,
      );
    }
    if (rule.max !== undefined && v.length > rule.max) {
      this.error(path, `must have at most ${rule.max} items, has ${v.length}`, rule.hint);
    }
    return v;
  }

  str(v: unknown, path: string, rule: StrRule = {}): string | undefined {
    if (v === undefined || v === null) {
      if (rule.required) this.missing(path, rule.hint);
      return undefined;
    }
    if (typeof v !== 'string') {
      this.error(path, `must be a string, got ${show(v)}`, rule.hint ?? `quote the value: "${String(v)}"`);
      return undefined;
    }
    const before = this.diagnostics.length;
    if (rule.enum && !rule.enum.includes(v)) {
      this.error(path, `${show(v)} is not one of ${rule.enum.map((e) => show(e)).join(', ')}`, rule.hint);
    } else if (rule.min !== undefined && v.length < rule.min) {
      this.error(
        path,
        rule.min === 1 ? 'must not be empty' : `must be at least ${rule.min} characters`,
        rule.hint,
      );
    } else if (rule.max !== undefined && v.length > rule.max) {
      this.error(path, `must be at most ${rule.max} characters, is ${v.length}`, rule.hint);
    } else if (rule.pattern && !rule.pattern.test(v)) {
      const what = rule.patternText ?? `must match ${rule.pattern.source}`;
      this.error(path, `${show(v)} is invalid: ${what}`, rule.hint);
    }
    return this.diagnostics.length === before ? v : undefined;
  }

  int(v: unknown, path: string, rule: IntRule = {}): number | undefined {
    if (v === undefined || v === null) {
      if (rule.required) this.missing(path, rule.hint);
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      const asNum = typeof v === 'string' && /^\d+$/.test(v) ? ` (write ${v} without quotes)` : '';
      this.error(path, `must be an integer, got ${show(v)}${asNum}`, rule.hint);
      return undefined;
    }
    if (rule.enum && !rule.enum.includes(v)) {
      this.error(path, `${v} is not one of ${rule.enum.join(', ')}`, rule.hint);
      return undefined;
    }
    if ((rule.min !== undefined && v < rule.min) || (rule.max !== undefined && v > rule.max)) {
      this.error(path, `${v} is out of range ${rule.min ?? '-∞'}..${rule.max ?? '∞'}`, rule.hint);
      return undefined;
    }
    return v;
  }

  bool(v: unknown, path: string): boolean | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') {
      this.error(path, `must be true or false, got ${show(v)}`);
      return undefined;
    }
    return v;
  }

  /** A map of string to string (labels, annotations, ConfigMap data): YAML turns `true`/`1` into non-strings. */
  stringMap(v: unknown, path: string): Obj | undefined {
    const m = this.obj(v, path);
    if (!m) return undefined;
    for (const [k, val] of Object.entries(m)) {
      if (typeof val !== 'string') {
        this.error(
          child(path, k),
          `value must be a string, got ${show(val)}`,
          `quote it: ${k}: "${val === null ? '' : String(val)}"`,
        );
      }
    }
    return m;
  }

  // ---- Gateway API shapes shared by several kinds ----------------------------------------------

  hostname(v: unknown, path: string, required = false): string | undefined {
    const h = this.str(v, path, {
      required,
      min: 1,
      max: 253,
      pattern: HOSTNAME,
      patternText: 'a hostname is lowercase RFC 1123 labels separated by dots, optionally starting with "*."',
      hint: 'e.g. "app.example.com" or "*.example.com"; no port, no scheme, no trailing dot',
    });
    if (h !== undefined && isIP(h)) {
      this.error(
        path,
        `${show(h)} is an IP address; hostnames cannot be IPs`,
        'use a DNS name, or omit the hostname',
      );
      return undefined;
    }
    return h;
  }

  sectionName(v: unknown, path: string, required = false): string | undefined {
    return this.str(v, path, {
      required,
      min: 1,
      max: 253,
      pattern: DNS1123_SUBDOMAIN,
      patternText: 'must be lowercase letters, digits, "-" and "."',
      hint: 'e.g. "https" or "tls-passthrough"',
    });
  }

  group(v: unknown, path: string, required = false): string | undefined {
    return this.str(v, path, {
      required,
      max: 253,
      pattern: GROUP,
      patternText: 'must be an API group like "" or "gateway.networking.k8s.io"',
      hint: 'the core group (Service, Secret, ConfigMap) is written `group: ""`',
    });
  }

  kind(v: unknown, path: string, required = false): string | undefined {
    return this.str(v, path, {
      required,
      min: 1,
      max: 63,
      pattern: KIND,
      patternText: 'must be a kind like "Service"',
    });
  }

  namespaceRef(v: unknown, path: string, required = false): string | undefined {
    return this.str(v, path, {
      required,
      min: 1,
      max: 63,
      pattern: DNS1123_LABEL,
      patternText: 'must be a namespace name (RFC 1123 label)',
    });
  }

  refName(v: unknown, path: string): string | undefined {
    return this.str(v, path, { required: true, min: 1, max: 253 });
  }

  port(v: unknown, path: string, required = false): number | undefined {
    return this.int(v, path, { required, min: 1, max: 65535 });
  }

  /** BackendObjectReference + weight, with the CEL rule "Must have port for Service reference". */
  backendRef(v: unknown, path: string, withWeight = true): Obj | undefined {
    const b = this.obj(v, path, true);
    if (!b) return undefined;
    const group = this.group(b.group, child(path, 'group')) ?? '';
    const kind = this.kind(b.kind, child(path, 'kind')) ?? 'Service';
    this.refName(b.name, child(path, 'name'));
    this.namespaceRef(b.namespace, child(path, 'namespace'));
    this.port(b.port, child(path, 'port'));
    if (group === '' && kind === 'Service' && b.port === undefined) {
      this.error(
        child(path, 'port'),
        'Must have port for Service reference',
        'add the Service port, e.g. `port: 443`',
      );
    }
    if (withWeight) this.int(b.weight, child(path, 'weight'), { min: 0, max: 1000000 });
    return b;
  }

  /** ParentReference list with the two CEL rules on sectionName for repeated parents. */
  parentRefs(v: unknown, path: string): void {
    const refs = this.arr(v, path, { max: 32 });
    const seen = new Map<string, number[]>();
    refs.forEach((r, i) => {
      const p = child(path, i);
      const ref = this.obj(r, p, true);
      if (!ref) return;
      const group = this.group(ref.group, child(p, 'group')) ?? 'gateway.networking.k8s.io';
      const kind = this.kind(ref.kind, child(p, 'kind')) ?? 'Gateway';
      const name = this.refName(ref.name, child(p, 'name'));
      // CEL compares namespaces as written: unset and the route's own namespace count as different parents.
      const ns = this.namespaceRef(ref.namespace, child(p, 'namespace')) ?? '';
      this.sectionName(ref.sectionName, child(p, 'sectionName'));
      this.port(ref.port, child(p, 'port'));
      const key = `${group}/${kind}/${ns}/${name}`;
      seen.set(key, [...(seen.get(key) ?? []), i]);
    });
    for (const idx of seen.values()) {
      if (idx.length < 2) continue;
      const sections = idx.map((i) => (refs[i] as Obj).sectionName);
      const p = child(path, idx[1]!);
      if (sections.some((s) => s === undefined || s === '')) {
        this.error(
          p,
          'sectionName must be specified when parentRefs includes 2 or more references to the same parent',
          'give each reference to the same Gateway its own `sectionName`',
        );
      } else if (new Set(sections).size !== sections.length) {
        this.error(
          p,
          'sectionName must be unique when parentRefs includes 2 or more references to the same parent',
        );
      }
    }
  }
}
