/**
 * The ModSecurity rule set snigate loads, generated from structured options: base engine directives (after
 * ModSecurity's modsecurity.conf-recommended), the CRS setup variables (instead of crs-setup.conf), the CRS rule
 * files, a Log4Shell backport, and exclusions. No user string reaches a directive unvalidated: every value is checked
 * against a narrow pattern first, and a value that does not match is a config error, never escaped and let through.
 */

export type WafMode = 'block' | 'detect';
export type ParanoiaLevel = 1 | 2 | 3 | 4;

/** Request variables an exclusion can exempt from a rule (with a name: one argument, cookie or header). */
export type ExclusionVariable =
  | 'ARGS'
  | 'ARGS_NAMES'
  | 'REQUEST_COOKIES'
  | 'REQUEST_COOKIES_NAMES'
  | 'REQUEST_HEADERS';

export interface WafExclusions {
  /** Rules removed everywhere (SecRuleRemoveById, after the CRS is loaded). */
  ruleIds?: number[];
  /** Rules removed for requests whose path begins with pathPrefix (a phase-1 `ctl:ruleRemoveById` rule). */
  paths?: { pathPrefix: string; ruleIds: number[] }[];
  /**
   * One variable exempted from some rules (the usual false-positive fix: `password` argument vs SQLi rules),
   * everywhere (SecRuleUpdateTargetById) or under a path prefix (`ctl:ruleRemoveTargetById`).
   */
  targets?: { ruleIds: number[]; variable: ExclusionVariable; name: string; pathPrefix?: string }[];
}

export interface WafRuleOptions {
  paranoia: ParanoiaLevel;
  /** Inbound anomaly score at which a request is blocked (CRS tx.inbound_anomaly_score_threshold; CRS default 5). */
  anomalyThreshold: number;
  /** Outbound anomaly score threshold (CRS default 4). */
  outboundThreshold: number;
  mode: WafMode;
  /** Bytes of request body given to ModSecurity (SecRequestBodyLimit). */
  requestBodyLimit: number;
  allowedMethods: string[];
  allowedContentTypes: string[];
  exclusions: WafExclusions;
}

/** CRS 3.3 default (tx.allowed_request_content_type, rule 901162). */
export const CRS_DEFAULT_CONTENT_TYPES = [
  'application/x-www-form-urlencoded',
  'multipart/form-data',
  'multipart/related',
  'text/xml',
  'application/xml',
  'application/soap+xml',
  'application/json',
  'application/cloudevents+json',
  'application/cloudevents-batch+json',
];

/**
 * snigate's default adds the media types ordinary JSON/HTTP APIs send, which CRS 3.3 refuses at PL1 (rule 920420,
 * critical): raw uploads (`application/octet-stream`, `text/plain`), JSON patch formats (Kubernetes-style PATCH),
 * NDJSON, JSON:API and problem details.
 */
export const DEFAULT_CONTENT_TYPES = [
  ...CRS_DEFAULT_CONTENT_TYPES,
  'application/octet-stream',
  'text/plain',
  'application/merge-patch+json',
  'application/json-patch+json',
  'application/x-ndjson',
  'application/vnd.api+json',
  'application/problem+json',
];

/** An API gateway routes PUT/PATCH/DELETE; CRS 3.3's default (GET HEAD POST OPTIONS) would score them critical. */
export const DEFAULT_METHODS = ['GET', 'HEAD', 'POST', 'OPTIONS', 'PUT', 'PATCH', 'DELETE'];

/** Rules that deny (in blocking mode): used to tell "would have blocked" in detection-only mode. */
export const BASE_DENY_RULES = [200002, 200003, 200004, 200005];
export const CRS_BLOCKING_RULES = [949110, 959100];

/** Generated exclusion rules take ids from here on (the 1-99,999 range is reserved for local rules). */
export const EXCLUSION_ID_BASE = 10_001;
export const MAX_GENERATED_EXCLUSIONS = 1000;
/** snigate's backport of CRS 4 rule 944150 (Log4Shell), for CRS 3.3 which has no rule for it. */
export const LOG4SHELL_RULE_ID = 11_001;

export class WafConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid WAF configuration: ${problems.join('; ')}`);
    this.name = 'WafConfigError';
    this.problems = problems;
  }
}

// ---- validation --------------------------------------------------------------------------------------------------

// Only characters that are inert inside a double-quoted ModSecurity operator argument: no quote, backslash,
// whitespace, `%` (macro expansion `%{...}`), comma or single quote (action-list syntax).
const PATH_PREFIX = /^\/[A-Za-z0-9._~\-/:@+=!*()$;]{0,255}$/;
// Argument / header / cookie names: conservative token characters (brackets for PHP-style `items[0]`).
const VAR_NAME = /^[A-Za-z0-9_.\-[\]]{1,128}$/;
const METHOD = /^[A-Z]{1,32}$/;
const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;
const VARIABLES: readonly string[] = [
  'ARGS',
  'ARGS_NAMES',
  'REQUEST_COOKIES',
  'REQUEST_COOKIES_NAMES',
  'REQUEST_HEADERS',
];

function isRuleId(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 1 && n <= 99_999_999;
}

/** All problems with the options (empty when valid). */
export function validateRuleOptions(o: WafRuleOptions): string[] {
  const p: string[] = [];
  if (![1, 2, 3, 4].includes(o.paranoia)) p.push(`paranoia must be 1, 2, 3 or 4 (got ${String(o.paranoia)})`);
  for (const [k, v] of [
    ['anomalyThreshold', o.anomalyThreshold],
    ['outboundThreshold', o.outboundThreshold],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 1 || v > 10_000) p.push(`${k} must be an integer 1..10000`);
  }
  if (o.mode !== 'block' && o.mode !== 'detect') p.push(`mode must be 'block' or 'detect'`);
  if (!Number.isSafeInteger(o.requestBodyLimit) || o.requestBodyLimit < 1 || o.requestBodyLimit > 1 << 30)
    p.push('requestBodyLimit must be an integer number of bytes, 1..1 GiB');
  if (o.allowedMethods.length === 0) p.push('allowedMethods is empty');
  for (const m of o.allowedMethods)
    if (!METHOD.test(m)) p.push(`allowedMethods: not a method: ${JSON.stringify(m)}`);
  for (const t of o.allowedContentTypes)
    if (!MEDIA_TYPE.test(t)) p.push(`allowedContentTypes: not a media type: ${JSON.stringify(t)}`);

  const ex = o.exclusions;
  const ids = (where: string, list: unknown) => {
    if (!Array.isArray(list) || list.length === 0) {
      p.push(`${where}: ruleIds must be a non-empty array`);
      return;
    }
    for (const id of list) if (!isRuleId(id)) p.push(`${where}: not a rule id: ${JSON.stringify(id)}`);
  };
  const prefix = (where: string, s: unknown) => {
    if (typeof s !== 'string' || !PATH_PREFIX.test(s))
      p.push(
        `${where}: pathPrefix must start with / and use only [A-Za-z0-9._~-/:@+=!*()$;] (got ${JSON.stringify(s)})`,
      );
  };
  if (ex.ruleIds !== undefined) ids('exclusions.ruleIds', ex.ruleIds);
  (ex.paths ?? []).forEach((e, i) => {
    prefix(`exclusions.paths[${i}]`, e.pathPrefix);
    ids(`exclusions.paths[${i}]`, e.ruleIds);
  });
  (ex.targets ?? []).forEach((e, i) => {
    const w = `exclusions.targets[${i}]`;
    ids(w, e.ruleIds);
    if (!VARIABLES.includes(e.variable)) p.push(`${w}: variable must be one of ${VARIABLES.join(', ')}`);
    if (typeof e.name !== 'string' || !VAR_NAME.test(e.name))
      p.push(`${w}: name must match ${VAR_NAME.source} (got ${JSON.stringify(e.name)})`);
    if (e.pathPrefix !== undefined) prefix(w, e.pathPrefix);
  });
  const generated =
    (ex.paths?.length ?? 0) + (ex.targets ?? []).filter((t) => t.pathPrefix !== undefined).length;
  if (generated > MAX_GENERATED_EXCLUSIONS)
    p.push(`at most ${MAX_GENERATED_EXCLUSIONS} path-scoped exclusions`);
  return p;
}

// ---- generation ---------------------------------------------------------------------------------------------------

/** Engine directives, after ModSecurity v3's modsecurity.conf-recommended (ids 200000-200005 as there). */
export function baseDirectives(o: WafRuleOptions): string {
  return [
    `SecRuleEngine ${o.mode === 'block' ? 'On' : 'DetectionOnly'}`,
    'SecRequestBodyAccess On',
    'SecResponseBodyAccess Off',
    // snigate counts body bytes itself and applies the reject/partial policy; ModSecurity only sees the first N.
    `SecRequestBodyLimit ${o.requestBodyLimit}`,
    `SecRequestBodyNoFilesLimit ${o.requestBodyLimit}`,
    'SecRequestBodyLimitAction ProcessPartial',
    'SecRule REQUEST_HEADERS:Content-Type "@rx (?:application(?:/soap\\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"',
    // `+json` structured-syntax types (merge-patch, JSON:API, problem) are parsed as JSON too, so their values are
    // inspected as ARGS like plain application/json.
    'SecRule REQUEST_HEADERS:Content-Type "@rx ^application/(?:[a-z0-9.-]+\\+)?json\\b" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"',
    'SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,msg:\'Failed to parse request body.\',logdata:\'%{reqbody_error_msg}\',severity:2"',
    'SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:200003,phase:2,t:none,log,deny,status:400,msg:\'Multipart request body failed strict validation\'"',
    'SecRule MULTIPART_UNMATCHED_BOUNDARY "@eq 1" "id:200004,phase:2,t:none,log,deny,msg:\'Multipart parser detected a possible unmatched boundary.\'"',
    'SecPcreMatchLimit 1000',
    'SecPcreMatchLimitRecursion 1000',
    'SecRule TX:/^MSC_/ "!@streq 0" "id:200005,phase:2,t:none,deny,msg:\'ModSecurity internal error flagged: %{MATCHED_VAR_NAME}\'"',
    'SecAuditEngine Off',
    'SecArgumentSeparator &',
    'SecCookieFormat 0',
    'SecStatusEngine Off',
    '',
  ].join('\n');
}

/** What crs-setup.conf would say, from the options (anomaly scoring mode). */
export function crsSetup(o: WafRuleOptions): string {
  const types = o.allowedContentTypes.map((t) => `|${t}|`).join(' ');
  return [
    'SecDefaultAction "phase:1,log,auditlog,pass"',
    'SecDefaultAction "phase:2,log,auditlog,pass"',
    `SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=${o.paranoia}"`,
    `SecAction "id:900110,phase:1,nolog,pass,t:none,setvar:tx.inbound_anomaly_score_threshold=${o.anomalyThreshold},setvar:tx.outbound_anomaly_score_threshold=${o.outboundThreshold}"`,
    `SecAction "id:900200,phase:1,nolog,pass,t:none,setvar:'tx.allowed_methods=${o.allowedMethods.join(' ')}'"`,
    `SecAction "id:900220,phase:1,nolog,pass,t:none,setvar:'tx.allowed_request_content_type=${types}'"`,
    'SecAction "id:900990,phase:1,nolog,pass,t:none,setvar:tx.crs_setup_version=334"',
    '',
  ].join('\n');
}

/**
 * CRS 4's rule 944150 (Log4j / Log4Shell, PL1), backported in anomaly-scoring form: CRS 3.3 only catches `${...}`
 * in arguments through 932130 and not at all in headers, where Log4Shell payloads usually travel.
 */
export function log4shellRule(): string {
  return (
    'SecRule REQUEST_LINE|ARGS|ARGS_NAMES|REQUEST_COOKIES|REQUEST_COOKIES_NAMES|REQUEST_HEADERS|XML:/*|XML://@* ' +
    '"@rx (?i)(?:\\$|&dollar;?)(?:\\{|&l(?:brace|cub);?)(?:[^\\}]{0,15}(?:\\$|&dollar;?)(?:\\{|&l(?:brace|cub);?)|jndi|ctx)" ' +
    `"id:${LOG4SHELL_RULE_ID},phase:2,block,capture,t:none,t:urlDecodeUni,t:jsDecode,t:htmlEntityDecode,log,` +
    "msg:'Potential Remote Command Execution: Log4j / Log4shell (snigate backport of CRS 4 rule 944150)'," +
    "logdata:'Matched Data: %{TX.0} found within %{MATCHED_VAR_NAME}: %{MATCHED_VAR}'," +
    "tag:'language-java',tag:'attack-rce',tag:'paranoia-level/1',severity:'CRITICAL'," +
    "setvar:'tx.rce_score=+%{tx.critical_anomaly_score}'," +
    "setvar:'tx.anomaly_score_pl1=+%{tx.critical_anomaly_score}'\"\n"
  );
}

/** Phase-1 `ctl:` rules for path-scoped exclusions: loaded before the CRS so they run first. */
export function exclusionsBefore(ex: WafExclusions): string {
  const lines: string[] = [];
  let id = EXCLUSION_ID_BASE;
  for (const e of ex.paths ?? []) {
    const ctl = e.ruleIds.map((r) => `ctl:ruleRemoveById=${r}`).join(',');
    lines.push(
      `SecRule REQUEST_FILENAME "@beginsWith ${e.pathPrefix}" "id:${id++},phase:1,pass,nolog,t:none,${ctl}"`,
    );
  }
  for (const e of ex.targets ?? []) {
    if (e.pathPrefix === undefined) continue;
    const ctl = e.ruleIds.map((r) => `ctl:ruleRemoveTargetById=${r};${e.variable}:${e.name}`).join(',');
    lines.push(
      `SecRule REQUEST_FILENAME "@beginsWith ${e.pathPrefix}" "id:${id++},phase:1,pass,nolog,t:none,${ctl}"`,
    );
  }
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

/** Global removals and target updates: must follow the rules they refer to. */
export function exclusionsAfter(ex: WafExclusions): string {
  const lines: string[] = [];
  if (ex.ruleIds !== undefined && ex.ruleIds.length > 0)
    lines.push(`SecRuleRemoveById ${ex.ruleIds.join(' ')}`);
  for (const e of ex.targets ?? []) {
    if (e.pathPrefix !== undefined) continue;
    for (const r of e.ruleIds) lines.push(`SecRuleUpdateTargetById ${r} "!${e.variable}:${e.name}"`);
  }
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

/**
 * The engine's load list, in order: ['text', directives] / ['file', path] pairs as the addon's createEngine takes them.
 * `crsFiles` are the CRS rule files (absolute paths, any order: sorted here as the CRS expects); the Log4Shell
 * backport is left out when the CRS has its own rule (CRS 4's 944150).
 */
export function ruleParts(o: WafRuleOptions, crsFiles: string[], log4shellBackport = true): string[] {
  const problems = validateRuleOptions(o);
  if (problems.length > 0) throw new WafConfigError(problems);
  const files = [...crsFiles].sort((a, b) => basename(a).localeCompare(basename(b)));
  if (!files.some((f) => /REQUEST-949-BLOCKING-EVALUATION\.conf$/.test(f)))
    throw new WafConfigError(['the CRS rule files do not include REQUEST-949-BLOCKING-EVALUATION.conf']);
  const parts = ['text', baseDirectives(o), 'text', crsSetup(o)];
  const before = exclusionsBefore(o.exclusions);
  if (before !== '') parts.push('text', before);
  for (const f of files) {
    // The backport goes right before the blocking evaluation, after the CRS's own request rules.
    if (log4shellBackport && /REQUEST-949-/.test(basename(f))) parts.push('text', log4shellRule());
    parts.push('file', f);
  }
  const after = exclusionsAfter(o.exclusions);
  if (after !== '') parts.push('text', after);
  return parts;
}

function basename(p: string): string {
  const i = p.lastIndexOf('/');
  return i === -1 ? p : p.slice(i + 1);
}
