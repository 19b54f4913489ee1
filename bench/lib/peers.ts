/** The targets side by side: the nginx HTTPS origin, and snigate, HAProxy, nginx stream, sniproxy in SNI passthrough. */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, type Spawned, startProcess, stopProcess, waitForPort } from './proc.ts';

export const SNI = 'bench.example.com';
export const SMALL_PATH = '/small';
export const BULK_PATH = '/bulk.bin';
export const BULK_BYTES = 4 * 1024 * 1024;

export interface Target {
  name: string;
  port: number;
  /** null for `direct` (no proxy in the path). */
  proc: Spawned | null;
}

/** ECDSA P-256 self-signed certificate for the origin (the proxies never see keys: passthrough). */
export async function makeCerts(dir: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, 'origin.crt');
  const key = join(dir, 'origin.key');
  const r = await run(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '30',
      '-subj',
      `/CN=${SNI}`,
      '-addext',
      `subjectAltName=DNS:${SNI},DNS:*.example.com`,
      '-keyout',
      key,
      '-out',
      cert,
    ],
    30_000,
  );
  if (r.code !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  chmodSync(key, 0o644);
  return { cert, key };
}

function nginxCommon(dir: string, name: string): string {
  return `daemon off;
master_process on;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}.error.log`)} warn;
worker_rlimit_nofile 65536;
`;
}

/** The origin: nginx HTTPS, 2 workers, keep-alive without a request cap, full handshake every connection. */
export async function startOrigin(
  dir: string,
  port: number,
  certs: { cert: string; key: string },
  httpPort?: number,
): Promise<Spawned> {
  const root = join(dir, 'www');
  mkdirSync(root, { recursive: true });
  chmodSync(dir, 0o755);
  chmodSync(root, 0o755);
  writeFileSync(join(root, 'bulk.bin'), Buffer.alloc(BULK_BYTES, 0x61));
  const tmp = join(dir, 'nginx-tmp');
  mkdirSync(tmp, { recursive: true });
  const conf = `${nginxCommon(dir, 'origin')}
worker_processes 2;
events { worker_connections 30000; multi_accept on; }
http {
  access_log off;
  client_body_temp_path ${tmp}/body; proxy_temp_path ${tmp}/proxy; fastcgi_temp_path ${tmp}/fcgi;
  uwsgi_temp_path ${tmp}/uwsgi; scgi_temp_path ${tmp}/scgi;
  keepalive_timeout 600s; keepalive_requests 100000000; client_header_timeout 600s;
  sendfile off; tcp_nopush on;
  server {
    listen 127.0.0.1:${port} ssl backlog=4096;
    ssl_certificate ${certs.cert}; ssl_certificate_key ${certs.key};
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache off; ssl_session_tickets off;
    root ${root};
    location = ${SMALL_PATH} { default_type text/plain; return 200 "ok\\n"; }
  }${
    httpPort === undefined
      ? ''
      : `
  server {
    listen 127.0.0.1:${httpPort} backlog=4096;
    root ${root};
    location = ${SMALL_PATH} { default_type text/plain; return 200 "ok\\n"; }
  }`
  }
}
`;
  const file = join(dir, 'origin.conf');
  writeFileSync(file, conf);
  const p = startProcess(
    'origin',
    'nginx',
    ['-p', dir, '-e', join(dir, 'origin.error.log'), '-c', file],
    join(dir, 'origin.out'),
  );
  await waitForPort(port);
  if (httpPort !== undefined) await waitForPort(httpPort);
  return p;
}

/** HAProxy 2.6 `mode http` terminating TLS (`bind ... ssl crt`), proxying to the plain-HTTP origin; one thread. */
export async function startHaproxyTerm(
  dir: string,
  port: number,
  originHttp: number,
  certs: { cert: string; key: string },
): Promise<Spawned> {
  const pem = join(dir, 'haproxy-term.pem');
  writeFileSync(pem, `${readFileSync(certs.cert, 'utf8')}${readFileSync(certs.key, 'utf8')}`);
  const conf = `global
  maxconn 4000
  nbthread 1
  ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 600s
  timeout server 600s
  timeout http-keep-alive 600s
frontend fe
  bind 127.0.0.1:${port} ssl crt ${pem} alpn http/1.1
  default_backend origin
backend origin
  server o1 127.0.0.1:${originHttp}
`;
  const file = join(dir, `haproxy-term-${port}.cfg`);
  writeFileSync(file, conf);
  const p = startProcess(
    'haproxy-term',
    'haproxy',
    ['-db', '-f', file],
    join(dir, `haproxy-term-${port}.out`),
  );
  await waitForPort(port);
  return p;
}

/** nginx `http` terminating TLS, proxy_pass to the plain-HTTP origin with upstream keep-alive; one worker. */
export async function startNginxTerm(
  dir: string,
  port: number,
  originHttp: number,
  certs: { cert: string; key: string },
): Promise<Spawned> {
  const tmp = join(dir, 'nginx-term-tmp');
  mkdirSync(tmp, { recursive: true });
  const conf = `${nginxCommon(dir, 'term')}
worker_processes 1;
events { worker_connections 30000; multi_accept on; }
http {
  access_log off;
  client_body_temp_path ${tmp}/body; proxy_temp_path ${tmp}/proxy; fastcgi_temp_path ${tmp}/fcgi;
  uwsgi_temp_path ${tmp}/uwsgi; scgi_temp_path ${tmp}/scgi;
  keepalive_timeout 600s; keepalive_requests 100000000;
  upstream origin { server 127.0.0.1:${originHttp}; keepalive 64; keepalive_requests 100000000; }
  server {
    listen 127.0.0.1:${port} ssl backlog=4096;
    server_name ${SNI};
    ssl_certificate ${certs.cert}; ssl_certificate_key ${certs.key};
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache off; ssl_session_tickets off;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }
  }
}
`;
  const file = join(dir, 'term.conf');
  writeFileSync(file, conf);
  const p = startProcess(
    'nginx-term',
    'nginx',
    ['-p', dir, '-e', join(dir, 'term.error.log'), '-c', file],
    join(dir, 'term.out'),
  );
  await waitForPort(port);
  return p;
}

/**
 * snigate terminating TLS: Gateway with an HTTPS listener (certificate from a kubernetes.io/tls Secret),
 * an HTTPRoute to the plain-HTTP origin, and with `waf` a SecurityPolicy enabling the WAF (CRS
 * paranoia 1, Block) on that listener.
 */
export function writeSnigateTermManifests(
  dir: string,
  port: number,
  originHttp: number,
  certs: { cert: string; key: string },
  waf: boolean,
): void {
  mkdirSync(dir, { recursive: true });
  const indent = (pem: string): string =>
    pem
      .trim()
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n');
  const gateway = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: bench-term
  namespace: default
spec:
  gatewayClassName: snigate
  listeners:
    - name: https
      protocol: HTTPS
      port: ${port}
      hostname: "${SNI}"
      tls:
        mode: Terminate
        certificateRefs:
          - kind: Secret
            name: bench-tls
      allowedRoutes:
        kinds:
          - kind: HTTPRoute
---
apiVersion: v1
kind: Secret
metadata:
  name: bench-tls
  namespace: default
type: kubernetes.io/tls
stringData:
  tls.crt: |
${indent(readFileSync(certs.cert, 'utf8'))}
  tls.key: |
${indent(readFileSync(certs.key, 'utf8'))}
---
apiVersion: v1
kind: Service
metadata:
  name: origin-http
  namespace: default
spec:
  ports:
    - name: http
      port: 80
      targetPort: ${originHttp}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: origin-http-bench
  namespace: default
  labels:
    kubernetes.io/service-name: origin-http
addressType: IPv4
ports:
  - name: http
    port: ${originHttp}
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: { ready: true }
`;
  const route = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: bench-term
  namespace: default
spec:
  parentRefs:
    - name: bench-term
      sectionName: https
  hostnames:
    - "${SNI}"
  rules:
    - backendRefs:
        - name: origin-http
          port: 80
`;
  writeFileSync(join(dir, 'gateway.yaml'), gateway);
  writeFileSync(join(dir, 'route.yaml'), route);
  if (waf)
    writeFileSync(
      join(dir, 'security.yaml'),
      `apiVersion: gateway.snigate.io/v1alpha1
kind: SecurityPolicy
metadata: { name: bench-waf, namespace: default }
spec:
  targetRefs:
    - { group: gateway.networking.k8s.io, kind: Gateway, name: bench-term, sectionName: https }
  waf:
    mode: Block
    paranoiaLevel: 1
`,
    );
}

/** HAProxy 2.6 `mode tcp`, routing on req.ssl_sni; one thread (like snigate's one event loop). */
export async function startHaproxy(
  dir: string,
  port: number,
  origin: number,
  maxconn: number,
): Promise<Spawned> {
  // HAProxy needs maxconn at most half the fd limit (2 fds per connection).
  const conf = `global
  maxconn ${maxconn}
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 600s
  timeout server 600s
frontend fe
  bind 127.0.0.1:${port}
  tcp-request inspect-delay 5s
  tcp-request content accept if { req.ssl_hello_type 1 }
  use_backend origin if { req.ssl_sni -i ${SNI} }
backend origin
  server o1 127.0.0.1:${origin}
`;
  const file = join(dir, `haproxy-${port}.cfg`);
  writeFileSync(file, conf);
  const p = startProcess('haproxy', 'haproxy', ['-db', '-f', file], join(dir, `haproxy-${port}.out`));
  await waitForPort(port);
  return p;
}

/** nginx stream with ssl_preread, one worker. `map` has no reject value: unknown SNI goes to a closed port. */
export async function startNginxStream(
  dir: string,
  port: number,
  origin: number,
  closedPort: number,
): Promise<Spawned> {
  const conf = `${nginxCommon(dir, 'stream')}
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
events { worker_connections 30000; multi_accept on; }
stream {
  map $ssl_preread_server_name $upstream {
    ${SNI} 127.0.0.1:${origin};
    default 127.0.0.1:${closedPort};
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    ssl_preread on;
    proxy_pass $upstream;
    proxy_timeout 600s;
  }
}
`;
  const file = join(dir, 'stream.conf');
  writeFileSync(file, conf);
  const p = startProcess(
    'nginx-stream',
    'nginx',
    ['-p', dir, '-e', join(dir, 'stream.error.log'), '-c', file],
    join(dir, 'stream.out'),
  );
  await waitForPort(port);
  return p;
}

/** sniproxy 0.6 in the foreground; a table with the one hostname, no fallback. */
export async function startSniproxy(dir: string, port: number, origin: number): Promise<Spawned> {
  const conf = `user root
pidfile ${join(dir, 'sniproxy.pid')}
error_log {
  filename ${join(dir, 'sniproxy.error.log')}
  priority warning
}
listener 127.0.0.1:${port} {
  protocol tls
  table bench
}
table bench {
  ^${SNI.replaceAll('.', '\\.')}$ 127.0.0.1:${origin}
}
`;
  const file = join(dir, 'sniproxy.conf');
  writeFileSync(file, conf);
  const p = startProcess('sniproxy', 'sniproxy', ['-f', '-c', file], join(dir, 'sniproxy.out'));
  await waitForPort(port);
  return p;
}

/** The manifests snigate serves: Gateway (TLS Passthrough), TLSRoute, Service + EndpointSlice. */
export function writeSnigateManifests(
  dir: string,
  port: number,
  origin: number,
  extraHostnames: string[] = [],
): void {
  mkdirSync(dir, { recursive: true });
  const hostnames = [SNI, ...extraHostnames].map((h) => `    - "${h}"`).join('\n');
  const gateway = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: bench
  namespace: default
spec:
  gatewayClassName: snigate
  listeners:
    - name: tls
      protocol: TLS
      port: ${port}
      tls:
        mode: Passthrough
      allowedRoutes:
        kinds:
          - kind: TLSRoute
---
apiVersion: v1
kind: Service
metadata:
  name: origin
  namespace: default
spec:
  ports:
    - name: tls
      port: 443
      targetPort: ${origin}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: origin-bench
  namespace: default
  labels:
    kubernetes.io/service-name: origin
addressType: IPv4
ports:
  - name: tls
    port: ${origin}
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: { ready: true }
`;
  const route = `apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata:
  name: bench
  namespace: default
spec:
  parentRefs:
    - name: bench
      sectionName: tls
  hostnames:
${hostnames}
  rules:
    - backendRefs:
        - name: origin
          port: 443
`;
  writeFileSync(join(dir, 'gateway.yaml'), gateway);
  writeFileSync(join(dir, 'route.yaml'), route);
}

export const NODE = join(process.cwd(), 'node_modules', '.bin', 'node');

export async function startSnigate(
  name: string,
  manifests: string,
  port: number,
  logFile: string,
  opts: { logLevel?: string; nodeFlags?: string[] } = {},
): Promise<Spawned> {
  const args = [
    ...(opts.nodeFlags ?? []),
    'src/main.ts',
    'run',
    '-f',
    manifests,
    '--address',
    '127.0.0.1',
    '--admin',
    'off',
    '--log-level',
    opts.logLevel ?? 'warn',
    '--drain-timeout',
    '2',
  ];
  const p = startProcess(name, NODE, args, logFile);
  await waitForPort(port, 20_000);
  return p;
}

export async function stopAll(ps: (Spawned | null)[]): Promise<void> {
  await Promise.all(ps.map((p) => (p ? stopProcess(p) : Promise.resolve())));
}
