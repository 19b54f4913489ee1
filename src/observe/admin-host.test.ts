/** The admin server's DNS-rebinding guard, as a table of Host headers and binds. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostAllowed, isLoopbackBind } from './admin-host.ts';

test('loopback binds answer IP literals and localhost only', () => {
  for (const ok of [
    '127.0.0.1:9901',
    '127.0.0.1',
    'localhost:9901',
    'LOCALHOST',
    '[::1]:9901',
    '10.0.0.5:9901',
  ])
    assert.equal(hostAllowed(ok, '127.0.0.1'), true, ok);
  for (const bad of ['evil.example', 'evil.example:9901', 'localhost.evil.example', '::1:9901', '', '[::1'])
    assert.equal(hostAllowed(bad, '127.0.0.1'), false, bad);
  assert.equal(hostAllowed('evil.example', '::1'), false);
  assert.equal(hostAllowed(undefined, '127.0.0.1'), true);
});

test('non-loopback binds are reached by name on purpose and are not checked', () => {
  assert.equal(hostAllowed('snigate-admin.gateway.svc:9901', '0.0.0.0'), true);
  assert.equal(hostAllowed('anything', '10.1.2.3'), true);
  assert.equal(isLoopbackBind('127.0.0.53'), true);
  assert.equal(isLoopbackBind('[::1]'), true);
  assert.equal(isLoopbackBind('0.0.0.0'), false);
});
