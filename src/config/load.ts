/** Reads manifest files and directories from disk (the I/O edge) and hands their text to the pure parser. */

import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Diagnostic } from '../api/diagnostics.ts';
import { type ParsedObject, type ParseOptions, parseManifests, toResources } from '../api/parse.ts';
import type { Resources } from '../api/types.ts';

export interface LoadResult {
  resources: Resources;
  objects: ParsedObject[];
  diagnostics: Diagnostic[];
  files: string[];
}

const EXTENSIONS = ['.yaml', '.yml', '.json'];

/** Files and directories (recursive; *.yaml, *.yml, *.json; sorted; hidden entries skipped). */
export async function loadPaths(paths: string[], opts: ParseOptions = {}): Promise<LoadResult> {
  const diagnostics: Diagnostic[] = [];
  const files: string[] = [];
  for (const p of paths) {
    const st = await stat(p).catch(() => undefined);
    if (!st) {
      diagnostics.push({
        severity: 'error',
        code: 'path-not-found',
        message: `no such file or directory: ${p}`,
        file: p,
        hint: 'check the path; directories are read recursively for *.yaml, *.yml and *.json',
      });
    } else if (st.isDirectory()) {
      files.push(...(await walk(p)));
    } else {
      // A file named explicitly is read whatever its extension, like `kubectl apply -f`.
      files.push(p);
    }
  }
  const objects: ParsedObject[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      diagnostics.push({
        severity: 'error',
        code: 'read-failed',
        message: `cannot read: ${(err as Error).message}`,
        file,
      });
      continue;
    }
    const parsed = parseManifests(text, file, opts);
    objects.push(...parsed.objects);
    diagnostics.push(...parsed.diagnostics);
  }
  const built = toResources(objects);
  diagnostics.push(...built.diagnostics);
  return { resources: built.resources, objects, diagnostics, files };
}

async function walk(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  // Byte order, not locale order, so every machine loads (and overrides duplicates) in the same sequence.
  const names = entries
    .filter((e) => !e.name.startsWith('.'))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const e of names) {
    const full = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(full)));
    else if (e.isFile() && EXTENSIONS.some((x) => e.name.endsWith(x))) out.push(full);
  }
  return out;
}
