/** Demo certificates: one CA and a server certificate per backend, made with the openssl CLI in a temp dir. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface DemoPki {
  dir: string;
  caFile: string;
  issue(
    name: string,
    sans: string[],
    usage?: 'server' | 'client',
  ): { cert: string; key: string; certFile: string; keyFile: string };
  cleanup(): void;
}

export function createDemoPki(): DemoPki {
  const dir = mkdtempSync(join(tmpdir(), 'snigate-demo-'));
  const caKey = join(dir, 'ca.key');
  const caFile = join(dir, 'ca.crt');
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  run([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    caKey,
    '-out',
    caFile,
    '-days',
    '7',
    '-subj',
    '/CN=snigate demo CA',
  ]);
  return {
    dir,
    caFile,
    issue(name, sans, usage = 'server') {
      const key = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const crt = join(dir, `${name}.crt`);
      const ext = join(dir, `${name}.ext`);
      writeFileSync(
        ext,
        usage === 'client'
          ? 'extendedKeyUsage=clientAuth\n'
          : `subjectAltName=${sans.map((s) => `DNS:${s}`).join(',')}\nextendedKeyUsage=serverAuth\n`,
      );
      run([
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        csr,
        '-subj',
        `/CN=${sans[0] ?? name}`,
      ]);
      run([
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        caFile,
        '-CAkey',
        caKey,
        '-CAcreateserial',
        '-out',
        crt,
        '-days',
        '7',
        '-extfile',
        ext,
      ]);
      return { cert: readFileSync(crt, 'utf8'), key: readFileSync(key, 'utf8'), certFile: crt, keyFile: key };
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
