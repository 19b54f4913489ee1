/** One JSON line per WAF intervention, with matched data redacted to a safe length. */
import type { WafVerdict } from './waf.ts';

/** Matched data kept in the audit line, in characters (after control characters are escaped). */
export const MAX_AUDIT_DATA = 64;
export const MAX_AUDIT_MSG = 160;
export const MAX_AUDIT_MATCHES = 16;

/** Control characters and lone surrogates become `\uXXXX`; the result is cut at `max` characters, with `…`. */
export function redact(s: string, max: number): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    const safe =
      c < 0x20 ||
      c === 0x7f ||
      (c >= 0x80 && c < 0xa0) ||
      (c >= 0xd800 && c <= 0xdfff) ||
      c === 0x2028 ||
      c === 0x2029
        ? `\\u${c.toString(16).padStart(4, '0')}`
        : ch;
    if (out.length + safe.length > max) return `${out}…`;
    out += safe;
  }
  return out;
}

export interface AuditContext {
  requestId: string;
  clientIp: string;
  method: string;
  /** Request target; only the path is logged (a query string may carry credentials). */
  uri: string;
  host?: string;
  /** e.g. `HTTPRoute/default/api`. */
  route?: string | null;
  now?: Date;
}

/**
 * The audit line for a verdict, or null when there was no intervention (nothing blocked, nothing that would have
 * been blocked in detection-only mode). Matched data is clipped to MAX_AUDIT_DATA characters.
 */
export function auditLine(v: WafVerdict, ctx: AuditContext): string | null {
  if (v.action !== 'block' && !v.wouldBlock) return null;
  const q = ctx.uri.indexOf('?');
  const record = {
    time: (ctx.now ?? new Date()).toISOString(),
    type: 'waf',
    requestId: ctx.requestId,
    mode: v.mode,
    action: v.action === 'block' ? 'blocked' : 'detected',
    status: v.status,
    reason: v.reason,
    anomalyScore: v.anomalyScore,
    client: ctx.clientIp,
    method: redact(ctx.method, 16),
    host: ctx.host === undefined ? undefined : redact(ctx.host, 128),
    path: redact(q === -1 ? ctx.uri : ctx.uri.slice(0, q), 256),
    route: ctx.route ?? undefined,
    ruleIds: v.ruleIds,
    matches: v.matches.slice(0, MAX_AUDIT_MATCHES).map((m) => ({
      id: m.id,
      severity: m.severity,
      msg: redact(m.msg, MAX_AUDIT_MSG),
      data: redact(m.data, MAX_AUDIT_DATA),
    })),
    droppedMatches: v.droppedMatches + Math.max(0, v.matches.length - MAX_AUDIT_MATCHES),
  };
  return JSON.stringify(record);
}
