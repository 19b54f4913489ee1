/** Shared by the golden and conformance tests: load a case (with fixtures and generated PKI) and translate it. */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { createCA } from '../../test/support/certs.ts';
import type { Diagnostic } from '../api/diagnostics.ts';
import { type ParsedObject, parseManifests, toResources } from '../api/parse.ts';
import type { ConfigMap, Secret } from '../api/types.ts';
import { redactTable } from '../table/redact.ts';
import type { RoutingTable } from '../table/types.ts';
import { DEFAULT_CONTROLLER_NAME, type TranslateOptions, type TranslateResult, translate } from './index.ts';

export const TESTDATA = join(import.meta.dirname, 'testdata');

export interface GoldenOptions {
  include?: string[];
  translate?: Partial<TranslateOptions>;
}

export interface CaseResult extends TranslateResult {
  loadDiagnostics: Diagnostic[];
  /** Objects defined by the case file itself (not its includes), as kind/namespace/name. */
  caseKeys: Set<string>;
}

/** Split out the `kind: GoldenOptions` document, substitute the conformance placeholders. */
function prepare(text: string): { text: string; options: GoldenOptions } {
  let options: GoldenOptions = {};
  const docs = text.split(/^---\s*$/m).filter((d) => {
    if (!/^kind:\s*GoldenOptions\s*$/m.test(d)) return true;
    options = (parseYaml(d) ?? {}) as GoldenOptions;
    return false;
  });
  const body = docs
    .join('---\n')
    .replaceAll('{GATEWAY_CLASS_NAME}', 'snigate')
    .replaceAll('{GATEWAY_CONTROLLER_NAME}', DEFAULT_CONTROLLER_NAME);
  return { text: body, options };
}

/** Fill in generated key material where a fixture asks for it; nothing secret is ever stored in testdata. */
function fillPki(objects: ParsedObject[]): void {
  const ca = createCA('golden-ca');
  for (const { object } of objects) {
    const ann = object.metadata.annotations ?? {};
    const sans = ann['golden.snigate.io/certificate'];
    if (object.kind === 'Secret' && sans) {
      const client = sans === 'client';
      const list = client ? [] : sans.split(',');
      const pair = ca.issue({
        cn: list[0] ?? 'client',
        sans: client ? undefined : list,
        client,
        pkcs1: true,
      });
      (object as Secret).data = {
        'tls.crt': Buffer.from(pair.certPem).toString('base64'),
        'tls.key': Buffer.from(pair.keyPem).toString('base64'),
      };
    }
    if (object.kind === 'ConfigMap' && ann['golden.snigate.io/ca']) {
      (object as ConfigMap).data = { 'ca.crt': ca.certPem };
    }
  }
}

export const REPO = join(import.meta.dirname, '..', '..');

/** A runnable example folder (examples/…), every manifest in it, plus fixtures from testdata/examples. */
export function runExample(dir: string, fixtures: string[] = []): CaseResult {
  const loadDiagnostics: Diagnostic[] = [];
  const objects: ParsedObject[] = [];
  const files = [
    ...readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort()
      .map((f) => join(dir, f)),
    ...fixtures.map((f) => join(TESTDATA, 'examples', f)),
  ];
  for (const f of files) {
    const r = parseManifests(readFileSync(f, 'utf8'), relative(REPO, f));
    objects.push(...r.objects);
    loadDiagnostics.push(...r.diagnostics);
  }
  fillPki(objects);
  const { resources, diagnostics } = toResources(objects);
  loadDiagnostics.push(...diagnostics);
  const result = translate(resources, {
    controllerName: DEFAULT_CONTROLLER_NAME,
    serveUnknownClasses: true,
    statusAddresses: ['127.0.0.1'],
  });
  return { ...result, loadDiagnostics, caseKeys: new Set() };
}

export function runCase(file: string, extra: string[] = []): CaseResult {
  const { text, options } = prepare(readFileSync(file, 'utf8'));
  const loadDiagnostics: Diagnostic[] = [];
  const objects: ParsedObject[] = [];
  const dir = join(file, '..');
  for (const inc of [...(options.include ?? []), ...extra]) {
    const p = prepare(readFileSync(join(dir, inc), 'utf8'));
    const r = parseManifests(p.text, inc);
    objects.push(...r.objects);
    loadDiagnostics.push(...r.diagnostics);
  }
  const own = parseManifests(text, file.slice(TESTDATA.length + 1));
  objects.push(...own.objects);
  loadDiagnostics.push(...own.diagnostics);
  const caseKeys = new Set(
    own.objects.map((o) => `${o.object.kind}/${o.object.metadata.namespace ?? ''}/${o.object.metadata.name}`),
  );
  fillPki(objects);
  const { resources, diagnostics } = toResources(objects);
  loadDiagnostics.push(...diagnostics);
  const result = translate(resources, {
    controllerName: DEFAULT_CONTROLLER_NAME,
    serveUnknownClasses: true,
    statusAddresses: ['127.0.0.1'],
    ...options.translate,
  });
  return { ...result, loadDiagnostics, caseKeys };
}

/** The canonical golden text: PEM redacted, only the case's own objects when it includes fixtures. */
export function renderGolden(r: CaseResult, onlyCase: boolean): string {
  const keep = (kind: string, ns: string | undefined, name: string) =>
    !onlyCase || r.caseKeys.has(`${kind}/${ns ?? ''}/${name}`);
  const statuses = r.statuses.filter((s) => keep(s.kind, s.metadata.namespace, s.metadata.name));
  const gateways = new Set(
    statuses.filter((s) => s.kind === 'Gateway').map((s) => `${s.metadata.namespace}/${s.metadata.name}`),
  );
  const table: RoutingTable = {
    binds: redactTable(r.table)
      .binds.map((b) => ({
        ...b,
        listeners: b.listeners.filter(
          (l) => !onlyCase || gateways.has(`${l.gateway.namespace}/${l.gateway.name}`),
        ),
      }))
      .filter((b) => b.listeners.length > 0),
  };
  const diagnostics = [...r.loadDiagnostics, ...r.diagnostics]
    .filter((d) => !d.object || keep(d.object.kind, d.object.namespace, d.object.name))
    .filter((d) => d.code !== 'unknown-kind' || !onlyCase);
  return stringify({ diagnostics, statuses, table }, { lineWidth: 0, aliasDuplicateObjects: false });
}
