import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import tls from 'node:tls';
import { createCA } from '../../test/support/certs.ts';
import type { TableListener } from '../table/types.ts';
import { listener } from './testkit.ts';
import { certificateNames, contextsFor } from './tls-contexts.ts';

const ca = createCA('snigate tls-contexts test CA');
const a = ca.issue({ cn: 'a.example.com', keyType: 'ec' });
const aRsa = ca.issue({ cn: 'a.example.com', sans: ['A.example.com'] });
const wild = ca.issue({ cn: 'wild', sans: ['*.example.com', 'example.com'], keyType: 'ec' });
const cnOnly = ca.issue({ cn: 'legacy.example.com', sans: ['IP:127.0.0.1'], keyType: 'ec' });

function withCerts(certs: { secret: string; certPem: string; keyPem: string }[]): TableListener {
  return { ...listener('https', null, [], 'terminate-https'), tls: { certificates: certs, alpn: [] } };
}

test('names: DNS SANs lower-cased, CN only without DNS SANs', () => {
  assert.deepEqual(certificateNames(new X509Certificate(aRsa.certPem)), ['a.example.com']);
  assert.deepEqual(certificateNames(new X509Certificate(wild.certPem)), ['*.example.com', 'example.com']);
  assert.deepEqual(certificateNames(new X509Certificate(cnOnly.certPem)), ['legacy.example.com']);
});

test('select: exact (both key types), one-label wildcard, default; unusable certificates reported', () => {
  const l = withCerts([
    { secret: 'ns/broken', certPem: a.certPem, keyPem: aRsa.keyPem },
    { secret: 'ns/wild', ...wild },
    { secret: 'ns/a-ec', ...a },
    { secret: 'ns/a-rsa', ...aRsa },
    { secret: 'ns/legacy', ...cnOnly },
  ]);
  const c = contextsFor(l);
  assert.equal(contextsFor(l), c, 'cached per listener');
  assert.equal(c.errors.length, 1);
  assert.match(c.errors[0]!, /^ns\/broken: /);
  assert.deepEqual(c.select('A.EXAMPLE.COM.')?.secrets, ['ns/a-ec', 'ns/a-rsa']);
  assert.deepEqual(c.select('b.example.com')?.secrets, ['ns/wild']);
  assert.deepEqual(c.select('example.com')?.secrets, ['ns/wild']);
  assert.deepEqual(c.select('legacy.example.com')?.secrets, ['ns/legacy']);
  // Two labels under the wildcard, no SNI, unknown name: the first usable certificate.
  assert.deepEqual(c.select('x.y.example.com')?.secrets, ['ns/wild']);
  assert.deepEqual(c.select(null)?.secrets, ['ns/wild']);
  // The options make a working context with both pairs.
  assert.ok(tls.createSecureContext(c.select('a.example.com')!.options));
  assert.equal(contextsFor(withCerts([])).select('a.example.com'), null);
});
