import type { IncomingHttpHeaders } from 'node:http';
import fc from 'fast-check';
import t from 'tap';
import { addressSet } from '../../../src/net/cidr.js';
import { nameSet } from '../../../src/net/names.js';
import { createContext, type ProxySettings } from '../../../src/proxy/context.js';
import { ProxyError } from '../../../src/proxy/errors.js';
import { REQUEST_PASSES, RESPONSE_PASSES } from '../../../src/proxy/passes.js';
import type { ResponseContext } from '../../../src/proxy/response/headers.js';
import { rewriteToPublic } from '../../../src/proxy/response/origin.js';
import { rewriteChallenge } from '../../../src/proxy/response/realm.js';

// Properties over the header, forwarded, Location and realm logic, with inputs a
// hostile client or a confused upstream could send.

const RUNS = { numRuns: 2000 };
const UPSTREAM = new URL('http://registry:5000');
const PUBLIC = 'https://registry.example.com';
const view = { upstream: UPSTREAM, publicOrigin: PUBLIC };

/** Header values as Node's parser delivers them: any byte but CR, LF and NUL (latin1). */
const headerValue = fc.string({ unit: fc.integer({ min: 0, max: 255 }).filter((c) => c !== 10 && c !== 13 && c !== 0).map((c) => String.fromCharCode(c)), maxLength: 80 });
const token = fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}$/);
const hostish = fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6().map((a) => `[${a}]`), headerValue);
const headerName = fc.oneof(
  token.map((s) => s.toLowerCase()),
  fc.constantFrom('host', 'connection', 'transfer-encoding', 'content-length', 'forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip', 'te', 'upgrade', 'keep-alive', 'expect', 'proxy-connection'),
);
const headers = fc
  .tuple(fc.dictionary(headerName, fc.oneof(headerValue, fc.array(headerValue, { minLength: 1, maxLength: 3 })), { maxKeys: 12 }), fc.option(hostish, { nil: undefined }))
  .map(([h, host]) => (host === undefined ? h : { ...h, host })) as fc.Arbitrary<IncomingHttpHeaders>;
const peer = fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4().map((a) => `::ffff:${a}`));
const settings = fc.record({
  trusted: fc.subarray(['10.0.0.0/8', '::1', '192.0.2.0/24']),
  publicOrigin: fc.option(fc.constant(PUBLIC), { nil: undefined }),
  names: fc.option(fc.constant(['registry.example.com', '*.example.org']), { nil: undefined }),
});

const noCrLf = (value: unknown): boolean => [value].flat().every((v) => v === undefined || !/[\r\n]/.test(String(v)));

t.test('request passes: never throw anything but a ProxyError; never put CR or LF in a header', async (t) => {
  fc.assert(
    fc.property(headers, peer, settings, fc.constantFrom('/v2/', 'https://evil.example/v2/x', '/v2//a?b=%2F', '*'), (h, address, s, url) => {
      const proxySettings: ProxySettings = { upstream: UPSTREAM, publicOrigin: s.publicOrigin, trustedProxies: addressSet(s.trusted), names: s.names ? nameSet(s.names) : undefined };
      const ctx = createContext(proxySettings, { method: 'PUT', url, headers: { ...h }, socket: { remoteAddress: address } });
      try {
        for (const pass of REQUEST_PASSES) pass(ctx);
      } catch (err) {
        if (!(err instanceof ProxyError)) throw err;
        return;
      }
      for (const [name, value] of Object.entries(ctx.headers)) {
        if (!noCrLf(value) || /[\r\n:]/.test(name)) throw new Error(`header ${name}: ${JSON.stringify(value)}`);
      }
      // Forwarding is decided by berth alone.
      if (ctx.headers['x-forwarded-proto'] !== 'https') throw new Error('X-Forwarded-Proto is not https');
      if (!ctx.trusted && (ctx.headers.forwarded !== undefined || ctx.headers['x-real-ip'] !== undefined)) throw new Error('an untrusted peer kept a forwarding header');
      // Hop-by-hop headers never go upstream.
      for (const name of ['connection', 'keep-alive', 'te', 'upgrade', 'proxy-connection', 'expect']) {
        if (ctx.headers[name] !== undefined) throw new Error(`${name} forwarded`);
      }
      // A served-names check that passed means the Host is served.
      if (proxySettings.names && ctx.headers.host !== undefined && !proxySettings.names.matches(ctx.headers.host.replace(/:\d+$/, ''))) throw new Error(`unserved Host ${ctx.headers.host} passed`);
    }),
    RUNS,
  );
  t.pass('2000 random header sets');
});

/** URLs on the upstream, with paths and queries as a registry sends them (or odder). */
const pathAndQuery = fc
  .tuple(fc.webPath(), fc.option(fc.webQueryParameters(), { nil: undefined }), fc.option(fc.webFragments(), { nil: undefined }))
  .map(([p, q, f]) => `${p.startsWith('/') ? p : `/${p}`}${q === undefined ? '' : `?${q}`}${f === undefined ? '' : `#${f}`}`);
const encodedState = fc.string({ maxLength: 40 }).map((s) => `/v2/lib/app/blobs/uploads/u?_state=${encodeURIComponent(s)}%2B%3D%2f&digest=sha256%3Aab`);
const rest = fc.oneof(pathAndQuery, encodedState);
const upstreamUrl = fc.tuple(fc.constantFrom('http://registry:5000', 'HTTP://Registry:5000', '//registry:5000'), rest).map(([o, r]) => [o + r, r] as const);
const otherUrl = fc.oneof(
  fc.webUrl({ withQueryParameters: true, withFragments: true }).filter((u) => !/^https?:\/\/registry(:5000)?([/?#]|$)/i.test(u) && !/^http:\/\/registry\.example\.com(:80)?([/?#]|$)/i.test(u)),
  rest, // relative: left for the client to resolve
  headerValue,
);

t.test('Location: a URL on the upstream lands on the public origin, path and query byte-exact', async (t) => {
  fc.assert(
    fc.property(upstreamUrl, ([url, tail]) => {
      const out = rewriteToPublic(url, view);
      if (out !== PUBLIC + tail) throw new Error(`${url} -> ${out}`);
    }),
    RUNS,
  );
  t.pass();
});

t.test('Location: anything not on the upstream (or the public host over http) comes back untouched', async (t) => {
  fc.assert(
    fc.property(otherUrl, (url) => {
      const out = rewriteToPublic(url, view);
      if (out !== undefined) throw new Error(`${url} was rewritten to ${out}`);
    }),
    RUNS,
  );
  t.pass();
});

t.test('response passes: never throw, never emit CR or LF, rewrite only upstream URLs', async (t) => {
  const pairs = fc.array(
    fc.oneof(
      fc.tuple(fc.constantFrom('Location', 'location'), fc.oneof(upstreamUrl.map(([u]) => u), otherUrl)),
      fc.tuple(fc.constant('WWW-Authenticate'), fc.oneof(upstreamUrl.map(([u]) => `Bearer realm="${u}",service="r"`), headerValue)),
      fc.tuple(headerName, headerValue),
    ),
    { maxLength: 10 },
  ) as fc.Arbitrary<[string, string][]>;
  fc.assert(
    fc.property(pairs, fc.constantFrom(200, 201, 202, 204, 301, 307, 401, 404), (given, status) => {
      const ctx: ResponseContext = { status, headers: given.flat(), upstream: UPSTREAM, publicOrigin: PUBLIC, hsts: 'max-age=60' };
      for (const pass of RESPONSE_PASSES) pass(ctx);
      if (ctx.headers.length % 2 !== 0) throw new Error('a name without its value');
      for (let i = 0; i < ctx.headers.length; i += 2) {
        const name = ctx.headers[i]!;
        const value = ctx.headers[i + 1]!;
        if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new Error(`${name}: ${JSON.stringify(value)}`);
        if (name.toLowerCase() === 'location' && value !== given.find(([n, v]) => n.toLowerCase() === 'location' && (v === value || rewriteToPublic(v, view) === value))?.[1] && !value.startsWith(PUBLIC)) {
          throw new Error(`Location ${value} neither kept nor on the public origin`);
        }
      }
    }),
    RUNS,
  );
  t.pass();
});

t.test('realm: rewritten only when it names the upstream, quoted, the rest of the challenge kept', async (t) => {
  fc.assert(
    fc.property(upstreamUrl, fc.constantFrom('Bearer ', 'Basic '), ([url, tail], scheme) => {
      const out = rewriteChallenge(`${scheme}realm="${url}",service="harbor-registry",scope="repository:a/b:pull"`, view);
      if (out !== `${scheme}realm="${PUBLIC}${tail}",service="harbor-registry",scope="repository:a/b:pull"`) throw new Error(out);
    }),
    RUNS,
  );
  fc.assert(
    fc.property(headerValue, (challenge) => {
      const out = rewriteChallenge(challenge, view);
      if (/[\r\n]/.test(out)) throw new Error(out);
      if (!/realm/i.test(challenge) && out !== challenge) throw new Error(`changed without a realm: ${challenge} -> ${out}`);
    }),
    RUNS,
  );
  t.pass();
});
