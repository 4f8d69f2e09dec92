import type http from 'node:http';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import pino from 'pino';
import t from 'tap';
import { accessFields, accessLog, jsonChars, ms, redactPath, registryTarget, type Exchanged } from '../../../src/observe/accessLog.js';
import { createLogger } from '../../../src/observe/logger.js';
import { ProxyError } from '../../../src/proxy/errors.js';

const cases: [string, string][] = [
  ['/v2/a/blobs/uploads/u?_state=abc%2B%3D&digest=sha256%3Ax', '/v2/a/blobs/uploads/u?_state=REDACTED&digest=sha256%3Ax'],
  ['/v2/a/blobs/uploads/u?digest=sha256%3Ax&_state=abc', '/v2/a/blobs/uploads/u?digest=sha256%3Ax&_state=REDACTED'],
  ['/v2/a/blobs/uploads/u?x_state=keep', '/v2/a/blobs/uploads/u?x_state=keep'],
  ['/v2/a/manifests/latest', '/v2/a/manifests/latest'],
  ['/v2/?_state=a&_state=b', '/v2/?_state=REDACTED&_state=REDACTED'],
  ['/v2/a/blobs/uploads/u?%5Fstate=secret&digest=x', '/v2/a/blobs/uploads/u?%5Fstate=REDACTED&digest=x'],
  ['/v2/a/blobs/uploads/u?%5fst%61te=secret', '/v2/a/blobs/uploads/u?%5fst%61te=REDACTED'],
  ['/v2/a/blobs/uploads/u?_state=a%ZZ&%E0=b', '/v2/a/blobs/uploads/u?_state=REDACTED&%E0=b'],
];
for (const [input, expected] of cases) t.equal(redactPath(input), expected, input);

t.test("a value is quoted as JSON.stringify quotes it, whatever it holds", async (t) => {
  for (const value of ['', 'GET', '"', '\\', '\u0000', '\u001f', '\u007f', 'é', '\ud83d\ude00', '\ud83d', 'a\ude00b', '\u2028'])
    t.equal(`"${jsonChars(value)}"`, JSON.stringify(value), [...value].map((c) => c.charCodeAt(0).toString(16)).join(' '));
  fc.assert(fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) })), (value) => `"${jsonChars(value)}"` === JSON.stringify(value)), { numRuns: 2000 });
});

t.test('a duration is written as String() writes the microsecond-rounded double', async (t) => {
  for (const value of [0, -0, 0.0004, 0.0005, -0.0004, -0.0016, 0.001, 0.01, 0.1, 0.12, 0.102, 1.5, 12.3456, 999.9995, 1e9 + 0.25, 1e12 - 0.001, 1e12, 1e13, -1e13, NaN, Infinity, -Infinity])
    t.equal(ms(value), String(Math.round(value * 1000) / 1000), String(value));
  fc.assert(fc.property(fc.oneof(fc.double({ noNaN: false }), fc.double({ min: -1e6, max: 1e7 }), fc.integer({ min: -1e9, max: 1e9 }).map((n) => n / 1000)), (value) => ms(value) === String(Math.round(value * 1000) / 1000)), { numRuns: 5000 });
});

t.test('a path names a repository only with an operation after it', async (t) => {
  t.equal(registryTarget('/v2/'), undefined);
  t.equal(registryTarget('/v2/_catalog'), undefined);
  t.same(registryTarget('/v2/a/b/manifests/latest'), { repository: 'a/b', reference: 'latest' });
  t.same(registryTarget('/v2/r/blobs/uploads/'), { repository: 'r' });
  t.same(registryTarget('/v2/r/tags/list?n=1'), { repository: 'r' });
});

/** A request and response as the access line reads them, without a socket. */
function exchanged(fields: { method: string; url: string; headers: Record<string, string>; status: number; finished: boolean; client: string; requestId: string; detail: string }) {
  const req = { method: fields.method, url: fields.url, headers: fields.headers } as unknown as http.IncomingMessage;
  const res = { headersSent: fields.status !== 499, statusCode: fields.status, writableFinished: fields.finished } as unknown as http.ServerResponse;
  const rec: Exchanged = {
    started: performance.now() - 12.3456,
    bytesIn: 7,
    bytesOut: 1234,
    client: fields.client,
    requestId: fields.requestId,
    upstreamMs: 3.25,
    uploadUuid: fields.url.includes('uploads') ? undefined : 'u-1',
    error: fields.finished ? undefined : new ProxyError('upstream_reset', { detail: fields.detail }),
  };
  return { req, res, rec };
}

/** Captures what a JSON logger writes. */
function capture(): { logger: ReturnType<typeof createLogger>; lines: () => string[] } {
  let out = '';
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => void ((out += chunk.toString()), done()) });
  return { logger: createLogger({ level: 'info', format: 'json' }, sink), lines: () => out.split('\n').filter(Boolean) };
}

t.test("the access line is the line pino writes for the same fields, whatever the client sent", async (t) => {
  const text = fc.string({ unit: 'binary', maxLength: 40 });
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        method: fc.constantFrom('GET', 'PUT', 'PATCH', 'HEAD'),
        url: fc.oneof(fc.constantFrom('/v2/', '/v2/a/b/manifests/latest', '/v2/r/blobs/uploads/abc?_state=x&digest=sha256%3A0'), text.map((s) => `/v2/${s}`)),
        headers: fc.record({ 'user-agent': text, authorization: text.map((s) => `Basic ${Buffer.from(`${s}:pw`).toString('base64')}`) }, { requiredKeys: [] }),
        status: fc.constantFrom(200, 201, 404, 499),
        finished: fc.boolean(),
        client: fc.oneof(fc.ipV4(), fc.ipV6()),
        requestId: text,
        detail: text,
      }),
      async (fields) => {
        const { req, res, rec } = exchanged(fields);
        const ours = capture();
        accessLog(ours.logger)(req, res, rec);
        const pinos = capture();
        // pino given the same fields as an object: the framing and order it writes.
        pinos.logger.info(JSON.parse(`{${accessFields(req, res, rec).slice(1)}}`) as object);
        await new Promise((resolve) => setImmediate(resolve));
        const [line] = ours.lines();
        const [reference] = pinos.lines();
        const parsed = JSON.parse(line!) as Record<string, unknown>;
        const expected = JSON.parse(reference!) as Record<string, unknown>;
        // Written a moment apart: the time and the duration may differ a little.
        t.ok(Math.abs((parsed.time as number) - (expected.time as number)) < 1000);
        t.ok(Math.abs((parsed.durationMs as number) - (expected.durationMs as number)) < 1000);
        expected.time = parsed.time;
        expected.durationMs = parsed.durationMs;
        if (JSON.stringify(parsed) !== JSON.stringify(expected)) throw new Error(`differs from pino's line:\n${line}\n${reference}`);
        t.equal(parsed.client, fields.client);
        t.equal(parsed.requestId, fields.requestId, 'a value is written as given, escaped');
      },
    ),
    { numRuns: 200 },
  );
});

t.test('the access line follows the logger level, changed after the writer was made', async (t) => {
  const { logger, lines } = capture();
  const write = accessLog(logger);
  const { req, res, rec } = exchanged({ method: 'GET', url: '/v2/', headers: {}, status: 200, finished: true, client: '::1', requestId: 'r', detail: '' });
  write(req, res, rec);
  logger.level = 'warn';
  write(req, res, rec);
  logger.level = 'info';
  write(req, res, rec);
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(lines().length, 2, 'none at warn');
  const line = JSON.parse(lines()[0]!) as Record<string, unknown>;
  t.same(Object.keys(line).slice(0, 5), ['level', 'time', 'pid', 'msg', 'method'], "pino's framing first");
  t.equal(line.level, 30);
  t.equal(line.pid, process.pid);
});

t.test('a stream that wants pino\'s metadata (multistream) gets the access line through pino', async (t) => {
  let out = '';
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => void ((out += chunk.toString()), done()) });
  const logger = createLogger({ level: 'info', format: 'json' }, pino.multistream([{ stream: sink, level: 'info' }]));
  const { req, res, rec } = exchanged({ method: 'PUT', url: '/v2/r/blobs/uploads/u1?_state=secret', headers: {}, status: 201, finished: true, client: '10.0.0.1', requestId: 'r-1', detail: '' });
  accessLog(logger)(req, res, rec);
  await new Promise((resolve) => setImmediate(resolve));
  const line = JSON.parse(out.trim()) as Record<string, unknown>;
  t.match(line, { level: 30, msg: 'request', method: 'PUT', status: 201, client: '10.0.0.1', requestId: 'r-1', repository: 'r', uploadUuid: 'u1' });
  t.equal(line.path, '/v2/r/blobs/uploads/u1?_state=REDACTED');
});

t.test("the access line's time is pino's epoch time, made once per millisecond", async (t) => {
  const { logger, lines } = capture();
  t.equal((logger as unknown as Record<symbol, unknown>)[pino.symbols.timeSym], pino.stdTimeFunctions.epochTime, "berth's logger stamps with pino's epochTime (the access line's own copy of it applies)");
  const write = accessLog(logger);
  const { req, res, rec } = exchanged({ method: 'GET', url: '/v2/', headers: {}, status: 200, finished: true, client: '::1', requestId: 'r', detail: '' });
  const before = Date.now();
  write(req, res, rec);
  await new Promise((resolve) => setTimeout(resolve, 3));
  write(req, res, rec);
  const after = Date.now();
  await new Promise((resolve) => setImmediate(resolve));
  const times = lines().map((line) => (JSON.parse(line) as { time: number }).time);
  t.equal(times.length, 2);
  t.ok(times.every((time) => Number.isInteger(time) && time >= before && time <= after), `${times.join(', ')} within ${before}-${after}`);
  t.ok(times[1]! > times[0]!, 'a later millisecond, a new stamp');
});
