/**
 * The Helm chart and the plain manifests, checked without helm or a cluster (Debian has no helm package):
 * a renderer for the Go-template subset the chart uses (substitutions, if/else/not, range, toYaml, nindent)
 * renders it; every object must parse and carry the RBAC, probes and securityContext snigate needs; the
 * plain manifests must equal the default rendering (UPDATE_MANIFESTS=1 regenerates them).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments, parse as parseYaml, stringify } from 'yaml';
import { KINDS } from '../src/config/kube-source.ts';
import { main } from '../src/main.ts';

type Obj = Record<string, any>;

const ROOT = new URL('..', import.meta.url).pathname;
const CHART = join(ROOT, 'deploy/helm/snigate');
const MANIFESTS = join(ROOT, 'deploy/manifests');
const RELEASE = { Name: 'snigate', Namespace: 'snigate-system' };

// ---- a Go-template subset renderer ----------------------------------------------------------------

type Node =
  | { t: 'text'; s: string }
  | { t: 'expr'; e: string }
  | { t: 'if'; e: string; yes: Node[]; no: Node[] }
  | { t: 'range'; e: string; body: Node[] };

function parseTemplate(src: string): Node[] {
  const tokens: ({ t: 'text'; s: string } | { t: 'action'; s: string })[] = [];
  let last = 0;
  for (const m of src.matchAll(/\{\{(-?)\s*([\s\S]*?)\s*(-?)\}\}/g)) {
    let text = src.slice(last, m.index);
    if (m[1] === '-') text = text.replace(/\s+$/, '');
    tokens.push({ t: 'text', s: text });
    tokens.push({ t: 'action', s: m[2]! });
    last = m.index + m[0].length;
    if (m[3] === '-') {
      const rest = src.slice(last);
      last += rest.length - rest.replace(/^\s+/, '').length;
    }
  }
  tokens.push({ t: 'text', s: src.slice(last) });
  let i = 0;
  const block = (): { nodes: Node[]; end: string } => {
    const nodes: Node[] = [];
    while (i < tokens.length) {
      const tok = tokens[i++]!;
      if (tok.t === 'text') {
        if (tok.s) nodes.push({ t: 'text', s: tok.s });
        continue;
      }
      const a = tok.s;
      if (a.startsWith('/*')) continue;
      if (a === 'end' || a === 'else') return { nodes, end: a };
      if (a.startsWith('if ')) {
        const yes = block();
        const no = yes.end === 'else' ? block().nodes : [];
        nodes.push({ t: 'if', e: a.slice(3), yes: yes.nodes, no });
      } else if (a.startsWith('range ')) {
        nodes.push({ t: 'range', e: a.slice(6), body: block().nodes });
      } else if (/^(define|template|include|with|block|tpl)\b/.test(a)) {
        throw new Error(`the chart must stay within the tested subset: {{ ${a} }}`);
      } else {
        nodes.push({ t: 'expr', e: a });
      }
    }
    return { nodes, end: '' };
  };
  return block().nodes;
}

const FUNCS: Record<string, (...a: any[]) => unknown> = {
  quote: (v) => JSON.stringify(String(v ?? '')),
  toYaml: (v) => stringify(v).trimEnd(),
  nindent: (n, s) => `\n${indent(Number(n), String(s))}`,
  indent: (n, s) => indent(Number(n), String(s)),
  default: (d, v) => (truthy(v) ? v : d),
  not: (v) => !truthy(v),
};

function indent(n: number, s: string): string {
  return s
    .split('\n')
    .map((l) => ' '.repeat(n) + l)
    .join('\n');
}

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return Boolean(v);
}

function evalExpr(e: string, dot: unknown, root: Obj): unknown {
  let piped: unknown;
  let first = true;
  for (const cmd of e.split('|').map((c) => c.trim())) {
    const words = cmd.match(/"[^"]*"|\S+/g) ?? [];
    const val = (w: string): unknown => {
      if (w.startsWith('"')) return JSON.parse(w);
      if (/^-?\d+$/.test(w)) return Number(w);
      if (w === 'true' || w === 'false') return w === 'true';
      let cur: any = w.startsWith('$') ? root : dot;
      for (const p of w.replace(/^\$/, '').split('.').filter(Boolean)) {
        if (cur === undefined || cur === null) throw new Error(`{{ ${e} }}: ${w} is undefined`);
        cur = cur[p];
      }
      return cur;
    };
    const fn = FUNCS[words[0]!];
    if (fn) {
      const args = words.slice(1).map(val);
      if (!first) args.push(piped);
      piped = fn(...args);
    } else {
      if (!first || words.length !== 1) throw new Error(`unsupported expression {{ ${e} }}`);
      piped = val(words[0]!);
    }
    first = false;
  }
  return piped;
}

function renderNodes(nodes: Node[], dot: unknown, root: Obj): string {
  let out = '';
  for (const n of nodes) {
    if (n.t === 'text') out += n.s;
    else if (n.t === 'expr') {
      const v = evalExpr(n.e, dot, root);
      if (v === undefined || v === null) throw new Error(`{{ ${n.e} }} has no value`);
      out += String(v);
    } else if (n.t === 'if') out += renderNodes(truthy(evalExpr(n.e, dot, root)) ? n.yes : n.no, dot, root);
    else
      for (const item of (evalExpr(n.e, dot, root) as unknown[]) ?? [])
        out += renderNodes(n.body, item, root);
  }
  return out;
}

function deepMerge(a: Obj, b: Obj): Obj {
  const out: Obj = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && a[k] && typeof a[k] === 'object'
        ? deepMerge(a[k], v)
        : v;
  }
  return out;
}

function templates(): string[] {
  return readdirSync(join(CHART, 'templates'))
    .filter((f) => f.endsWith('.yaml'))
    .sort();
}

function renderFile(file: string, overrides: Obj = {}): string {
  const values = deepMerge(parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8')), overrides);
  const chart = parseYaml(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'));
  const root = {
    Values: values,
    Release: RELEASE,
    Chart: { Name: chart.name, AppVersion: chart.appVersion, Version: chart.version },
  };
  return renderNodes(parseTemplate(readFileSync(join(CHART, 'templates', file), 'utf8')), root, root);
}

function parseObjects(text: string, where: string): Obj[] {
  return parseAllDocuments(text).flatMap((d) => {
    assert.deepEqual(d.errors, [], `${where}: ${d.errors.map((e) => e.message).join('; ')}`);
    const v = d.toJS();
    return v === null || v === undefined ? [] : [v as Obj];
  });
}

function render(overrides: Obj = {}): Obj[] {
  return templates().flatMap((f) => parseObjects(renderFile(f, overrides), f));
}

const find = (objs: Obj[], kind: string, name?: string) =>
  objs.find((o) => o.kind === kind && (!name || o.metadata.name === name));

// ---- tests ------------------------------------------------------------------------------------------

describe('Helm chart (rendered by the test renderer)', () => {
  test('renders the expected objects, each a well-formed Kubernetes object', () => {
    const objs = render();
    assert.deepEqual(objs.map((o) => o.kind).sort(), [
      'ClusterRole',
      'ClusterRoleBinding',
      'Deployment',
      'GatewayClass',
      'IngressClass',
      'PodDisruptionBudget',
      'Role',
      'RoleBinding',
      'Service',
      'ServiceAccount',
    ]);
    for (const o of objs) {
      assert.match(o.apiVersion, /^[a-z0-9.]*\/?v\d/, `${o.kind} apiVersion`);
      assert.match(o.metadata.name, /^[a-z0-9][a-z0-9.-]*$/);
      assert.equal(o.metadata.labels?.['app.kubernetes.io/instance'], 'snigate', `${o.kind} labels`);
    }
  });

  test('RBAC: get/list/watch on exactly the kinds the source watches, patch on the statuses written, a Lease role', () => {
    const objs = render();
    const rules = find(objs, 'ClusterRole')!.rules as {
      apiGroups: string[];
      resources: string[];
      verbs: string[];
    }[];
    const grants = new Map<string, string[]>();
    for (const r of rules)
      for (const g of r.apiGroups) for (const res of r.resources) grants.set(`${g}/${res}`, r.verbs);
    for (const k of KINDS)
      assert.deepEqual(grants.get(`${k.group}/${k.plural}`), ['get', 'list', 'watch'], `${k.kind}`);
    for (const s of ['gatewayclasses', 'gateways', 'httproutes', 'tlsroutes', 'tcproutes']) {
      assert.deepEqual(grants.get(`gateway.networking.k8s.io/${s}/status`), ['patch']);
    }
    assert.deepEqual(grants.get('networking.k8s.io/ingresses/status'), ['patch']);
    assert.equal(grants.size, KINDS.length + 6, 'nothing else');
    for (const v of grants.values()) assert.ok(!v.includes('*'));
    const role = find(objs, 'Role')!;
    assert.equal(role.metadata.namespace, 'snigate-system');
    assert.deepEqual(role.rules, [
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
    ]);
    const sa = find(objs, 'ServiceAccount')!;
    for (const b of [find(objs, 'ClusterRoleBinding')!, find(objs, 'RoleBinding')!]) {
      assert.deepEqual(b.subjects, [
        { kind: 'ServiceAccount', name: sa.metadata.name, namespace: 'snigate-system' },
      ]);
    }
  });

  test('Deployment: non-root, no capabilities, low ports by sysctl, probes on the admin port, downward-API identity', () => {
    const objs = render();
    const d = find(objs, 'Deployment')!;
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    assert.equal(d.spec.replicas, 2);
    assert.equal(pod.serviceAccountName, 'snigate');
    assert.deepEqual(d.spec.selector.matchLabels, d.spec.template.metadata.labels);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, 1000);
    assert.deepEqual(pod.securityContext.sysctls, [
      { name: 'net.ipv4.ip_unprivileged_port_start', value: '0' },
    ]);
    assert.deepEqual(c.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    assert.equal(c.image, 'ghcr.io/snigate/snigate:0.1.0');
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'admin' });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'admin' });
    assert.ok(c.ports.some((p: Obj) => p.name === 'admin' && p.containerPort === 9901));
    assert.ok(c.args.includes('--admin=0.0.0.0:9901'));
    assert.ok(c.args.includes('--enable-tls-passthrough=true'));
    assert.ok(c.args.includes('--publish-service=snigate-system/snigate'));
    assert.ok(c.args.includes('--ingress-class-controller=snigate.io/ingress-controller'));
    assert.ok(!c.args.includes('--no-custom-resources'));
    assert.deepEqual(
      c.env.map((e: Obj) => [e.name, e.valueFrom.fieldRef.fieldPath]),
      [
        ['POD_NAME', 'metadata.name'],
        ['POD_NAMESPACE', 'metadata.namespace'],
      ],
    );
    assert.deepEqual(c.resources, {
      requests: { cpu: '100m', memory: '128Mi' },
      limits: { memory: '512Mi' },
    });
    assert.ok(pod.terminationGracePeriodSeconds > 30, 'longer than --drain-timeout');
    assert.ok(c.args.includes('--drain-timeout=30'));
  });

  test('the container args are flags `snigate run --kubernetes` accepts', async () => {
    for (const overrides of [{}, { controller: { enableCustomResources: false, watchNamespaces: ['a'] } }]) {
      const c = find(render(overrides), 'Deployment')!.spec.template.spec.containers[0];
      const write = process.stdout.write;
      process.stdout.write = (() => true) as typeof process.stdout.write;
      try {
        assert.equal(await main(['run', '--kubernetes', ...c.args, '--help']), 0);
      } finally {
        process.stdout.write = write;
      }
    }
  });

  test('Service: LoadBalancer, ports onto the container ports, client address kept', () => {
    const objs = render();
    const svc = find(objs, 'Service')!;
    const c = find(objs, 'Deployment')!.spec.template.spec.containers[0];
    assert.equal(svc.spec.type, 'LoadBalancer');
    assert.equal(svc.spec.externalTrafficPolicy, 'Local');
    assert.deepEqual(svc.spec.selector, find(objs, 'Deployment')!.spec.selector.matchLabels);
    for (const p of svc.spec.ports)
      assert.ok(
        c.ports.some((cp: Obj) => cp.containerPort === p.targetPort),
        `port ${p.port}`,
      );
    assert.deepEqual(
      svc.spec.ports.map((p: Obj) => p.port),
      [443, 80],
    );
    assert.equal(find(objs, 'PodDisruptionBudget')!.spec.minAvailable, 1);
    assert.equal(find(objs, 'GatewayClass')!.spec.controllerName, 'snigate.io/gateway-controller');
    assert.equal(find(objs, 'IngressClass')!.spec.controller, 'snigate.io/ingress-controller');
  });

  test('controller.enableCustomResources=false: no Gateway API RBAC, no GatewayClass, the flag; Ingress stays', () => {
    const objs = render({
      controller: { enableCustomResources: false, enableTLSPassthrough: false, watchNamespaces: ['a', 'b'] },
    });
    const rules = find(objs, 'ClusterRole')!.rules as { apiGroups: string[] }[];
    assert.ok(
      rules.every(
        (r) =>
          !r.apiGroups.includes('gateway.networking.k8s.io') && !r.apiGroups.includes('gateway.snigate.io'),
      ),
    );
    assert.ok(rules.some((r) => r.apiGroups.includes('networking.k8s.io')));
    assert.equal(find(objs, 'GatewayClass'), undefined);
    assert.ok(find(objs, 'IngressClass'));
    const args: string[] = find(objs, 'Deployment')!.spec.template.spec.containers[0].args;
    assert.ok(args.includes('--no-custom-resources'));
    assert.ok(args.includes('--enable-tls-passthrough=false'));
    assert.deepEqual(
      args.filter((a) => a.startsWith('--watch-namespace')),
      ['--watch-namespace=a', '--watch-namespace=b'],
    );
  });

  test('options: no PDB, no sysctl, default IngressClass', () => {
    const objs = render({
      podDisruptionBudget: { enabled: false },
      unprivilegedPorts: false,
      controller: { ingressClass: { default: true } },
    });
    assert.equal(find(objs, 'PodDisruptionBudget'), undefined);
    assert.equal(find(objs, 'Deployment')!.spec.template.spec.securityContext.sysctls, undefined);
    assert.equal(
      find(objs, 'IngressClass')!.metadata.annotations['ingressclass.kubernetes.io/is-default-class'],
      'true',
    );
  });
});

describe('plain manifests (deploy/manifests)', () => {
  const HEADER =
    '# Generated from deploy/helm/snigate with its default values (release snigate, namespace snigate-system)\n# by test/deploy.test.ts: UPDATE_MANIFESTS=1 node --test test/deploy.test.ts. Do not edit by hand.\n';
  const NAMESPACE = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'snigate-system' } };

  if (process.env.UPDATE_MANIFESTS) {
    writeFileSync(join(MANIFESTS, '00-namespace.yaml'), HEADER + stringify(NAMESPACE));
    for (const f of templates()) {
      const objs = parseObjects(renderFile(f), f);
      if (objs.length > 0)
        writeFileSync(join(MANIFESTS, f), HEADER + objs.map((o) => stringify(o)).join('---\n'));
    }
  }

  test('equal the default rendering of the chart, object for object', () => {
    const files = readdirSync(MANIFESTS)
      .filter((f) => f.endsWith('.yaml'))
      .sort();
    const plain = files.flatMap((f) => parseObjects(readFileSync(join(MANIFESTS, f), 'utf8'), f));
    assert.deepEqual(plain[0], NAMESPACE);
    assert.deepEqual(plain.slice(1), render());
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8');
  test('node:24-slim, production deps, non-root matching the chart, entrypoint run --kubernetes', () => {
    assert.match(text, /^FROM node:24-slim AS deps$/m);
    assert.match(text, /^FROM node:24-slim$/m);
    assert.match(text, /npm install --omit=dev --no-audit --no-fund/);
    assert.match(text, /setcap cap_net_bind_service=\+ep/);
    assert.match(text, /^USER 1000:1000$/m);
    assert.match(text, /^ENTRYPOINT \["node", "src\/main\.ts", "run", "--kubernetes"\]$/m);
    const ignore = readFileSync(join(ROOT, 'deploy/Dockerfile.dockerignore'), 'utf8');
    assert.match(ignore, /^\*\*\/\*\.test\.ts$/m);
  });
});

describe('CRDs for snigate policies (deploy/helm/snigate/crds)', () => {
  test('parse, and the examples in the README validate against the same field names', () => {
    const dir = new URL('../deploy/helm/snigate/crds/', import.meta.url).pathname;
    const crds = readdirSync(dir).map((f) => parseYaml(readFileSync(dir + f, 'utf8')));
    assert.deepEqual(crds.map((c) => c.spec.names.kind).sort(), [
      'BackendTrafficPolicy',
      'ClientTrafficPolicy',
      'SecurityPolicy',
    ]);
    for (const c of crds) {
      assert.equal(c.spec.group, 'gateway.snigate.io');
      const v = c.spec.versions[0];
      assert.equal(v.name, 'v1alpha1');
      assert.deepEqual(v.subresources, { status: {} });
      assert.ok(v.schema.openAPIV3Schema.properties.spec.properties.targetRefs);
    }
  });
});
