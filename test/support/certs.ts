// Test PKI made with the real openssl CLI, so the same files serve Node, openssl s_client, curl, psql and redis.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CertPair {
  certPem: string;
  keyPem: string;
  certFile: string;
  keyFile: string;
}

export interface IssueOptions {
  cn: string;
  /** DNS names, or prefixed entries such as 'URI:spiffe://x/y', 'IP:127.0.0.1'. Defaults to [cn] for server certs. */
  sans?: string[];
  keyType?: 'rsa' | 'ec';
  /** A client certificate (extendedKeyUsage clientAuth, no default SAN). */
  client?: boolean;
  /** Write the RSA key as PKCS#1 `RSA PRIVATE KEY`, like the conformance suite's Secrets. */
  pkcs1?: boolean;
  days?: number;
}

export interface TestCA extends CertPair {
  name: string;
  /** Same as certFile: the file a client passes as its trust anchor. */
  caFile: string;
  dir: string;
  issue(opts: IssueOptions): CertPair;
  /** A self-signed leaf (its own trust anchor), like the conformance `tls-validity-checks-certificate`. */
  selfSigned(opts: IssueOptions): CertPair;
  /** Removes the files; later createCA(name) calls make a fresh CA. */
  cleanup(): void;
}

const cache = new Map<string, TestCA>();
const liveDirs = new Set<string>();
let exitHookInstalled = false;

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, {
    cwd,
    encoding: 'utf8',
    timeout: 30_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.error) {
    throw new Error(
      `openssl ${args[0]} failed to run (is openssl installed? run .ci/run): ${r.error.message}`,
    );
  }
  if (r.status !== 0) {
    throw new Error(`openssl ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  }
}

function sanEntry(san: string): string {
  if (/^(DNS|URI|IP|email|RID|dirName|otherName):/i.test(san)) return san;
  return isIP(san) ? `IP:${san}` : `DNS:${san}`;
}

// Minimal configs keep the result independent of the distribution's openssl.cnf.
function reqConfig(cn: string): string {
  const safe = cn.replace(/[\\"]/g, '');
  return `[req]\nprompt = no\ndistinguished_name = dn\n[dn]\nCN = "${safe}"\n`;
}

function leafExtensions(opts: IssueOptions, selfSigned: boolean): string {
  const sans = opts.sans ?? (opts.client ? [] : [opts.cn]);
  const usage = opts.keyType === 'ec' ? 'digitalSignature' : 'digitalSignature, keyEncipherment';
  const lines = [
    '[v3]',
    'basicConstraints = critical, CA:FALSE',
    // A self-signed leaf must be allowed to sign itself for strict verifiers.
    `keyUsage = critical, ${usage}${selfSigned ? ', keyCertSign' : ''}`,
    `extendedKeyUsage = ${opts.client ? 'clientAuth' : 'serverAuth, clientAuth'}`,
    'subjectKeyIdentifier = hash',
  ];
  if (!selfSigned) lines.push('authorityKeyIdentifier = keyid');
  if (sans.length > 0) lines.push(`subjectAltName = ${sans.map(sanEntry).join(', ')}`);
  return lines.join('\n') + '\n';
}

function slug(s: string): string {
  return s.replace(/[^A-Za-z0-9.-]+/g, '_').slice(0, 60) || 'cert';
}

function genKey(dir: string, file: string, opts: IssueOptions): void {
  if (opts.keyType === 'ec') {
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], dir);
    return;
  }
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', file], dir);
  if (opts.pkcs1) openssl(['rsa', '-in', file, '-traditional', '-out', file], dir);
}

function serial(): string {
  // Positive, non-zero, unique: some clients reject repeated (issuer, serial) pairs.
  return '0x' + randomBytes(15).toString('hex').replace(/^./, '1');
}

function pair(dir: string, base: string): CertPair {
  const certFile = join(dir, `${base}.crt`);
  const keyFile = join(dir, `${base}.key`);
  return {
    certFile,
    keyFile,
    certPem: readFileSync(certFile, 'utf8'),
    keyPem: readFileSync(keyFile, 'utf8'),
  };
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Safety net for tests that forget cleanup(): never leave key material in /tmp.
  process.on('exit', () => {
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  });
}

/** An RSA-2048 CA valid one year, cached per process by name. */
export function createCA(name = 'snigate test CA'): TestCA {
  const cached = cache.get(name);
  if (cached) return cached;
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), 'snigate-pki-'));
  liveDirs.add(dir);
  writeFileSync(
    join(dir, 'ca.cnf'),
    reqConfig(name) +
      '[v3]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign, digitalSignature\n' +
      'subjectKeyIdentifier = hash\n',
  );
  genKey(dir, 'ca.key', { cn: name });
  openssl(
    ['req', '-x509', '-new', '-key', 'ca.key', '-config', 'ca.cnf', '-extensions', 'v3'].concat([
      '-set_serial',
      serial(),
      '-days',
      '365',
      '-sha256',
      '-out',
      'ca.crt',
    ]),
    dir,
  );
  const issued = new Map<string, CertPair>();
  let counter = 0;

  const make = (opts: IssueOptions, selfSigned: boolean): CertPair => {
    const key = JSON.stringify([selfSigned, opts]);
    const hit = issued.get(key);
    if (hit) return hit;
    const base = `${++counter}-${slug(opts.cn)}`;
    writeFileSync(join(dir, `${base}.cnf`), reqConfig(opts.cn) + leafExtensions(opts, selfSigned));
    genKey(dir, `${base}.key`, opts);
    const days = String(opts.days ?? 365);
    if (selfSigned) {
      openssl(
        ['req', '-x509', '-new', '-key', `${base}.key`, '-config', `${base}.cnf`, '-extensions', 'v3'].concat(
          ['-set_serial', serial(), '-days', days, '-sha256', '-out', `${base}.crt`],
        ),
        dir,
      );
    } else {
      openssl(['req', '-new', '-key', `${base}.key`, '-config', `${base}.cnf`, '-out', `${base}.csr`], dir);
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${base}.csr`,
          '-CA',
          'ca.crt',
          '-CAkey',
          'ca.key',
          '-set_serial',
          serial(),
        ].concat([
          '-days',
          days,
          '-sha256',
          '-extfile',
          `${base}.cnf`,
          '-extensions',
          'v3',
          '-out',
          `${base}.crt`,
        ]),
        dir,
      );
    }
    const p = pair(dir, base);
    issued.set(key, p);
    return p;
  };

  const ca: TestCA = {
    name,
    dir,
    ...pair(dir, 'ca'),
    caFile: join(dir, 'ca.crt'),
    issue: (opts) => make(opts, false),
    selfSigned: (opts) => make(opts, true),
    cleanup: () => {
      cache.delete(name);
      liveDirs.delete(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  cache.set(name, ca);
  return ca;
}

/** The conformance suite's TLS fixtures (INDEX.md section 1), issued from one CA. */
export interface ConformancePki {
  ca: TestCA;
  /** tls-checks-certificate: abc.example.com, other.example.com, spiffe://abc.example.com/test-identity. */
  tlsChecks: CertPair;
  /** tls-passthrough-checks-certificate: abc.example.com. */
  passthrough: CertPair;
  /** tls-terminate-checks-certificate: tls.example.com. */
  terminate: CertPair;
  /** tls-checks-client-certificate. */
  client: CertPair;
  /** tls-validity-checks-certificate: self-signed, SANs `*`, `*.org`, `*.wildcard.org`. */
  validity: CertPair;
}

export function conformancePki(): ConformancePki {
  const ca = createCA('tls-checks-ca');
  return {
    ca,
    tlsChecks: ca.issue({
      cn: 'abc.example.com',
      sans: ['abc.example.com', 'other.example.com', 'URI:spiffe://abc.example.com/test-identity'],
      pkcs1: true,
    }),
    passthrough: ca.issue({ cn: 'abc.example.com', sans: ['abc.example.com'], pkcs1: true }),
    terminate: ca.issue({ cn: 'tls.example.com', sans: ['tls.example.com'], pkcs1: true }),
    client: ca.issue({ cn: 'tls-checks-client', client: true, pkcs1: true }),
    validity: ca.selfSigned({
      cn: 'tls-validity-checks',
      sans: ['*', '*.org', '*.wildcard.org'],
      pkcs1: true,
    }),
  };
}
