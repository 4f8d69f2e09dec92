import t from 'tap';
import { startTestBerth, waitForLog } from '../helpers/berth.js';
import { ask } from '../helpers/client.js';
import { startUpstream } from '../helpers/upstream.js';

const SPOOFED = {
  forwarded: 'for=6.6.6.6;proto=http;host=evil.example',
  'x-forwarded-for': '6.6.6.6',
  'x-forwarded-proto': 'http',
  'x-forwarded-host': 'evil.example',
  'x-forwarded-port': '80',
  'x-real-ip': '6.6.6.6',
};

t.test('spoofed forwarded headers from an untrusted client never reach the upstream', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const tb = await startTestBerth(t, { upstream: up.url });
  const answer = await ask(tb, { path: '/v2/', headers: SPOOFED });
  t.equal(answer.status, 200);
  const h = up.seen[0]!.headers;
  t.equal(h.forwarded, undefined, 'Forwarded removed');
  t.equal(h['x-real-ip'], undefined, 'X-Real-IP removed');
  t.equal(h['x-forwarded-port'], undefined, 'X-Forwarded-Port removed');
  t.equal(h['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For is the peer alone');
  t.equal(h['x-forwarded-proto'], 'https', 'one X-Forwarded-Proto: https');
  t.equal(h['x-forwarded-host'], `localhost:${tb.port}`, 'X-Forwarded-Host is Host as received');
  t.equal(h.host, `localhost:${tb.port}`, 'Host kept, port included');
  const raw = up.seen[0]!.rawHeaders.filter((_, i, a) => i % 2 === 0 && /^x-forwarded-proto$/i.test(a[i]!));
  t.equal(raw.length, 1, 'X-Forwarded-Proto sent once');
});

t.test('multi-valued spoofed headers are removed whole', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const tb = await startTestBerth(t, { upstream: up.url });
  await ask(tb, { path: '/v2/', headers: { 'x-forwarded-proto': ['http', 'https'], 'x-forwarded-for': ['1.1.1.1', '2.2.2.2'] } });
  t.equal(up.seen[0]!.headers['x-forwarded-proto'], 'https');
  t.equal(up.seen[0]!.headers['x-forwarded-for'], '127.0.0.1');
});

t.test('a trusted proxy keeps its chain; berth appends and still sets proto and host once', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const tb = await startTestBerth(t, { upstream: up.url, trustedProxies: ['127.0.0.0/8'] });
  await ask(tb, { path: '/v2/', headers: { ...SPOOFED, 'x-forwarded-for': '203.0.113.7, 10.1.2.3' } });
  const h = up.seen[0]!.headers;
  t.equal(h['x-forwarded-for'], '203.0.113.7, 10.1.2.3, 127.0.0.1');
  t.equal(h['x-forwarded-proto'], 'https');
  t.equal(h['x-forwarded-host'], `localhost:${tb.port}`);
  t.equal(h['x-forwarded-port'], undefined);
  t.equal(h.forwarded, SPOOFED.forwarded, 'Forwarded from a trusted proxy is its own statement');
  t.equal(h['x-real-ip'], '6.6.6.6');
  const line = await waitForLog(tb, (l) => l.msg === 'request');
  t.equal(line.client, '10.1.2.3', 'the access log names the right-most untrusted address');
});

t.test('underscore spellings of forwarded headers are dropped, from untrusted and trusted peers alike', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  for (const trustedProxies of [[], ['127.0.0.0/8']]) {
    const tb = await startTestBerth(t, { upstream: up.url, trustedProxies });
    const before = up.seen.length;
    await ask(tb, { path: '/v2/', headers: { X_Forwarded_Proto: 'http', x_forwarded_host: 'evil.example', X_Real_IP: '6.6.6.6', x_custom: 'kept' } });
    const raw = up.seen[before]!.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    const who = trustedProxies.length ? 'trusted' : 'untrusted';
    t.notOk(raw.some((n) => /^(x_forwarded_|x_real_ip)/.test(n)), `${who}: no underscore spelling of a forwarding header reached the upstream (${raw.join(' ')})`);
    t.equal(up.seen[before]!.headers.x_custom, 'kept', `${who}: other underscored headers pass`);
    t.equal(up.seen[before]!.headers['x-forwarded-proto'], 'https');
  }
});

t.test('TRACE is answered 405 and never forwarded (it would echo Authorization)', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('ok'));
  const tb = await startTestBerth(t, { upstream: up.url });
  for (const method of ['TRACE']) {
    const answer = await ask(tb, { method, path: '/v2/', headers: { authorization: 'Basic c2VjcmV0' } });
    t.equal(answer.status, 405, method);
    t.match(answer.headers.allow, /GET/, `${method}: with Allow`);
    t.same(JSON.parse(answer.body.toString()), { errors: [{ code: 'UNSUPPORTED', message: 'berth: this method is not served', detail: null }] });
  }
  t.equal(up.seen.length, 0, 'nothing forwarded');
});
