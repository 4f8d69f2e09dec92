import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { startTestBerth, type TestBerth } from '../helpers/berth.js';
import { converse } from '../helpers/client.js';
import { startUpstream } from '../helpers/upstream.js';

// Request smuggling and parser confusion, each sent as raw bytes over TLS to berth, with
// an upstream that counts every request that starts. Each attack is either refused, or
// framed so that the upstream sees exactly the requests the client meant: never one more.

/** Sends raw bytes and resolves with everything berth sent back until it closed (or 2 s of quiet). */
const exchange = (tb: TestBerth, bytes: string): Promise<string> => converse(tb, bytes, { first: 2000, after: 500 });

const statuses = (reply: string): number[] => [...reply.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => Number(m[1]));

interface Case {
  readonly name: string;
  readonly bytes: (host: string) => string;
  /** Statuses berth may answer with, in order. */
  readonly answers: readonly number[][];
  /** Paths the upstream may see a request start for; the smuggled one is never among them. */
  readonly upstreamMay: readonly string[];
}

const SMUGGLED = 'GET /v2/smuggled HTTP/1.1\r\nHost: x\r\n\r\n';

const CASES: Case[] = [
  {
    name: 'Content-Length and Transfer-Encoding together',
    bytes: (h) => `POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 45\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    answers: [[400]],
    upstreamMay: [],
  },
  {
    name: 'two different Content-Length values',
    bytes: (h) => `POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 0\r\nContent-Length: 39\r\n\r\n${SMUGGLED}`,
    answers: [[400]],
    upstreamMay: [],
  },
  {
    name: 'Content-Length as a list',
    bytes: (h) => `POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 0, 39\r\n\r\n${SMUGGLED}`,
    answers: [[400]],
    upstreamMay: [],
  },
  {
    name: 'obsolete line folding',
    bytes: (h) => `GET /v2/ HTTP/1.1\r\nHost: ${h}\r\nX-Folded: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 39\r\n\r\n${SMUGGLED}`,
    answers: [[400]],
    upstreamMay: [],
  },
  {
    name: 'a bare CR inside a header line',
    bytes: (h) => `GET /v2/ HTTP/1.1\r\nHost: ${h}\rContent-Length: 39\r\n\r\n${SMUGGLED}`,
    answers: [[400]],
    upstreamMay: [],
  },
  {
    name: 'bare LF line endings',
    bytes: (h) => `GET /v2/ HTTP/1.1\nHost: ${h}\nContent-Length: 39\n\n${SMUGGLED}`,
    answers: [[400], [200]],
    upstreamMay: ['/v2/'],
  },
  {
    name: 'a chunk size that is not hexadecimal',
    bytes: (h) => `POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n${SMUGGLED}`,
    answers: [[400], []],
    upstreamMay: ['/v2/a/blobs/uploads/'],
  },
  {
    name: 'a chunk size that overflows',
    bytes: (h) => `POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked\r\n\r\n1${'0'.repeat(20)}\r\nhello\r\n0\r\n\r\n${SMUGGLED}`,
    answers: [[400], []],
    upstreamMay: ['/v2/a/blobs/uploads/'],
  },
  {
    name: 'an oversized chunk extension',
    bytes: (h) => `POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=${'x'.repeat(20_000)}\r\nhello\r\n0\r\n\r\n${SMUGGLED}`,
    answers: [[400], [413], []],
    upstreamMay: ['/v2/a/blobs/uploads/'],
  },
  {
    name: 'Transfer-Encoding other than chunked',
    bytes: (h) => `POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: gzip\r\n\r\n${SMUGGLED}`,
    answers: [[400], [501]],
    upstreamMay: [],
  },
  {
    name: 'chunked not last in Transfer-Encoding',
    bytes: (h) => `POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    answers: [[400], [501]],
    upstreamMay: [],
  },
  {
    name: 'Transfer-Encoding with a space before the colon',
    bytes: (h) => `POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: ${h}\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    answers: [[400]],
    upstreamMay: [],
  },
  {
    name: 'a header name with a space',
    bytes: (h) => `GET /v2/ HTTP/1.1\r\nHost: ${h}\r\nX Bad: 1\r\n\r\n`,
    answers: [[400]],
    upstreamMay: [],
  },
  {
    name: 'a request line with a bare LF in the target',
    bytes: (h) => `GET /v2/\nX HTTP/1.1\r\nHost: ${h}\r\n\r\n`,
    answers: [[400]],
    upstreamMay: [],
  },
];

t.test('parser-level attacks', async (t) => {
  const started: string[] = [];
  const up = await startUpstream(t, (_req, res) => res.writeHead(200, { 'content-length': '2' }).end('{}'));
  up.server.prependListener('request', (req: { url?: string }) => started.push(req.url ?? ''));
  const tb = await startTestBerth(t, { upstream: up.url });
  const host = `localhost:${tb.port}`;

  for (const c of CASES) {
    started.length = 0;
    const reply = await exchange(tb, c.bytes(host));
    const got = statuses(reply);
    t.ok(
      c.answers.some((a) => JSON.stringify(a) === JSON.stringify(got)),
      `${c.name}: answered ${JSON.stringify(got)} (allowed: ${JSON.stringify(c.answers)})`,
    );
    await new Promise((r) => setTimeout(r, 100)); // anything forwarded has arrived
    t.notOk(started.includes('/v2/smuggled'), `${c.name}: nothing smuggled reached the upstream`);
    t.ok(
      started.every((p) => c.upstreamMay.includes(p)) && started.length <= c.upstreamMay.length,
      `${c.name}: the upstream saw only what the client meant (${JSON.stringify(started)})`,
    );
  }

  // berth kept serving through all of it.
  t.match(await exchange(tb, `GET /v2/ HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 200 /);

  // Each refusal is in the default log, with the parser's reason and never the request's content.
  const refusals = tb.logs.filter((l) => l.msg === 'request refused by the HTTP parser');
  t.ok(refusals.length >= 8, `refusals logged (${refusals.length})`);
  for (const line of refusals) {
    t.equal(line.level, 30, 'at info');
    t.match(line, { client: '127.0.0.1', code: /^HPE_/, reason: /\w/ });
    t.notMatch(JSON.stringify(line), /smuggled|Host|POST|GET/, 'no content of the request');
  }
});

t.test('a client that resets its connection is not logged as a request the parser refused', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const tb = await startTestBerth(t, { upstream: up.url });
  const before = tb.logs.length;
  for (let i = 0; i < 5; i++) {
    const tcp = net.connect(tb.port, '127.0.0.1');
    const socket = tls.connect({ socket: tcp, servername: 'localhost', ca: tb.pki.ca });
    await once(socket, 'secureConnect');
    // Idle after its handshake, or halfway through a request line.
    if (i % 2) socket.write('GET /v2/ HT');
    await new Promise((resolve) => setTimeout(resolve, 20));
    tcp.resetAndDestroy();
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.same(tb.logs.filter((l) => l.msg === 'request refused by the HTTP parser'), [], 'no refusal logged for a reset');
  const since = tb.logs.slice(before);
  t.same(since.filter((l) => (l.level as number) >= 30), [], 'nothing logged at info or above');
  t.match(await exchange(tb, `GET /v2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 200 /, 'and berth serves on');
});

t.test('oversized headers: 431, in the registry error shape under /v2/', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.end('{}'));
  const tb = await startTestBerth(t, { upstream: up.url });
  const big = 'x'.repeat(20_000);
  const registry = await exchange(tb, `GET /v2/lib/app/manifests/v1 HTTP/1.1\r\nHost: localhost\r\nX-Big: ${big}\r\n\r\n`);
  t.match(registry, /^HTTP\/1\.1 431 /);
  t.match(registry, /\r\ndocker-distribution-api-version: registry\/2\.0\r\n/i);
  const body = registry.slice(registry.indexOf('\r\n\r\n') + 4);
  t.same(JSON.parse(body), { errors: [{ code: 'UNSUPPORTED', message: 'berth: the request header section is too large', detail: null }] });
  const page = await exchange(tb, `GET /harbor/ HTTP/1.1\r\nHost: localhost\r\nX-Big: ${big}\r\n\r\n`);
  t.match(page, /^HTTP\/1\.1 431 /);
  t.notMatch(page, /docker-distribution-api-version/i, 'plain outside /v2/');
  // Beyond the parser's own cap (64 KiB) Node answers before berth sees a request.
  const huge = await exchange(tb, `GET /v2/ HTTP/1.1\r\nHost: localhost\r\nX-Huge: ${'y'.repeat(70_000)}\r\n\r\n`);
  t.match(huge, /^HTTP\/1\.1 431 [\s\S]*connection: close/i, 'a header section over 64 KiB: 431 from the parser, and the connection closed');
  t.equal(up.seen.length, 0);
});
