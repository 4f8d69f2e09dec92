import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { startTestBerth } from '../helpers/berth.js';
import { ask } from '../helpers/client.js';

/**
 * What a registry and its clients say about a body (its encoding, length, range, digest,
 * validators, the media types asked for) passes berth byte-exact in both directions, and
 * the body itself is never compressed, decompressed or re-framed: generated requests and
 * answers through berth against an upstream that records what it got and answers what the
 * test scripts.
 */

const RUNS = Number(process.env.TEST_REPRESENTATION_RUNS ?? 60);

type Pair = readonly [name: string, value: string];

interface Scripted {
  status: number;
  headers: Pair[];
  body: Buffer;
  chunked: boolean;
}

interface Received {
  readonly method: string;
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
}

async function startScriptedUpstream(t: Test): Promise<{ url: string; next: Scripted; received: Received[] }> {
  const up = { url: '', next: { status: 200, headers: [], body: Buffer.alloc(0), chunked: false } as Scripted, received: [] as Received[] };
  const server = http.createServer({ requestTimeout: 0 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      up.received.push({ method: req.method!, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) });
      const { status, headers, body, chunked } = up.next;
      const flat: string[] = [];
      for (const [name, value] of headers) flat.push(name, value);
      const noBody = req.method === 'HEAD' || status === 304 || status === 204;
      if (!chunked) flat.push('Content-Length', String(body.length));
      res.writeHead(status, flat);
      if (noBody) res.end();
      else res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  up.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return up;
}

/** The values of a header, in order, duplicates kept, from raw name/value pairs. */
function valuesOf(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  return out;
}

const token = fc.stringMatching(/^[a-z0-9][a-z0-9.+-]{0,20}$/);
const digest = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => `sha256:${Buffer.from(b).toString('hex')}`);
const etag = fc.tuple(fc.boolean(), digest).map(([weak, d]) => `${weak ? 'W/' : ''}"${d}"`);
const mediaType = fc.constantFrom(
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
  '*/*',
);
const accept = fc.array(fc.tuple(mediaType, fc.option(fc.integer({ min: 0, max: 10 }), { nil: undefined })), { minLength: 1, maxLength: 4 }).map((list) => list.map(([m, q]) => (q === undefined ? m : `${m}; q=${q / 10}`)).join(', '));
const range = fc.oneof(
  fc.tuple(fc.nat(1 << 30), fc.nat(1 << 20)).map(([a, n]) => `bytes=${a}-${a + n}`),
  fc.nat(1 << 30).map((a) => `bytes=${a}-`),
  fc.nat(1 << 20).map((n) => `bytes=-${n}`),
  fc.tuple(fc.nat(100), fc.nat(100)).map(([a, b]) => `bytes=0-${a}, ${a + 10}-${a + 10 + b}`),
);
const encoding = fc.constantFrom('gzip', 'br', 'zstd', 'deflate', 'identity', 'gzip, identity');

/** Request headers a registry client sends about representations: lists may come on several lines… */
const requestListHeader: fc.Arbitrary<Pair> = fc.oneof(
  accept.map((v): Pair => ['Accept', v]),
  encoding.map((v): Pair => ['Accept-Encoding', v]),
  etag.map((v): Pair => ['If-None-Match', v]),
);
/** …the others once (a repeat of these is malformed; Node, like Go's Header.Get, reads the first). */
const requestSingles = fc.record(
  {
    Range: range,
    'If-Range': etag,
    'Docker-Content-Digest': digest,
    'Content-Type': token.map((v) => `application/${v}`),
  },
  { requiredKeys: [] },
);
/** …and with a body. */
const bodyHeaders = fc.record(
  {
    'Content-Encoding': encoding,
    'Content-Range': fc.tuple(fc.nat(1 << 30), fc.nat(1 << 20)).map(([a, n]) => `${a}-${a + n}`),
  },
  { requiredKeys: [] },
);

/** Answer headers a registry (or its storage) sends about representations. */
const responseHeader: fc.Arbitrary<Pair> = fc.oneof(
  encoding.map((v): Pair => ['Content-Encoding', v]),
  etag.map((v): Pair => ['ETag', v]),
  digest.map((v): Pair => ['Docker-Content-Digest', v]),
  fc.tuple(fc.nat(1 << 30), fc.nat(1 << 20), fc.nat(1 << 20)).map(([a, n, extra]): Pair => ['Content-Range', `bytes ${a}-${a + n}/${a + n + 1 + extra}`]),
  fc.nat(1 << 30).map((size): Pair => ['Content-Range', `bytes */${size}`]),
  fc.constantFrom<Pair>(['Accept-Ranges', 'bytes'], ['Vary', 'Accept-Encoding'], ['Vary', 'Accept'], ['Docker-Distribution-Api-Version', 'registry/2.0']),
  mediaType.map((v): Pair => ['Content-Type', v]),
);

const bytes = fc.uint8Array({ minLength: 0, maxLength: 4096 }).map((a) => Buffer.from(a));
const compared = (pairs: readonly Pair[]): string[] => [...new Set(pairs.map(([n]) => n.toLowerCase()))];

t.test('requests: representation headers and bodies reach the upstream byte-exact', async (t) => {
  const up = await startScriptedUpstream(t);
  const tb = await startTestBerth(t, { upstream: up.url });
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('GET', 'HEAD', 'PUT', 'PATCH'),
      fc.array(requestListHeader, { minLength: 1, maxLength: 6 }),
      requestSingles,
      bodyHeaders,
      bytes,
      async (method, lists, singles, forBody, body) => {
        const withBody = method === 'PUT' || method === 'PATCH';
        const sent: Pair[] = [...lists, ...Object.entries(singles), ...(withBody ? Object.entries(forBody) : [])];
        const flat: string[] = [];
        const asked: Record<string, string[]> = {};
        for (const [name, value] of sent) {
          flat.push(name, value);
          (asked[name] ??= []).push(value); // several lines of one name, in order
        }
        up.next = { status: 200, headers: [], body: Buffer.from('{}'), chunked: false };
        const before = up.received.length;
        const answer = await ask(tb, { method, path: '/v2/r/blobs/uploads/u', headers: asked, body: withBody ? body : undefined });
        if (answer.status !== 200 || up.received.length !== before + 1) return false;
        const got = up.received[before]!;
        for (const name of compared(sent)) {
          const want = valuesOf(flat, name);
          if (JSON.stringify(valuesOf(got.rawHeaders, name)) !== JSON.stringify(want)) throw new Error(`${name}: sent ${JSON.stringify(want)}, upstream got ${JSON.stringify(valuesOf(got.rawHeaders, name))}`);
        }
        if (!sent.some(([n]) => n.toLowerCase() === 'accept-encoding') && valuesOf(got.rawHeaders, 'accept-encoding').length > 0) throw new Error('berth added Accept-Encoding');
        if (!got.body.equals(withBody ? body : Buffer.alloc(0))) throw new Error('body changed');
        if (withBody && JSON.stringify(valuesOf(got.rawHeaders, 'content-length')) !== JSON.stringify([String(body.length)])) throw new Error(`Content-Length ${JSON.stringify(valuesOf(got.rawHeaders, 'content-length'))} for ${body.length} bytes`);
        return true;
      },
    ),
    { numRuns: RUNS },
  );
});

t.test('answers: representation headers and bodies reach the client byte-exact, never re-encoded', async (t) => {
  const up = await startScriptedUpstream(t);
  const tb = await startTestBerth(t, { upstream: up.url });
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('GET', 'HEAD'),
      fc.constantFrom(200, 206, 304, 404, 416),
      fc.array(responseHeader, { minLength: 1, maxLength: 6 }),
      bytes,
      fc.boolean(),
      fc.constantFrom('gzip, br', 'gzip', 'identity', undefined),
      async (method, status, headers, body, chunked, acceptEncoding) => {
        up.next = { status, headers, body, chunked };
        const answer = await ask(tb, { method, path: '/v2/r/blobs/sha256:0', headers: acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding } });
        if (answer.status !== status) throw new Error(`status ${answer.status} for ${status}`);
        for (const name of compared(headers)) {
          const want = valuesOf(headers.flat(), name);
          if (JSON.stringify(valuesOf(answer.rawHeaders, name)) !== JSON.stringify(want)) throw new Error(`${name}: upstream sent ${JSON.stringify(want)}, client got ${JSON.stringify(valuesOf(answer.rawHeaders, name))}`);
        }
        if (!headers.some(([n]) => n.toLowerCase() === 'content-encoding') && valuesOf(answer.rawHeaders, 'content-encoding').length > 0) throw new Error('berth added Content-Encoding');
        const noBody = method === 'HEAD' || status === 304;
        if (!answer.body.equals(noBody ? Buffer.alloc(0) : body)) throw new Error(`body changed: ${answer.body.length} bytes for ${body.length}`);
        if (!chunked && status !== 304) {
          const length = valuesOf(answer.rawHeaders, 'content-length');
          if (JSON.stringify(length) !== JSON.stringify([String(body.length)])) throw new Error(`Content-Length ${JSON.stringify(length)} for ${body.length} bytes`);
        }
        return true;
      },
    ),
    { numRuns: RUNS },
  );
});

t.test('answer header lines reach the client in the upstream\'s spelling, order and repetition, answer after answer', async (t) => {
  // berth takes each line's text from undici's own reading where it can, and a name's
  // spelling from the last answer that spelled it the same way (proxy/transport.ts): a
  // name spelled another way, or a value of a repeated name, must still come through as sent.
  // Spellings are found by length and first and last byte: X-Trace and X-Twice share a slot.
  const up = await startScriptedUpstream(t);
  const tb = await startTestBerth(t, { upstream: up.url });
  const names = ['Docker-Content-Digest', 'ETag', 'Vary', 'X-Trace', 'X-Twice', 'Set-Cookie', 'Link'];
  const spelling = (name: string) => fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }).map((upper) => [...name].map((c, i) => (upper[i] ? c.toUpperCase() : c.toLowerCase())).join(''));
  const line = fc.tuple(fc.constantFrom(...names).chain(spelling), fc.stringMatching(/^[!-~]([ !-~]{0,30}[!-~])?$/));
  const own = new Set(['content-length', 'date', 'connection', 'keep-alive', 'transfer-encoding']);
  await fc.assert(
    fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 8 }), async (lines) => {
      up.next = { status: 200, headers: lines, body: Buffer.from('x'), chunked: false };
      const answer = await ask(tb, { method: 'GET', path: '/v2/r/manifests/latest' });
      const got: string[] = [];
      for (let i = 0; i + 1 < answer.rawHeaders.length; i += 2) if (!own.has(answer.rawHeaders[i]!.toLowerCase())) got.push(answer.rawHeaders[i]!, answer.rawHeaders[i + 1]!);
      if (JSON.stringify(got) !== JSON.stringify(lines.flat())) throw new Error(`upstream sent ${JSON.stringify(lines.flat())}, client got ${JSON.stringify(got)}`);
      return true;
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

t.test('repeated header lines reach the upstream as sent; of a repeated single-valued one, the first', async (t) => {
  const up = await startScriptedUpstream(t);
  const tb = await startTestBerth(t, { upstream: up.url });
  await ask(tb, {
    method: 'GET',
    path: '/v2/r/manifests/latest',
    headers: {
      accept: ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.v2+json; q=0.9'],
      'content-type': ['application/json', 'text/plain'],
      'user-agent': ['containerd/2.0', 'curl/8'],
    },
  });
  const raw = up.received.at(-1)!.rawHeaders;
  t.same(valuesOf(raw, 'accept'), ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.v2+json; q=0.9'], 'two Accept lines, not one joined');
  t.same(valuesOf(raw, 'content-type'), ['application/json'], 'the first Content-Type, the one berth and a Go registry read');
  t.same(valuesOf(raw, 'user-agent'), ['containerd/2.0']);
  t.same(valuesOf(raw, 'x-forwarded-proto'), ['https'], 'berth\'s own headers once');
});

t.test('a gzip body is relayed as the bytes the upstream sent, whatever the client accepts', async (t) => {
  const up = await startScriptedUpstream(t);
  const tb = await startTestBerth(t, { upstream: up.url });
  const { gzipSync } = await import('node:zlib');
  const json = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: Array.from({ length: 50 }, (_, i) => ({ digest: `sha256:${crypto.createHash('sha256').update(String(i)).digest('hex')}` })) }));
  const gz = gzipSync(json);
  up.next = { status: 200, headers: [['Content-Encoding', 'gzip'], ['Content-Type', 'application/vnd.oci.image.manifest.v1+json']], body: gz, chunked: false };
  for (const acceptEncoding of ['gzip', 'identity', 'br']) {
    const answer = await ask(tb, { method: 'GET', path: '/v2/r/manifests/latest', headers: { 'accept-encoding': acceptEncoding } });
    t.ok(answer.body.equals(gz), `Accept-Encoding: ${acceptEncoding}: the gzip bytes as sent`);
    t.equal(answer.headers['content-encoding'], 'gzip');
    t.equal(answer.headers['content-length'], String(gz.length));
  }
  // A body the client sends gzip-encoded reaches the registry as sent.
  const sent = gzipSync(crypto.randomBytes(10_000));
  up.next = { status: 202, headers: [], body: Buffer.alloc(0), chunked: false };
  const before = up.received.length;
  await ask(tb, { method: 'PATCH', path: '/v2/r/blobs/uploads/u', headers: { 'content-encoding': 'gzip', 'content-type': 'application/octet-stream' }, body: sent });
  t.ok(up.received[before]!.body.equals(sent), 'the request body as sent');
  t.same(valuesOf(up.received[before]!.rawHeaders, 'content-encoding'), ['gzip']);
});
