/** `snigate convert -f PATH`: reads raw manifests (no validation, so legacy forms are seen as written) and prints Gateway API v1 YAML. */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { convert, type InputObject, renderConverted } from '../convert/index.ts';
import { isObj } from '../convert/types.ts';
import { ErrorCode, SnigateError } from '../errors.ts';

export interface ConvertArgs {
  files: string[];
  namespace?: string;
  gatewayClass?: string;
  gatewayName?: string;
}

export interface ConvertIO {
  out(s: string): void;
  err(s: string): void;
}

const STDIO: ConvertIO = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

export async function convertCommand(args: ConvertArgs, io: ConvertIO = STDIO): Promise<number> {
  const files: string[] = [];
  for (const p of args.files) {
    const st = await stat(p).catch(() => undefined);
    if (!st) throw new SnigateError(ErrorCode.InvalidArguments, `no such file or directory: ${p}`);
    if (st.isDirectory()) files.push(...(await walk(p)));
    else files.push(p);
  }
  const inputs: InputObject[] = [];
  for (const file of files) inputs.push(...readObjects(await readFile(file, 'utf8'), file));
  const result = convert(inputs, {
    gatewayClass: args.gatewayClass,
    gatewayName: args.gatewayName,
    namespace: args.namespace,
  });
  io.out(renderConverted(result, args.files));
  for (const n of result.notes)
    io.err(`${n.severity === 'unsupported' ? 'not converted' : 'note'}: ${n.object}: ${n.message}\n`);
  if (result.converted === 0) io.err('nothing to convert: no Ingress and no legacy TLSRoute in the input\n');
  return 0;
}

/** Every mapping of every YAML document, `kind: List` unrolled. Syntax errors stop the command. */
export function readObjects(text: string, file: string): InputObject[] {
  const out: InputObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      throw new SnigateError(
        ErrorCode.InvalidArguments,
        `${file}: ${doc.errors[0]!.message.split('\n')[0]} (run snigate validate -f ${file})`,
      );
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    const push = (v: unknown) => {
      if (!isObj(v)) return;
      if (typeof v.kind === 'string' && v.kind.endsWith('List') && Array.isArray(v.items))
        v.items.forEach(push);
      else out.push({ object: v, file });
    };
    push(value);
  }
  return out;
}

async function walk(dir: string): Promise<string[]> {
  const entries = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => !e.name.startsWith('.'))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const e of entries) {
    const full = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(full)));
    else if (e.isFile() && /\.(ya?ml|json)$/.test(e.name)) out.push(full);
  }
  return out;
}
