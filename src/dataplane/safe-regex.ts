/**
 * Regular expressions from user manifests (HTTPRoute RegularExpression matches), compiled for V8's linear-time
 * engine (the `l` flag, behind `--enable-experimental-regexp-engine`): no catastrophic backtracking, ever.
 *
 * What the linear engine refuses (V8 says "Cannot be executed in linear time"), reported as unsupported:
 * backreferences (`\1`, `\k<name>`), lookaheads (`(?=`, `(?!`), nested counted repetitions too large to unroll,
 * and the `i`/`u`/`v` flags (so no `\p{...}` classes). Lookbehinds, named groups, lazy quantifiers, `\b`,
 * classes and alternation work. The pattern must match the whole input (anchored as `^(?:src)$`), as RE2's
 * FullMatch does, which is what Gateway API's RegularExpression path/header/query matches mean.
 */
import v8 from 'node:v8';

export interface SafeRegex {
  test(s: string): boolean;
}

/** Longest pattern accepted: compilation is linear in the pattern, but unrolled `{n}` counts multiply it. */
export const MAX_PATTERN_LENGTH = 1024;

/** A variable, not a literal: `/a/l` would be a syntax error before the flag is set (and formatters rewrite literals). */
const LINEAR = 'l';

let engine: 'linear' | 'unavailable' | undefined;

function linearEngine(): boolean {
  if (engine === undefined) {
    try {
      v8.setFlagsFromString('--enable-experimental-regexp-engine');
      new RegExp('a', LINEAR);
      engine = 'linear';
    } catch {
      engine = 'unavailable';
    }
  }
  return engine === 'linear';
}

/** Compiles `src` for full-string matching in linear time, or says why it cannot. Never throws. */
export function compileSafeRegex(src: string): SafeRegex | { error: string } {
  if (src.length > MAX_PATTERN_LENGTH)
    return { error: `pattern longer than ${MAX_PATTERN_LENGTH} characters` };
  if (!linearEngine()) return { error: 'the linear-time regular expression engine is not available' };
  // Validate the pattern alone first, so a syntax error is not blamed on our anchors.
  try {
    new RegExp(src);
  } catch (err) {
    return { error: `invalid regular expression: ${message(err, src)}` };
  }
  try {
    const re = new RegExp(`^(?:${src})$`, LINEAR);
    return { test: (s: string) => re.test(s) };
  } catch (err) {
    const msg = message(err, src);
    if (msg.includes('linear time')) {
      return { error: 'unsupported regular expression (backreferences, lookaheads or huge repetitions)' };
    }
    return { error: `invalid regular expression: ${msg}` };
  }
}

export function isSafeRegexError(r: SafeRegex | { error: string }): r is { error: string } {
  return 'error' in r;
}

function message(err: unknown, src: string): string {
  const m = err instanceof Error ? err.message : String(err);
  // V8 repeats the pattern in its message; keep the reason only.
  const i = m.lastIndexOf(': ');
  return i >= 0 && m.includes(src) ? m.slice(i + 2) : m;
}
