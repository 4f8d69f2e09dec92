import fs from 'node:fs';
import os from 'node:os';
import t from 'tap';
import YAML from 'yaml';
import { KEYS, envName } from '../../../src/config/schema.js';
import { ConfigError, buildConfig, flattenYaml, fromEnv, parseDuration, parseListen, warnings, type Raw } from '../../../src/config/validate.js';

const layer = (values: Record<string, unknown>, source = 'test'): Map<string, Raw> =>
  new Map(Object.entries(values).map(([k, value]) => [k, { value, source }]));

t.test('defaults', async (t) => {
  const config = buildConfig([]);
  t.same(config.listen, { host: undefined, port: 8443 });
  t.equal(config.upstream.href, 'http://127.0.0.1:5000/');
  t.equal(config.publicOrigin, undefined);
  t.same(config.tls, { cert: undefined, key: undefined, dir: 'certs', ticketKeyRotation: 12 * 3_600_000 });
  t.same(config.trustedProxies.cidrs, []);
  t.same(config.timeouts, { handshake: 10_000, headers: 60_000, clientIdle: 600_000, keepAlive: 75_000, upstreamConnect: 10_000, upstreamResponse: 900_000 });
  t.same(config.log, { level: 'info', format: 'json' });
  t.equal(config.workers, os.availableParallelism(), 'workers: auto is one per CPU');
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.timeouts), 'frozen');
  t.match(warnings(config), [/^publicOrigin and serverNames are unset: host names are not enforced/], 'the defaults warrant one warning: the development case');
});

t.test('later layers win', async (t) => {
  const config = buildConfig([layer({ upstream: 'http://a:1', listen: '127.0.0.1:1' }), layer({ upstream: 'http://b:2' })]);
  t.equal(config.upstream.host, 'b:2');
  t.same(config.listen, { host: '127.0.0.1', port: 1 });
});

t.test('bad values name the key, what was expected and where it came from', async (t) => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ upstream: 'registry:5000' }, /^upstream: expected an absolute http or https URL .* got "registry:5000" \(from test\)$/],
    [{ upstream: 'http://r:5000/v2' }, /^upstream: expected .*no path/],
    [{ upstream: 'ftp://r' }, /^upstream: /],
    [{ upstream: 'http://u:p@r' }, /^upstream: /],
    [{ publicOrigin: 'http://r.example.com' }, /^publicOrigin: expected an absolute https URL/],
    [{ listen: '8443' }, /^listen: expected HOST:PORT/],
    [{ listen: ':99999' }, /^listen: /],
    [{ listen: '[zz]:1' }, /^listen: /],
    [{ trustedProxies: ['10.0.0.0/33'] }, /^trustedProxies: prefix \/33 is longer than 32 bits/],
    [{ trustedProxies: 'proxy.internal' }, /^trustedProxies: expected an IP address or CIDR/],
    [{ trustedProxies: [1, 2] }, /^trustedProxies: expected a list of CIDRs/],
    [{ 'timeouts.headers': 'soon' }, /^timeouts\.headers: expected a duration such as "500ms"/],
    [{ 'timeouts.headers': '0' }, /^timeouts\.headers: expected a duration above 0/],
    [{ 'timeouts.upstreamResponse': -1 }, /^timeouts\.upstreamResponse: expected a duration/],
    [{ 'log.level': 'verbose' }, /^log\.level: expected one of fatal, error, warn, info, debug, trace, silent, got "verbose"/],
    [{ 'log.format': 'text' }, /^log\.format: expected one of json, pretty/],
    [{ 'tls.cert': '/a.crt' }, /^tls\.key: tls\.cert and tls\.key must be set together$/],
    [{ workers: 0 }, /^workers: expected "auto" or a whole number from 1 to 256, got 0 \(number\)/],
    [{ workers: 'many' }, /^workers: expected "auto" or a whole number/],
    [{ workers: 1.5 }, /^workers: /],
    [{ 'tls.cert': 5, 'tls.key': '/k' }, /^tls\.cert: expected a file path, got 5 \(number\)/],
  ];
  for (const [values, pattern] of cases) {
    const err = t.throws(() => buildConfig([layer(values)])) as Error;
    t.type(err, ConfigError, JSON.stringify(values));
    t.match(err.message, pattern, JSON.stringify(values));
    t.notMatch(err.message, /\n/, 'one line');
  }
});

t.test('durations and listen addresses', async (t) => {
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('60s'), 60_000);
  t.equal(parseDuration('15m'), 900_000);
  t.equal(parseDuration('1h'), 3_600_000);
  t.equal(parseDuration('1.5s'), 1500);
  t.equal(parseDuration(30), 30_000, 'a number is seconds');
  t.equal(parseDuration('30'), 30_000);
  t.equal(parseDuration('30d'), 30 * 86_400_000, 'days, for HSTS');
  t.throws(() => parseDuration('1w'));
  t.same(parseListen(':8443'), { host: undefined, port: 8443 });
  t.same(parseListen('0.0.0.0:443'), { host: '0.0.0.0', port: 443 });
  t.same(parseListen('[::1]:8443'), { host: '::1', port: 8443 });
  t.same(parseListen('localhost:0'), { host: 'localhost', port: 0 });
  t.same(parseListen(8443), { host: undefined, port: 8443 });
  t.equal(buildConfig([layer({ workers: '3' })]).workers, 3, 'workers from the environment or a flag');
  t.equal(buildConfig([layer({ workers: 1 })]).workers, 1);
});

t.test('YAML: unknown keys and wrong shapes are refused with their path', async (t) => {
  const cases: [unknown, RegExp][] = [
    [{ trustedProxy: ['10.0.0.0/8'] }, /^trustedProxy: unknown key/],
    [{ timeouts: { upstream: '1m' } }, /^timeouts\.upstream: unknown key/],
    [{ tls: 'cert.pem' }, /^tls: expected a mapping of keys/],
    [['a'], /^\(top level\): expected a mapping/],
  ];
  for (const [doc, pattern] of cases) t.throws(() => flattenYaml(doc, 'berth.yaml'), pattern, JSON.stringify(doc));
  t.same([...flattenYaml(null, 'f').keys()], [], 'an empty file is fine');
  const flat = flattenYaml({ upstream: 'http://r:1', timeouts: { headers: '5s' } }, 'f');
  t.same(Object.fromEntries([...flat].map(([k, v]) => [k, v.value])), { upstream: 'http://r:1', 'timeouts.headers': '5s' });
});

t.test('environment variables', async (t) => {
  t.equal(envName('timeouts.upstreamResponse'), 'BERTH_TIMEOUTS_UPSTREAM_RESPONSE');
  t.equal(envName('trustedProxies'), 'BERTH_TRUSTED_PROXIES');
  t.equal(envName('tls.cert'), 'BERTH_TLS_CERT');
  const env = fromEnv({ BERTH_UPSTREAM: 'http://h:1', BERTH_TRUSTED_PROXIES: '10.0.0.0/8, 192.168.0.0/16', PATH: '/bin', BERTH_CONFIG: 'x' }, ['BERTH_CONFIG']);
  const config = buildConfig([env]);
  t.equal(config.upstream.host, 'h:1');
  t.same(config.trustedProxies.cidrs, ['10.0.0.0/8', '192.168.0.0/16']);
  t.throws(() => fromEnv({ BERTH_UPSTRAEM: 'x' }, []), /^BERTH_UPSTRAEM: unknown environment variable/);
  t.throws(() => buildConfig([fromEnv({ BERTH_TIMEOUTS_HEADERS: 'x' }, [])]), /\(from BERTH_TIMEOUTS_HEADERS\)$/);
});

t.test('warnings for legal but risky settings', async (t) => {
  t.same(warnings(buildConfig([layer({ publicOrigin: 'https://r.example' })])), [], 'with a public origin, none');
  t.same(warnings(buildConfig([layer({ serverNames: 'r.example' })])), [], 'or with server names');
  t.match(warnings(buildConfig([layer({ 'timeouts.upstreamResponse': '1m' })])), [/under 15m/]);
  t.match(warnings(buildConfig([layer({ 'timeouts.upstreamResponse': 0 })])), [/hung upstream/]);
  t.match(warnings(buildConfig([layer({ 'timeouts.clientIdle': '10s' })])), [/under 60s/]);
});

t.test('config/berth.example.yaml documents every key with its default', async (t) => {
  const text = fs.readFileSync(new URL('../../../config/berth.example.yaml', import.meta.url), 'utf8');
  const flat = flattenYaml(YAML.parse(text), 'example');
  t.same([...flat.keys()].sort(), KEYS.map((k) => k.path).sort(), 'every key, and no other');
  for (const spec of KEYS) t.same(flat.get(spec.path)!.value, spec.default, `${spec.path} shows its default`);
  t.same(buildConfig([flat]), buildConfig([]), 'the example file is the defaults');
});
