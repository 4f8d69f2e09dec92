import t from 'tap';
import { startTestBerth, waitForLog, type TestBerth } from '../helpers/berth.js';
import { ask } from '../helpers/client.js';
import { parsePrometheus, sample, type Family } from '../helpers/prometheus.js';
import { startUpstream } from '../helpers/upstream.js';

/**
 * What berth explains about registry answers, in the access line and the metrics: the wait
 * for the final PUT, cross-repository mounts, errors from another hop, and a token that
 * expired while an upload ran. Against an upstream that answers as the test needs (the
 * real registry's expired-token answer is in test/e2e/token-expired-during-upload.test.ts).
 */

const API = { 'docker-distribution-api-version': 'registry/2.0' };
const accessLine = (tb: TestBerth, method: string, path: string): Promise<Record<string, unknown>> => waitForLog(tb, (l) => l.msg === 'request' && l.method === method && l.path === path);
const families = async (tb: TestBerth, name: string): Promise<Family[]> => parsePrometheus(`${await tb.berth.registry.getSingleMetricAsString(name)}\n`);
const metric = async (tb: TestBerth, name: string, labels: Record<string, string> = {}): Promise<number | undefined> => sample(await families(tb, name), name, labels);
const jwt = (claims: Record<string, unknown>): string => ['{"alg":"ES256","typ":"JWT"}', JSON.stringify(claims)].map((p) => Buffer.from(p).toString('base64url')).join('.') + '.c2ln';

t.test('the final PUT: the registry\'s wait after the last byte is its own field and histogram', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    // Digest check and move to storage: the answer comes 300 ms after the body.
    if (req.method === 'PUT') setTimeout(() => res.writeHead(201, { ...API, location: '/v2/r/blobs/sha256:1' }).end(), 300);
    else res.writeHead(202, { ...API, 'docker-upload-uuid': 'u1', location: '/v2/r/blobs/uploads/u1' }).end();
  });
  const tb = await startTestBerth(t, { upstream: up.url });
  const put = '/v2/r/blobs/uploads/u1?digest=sha256:1';
  t.equal((await ask(tb, { method: 'PATCH', path: '/v2/r/blobs/uploads/u1', body: 'x'.repeat(10_000) })).status, 202);
  t.equal((await ask(tb, { method: 'PUT', path: put, body: 'last' })).status, 201);
  const line = await accessLine(tb, 'PUT', put);
  t.ok((line.finishMs as number) >= 250 && (line.finishMs as number) < 5000, `finishMs ${String(line.finishMs)}`);
  t.notOk('finishMs' in (await accessLine(tb, 'PATCH', '/v2/r/blobs/uploads/u1')), 'a PATCH has none');
  t.equal(await metric(tb, 'berth_blob_upload_finish_seconds'), 1, 'one final PUT observed');
  const buckets = (await families(tb, 'berth_blob_upload_finish_seconds')).find((f) => f.name === 'berth_blob_upload_finish_seconds')!.metrics[0]!.buckets!;
  t.same([buckets['0.05'], buckets['1']], ['0', '1'], 'between 50 ms and 1 s');
});

t.test('a cross-repository mount: taken (201) or fallen back to an upload (202), logged and counted', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    if (req.url!.includes('sha256:aaa')) res.writeHead(201, { ...API, location: '/v2/r/blobs/sha256:aaa', 'docker-content-digest': 'sha256:aaa' }).end();
    else res.writeHead(202, { ...API, location: '/v2/r/blobs/uploads/u2', 'docker-upload-uuid': 'u2' }).end();
  });
  const tb = await startTestBerth(t, { upstream: up.url });
  const mounted = '/v2/r/blobs/uploads/?mount=sha256:aaa&from=library/base';
  const fellBack = '/v2/r/blobs/uploads/?mount=sha256:bbb&from=library/base';
  t.equal((await ask(tb, { method: 'POST', path: mounted })).status, 201);
  t.equal((await ask(tb, { method: 'POST', path: fellBack })).status, 202);
  t.equal((await ask(tb, { method: 'POST', path: '/v2/r/blobs/uploads/' })).status, 202);
  t.equal((await accessLine(tb, 'POST', mounted)).mount, 'mounted');
  t.equal((await accessLine(tb, 'POST', fellBack)).mount, 'upload');
  t.notOk('mount' in (await accessLine(tb, 'POST', '/v2/r/blobs/uploads/')), 'a plain upload start is no mount');
  t.equal(await metric(tb, 'berth_blob_mounts_total', { result: 'mounted' }), 1);
  t.equal(await metric(tb, 'berth_blob_mounts_total', { result: 'upload' }), 1);
});

t.test('an error from another hop (no Docker-Distribution-Api-Version) is marked; the registry\'s own are not', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    if (req.url === '/v2/r/blobs/uploads/big') res.writeHead(413, { server: 'nginx/1.22.1', 'content-type': 'text/html' }).end('<html><body>413 Request Entity Too Large</body></html>');
    else if (req.url === '/v2/r/blobs/uploads/lb') res.writeHead(504, { 'content-type': 'text/plain' }).end('upstream request timeout');
    else if (req.url === '/v2/r/manifests/html') res.writeHead(404, { 'content-type': 'text/html; charset=utf-8' }).end('<html>Not Found</html>');
    else if (req.url === '/v2/r/manifests/gone') res.writeHead(404, { ...API, 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
    else res.writeHead(503, { ...API, 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE"}]}');
  });
  const tb = await startTestBerth(t, { upstream: up.url });
  await ask(tb, { method: 'PATCH', path: '/v2/r/blobs/uploads/big', body: 'x' });
  await ask(tb, { method: 'PATCH', path: '/v2/r/blobs/uploads/lb', body: 'x' });
  await ask(tb, { method: 'GET', path: '/v2/r/manifests/html' });
  await ask(tb, { method: 'GET', path: '/v2/r/manifests/gone' });
  await ask(tb, { method: 'GET', path: '/v2/r/manifests/busy' });
  t.match(await accessLine(tb, 'PATCH', '/v2/r/blobs/uploads/big'), { status: 413, notFromRegistry: true, answerServer: 'nginx/1.22.1' });
  t.match(await accessLine(tb, 'PATCH', '/v2/r/blobs/uploads/lb'), { status: 504, notFromRegistry: true });
  t.match(await accessLine(tb, 'GET', '/v2/r/manifests/html'), { status: 404, notFromRegistry: true });
  t.notOk('notFromRegistry' in (await accessLine(tb, 'GET', '/v2/r/manifests/gone')), 'the registry\'s 404');
  t.notOk('notFromRegistry' in (await accessLine(tb, 'GET', '/v2/r/manifests/busy')), 'the registry\'s 503');
  t.equal(await metric(tb, 'berth_not_registry_answers_total', { status: '413' }), 1);
  t.equal(await metric(tb, 'berth_not_registry_answers_total', { status: '504' }), 1);
  t.equal(await metric(tb, 'berth_not_registry_answers_total', { status: '503' }), undefined);
});

t.test('a 401 to an upload\'s PUT with an expired bearer token is explained once, with the token\'s lifetime', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    if (req.method === 'POST') res.writeHead(202, { ...API, location: '/v2/r/blobs/uploads/u3', 'docker-upload-uuid': 'u3' }).end();
    else res.writeHead(401, { ...API, 'www-authenticate': 'Bearer realm="https://auth/token",service="registry"' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
  });
  const tb = await startTestBerth(t, { upstream: up.url });
  const now = Math.floor(Date.now() / 1000);
  const expired = `Bearer ${jwt({ sub: 'ci', iat: now - 2400, nbf: now - 2405, exp: now - 600 })}`;
  const valid = `Bearer ${jwt({ sub: 'ci', iat: now, exp: now + 1800 })}`;
  t.equal((await ask(tb, { method: 'POST', path: '/v2/r/blobs/uploads/', headers: { authorization: valid } })).status, 202);
  t.equal((await ask(tb, { method: 'PUT', path: '/v2/r/blobs/uploads/u3?digest=sha256:1', headers: { authorization: expired }, body: 'x' })).status, 401);
  const warning = await waitForLog(tb, (l) => l.level === 40 && typeof l.msg === 'string' && l.msg.includes('bearer token the client sent had expired'));
  t.match(warning, { method: 'PUT', tokenLifetimeSeconds: 1800, uploadSeconds: 0 });
  t.ok(Math.abs((warning.tokenExpiredSecondsAgo as number) - 600) <= 2, `expired ${String(warning.tokenExpiredSecondsAgo)} s ago`);
  t.match(warning.msg, /Token Expiration/, 'the fix');
  t.equal((await accessLine(tb, 'PUT', '/v2/r/blobs/uploads/u3?digest=sha256:1')).tokenExpired, true);
  t.equal(await metric(tb, 'berth_upload_token_expired_total'), 1);

  // A 401 with a token still valid, a GET's 401, and Basic credentials are not explained so.
  await ask(tb, { method: 'PATCH', path: '/v2/r/blobs/uploads/u3', headers: { authorization: valid }, body: 'x' });
  await ask(tb, { method: 'GET', path: '/v2/r/blobs/uploads/u3', headers: { authorization: expired } });
  await ask(tb, { method: 'PUT', path: '/v2/r/blobs/uploads/u3?digest=sha256:2', headers: { authorization: 'Basic Y2k6cHc=' }, body: 'x' });
  await ask(tb, { method: 'PUT', path: '/v2/r/blobs/uploads/u3?digest=sha256:3', headers: { authorization: 'Bearer not.a-jwt' }, body: 'x' });
  await accessLine(tb, 'PUT', '/v2/r/blobs/uploads/u3?digest=sha256:3');
  t.equal(await metric(tb, 'berth_upload_token_expired_total'), 1, 'still one');
});
