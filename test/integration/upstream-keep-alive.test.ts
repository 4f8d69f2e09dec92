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
