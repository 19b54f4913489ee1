#!/usr/bin/env node
import { SnigateError } from '../src/errors.ts';
// Entry point for `npx snigate`: runs the TypeScript sources directly (Node 24 type stripping).
import { main } from '../src/main.ts';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    if (e instanceof SnigateError) {
      process.stderr.write(`snigate: ${e.code}: ${e.message}\n`);
      process.exitCode = e.exitCode;
    } else {
      process.stderr.write(`snigate: SNIGATE_E_INTERNAL: ${e?.stack ?? String(e)}\n`);
      process.exitCode = 70;
    }
  },
);
