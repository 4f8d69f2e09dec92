import crypto from 'node:crypto';
import https from 'node:https';
import t from 'tap';
import { startTestBerth } from '../helpers/berth.js';
import { startUpstream } from '../helpers/upstream.js';

t.test('an upload with Expect: 100-continue gets 100, sends its body, and the upstream gets it whole', async (t) => {
  const up = await startUpstream(t, (_req, res, body) =>
    res.writeHead(201, { 'Docker-Content-Digest': `sha256:${crypto.createHash('sha256').update(body).digest('hex')}` }).end(),
  );
  const tb = await startTestBerth(t, { upstream: up.url });
  const data = crypto.randomBytes(1 << 20);
  const result = await new Promise<{ status: number; digest: string; sawContinue: boolean }>((resolve, reject) => {
    let sawContinue = false;
    const req = https.request(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port: tb.port,
        method: 'PUT',
        path: '/v2/x/blobs/uploads/u?_state=s%3D&digest=sha256%3Ax',
        ca: tb.pki.ca,
        agent: false,
        headers: { host: `localhost:${tb.port}`, expect: '100-continue', 'content-length': String(data.length) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, digest: String(res.headers['docker-content-digest']), sawContinue }));
      },
    );
    req.on('continue', () => {
      sawContinue = true;
      req.end(data);
    });
    req.on('error', reject);
  });
  t.ok(result.sawContinue, 'the client was told to continue');
  t.equal(result.status, 201);
  t.equal(result.digest, `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`, 'the upstream got every byte');
  t.equal(up.seen[0]!.headers.expect, undefined, 'the expectation was met by berth, not forwarded');
});
