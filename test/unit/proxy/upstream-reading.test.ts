import fc from 'fast-check';
import t from 'tap';
import { ChunkedBody } from '../../../src/proxy/upstream/chunked.js';
import { MalformedAnswer, RESPONSE_HEAD_LIMIT, parseResponseHead } from '../../../src/proxy/upstream/responseHead.js';

const head = (text: string, isHead = false): ReturnType<typeof parseResponseHead> => parseResponseHead(Buffer.from(text, 'latin1'), isHead);

t.test('a head is read with its lines in order and case, values without surrounding blanks', async (t) => {
  const parsed = head('HTTP/1.1 201 Created\r\nLocation: /v2/a/blobs/uploads/1?_state=x%3D\r\nContent-Length:  0 \r\nX-Two: a\r\nx-two:\tb\t\r\n\r\nrest');
  t.match(parsed, { status: 201, statusMessage: 'Created', keepAlive: true, framing: { kind: 'none' } });
  t.same(parsed!.rawHeaders, ['Location', '/v2/a/blobs/uploads/1?_state=x%3D', 'Content-Length', '0', 'X-Two', 'a', 'x-two', 'b']);
  t.equal(parsed!.size, Buffer.byteLength('HTTP/1.1 201 Created\r\nLocation: /v2/a/blobs/uploads/1?_state=x%3D\r\nContent-Length:  0 \r\nX-Two: a\r\nx-two:\tb\t\r\n\r\n'));
  t.equal(head('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n'), undefined, 'undefined until the blank line is in');
  t.match(head('HTTP/1.1 200\r\n\r\n'), { status: 200, statusMessage: '', framing: { kind: 'close' } }, 'no reason phrase');
  t.match(head('HTTP/1.1 200 OK\r\nLatin: caf\xe9\r\n\r\n')!.rawHeaders, ['Latin', 'caf\xe9'], 'obs-text kept');
});

t.test('framing, as RFC 9112 6.3 reads it', async (t) => {
  t.match(head('HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n')!.framing, { kind: 'length', length: 12 });
  t.match(head('HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n', true)!.framing, { kind: 'none' }, 'the answer to a HEAD has no body');
  t.match(head('HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n')!.framing, { kind: 'chunked' });
  t.match(head('HTTP/1.1 200 OK\r\n\r\n')!.framing, { kind: 'close' }, 'no framing header: read to the close');
  t.match(head('HTTP/1.1 204 No Content\r\n\r\n')!.framing, { kind: 'none' });
  t.match(head('HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n')!.framing, { kind: 'none' }, "a 304's length is the representation's");
  t.match(head('HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n')!.framing, { kind: 'none' });
  t.equal(head('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n')!.keepAlive, false);
  t.equal(head('HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n')!.keepAlive, false, 'HTTP/1.0 closes by default');
  t.equal(head('HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n')!.keepAlive, true);
  t.equal(head('HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\n')!.keepAlive, false);
  t.equal(head('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\n\r\n')!.keptFor, 5000, "the upstream's idle limit");
  t.equal(head('HTTP/1.1 200 OK\r\nkeep-alive: max=100; Timeout = 75\r\n\r\n')!.keptFor, 75_000);
  t.equal(head('HTTP/1.1 200 OK\r\nKeep-Alive: xtimeout=5\r\n\r\n')!.keptFor, undefined);
});

t.test('what could be read two ways is refused', async (t) => {
  const refused: [string, string][] = [
    ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n', 'Content-Length twice, even equal'],
    ['HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n', 'a list as Content-Length'],
    ['HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n', 'a sign'],
    ['HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n', 'more than 15 digits'],
    ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', 'both framing headers'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 'a coding berth does not decode'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 'chunked not last'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', 'Transfer-Encoding twice'],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\x0b\r\n\r\n', 'a control byte in a value'],
    ['HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n', 'a chunked 204'],
    ['HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n', 'a 204 with a length'],
    ['HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n', 'a blank before the colon'],
    ['HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n', 'a folded line'],
    ['HTTP/1.1 200 OK\r\nno colon\r\n\r\n', 'a line without a colon'],
    ['HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n', 'a bare LF'],
    ['HTTP/1.1 200 OK\r\nX: a\nContent-Length: 1\r\n\r\n', 'a bare LF inside a value'],
    ['HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n', 'a bare CR'],
    ['HTTP/1.1 200 O\x01K\r\n\r\n', 'a control byte in the reason'],
    ['HTTP/1.1  200 OK\r\n\r\n', 'two blanks'],
    ['HTTP/2 200 OK\r\n\r\n', 'not HTTP/1.x'],
    ['http/1.1 200 OK\r\n\r\n', 'lower case'],
    ['HTTP/1.1 2000 OK\r\n\r\n', 'four digits'],
    ['HTTP/1.1 20 OK\r\n\r\n', 'two digits'],
  ];
  for (const [text, why] of refused) t.throws(() => head(text), MalformedAnswer, why);
  t.throws(() => head('HTTP/1.1 200 OK\r\nX: ' + 'a'.repeat(RESPONSE_HEAD_LIMIT) + '\r\n'), MalformedAnswer, 'a head too large, before its end arrives');
});

/** The body chunked into pieces at `cuts`, with an extension and a trailer when asked. */
function encode(data: Buffer, cuts: number[], extension: boolean, trailer: boolean): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts.map((c) => c % (data.length + 1)).sort((a, b) => a - b), data.length]) {
    if (cut <= at) continue;
    parts.push(Buffer.from(`${(cut - at).toString(16)}${extension ? ';name="v"' : ''}\r\n`, 'latin1'), data.subarray(at, cut), Buffer.from('\r\n'));
    at = cut;
  }
  parts.push(Buffer.from(`0\r\n${trailer ? 'Digest: x\r\n' : ''}\r\n`, 'latin1'));
  return Buffer.concat(parts);
}

/** Decodes `bytes` fed in pieces at `feeds`; returns the data and where decoding stopped in the last piece. */
function decode(bytes: Buffer, feeds: number[]): { data: Buffer; done: boolean; stoppedAt: number; fedTo: number } {
  const body = new ChunkedBody();
  const out: Buffer[] = [];
  let from = 0;
  let stoppedAt = 0;
  let fedTo = 0;
  for (const to of [...feeds.map((f) => f % (bytes.length + 1)).sort((a, b) => a - b), bytes.length]) {
    if (to < from || body.done) continue;
    const piece = bytes.subarray(from, to);
    stoppedAt = body.read(piece, 0, (slice) => out.push(Buffer.from(slice)));
    fedTo = from + stoppedAt;
    from = to;
  }
  return { data: Buffer.concat(out), done: body.done, stoppedAt, fedTo };
}

t.test('a chunked body decodes to its data however it is cut and fed, and stops exactly at its end', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 8 }), fc.boolean(), fc.boolean(), fc.uint8Array({ maxLength: 20 }), (data, cuts, feeds, extension, trailer, after) => {
      const body = encode(Buffer.from(data), cuts, extension, trailer);
      const decoded = decode(Buffer.concat([body, Buffer.from(after)]), feeds.map((f) => f % (body.length + 1)));
      if (!decoded.done) throw new Error('not done');
      if (!decoded.data.equals(Buffer.from(data))) throw new Error('data differs');
      if (decoded.fedTo !== body.length) throw new Error(`stopped at ${decoded.fedTo}, the body ends at ${body.length}`);
    }),
    { numRuns: 2000 },
  );
  t.pass('2000 bodies');
});

t.test('a malformed chunked body is refused', async (t) => {
  const refused: [string, string][] = [
    ['x\r\n', 'not hex'],
    ['\r\n', 'no size'],
    [' 5\r\nhello\r\n0\r\n\r\n', 'a blank before the size'],
    ['5 \r\nhello\r\n0\r\n\r\n', 'a blank after the size'],
    ['5\nhello\r\n0\r\n\r\n', 'a bare LF after the size'],
    ['5\r\nhelloX\r\n0\r\n\r\n', 'more data than the size'],
    ['5\r\nhello\n0\r\n\r\n', 'a bare LF after the data'],
    ['10000000000000\r\n', 'a size of 14 digits'],
    ['5;a\x01\r\nhello\r\n0\r\n\r\n', 'a control byte in an extension'],
    ['0\r\nX: 1\n\r\n', 'a bare LF in a trailer'],
    ['0\r\n folded\r\n\r\n', 'a folded trailer'],
    ['0\r\n:x\r\n\r\n', 'a trailer without a name'],
    ['0\r\n\n', 'a bare LF at the end'],
    ['0\r\nX: ' + 'a'.repeat(20_000) + '\r\n\r\n', 'trailers too large'],
  ];
  for (const [text, why] of refused) t.throws(() => new ChunkedBody().read(Buffer.from(text, 'latin1'), 0, () => undefined), MalformedAnswer, why);
  t.equal(decode(Buffer.from('0000000000005\r\nhello\r\n0\r\n\r\n'), []).data.toString(), 'hello', '13 digits with leading zeros');
  t.equal(decode(Buffer.from('A\r\n0123456789\r\n0\r\n\r\n'), []).data.toString(), '0123456789', 'upper-case hex');
});
