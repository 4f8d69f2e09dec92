import t from 'tap';
import { startTestBerth, waitForLog } from '../helpers/berth.js';
import { ask } from '../helpers/client.js';
import { startUpstream } from '../helpers/upstream.js';

t.test('one access line per request, with the upload UUID and no secrets', async (t) => {
  const up = await startUpstream(t, (_req, res) =>
    res.writeHead(202, { 'Docker-Upload-UUID': '0f6c2a57-uuid', Location: '/v2/a/blobs/uploads/0f6c2a57-uuid?_state=next%3D' }).end('accepted'),
  );
  const tb = await startTestBerth(t, { upstream: up.url });
  await ask(tb, {
    method: 'PATCH',
    path: '/v2/a/blobs/uploads/0f6c2a57-uuid?_state=c2VjcmV0%3D%3D',
    headers: { authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.sig', cookie: 'session=cookie-secret', 'content-length': '11' },
    body: 'hello world',
  });
  const line = await waitForLog(tb, (l) => l.msg === 'request');
  t.match(line, {
    method: 'PATCH',
    path: '/v2/a/blobs/uploads/0f6c2a57-uuid?_state=REDACTED',
    status: 202,
    bytesIn: 11,
    bytesOut: 8,
    client: '127.0.0.1',
    uploadUuid: '0f6c2a57-uuid',
  });
  t.type(line.durationMs, 'number');
  const all = JSON.stringify(tb.logs);
  for (const secret of ['eyJhbGciOiJIUzI1NiJ9', 'cookie-secret', 'c2VjcmV0', 'next%3D']) t.notMatch(all, secret, `${secret} not logged`);
  t.equal(tb.logs.filter((l) => l.msg === 'request').length, 1, 'exactly one line');
});

t.test('the POST that starts an upload is logged with the UUID the registry answered', async (t) => {
  const up = await startUpstream(t, (_req, res) =>
    res.writeHead(202, { 'Docker-Upload-UUID': '7d1e-started', Location: '/v2/a/blobs/uploads/7d1e-started?_state=s', 'Content-Length': '0' }).end(),
  );
  const tb = await startTestBerth(t, { upstream: up.url });
  await ask(tb, { method: 'POST', path: '/v2/a/blobs/uploads/' });
  const line = await waitForLog(tb, (l) => l.msg === 'request');
  t.match(line, { method: 'POST', path: '/v2/a/blobs/uploads/', status: 202, uploadUuid: '7d1e-started' });
});
