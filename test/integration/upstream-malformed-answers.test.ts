import net from 'node:net';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { startTestBerth, waitForLog, type TestBerth } from '../helpers/berth.js';
import { ask, converse } from '../helpers/client.js';

// Bytes from the upstream are as hostile as bytes from a client: whatever it answers,
// berth relays a well-formed answer or says 502, and never stops serving.

/** A raw upstream that answers each request with the next bytes from `answers()`, then closes. */
async function rawUpstream(t: Test, answer: () => Buffer): Promise<string> {
  const server = net.createServer((socket) => {
    let head = '';
    socket.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      head = '';
      socket.end(answer());
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

/** One request that asks to close, on its own connection; resolves with the raw reply. */
const rawAsk = (tb: TestBerth): Promise<string> => converse(tb, `GET /v2/a/manifests/1 HTTP/1.1\r\nHost: localhost:${tb.port}\r\nConnection: close\r\n\r\n`, { first: 3000, after: 1000 });

const CASES: [name: string, bytes: string][] = [
  ['a control byte in the reason phrase', 'HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\n{}'],
  ['a DEL in the reason phrase', 'HTTP/1.1 200 O\x7fK\r\nContent-Length: 2\r\n\r\n{}'],
  ['status 099', 'HTTP/1.1 099 Low\r\nContent-Length: 2\r\n\r\n{}'],
  ['status 000', 'HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\n{}'],
  ['101 to a request that asked for no upgrade', 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n'],
  ['101 without Upgrade', 'HTTP/1.1 101 Switching Protocols\r\n\r\nxyz'],
];

t.test('malformed status lines: 502 upstream_bad_response, and berth keeps serving', async (t) => {
  let next = '';
  const up = await rawUpstream(t, () => Buffer.from(next, 'latin1'));
  const tb = await startTestBerth(t, { upstream: up });
  for (const [name, bytes] of CASES) {
    next = bytes;
    const reply = await rawAsk(tb);
    t.match(reply, /^HTTP\/1\.1 502 Bad Gateway\r\n/, `${name}: 502`);
    t.match(reply, /"message":"berth: the registry sent a malformed response"/, `${name}: in the registry error shape`);
    t.notMatch(reply, /upgrade|h2c/i, `${name}: nothing of the answer relayed`);
  }
  const errors = tb.logs.filter((l) => l.msg === 'request').map((l) => l.error);
  t.same(errors, CASES.map(() => 'upstream_bad_response'), 'each logged as upstream_bad_response');
  next = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}';
  t.equal((await ask(tb, { path: '/v2/' })).status, 200, 'and a good answer is relayed after all of them');
});

/** Reason phrases, header names and values with any byte but CR and LF. */
const anyByte = fc.integer({ min: 0, max: 255 }).filter((c) => c !== 10 && c !== 13).map((c) => String.fromCharCode(c));
const bytes = (max: number): fc.Arbitrary<string> => fc.string({ unit: anyByte, maxLength: max });
const headerName = fc.oneof(
  fc.constantFrom('Location', 'WWW-Authenticate', 'Content-Length', 'Transfer-Encoding', 'Connection', 'Upgrade', 'Keep-Alive', 'Docker-Upload-UUID', 'Strict-Transport-Security', 'Set-Cookie', 'Trailer'),
  fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}$/),
  bytes(12),
);
const headerValue = fc.oneof(
  fc.constantFrom('http://127.0.0.1:1/v2/x?_state=a', 'Bearer realm="http://127.0.0.1:1/token",service="x"', 'close', 'chunked', '0', '5', '-1', 'upgrade'),
  bytes(40),
);
const answer = fc.record({
  version: fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 ', 'http/1.1'),
  status: fc.oneof(fc.integer({ min: 0, max: 999 }).map((n) => String(n).padStart(3, '0')), fc.constantFrom('101', '100', '103', '204', '304', '1000', '20', '2x0', '')),
  reason: fc.oneof(fc.constant('OK'), bytes(20)),
  headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 8 }),
  body: fc.oneof(fc.constant(''), bytes(30), fc.constant('5\r\nhello\r\n0\r\n\r\n')),
});

t.test('generated upstream answers never take berth down', async (t) => {
  let next = '';
  const up = await rawUpstream(t, () => Buffer.from(next, 'latin1'));
  const tb = await startTestBerth(t, { upstream: up });
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(answer, async (a) => {
      runs++;
      next = `${a.version} ${a.status} ${a.reason}\r\n${a.headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n${a.body}`;
      const reply = await rawAsk(tb);
      // Either nothing (the connection closed: an answer cut mid-body) or a well-formed status line.
      if (reply !== '' && !/^HTTP\/1\.1 [1-9]\d\d [^\r\n]*\r\n/.test(reply)) throw new Error(`malformed reply ${JSON.stringify(reply.slice(0, 200))}`);
      if (/^HTTP\/1\.1 101 /.test(reply)) throw new Error('a 101 was relayed');
    }),
    { numRuns: 300 },
  );
  t.equal(runs, 300);
  next = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}';
  t.equal((await ask(tb, { path: '/v2/' })).status, 200, 'berth still serves');
  const bad = tb.logs.filter((l) => l.error === 'upstream_bad_response').length;
  t.ok(bad > 0, `some answers were refused as malformed (${bad})`);
  await waitForLog(tb, (l) => l.msg === 'request' && l.status === 200);
});
