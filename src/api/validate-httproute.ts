/** HTTPRoute validation: matches, filters and backendRefs as the v1.6 CRD schema and CEL rules check them. */

import { type Checker, HEADER_NAME, type Obj } from './validate-common.ts';

const FILTER_FIELDS: Record<string, string> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  ExtensionRef: 'extensionRef',
  CORS: 'cors',
};
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];
const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$/;
const BAD_SEQUENCES = ['//', '/./', '/../', '%2f', '%2F', '#'];

export function validateHTTPRoute(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  c.parentRefs(spec.parentRefs, 'spec.parentRefs');
  c.arr(spec.hostnames, 'spec.hostnames', { max: 16 }).forEach((h, i) => {
    c.hostname(h, `spec.hostnames[${i}]`, true);
  });
  const rules = c.arr(spec.rules, 'spec.rules', { min: 1, max: 16 });
  let total = 0;
  const names = new Set<unknown>();
  rules.forEach((r, i) => {
    const p = `spec.rules[${i}]`;
    const rule = c.obj(r, p, true);
    if (!rule) return;
    if (rule.name !== undefined) {
      c.sectionName(rule.name, `${p}.name`);
      if (names.has(rule.name)) c.error(`${p}.name`, 'Rule name must be unique within the route');
      names.add(rule.name);
    }
    total += ruleBody(c, rule, p);
  });
  if (total > 128) {
    c.error(
      'spec.rules',
      `the total number of matches across all rules must be at most 128, is ${total}`,
      'split the route in two',
    );
  }
}

/** Returns the number of matches, for the route-wide limit. */
function ruleBody(c: Checker, rule: Obj, p: string): number {
  const matches = c.arr(rule.matches, `${p}.matches`, { max: 64 });
  matches.forEach((m, j) => {
    match(c, m, `${p}.matches[${j}]`);
  });
  const filters = filterList(c, rule.filters, `${p}.filters`);
  const refs = c.arr(rule.backendRefs, `${p}.backendRefs`, { max: 16 });
  refs.forEach((b, j) => {
    const bp = `${p}.backendRefs[${j}]`;
    const ref = c.backendRef(b, bp);
    if (ref) checkPrefixRewrite(c, filterList(c, ref.filters, `${bp}.filters`), matches, `${bp}.filters`);
  });
  if (refs.length > 0 && filters.some((f) => f.requestRedirect !== undefined)) {
    c.error(
      `${p}.filters`,
      'RequestRedirect filter must not be used together with backendRefs',
      'a redirect answers the client itself: remove `backendRefs`, or move the redirect to its own rule',
    );
  }
  checkPrefixRewrite(c, filters, matches, `${p}.filters`);
  const t = c.obj(rule.timeouts, `${p}.timeouts`);
  if (t) {
    const hint = 'a Gateway API duration like "10s", "500ms" or "1m30s"';
    const req = c.str(t.request, `${p}.timeouts.request`, { pattern: DURATION, patternText: hint });
    const be = c.str(t.backendRequest, `${p}.timeouts.backendRequest`, {
      pattern: DURATION,
      patternText: hint,
    });
    if (req !== undefined && be !== undefined && toMs(req) !== 0 && toMs(be) > toMs(req)) {
      c.error(`${p}.timeouts.backendRequest`, 'backendRequest timeout cannot be longer than request timeout');
    }
  }
  return matches.length;
}

function toMs(d: string): number {
  const unit: Record<string, number> = { h: 3600000, m: 60000, s: 1000, ms: 1 };
  let total = 0;
  for (const m of d.matchAll(/([0-9]+)(ms|h|m|s)/g)) total += Number(m[1]) * (unit[m[2]!] ?? 0);
  return total;
}

function match(c: Checker, v: unknown, p: string): void {
  const m = c.obj(v, p, true);
  if (!m) return;
  const path = c.obj(m.path, `${p}.path`);
  if (path) {
    const type =
      c.str(path.type, `${p}.path.type`, { enum: ['Exact', 'PathPrefix', 'RegularExpression'] }) ??
      'PathPrefix';
    const value =
      c.str(path.value, `${p}.path.value`, { max: 1024 }) ?? (path.value === undefined ? '/' : undefined);
    if (value !== undefined && (type === 'Exact' || type === 'PathPrefix')) {
      if (!value.startsWith('/')) {
        c.error(
          `${p}.path.value`,
          `${JSON.stringify(value)} must be an absolute path and start with '/' when type is ${type}`,
          `write "/${value}"`,
        );
      } else if (
        BAD_SEQUENCES.some((s) => value.includes(s)) ||
        value.endsWith('/..') ||
        value.endsWith('/.')
      ) {
        c.error(
          `${p}.path.value`,
          `${JSON.stringify(value)} must not contain '//', '/./', '/../', '%2f', '#' or end with '/.' or '/..'`,
        );
      } else if (!PATH_CHARS.test(value)) {
        c.error(
          `${p}.path.value`,
          `${JSON.stringify(value)} contains characters not allowed in a path; percent-encode them`,
        );
      }
    }
  }
  for (const field of ['headers', 'queryParams'] as const) {
    c.arr(m[field], `${p}.${field}`, { max: 16 }).forEach((h, k) => {
      const hp = `${p}.${field}[${k}]`;
      const hm = c.obj(h, hp, true);
      if (!hm) return;
      c.str(hm.type, `${hp}.type`, { enum: ['Exact', 'RegularExpression'] });
      headerName(c, hm.name, `${hp}.name`);
      c.str(hm.value, `${hp}.value`, { required: true, min: 1, max: field === 'headers' ? 4096 : 1024 });
    });
  }
  c.str(m.method, `${p}.method`, { enum: METHODS });
}

function headerName(c: Checker, v: unknown, p: string): void {
  c.str(v, p, {
    required: true,
    min: 1,
    max: 256,
    pattern: HEADER_NAME,
    patternText: 'an HTTP header name has no spaces, colons or quotes',
    hint: 'e.g. "X-Request-Id"',
  });
}

function filterList(c: Checker, v: unknown, p: string): Obj[] {
  const out: Obj[] = [];
  const counts = new Map<string, number>();
  c.arr(v, p, { max: 16 }).forEach((f, i) => {
    const fp = `${p}[${i}]`;
    const fo = c.obj(f, fp, true);
    if (!fo) return;
    out.push(fo);
    const type = c.str(fo.type, `${fp}.type`, { required: true, enum: Object.keys(FILTER_FIELDS) });
    for (const [t, field] of Object.entries(FILTER_FIELDS)) {
      if (t === type && fo[field] === undefined)
        c.missing(`${fp}.${field}`, `filter type ${t} takes its settings in \`${field}\``);
      if (t !== type && fo[field] !== undefined && type !== undefined) {
        c.error(
          `${fp}.${field}`,
          `filter.${field} must be nil if the filter.type is not ${t}`,
          `set \`type: ${t}\`, or remove \`${field}\``,
        );
      }
    }
    if (type) counts.set(type, (counts.get(type) ?? 0) + 1);
    filterBody(c, fo, fp);
  });
  for (const [t, n] of counts) {
    if (n > 1 && t !== 'RequestMirror' && t !== 'ExtensionRef') c.error(p, `${t} filter cannot be repeated`);
  }
  if (counts.has('RequestRedirect') && counts.has('URLRewrite')) {
    c.error(p, 'May specify either a RequestRedirect or a URLRewrite filter, but not both');
  }
  return out;
}

function filterBody(c: Checker, f: Obj, p: string): void {
  for (const field of ['requestHeaderModifier', 'responseHeaderModifier']) {
    const hm = c.obj(f[field], `${p}.${field}`);
    if (!hm) continue;
    for (const op of ['set', 'add']) {
      c.arr(hm[op], `${p}.${field}.${op}`, { max: 16 }).forEach((h, k) => {
        const hp = `${p}.${field}.${op}[${k}]`;
        const ho = c.obj(h, hp, true);
        if (!ho) return;
        headerName(c, ho.name, `${hp}.name`);
        c.str(ho.value, `${hp}.value`, { required: true, min: 1, max: 4096 });
      });
    }
    c.arr(hm.remove, `${p}.${field}.remove`, { max: 16 });
  }
  const rr = c.obj(f.requestRedirect, `${p}.requestRedirect`);
  if (rr) {
    c.str(rr.scheme, `${p}.requestRedirect.scheme`, { enum: ['http', 'https'] });
    c.str(rr.hostname, `${p}.requestRedirect.hostname`, {
      min: 1,
      max: 253,
      pattern: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    });
    c.port(rr.port, `${p}.requestRedirect.port`);
    c.int(rr.statusCode, `${p}.requestRedirect.statusCode`, { enum: [301, 302, 303, 307, 308] });
    pathModifier(c, rr.path, `${p}.requestRedirect.path`);
  }
  const uw = c.obj(f.urlRewrite, `${p}.urlRewrite`);
  if (uw) {
    c.str(uw.hostname, `${p}.urlRewrite.hostname`, {
      min: 1,
      max: 253,
      pattern: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    });
    pathModifier(c, uw.path, `${p}.urlRewrite.path`);
  }
  const rm = c.obj(f.requestMirror, `${p}.requestMirror`);
  if (rm) {
    c.backendRef(rm.backendRef, `${p}.requestMirror.backendRef`, false);
    c.int(rm.percent, `${p}.requestMirror.percent`, { min: 0, max: 100 });
    if (rm.percent !== undefined && rm.fraction !== undefined) {
      c.error(`${p}.requestMirror`, 'Only one of percent or fraction may be specified');
    }
    const fr = c.obj(rm.fraction, `${p}.requestMirror.fraction`);
    if (fr) {
      const num = c.int(fr.numerator, `${p}.requestMirror.fraction.numerator`, { required: true, min: 0 });
      const den = c.int(fr.denominator, `${p}.requestMirror.fraction.denominator`, { min: 1 }) ?? 100;
      if (num !== undefined && num > den)
        c.error(`${p}.requestMirror.fraction`, 'numerator must be less than or equal to denominator');
    }
  }
  const er = c.obj(f.extensionRef, `${p}.extensionRef`);
  if (er) {
    c.group(er.group, `${p}.extensionRef.group`, true);
    c.kind(er.kind, `${p}.extensionRef.kind`, true);
    c.refName(er.name, `${p}.extensionRef.name`);
  }
}

function pathModifier(c: Checker, v: unknown, p: string): void {
  const pm = c.obj(v, p);
  if (!pm) return;
  const type = c.str(pm.type, `${p}.type`, {
    required: true,
    enum: ['ReplaceFullPath', 'ReplacePrefixMatch'],
  });
  c.str(pm.replaceFullPath, `${p}.replaceFullPath`, { max: 1024 });
  c.str(pm.replacePrefixMatch, `${p}.replacePrefixMatch`, { max: 1024 });
  for (const t of ['ReplaceFullPath', 'ReplacePrefixMatch']) {
    const field = t === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch';
    if (type === t && pm[field] === undefined)
      c.missing(`${p}.${field}`, `type ${t} takes its value in \`${field}\``);
    if (type !== undefined && type !== t && pm[field] !== undefined)
      c.error(`${p}.type`, `type must be '${t}' when ${field} is set`);
  }
}

/** CEL: a replacePrefixMatch rewrite or redirect needs exactly one PathPrefix match to know what prefix to replace. */
function checkPrefixRewrite(c: Checker, filters: Obj[], matches: unknown[], p: string): void {
  const usesPrefix = filters.some((f) =>
    [f.requestRedirect, f.urlRewrite].some((x) => {
      const path = (x as Obj | undefined)?.path as Obj | undefined;
      return path?.type === 'ReplacePrefixMatch' && path.replacePrefixMatch !== undefined;
    }),
  );
  if (!usesPrefix) return;
  // The API server defaults absent matches, paths and path types to PathPrefix "/" before CEL runs.
  const effective = matches.length === 0 ? [{}] : matches;
  const only = effective.length === 1 ? (effective[0] as Obj | undefined) : undefined;
  const type = only ? ((only.path as Obj | undefined)?.type ?? 'PathPrefix') : undefined;
  if (type !== 'PathPrefix') {
    c.error(
      p,
      'with path.replacePrefixMatch, the rule must have exactly one PathPrefix match',
      'add `matches: [{path: {type: PathPrefix, value: /prefix}}]`',
    );
  }
}
