import crypto from 'node:crypto';
import t from 'tap';
import { startTestBerth } from '../helpers/berth.js';
import { ask } from '../helpers/client.js';
import { startUpstream } from '../helpers/upstream.js';

/**
 * Node's server.requestTimeout (300 s by default) answers 408 and closes the connection
 * even while body bytes keep flowing: a push over a slow link dies at five minutes. berth
 * turns it off; this upload trickles for longer than that and must complete.
 * It takes over five minutes, so it runs with TEST_SLOW=1, or in CI (CI=true)
 * unless TEST_SLOW=0 (.ci/run runs it on one Node version of the two).
 */
const seconds = Number(process.env.TEST_SLOW_UPLOAD_SECONDS ?? 310);
const enabled = process.env.TEST_SLOW === '1' || (Boolean(process.env.CI) && process.env.TEST_SLOW !== '0');
t.setTimeout((seconds + 90) * 1000);

t.test(`an upload trickling for ${seconds} s is not cut`, { skip: enabled ? false : 'slow: set TEST_SLOW=1 (always on in CI)', timeout: (seconds + 60) * 1000 }, async (t) => {
  const up = await startUpstream(t, (_req, res, body) =>
    res.writeHead(202, { 'docker-content-digest': `sha256:${crypto.createHash('sha256').update(body).digest('hex')}` }).end(),
  );
  const tb = await startTestBerth(t, { upstream: up.url });
  const hash = crypto.createHash('sha256');
  const started = Date.now();
  async function* trickle(): AsyncIterable<Buffer> {
    while (Date.now() - started < seconds * 1000) {
      const chunk = crypto.randomBytes(4096);
      hash.update(chunk);
      yield chunk;
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
  const answer = await ask(tb, { method: 'PATCH', path: '/v2/slow/blobs/uploads/u?_state=x', body: trickle() });
  const elapsed = (Date.now() - started) / 1000;
  t.ok(elapsed > 300, `the upload lasted ${elapsed.toFixed(0)} s, past Node's default 300 s`);
  t.equal(answer.status, 202, 'the upstream answered the complete upload');
  t.equal(answer.headers['docker-content-digest'], `sha256:${hash.digest('hex')}`, 'every byte arrived');
});
