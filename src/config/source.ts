/** Where resources come from: the file source and the Kubernetes source implement this one interface. */
import type { Diagnostic } from '../api/diagnostics.ts';
import type { Resources } from '../api/types.ts';

export interface SourceSnapshot {
  resources: Resources;
  /** Problems reading the resources; errors make the reconciler keep the last good configuration. */
  diagnostics: Diagnostic[];
  /** How many objects were read (for logs and `validate`). */
  objectCount: number;
}

export interface Source {
  /** `files` or `kubernetes`: shown in logs and /status. */
  readonly name: string;
  /** A consistent snapshot of everything the translator reads. */
  snapshot(): Promise<SourceSnapshot>;
  /** Start watching; `onChange` is called (debounced by the source) whenever a snapshot would differ. */
  start(onChange: (reason: string) => void): void;
  stop(): void;
}
