import crypto from 'node:crypto';
import t from 'tap';
import { startTestBerth, type TestBerth } from '../helpers/berth.js';
import { ask, type Answer } from '../helpers/client.js';
import { REGISTRY_PASSWORD, REGISTRY_USER, e2eTools, startRegistry } from '../helpers/registry.js';

const tools = e2eTools();
const skip = tools.ok ? false : `missing ${(tools as { missing: string[] }).missing.join(', ')}`;
const auth = { authorization: `Basic ${Buffer.from(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`).toString('base64')}` };
const digestOf = (data: Buffer): string => `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`;

/** Yields data in pieces, so the request goes out chunked with no Content-Length. */
async function* pieces(data: Buffer, size: number): AsyncIterable<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

/**
 * What a client does with a Location: resolve it against the URL it requested. The
 * result must be on berth's public origin, or the next request would bypass berth.
 */
function follow(tb: TestBerth, requested: string, answer: Answer): string {
  const location = answer.headers.location as string;
  const absolute = new URL(location, `${tb.origin}${requested}`);
  if (absolute.origin !== tb.origin) throw new Error(`Location left berth: ${location}`);
  return absolute.pathname + absolute.search;
}

for (const relativeUrls of [false, true]) {
  t.test(`upload protocol through berth with the real registry (relativeurls: ${relativeUrls})`, { skip }, async (t) => {
    const registry = await startRegistry(t, { relativeUrls });
    const tb = await startTestBerth(t, { upstream: registry.url });
    const repo = `proto/r${relativeUrls ? 'rel' : 'abs'}${process.pid}`;

    t.test('chunked PATCH uploads without Content-Length, then PUT with the digest', async (t) => {
      const part1 = crypto.randomBytes(3 * 1024 * 1024 + 17);
      const part2 = crypto.randomBytes(1024 * 1024 + 5);
      const start = await ask(tb, { method: 'POST', path: `/v2/${repo}/blobs/uploads/`, headers: auth });
      t.equal(start.status, 202, 'upload started');
      t.ok(start.headers['docker-upload-uuid'], 'Docker-Upload-UUID passed through');
      let at = follow(tb, `/v2/${repo}/blobs/uploads/`, start);
      t.match(at, /_state=/, 'the upload URL carries the signed _state');

      const patch1 = await ask(tb, { method: 'PATCH', path: at, headers: { ...auth, 'content-type': 'application/octet-stream' }, body: pieces(part1, 65536) });
      t.equal(patch1.status, 202, 'first chunked PATCH accepted');
      t.equal(patch1.headers.range, `0-${part1.length - 1}`, 'Range reports what the registry has');
      at = follow(tb, at, patch1);

      const status = await ask(tb, { method: 'GET', path: at, headers: auth });
      t.equal(status.status, 204, 'upload status answered');
      t.equal(status.headers.range, `0-${part1.length - 1}`);

      const patch2 = await ask(tb, { method: 'PATCH', path: at, headers: { ...auth, 'content-type': 'application/octet-stream' }, body: pieces(part2, 65536) });
      t.equal(patch2.status, 202, 'second chunked PATCH accepted');
      at = follow(tb, at, patch2);

      const all = Buffer.concat([part1, part2]);
      const digest = digestOf(all);
      const put = await ask(tb, { method: 'PUT', path: `${at}&digest=${encodeURIComponent(digest)}`, headers: { ...auth, 'content-length': '0' } });
      t.equal(put.status, 201, 'upload completed');
      t.equal(put.headers['docker-content-digest'], digest);
      const blobPath = follow(tb, at, put);
      const pulled = await ask(tb, { method: 'GET', path: blobPath, headers: auth });
      t.equal(pulled.status, 200);
      t.ok(pulled.body.equals(all), 'the blob reads back byte-identical');
    });

    t.test('monolithic PUT streams a body with Content-Length', async (t) => {
      const data = crypto.randomBytes(8 * 1024 * 1024 + 3);
      const digest = digestOf(data);
      const start = await ask(tb, { method: 'POST', path: `/v2/${repo}/blobs/uploads/`, headers: auth });
      t.equal(start.status, 202);
      const at = follow(tb, `/v2/${repo}/blobs/uploads/`, start);
      const put = await ask(tb, {
        method: 'PUT',
        path: `${at}&digest=${encodeURIComponent(digest)}`,
        headers: { ...auth, 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
        body: pieces(data, 1 << 20),
      });
      t.equal(put.status, 201, 'monolithic upload completed');
      const head = await ask(tb, { method: 'HEAD', path: `/v2/${repo}/blobs/${digest}`, headers: auth });
      t.equal(head.status, 200);
      t.equal(head.headers['content-length'], String(data.length), 'the registry holds the whole blob');
      t.equal(head.headers['docker-content-digest'], digest);
    });

    t.test('cross-repository mount answers 201 with a Location on berth', async (t) => {
      const data = crypto.randomBytes(64 * 1024);
      const digest = digestOf(data);
      // Distribution 2.8 ignores a body on the POST (?digest=), so upload with POST then PUT.
      const start = await ask(tb, { method: 'POST', path: `/v2/${repo}/blobs/uploads/`, headers: auth });
      const at = follow(tb, `/v2/${repo}/blobs/uploads/`, start);
      const put = await ask(tb, {
        method: 'PUT',
        path: `${at}&digest=${encodeURIComponent(digest)}`,
        headers: { ...auth, 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
        body: data,
      });
      t.equal(put.status, 201, 'the source blob is in the first repository');
      const target = `${repo}-mounted`;
      const mount = await ask(tb, { method: 'POST', path: `/v2/${target}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(repo)}`, headers: auth });
      t.equal(mount.status, 201, 'the blob was mounted, not uploaded again');
      const blobPath = follow(tb, `/v2/${target}/blobs/uploads/`, mount);
      t.equal(blobPath, `/v2/${target}/blobs/${digest}`);
      const head = await ask(tb, { method: 'HEAD', path: blobPath, headers: auth });
      t.equal(head.status, 200, 'the mounted blob is there');
    });

    t.test('without credentials the registry challenge passes through', async (t) => {
      const answer = await ask(tb, { path: '/v2/' });
      t.equal(answer.status, 401);
      t.match(String(answer.headers['www-authenticate']), /^Basic realm="berth-test"/);
      t.equal(answer.headers['docker-distribution-api-version'], 'registry/2.0');
    });
  });
}
