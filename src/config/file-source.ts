/** The file source: manifests from files and directories, watched for changes (the embedded default). */
import type { ParseOptions } from '../api/parse.ts';
import { watchPaths } from './file-watch.ts';
import { loadPaths } from './load.ts';
import type { Source, SourceSnapshot } from './source.ts';

export interface FileSourceOptions extends ParseOptions {
  paths: string[];
  debounceMs?: number;
  onWatchError?: (err: Error) => void;
}

export class FileSource implements Source {
  readonly name = 'files';
  readonly #o: FileSourceOptions;
  #watcher: { close(): void } | null = null;

  constructor(o: FileSourceOptions) {
    this.#o = o;
  }

  async snapshot(): Promise<SourceSnapshot> {
    const r = await loadPaths(this.#o.paths, { namespace: this.#o.namespace, strict: this.#o.strict });
    return { resources: r.resources, diagnostics: r.diagnostics, objectCount: r.objects.length };
  }

  start(onChange: (reason: string) => void): void {
    this.#watcher = watchPaths(this.#o.paths, {
      debounceMs: this.#o.debounceMs ?? 300,
      onChange: (what) => onChange(`file changed: ${what}`),
      onError: (e) => this.#o.onWatchError?.(e),
    });
  }

  stop(): void {
    this.#watcher?.close();
    this.#watcher = null;
  }
}
