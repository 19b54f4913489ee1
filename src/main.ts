/** snigate command line: wiring only (run, validate, status, explain, convert, demo). */
import { parseArgs } from 'node:util';
import { formatDiagnostic } from './api/diagnostics.ts';
import { runPipeline } from './cli/pipeline.ts';
import { type OutputFormat, renderStatuses, withTransitionTimes } from './cli/render.ts';
import { ErrorCode, SnigateError } from './errors.ts';
import type { ObjectStatus } from './translate/index.ts';

const USAGE = `snigate — a Gateway API gateway for TLS at the edge

Usage:
  snigate run -f PATH [...]          serve the Gateways in the manifests (reloads on change)
  snigate validate -f PATH [...]     check manifests; exit 1 on errors
  snigate status -f PATH [-o yaml|json|wide]
                                     print every object with its computed status
  snigate explain -f PATH --port P [--sni NAME] [-o json] [--admin URL]
                                     where a connection to port P with this SNI goes, and why
                                     (or why it goes nowhere); exit 1 when it is rejected
  snigate convert -f PATH [--gateway-class NAME]
                                     Ingress (ingress-nginx annotations) and legacy TLSRoute
                                     manifests -> Gateway API v1 YAML on stdout; what cannot be
                                     converted is listed on stderr and as comments
  snigate demo                       run the embedded demo (what npm start does)

Common flags:
  -f, --file PATH          file or directory of YAML/JSON manifests (repeatable)
  -n, --namespace NS       namespace for objects that name none (like kubectl -n)
      --strict             reject legacy forms instead of converting them with a warning
      --gateway-class NAME serve only Gateways of this class
      --controller-name N  GatewayClass controllerName that is ours (default snigate.io/gateway-controller)
      --address ADDR       default bind address (default: all interfaces, IPv4 and IPv6)

run flags:
      --admin HOST:PORT    admin server (/status, /config, /healthz, /readyz); default 127.0.0.1:9901, or off
      --port-offset N      add N to every listener port (443 -> 10443 with 10000), to run without root
      --drain-timeout S    on SIGTERM, wait up to S seconds for connections to finish (default 30)
      --drain-grace S      close connections whose route was removed S seconds after the change (default 0: never)
      --log-level L        trace|debug|info|warn|error (default info)
      --log-format F       json (default) or text

run --kubernetes flags (read the API server instead of files; the leader writes status):
      --kubeconfig PATH    default: in-cluster ServiceAccount, else ~/.kube/config
      --watch-namespace NS watch only this namespace (repeatable; default all)
      --ingress-class-controller C
                           write status.loadBalancer on Ingresses of IngressClasses with this controller
      --publish-service NS/NAME
                           report this LoadBalancer Service's address in Gateway and Ingress status
      --no-custom-resources  do not watch the Gateway API kinds (Ingress only)
      --waf-addon PATH     the libmodsecurity addon (default native/modsecurity/build/modsecurity.node)
      --enable-tls-passthrough[=true|false]
                           honour nginx.ingress.kubernetes.io/ssl-passthrough on Ingresses (default true);
                           TLSRoute passthrough is always on

status flags:
  -o, --output F           yaml (default), json or wide
      --admin URL          ask a running snigate (e.g. http://127.0.0.1:9901) instead of reading files

explain flags:
      --port P             the listener port as the manifests write it (443, not 10443)
      --sni NAME           the server name the client sends; leave out for a client without SNI
      --path /P?Q  --method M  --host H  --header k=v (repeatable)
                           for HTTPS/HTTP listeners: the request to route (Host defaults to the SNI)
  -o, --output F           text (default) or json
      --admin URL          add live endpoint health from a running snigate

convert flags:
      --gateway-class NAME gatewayClassName of the generated Gateway (default snigate)
      --gateway-name NAME  name of the generated Gateway (default snigate)
`;

const OPTIONS = {
  file: { type: 'string', short: 'f', multiple: true },
  namespace: { type: 'string', short: 'n' },
  strict: { type: 'boolean' },
  'gateway-class': { type: 'string' },
  'controller-name': { type: 'string' },
  address: { type: 'string' },
  output: { type: 'string', short: 'o' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  admin: { type: 'string' },
  'port-offset': { type: 'string' },
  'drain-timeout': { type: 'string' },
  'drain-grace': { type: 'string' },
  kubernetes: { type: 'boolean' },
  kubeconfig: { type: 'string' },
  'watch-namespace': { type: 'string', multiple: true },
  'ingress-class-controller': { type: 'string' },
  'publish-service': { type: 'string' },
  'enable-tls-passthrough': { type: 'string' },
  'no-custom-resources': { type: 'boolean' },
  'waf-addon': { type: 'string' },
  port: { type: 'string' },
  sni: { type: 'string' },
  path: { type: 'string' },
  header: { type: 'string', multiple: true },
  method: { type: 'string' },
  host: { type: 'string' },
  'gateway-name': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<
    typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; args: string[] }>
  >;
  try {
    // `--enable-tls-passthrough` alone means true (ingress-nginx's flag takes no value).
    const args = argv.map((a) => (a === '--enable-tls-passthrough' ? '--enable-tls-passthrough=true' : a));
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true });
  } catch (e) {
    throw new SnigateError(ErrorCode.InvalidArguments, `${(e as Error).message}\n\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help || !command || command === 'help') {
    process.stdout.write(USAGE);
    return command || values.help ? 0 : 2;
  }
  const files = values.file ?? [];
  const pipelineArgs = {
    files,
    namespace: values.namespace,
    strict: values.strict,
    gatewayClass: values['gateway-class'],
    controllerName: values['controller-name'],
    address: values.address,
    kubernetes: values.kubernetes,
    ingressClassController: values['ingress-class-controller'],
    enableTlsPassthrough: boolFlag(values['enable-tls-passthrough'], '--enable-tls-passthrough', true),
  };
  switch (command) {
    case 'validate': {
      requireFiles(files);
      const r = await runPipeline(pipelineArgs);
      for (const d of r.allDiagnostics) process.stdout.write(`${formatDiagnostic(d)}\n`);
      const errors = r.allDiagnostics.filter((d) => d.severity === 'error').length;
      const warnings = r.allDiagnostics.filter((d) => d.severity === 'warning').length;
      process.stdout.write(
        `${r.files.length} file(s), ${r.objects.length} object(s): ${errors} error(s), ${warnings} warning(s)\n`,
      );
      return errors > 0 ? 1 : 0;
    }
    case 'status': {
      const format = (values.output ?? 'yaml') as OutputFormat;
      if (!['yaml', 'json', 'wide'].includes(format)) {
        throw new SnigateError(ErrorCode.InvalidArguments, `-o ${format}: use yaml, json or wide`);
      }
      if (values.admin) return statusFromAdmin(values.admin, format);
      requireFiles(files);
      const r = await runPipeline(pipelineArgs);
      for (const d of r.allDiagnostics) {
        if (d.severity !== 'info') process.stderr.write(`${formatDiagnostic(d)}\n`);
      }
      process.stdout.write(renderStatuses(withTransitionTimes(r.statuses, new Date().toISOString()), format));
      return r.loadErrors > 0 ? 1 : 0;
    }
    case 'run': {
      if (!values.kubernetes) requireFiles(files);
      const { runCommand } = await import('./cli/run.ts');
      return runCommand({
        ...pipelineArgs,
        logLevel: values['log-level'],
        logFormat: values['log-format'],
        admin: values.admin,
        portOffset: intFlag(values['port-offset'], '--port-offset', 0),
        drainTimeoutMs: intFlag(values['drain-timeout'], '--drain-timeout', 30) * 1000,
        drainGraceMs: intFlag(values['drain-grace'], '--drain-grace', 0) * 1000,
        kubeconfig: values.kubeconfig,
        watchNamespaces: values['watch-namespace'],
        publishService: values['publish-service'],
        enableCustomResources: !values['no-custom-resources'],
        wafAddonPath: values['waf-addon'],
      });
    }
    case 'explain': {
      requireFiles(files);
      if (values.port === undefined)
        throw new SnigateError(ErrorCode.InvalidArguments, 'explain needs --port P (and usually --sni NAME)');
      const { explainCommand } = await import('./cli/explain.ts');
      return explainCommand({
        ...pipelineArgs,
        port: intFlag(values.port, '--port', 0),
        sni: values.sni ?? null,
        http: {
          path: values.path,
          method: values.method,
          host: values.host,
          headers: Object.fromEntries(
            (values.header ?? []).map((h) => {
              const i = h.indexOf('=');
              if (i <= 0)
                throw new SnigateError(ErrorCode.InvalidArguments, `--header ${h}: write name=value`);
              return [h.slice(0, i), h.slice(i + 1)];
            }),
          ),
        },
        admin: values.admin,
        output: values.output,
      });
    }
    case 'convert': {
      requireFiles(files);
      const { convertCommand } = await import('./cli/convert.ts');
      return convertCommand({
        files,
        namespace: values.namespace,
        gatewayClass: values['gateway-class'],
        gatewayName: values['gateway-name'],
      });
    }
    case 'demo': {
      const { demoCommand } = await import('./cli/demo.ts');
      return demoCommand({ logLevel: values['log-level'], logFormat: values['log-format'] });
    }
    default:
      throw new SnigateError(ErrorCode.InvalidArguments, `unknown command ${command}\n\n${USAGE}`);
  }
}

/** `snigate status --admin URL`: the running instance's statuses, its last reload and live endpoint health. */
async function statusFromAdmin(url: string, format: OutputFormat): Promise<number> {
  const base = /^https?:\/\//.test(url) ? url : `http://${url}`;
  let doc: Record<string, unknown>;
  try {
    const res = await fetch(new URL('/status', base), { signal: AbortSignal.timeout(5000) });
    doc = (await res.json()) as Record<string, unknown>;
  } catch (e) {
    throw new SnigateError(
      ErrorCode.InvalidArguments,
      `cannot reach the admin server at ${base}: ${(e as Error).message}`,
    );
  }
  const reload = doc.lastReload as { ok: boolean; at: string; errors: string[] } | null;
  if (reload && !reload.ok) {
    process.stderr.write(
      `last configuration change REFUSED at ${reload.at}; still serving the one from ${doc.programmedAt}:\n`,
    );
    for (const e of reload.errors) process.stderr.write(`  ${e}\n`);
  }
  const statuses = (doc.statuses ?? []) as ObjectStatus[];
  if (format === 'json') {
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    return reload && !reload.ok ? 1 : 0;
  }
  process.stdout.write(renderStatuses(statuses, format));
  if (format === 'wide') {
    const eps = (doc.endpoints ?? []) as { endpoint?: string; healthy?: boolean }[];
    process.stdout.write(`\nactive connections: ${doc.activeConnections}\n`);
    for (const e of eps) process.stdout.write(`endpoint ${JSON.stringify(e)}\n`);
  }
  return reload && !reload.ok ? 1 : 0;
}

function boolFlag(v: string | undefined, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (v === 'true' || v === 'false') return v === 'true';
  throw new SnigateError(ErrorCode.InvalidArguments, `${name}=${v}: write ${name}=true or ${name}=false`);
}

function intFlag(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new SnigateError(ErrorCode.InvalidArguments, `${name} ${v}: expected a whole number`);
  return n;
}

function requireFiles(files: string[]): void {
  if (files.length === 0)
    throw new SnigateError(
      ErrorCode.InvalidArguments,
      'no manifests given: pass -f PATH (a file or directory)',
    );
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      if (e instanceof SnigateError) {
        process.stderr.write(`snigate: ${e.code}: ${e.message}\n`);
        process.exitCode = e.exitCode;
      } else {
        process.stderr.write(`snigate: ${ErrorCode.Internal}: ${(e as Error)?.stack ?? String(e)}\n`);
        process.exitCode = 70;
      }
    },
  );
}
