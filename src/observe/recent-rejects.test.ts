import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConnectionRecord } from '../dataplane/conn-log.ts';
import { withDefaults } from '../dataplane/events.ts';
import { connectionRecord } from '../dataplane/testkit.ts';
import { composeEvents, isRecordedFailure, LiveTraffic, MAX_SNI } from './recent-rejects.ts';

const record = connectionRecord;

const reject = (over: Partial<ConnectionRecord>) =>
  record({
    route: null,
    backend: null,
    endpoint: null,
    listener: null,
    bytesOut: 0,
    end: 'no-route',
    ...over,
  });

describe('LiveTraffic', () => {
  it('counts open connections per bind and ended ones per route and backend', () => {
    const t = new LiveTraffic({ now: () => 1000 });
    const ev = withDefaults(t); // the data plane spreads the object and calls hooks unbound
    ev.connectionOpened('0.0.0.0:443');
    ev.connectionOpened('0.0.0.0:443');
    ev.connectionOpened('[::]:443');
    ev.connectionClosed(record({}));
    ev.connectionClosed(
      record({ bind: '[::]:443', backend: 'Service/default/b:443', bytesIn: 1, bytesOut: 2 }),
    );
    assert.deepEqual(t.binds(), [
      { bind: '0.0.0.0:443', active: 1, accepted: 2 },
      { bind: '[::]:443', active: 0, accepted: 1 },
    ]);
    assert.deepEqual(t.route('TLSRoute/default/a'), {
      total: 2,
      failed: 0,
      bytesIn: 101,
      bytesOut: 202,
      lastAt: 1000,
      open: 0,
    });
    assert.equal(t.backend('TLSRoute/default/a', 'Service/default/a:443')?.total, 1);
    assert.equal(t.backend('TLSRoute/default/a', 'Service/default/b:443')?.bytesOut, 2);
    assert.equal(t.route('TLSRoute/default/none'), null);
    assert.deepEqual(t.rejects(), [], 'clean ends are not rejects');
  });

  it('keeps at most 5000 route/backend pairs; later pairs share one (other)/(other) entry', () => {
    const t = new LiveTraffic({ now: () => 1000 });
    // 5000 pairs over 50 routes: the cap counts pairs, not routes.
    for (let i = 0; i < 5000; i++)
      t.connectionClosed(
        record({ route: `TLSRoute/default/r${i % 50}`, backend: `Service/default/b${i}:443` }),
      );
    assert.equal(t.backend('TLSRoute/default/r49', 'Service/default/b4999:443')?.total, 1);
    t.connectionClosed(record({ route: 'TLSRoute/default/r0', backend: 'Service/default/late:443' }));
    t.connectionClosed(record({ route: 'TLSRoute/default/new', backend: 'Service/default/late2:443' }));
    assert.equal(t.backend('TLSRoute/default/r0', 'Service/default/late:443'), null);
    assert.equal(t.backend('(other)', '(other)')?.total, 2);
    // Pairs already known keep counting in their own entry.
    t.connectionClosed(record({ route: 'TLSRoute/default/r0', backend: 'Service/default/b0:443' }));
    assert.equal(t.backend('TLSRoute/default/r0', 'Service/default/b0:443')?.total, 2);
  });

  it('keeps the last N rejects newest first, truncates the SNI and counts every reason', () => {
    let now = 0;
    const t = new LiveTraffic({ capacity: 3, now: () => now });
    for (let i = 0; i < 5; i++) {
      now = i;
      t.connectionOpened('0.0.0.0:443');
      t.connectionClosed(reject({ sni: `r${i}.example.com` }));
    }
    const long = `${'a'.repeat(300)}.example.com`;
    now = 9;
    t.connectionClosed(reject({ sni: long, end: 'malformed-hello', detail: 'x'.repeat(1000) }));
    const got = t.rejects();
    assert.equal(got.length, 3);
    assert.deepEqual(
      got.map((r) => [r.at, r.reason]),
      [
        [9, 'malformed-hello'],
        [4, 'no-route'],
        [3, 'no-route'],
      ],
    );
    assert.equal(got[0]!.sni!.length, MAX_SNI);
    assert.ok(got[0]!.detail!.length <= 200);
    assert.equal(t.rejects(1).length, 1);
    assert.deepEqual(t.reasons(), { 'no-route': 5, 'malformed-hello': 1 });
    assert.equal(t.binds()[0]!.active, 0, 'never negative');
  });

  it('counts open connections per route from routed to closed', () => {
    const t = new LiveTraffic();
    const route = record({}).route!;
    t.connectionRouted(route);
    t.connectionRouted(route);
    assert.equal(t.routes().find((r) => r.route === route)?.open, 2);
    t.connectionClosed(record({}));
    const r = t.routes().find((x) => x.route === route)!;
    assert.equal(r.open, 1);
    assert.equal(r.total, 1);
  });

  it('counts a routed failure against its route, and records backend resets', () => {
    const t = new LiveTraffic();
    t.connectionClosed(record({ end: 'connect-failed', detail: 'ECONNREFUSED', bytesOut: 0 }));
    t.connectionClosed(record({ end: 'backend-reset' }));
    t.connectionClosed(record({ end: 'client-reset' }));
    assert.equal(t.route('TLSRoute/default/a')?.failed, 2);
    assert.deepEqual(
      t.rejects().map((r) => r.reason),
      ['backend-reset', 'connect-failed'],
    );
    assert.equal(isRecordedFailure('tls-handshake-failed'), true);
    assert.equal(isRecordedFailure('client-closed'), false);
  });
});

describe('composeEvents', () => {
  it('calls every part in order, even after one throws, then rethrows the first error', () => {
    const calls: string[] = [];
    class Plain {
      name = 'plain';
      connectionOpened(bind: string): void {
        calls.push(`${this.name}:${bind}`); // a method, not an arrow: `this` must survive
      }
    }
    const ev = withDefaults(
      composeEvents(
        {
          connectionOpened: (b) => {
            calls.push(`a:${b}`);
            throw new Error('boom');
          },
        },
        new Plain(),
        { helloParsed: () => calls.push('hello') },
      ),
    );
    assert.throws(() => ev.connectionOpened('x:1'), /boom/);
    ev.helloParsed(1, null);
    ev.pgCancelRequest(); // nobody implements it: the default no-op
    assert.deepEqual(calls, ['a:x:1', 'plain:x:1', 'hello']);
  });
});
