/** Watch manifest files and directories; call back once per burst of changes (debounced). */
import { type FSWatcher, readdirSync, statSync, watch } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export interface FileWatchOptions {
  debounceMs: number;
  onChange: (reason: string) => void;
  onError: (err: Error) => void;
  /**
   * How often to compare a fingerprint of the files (path, size, mtime, inode) as a safety net: inotify
   * misses some atomic replaces (write a temp file, rename it over the old one) after the first. Default 2 s.
   */
  pollMs?: number;
}

const IGNORED = /(^|\/)\.[^/]*$|~$|\.swp$/;

/** path|size|mtime|inode of every manifest under the paths: cheap, and changes on any replace. */
function fingerprint(paths: string[]): string {
  const parts: string[] = [];
  const visit = (p: string, depth: number) => {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(p);
    } catch {
      parts.push(`${p}|missing`);
      return;
    }
    if (st.isDirectory()) {
      if (depth > 32) return;
      let names: string[] = [];
      try {
        names = readdirSync(p).sort();
      } catch {
        return;
      }
      for (const n of names) if (!n.startsWith('.')) visit(join(p, n), depth + 1);
      return;
    }
    if (depth > 0 && !/\.(ya?ml|json)$/.test(p)) return;
    parts.push(`${p}|${st.size}|${st.mtimeMs}|${st.ino}`);
  };
  for (const p of paths) visit(resolve(p), 0);
  return parts.join('\n');
}

/**
 * Directories are watched recursively. A single file is watched through its directory so that editors
 * that replace files (write + rename) keep being seen; a periodic fingerprint catches what inotify misses.
 */
export function watchPaths(paths: string[], opts: FileWatchOptions): { close(): void } {
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | null = null;
  let last = '';
  let print = fingerprint(paths);
  const fire = (what: string) => {
    last = what;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      print = fingerprint(paths);
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
        if (IGNORED.test(name)) return;
        fire(name);
      });
      w.on('error', (e) => opts.onError(e));
      watchers.push(w);
    } catch (e) {
      opts.onError(e as Error);
    }
  }
  const poll = setInterval(() => {
    if (timer) return;
    const now = fingerprint(paths);
    if (now !== print) fire(paths.join(', '));
  }, opts.pollMs ?? 2_000);
  poll.unref();
  return {
    close() {
      if (timer) clearTimeout(timer);
      clearInterval(poll);
      for (const w of watchers) w.close();
    },
  };
}
