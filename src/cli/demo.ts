/** `snigate demo` (what `npm start` runs): the seed examples with local TLS backends, and commands to try. */
import { join } from 'node:path';
import { type DemoBackend, startDemoBackend } from '../demo/backend.ts';
import { createDemoPki } from '../demo/pki.ts';
import { ErrorCode, SnigateError } from '../errors.ts';
import { startGateway } from './run.ts';

const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples', 'seed-000');
const PORT_OFFSET = 10000;

/** Backends of the demo examples: the ports match the EndpointSlices in examples/seed-000/<example>/backends.yaml. */
const BACKENDS: { name: string; port: number; sans: string[] }[] = [
  { name: 'secure-service', port: 19443, sans: ['secure.example.com'] },
  { name: 'api-service', port: 19444, sans: ['api.example.com'] },
  { name: 'database-service', port: 19432, sans: ['db.example.com'] },
  { name: 'internal-service', port: 19445, sans: ['*.internal.example.com'] },
  { name: 'app-stable', port: 19446, sans: ['app.example.com'] },
  { name: 'app-canary', port: 19447, sans: ['app.example.com'] },
  { name: 'custom-service', port: 19843, sans: ['custom.example.com'] },
];

export async function demoCommand(opts: {
  logLevel?: string;
  logFormat?: string;
  admin?: string;
}): Promise<number> {
  let pki: ReturnType<typeof createDemoPki>;
  try {
    pki = createDemoPki();
  } catch (e) {
    throw new SnigateError(
      ErrorCode.Internal,
      `the demo makes its certificates with openssl, which failed: ${(e as Error).message}`,
    );
  }
  const backends: DemoBackend[] = [];
  try {
    for (const b of BACKENDS) {
      const { cert, key } = pki.issue(b.name, b.sans);
      backends.push(await startDemoBackend(b.name, b.port, cert, key));
    }
  } catch (e) {
    for (const b of backends) b.server.close();
    pki.cleanup();
    throw new SnigateError(
      ErrorCode.BindFailed,
      `a demo backend could not listen: ${(e as Error).message} (is another demo running?)`,
    );
  }
  const files = ['basic', 'multi-hostname', 'traffic-split', 'custom-protocol'].map((d) => join(EXAMPLES, d));
  const gw = await startGateway({
    files,
    address: '127.0.0.1',
    portOffset: PORT_OFFSET,
    admin: opts.admin ?? '127.0.0.1:9901',
    logLevel: opts.logLevel,
    logFormat: opts.logFormat ?? (process.stdout.isTTY ? 'text' : 'json'),
  });
  const ca = pki.caFile;
  process.stderr.write(`
snigate demo: the seed's TLSRoute examples (examples/seed-000/{basic,multi-hostname,traffic-split,custom-protocol})
served on 127.0.0.1 with every listener port + ${PORT_OFFSET} (443 -> 10443, 8443 -> 18443).
The backends terminate TLS themselves; the gateway only reads the SNI.

  # the backend's certificate, not the gateway's (passthrough):
  openssl s_client -connect 127.0.0.1:10443 -servername secure.example.com -CAfile ${ca} </dev/null | grep -E 'subject=|Verify'
  curl --cacert ${ca} --resolve secure.example.com:10443:127.0.0.1 https://secure.example.com:10443/
  curl --cacert ${ca} --resolve api.example.com:10443:127.0.0.1 https://api.example.com:10443/
  curl --cacert ${ca} --resolve x.internal.example.com:10443:127.0.0.1 https://x.internal.example.com:10443/
  # 90/10 canary split: run it a few times
  curl -s --cacert ${ca} --resolve app.example.com:10443:127.0.0.1 https://app.example.com:10443/
  # custom protocol on 8443 (type a line, it echoes):
  openssl s_client -quiet -connect 127.0.0.1:18443 -servername custom.example.com -CAfile ${ca}
  # an SNI no route claims: the connection is closed, no TLS alert
  openssl s_client -connect 127.0.0.1:10443 -servername nope.example.com </dev/null
  # status, as kubectl would show it, from the running instance:
  npx snigate status --admin ${gw.adminUrl ?? 'http://127.0.0.1:9901'} -o wide

Ctrl-C stops the demo.
`);
  return new Promise<number>((resolve) => {
    const stop = () => {
      process.removeAllListeners('SIGINT');
      process.removeAllListeners('SIGTERM');
      gw.stop(2000).then(() => {
        for (const b of backends) b.server.close();
        pki.cleanup();
        resolve(0);
      });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
