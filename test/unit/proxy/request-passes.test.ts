import { execFileSync } from 'node:child_process';
import type { IncomingHttpHeaders } from 'node:http';
import t from 'tap';
import { addressSet } from '../../../src/net/cidr.js';
import { createContext, proxySettings, type ProxySettings } from '../../../src/proxy/context.js';
import { ProxyError } from '../../../src/proxy/errors.js';
import { REQUEST_PASSES } from '../../../src/proxy/passes.js';
import { checkHost } from '../../../src/proxy/request/host.js';
import { stripHopByHop } from '../../../src/proxy/request/hopByHop.js';
import { setForwarded } from '../../../src/proxy/request/forwarded.js';
import { newRequestId, setRequestId } from '../../../src/proxy/request/requestId.js';

const settings = (trusted: string[] = [], publicOrigin?: string): ProxySettings => ({
  upstream: new URL('http://127.0.0.1:5000'),
  publicOrigin,
  trustedProxies: addressSet(trusted),
});
const ctxFor = (headers: IncomingHttpHeaders, peer = '198.51.100.9', s = settings(), method = 'GET') =>
  createContext(s, { method, url: '/v2/', headers, socket: { remoteAddress: peer } });

t.test('forwarded headers from untrusted and trusted peers', async (t) => {
  const cases: [name: string, trusted: string[], peer: string, inbound: IncomingHttpHeaders, expected: IncomingHttpHeaders, client: string][] = [
    ['untrusted, nothing inbound', [], '198.51.100.9', { host: 'r:8443' }, { host: 'r:8443', 'x-forwarded-for': '198.51.100.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'r:8443' }, '198.51.100.9'],
    [
      'untrusted, all spoofed',
      [],
      '198.51.100.9',
      { host: 'r', forwarded: 'for=1.2.3.4;proto=http', 'x-forwarded-for': '1.2.3.4', 'x-forwarded-proto': 'http, https', 'x-forwarded-host': 'evil', 'x-forwarded-port': '80', 'x-forwarded-prefix': '/x', 'x-real-ip': '1.2.3.4' },
      { host: 'r', 'x-forwarded-for': '198.51.100.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'r' },
      '198.51.100.9',
    ],
    [
      'trusted, chain extended, proto and host set once',
      ['10.0.0.0/8'],
      '10.0.0.5',
      { host: 'r', forwarded: 'for=203.0.113.1', 'x-forwarded-for': '203.0.113.1, 10.0.0.7', 'x-forwarded-proto': 'http', 'x-real-ip': '203.0.113.1' },
      { host: 'r', forwarded: 'for=203.0.113.1', 'x-real-ip': '203.0.113.1', 'x-forwarded-for': '203.0.113.1, 10.0.0.7, 10.0.0.5', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'r' },
      '203.0.113.1',
    ],
    ['trusted IPv4-mapped peer', ['10.0.0.0/8'], '::ffff:10.0.0.5', { host: 'r', 'x-forwarded-for': '192.0.2.4' }, { host: 'r', 'x-forwarded-for': '192.0.2.4, 10.0.0.5', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'r' }, '192.0.2.4'],
    ['trusted, whole chain trusted', ['10.0.0.0/8'], '10.0.0.5', { host: 'r', 'x-forwarded-for': '10.9.9.9' }, { host: 'r', 'x-forwarded-for': '10.9.9.9, 10.0.0.5', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'r' }, '10.9.9.9'],
    ['IPv6 peer untrusted', ['10.0.0.0/8'], '2001:db8::1', { host: 'r', 'x-forwarded-for': '1.1.1.1' }, { host: 'r', 'x-forwarded-for': '2001:db8::1', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'r' }, '2001:db8::1'],
  ];
  for (const [name, trusted, peer, inbound, expected, client] of cases) {
    const ctx = ctxFor({ ...inbound }, peer, settings(trusted));
    setForwarded(ctx);
    t.same(ctx.headers, expected, name);
    t.equal(ctx.client, client, `${name}: client`);
  }
});

t.test('hop-by-hop removal and framing', async (t) => {
  const cases: [name: string, method: string, inbound: IncomingHttpHeaders, expected: IncomingHttpHeaders, body?: string][] = [
    ['fixed list', 'GET', { host: 'r', connection: 'keep-alive', 'keep-alive': '5', te: 'trailers', trailer: 'x', upgrade: 'h2c', 'proxy-authorization': 'a', 'proxy-connection': 'x' }, { host: 'r' }],
    ['named by Connection', 'GET', { host: 'r', connection: 'X-Foo, close', 'x-foo': '1', 'x-bar': '2' }, { host: 'r', 'x-bar': '2' }],
    ['Connection cannot remove framing or Host', 'PUT', { host: 'r', connection: 'content-length, host', 'content-length': '5' }, { host: 'r', 'content-length': '5' }],
    ['chunked body: framing left to the transport', 'PATCH', { host: 'r', 'transfer-encoding': 'chunked', 'content-length': '3' }, { host: 'r' }, 'chunked'],
    ['chunked DELETE keeps its framing', 'DELETE', { host: 'r', 'transfer-encoding': 'chunked' }, { host: 'r' }, 'chunked'],
    ['Content-Length framing', 'PUT', { host: 'r', 'content-length': '0' }, { host: 'r', 'content-length': '0' }, 'length'],
    ['no body', 'GET', { host: 'r' }, { host: 'r' }, 'none'],
    ['Expect met here', 'PUT', { host: 'r', expect: '100-continue', 'content-length': '1' }, { host: 'r', 'content-length': '1' }, 'length'],
  ];
  for (const [name, method, inbound, expected, body] of cases) {
    const ctx = ctxFor({ ...inbound }, undefined, undefined, method);
    stripHopByHop(ctx);
    t.same(ctx.headers, expected, name);
    if (body) t.equal(ctx.body, body, `${name}: framing`);
  }
});

t.test('Host is checked and decides the public origin', async (t) => {
  const good = ['registry.example.com', 'registry.example.com:8443', 'localhost:1', '[::1]:8443', '127.0.0.1', 'a_b.internal'];
  for (const host of good) {
    const ctx = ctxFor({ host });
    checkHost(ctx);
    t.equal(ctx.publicOrigin, `https://${host}`, host);
  }
  const bad = ['evil.example/x?', 'a b', 'host:port', 'a@b', '', 'x:123456', '[::1'];
  for (const host of bad) t.throws(() => checkHost(ctxFor({ host })), ProxyError, JSON.stringify(host));
  const configured = ctxFor({ host: 'whatever:1' }, undefined, settings([], 'https://reg.example.com'));
  checkHost(configured);
  t.equal(configured.publicOrigin, 'https://reg.example.com', 'a configured public origin wins');
  const absolute = createContext(settings(), { method: 'GET', url: 'HTTP://Reg.example.com:8443/v2/x?_state=a%2B', headers: { host: 'other' }, socket: {} });
  checkHost(absolute);
  t.equal(absolute.url, '/v2/x?_state=a%2B', 'absolute-form becomes origin-form, byte-exact');
  t.equal(absolute.headers.host, 'Reg.example.com:8443', 'and its authority is the Host');
  const bareAbsolute = createContext(settings(), { method: 'GET', url: 'http://reg.example.com', headers: {}, socket: {} });
  checkHost(bareAbsolute);
  t.equal(bareAbsolute.url, '/');
  t.throws(() => checkHost(createContext(settings(), { method: 'GET', url: 'http://a b/x', headers: {}, socket: {} })), ProxyError, 'a bad authority in absolute-form');
  t.throws(() => checkHost(createContext(settings(), { method: 'OPTIONS', url: '*', headers: { host: 'r' }, socket: {} })), ProxyError, 'asterisk-form');
  t.throws(() => checkHost(ctxFor({})), ProxyError, 'HTTP/1.0 without Host and no publicOrigin: refused, never forwarded on the upstream authority');
  const noHost = ctxFor({}, undefined, settings([], 'https://reg.example.com:8443'));
  checkHost(noHost);
  t.equal(noHost.headers.host, 'reg.example.com:8443', "HTTP/1.0 without Host: publicOrigin's authority stands in");
  const twice = createContext(settings(), { method: 'GET', url: '/v2/', headers: { host: 'a' }, rawHeaders: ['Host', 'a', 'host', 'b'], socket: {} });
  t.throws(() => checkHost(twice), ProxyError, 'two Host lines');
  const query = createContext(settings(), { method: 'GET', url: 'http://reg.example.com?x=1', headers: {}, socket: {} });
  checkHost(query);
  t.equal(query.url, '/?x=1', 'absolute-form with an empty path and a query');
});

t.test('the passes in order: a Connection-named header cannot remove what berth sets', async (t) => {
  const ctx = ctxFor({ host: 'r', connection: 'x-forwarded-proto, x-forwarded-for', 'x-forwarded-proto': 'http' });
  for (const pass of REQUEST_PASSES) pass(ctx);
  t.equal(ctx.headers['x-forwarded-proto'], 'https');
  t.equal(ctx.headers['x-forwarded-for'], '198.51.100.9');
});

t.test('HSTS is decided once per request with the public origin: for named hosts only', async (t) => {
  const hsts = 'max-age=60';
  const withHsts = (publicOrigin?: string): ProxySettings => proxySettings({ ...settings([], publicOrigin), hsts });
  const decided = (s: ProxySettings, host: string): string | undefined => {
    const ctx = ctxFor({ host }, '198.51.100.9', s);
    checkHost(ctx);
    return ctx.hsts;
  };
  // From each request's Host when publicOrigin is unset.
  for (const host of ['registry.example.com', 'Registry.Example.com:8443', 'harbor', 'x1']) t.equal(decided(withHsts(), host), hsts, `Host ${host}`);
  for (const host of ['127.0.0.1', '127.0.0.1:8443', '127.1', '0x7f.1', '2130706433', 'v2.1', '[::1]:8443', '[2001:db8::1]', 'localhost', 'LOCALHOST:8443', 'a.localhost']) {
    t.equal(decided(withHsts(), host), undefined, `Host ${host}: an address or localhost`);
  }
  // From publicOrigin, prepared once, whatever the Host.
  t.equal(decided(withHsts('https://registry.example.com'), 'registry.example.com'), hsts);
  t.equal(decided(withHsts('https://127.0.0.1:8443'), '127.0.0.1:8443'), undefined);
  t.equal(decided(withHsts('https://[::1]:8443'), '[::1]:8443'), undefined);
  t.equal(decided(withHsts('https://localhost:8443'), 'localhost:8443'), undefined);
  // HSTS off.
  t.equal(decided(proxySettings(settings([], 'https://registry.example.com')), 'registry.example.com'), undefined);
  t.equal(decided(proxySettings(settings()), 'registry.example.com'), undefined);
});

t.test('HSTS: any host a request may name is judged as by its lowercased form', async (t) => {
  const fc = (await import('fast-check')).default;
  const net = await import('node:net');
  const { hstsNamesHost } = await import('../../../src/proxy/response/hsts.js');
  // The rule as written first: on the lowercased host.
  const plain = (host: string): boolean => {
    const name = host.startsWith('[') ? host.slice(1, -1) : host.toLowerCase();
    return !(net.isIP(name) || /(?:^|\.)(?:\d+|0x[0-9a-f]*)\.?$/.test(name) || name === 'localhost' || name.endsWith('.localhost'));
  };
  const cased = (text: string) => fc.array(fc.boolean(), { minLength: text.length, maxLength: text.length }).map((upper) => [...text].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join(''));
  const label = fc.oneof(fc.constantFrom('localhost', '0x7f', '0X', '127', '1', 'v2', 'registry', 'x1', 'ff').chain(cased), fc.stringMatching(/^[A-Za-z0-9_~-]{1,6}$/));
  const host = fc.oneof(
    fc.array(label, { minLength: 1, maxLength: 5 }).chain((labels) => fc.boolean().map((dot) => labels.join('.') + (dot ? '.' : ''))),
    fc.ipV4(),
    fc.ipV6().map((address) => `[${address}]`),
    fc.ipV6().chain(cased).map((address) => `[${address}]`),
  );
  fc.assert(fc.property(host, (h) => hstsNamesHost(h) === plain(h)), { numRuns: 20_000 });
  t.pass();
});

t.test('request ids berth makes are UUID-shaped and never repeat', async (t) => {
  const ids = new Set<string>();
  for (let i = 0; i < 10_000; i++) ids.add(newRequestId());
  t.equal(ids.size, 10_000, 'no id repeats');
  const [first] = ids;
  t.match(first, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'RFC 9562 layout, version 8, variant 10');
  const ctx = ctxFor({ host: 'r', 'x-request-id': 'from-the-client' });
  setRequestId(ctx);
  t.not(ctx.requestId, 'from-the-client', "an untrusted client's id is replaced");
  t.equal(ctx.headers['x-request-id'], ctx.requestId, 'and sent upstream as logged');
  // Another process draws its own part: ids from two workers never meet.
  const built = new URL('../../../dist/proxy/request/requestId.js', import.meta.url).href;
  const other = execFileSync(process.execPath, ['--input-type=module', '-e', `import { newRequestId } from '${built}'; process.stdout.write(newRequestId());`], { encoding: 'utf8' });
  t.not(other.slice(0, 23), first!.slice(0, 23), 'another process, another prefix');
});
