import http from 'node:http';
import net from 'node:net';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { startTestBerth, type TestBerth } from '../helpers/berth.js';
import { ask, converse } from '../helpers/client.js';

// Differential test of berth's reading of the upstream's answers (proxy/upstream/): generated
// answers, framed well and badly, go to berth and to Node's own HTTP client (llhttp, strict),
// from a raw upstream that writes them in one or two pieces. Wherever berth relays an
// answer, Node's client read the same status and the same body from the same bytes: berth
// is never more lenient than a strict parser on where an answer ends. (It may be stricter:
// it refuses with 502 what could be read two ways.) A second part appends a forged second
// answer to the first, and checks that no later request ever gets it.

const RUNS = Number(process.env.TEST_FRAMING_RUNS ?? 200);

type Outcome = { readonly kind: 'answer'; readonly status: number; readonly body: string } | { readonly kind: 'refused' } | { readonly kind: 'cut'; readonly why: string };

interface Planned {
  readonly bytes: Buffer;
  readonly split: number;
  readonly close: boolean;
}

/**
 * A raw upstream: the first request on a connection, while `next()` has an answer planned,
 * gets its bytes (in two writes at `split`), then the connection ends or stays open; any
 * other request gets a plain answer, `good`.
 */
async function rawUpstream(t: Test, next: () => Planned | undefined): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    let head = '';
    let answered = false;
    socket.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      head = '';
      const planned = answered ? undefined : next();
      answered = true;
      if (planned === undefined) {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood');
        return;
      }
      const { bytes, split, close } = planned;
      const at = Math.min(split, bytes.length);
      socket.write(bytes.subarray(0, at));
      setTimeout(() => {
        if (socket.destroyed) return;
        if (close) socket.end(bytes.subarray(at));
        else socket.write(bytes.subarray(at));
      }, 2);
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as net.AddressInfo).port, connections: () => connections };
}

/** What Node's own client reads from the upstream directly. */
function direct(port: number): Promise<Outcome> {
  return new Promise((resolve) => {
    let response: http.IncomingMessage | undefined;
    const req = http.get({ host: '127.0.0.1', port, path: '/v2/a/manifests/1', agent: false, timeout: 3000 }, (res) => {
      response = res;
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ kind: 'answer', status: res.statusCode!, body }));
      res.on('error', (err) => resolve({ kind: 'cut', why: err.message }));
      res.on('aborted', () => resolve({ kind: 'cut', why: 'aborted' }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      // Bytes after a complete answer: the answer stands (its 'end' follows); they are the connection's fault.
      if (response?.complete) return;
      resolve(err.code?.startsWith('HPE_') ? { kind: 'refused' } : { kind: 'cut', why: err.code ?? err.message });
    });
  });
}

/** What a client of berth gets. */
async function throughBerth(tb: TestBerth): Promise<Outcome> {
  try {
    const answer = await ask(tb, { path: '/v2/a/manifests/1' });
    const body = answer.body.toString('latin1');
    if (answer.status === 502 && body.includes('berth: the registry')) return { kind: 'refused' };
    return { kind: 'answer', status: answer.status, body };
  } catch (err) {
    return { kind: 'cut', why: (err as Error).message };
  }
}

const latin1 = (max: number): fc.Arbitrary<string> => fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: max });
const text = (max: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom('a', 'b', '0', '9', ' ', '-', ':', '\r', '\n', 'x', 'H', 'T', 'P'), maxLength: max });

/** Header lines around framing, spelled well and badly; `{len}` is the body's length. */
const framingLine = fc.constantFrom(
  'Content-Length: {len}',
  'content-length: {len}',
  'Content-Length: {len+3}',
  'Content-Length: {len-1}',
  'Content-Length: 0',
  'Content-Length:  {len} ',
  'Content-Length: +{len}',
  'Content-Length: 0{len}',
  'Content-Length: {len}, {len}',
  'Content-Length : {len}',
  'Content-Length: -1',
  'Content-Length: 1e2',
  'Transfer-Encoding: chunked',
  'transfer-encoding: Chunked',
  'Transfer-Encoding:  chunked ',
  'Transfer-Encoding: gzip, chunked',
  'Transfer-Encoding: chunked, gzip',
  'Transfer-Encoding: identity',
  'Transfer-Encoding: chunked\x0b',
  'Transfer-Encoding: xchunked',
  'Transfer-Encoding\t: chunked',
  'Connection: close',
  'Connection: keep-alive',
  ' folded: line',
  'X-Ok: yes',
  'no colon here',
  'X-Bare: lf\nContent-Length: 1',
  'X-Nul: a\x00b',
);

/** Anything goes: lines and encodings drawn independently. */
const wild = fc.record({
  version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/1.2', 'HTTP/2', 'HTTP/1.1 '),
  status: fc.constantFrom('200', '200', '201', '202', '204', '304', '404', '500', '103', '100', '102', '199', '999', '2000', '20'),
  reason: fc.oneof(fc.constant(' OK'), fc.constant(''), fc.constant(' '), latin1(8).map((s) => ` ${s.replace(/[\r\n]/g, '')}`)),
  lines: fc.array(framingLine, { maxLength: 4 }),
  body: fc.oneof(fc.constant(''), text(24), latin1(24)),
  encoding: fc.constantFrom('raw', 'raw', 'chunked', 'chunked', 'bad-chunked'),
  extension: fc.boolean(),
  trailer: fc.boolean(),
  lineEnd: fc.constantFrom('\r\n', '\r\n', '\r\n', '\r\n', '\n'),
  split: fc.nat({ max: 80 }),
});

/** What registries send: framed as encoded (or read to the close), a few ordinary lines. */
const ordinary = fc
  .record({
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0'),
    status: fc.constantFrom('200', '201', '202', '204', '304', '307', '404', '416', '500', '103'),
    framing: fc.constantFrom('length', 'length', 'chunked', 'close'),
    extra: fc.array(fc.constantFrom('X-Ok: yes', 'Connection: close', 'Connection: keep-alive', 'Docker-Distribution-Api-Version: registry/2.0', 'Location: /v2/a/blobs/uploads/1?_state=x'), { maxLength: 2 }),
    body: fc.oneof(fc.constant(''), text(24), latin1(24)),
    extension: fc.boolean(),
    trailer: fc.boolean(),
    split: fc.nat({ max: 80 }),
  })
  .map(({ version, status, framing, extra, ...rest }) => ({
    ...rest,
    version,
    status,
    reason: ' OK',
    lines: [...(framing === 'length' ? ['Content-Length: {len}'] : framing === 'chunked' ? ['Transfer-Encoding: chunked'] : []), ...extra],
    encoding: framing === 'chunked' ? 'chunked' : 'raw',
    lineEnd: '\r\n',
  }));

const answer = fc.oneof(wild, ordinary);

type Answer = typeof answer extends fc.Arbitrary<infer A> ? A : never;

/** The answer's bytes. */
function bytesOf(a: Answer): string {
  const chunked = (data: string): string => {
    if (data === '') return `0${a.extension ? ';x=y' : ''}\r\n${a.trailer ? 'X-T: 1\r\n' : ''}\r\n`;
    const size = a.encoding === 'bad-chunked' ? (data.length + 2).toString(16) : data.length.toString(16);
    return `${size}${a.extension ? ';x=y' : ''}\r\n${data}\r\n` + chunked('');
  };
  const body = a.encoding === 'raw' ? a.body : chunked(a.body);
  const len = Buffer.byteLength(body, 'latin1');
  const lines = a.lines.map((l) => l.replace('{len+3}', String(len + 3)).replace('{len-1}', String(len - 1)).replaceAll('{len}', String(len)));
  return `${a.version} ${a.status}${a.reason}${a.lineEnd}${lines.map((l) => l + a.lineEnd).join('')}${a.lineEnd}${body}`;
}

t.test('berth relays an answer only as a strict parser reads it (status and body)', async (t) => {
  let current: Planned | undefined;
  const up = await rawUpstream(t, () => current);
  const tb = await startTestBerth(t, { upstream: `http://127.0.0.1:${up.port}`, 'timeouts.upstreamResponse': 3000 });
  const tally = { same: 0, refusedByBerthOnly: 0, refusedByBoth: 0, cut: 0 };
  await fc.assert(
    fc.asyncProperty(answer, async (a) => {
      current = { bytes: Buffer.from(bytesOf(a), 'latin1'), split: a.split, close: true };
      const node = await direct(up.port);
      current = { bytes: Buffer.from(bytesOf(a), 'latin1'), split: a.split, close: true };
      const berth = await throughBerth(tb);
      if (berth.kind === 'answer') {
        // berth relayed it: Node's client read the very same.
        if (node.kind !== 'answer' || node.status !== berth.status || node.body !== berth.body) {
          throw new Error(`berth relayed ${JSON.stringify(berth)} where Node read ${JSON.stringify(node)} from ${JSON.stringify(bytesOf(a))}`);
        }
        tally.same++;
      } else if (berth.kind === 'refused') {
        if (node.kind === 'answer') tally.refusedByBerthOnly++;
        else tally.refusedByBoth++;
      } else tally.cut++;
    }),
    { numRuns: RUNS },
  );
  t.ok(tally.same > RUNS / 10, `answers relayed as Node read them: ${JSON.stringify(tally)}`);
  t.ok(tally.refusedByBoth > 0, 'answers refused by both');
  current = undefined;
  t.equal((await ask(tb, { path: '/v2/' })).status, 200, 'berth still serves');
});

t.test('a forged answer after the real one never reaches a later request', async (t) => {
  const FORGED = 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Forged: 1\r\n\r\nFORGED';
  let current: Planned | undefined;
  const up = await rawUpstream(t, () => {
    const planned = current;
    current = undefined;
    return planned;
  });
  const tb = await startTestBerth(t, { upstream: `http://127.0.0.1:${up.port}`, 'timeouts.upstreamResponse': 1000 });
  let seconds = 0;
  await fc.assert(
    fc.asyncProperty(answer, async (a) => {
      // Written with the answer (split anywhere), on a connection the upstream keeps open.
      current = { bytes: Buffer.from(bytesOf(a) + FORGED, 'latin1'), split: a.split, close: false };
      // The first reply may hold FORGED as part of an answer read to its connection's close.
      await converse(tb, `GET /v2/a/manifests/1 HTTP/1.1\r\nHost: localhost:${tb.port}\r\nConnection: close\r\n\r\n`, { first: 3000, after: 300 });
      current = undefined;
      const second = await ask(tb, { path: '/v2/a/manifests/2' });
      seconds++;
      if (second.body.toString('latin1').includes('FORGED') || second.headers['x-forged'] !== undefined) throw new Error(`a later request got the forged answer after ${JSON.stringify(bytesOf(a))}`);
    }),
    { numRuns: Math.max(20, Math.floor(RUNS / 4)) },
  );
  t.ok(seconds > 0);
  t.ok(up.connections() > 0);
});
