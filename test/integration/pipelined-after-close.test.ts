import t from 'tap';
import { startTestBerth } from '../helpers/berth.js';
import { converse } from '../helpers/client.js';
import { startRecorder } from '../helpers/recorder.js';

// When berth answers a request itself and decides to close the connection (a 421, a 400,
// a refusal), requests the client pipelined behind it are dropped unforwarded, and every
// request's record ends when its connection closes: nothing stays "in flight" for ever.

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const BODY = 'x'.repeat(64);

t.test("berth's own error to a request with a body, then a pipelined request", async (t) => {
  const up = await startRecorder(t);
  const tb = await startTestBerth(t, { upstream: up.url, publicOrigin: 'https://localhost' });
  const cases = {
    misdirected: `POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: evil.example\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`,
    'bad host': `POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: a/b\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`,
    'too many headers': `POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: localhost\r\n${'a: 1\r\n'.repeat(120)}Content-Length: ${BODY.length}\r\n\r\n${BODY}`,
  };
  for (const [name, first] of Object.entries(cases)) {
    const reply = await converse(tb, `${first}GET /v2/pipelined HTTP/1.1\r\nHost: localhost\r\n\r\n`, { first: 3000, after: 3000 });
    t.match(reply, /^HTTP\/1\.1 4\d\d [\s\S]*\r\nconnection: close\r\n/i, `${name}: answered, saying the connection closes`);
    t.equal((reply.match(/HTTP\/1\.1 /g) ?? []).length, 1, `${name}: one answer, and the connection closed`);
    await sleep(100);
    t.equal(tb.berth.inFlight.size, 0, `${name}: nothing left in flight`);
  }
  t.same(up.requests.map((r) => r.url), [], 'the pipelined requests never reached the upstream');

  // Many such connections leave nothing behind.
  await Promise.all(Array.from({ length: 50 }, () => converse(tb, `${cases.misdirected}GET /v2/pipelined HTTP/1.1\r\nHost: localhost\r\n\r\n`)));
  await sleep(200);
  t.equal(tb.berth.inFlight.size, 0, '50 more: nothing left in flight');
  const metrics = await tb.berth.registry.getSingleMetricAsString('berth_requests_in_flight');
  t.match(metrics, /\nberth_requests_in_flight 0$/m, 'and the in-flight gauge is back at 0');
  t.equal(up.requests.length, 0);
  // A drain now finishes at once instead of waiting for the grace period.
  const started = Date.now();
  t.equal(await tb.berth.stop(), 'drained');
  t.ok(Date.now() - started < 2000, `the drain ended at once (${Date.now() - started} ms)`);
});

t.test('a request pipelined behind one that asked to close is not forwarded', async (t) => {
  const up = await startRecorder(t);
  const tb = await startTestBerth(t, { upstream: up.url });
  const reply = await converse(tb, `GET /v2/first HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\nGET /v2/second HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  t.equal((reply.match(/HTTP\/1\.1 200 /g) ?? []).length, 1, `one answer: ${JSON.stringify(reply)}`);
  await sleep(100);
  t.same(up.requests.map((r) => r.url), ['/v2/first']);
  t.equal(tb.berth.inFlight.size, 0);
});
