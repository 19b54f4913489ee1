// Shared by the HTTP conformance end-to-end tests: the upstream manifests made runnable (one loopback address per
// Gateway, EndpointSlices pointing at local echo-basic look-alikes, the suite's Secrets and ConfigMaps generated),
// and an HTTP(S)/h2 client that answers the way the suite's round tripper does (INDEX.md sections 0, 3 and 4).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect as http2Connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { parseAllDocuments, stringify } from 'yaml';
import { type CertPair, createCA, type TestCA } from '../support/certs.ts';
import { type HttpEchoResponse, type HttpEchoServer, startHttpEcho } from '../support/echo-server.ts';
import { REPO, sleep } from './helpers.ts';

export const TESTDATA = join(REPO, 'src/translate/testdata/conformance');
export const NS = 'gateway-conformance-infra';
export const APP_NS = 'gateway-conformance-app-backend';
export const WEB_NS = 'gateway-conformance-web-backend';

type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
};

function docs(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => !!o);
}

export const toYaml = (objects: object[]): string => objects.map((o) => stringify(o)).join('---\n');

/**
 * A conformance manifest with `{GATEWAY_CLASS_NAME}` filled in and `spec.addresses: [{IPAddress}]` added to each
 * Gateway (so Gateways sharing a port do not share a socket). Every Gateway of the file must have an address.
 */
export function conformanceYaml(textOrFile: string, addresses: Record<string, string>): string {
  const text = textOrFile.includes('\n') ? textOrFile : readFileSync(join(TESTDATA, textOrFile), 'utf8');
  return toYaml(
    docs(text.replaceAll('{GATEWAY_CLASS_NAME}', 'snigate')).map((o) => {
      if (o.kind === 'Gateway') {
        const address = addresses[o.metadata.name];
        assert.ok(address, `no address for Gateway ${o.metadata.name}`);
        o.spec = { ...o.spec, addresses: [{ type: 'IPAddress', value: address }] };
      }
      return o;
    }),
  );
}

/** The HTTP echo Services of the base manifests (verbatim, their selectors unused). */
export const HTTP_SERVICES = [
  `${NS}/infra-backend-v1`,
  `${NS}/infra-backend-v2`,
  `${NS}/infra-backend-v3`,
  `${APP_NS}/app-backend-v1`,
  `${APP_NS}/app-backend-v2`,
  `${WEB_NS}/web-backend`,
];

/** `_base.yaml`: its Namespaces, its four Gateways (with the given addresses) and the HTTP echo Services. */
export function baseYaml(gatewayAddresses: Record<string, string>): string {
  const objects = docs(readFileSync(join(TESTDATA, '_base.yaml'), 'utf8'));
  const kept = objects.filter(
    (o) =>
      o.kind === 'Namespace' ||
      o.kind === 'Gateway' ||
      (o.kind === 'Service' && HTTP_SERVICES.includes(`${o.metadata.namespace}/${o.metadata.name}`)),
  );
  assert.equal(kept.filter((o) => o.kind === 'Service').length, HTTP_SERVICES.length);
  assert.equal(kept.filter((o) => o.kind === 'Gateway').length, 4);
  return conformanceYaml(toYaml(kept) + '\n', gatewayAddresses);
}

/** An EndpointSlice for `service` with one ready endpoint 127.0.0.1 per port given (one per replica). */
export function endpointSlice(
  namespace: string,
  service: string,
  ports: { name?: string; port: number }[],
  suffix = 'a',
): object {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${service}-${suffix}`,
      namespace,
      labels: { 'kubernetes.io/service-name': service },
    },
    addressType: 'IPv4',
    ports: ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, protocol: 'TCP' })),
    endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
  };
}

/** The base manifests' HTTP echo backends, as echo-basic pods: infra-backend-v1 has 2 replicas like upstream. */
export interface Backends {
  servers: HttpEchoServer[];
  /** EndpointSlices for every Service of HTTP_SERVICES. */
  yaml: string;
  close(): Promise<void>;
}

/** A pod name like a Deployment's (`<deployment>-<rs hash>-<suffix>`): the suite strips the last two parts. */
export const podName = (deployment: string, i: number): string => `${deployment}-7d9f8c${i}b5-x${i}q${i}z`;

/** `infra-backend-v1-7d9f8c0b5-x0q0z` → `infra-backend-v1` (weight.go extractBackendName). */
export function backendOf(pod: string): string {
  const parts = pod.split('-');
  return parts.length < 3 ? pod : parts.slice(0, -2).join('-');
}

export async function startBackends(): Promise<Backends> {
  const servers: HttpEchoServer[] = [];
  const slices: object[] = [];
  try {
    for (const key of HTTP_SERVICES) {
      const [namespace, service] = key.split('/') as [string, string];
      const replicas = service === 'infra-backend-v1' ? 2 : 1;
      for (let i = 0; i < replicas; i++) {
        const srv = await startHttpEcho({ pod: podName(service, i), namespace });
        servers.push(srv);
        // infra-backend-v1's ports are named (first-port 8080→3000, third-port 8082→3000 ws); the others are not.
        const ports =
          service === 'infra-backend-v1'
            ? [
                { name: 'first-port', port: srv.port },
                { name: 'third-port', port: srv.port },
              ]
            : [{ port: srv.port }];
        slices.push(endpointSlice(namespace, service, ports, String(i)));
      }
    }
  } catch (e) {
    await Promise.all(servers.map((s) => s.close()));
    throw e;
  }
  return {
    servers,
    yaml: toYaml(slices),
    close: async () => {
      await Promise.all(servers.map((s) => s.close()));
    },
  };
}

/** The suite's `tls-validity-checks-*` fixtures: one CA for the default frontend validation, another per port. */
export interface ValidityPki {
  /** tls-validity-checks-certificate: self-signed, SANs `*`, `*.org`, `*.wildcard.org`. */
  server: CertPair;
  /** tls-validity-checks-ca-certificate and the client certificate it signed. */
  ca: TestCA;
  client: CertPair;
  /** tls-validity-checks-per-port-ca-certificate and its client certificate. */
  perPortCa: TestCA;
  perPortClient: CertPair;
  /** The Secret and the two ConfigMaps (gateway-conformance-infra) the Gateways reference. */
  yaml: string;
  cleanup(): void;
}

export function validityPki(): ValidityPki {
  const ca = createCA('tls-validity-checks-ca-certificate');
  const perPortCa = createCA('tls-validity-checks-per-port-ca-certificate');
  const server = ca.selfSigned({
    cn: 'tls-validity-checks',
    sans: ['*', '*.org', '*.wildcard.org'],
    pkcs1: true,
  });
  const client = ca.issue({ cn: 'tls-validity-checks-client', client: true, pkcs1: true });
  const perPortClient = perPortCa.issue({
    cn: 'tls-validity-checks-per-port-client',
    client: true,
    pkcs1: true,
  });
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const yaml = toYaml([
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'tls-validity-checks-certificate', namespace: NS },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': b64(server.certPem), 'tls.key': b64(server.keyPem) },
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'tls-validity-checks-ca-certificate', namespace: NS },
      data: { 'ca.crt': ca.certPem },
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'tls-validity-checks-per-port-ca-certificate', namespace: NS },
      data: { 'ca.crt': perPortCa.certPem },
    },
  ]);
  return {
    server,
    ca,
    client,
    perPortCa,
    perPortClient,
    yaml,
    cleanup: () => {
      ca.cleanup();
      perPortCa.cleanup();
    },
  };
}

/**
 * Go's crypto/x509 hostname check (what the suite's client uses): a `*` matches exactly one whole left-most label,
 * and `*.org` is a valid pattern (Node refuses wildcards over fewer than three labels). The chain itself is still
 * verified by Node against `ca`.
 */
export function goCheckServerIdentity(host: string, cert: PeerCertificate): Error | undefined {
  const want = host.toLowerCase().replace(/\.$/, '').split('.');
  const sans = (cert.subjectaltname ?? '')
    .split(', ')
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
  const ok = sans.some((san) => {
    const p = san.split('.');
    return p.length === want.length && p.every((part, i) => part === want[i] || (i === 0 && part === '*'));
  });
  return ok ? undefined : new Error(`${host} is not in the certificate's DNS names ${sans.join(', ')}`);
}

export interface Req {
  address: string;
  port: number;
  path?: string;
  /** Host header (`:authority` for h2). */
  host?: string;
  method?: string;
  headers?: Record<string, string>;
  /** HTTPS: SNI, trust anchor (the server certificate), optional client certificate. */
  tls?: { servername: string; ca: string; cert?: string; key?: string };
  /** HTTP/2 over TLS (ALPN h2 only), like roundtripper.H2Protocol. */
  h2?: boolean;
  timeoutMs?: number;
}

export interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The echo-basic body when the response is the backend's JSON. */
  echo?: HttpEchoResponse;
  /** The protocol the gateway negotiated with the client (ALPN), for TLS. */
  alpn?: string | false;
}

function parseEcho(headers: IncomingHttpHeaders, text: string): HttpEchoResponse | undefined {
  if (!String(headers['content-type'] ?? '').includes('application/json')) return undefined;
  try {
    const j = JSON.parse(text) as HttpEchoResponse;
    return typeof j.pod === 'string' ? j : undefined;
  } catch {
    return undefined;
  }
}

/** One request on a fresh connection (no pooling, so every request makes its own TLS handshake). */
export function send(r: Req): Promise<Res> {
  return r.h2 ? sendH2(r) : sendH1(r);
}

function sendH1(r: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    const opts = {
      host: r.address,
      port: r.port,
      path: r.path ?? '/',
      method: r.method ?? 'GET',
      headers: { ...(r.host ? { host: r.host } : {}), ...r.headers },
      agent: false as const,
      timeout: r.timeoutMs ?? 5_000,
    };
    const onRes = (res: import('node:http').IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const echo = parseEcho(res.headers, text);
        const alpn = r.tls ? ((res.socket as TLSSocket).alpnProtocol ?? false) : undefined;
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text,
          ...(echo ? { echo } : {}),
          ...(alpn !== undefined ? { alpn } : {}),
        });
      });
    };
    const req = r.tls
      ? httpsRequest(
          {
            ...opts,
            servername: r.tls.servername,
            ca: r.tls.ca,
            checkServerIdentity: goCheckServerIdentity,
            ...(r.tls.cert ? { cert: r.tls.cert, key: r.tls.key } : {}),
            ALPNProtocols: ['http/1.1'],
          } as import('node:https').RequestOptions,
          onRes,
        )
      : httpRequest(opts, onRes);
    req.on('timeout', () => req.destroy(new Error(`request to ${r.address}:${r.port} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function sendH2(r: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    assert.ok(r.tls, 'h2 needs tls');
    const session = http2Connect(`https://${r.address}:${r.port}`, {
      servername: r.tls.servername,
      ca: r.tls.ca,
      checkServerIdentity: goCheckServerIdentity,
      ...(r.tls.cert ? { cert: r.tls.cert, key: r.tls.key } : {}),
    });
    let done = false;
    const timer = setTimeout(
      () => fail(new Error(`h2 request to ${r.address}:${r.port} timed out`)),
      r.timeoutMs ?? 5_000,
    );
    const fail = (e: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      session.destroy();
      reject(e);
    };
    session.on('error', fail);
    const stream = session.request({
      ':method': r.method ?? 'GET',
      ':path': r.path ?? '/',
      ...(r.host ? { ':authority': r.host } : {}),
      ...r.headers,
    });
    stream.on('error', fail);
    let headers: IncomingHttpHeaders = {};
    let status = 0;
    stream.on('response', (h) => {
      status = Number(h[':status']);
      headers = h as IncomingHttpHeaders;
    });
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('close', () => {
      if (status === 0) fail(new Error(`h2 stream closed without a response (code ${stream.rstCode})`));
    });
    session.on('close', () => fail(new Error('h2 session closed before the response ended')));
    stream.on('end', () => {
      if (status === 0) return fail(new Error('h2 stream ended without a response'));
      clearTimeout(timer);
      const alpn: string | false = session.alpnProtocol ?? false;
      done = true;
      session.close();
      const text = Buffer.concat(chunks).toString('utf8');
      const echo = parseEcho(headers, text);
      resolve({ status, headers, text, alpn, ...(echo ? { echo } : {}) });
    });
    stream.end();
  });
}

export interface Expected {
  status: number;
  /** The backend (pod name prefix) that must have answered a 200. */
  backend?: string;
  namespace?: string;
  /** What the backend must have seen; defaults to the request's path and Host (http.CompareRoundTrip). */
  path?: string;
  host?: string;
}

/** http.CompareRoundTrip for the fields these tests use: status, then for a 200 the echoed request and pod. */
export function check(req: Req, res: Res, exp: Expected): void {
  const what = `${req.tls ? `SNI ${req.tls.servername} ` : ''}Host ${req.host ?? '-'} ${req.path ?? '/'}`;
  assert.equal(res.status, exp.status, `${what}: status ${res.status}, body ${res.text.slice(0, 300)}`);
  if (res.status !== 200) return;
  assert.ok(res.echo, `${what}: 200 without an echo body: ${res.text.slice(0, 300)}`);
  assert.equal(res.echo.path, exp.path ?? req.path ?? '/', `${what}: path seen by the backend`);
  assert.equal(res.echo.method, req.method ?? 'GET', `${what}: method`);
  const host = exp.host ?? req.host;
  if (host) assert.equal(res.echo.host, host, `${what}: Host seen by the backend`);
  assert.equal(res.echo.namespace, exp.namespace ?? NS, `${what}: namespace`);
  if (exp.backend) {
    assert.ok(
      res.echo.pod.startsWith(`${exp.backend}-`),
      `${what}: answered by ${res.echo.pod}, expected a ${exp.backend} pod`,
    );
  }
}

/**
 * MakeRequestAndExpectEventuallyConsistentResponse: poll until the expectation holds for `consecutive` requests in
 * a row (the suite asks for 3), bounded by timeoutMs. Throws the last mismatch.
 */
export async function expectEventually(
  req: Req,
  exp: Expected,
  opts: { timeoutMs?: number; consecutive?: number } = {},
): Promise<Res> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const need = opts.consecutive ?? 3;
  let streak = 0;
  let last: unknown;
  for (let i = 0; i < 1_000 && Date.now() < deadline; i++) {
    try {
      const res = await send(req);
      check(req, res, exp);
      if (++streak >= need) return res;
      continue;
    } catch (e) {
      last = e;
      streak = 0;
    }
    await sleep(100);
  }
  throw last instanceof Error ? last : new Error(`no consistent response: ${String(last)}`);
}

/** One request, checked (for a gateway whose configuration is already loaded). */
export async function expectNow(req: Req, exp: Expected): Promise<Res> {
  const res = await send(req);
  check(req, res, exp);
  return res;
}

/** N requests on N connections, each checked: for a configuration that was loaded before the test started. */
export async function expectConsistent(req: Req, exp: Expected, n = 3): Promise<Res> {
  let res: Res | undefined;
  for (let i = 0; i < n; i++) res = await expectNow(req, exp);
  return res!;
}

type Cond = { type: string; status: string; reason: string; observedGeneration?: number };

/** The conditions of every parent of a route in an admin /status document. */
export function parentConditions(
  doc: {
    statuses: {
      kind: string;
      metadata: { name: string; namespace?: string };
      status: Record<string, unknown>;
    }[];
  },
  kind: string,
  namespace: string,
  name: string,
): { parentRef: Record<string, unknown>; conditions: Cond[] }[] {
  const obj = doc.statuses.find(
    (s) => s.kind === kind && s.metadata.name === name && (s.metadata.namespace ?? 'default') === namespace,
  );
  assert.ok(obj, `${kind} ${namespace}/${name} has no status`);
  return (obj.status.parents ?? []) as { parentRef: Record<string, unknown>; conditions: Cond[] }[];
}

/** GatewayAndHTTPRoutesMustBeAccepted + HTTPRouteMustHaveResolvedRefsConditionsTrue, on every parent. */
export function assertRoutesAccepted(
  doc: Parameters<typeof parentConditions>[0],
  names: string[],
  namespace = NS,
): void {
  for (const name of names) {
    const parents = parentConditions(doc, 'HTTPRoute', namespace, name);
    assert.ok(parents.length > 0, `${name}: no parents`);
    for (const p of parents) {
      for (const type of ['Accepted', 'ResolvedRefs']) {
        const c = p.conditions.find((x) => x.type === type);
        assert.equal(
          c?.status,
          'True',
          `${name} → ${JSON.stringify(p.parentRef)}: ${type} ${JSON.stringify(c)}`,
        );
      }
    }
  }
}

/**
 * MakeTLSRequestAndExpectEventuallyConsistentFailureResponse: the request must fail. Here also: fail because the
 * gateway refused the connection (reset, TLS alert, hang-up), not because our own client refused the server.
 */
export async function expectRefused(req: Req): Promise<string> {
  const err = await send(req).then(
    (res) => assert.fail(`expected the request to fail, got HTTP ${res.status}: ${res.text.slice(0, 200)}`),
    (e: NodeJS.ErrnoException) => e,
  );
  const what = `${err.code ?? ''} ${err.message}`;
  assert.doesNotMatch(
    what,
    /ERR_TLS_CERT_ALTNAME|UNABLE_TO_VERIFY|SELF_SIGNED|CERT_HAS_EXPIRED|timed out/,
    what,
  );
  return what;
}
