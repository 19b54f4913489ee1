/** The file-mode control loop: load → translate → apply to the data plane; a bad change keeps the last good config. */
import type { Logger } from 'pino';
import { formatDiagnostic } from '../api/diagnostics.ts';
import {
  type PipelineArgs,
  type PipelineResult,
  translateOptions,
  translateSnapshot,
} from '../cli/pipeline.ts';
import type { DataPlane } from '../dataplane/server.ts';
import type { RoutingTable } from '../table/types.ts';
import { translate } from '../translate/index.ts';
import type { Source } from './source.ts';

export interface ReloadRecord {
  at: string;
  ok: boolean;
  /** Why the change was refused (the previous config keeps serving). */
  errors: string[];
  trigger: string;
}

export interface ServingState {
  result: PipelineResult;
  table: RoutingTable;
  programmedAt: string;
  bindFailures: { address: string | null; port: number; code: string }[];
}

export interface ReconcilerOptions {
  source: Source;
  /** Translation options (class, controller name, status address); `files` is informational. */
  args: PipelineArgs;
  dataPlane: DataPlane;
  logger: Logger;
  /** Shifts every listener port (run as non-root: 443 → 10443 with 10000). */
  portOffset: number;
  defaultAddresses: string[];
  /**
   * Builds what the table needs beyond the data plane (WAF engines, rate limiters); returns why it cannot be
   * served (the change is refused then, like an invalid manifest).
   */
  prepare?: (table: RoutingTable) => string[];
}

export class Reconciler {
  readonly #o: ReconcilerOptions;
  #serving: ServingState | null = null;
  #lastReload: ReloadRecord | null = null;
  #reloads = 0;
  #failures = 0;
  #busy: Promise<void> = Promise.resolve();

  constructor(o: ReconcilerOptions) {
    this.#o = o;
  }

  get serving(): ServingState | null {
    return this.#serving;
  }
  get lastReload(): ReloadRecord | null {
    return this.#lastReload;
  }
  /** Finished reloads (programmed or refused) and, of those, refused ones. */
  get counts(): { reloads: number; failures: number } {
    return { reloads: this.#reloads, failures: this.#failures };
  }

  /** Reloads are serialised: a change arriving mid-reload runs after it. */
  reload(trigger: string): Promise<ReloadRecord> {
    const run = this.#busy.then(() => this.#reload(trigger));
    this.#busy = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #reload(trigger: string): Promise<ReloadRecord> {
    const { logger } = this.#o;
    const at = new Date().toISOString();
    let result: PipelineResult;
    let objects = 0;
    try {
      const snap = await this.#o.source.snapshot();
      objects = snap.objectCount;
      result = translateSnapshot(snap, this.#o.args);
    } catch (e) {
      return this.#refuse(at, trigger, [`reading ${this.#o.source.name} failed: ${(e as Error).message}`]);
    }
    const errors = result.allDiagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
    for (const d of result.allDiagnostics) {
      if (d.severity === 'warning')
        logger.warn({ code: d.code, object: d.object, path: d.path, file: d.file, line: d.line }, d.message);
    }
    if (errors.length > 0) return this.#refuse(at, trigger, errors);

    const table = shiftPorts(result.table, this.#o.portOffset);
    const unservable = this.#o.prepare?.(table) ?? [];
    if (unservable.length > 0) return this.#refuse(at, trigger, unservable);
    const applied = await this.#o.dataPlane.apply(table);
    const bindFailures = applied.binds
      .filter((b) => !b.ok)
      // Binding :: where the machine has no IPv6 is not a failure while 0.0.0.0 works.
      .filter(
        (b) =>
          !(
            b.address === '::' &&
            this.#o.defaultAddresses.length > 1 &&
            ['EAFNOSUPPORT', 'EADDRNOTAVAIL'].includes((b as { error: string }).error)
          ),
      )
      .map((b) => ({
        address: this.#o.defaultAddresses.includes(b.address) ? null : b.address,
        port: b.port - this.#o.portOffset,
        code: (b as { error: string }).error,
      }));
    if (bindFailures.length > 0) {
      // Re-translate so status says which listeners could not get their port.
      const again = translate(result.resources, translateOptions({ ...this.#o.args, bindFailures }));
      result = { ...result, statuses: again.statuses };
      for (const f of bindFailures)
        logger.error({ address: f.address ?? 'default', port: f.port, code: f.code }, 'cannot listen');
    }
    this.#serving = { result, table, programmedAt: at, bindFailures };
    // Counted when finished (programmed or refused), so a counter change means lastReload is that reload.
    this.#reloads++;
    this.#lastReload = { at, ok: true, errors: [], trigger };
    const listeners = table.binds.reduce((n, b) => n + b.listeners.length, 0);
    const routes = table.binds.reduce((n, b) => n + b.listeners.reduce((m, l) => m + l.routes.length, 0), 0);
    logger.info(
      { source: this.#o.source.name, trigger, binds: table.binds.length, listeners, routes, objects },
      'configuration programmed',
    );
    return this.#lastReload;
  }

  #refuse(at: string, trigger: string, errors: string[]): ReloadRecord {
    this.#reloads++;
    this.#failures++;
    this.#lastReload = { at, ok: false, errors, trigger };
    this.#o.logger.error(
      { trigger, errors, keptConfigFrom: this.#serving?.programmedAt ?? null },
      this.#serving
        ? 'configuration change refused: the last good configuration keeps serving'
        : 'configuration is invalid',
    );
    return this.#lastReload;
  }
}

export function shiftPorts(table: RoutingTable, offset: number): RoutingTable {
  if (offset === 0) return table;
  return { binds: table.binds.map((b) => ({ ...b, port: b.port + offset })) };
}
