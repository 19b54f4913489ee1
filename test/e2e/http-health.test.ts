// Active HTTP health checks for terminated backends, from a BackendTrafficPolicy (type: HTTP): an endpoint
// that accepts connections but answers its health path with 503 stops getting requests.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { manifestDir, runSnigate, type Snigate, waitUntil } from './helpers.ts';

const servers: Server[] = [];
let port = 0;
let gw: Snigate;
let dir: ReturnType<typeof manifestDir>;

/** One endpoint: `name` in every answer; its /healthz answers `health`. */
async function endpoint(host: string, name: string, health: number): Promise<void> {
  const srv = createServer((req, res) => {
    if (req.url === '/healthz') res.writeHead(health).end();
    else res.writeHead(200, { 'content-type': 'text/plain' }).end(name);
  });
  await new Promise<void>((r) => srv.listen(port, host, r));
  port = (srv.address() as AddressInfo).port;
  servers.push(srv);
}

before(async () => {
  // Two endpoints of one Service on the same port: 127.0.0.1 is sick, 127.0.0.2 is fine.
  await endpoint('127.0.0.1', 'sick', 503);
  await endpoint('127.0.0.2', 'fine', 200);
  dir = manifestDir({
    'all.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: web, namespace: default }
spec:
  gatewayClassName: snigate
  listeners: [{ name: http, protocol: HTTP, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: app, namespace: default }
spec:
  parentRefs: [{ name: web }]
  rules: [{ backendRefs: [{ name: app, port: 80 }] }]
---
apiVersion: v1
kind: Service
metadata: { name: app, namespace: default }
spec: { ports: [{ name: http, port: 80, targetPort: ${port} }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: app-1, namespace: default, labels: { kubernetes.io/service-name: app } }
addressType: IPv4
ports: [{ name: http, port: ${port} }]
endpoints: [{ addresses: ["127.0.0.1"] }, { addresses: ["127.0.0.2"] }]
---
apiVersion: gateway.snigate.io/v1alpha1
kind: BackendTrafficPolicy
metadata: { name: app-health, namespace: default }
spec:
  targetRefs: [{ group: "", kind: Service, name: app }]
  healthCheck:
    active: { type: HTTP, http: { path: /healthz }, interval: 200ms, timeout: 1s, unhealthyThreshold: 1, healthyThreshold: 1 }
`,
  });
  gw = await runSnigate({ files: [dir.dir], listenerPorts: [80] });
});

after(async () => {
  await gw?.stop();
  for (const s of servers) s.close();
  dir?.cleanup();
});

test('the endpoint whose health path answers 503 is marked unhealthy and gets no requests', async () => {
  const sick = `127.0.0.1:${port}`;
  await waitUntil('the sick endpoint marked unhealthy', async () =>
    (await gw.status()).endpoints.find((e) => e.endpoint === sick && !e.healthy),
  );
  const answers: string[] = [];
  for (let i = 0; i < 20; i++) {
    const r = await fetch(`http://127.0.0.1:${gw.port(80)}/`, { headers: { host: 'app.example.com' } });
    answers.push(await r.text());
  }
  assert.deepEqual([...new Set(answers)], ['fine']);
});
