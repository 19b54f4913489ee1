/** BackendTLSPolicy (Gateway API v1): which backends are re-encrypted, with which SNI and CAs, and its status. */
import { X509Certificate } from 'node:crypto';
import type { BackendTLSPolicy, Condition, Resources } from '../api/types.ts';
import { GATEWAY_GROUP } from '../api/types.ts';
import type { Backend, UpstreamTls } from '../table/types.ts';
import { ConditionType, condition } from './conditions.ts';
import type { ObjectStatus } from './options.ts';
import { byAge } from './sort.ts';

interface Attached {
  policy: BackendTLSPolicy;
  tls: UpstreamTls | null;
  /** Why the CA references fail (the connection must then fail, never fall back to plaintext). */
  problems: { reason: string; message: string }[];
}

export class BackendTlsPolicies {
  readonly #byTarget = new Map<string, Attached>();
  readonly #conflicts = new Map<BackendTLSPolicy, string[]>();
  readonly #missing = new Map<BackendTLSPolicy, string[]>();
  /** Gateways whose accepted routes use a targeted Service: the policy's ancestors. */
  readonly #ancestors = new Map<BackendTLSPolicy, Set<string>>();
  readonly #controllerName: string;

  constructor(res: Resources, controllerName: string) {
    this.#controllerName = controllerName;
    for (const p of [...res.backendTLSPolicies].sort(byAge)) {
      const ns = p.metadata.namespace ?? 'default';
      const attached = resolve(p, res);
      for (const t of p.spec.targetRefs) {
        const svc = res.services.find(
          (s) => s.metadata.name === t.name && (s.metadata.namespace ?? 'default') === ns,
        );
        if (!svc || (t.sectionName && !(svc.spec.ports ?? []).some((sp) => sp.name === t.sectionName))) {
          push(this.#missing, p, `Service ${ns}/${t.name}${t.sectionName ? ` port ${t.sectionName}` : ''}`);
          continue;
        }
        const key = `${ns}/${t.name}${t.sectionName ? `/${t.sectionName}` : ''}`;
        const prev = this.#byTarget.get(key);
        if (prev) {
          push(
            this.#conflicts,
            p,
            `Service ${key} already has BackendTLSPolicy ${prev.policy.metadata.name}`,
          );
          continue;
        }
        this.#byTarget.set(key, attached);
      }
    }
  }

  /** No policy targets any Service: apply() returns every backend unchanged and records nothing. */
  get empty(): boolean {
    return this.#byTarget.size === 0;
  }

  /** Applies the policy of this Service port, if any: TLS settings, or an invalid share when its CAs are unusable. */
  apply(
    b: Backend,
    svc: { namespace: string; name: string; portName: string } | undefined,
    gateways: string[],
    clientCert?: { certPem: string; keyPem: string },
  ): Backend {
    if (!svc) return b;
    const a =
      this.#byTarget.get(`${svc.namespace}/${svc.name}/${svc.portName}`) ??
      this.#byTarget.get(`${svc.namespace}/${svc.name}`);
    if (!a) return b;
    let set = this.#ancestors.get(a.policy);
    if (!set) this.#ancestors.set(a.policy, (set = new Set()));
    for (const g of gateways) set.add(g);
    if (a.tls === null) return { ...b, invalid: b.invalid ?? 'NoValidCACertificate', endpoints: [] };
    return { ...b, tls: clientCert ? { ...a.tls, clientCert } : a.tls };
  }

  statuses(res: Resources): ObjectStatus[] {
    const out: ObjectStatus[] = [];
    for (const p of res.backendTLSPolicies) {
      const gen = p.metadata.generation ?? 1;
      const attached = [...this.#byTarget.values()].find((a) => a.policy === p);
      const conds = (): Condition[] => {
        const missing = this.#missing.get(p);
        const conflicts = this.#conflicts.get(p);
        if (conflicts && !attached)
          return [
            condition(
              ConditionType.Accepted,
              false,
              'Conflicted',
              `${conflicts.join('; ')} (the older policy wins)`,
              gen,
            ),
          ];
        if (!attached)
          return [
            condition(
              ConditionType.Accepted,
              false,
              'TargetNotFound',
              `${(missing ?? []).join(', ')} not found`,
              gen,
            ),
          ];
        const problem = attached.problems[0];
        if (problem) {
          return [
            condition(
              ConditionType.Accepted,
              attached.tls !== null,
              attached.tls !== null ? 'Accepted' : 'NoValidCACertificate',
              attached.tls !== null
                ? 'Policy is accepted'
                : 'none of the CA certificate references is usable: connections to these backends fail (never in plaintext)',
              gen,
            ),
            condition(
              ConditionType.ResolvedRefs,
              false,
              problem.reason,
              attached.problems.map((x) => x.message).join('; '),
              gen,
            ),
          ];
        }
        return [
          condition(ConditionType.Accepted, true, 'Accepted', 'Policy is accepted', gen),
          condition(ConditionType.ResolvedRefs, true, 'ResolvedRefs', 'All references resolved', gen),
        ];
      };
      const gws = [...(this.#ancestors.get(p) ?? [])].sort();
      out.push({
        apiVersion: p.apiVersion,
        kind: 'BackendTLSPolicy',
        metadata: { name: p.metadata.name, namespace: p.metadata.namespace ?? 'default', generation: gen },
        status: {
          ancestors: gws.map((g) => {
            const [namespace, name] = g.split('/');
            return {
              ancestorRef: { group: GATEWAY_GROUP, kind: 'Gateway', namespace, name },
              controllerName: this.#controllerName,
              conditions: conds(),
            };
          }),
        },
      });
    }
    return out;
  }
}

function resolve(p: BackendTLSPolicy, res: Resources): Attached {
  const ns = p.metadata.namespace ?? 'default';
  const v = p.spec.validation;
  const problems: Attached['problems'] = [];
  const sans = (v.subjectAltNames ?? []).map((s) => ({
    type: s.type,
    value: (s.type === 'URI' ? s.uri : s.hostname) ?? '',
  }));
  if (v.wellKnownCACertificates === 'System') {
    return {
      policy: p,
      problems,
      tls: {
        serverName: v.hostname,
        caPem: null,
        insecureSkipVerify: false,
        ...(sans.length ? { subjectAltNames: sans } : {}),
      },
    };
  }
  const pems: string[] = [];
  for (const [i, ref] of (v.caCertificateRefs ?? []).entries()) {
    const where = `spec.validation.caCertificateRefs[${i}]`;
    if ((ref.group ?? '') !== '' || ref.kind !== 'ConfigMap') {
      problems.push({
        reason: 'InvalidKind',
        message: `${where}: ${ref.kind} is not supported; refer to a ConfigMap with key ca.crt`,
      });
      continue;
    }
    const cm = res.configMaps.find(
      (c) => c.metadata.name === ref.name && (c.metadata.namespace ?? 'default') === ns,
    );
    const pem = cm?.data?.['ca.crt'];
    let ok = false;
    try {
      if (pem) {
        new X509Certificate(pem);
        ok = true;
      }
    } catch {
      ok = false;
    }
    if (!ok) {
      problems.push({
        reason: 'InvalidCACertificateRef',
        message: `${where}: ConfigMap ${ns}/${ref.name} ${cm ? 'has no PEM certificate under ca.crt' : 'not found'}`,
      });
      continue;
    }
    pems.push(pem!);
  }
  if (pems.length === 0) return { policy: p, problems, tls: null };
  return {
    policy: p,
    problems,
    tls: {
      serverName: v.hostname,
      caPem: pems.join('\n'),
      insecureSkipVerify: false,
      ...(sans.length ? { subjectAltNames: sans } : {}),
    },
  };
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const a = m.get(k);
  if (a) a.push(v);
  else m.set(k, [v]);
}
