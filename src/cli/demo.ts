/** `snigate demo` (what `npm start` runs): the seed examples with local TLS backends, and commands to try. */

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDemoBackend, startHttpDemoBackend } from '../demo/backend.ts';
import { createDemoPki } from '../demo/pki.ts';
import { ErrorCode, SnigateError } from '../errors.ts';
import { startGateway } from './run.ts';

const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples', 'seed-000');
const HYBRID = join(import.meta.dirname, '..', '..', 'examples', 'seed-001', 'hybrid-gateway-api');
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
  const backends: { server: { close(): unknown } }[] = [];
  // Seed 001: api.oladapo.cloud terminated at the gateway (its certificate in a Secret made here),
  // payments.oladapo.cloud passed through to a backend that requires a client certificate.
  const gatewayCert = pki.issue('api-gateway', ['api.oladapo.cloud']);
  const paymentsClient = pki.issue('payments-client', [], 'client');
  const secretFile = join(pki.dir, 'api-gateway-tls-secret.yaml');
  const indent = (pem: string) =>
    pem
      .trim()
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n');
  writeFileSync(
    secretFile,
    `apiVersion: v1\nkind: Secret\nmetadata: { name: api-gateway-tls-secret, namespace: default }\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n${indent(gatewayCert.cert)}\n  tls.key: |\n${indent(gatewayCert.key)}\n`,
  );
  try {
    for (const b of BACKENDS) {
      const { cert, key } = pki.issue(b.name, b.sans);
      backends.push(await startDemoBackend(b.name, b.port, cert, key));
    }
    const pay = pki.issue('payment-service', ['payments.oladapo.cloud']);
    backends.push(
      await startDemoBackend('payment-service', 19543, pay.cert, pay.key, readFileSync(pki.caFile, 'utf8')),
    );
    backends.push(await startHttpDemoBackend('api-gateway-service', 19080));
  } catch (e) {
    for (const b of backends) b.server.close();
    pki.cleanup();
    throw new SnigateError(
      ErrorCode.BindFailed,
      `a demo backend could not listen: ${(e as Error).message} (is another demo running?)`,
    );
  }
  const files = [
    ...['basic', 'multi-hostname', 'traffic-split', 'custom-protocol'].map((d) => join(EXAMPLES, d)),
    HYBRID,
    secretFile,
  ];
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
and seed 001's case scenario (examples/seed-001/hybrid-gateway-api: termination and passthrough on one port)
served on 127.0.0.1 with every listener port + ${PORT_OFFSET} (443 -> 10443, 8443 -> 18443).
The backends terminate TLS themselves; the gateway only reads the SNI.

  # the backend's certificate, not the gateway's (passthrough):
  openssl s_client -connect 127.0.0.1:10443 -servername secure.example.com -CAfile ${ca} </dev/null | grep -E 'subject=|Verify'
  curl --cacert ${ca} --resolve secure.example.com:10443:127.0.0.1 https://secure.example.com:10443/
  curl --cacert ${ca} --resolve api.example.com:10443:127.0.0.1 https://api.example.com:10443/
  curl --cacert ${ca} --resolve x.internal.example.com:10443:127.0.0.1 https://x.internal.example.com:10443/
  # 90/10 canary split: run it a few times
  curl -s --cacert ${ca} --resolve app.example.com:10443:127.0.0.1 https://app.example.com:10443/
  # seed 001 on the same port: api.* terminated by snigate (its certificate), HTTP routing to a plain backend
  openssl s_client -connect 127.0.0.1:10443 -servername api.oladapo.cloud -CAfile ${ca} </dev/null | grep -E 'subject=|Verify'
  curl --cacert ${ca} --resolve api.oladapo.cloud:10443:127.0.0.1 https://api.oladapo.cloud:10443/v1/orders
  # ... payments.* passed through to a backend that checks client certificates itself (mTLS end to end)
  curl --cacert ${ca} --cert ${paymentsClient.certFile} --key ${paymentsClient.keyFile} --resolve payments.oladapo.cloud:10443:127.0.0.1 https://payments.oladapo.cloud:10443/
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
