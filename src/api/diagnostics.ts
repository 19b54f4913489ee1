/** Diagnostics: the one shape every problem with user input takes, from loading to translation. */

export type Severity = 'error' | 'warning' | 'info';

export interface ObjectKey {
  kind: string;
  namespace?: string;
  name: string;
}

export interface Diagnostic {
  severity: Severity;
  /** Stable, machine-readable: e.g. `invalid-field`, `legacy-tlsroute-snis`, `unknown-kind`. */
  code: string;
  message: string;
  object?: ObjectKey;
  /** Field path inside the object, e.g. `spec.listeners[0].tls.mode`. */
  path?: string;
  /** Where the object came from, when loaded from a file. */
  file?: string;
  line?: number;
  /** What to write instead. */
  hint?: string;
}

export function objectKeyString(k: ObjectKey): string {
  return k.namespace ? `${k.kind} ${k.namespace}/${k.name}` : `${k.kind} ${k.name}`;
}

/** One line for a terminal: `error[invalid-field] TLSRoute default/x spec.hostnames: ... (file.yaml:12)`. */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.object ? ` ${objectKeyString(d.object)}` : '';
  const path = d.path ? ` ${d.path}:` : where ? ':' : '';
  const loc = d.file ? ` (${d.file}${d.line ? `:${d.line}` : ''})` : '';
  const hint = d.hint ? `\n    hint: ${d.hint}` : '';
  return `${d.severity}[${d.code}]${where}${path} ${d.message}${loc}${hint}`;
}
