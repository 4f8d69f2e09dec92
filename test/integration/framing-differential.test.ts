import fc from 'fast-check';
import t from 'tap';
import { startTestBerth } from '../helpers/berth.js';
import { converse } from '../helpers/client.js';
import { startRecorder, type Recorded } from '../helpers/recorder.js';

// Differential framing test: generated request streams (pipelined requests with tricky
// framing headers, header counts around berth's limit, bodies that hold a complete
// request) go through berth to a recording upstream. Whatever berth answers, the
// upstream never sees a request berth did not log, and every body it receives is exactly
// the body berth parsed (its access line's bytesIn), framed explicitly.

const RUNS = Number(process.env.TEST_FRAMING_RUNS ?? 200);

type HeaderLine = readonly [name: string, value: string];

/** `{len}` in a value stands for the body's length as sent, `{len+5}` / `{len-1}` for a wrong one. */
const FRAMING: fc.Arbitrary<HeaderLine> = fc.constantFrom<HeaderLine>(
  ['Content-Length', '{len}'],
  ['content-length', '{len}'],
  ['Content-Length', '{len+5}'],
  ['Content-Length', '{len-1}'],
  ['Content-Length', '0'],
  ['Content-Length', ' {len} '],
  ['Content-Length', '+{len}'],
  ['Content-Length', '{len}, {len}'],
  ['Transfer-Encoding', 'chunked'],
  ['transfer-encoding', 'Chunked'],
  ['Transfer-Encoding', ' chunked'],
  ['Transfer-Encoding', 'identity'],
  ['Transfer-Encoding', 'gzip, chunked'],
  ['Transfer-Encoding', 'chunked, gzip'],
  ['Transfer-Encoding', 'chunked\x0b'],
  ['Transfer_Encoding', 'chunked'],
  ['Content_Length', '{len}'],
);
const OTHER: fc.Arbitrary<HeaderLine> = fc.constantFrom<HeaderLine>(
  ['Connection', 'close'],
  ['Connection', 'keep-alive'],
  ['Connection', 'content-length'],
  ['Connection', 'transfer-encoding'],
  ['Connection', 'Upgrade'],
  ['Upgrade', 'h2c'],
  ['Expect', '100-continue'],
  ['X-Forwarded-Proto', 'http'],
  ['Trailer', 'X-T'],
  ['TE', 'trailers'],
  ['X-Folded', 'a\r\n b'],
  ['Accept', 'application/vnd.oci.image.manifest.v1+json'],
);

interface GenRequest {
  readonly method: string;
  readonly version: string;
  readonly host: 'valid' | 'missing' | 'twice' | 'bad';
  readonly fillers: number;
  /** Framing and other headers, before or after the fillers. */
  readonly before: readonly HeaderLine[];
  readonly after: readonly HeaderLine[];
  readonly body: { readonly encoding: 'raw' | 'chunked' | 'bad-chunked'; readonly smuggle: boolean; readonly data: string; readonly extension: boolean; readonly trailer: boolean };
}

/** Anything goes: framing headers and body encodings drawn independently. */
const wild: fc.Arbitrary<GenRequest> = fc.record({
  method: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'),
  version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0'),
  host: fc.constantFrom<GenRequest['host']>('valid', 'valid', 'valid', 'missing', 'twice', 'bad'),
  fillers: fc.constantFrom(0, 0, 0, 2, 95, 96, 97, 98, 99, 100, 1000),
  before: fc.array(fc.oneof(FRAMING, OTHER), { maxLength: 3 }),
  after: fc.array(fc.oneof(FRAMING, OTHER), { maxLength: 2 }),
  body: fc.record({
    encoding: fc.constantFrom<GenRequest['body']['encoding']>('raw', 'raw', 'chunked', 'chunked', 'bad-chunked'),
    smuggle: fc.boolean(),
    data: fc.string({ maxLength: 40 }),
    extension: fc.boolean(),
    trailer: fc.boolean(),
  }),
});

/** What clients send: a body framed as it is encoded (or none), a few ordinary headers. */
const ordinary: fc.Arbitrary<GenRequest> = fc
  .record({
    method: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'),
    framing: fc.constantFrom('none', 'length', 'chunked'),
    fillers: fc.constantFrom(0, 0, 2, 97),
    late: fc.boolean(),
    other: fc.array(OTHER.filter(([n]) => n !== 'X-Folded' && n !== 'Connection'), { maxLength: 2 }),
    body: fc.record({ smuggle: fc.boolean(), data: fc.string({ maxLength: 40 }), extension: fc.boolean(), trailer: fc.boolean() }),
  })
  .map(({ method, framing, fillers, late, other, body }): GenRequest => {
    const framingLine: HeaderLine[] = framing === 'length' ? [['Content-Length', '{len}']] : framing === 'chunked' ? [['Transfer-Encoding', 'chunked']] : [];
    const lines = [...other, ...framingLine];
    return {
      method,
      version: 'HTTP/1.1',
      host: 'valid',
      fillers,
      before: late ? other : lines,
      after: late ? framingLine : [],
      body: framing === 'none' ? { encoding: 'raw', smuggle: false, data: '', extension: false, trailer: false } : { encoding: framing === 'chunked' ? 'chunked' : 'raw', ...body },
    };
  });

const request = fc.oneof({ arbitrary: ordinary, weight: 3 }, { arbitrary: wild, weight: 2 });

function bodyBytes(r: GenRequest, run: number): string {
  const payload = (r.body.smuggle ? `GET /v2/smuggled-${run} HTTP/1.1\r\nHost: evil.example\r\n\r\n` : '') + r.body.data.replace(/[^\x20-\x7e]/g, '.');
  if (r.body.encoding === 'raw') return payload;
  const size = r.body.encoding === 'bad-chunked' ? Math.max(0, payload.length - 3) : payload.length;
  const ext = r.body.extension ? ';name=value' : '';
  const trailer = r.body.trailer ? 'X-T: 1\r\n' : '';
  return (payload.length ? `${size.toString(16)}${ext}\r\n${payload}\r\n` : '') + `0\r\n${trailer}\r\n`;
}

function requestBytes(r: GenRequest, run: number, index: number, port: number): string {
  const body = bodyBytes(r, run);
  const value = (v: string): string =>
    v.replaceAll('{len+5}', String(body.length + 5)).replaceAll('{len-1}', String(Math.max(0, body.length - 1))).replaceAll('{len}', String(body.length));
  const lines: string[] = [`${r.method} /v2/r${run}-${index}/x ${r.version}`];
  if (r.host === 'valid' || r.host === 'twice') lines.push(`Host: localhost:${port}`);
  if (r.host === 'twice') lines.push('Host: evil.example');
  if (r.host === 'bad') lines.push('Host: evil.example/x?');
  for (const [name, v] of r.before) lines.push(`${name}: ${value(v)}`);
  for (let i = 0; i < r.fillers; i++) lines.push('a: 1');
  for (const [name, v] of r.after) lines.push(`${name}: ${value(v)}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('generated request streams: the upstream sees only what berth logged, framed as berth parsed it', async (t) => {
  const up = await startRecorder(t);
  const tb = await startTestBerth(t, { upstream: up.url });
  let run = 0;
  let forwarded = 0;
  let withBody = 0;
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 3 }), async (requests) => {
      run++;
      const mine = (path: string): boolean => path.startsWith(`/v2/r${run}-`) || path === `/v2/smuggled-${run}`;
      const stream = requests.map((r, i) => requestBytes(r, run, i, tb.port)).join('') + `GET /v2/r${run}-end/x HTTP/1.1\r\nHost: localhost:${tb.port}\r\nConnection: close\r\n\r\n`;
      const errorsBefore = up.parseErrors.length;
      await converse(tb, stream, { first: 1500, after: 1500 });
      // The upstream's last 'end' and berth's last access line: a request cut by the client's
      // close is logged after the connection has closed, which a loaded machine delays.
      await sleep(30);
      for (let waited = 0; waited < 2000 && up.requests.filter((r) => mine(r.url)).length > tb.logs.filter((l) => l.msg === 'request' && mine(String(l.path))).length; waited += 20) await sleep(20);
      const upstream = up.requests.filter((r) => mine(r.url));
      const logged = tb.logs.filter((l) => l.msg === 'request' && mine(String(l.path)));
      refused += logged.filter((l) => Number(l.status) >= 400).length;

      // 1. Every request the upstream parsed is one berth logged (same method and path).
      const unmatched = [...logged];
      for (const seen of upstream) {
        const at = unmatched.findIndex((l) => l.method === seen.method && l.path === seen.url);
        if (at < 0) throw new Error(`the upstream saw ${seen.method} ${seen.url}, which berth never logged; logged: ${JSON.stringify(logged.map((l) => `${String(l.method)} ${String(l.path)}`))}`);
        // 2. With the body berth parsed, and framing headers that say so.
        const line = unmatched.splice(at, 1)[0]!;
        checkFraming(seen, Number(line.bytesIn));
        forwarded++;
        if (seen.body.length > 0) withBody++;
      }
      if (up.parseErrors.length > errorsBefore) throw new Error(`the upstream could not parse what berth sent: ${up.parseErrors.slice(errorsBefore).join(', ')}`);
    }),
    { numRuns: RUNS },
  );
  t.equal(run, RUNS, `${RUNS} generated streams`);
  t.ok(forwarded > RUNS, `requests forwarded and checked: ${forwarded} (${withBody} with a body)`);
  t.ok(withBody > 10, 'bodies were among them');
  t.ok(refused > 10, `requests refused by berth: ${refused}`);
  t.equal(tb.berth.inFlight.size, 0, 'nothing left in flight');
});

function checkFraming(seen: Recorded, bytesIn: number): void {
  if (seen.body.length !== bytesIn) throw new Error(`${seen.method} ${seen.url}: berth parsed ${bytesIn} body bytes, the upstream received ${seen.body.length}`);
  const length = seen.headers['content-length'];
  const chunked = seen.headers['transfer-encoding'];
  if (length !== undefined && chunked !== undefined) throw new Error(`${seen.url}: both Content-Length and Transfer-Encoding upstream`);
  if (chunked !== undefined && chunked !== 'chunked') throw new Error(`${seen.url}: Transfer-Encoding ${chunked} upstream`);
  if (length !== undefined && Number(length) !== seen.body.length) throw new Error(`${seen.url}: Content-Length ${length} for ${seen.body.length} bytes`);
  if (seen.body.length > 0 && length === undefined && chunked === undefined) throw new Error(`${seen.url}: a body without framing`);
}
