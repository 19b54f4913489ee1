/** /config and golden files must never carry key material. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redactTable } from './redact.ts';
import { DEFAULT_BACKEND_POLICY, DEFAULT_CLIENT_SETTINGS, type RoutingTable } from './types.ts';

test('redactTable removes certificate keys, upstream client keys and CA bundles, keeps the rest', () => {
  const secret = '-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----';
  const backend = {
    id: 'Service/ns/x:443',
    weight: 1,
    endpoints: [{ address: '10.0.0.1', port: 443 }],
    policy: DEFAULT_BACKEND_POLICY,
    tls: {
      serverName: 'x',
      caPem: 'CA',
      insecureSkipVerify: false,
      clientCert: { certPem: 'C', keyPem: secret },
    },
  };
  const t: RoutingTable = {
    binds: [
      {
        address: null,
        port: 443,
        protocol: 'tls',
        client: DEFAULT_CLIENT_SETTINGS,
        listeners: [
          {
            id: 'ns/gw/l',
            gateway: { namespace: 'ns', name: 'gw' },
            name: 'l',
            hostname: null,
            mode: 'terminate-https',
            routes: [
              {
                hostname: 'a',
                route: { kind: 'TLSRoute', namespace: 'ns', name: 'r' },
                backends: { backends: [backend] },
              },
            ],
            tls: {
              certificates: [{ secret: 'ns/s', certPem: 'CERT', keyPem: secret }],
              alpn: [],
              clientValidation: { caPem: 'CA', mode: 'AllowValidOnly' },
            },
            http: [
              {
                hostname: '*',
                rules: [
                  {
                    route: { kind: 'HTTPRoute', namespace: 'ns', name: 'h' },
                    ruleIndex: 0,
                    match: {
                      path: { type: 'PathPrefix', value: '/' },
                      headers: [],
                      queryParams: [],
                      method: null,
                    },
                    filters: [{ type: 'RequestMirror', backend, percent: 100 }],
                    backends: [{ ...backend, filters: [], protocol: 'https' }],
                    timeouts: { requestMs: 0, backendRequestMs: 0 },
                  },
                ],
              },
            ],
          },
        ],
      },
    ],
  };
  const text = JSON.stringify(redactTable(t));
  assert.ok(!text.includes('SECRET'), 'no private key survives');
  assert.ok(!text.includes('"CA"') && !text.includes('CERT'));
  assert.ok(text.includes('10.0.0.1') && text.includes('ns/s'), 'the rest is kept');
  assert.ok(JSON.stringify(t).includes('SECRET'), 'the input is not modified');
});
