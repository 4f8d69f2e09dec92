import t from 'tap';
import { startTestBerth, waitForLog } from '../helpers/berth.js';
import { converse } from '../helpers/client.js';
import { startRecorder } from '../helpers/recorder.js';

// Node keeps at most maxHeadersCount header pairs in req.headers, yet its parser frames the
// body by a Content-Length or Transfer-Encoding that comes after them. berth must never
// forward a body whose framing it did not see: the upstream would read it as a request.

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const VICTIM = 'GET /v2/smuggled HTTP/1.1\r\nHost: evil.example\r\n\r\n';

for (const framing of ['content-length', 'chunked'] as const) {
  t.test(`framing header after 1000 filler headers (${framing}): refused, nothing smuggled`, async (t) => {
    const up = await startRecorder(t);
    const tb = await startTestBerth(t, { upstream: up.url });
    const body = framing === 'content-length' ? VICTIM : `${VICTIM.length.toString(16)}\r\n${VICTIM}\r\n0\r\n\r\n`;
    const framingLine = framing === 'content-length' ? `Content-Length: ${VICTIM.length}` : 'Transfer-Encoding: chunked';
    const reply = await converse(tb, `GET /v2/ HTTP/1.1\r\nHost: localhost:${tb.port}\r\n${'a: 1\r\n'.repeat(1000)}${framingLine}\r\n\r\n${body}`);
    t.match(reply, /^HTTP\/1\.1 431 /, 'too many header fields: 431');
    t.match(reply, /\r\nconnection: close\r\n/i, 'and the connection closes');
    t.equal((reply.match(/HTTP\/1\.1 /g) ?? []).length, 1, 'one answer only');
    await sleep(100);
    t.same(up.requests.map((r) => r.url), [], 'the upstream saw no request at all');
    t.same(up.parseErrors, []);
    // Node 22 and later refuse more fields than maxHeadersCount in the parser itself; Node 20
    // hands the request over with the excess dropped, and berth refuses it.
    const parser = tb.logs.find((l) => l.msg === 'request refused by the HTTP parser');
    if (parser) {
      t.match(parser, { code: 'HPE_HEADER_OVERFLOW' }, "refused by Node's parser (maxHeadersCount), logged with the reason");
    } else {
      t.match(reply, /"message":"berth: the request has too many header fields"/, 'refused by berth, in the registry error shape');
      t.match(await waitForLog(tb, (l) => l.msg === 'request'), { status: 431, error: 'too_many_headers' });
    }
  });
}

t.test('at the limit of header fields: served, and the body framed as berth parsed it', async (t) => {
  const up = await startRecorder(t);
  const tb = await startTestBerth(t, { upstream: up.url });
  // Host + 97 fillers + Content-Length + Connection = 100 fields: the most berth serves.
  const reply = await converse(tb, `PUT /v2/a/blobs/uploads/1 HTTP/1.1\r\nHost: localhost:${tb.port}\r\n${'a: 1\r\n'.repeat(97)}Content-Length: ${VICTIM.length}\r\nConnection: close\r\n\r\n${VICTIM}`);
  t.match(reply, /^HTTP\/1\.1 200 /);
  await sleep(100);
  t.equal(up.requests.length, 1, 'one request upstream');
  t.equal(up.requests[0]?.body.toString(), VICTIM, 'the body arrived as a body');
  t.equal(up.requests[0]?.headers['content-length'], String(VICTIM.length));
  const over = await converse(tb, `GET /v2/ HTTP/1.1\r\nHost: localhost:${tb.port}\r\n${'a: 1\r\n'.repeat(100)}\r\n`);
  t.match(over, /^HTTP\/1\.1 431 /, 'one field more: 431');
});

t.test('a bodiless request is forwarded without a body, whatever follows it', async (t) => {
  const up = await startRecorder(t);
  const tb = await startTestBerth(t, { upstream: up.url });
  for (const method of ['GET', 'HEAD', 'DELETE', 'OPTIONS', 'POST']) {
    const before = up.requests.length;
    const reply = await converse(tb, `${method} /v2/x HTTP/1.1\r\nHost: localhost:${tb.port}\r\n\r\n${method} /v2/y HTTP/1.1\r\nHost: localhost:${tb.port}\r\nConnection: close\r\n\r\n`);
    t.equal((reply.match(/HTTP\/1\.1 200 /g) ?? []).length, 2, `${method}: two pipelined requests, two answers`);
    await sleep(50);
    const got = up.requests.slice(before);
    t.same(
      got.map((r) => [r.method, r.url, r.body.length]),
      [
        [method, '/v2/x', 0],
        [method, '/v2/y', 0],
      ],
      `${method}: both reached the upstream as two requests without a body`,
    );
    t.notOk(got.some((r) => r.headers['transfer-encoding'] !== undefined), `${method}: never chunked`);
  }
});
