/** SNI lookup precedence: exact, longest wildcard, catch-all; listener isolation; tcp catch-all. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { compileBind, HostMatcher } from './sni-router.ts';
import { backend, bind, ep, listener, route } from './testkit.ts';

const b = backend('Service/ns/x:443', [ep(1)]);

test('HostMatcher: exact beats wildcard, longest wildcard wins, wildcard needs at least one label', () => {
  const m = new HostMatcher<string>();
  m.add('*.example.com', 'wild');
  m.add('*.b.example.com', 'wild-b');
  m.add('a.example.com', 'exact');
  assert.equal(m.lookup('a.example.com'), 'exact');
  assert.equal(m.lookup('z.example.com'), 'wild');
  assert.equal(m.lookup('x.y.z.example.com'), 'wild');
  assert.equal(m.lookup('c.b.example.com'), 'wild-b');
  assert.equal(m.lookup('d.c.b.example.com'), 'wild-b');
  assert.equal(m.lookup('example.com'), undefined);
  assert.equal(m.lookup('b.example.com'), 'wild');
  assert.equal(m.lookup('other.org'), undefined);
  m.add(null, 'any');
  assert.equal(m.lookup('other.org'), 'any');
  assert.equal(m.lookup('example.com'), 'any');
});

test('HostMatcher: first insertion wins and hostnames are case-insensitive', () => {
  const m = new HostMatcher<number>();
  m.add('A.Example.com', 1);
  m.add('a.example.com', 2);
  assert.equal(m.lookup('a.example.com'), 1);
});

test('listener selection: exact, then longest wildcard, then null-hostname listener', () => {
  const c = compileBind(
    bind([
      listener('exact', 'a.example.com', [route('a.example.com', 'r-exact', [b])]),
      listener('wild', '*.example.com', [route('*.example.com', 'r-wild', [b])]),
      listener('any', null, [route('foo.org', 'r-any', [b])]),
    ]),
  );
  const id = (sni: string | null) => {
    const m = c.match(sni);
    return m.reject ?? `${m.listener.name}:${m.route?.route.name}`;
  };
  assert.equal(id('a.example.com'), 'exact:r-exact');
  assert.equal(id('A.EXAMPLE.COM.'), 'exact:r-exact');
  assert.equal(id('b.example.com'), 'wild:r-wild');
  assert.equal(id('x.y.example.com'), 'wild:r-wild');
  assert.equal(id('foo.org'), 'any:r-any');
  // example.com is not matched by *.example.com: falls to the catch-all listener, which has no route for it.
  assert.equal(id('example.com'), 'no-route');
  assert.equal(id(null), 'no-sni');
});

test('listener isolation: a miss inside the chosen listener never falls back to a less specific one', () => {
  const c = compileBind(
    bind([
      listener('wild', '*.example.com', [route('a.example.com', 'only-a', [b])]),
      listener('any', null, [route('*.example.com', 'broad', [b])]),
    ]),
  );
  const m = c.match('b.example.com');
  assert.equal(m.reject, 'no-route');
  assert.equal(m.listener?.name, 'wild');
  assert.equal(c.match('a.example.com').route?.route.name, 'only-a');
});

test('no listener for the SNI: no-listener', () => {
  const c = compileBind(bind([listener('exact', 'a.example.com', [route('a.example.com', 'r', [b])])]));
  assert.equal(c.match('b.example.com').reject, 'no-listener');
  assert.equal(c.match(null).reject, 'no-sni');
});

test('routes within a listener: exact, then wildcard', () => {
  const c = compileBind(
    bind([
      listener('l', null, [
        route('a.example.com', 'exact', [b]),
        route('*.a.example.com', 'deep', [b]),
        route('*.example.com', 'wild', [b]),
      ]),
    ]),
  );
  assert.equal(c.match('a.example.com').route?.route.name, 'exact');
  assert.equal(c.match('x.a.example.com').route?.route.name, 'deep');
  assert.equal(c.match('x.example.com').route?.route.name, 'wild');
  assert.ok(c.routeKeys.has('ns/gw/l|TLSRoute/ns/deep'));
});

test('tcp bind: the * route takes every connection, with or without SNI', () => {
  const c = compileBind(bind([listener('tcp', null, [route('*', 'tcp', [b])], 'tcp')], { protocol: 'tcp' }));
  assert.equal(c.match(null).route?.route.name, 'tcp');
  assert.equal(c.match('whatever').route?.route.name, 'tcp');
});

test('terminate-https listener: matched by hostname, route null (handed off)', () => {
  const c = compileBind(bind([listener('https', '*.example.com', [], 'terminate-https')]));
  const m = c.match('a.example.com');
  assert.equal(m.reject, undefined);
  assert.equal(m.route, null);
  assert.equal(m.listener?.name, 'https');
});

test('100k hostnames compile and look up through the hash table', () => {
  const routes = [];
  for (let i = 0; i < 50_000; i++) {
    routes.push(route(`h${i}.example.com`, `e${i}`, [b]));
    routes.push(route(`*.w${i}.example.org`, `w${i}`, [b]));
  }
  const c = compileBind(bind([listener('l', null, routes)]));
  for (let i = 0; i < 50_000; i += 997) {
    assert.equal(c.match(`h${i}.example.com`).route?.route.name, `e${i}`);
    assert.equal(c.match(`a.b.w${i}.example.org`).route?.route.name, `w${i}`);
  }
  assert.equal(c.match('nope.example.net').reject, 'no-route');
});

test('http bind: no SNI to route on, the handler gets the first listener', () => {
  const c = compileBind(bind([listener('web', 'a.example.com', [], 'http')], { protocol: 'http' }));
  const m = c.match(null);
  assert.equal(m.listener?.name, 'web');
  assert.equal(m.route, null);
});

/** The matcher as it was with two Maps and a substring per parent domain: the behaviour to keep. */
class ReferenceMatcher<T> {
  readonly #exact = new Map<string, T>();
  readonly #wildcard = new Map<string, T>();
  #any: T | undefined;

  add(hostname: string | null, value: T): void {
    if (hostname === null || hostname === '*') {
      if (this.#any === undefined) this.#any = value;
      return;
    }
    const name = hostname.toLowerCase();
    if (name.startsWith('*.')) {
      const suffix = name.slice(2);
      if (!this.#wildcard.has(suffix)) this.#wildcard.set(suffix, value);
    } else if (!this.#exact.has(name)) {
      this.#exact.set(name, value);
    }
  }

  lookup(name: string): T | undefined {
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    if (this.#wildcard.size > 0) {
      let dot = name.indexOf('.');
      while (dot !== -1 && dot < name.length - 1) {
        const hit = this.#wildcard.get(name.substring(dot + 1));
        if (hit !== undefined) return hit;
        dot = name.indexOf('.', dot + 1);
      }
    }
    return this.#any;
  }
}

// Few distinct labels so that names, suffixes and patterns overlap often; odd shapes on purpose.
const label = fc.constantFrom('a', 'b', 'ab', 'x-y', 'example', 'com', 'A', 'Ex', 'ü', '\u4e2d', '');
const name = fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('.'));
const pattern = fc.oneof(
  name,
  name.map((n) => `*.${n}`),
  fc.constantFrom(null, '*', '*.', '*.*.a', '.a', 'a.', '**.a'),
);

test('HostMatcher answers as the Map-based reference for any patterns and names (property)', () => {
  fc.assert(
    fc.property(
      fc.array(pattern, { maxLength: 30 }),
      fc.array(name, { maxLength: 30 }),
      fc.array(fc.constantFrom('', 'x.', 'a.b.', '.'), { maxLength: 3 }),
      (patterns, names, prefixes) => {
        const m = new HostMatcher<number>();
        const ref = new ReferenceMatcher<number>();
        patterns.forEach((p, i) => {
          m.add(p, i);
          ref.add(p, i);
        });
        // Lookup names are lower case (the caller's job), plus names derived from the patterns themselves.
        const derived = patterns
          .filter((p): p is string => p !== null)
          .flatMap((p) => prefixes.map((x) => `${x}${p.replace(/^\*\./, '')}`));
        for (const n of [...names, ...derived, '', '.', '..']) {
          const lower = n.toLowerCase();
          assert.equal(m.lookup(lower), ref.lookup(lower), `lookup(${JSON.stringify(lower)})`);
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('HostMatcher: a name with more parent domains than the boundary buffer first holds', () => {
  const m = new HostMatcher<number>();
  // Wildcards at 100 depths: every label boundary of the name below is a candidate, longest first.
  for (let k = 0; k < 100; k++) m.add(`*.${'a.'.repeat(k)}example.com`, k);
  assert.equal(m.lookup(`${'a.'.repeat(200)}example.com`), 99);
  assert.equal(m.lookup('b.a.a.example.com'), 2);
  assert.equal(m.lookup(`${'a.'.repeat(200)}example.org`), undefined);
});
