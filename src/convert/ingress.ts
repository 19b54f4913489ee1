/** Ingress (networking.k8s.io/v1, ingress-nginx annotations) → listeners of one Gateway, HTTPRoutes and TLSRoutes. */
import { convertPath, type PathPlan } from './paths.ts';
import { type ConvertNote, GW_V1, isObj, metaOf, type Obj, slug } from './types.ts';

const NGINX = 'nginx.ingress.kubernetes.io/';
export const SSL_PASSTHROUGH = `${NGINX}ssl-passthrough`;
const SSL_REDIRECT = `${NGINX}ssl-redirect`;
const FORCE_SSL_REDIRECT = `${NGINX}force-ssl-redirect`;
const REWRITE_TARGET = `${NGINX}rewrite-target`;
const USE_REGEX = `${NGINX}use-regex`;
/**
 * Annotations snigate honours on an HTTPRoute too (its own extension, ignored by other implementations):
 * they are carried over onto the generated HTTPRoutes.
 */
export const CARRIED = new Set([
  `${NGINX}backend-protocol`,
  `${NGINX}proxy-body-size`,
  `${NGINX}whitelist-source-range`,
  `${NGINX}proxy-read-timeout`,
  `${NGINX}proxy-send-timeout`,
  // Protection (issue 8): WAF, rate limits, deny list; read in translate/security.ts.
  `${NGINX}enable-modsecurity`,
  `${NGINX}enable-owasp-core-rules`,
  `${NGINX}modsecurity-snippet`,
  `${NGINX}limit-rps`,
  `${NGINX}limit-rpm`,
  `${NGINX}limit-burst-multiplier`,
  `${NGINX}limit-connections`,
  `${NGINX}denylist-source-range`,
]);
const HANDLED = new Set([
  SSL_PASSTHROUGH,
  SSL_REDIRECT,
  FORCE_SSL_REDIRECT,
  REWRITE_TARGET,
  USE_REGEX,
  ...CARRIED,
]);

/** The one Gateway every Ingress is folded into. */
export interface GatewayPlan {
  name: string;
  namespace: string;
  className: string;
  /** In insertion order; the key is the listener name. */
  listeners: Map<string, Obj>;
  /** Namespaces of routes that attach: more than the Gateway's own means `from: All`. */
  routeNamespaces: Set<string>;
  /** Secrets the listeners use, `namespace/name`. */
  secrets: Set<string>;
}

export interface IngressEnv {
  gw: GatewayPlan;
  /** `namespace/name` → Service, to turn named ports into numbers. */
  services: Map<string, Obj>;
  /** Hosts some Ingress passes through: their port 443 belongs to a TLSRoute. */
  passthroughHosts: Set<string>;
  routes: Obj[];
  notes: ConvertNote[];
}

export function isPassthrough(ing: Obj): boolean {
  return metaOf(ing).annotations[SSL_PASSTHROUGH] === 'true';
}

export function ingressHosts(ing: Obj): string[] {
  const spec = isObj(ing.spec) ? ing.spec : {};
  const rules = Array.isArray(spec.rules) ? spec.rules : [];
  return rules.filter(isObj).flatMap((r) => (typeof r.host === 'string' ? [r.host] : []));
}

export function convertIngress(ing: Obj, ns: string, env: IngressEnv): void {
  const meta = metaOf(ing);
  const id = `Ingress ${ns}/${meta.name}`;
  const note = (severity: ConvertNote['severity'], message: string) =>
    env.notes.push({ severity, object: id, message });
  const spec = isObj(ing.spec) ? ing.spec : {};
  const rules = (Array.isArray(spec.rules) ? spec.rules : []).filter(isObj);
  if (typeof spec.ingressClassName === 'string') {
    note(
      'note',
      `ingressClassName ${spec.ingressClassName} is replaced by the Gateway's gatewayClassName ${env.gw.className}`,
    );
  }
  if (isPassthrough(ing)) {
    passthrough(ing, ns, meta.name, rules, env, note);
    return;
  }
  for (const [k, v] of Object.entries(meta.annotations)) {
    if (k.startsWith(NGINX) && !HANDLED.has(k))
      note('unsupported', `annotation ${k}: "${v}" is not converted`);
  }
  const ann = meta.annotations;
  const rewrite = ann[REWRITE_TARGET];
  const regex = ann[USE_REGEX] === 'true' || rewrite !== undefined;

  // TLS hosts → HTTPS listeners; an entry without hosts is the catch-all certificate.
  const tlsHost = new Map<string, string>();
  let catchAllSecret: string | null = null;
  for (const t of (Array.isArray(spec.tls) ? spec.tls : []).filter(isObj)) {
    const secret = typeof t.secretName === 'string' && t.secretName !== '' ? t.secretName : null;
    const hosts = (Array.isArray(t.hosts) ? t.hosts : []).filter((h): h is string => typeof h === 'string');
    if (secret === null) {
      note(
        'unsupported',
        `tls entry for ${hosts.join(', ') || 'all hosts'} has no secretName (ingress-nginx's default certificate): no HTTPS listener made`,
      );
      continue;
    }
    if (hosts.length === 0) catchAllSecret = secret;
    for (const h of hosts) tlsHost.set(h, secret);
  }

  const byHost = new Map<string | null, Obj[]>();
  for (const r of rules) {
    const host = typeof r.host === 'string' && r.host !== '' ? r.host : null;
    if (isObj(r.tcp))
      note(
        'unsupported',
        `rules[].tcp (host ${host ?? '*'}) does not exist in networking.k8s.io/v1 and is only meaningful with ssl-passthrough: skipped`,
      );
    const http = isObj(r.http) && Array.isArray(r.http.paths) ? r.http.paths.filter(isObj) : [];
    byHost.set(host, [...(byHost.get(host) ?? []), ...http]);
  }
  const many = byHost.size + (spec.defaultBackend ? 1 : 0) > 1;

  for (const [host, paths] of byHost) {
    const hostNote = (s: ConvertNote['severity'], m: string) => note(s, `host ${host ?? '*'}: ${m}`);
    const routeRules: Obj[] = [];
    for (const p of paths) {
      const plan: PathPlan | null = convertPath(p, regex, rewrite, hostNote);
      if (plan === null) continue;
      const backend = backendRef(p.backend, ns, env, hostNote);
      if (backend === null) continue;
      const rule: Obj = { matches: [{ path: plan.match }] };
      if (plan.filter) rule.filters = [plan.filter];
      rule.backendRefs = [backend];
      routeRules.push(rule);
    }
    if (routeRules.length === 0) {
      hostNote('unsupported', 'no path could be converted: no HTTPRoute made');
      continue;
    }
    const secret =
      host === null ? catchAllSecret : (tlsHost.get(host) ?? matchWildcard(tlsHost, host) ?? catchAllSecret);
    let https: string | null = null;
    if (secret !== null) {
      if (host !== null && env.passthroughHosts.has(host)) {
        hostNote(
          'unsupported',
          'another Ingress passes this host through (ssl-passthrough): port 443 goes to its TLSRoute, so this HTTPS listener is not made',
        );
      } else {
        https = httpsListener(env.gw, host, ns, secret, id, env.notes);
      }
    }
    // Without an HTTPS listener here a redirect would leave the paths served nowhere: HTTP keeps serving them.
    const redirect = https !== null && (ann[SSL_REDIRECT] !== 'false' || ann[FORCE_SSL_REDIRECT] === 'true');
    if (https === null && ann[FORCE_SSL_REDIRECT] === 'true') {
      hostNote(
        'unsupported',
        'force-ssl-redirect without a TLS entry for this host: not converted, plain HTTP keeps serving the paths',
      );
    }
    const base = many ? `${meta.name}-${host === null ? 'any' : slug(host)}` : meta.name;
    const parents: string[] = [];
    if (https !== null) parents.push(https);
    if (!redirect) parents.push(httpListener(env.gw));
    env.routes.push(httpRoute(base, ns, host, parents, routeRules, env.gw));
    if (redirect) {
      const rr: Obj = {
        filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', statusCode: 308 } }],
      };
      env.routes.push(httpRoute(`${base}-https-redirect`, ns, host, [httpListener(env.gw)], [rr], env.gw));
    }
  }

  if (spec.defaultBackend !== undefined) {
    const noteD = (s: ConvertNote['severity'], m: string) => note(s, `defaultBackend: ${m}`);
    const backend = backendRef(spec.defaultBackend, ns, env, noteD);
    if (backend !== null) {
      const parents = [httpListener(env.gw)];
      if (catchAllSecret !== null)
        parents.unshift(httpsListener(env.gw, null, ns, catchAllSecret, id, env.notes));
      const rule = { matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [backend] };
      env.routes.push(
        httpRoute(many ? `${meta.name}-default-backend` : meta.name, ns, null, parents, [rule], env.gw),
      );
      noteD(
        'note',
        'became an HTTPRoute without hostnames: it answers any Host that no more specific route claims',
      );
    }
  }
}

function passthrough(
  ing: Obj,
  ns: string,
  name: string,
  rules: Obj[],
  env: IngressEnv,
  note: (s: ConvertNote['severity'], m: string) => void,
): void {
  const ann = metaOf(ing).annotations;
  for (const k of Object.keys(ann)) {
    if (k.startsWith(NGINX) && k !== SSL_PASSTHROUGH) {
      note(
        'unsupported',
        `annotation ${k} is ignored: with ssl-passthrough ingress-nginx ignores every other annotation (the connection is not decrypted)`,
      );
    }
  }
  const spec = isObj(ing.spec) ? ing.spec : {};
  if (Array.isArray(spec.tls) && spec.tls.length > 0)
    note(
      'note',
      'spec.tls is ignored with ssl-passthrough: the backend terminates TLS with its own certificate',
    );
  if (spec.defaultBackend !== undefined)
    note('unsupported', 'defaultBackend cannot be passed through: passthrough routes by SNI hostname only');
  const withHost = rules.filter((r) => typeof r.host === 'string' && r.host !== '');
  for (const r of rules) {
    const host = typeof r.host === 'string' && r.host !== '' ? r.host : null;
    if (host === null) {
      note('unsupported', 'a rule without host cannot be passed through: TLS passthrough routes by SNI');
      continue;
    }
    const block = isObj(r.http) ? r.http : isObj(r.tcp) ? r.tcp : {};
    if (isObj(r.tcp))
      note(
        'note',
        `host ${host}: rules[].tcp (not part of networking.k8s.io/v1) read as the passthrough backend`,
      );
    const paths = (Array.isArray(block.paths) ? block.paths : []).filter(isObj);
    if (paths.length === 0) {
      note('unsupported', `host ${host}: no backend`);
      continue;
    }
    if (paths.length > 1)
      note(
        'note',
        `host ${host}: paths mean nothing to an encrypted stream; the first path's backend takes every connection`,
      );
    const hostNote = (s: ConvertNote['severity'], m: string) => note(s, `host ${host}: ${m}`);
    const backend = backendRef(paths[0]!.backend, ns, env, hostNote);
    if (backend === null) continue;
    const section = `tls-${slug(host)}`;
    if (!env.gw.listeners.has(section)) {
      env.gw.listeners.set(section, {
        name: section,
        protocol: 'TLS',
        port: 443,
        hostname: host,
        tls: { mode: 'Passthrough' },
        allowedRoutes: { kinds: [{ kind: 'TLSRoute' }] },
      });
    }
    env.gw.routeNamespaces.add(ns);
    env.routes.push({
      apiVersion: GW_V1,
      kind: 'TLSRoute',
      metadata: { name: withHost.length > 1 ? `${name}-${slug(host)}` : name, namespace: ns },
      spec: {
        parentRefs: [parentRef(env.gw, ns, section)],
        hostnames: [host],
        rules: [{ backendRefs: [backend] }],
      },
    });
  }
}

function matchWildcard(tls: Map<string, string>, host: string): string | undefined {
  for (const [h, s] of tls)
    if (h.startsWith('*.') && host.endsWith(h.slice(1)) && !host.slice(0, -h.length + 1).includes('.'))
      return s;
  return undefined;
}

function httpListener(gw: GatewayPlan): string {
  if (!gw.listeners.has('http')) {
    gw.listeners.set('http', {
      name: 'http',
      protocol: 'HTTP',
      port: 80,
      allowedRoutes: { kinds: [{ kind: 'HTTPRoute' }] },
    });
  }
  return 'http';
}

function httpsListener(
  gw: GatewayPlan,
  host: string | null,
  ns: string,
  secret: string,
  id: string,
  notes: ConvertNote[],
): string {
  const name = host === null ? 'https' : `https-${slug(host)}`;
  const ref: Obj = { kind: 'Secret', name: secret };
  if (ns !== gw.namespace) ref.namespace = ns;
  const existing = gw.listeners.get(name);
  if (existing) {
    const refs = ((existing.tls as Obj).certificateRefs as Obj[]) ?? [];
    const same = refs.some((r) => r.name === secret && (r.namespace ?? gw.namespace) === ns);
    if (!same)
      notes.push({
        severity: 'unsupported',
        object: id,
        message: `host ${host ?? '*'}: another Ingress already set its certificate; secret ${ns}/${secret} is not used`,
      });
    return name;
  }
  const l: Obj = { name, protocol: 'HTTPS', port: 443 };
  if (host !== null) l.hostname = host;
  l.tls = { mode: 'Terminate', certificateRefs: [ref] };
  l.allowedRoutes = { kinds: [{ kind: 'HTTPRoute' }] };
  gw.listeners.set(name, l);
  gw.secrets.add(`${ns}/${secret}`);
  return name;
}

function parentRef(gw: GatewayPlan, ns: string, section: string): Obj {
  const ref: Obj = { name: gw.name };
  if (ns !== gw.namespace) ref.namespace = gw.namespace;
  ref.sectionName = section;
  return ref;
}

function httpRoute(
  name: string,
  ns: string,
  host: string | null,
  sections: string[],
  rules: Obj[],
  gw: GatewayPlan,
): Obj {
  gw.routeNamespaces.add(ns);
  const spec: Obj = { parentRefs: sections.map((s) => parentRef(gw, ns, s)) };
  if (host !== null) spec.hostnames = [host];
  spec.rules = rules;
  return { apiVersion: GW_V1, kind: 'HTTPRoute', metadata: { name, namespace: ns }, spec };
}

/** `service.name` + `port.number|name`, or the pre-v1 `serviceName`/`servicePort`. Named ports need the Service. */
function backendRef(
  b: unknown,
  ns: string,
  env: IngressEnv,
  note: (s: ConvertNote['severity'], m: string) => void,
): Obj | null {
  if (!isObj(b)) {
    note('unsupported', 'a path without backend');
    return null;
  }
  if (isObj(b.resource)) {
    note(
      'unsupported',
      `resource backend ${String(b.resource.kind)}/${String(b.resource.name)} has no Gateway API equivalent`,
    );
    return null;
  }
  let name: string | undefined;
  let port: unknown;
  if (isObj(b.service)) {
    name = typeof b.service.name === 'string' ? b.service.name : undefined;
    const p = isObj(b.service.port) ? b.service.port : {};
    port = p.number ?? p.name;
  } else if (typeof b.serviceName === 'string') {
    name = b.serviceName;
    port = b.servicePort;
    note('note', `serviceName/servicePort (pre-v1 Ingress) read as service ${name} port ${String(port)}`);
  }
  if (name === undefined) {
    note('unsupported', 'a backend without service name');
    return null;
  }
  let number =
    typeof port === 'number'
      ? port
      : typeof port === 'string' && /^\d+$/.test(port)
        ? Number(port)
        : undefined;
  if (number === undefined && typeof port === 'string') {
    const svc = env.services.get(`${ns}/${name}`);
    const sp =
      isObj(svc?.spec) && Array.isArray(svc.spec.ports)
        ? svc.spec.ports.filter(isObj).find((x) => x.name === port)
        : undefined;
    if (sp && typeof sp.port === 'number') {
      number = sp.port;
      note(
        'note',
        `named port ${port} of Service ${name} resolved to ${number} from the Service in the input`,
      );
    } else {
      note(
        'unsupported',
        `named port ${port} of Service ${name}: Gateway API needs a port number and the Service is not in the input`,
      );
      return null;
    }
  }
  if (number === undefined) {
    note('unsupported', `backend ${name} has no port`);
    return null;
  }
  return { name, port: number };
}
