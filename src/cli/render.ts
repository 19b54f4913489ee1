/** Render computed statuses for people: YAML/JSON as `kubectl get -o yaml` shows them, or `-o wide` tables. */
import { stringify } from 'yaml';
import type { Condition } from '../api/types.ts';
import type { ObjectStatus } from '../translate/index.ts';

export type OutputFormat = 'yaml' | 'json' | 'wide';

/**
 * Statuses as the API server would hold them. The translator is clock-free; like a status writer we stamp
 * `lastTransitionTime` here, with the time the configuration was loaded.
 */
export function withTransitionTimes(statuses: ObjectStatus[], at: string): ObjectStatus[] {
  const stamp = (cs: unknown): unknown =>
    Array.isArray(cs)
      ? (cs as Condition[]).map((c) => ({ ...c, lastTransitionTime: c.lastTransitionTime ?? at }))
      : cs;
  return statuses.map((s) => {
    const st: Record<string, unknown> = { ...s.status };
    if (st.conditions) st.conditions = stamp(st.conditions);
    if (Array.isArray(st.listeners)) {
      st.listeners = (st.listeners as Record<string, unknown>[]).map((l) => ({
        ...l,
        conditions: stamp(l.conditions),
      }));
    }
    if (Array.isArray(st.parents)) {
      st.parents = (st.parents as Record<string, unknown>[]).map((p) => ({
        ...p,
        conditions: stamp(p.conditions),
      }));
    }
    return { ...s, status: st };
  });
}

export function renderStatuses(statuses: ObjectStatus[], format: OutputFormat): string {
  if (format === 'json') {
    return `${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: statuses }, null, 2)}\n`;
  }
  if (format === 'yaml') {
    return statuses.map((s) => stringify(s, { lineWidth: 0 })).join('---\n');
  }
  return renderWide(statuses);
}

function cond(conds: unknown, type: string): string {
  const c = (conds as Condition[] | undefined)?.find((x) => x.type === type);
  if (!c) return '-';
  return c.status === 'True' && (c.reason === type || c.reason === 'Accepted' || c.reason === 'Programmed')
    ? 'True'
    : `${c.status}/${c.reason}`;
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

function renderWide(statuses: ObjectStatus[]): string {
  const out: string[] = [];
  const classes = statuses.filter((s) => s.kind === 'GatewayClass');
  if (classes.length > 0) {
    out.push(
      table(
        ['GATEWAYCLASS', 'ACCEPTED'],
        classes.map((s) => [s.metadata.name, cond(s.status.conditions, 'Accepted')]),
      ),
    );
  }
  const gws = statuses.filter((s) => s.kind === 'Gateway');
  if (gws.length > 0) {
    out.push(
      table(
        ['NAMESPACE', 'GATEWAY', 'ADDRESSES', 'ACCEPTED', 'PROGRAMMED'],
        gws.map((s) => [
          s.metadata.namespace ?? '',
          s.metadata.name,
          ((s.status.addresses as { value: string }[] | undefined) ?? []).map((a) => a.value).join(',') ||
            '-',
          cond(s.status.conditions, 'Accepted'),
          cond(s.status.conditions, 'Programmed'),
        ]),
      ),
    );
    const rows: string[][] = [];
    for (const s of gws) {
      for (const l of (s.status.listeners as Record<string, unknown>[] | undefined) ?? []) {
        rows.push([
          `${s.metadata.namespace}/${s.metadata.name}`,
          String(l.name),
          String(l.attachedRoutes),
          cond(l.conditions, 'Accepted'),
          cond(l.conditions, 'Programmed'),
          cond(l.conditions, 'ResolvedRefs'),
          (l.conditions as Condition[]).find((c) => c.type === 'Conflicted')?.reason ?? '-',
        ]);
      }
    }
    out.push(
      table(['GATEWAY', 'LISTENER', 'ROUTES', 'ACCEPTED', 'PROGRAMMED', 'RESOLVEDREFS', 'CONFLICT'], rows),
    );
  }
  const routes = statuses.filter((s) => s.kind.endsWith('Route'));
  if (routes.length > 0) {
    const rows: string[][] = [];
    for (const s of routes) {
      const parents =
        (s.status.parents as { parentRef: Record<string, unknown>; conditions: Condition[] }[] | undefined) ??
        [];
      if (parents.length === 0)
        rows.push([s.kind, `${s.metadata.namespace}/${s.metadata.name}`, '(none)', '-', '-']);
      for (const p of parents) {
        const ref = p.parentRef;
        const parent = `${ref.namespace}/${ref.name}${ref.sectionName ? `/${ref.sectionName}` : ''}${ref.port ? `:${ref.port}` : ''}`;
        rows.push([
          s.kind,
          `${s.metadata.namespace}/${s.metadata.name}`,
          parent,
          cond(p.conditions, 'Accepted'),
          cond(p.conditions, 'ResolvedRefs'),
        ]);
      }
    }
    out.push(table(['KIND', 'ROUTE', 'PARENT', 'ACCEPTED', 'RESOLVEDREFS'], rows));
  }
  const ingresses = statuses.filter((s) => s.kind === 'Ingress');
  if (ingresses.length > 0) {
    out.push(
      table(
        ['NAMESPACE', 'INGRESS', 'ADDRESS'],
        ingresses.map((s) => [
          s.metadata.namespace ?? '',
          s.metadata.name,
          ((s.status.loadBalancer as { ingress?: { ip?: string }[] } | undefined)?.ingress ?? [])
            .map((i) => i.ip)
            .join(',') || '-',
        ]),
      ),
    );
  }
  const policies = statuses.filter((s) => s.kind.endsWith('Policy'));
  if (policies.length > 0) {
    const rows: string[][] = [];
    for (const s of policies) {
      for (const a of (s.status.ancestors as
        | { ancestorRef: Record<string, string>; conditions: Condition[] }[]
        | undefined) ?? []) {
        rows.push([
          s.kind,
          `${s.metadata.namespace}/${s.metadata.name}`,
          `${a.ancestorRef.kind}/${a.ancestorRef.name}${a.ancestorRef.sectionName ? `/${a.ancestorRef.sectionName}` : ''}`,
          cond(a.conditions, 'Accepted'),
        ]);
      }
    }
    out.push(table(['KIND', 'POLICY', 'TARGET', 'ACCEPTED'], rows));
  }
  return `${out.join('\n\n')}\n`;
}
