import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redact } from './audit.ts';
import {
  DEFAULT_CONTENT_TYPES,
  DEFAULT_METHODS,
  EXCLUSION_ID_BASE,
  exclusionsAfter,
  exclusionsBefore,
  LOG4SHELL_RULE_ID,
  ruleParts,
  validateRuleOptions,
  WafConfigError,
  type WafRuleOptions,
} from './rules.ts';

const base: WafRuleOptions = {
  paranoia: 1,
  anomalyThreshold: 5,
  outboundThreshold: 4,
  mode: 'block',
  requestBodyLimit: 1 << 20,
  allowedMethods: DEFAULT_METHODS,
  allowedContentTypes: DEFAULT_CONTENT_TYPES,
  exclusions: {},
};
const CRS = [
  'REQUEST-949-BLOCKING-EVALUATION.conf',
  'REQUEST-901-INITIALIZATION.conf',
  'REQUEST-944-APPLICATION-ATTACK-JAVA.conf',
].map((f) => `/crs/${f}`);

test('load order: base, setup, path exclusions, CRS (sorted) with the Log4Shell backport before 949, removals', () => {
  const parts = ruleParts(
    { ...base, exclusions: { ruleIds: [942100], paths: [{ pathPrefix: '/legacy/', ruleIds: [920350] }] } },
    CRS,
  );
  const kinds = [];
  for (let i = 0; i < parts.length; i += 2)
    kinds.push(
      parts[i] === 'file' ? parts[i + 1]!.replace('/crs/', '') : parts[i + 1]!.split('\n')[0]!.slice(0, 24),
    );
  assert.deepEqual(kinds, [
    'SecRuleEngine On',
    'SecDefaultAction "phase:',
    'SecRule REQUEST_FILENAME',
    'REQUEST-901-INITIALIZATION.conf',
    'REQUEST-944-APPLICATION-ATTACK-JAVA.conf',
    'SecRule REQUEST_LINE|ARG',
    'REQUEST-949-BLOCKING-EVALUATION.conf',
    'SecRuleRemoveById 942100',
  ]);
  assert.match(parts.join('\n'), new RegExp(`id:${LOG4SHELL_RULE_ID},`));
  assert.doesNotMatch(ruleParts(base, CRS, false).join('\n'), new RegExp(`id:${LOG4SHELL_RULE_ID},`));
  assert.match(ruleParts({ ...base, mode: 'detect' }, CRS)[1]!, /^SecRuleEngine DetectionOnly$/m);
});

test('setup variables come from the options', () => {
  const text = ruleParts(
    {
      ...base,
      paranoia: 3,
      anomalyThreshold: 12,
      allowedMethods: ['GET'],
      allowedContentTypes: ['application/json'],
    },
    CRS,
  )[3]!;
  assert.match(text, /setvar:tx\.paranoia_level=3"/);
  assert.match(text, /tx\.inbound_anomaly_score_threshold=12,/);
  assert.match(text, /'tx\.allowed_methods=GET'/);
  assert.match(text, /'tx\.allowed_request_content_type=\|application\/json\|'/);
});

test('exclusions generate exact directives with ids from the local range', () => {
  const ex = {
    paths: [{ pathPrefix: '/legacy/', ruleIds: [942100, 942110] }],
    targets: [
      { ruleIds: [932100], variable: 'ARGS' as const, name: 'json.query', pathPrefix: '/graphql' },
      { ruleIds: [942100, 942200], variable: 'REQUEST_COOKIES' as const, name: 'session' },
    ],
    ruleIds: [920350, 913100],
  };
  assert.equal(
    exclusionsBefore(ex),
    `SecRule REQUEST_FILENAME "@beginsWith /legacy/" "id:${EXCLUSION_ID_BASE},phase:1,pass,nolog,t:none,ctl:ruleRemoveById=942100,ctl:ruleRemoveById=942110"\n` +
      `SecRule REQUEST_FILENAME "@beginsWith /graphql" "id:${EXCLUSION_ID_BASE + 1},phase:1,pass,nolog,t:none,ctl:ruleRemoveTargetById=932100;ARGS:json.query"\n`,
  );
  assert.equal(
    exclusionsAfter(ex),
    'SecRuleRemoveById 920350 913100\n' +
      'SecRuleUpdateTargetById 942100 "!REQUEST_COOKIES:session"\n' +
      'SecRuleUpdateTargetById 942200 "!REQUEST_COOKIES:session"\n',
  );
  assert.equal(exclusionsBefore({}), '');
  assert.equal(exclusionsAfter({}), '');
});

test('validation rejects anything that could break out of a directive', () => {
  assert.deepEqual(validateRuleOptions(base), []);
  const hostile = [
    '/"',
    "/'",
    '/a b',
    '/a\tb',
    '/%{TX.0}',
    '/a\\',
    '/a,b',
    '/\n',
    '/a\u00e9',
    `/${'a'.repeat(300)}`,
  ];
  for (const pathPrefix of hostile)
    assert.notDeepEqual(
      validateRuleOptions({ ...base, exclusions: { paths: [{ pathPrefix, ruleIds: [1] }] } }),
      [],
      pathPrefix,
    );
  for (const name of ['a"', "a'", 'a b', 'a:b', 'a,b', 'a%{x}', '', 'x'.repeat(129)])
    assert.notDeepEqual(
      validateRuleOptions({ ...base, exclusions: { targets: [{ ruleIds: [1], variable: 'ARGS', name }] } }),
      [],
      name,
    );
  for (const ruleIds of [[], [0], [1.5], [100_000_000], [Number.NaN]])
    assert.notDeepEqual(
      validateRuleOptions({ ...base, exclusions: { ruleIds } }),
      [],
      JSON.stringify(ruleIds),
    );
  assert.throws(() => ruleParts({ ...base, paranoia: 0 as 1 }, CRS), WafConfigError);
  assert.throws(() => ruleParts(base, ['/crs/REQUEST-901-INITIALIZATION.conf']), WafConfigError);
});

test('redact escapes control characters and clips with an ellipsis', () => {
  assert.equal(redact('abc', 10), 'abc');
  assert.equal(redact('a\nb\u0000', 20), 'a\\u000ab\\u0000');
  assert.equal(redact('x'.repeat(100), 8), `${'x'.repeat(8)}…`);
  assert.equal(redact('日本語テキスト', 3), '日本語…');
  assert.equal(redact('a\u2028b', 20), 'a\\u2028b');
});
