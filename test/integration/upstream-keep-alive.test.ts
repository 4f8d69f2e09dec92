import t from 'tap';
import { startTestBerth } from '../helpers/berth.js';
import { ask } from '../helpers/client.js';
import { startUpstream } from '../helpers/upstream.js';

t.test('upstream connections are kept alive and reused', async (t) => {
  const up = await startUpstream(t, (_req, res, body) => res.end(String(body.length)));
  let connections = 0;
  up.server.on('connection', () => connections++);
  const tb = await startTestBerth(t, { upstream: up.url });
  for (let i = 0; i < 20; i++) {
    const answer = await ask(tb, { method: i % 2 ? 'GET' : 'PATCH', path: `/v2/r/blobs/uploads/u${i}`, body: i % 2 ? undefined : 'x'.repeat(i) });
    t.equal(answer.status, 200);
  }
  t.equal(up.seen.length, 20);
  t.equal(connections, 1, `20 sequential requests used ${connections} upstream connection(s)`);
});

t.test("an upstream's announced idle limit (Keep-Alive: timeout=N) is kept: a connection it may be closing is not used again", async (t) => {
  // Node's own server says `Keep-Alive: timeout=5` and closes at 5 s: a request sent on that
  // connection just then would be cut, and a PUT cannot be sent again.
  const up = await startUpstream(t, (_req, res, body) => res.end(String(body.length)));
  up.server.keepAliveTimeout = 3000; // announced as timeout=3: berth keeps it 1 s
  let connections = 0;
  up.server.on('connection', () => connections++);
  const tb = await startTestBerth(t, { upstream: up.url });
  t.equal((await ask(tb, { method: 'PUT', path: '/v2/r/blobs/uploads/a', body: 'x' })).status, 200);
  t.equal((await ask(tb, { method: 'PUT', path: '/v2/r/blobs/uploads/b', body: 'y' })).status, 200);
  t.equal(connections, 1, 'reused within the limit');
  await new Promise((resolve) => setTimeout(resolve, 1300));
  t.equal((await ask(tb, { method: 'PUT', path: '/v2/r/blobs/uploads/c', body: 'z' })).status, 200);
  t.equal(connections, 2, 'past the announced limit less 2 s, a new connection (the upstream still had the old one open)');
});
