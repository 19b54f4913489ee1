/** Watch manifest files and directories; call back once per burst of changes (debounced). */
import { type FSWatcher, statSync, watch } from 'node:fs';
import { dirname, resolve } from 'node:path';

export interface FileWatchOptions {
  debounceMs: number;
  onChange: (reason: string) => void;
  onError: (err: Error) => void;
}

/**
 * Directories are watched recursively. A single file is watched through its directory so that editors
 * that replace files (write + rename) keep being seen.
 */
export function watchPaths(paths: string[], opts: FileWatchOptions): { close(): void } {
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | null = null;
  let last = '';
  const fire = (what: string) => {
    last = what;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      opts.onChange(last);
    }, opts.debounceMs);
  };
  for (const p of paths) {
    const abs = resolve(p);
    let isDir = false;
    try {
      isDir = statSync(abs).isDirectory();
    } catch {
      isDir = false;
    }
    try {
      const target = isDir ? abs : dirname(abs);
      const w = watch(target, { recursive: isDir, persistent: true }, (_event, file) => {
        const name = file ? resolve(target, file.toString()) : target;
        if (!isDir && name !== abs) return;
        if (/(^|\/)\.[^/]*$|~$|\.swp$/.test(name)) return;
        fire(name);
      });
      w.on('error', (e) => opts.onError(e));
      watchers.push(w);
    } catch (e) {
      opts.onError(e as Error);
    }
  }
  return {
    close() {
      if (timer) clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
