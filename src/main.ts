/** snigate command line: wiring only (run, validate, status, demo). */
import { parseArgs } from 'node:util';
import { formatDiagnostic } from './api/diagnostics.ts';
import { runPipeline } from './cli/pipeline.ts';
import { type OutputFormat, renderStatuses, withTransitionTimes } from './cli/render.ts';
import { ErrorCode, SnigateError } from './errors.ts';

const USAGE = `snigate — a Gateway API gateway for TLS at the edge

Usage:
  snigate run -f PATH [...]          serve the Gateways in the manifests (reloads on change)
  snigate validate -f PATH [...]     check manifests; exit 1 on errors
  snigate status -f PATH [-o yaml|json|wide]
                                     print every object with its computed status
  snigate demo                       run the embedded demo (what npm start does)

Common flags:
  -f, --file PATH          file or directory of YAML/JSON manifests (repeatable)
  -n, --namespace NS       namespace for objects that name none (like kubectl -n)
      --strict             reject legacy forms instead of converting them with a warning
      --gateway-class NAME serve only Gateways of this class
      --controller-name N  GatewayClass controllerName that is ours (default snigate.io/gateway-controller)
      --address ADDR       default bind address (default: all interfaces, IPv4 and IPv6)
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
  help: { type: 'boolean', short: 'h' },
} as const;

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<
    typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; args: string[] }>
  >;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
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
      requireFiles(files);
      const format = (values.output ?? 'yaml') as OutputFormat;
      if (!['yaml', 'json', 'wide'].includes(format)) {
        throw new SnigateError(ErrorCode.InvalidArguments, `-o ${format}: use yaml, json or wide`);
      }
      const r = await runPipeline(pipelineArgs);
      for (const d of r.allDiagnostics) {
        if (d.severity !== 'info') process.stderr.write(`${formatDiagnostic(d)}\n`);
      }
      process.stdout.write(renderStatuses(withTransitionTimes(r.statuses, new Date().toISOString()), format));
      return r.loadErrors > 0 ? 1 : 0;
    }
    case 'run': {
      requireFiles(files);
      const { runCommand } = await import('./cli/run.ts');
      return runCommand({
        ...pipelineArgs,
        logLevel: values['log-level'],
        logFormat: values['log-format'],
        admin: values.admin,
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
