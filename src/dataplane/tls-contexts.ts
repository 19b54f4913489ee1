/**
 * The certificates of a terminating listener, parsed once per TableListener and chosen by SNI.
 *
 * Names come from each certificate (DNS SANs, else the CN). Choice: exact name, then the wildcard
 * (`*.example.com` covers exactly one label, as clients check it, RFC 6125), then the default (the
 * first usable certificate). Certificates sharing the winning name go into one context, first of each
 * key type, so an RSA and an ECDSA certificate for the same name are both offered and the client's
 * signature algorithms decide. That only works when the group is the context the handshake starts with:
 * Node's SNI context switch copies one certificate. So the caller picks the group before the handshake
 * (the SNI is known from the ClientHello already) and builds its server from `options`.
 * Tables are immutable: a swap brings new listeners, so a WeakMap keyed by the listener is the whole cache.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { TableListener, TlsCertificate } from '../table/types.ts';

/** One group of certificates served together (same name, one per key type). */
export interface CertChoice {
  /** Stable within the listener: indexes of the certificates, e.g. `0,1`. */
  id: string;
  /** The secrets of the certificates, for logs. */
  secrets: string[];
  /** Everything `tls.createSecureContext` / `tls.createServer` needs: cert/key pairs, client CA, versions. */
  options: tls.SecureContextOptions;
}

export interface ListenerContexts {
  /** What to serve for this SNI; null when no certificate of the listener is usable. */
  select(sni: string | null): CertChoice | null;
  /** Certificates that could not be used (bad PEM, key mismatch): `secret: message`, never key material. */
  readonly errors: string[];
}

interface ParsedCert {
  cert: TlsCertificate;
  index: number;
  names: string[];
  keyType: string;
}

const cache = new WeakMap<TableListener, ListenerContexts>();

export function contextsFor(listener: TableListener): ListenerContexts {
  let c = cache.get(listener);
  if (c === undefined) {
    c = buildContexts(listener);
    cache.set(listener, c);
  }
  return c;
}

/** Lower case, no trailing dot: how names are compared. */
export function normalizeName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/** DNS SANs, or the subject CN when the certificate has no DNS SAN (legacy certificates). */
export function certificateNames(x: X509Certificate): string[] {
  const sans: string[] = [];
  for (const entry of splitSan(x.subjectAltName)) {
    if (entry.startsWith('DNS:')) sans.push(normalizeName(unquote(entry.slice(4))));
  }
  if (sans.length > 0) return sans;
  const cn = /^CN=(.*)$/m.exec(x.subject);
  return cn?.[1] ? [normalizeName(unquote(cn[1]))] : [];
}

function splitSan(san: string | undefined): string[] {
  if (san === undefined || san === '') return [];
  return san.split(', ');
}

/** Node quotes values holding special characters (`DNS:"a,b"`). */
function unquote(v: string): string {
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) {
    try {
      return JSON.parse(v) as string;
    } catch {
      return v.slice(1, -1);
    }
  }
  return v;
}

function buildContexts(listener: TableListener): ListenerContexts {
  const lt = listener.tls;
  const errors: string[] = [];
  const parsed: ParsedCert[] = [];
  for (const [index, cert] of (lt?.certificates ?? []).entries()) {
    try {
      const x = new X509Certificate(cert.certPem);
      // OpenSSL drops a key that does not match its certificate silently: the handshake would fail later.
      const spki = (k: KeyObject): Buffer => k.export({ type: 'spki', format: 'der' });
      if (!spki(createPublicKey(createPrivateKey(cert.keyPem))).equals(spki(x.publicKey))) {
        throw new Error('private key does not match the certificate');
      }
      tls.createSecureContext({ cert: cert.certPem, key: cert.keyPem });
      parsed.push({
        cert,
        index,
        names: certificateNames(x),
        keyType: x.publicKey.asymmetricKeyType ?? 'unknown',
      });
    } catch (err) {
      errors.push(`${cert.secret}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  // Sessions must not resume across listeners (a different CA for client certificates, say).
  const sessionIdContext = createHash('sha256').update(listener.id).digest('hex').slice(0, 32);
  const base: tls.SecureContextOptions = {
    minVersion: 'TLSv1.2',
    sessionIdContext,
    ...(lt?.clientValidation ? { ca: lt.clientValidation.caPem } : {}),
  };
  const exact = new Map<string, ParsedCert[]>();
  const wildcard = new Map<string, ParsedCert[]>();
  for (const p of parsed) {
    for (const name of p.names) {
      const [map, key] = name.startsWith('*.') ? [wildcard, name.slice(2)] : [exact, name];
      const list = map.get(key);
      if (list === undefined) map.set(key, [p]);
      else if (!list.includes(p)) list.push(p);
    }
  }
  const choices = new Map<ParsedCert[], CertChoice>();
  const choiceFor = (group: ParsedCert[]): CertChoice => {
    let c = choices.get(group);
    if (c === undefined) {
      // First certificate of each key type: OpenSSL keeps one per type anyway.
      const picked: ParsedCert[] = [];
      for (const p of group) if (!picked.some((q) => q.keyType === p.keyType)) picked.push(p);
      c = {
        id: picked.map((p) => p.index).join(','),
        secrets: picked.map((p) => p.cert.secret),
        options: { ...base, cert: picked.map((p) => p.cert.certPem), key: picked.map((p) => p.cert.keyPem) },
      };
      choices.set(group, c);
    }
    return c;
  };
  const first = parsed[0];
  // The default serves the first certificate's name with its other key types, if any.
  let defaultGroup: ParsedCert[] | null = null;
  if (first !== undefined) {
    const n = first.names[0];
    if (n === undefined) defaultGroup = [first];
    else defaultGroup = (n.startsWith('*.') ? wildcard.get(n.slice(2)) : exact.get(n)) ?? [first];
  }
  return {
    errors,
    select(sni) {
      if (defaultGroup === null) return null;
      if (sni !== null && sni !== '') {
        const name = normalizeName(sni);
        const hit = exact.get(name);
        if (hit !== undefined) return choiceFor(hit);
        const dot = name.indexOf('.');
        if (dot > 0) {
          const w = wildcard.get(name.slice(dot + 1));
          if (w !== undefined) return choiceFor(w);
        }
      }
      return choiceFor(defaultGroup);
    },
  };
}
