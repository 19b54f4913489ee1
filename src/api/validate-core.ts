/** Core, discovery and multicluster kinds (Service, EndpointSlice, Secret, ConfigMap, Namespace, ServiceImport): what the API server enforces and snigate relies on. */

import { type Checker, child, isObj, type Obj } from './validate-common.ts';

const IANA_SVC_NAME = /^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const DATA_KEY = /^[-._a-zA-Z0-9]+$/;

export function validateService(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  const type =
    c.str(spec.type, 'spec.type', { enum: ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] }) ??
    'ClusterIP';
  if (type === 'ExternalName') {
    c.str(spec.externalName, 'spec.externalName', {
      required: true,
      min: 1,
      max: 253,
      hint: 'the DNS name this Service aliases, e.g. "db.example.com"',
    });
  }
  c.stringMap(spec.selector, 'spec.selector');
  const headless = spec.clusterIP === 'None';
  const ports = c.arr(spec.ports, 'spec.ports', {
    required: type !== 'ExternalName' && !headless,
    min: type !== 'ExternalName' && !headless ? 1 : 0,
    hint: 'e.g. `ports: [{port: 443, targetPort: 8443}]`',
  });
  servicePorts(c, ports, 'spec.ports', true);
}

function servicePorts(c: Checker, ports: unknown[], path: string, targetPorts: boolean): void {
  const names = new Set<unknown>();
  const keys = new Set<string>();
  ports.forEach((v, i) => {
    const p = `${path}[${i}]`;
    const port = c.obj(v, p, true);
    if (!port) return;
    if (ports.length > 1 && (port.name === undefined || port.name === '')) {
      c.missing(`${p}.name`, 'when a Service has more than one port, every port needs a name');
    }
    if (port.name !== undefined) {
      c.str(port.name, `${p}.name`, {
        max: 63,
        pattern: IANA_SVC_NAME,
        patternText: 'port names are lowercase letters, digits and "-"',
      });
      if (names.has(port.name)) c.error(`${p}.name`, `duplicate port name ${JSON.stringify(port.name)}`);
      names.add(port.name);
    }
    const num = c.port(port.port, `${p}.port`, true);
    const proto = c.str(port.protocol, `${p}.protocol`, { enum: ['TCP', 'UDP', 'SCTP'] }) ?? 'TCP';
    if (num !== undefined) {
      if (keys.has(`${num}/${proto}`)) c.error(`${p}.port`, `duplicate port ${num}/${proto}`);
      keys.add(`${num}/${proto}`);
    }
    if (targetPorts && port.targetPort !== undefined) {
      if (typeof port.targetPort === 'number') c.port(port.targetPort, `${p}.targetPort`);
      else
        c.str(port.targetPort, `${p}.targetPort`, {
          max: 15,
          pattern: IANA_SVC_NAME,
          patternText: 'a named container port (or write a number without quotes)',
        });
    }
    c.str(port.appProtocol, `${p}.appProtocol`);
  });
}

export function validateEndpointSlice(c: Checker, o: Obj): void {
  const type = c.str(o.addressType, 'addressType', {
    required: true,
    enum: ['IPv4', 'IPv6', 'FQDN'],
    hint: 'EndpointSlice keeps addressType, endpoints and ports at the top level, not under `spec`',
  });
  const eps = c.arr(o.endpoints, 'endpoints', { max: 1000 });
  eps.forEach((e, i) => {
    const p = `endpoints[${i}]`;
    const ep = c.obj(e, p, true);
    if (!ep) return;
    c.arr(ep.addresses, `${p}.addresses`, { required: true, min: 1, max: 100 }).forEach((a, j) => {
      const addr = c.str(a, `${p}.addresses[${j}]`, { required: true, min: 1 });
      if (addr === undefined) return;
      if (type === 'IPv4' && !/^(\d{1,3}\.){3}\d{1,3}$/.test(addr))
        c.error(`${p}.addresses[${j}]`, `${JSON.stringify(addr)} is not an IPv4 address`);
      if (type === 'IPv6' && !/^[0-9a-fA-F:.]+$/.test(addr))
        c.error(`${p}.addresses[${j}]`, `${JSON.stringify(addr)} is not an IPv6 address`);
    });
    const cond = c.obj(ep.conditions, `${p}.conditions`);
    if (cond) for (const k of ['ready', 'serving', 'terminating']) c.bool(cond[k], `${p}.conditions.${k}`);
  });
  const ports = c.arr(o.ports, 'ports', { max: 20000 });
  ports.forEach((v, i) => {
    const p = `ports[${i}]`;
    const port = c.obj(v, p, true);
    if (!port) return;
    if (port.name !== undefined && port.name !== '')
      c.str(port.name, `${p}.name`, { max: 63, pattern: IANA_SVC_NAME });
    c.int(port.port, `${p}.port`, { min: 0, max: 65535 });
    c.str(port.protocol, `${p}.protocol`, { enum: ['TCP', 'UDP', 'SCTP'] });
  });
  const meta = o.metadata as Obj | undefined;
  const labels = isObj(meta?.labels) ? meta.labels : {};
  // Multi-cluster (MCS API) slices name their ServiceImport instead.
  if (
    typeof labels['kubernetes.io/service-name'] !== 'string' &&
    typeof labels['multicluster.kubernetes.io/service-name'] !== 'string'
  ) {
    c.warn(
      'metadata.labels',
      'this EndpointSlice has no `kubernetes.io/service-name` (or `multicluster.kubernetes.io/service-name`) label, so no Service will use it',
      'add `labels: {kubernetes.io/service-name: <service>}`',
      'endpointslice-no-service',
    );
  }
}

/** Checks data keys and base64; `stringData` has already been folded into `data` by the loader. */
export function validateSecret(c: Checker, o: Obj): void {
  c.str(o.type, 'type', { max: 253 });
  const data = c.stringMap(o.data, 'data') ?? {};
  for (const [k, v] of Object.entries(data)) {
    if (!DATA_KEY.test(k))
      c.error(
        child('data', k),
        `key ${JSON.stringify(k)} may only contain letters, digits, "-", "_" and "."`,
      );
    if (typeof v === 'string' && !BASE64.test(v.replace(/\s+/g, ''))) {
      c.error(
        child('data', k),
        'is not valid base64',
        'put plain text under `stringData` instead of `data`, or encode it with `base64 -w0`',
      );
    }
  }
  if (o.stringData !== undefined) c.stringMap(o.stringData, 'stringData');
  if (o.type === 'kubernetes.io/tls') {
    for (const key of ['tls.crt', 'tls.key']) {
      if (data[key] === undefined) {
        c.missing(
          child('data', key),
          `a kubernetes.io/tls Secret needs both tls.crt (PEM certificate chain) and tls.key (PEM private key)`,
        );
      }
    }
  }
}

export function validateConfigMap(c: Checker, o: Obj): void {
  const data = c.stringMap(o.data, 'data') ?? {};
  for (const k of Object.keys(data)) {
    if (!DATA_KEY.test(k))
      c.error(
        child('data', k),
        `key ${JSON.stringify(k)} may only contain letters, digits, "-", "_" and "."`,
      );
  }
  const bin = c.stringMap(o.binaryData, 'binaryData') ?? {};
  for (const k of Object.keys(bin)) {
    if (k in data) c.error(child('binaryData', k), `key ${JSON.stringify(k)} is also in data`);
  }
}

export function validateServiceImport(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  c.str(spec.type, 'spec.type', { enum: ['ClusterSetIP', 'Headless'] });
  c.arr(spec.ips, 'spec.ips', { max: 1 }).forEach((ip, i) => {
    c.str(ip, `spec.ips[${i}]`, { required: true });
  });
  servicePorts(c, c.arr(spec.ports, 'spec.ports'), 'spec.ports', false);
}
