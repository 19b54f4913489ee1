/** Gateway API HTTPRoute filters applied to a request plan: header modifiers, redirect, URL rewrite, mirror. */
import type { Backend, HeaderPair, HttpFilter, PathModifier } from '../table/types.ts';
import { normalizeHost } from './http-router.ts';

/** Lower-case header name → values, in the order they will be sent (one header line per value). */
export type HeaderList = Map<string, string[]>;

export interface HeaderMod {
  set: HeaderPair[];
  add: HeaderPair[];
  remove: string[];
}

/** What will be sent upstream; filters edit it in place. */
export interface RequestPlan {
  /** Host header to send: the client's authority (port included) unless URLRewrite replaced it. */
  authority: string;
  /** Normalized path, without query. */
  path: string;
  /** `?...` or `''`. */
  search: string;
  headers: HeaderList;
  /** ResponseHeaderModifier filters, applied in order to the upstream response. */
  responseMods: HeaderMod[];
  mirrors: { backend: Backend; percent: number }[];
}

export interface Redirect {
  status: number;
  location: string;
}

export interface FilterContext {
  scheme: 'http' | 'https';
  /** The port the client connected to (the listener port). */
  localPort: number;
  /** The PathPrefix that matched (no trailing slash), or null for other match types. */
  prefix: string | null;
}

/** Applies filters in order; returns a redirect when a RequestRedirect filter answers the request. */
export function applyFilters(filters: HttpFilter[], plan: RequestPlan, fc: FilterContext): Redirect | null {
  for (const f of filters) {
    switch (f.type) {
      case 'RequestHeaderModifier':
        modifyHeaders(plan.headers, f);
        break;
      case 'ResponseHeaderModifier':
        plan.responseMods.push(f);
        break;
      case 'RequestMirror':
        plan.mirrors.push({ backend: f.backend, percent: f.percent });
        break;
      case 'URLRewrite':
        if (f.hostname !== null) plan.authority = f.hostname;
        if (f.path !== null) plan.path = modifyPath(f.path, plan.path, fc.prefix);
        break;
      case 'RequestRedirect':
        return redirect(f, plan, fc);
    }
  }
  return null;
}

export function modifyHeaders(headers: HeaderList, mod: HeaderMod): void {
  for (const { name, value } of mod.set) headers.set(name.toLowerCase(), [value]);
  for (const { name, value } of mod.add) {
    const key = name.toLowerCase();
    const cur = headers.get(key);
    if (cur === undefined) headers.set(key, [value]);
    else cur.push(value);
  }
  for (const name of mod.remove) headers.delete(name.toLowerCase());
}

/**
 * ReplaceFullPath replaces the path; ReplacePrefixMatch replaces the matched prefix, keeping the segment boundary:
 * prefix `/foo` + `/xyz` turns `/foo/bar` into `/xyz/bar` and `/foo` into `/xyz`; replacement `/` turns `/foo/bar`
 * into `/bar`. Without a PathPrefix match the whole path is the prefix.
 */
export function modifyPath(mod: PathModifier, path: string, prefix: string | null): string {
  if (mod.type === 'ReplaceFullPath') return mod.value === '' ? '/' : mod.value;
  const pre = prefix ?? path;
  const rest = path.startsWith(pre) ? path.slice(pre.length) : '';
  if (rest === '') return mod.value === '' ? '/' : mod.value;
  let repl = mod.value;
  while (repl.endsWith('/')) repl = repl.slice(0, -1);
  const out = rest.startsWith('/') ? repl + rest : `${repl}/${rest}`;
  return out === '' ? '/' : out;
}

const WELL_KNOWN_PORTS: Record<string, number> = { http: 80, https: 443 };

/**
 * Gateway API HTTPRequestRedirectFilter: scheme, hostname and path default to the request's; the port defaults to
 * the scheme's well-known port when the filter sets a scheme, else to the listener port. The port is left out of
 * `Location` when it is the scheme's default (80 for http, 443 for https).
 */
export function redirect(
  f: Extract<HttpFilter, { type: 'RequestRedirect' }>,
  plan: RequestPlan,
  fc: FilterContext,
): Redirect {
  const scheme = (f.scheme ?? fc.scheme).toLowerCase();
  const host = f.hostname ?? normalizeHost(plan.authority);
  const port = f.port ?? (f.scheme !== null ? (WELL_KNOWN_PORTS[scheme] ?? fc.localPort) : fc.localPort);
  const showPort = WELL_KNOWN_PORTS[scheme] !== port;
  const path = f.path === null ? plan.path : modifyPath(f.path, plan.path, fc.prefix);
  return {
    status: f.statusCode || 302,
    location: `${scheme}://${host}${showPort ? `:${port}` : ''}${path}${plan.search}`,
  };
}
