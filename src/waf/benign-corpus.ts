/**
 * A deterministic corpus of ordinary API traffic for false-positive testing: JSON APIs (CRUD, PATCH formats,
 * GraphQL), form posts, multipart uploads, unicode text, long query strings, and the headers real clients send
 * (browsers, curl, SDKs, bearer tokens, cookies, tracing). Seeded PRNG: the same corpus on every run.
 */
import type { WafRequest } from './waf.ts';

export interface CorpusEntry {
  name: string;
  request: WafRequest;
}

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const USER_AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.122 Mobile Safari/537.36',
  'curl/8.5.0',
  'python-requests/2.32.3',
  'Go-http-client/2.0',
  'okhttp/4.12.0',
  'axios/1.7.2',
  'node',
  'aws-sdk-js/3.600.0 ua/2.0 os/linux#6.1 lang/js md/nodejs#20.15.0',
  'Apache-HttpClient/5.3.1 (Java/21.0.3)',
  'Dart/3.4 (dart:io)',
  'PostmanRuntime/7.39.0',
  'kube-probe/1.30',
];

const FIRST = [
  'Alice',
  'Bob',
  'José',
  'Zoë',
  'Łukasz',
  'Søren',
  'Ngọc Anh',
  '王小明',
  '佐藤 花子',
  'Olusegun',
  'Αλέξανδρος',
  'Дмитрий',
  'محمد',
  'Siobhán',
  'François',
  'Ayşe',
  'Mary-Jane',
  "O'Brien",
];
const LAST = [
  'Müller',
  'García',
  'Nguyễn',
  'Kowalski',
  'Smith',
  'Ñúñez',
  'Johansson',
  'Kim',
  'Okafor',
  'Dubois',
  'Yılmaz',
  'Rossi',
];
const CITIES = [
  'São Paulo',
  'Zürich',
  'Kraków',
  'Reykjavík',
  'Montréal',
  'München',
  'Tōkyō',
  'Québec',
  'Málaga',
  'Århus',
];
const WORDS = [
  'order',
  'invoice',
  'blue',
  'shipping',
  'express',
  'refund',
  'wireless',
  'headphones',
  'organic',
  'coffee',
  'beans',
  'notebook',
  'premium',
  'bundle',
  'winter',
  'sale',
  'gift',
  'card',
];
const COMMENTS = [
  'Great product, arrived two days early. Would buy again!',
  'The size runs small; order one size up.',
  'Ça marche très bien, merci beaucoup 🙂',
  'Sehr gute Qualität – schnelle Lieferung.',
  'Works as described. Battery lasts ~10 hours.',
  'Package was damaged (box crushed) but the item is fine.',
  '很好用，推荐！',
  'Five stars ⭐⭐⭐⭐⭐ — fits perfectly & looks great.',
  'Can you ship to P.O. boxes? My address is 12 Main St., Apt 4B.',
  'Bought this for my daughter; she loves it :)',
  'Price is 20% lower than in the store, nice.',
  'Color is slightly different from the photo, still happy.',
];

/** Builds the corpus (at least `min` entries; 260 by default). */
export function benignCorpus(min = 260): CorpusEntry[] {
  const r = prng(0x5eed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const hex = (n: number) => Array.from({ length: n }, () => '0123456789abcdef'[int(0, 15)]).join('');
  const b64url = (n: number) =>
    Array.from(
      { length: n },
      () => 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[int(0, 63)],
    ).join('');
  const uuid = () => `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`;
  const jwt = () => `eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.${b64url(int(120, 300))}.${b64url(342)}`;
  const name = () => `${pick(FIRST)} ${pick(LAST)}`;
  const email = () =>
    `${pick(['alice', 'bob', 'j.garcia', 'zoe+news', 'ops-team', 'm_kim'])}${int(1, 999)}@${pick(['example.com', 'mail.example.org', 'corp.example.net'])}`;
  const isoDate = () =>
    `2024-${String(int(1, 12)).padStart(2, '0')}-${String(int(1, 28)).padStart(2, '0')}T${String(int(0, 23)).padStart(2, '0')}:${String(int(0, 59)).padStart(2, '0')}:00Z`;

  const commonHeaders = (ua: string, extra: Record<string, string> = {}): Record<string, string> => {
    const h: Record<string, string> = {
      host: pick(['api.example.com', 'shop.example.com', 'app.example.org:8443']),
      'user-agent': ua,
      accept: ua.startsWith('Mozilla') ? 'application/json, text/plain, */*' : '*/*',
      'accept-encoding': 'gzip, deflate, br',
    };
    if (ua.startsWith('Mozilla')) {
      h['accept-language'] = pick([
        'en-US,en;q=0.9',
        'de-DE,de;q=0.9,en;q=0.8',
        'fr-CA,fr;q=0.9,en-US;q=0.7',
        'ja,en-US;q=0.8',
      ]);
      h.referer = `https://shop.example.com/${pick(['cart', 'products/42', 'account/settings', ''])}`;
      h.origin = 'https://shop.example.com';
      h['sec-fetch-mode'] = 'cors';
      h['sec-fetch-site'] = 'same-site';
      h['sec-ch-ua'] = '"Chromium";v="126", "Not.A/Brand";v="24", "Google Chrome";v="126"';
      h.cookie = `session=${b64url(32)}; theme=dark; _ga=GA1.2.${int(100000000, 999999999)}.${int(1600000000, 1700000000)}; consent=analytics%3Dno%26ads%3Dno`;
    }
    if (r() < 0.6)
      h.authorization =
        r() < 0.8
          ? `Bearer ${jwt()}`
          : `Basic ${Buffer.from(`svc-${int(1, 9)}:${b64url(20)}`).toString('base64')}`;
    if (r() < 0.5) h.traceparent = `00-${hex(32)}-${hex(16)}-01`;
    if (r() < 0.3) h['x-request-id'] = uuid();
    if (r() < 0.2) h['if-none-match'] = `W/"${hex(16)}"`;
    if (r() < 0.2) h['x-forwarded-for'] = `203.0.113.${int(1, 254)}`;
    return { ...h, ...extra };
  };

  const out: CorpusEntry[] = [];
  const add = (name: string, method: string, uri: string, headers: Record<string, string>, body?: Buffer) => {
    const h = { ...headers };
    if (body !== undefined) h['content-length'] = String(body.length);
    out.push({
      name: `${out.length}: ${name}`,
      request: {
        method,
        uri,
        httpVersion: r() < 0.3 ? '2.0' : '1.1',
        headers: h,
        clientIp: `198.51.100.${int(1, 254)}`,
        clientPort: int(1024, 65535),
        ...(body !== undefined ? { body } : {}),
      },
    });
  };
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));

  for (let round = 0; out.length < min; round++) {
    const ua = pick(USER_AGENTS);
    // 1. Collection GETs with paging, sorting, sparse fields, filters.
    add(
      'list',
      'GET',
      `/api/v1/${pick(['users', 'orders', 'products', 'invoices'])}?page=${int(1, 40)}&per_page=${pick([20, 50, 100])}&sort=${pick(['-created_at', 'name', 'price,-id'])}&fields=id,name,email,created_at&q=${encodeURIComponent(pick(WORDS) + ' ' + pick(WORDS))}`,
      commonHeaders(ua),
    );
    // 2. Long query strings: many ids, dates, tracking parameters, an encoded return URL.
    const ids = Array.from({ length: int(20, 120) }, () => int(1, 99999)).join(',');
    add(
      'long-query',
      'GET',
      `/api/v2/reports/sales?ids=${ids}&from=${encodeURIComponent(isoDate())}&to=${encodeURIComponent(isoDate())}&currency=EUR&group_by=day&tz=${encodeURIComponent('Europe/Berlin')}&utm_source=newsletter&utm_medium=email&utm_campaign=spring_${int(2020, 2025)}&return_to=${encodeURIComponent('https://shop.example.com/account/orders?tab=open')}&cursor=${b64url(int(40, 200))}`,
      commonHeaders(ua),
    );
    // 3. Resource GET by id, with unicode search in the query.
    add(
      'get-by-id',
      'GET',
      `/api/v1/users/${uuid()}?include=${pick(['orders', 'addresses,payment_methods', 'roles'])}&city=${encodeURIComponent(pick(CITIES))}`,
      commonHeaders(ua),
    );
    // 4. JSON create with nested objects and unicode.
    add(
      'json-create',
      'POST',
      '/api/v1/users',
      commonHeaders(ua, { 'content-type': 'application/json' }),
      json({
        name: name(),
        email: email(),
        address: {
          street: `${int(1, 200)} ${pick(['Hauptstraße', 'Rue de la Paix', 'Calle Mayor', 'Baker Street'])}`,
          city: pick(CITIES),
          zip: String(int(10000, 99999)),
          country: pick(['DE', 'FR', 'ES', 'GB', 'JP', 'BR']),
        },
        tags: [pick(WORDS), pick(WORDS)],
        marketingOptIn: r() < 0.5,
        birthday: isoDate().slice(0, 10),
        bio: pick(COMMENTS),
      }),
    );
    // 5. Orders with line items.
    add(
      'json-order',
      'POST',
      '/api/v1/orders',
      commonHeaders(ua, { 'content-type': 'application/json; charset=utf-8', 'idempotency-key': uuid() }),
      json({
        customerId: uuid(),
        items: Array.from({ length: int(1, 8) }, () => ({
          sku: `SKU-${hex(6).toUpperCase()}`,
          qty: int(1, 5),
          price: Number((r() * 200).toFixed(2)),
          title: `${pick(WORDS)} ${pick(WORDS)}`,
        })),
        note: pick(COMMENTS),
        shipping: {
          method: pick(['standard', 'express', 'pickup']),
          address: `${int(1, 99)} ${pick(CITIES)}`,
        },
        couponCode: r() < 0.3 ? `SPRING${int(10, 50)}` : null,
      }),
    );
    // 6. Updates: PUT, JSON merge patch (Kubernetes style), JSON patch, DELETE.
    add(
      'json-put',
      'PUT',
      `/api/v1/products/${int(1, 99999)}`,
      commonHeaders(ua, { 'content-type': 'application/json' }),
      json({
        title: `${pick(WORDS)} ${pick(WORDS)}`,
        price: int(1, 999) + 0.99,
        stock: int(0, 500),
        description: pick(COMMENTS),
        updatedAt: isoDate(),
      }),
    );
    add(
      'merge-patch',
      'PATCH',
      `/apis/apps/v1/namespaces/default/deployments/web-${hex(5)}`,
      commonHeaders('kubectl/v1.30.2 (linux/amd64) kubernetes/39683505', {
        'content-type': 'application/merge-patch+json',
      }),
      json({
        spec: {
          replicas: int(1, 10),
          template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': isoDate() } } },
        },
      }),
    );
    add(
      'json-patch',
      'PATCH',
      `/api/v1/users/${int(1, 99999)}`,
      commonHeaders(ua, { 'content-type': 'application/json-patch+json' }),
      json([
        { op: 'replace', path: '/email', value: email() },
        { op: 'add', path: '/tags/-', value: pick(WORDS) },
      ]),
    );
    add('delete', 'DELETE', `/api/v1/sessions/${uuid()}`, commonHeaders(ua));
    // 7. Form posts: login, search, comment.
    add(
      'form-login',
      'POST',
      '/login',
      commonHeaders(ua, { 'content-type': 'application/x-www-form-urlencoded' }),
      Buffer.from(
        new URLSearchParams({
          username: email(),
          password: `${pick(['Correct', 'Horse', 'Battery', 'Staple'])}${int(10, 99)}${pick(['!', '#', '.', '?'])}${b64url(6)}`,
          remember: 'on',
          csrf_token: b64url(43),
        }).toString(),
      ),
    );
    add(
      'form-comment',
      'POST',
      `/products/${int(1, 999)}/reviews`,
      commonHeaders(ua, { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' }),
      Buffer.from(
        new URLSearchParams({
          rating: String(int(1, 5)),
          title: `${pick(WORDS)} ${pick(WORDS)}`,
          body: pick(COMMENTS),
          author: name(),
        }).toString(),
      ),
    );
    // 8. Multipart upload: an image, a PDF or a CSV, plus text fields.
    const boundary = `----WebKitFormBoundary${b64url(16).replace(/[-_]/g, 'x')}`;
    const kind = pick(['png', 'pdf', 'csv']);
    const file =
      kind === 'csv'
        ? Buffer.from(
            `id,name,city,amount\n${Array.from({ length: int(3, 30) }, (_, i) => `${i + 1},${name()},${pick(CITIES)},${(r() * 1000).toFixed(2)}`).join('\n')}\n`,
          )
        : Buffer.concat([
            Buffer.from(kind === 'png' ? '\x89PNG\r\n\x1a\n' : '%PDF-1.7\n', 'latin1'),
            Buffer.from(Array.from({ length: int(200, 4000) }, () => int(0, 255))),
          ]);
    const mime = kind === 'png' ? 'image/png' : kind === 'pdf' ? 'application/pdf' : 'text/csv';
    const fname =
      kind === 'csv'
        ? `export-${pick(CITIES)}.csv`
        : `${pick(['avatar', 'scan', 'Rechnung_März', 'photo 1'])}.${kind}`;
    const mp = Buffer.concat([
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\n${pick(WORDS)} ${name()}\r\n`,
      ),
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${fname}"\r\nContent-Type: ${mime}\r\n\r\n`,
      ),
      file,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    add(
      'multipart',
      'POST',
      '/api/v1/uploads',
      commonHeaders(ua, { 'content-type': `multipart/form-data; boundary=${boundary}` }),
      mp,
    );
    // 9. GraphQL query with variables.
    add(
      'graphql',
      'POST',
      '/graphql',
      commonHeaders(ua, { 'content-type': 'application/json' }),
      json({
        operationName: 'GetOrders',
        query:
          'query GetOrders($first: Int!, $after: String) { viewer { orders(first: $first, after: $after) { edges { node { id total status } } pageInfo { hasNextPage endCursor } } } }',
        variables: { first: int(10, 50), after: r() < 0.5 ? null : b64url(24) },
      }),
    );
    // 10. Raw binary upload and plain text.
    add(
      'octet-upload',
      'PUT',
      `/api/v1/blobs/${uuid()}`,
      commonHeaders(ua, { 'content-type': 'application/octet-stream' }),
      Buffer.from(Array.from({ length: int(100, 3000) }, () => int(0, 255))),
    );
    add(
      'text-note',
      'POST',
      '/api/v1/notes',
      commonHeaders(ua, { 'content-type': 'text/plain; charset=utf-8' }),
      Buffer.from(`${pick(COMMENTS)}\n${pick(COMMENTS)}\n`),
    );
    // 11. Health checks, static assets, CORS preflight, HEAD.
    if (round % 2 === 0)
      add(
        'health',
        'GET',
        pick(['/healthz', '/readyz', '/livez', '/metrics']),
        commonHeaders('kube-probe/1.30'),
      );
    if (round % 3 === 0)
      add('asset', 'GET', `/static/js/app.${hex(8)}.js?v=${int(1, 99)}`, commonHeaders(pick(USER_AGENTS)));
    if (round % 3 === 1)
      add(
        'preflight',
        'OPTIONS',
        '/api/v1/orders',
        commonHeaders(USER_AGENTS[0]!, {
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,authorization',
        }),
      );
    if (round % 4 === 0) add('head', 'HEAD', `/api/v1/products/${int(1, 9999)}`, commonHeaders(ua));
  }
  return out;
}
