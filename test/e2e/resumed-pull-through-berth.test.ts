import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { startTestBerth } from '../helpers/berth.js';
import { ask } from '../helpers/client.js';
import { e2eTools, startRegistry } from '../helpers/registry.js';

/**
 * A pull that breaks off and resumes with `Range`, through berth against the real registry,
 * with curl (`-C -`, as containerd resumes a layer): the registry's 206 and Content-Range
 * reach the client as the registry sent them, and the resumed file is the blob, digest for
 * digest. Digest, ETag and length agree with what the registry says directly.
 */

const run = promisify(execFile);
const tools = e2eTools();
const skip = tools.ok ? false : `missing ${(tools as { missing: string[] }).missing.join(', ')}`;

t.test('a blob pull resumed with Range through berth is the blob', { skip }, async (t) => {
  const registry = await startRegistry(t, { relativeUrls: false, auth: 'none' });
  const tb = await startTestBerth(t, { upstream: registry.url });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-range-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ca = path.join(dir, 'ca.crt');
  fs.writeFileSync(ca, tb.pki.ca);

  const blob = crypto.randomBytes(5 * 1024 * 1024 + 321);
  const digest = `sha256:${crypto.createHash('sha256').update(blob).digest('hex')}`;
  const repo = 'resume/layer';
  const start = await ask(tb, { method: 'POST', path: `/v2/${repo}/blobs/uploads/` });
  t.equal(start.status, 202);
  const location = new URL(start.headers.location as string);
  location.searchParams.set('digest', digest);
  const put = await ask(tb, { method: 'PUT', path: location.pathname + location.search, body: blob, headers: { 'content-type': 'application/octet-stream' } });
  t.equal(put.status, 201, 'blob pushed');

  const url = `https://localhost:${tb.port}/v2/${repo}/blobs/${digest}`;
  const file = path.join(dir, 'layer');
  const headers = path.join(dir, 'headers');
  const half = 2 * 1024 * 1024 + 7;
  // The first part, as a pull cut short leaves it…
  await run('curl', ['-sS', '--fail', '--cacert', ca, '-r', `0-${half - 1}`, '-o', file, url]);
  t.equal(fs.statSync(file).size, half, 'the first part');
  // …then curl resumes where the file ends.
  await run('curl', ['-sS', '--fail', '--cacert', ca, '-C', '-', '-D', headers, '-o', file, url]);
  const head = fs.readFileSync(headers, 'latin1');
  t.match(head, /^HTTP\/1\.1 206 /, 'the registry\'s 206');
  t.match(head, new RegExp(`\\r\\ncontent-range: bytes ${half}-${blob.length - 1}/${blob.length}\\r\\n`, 'i'), 'its Content-Range');
  t.match(head, new RegExp(`\\r\\ncontent-length: ${blob.length - half}\\r\\n`, 'i'));
  const resumed = fs.readFileSync(file);
  t.equal(`sha256:${crypto.createHash('sha256').update(resumed).digest('hex')}`, digest, 'the resumed file is the blob');

  // A range in the middle, and the blob's validators, as the registry gives them directly.
  for (const method of ['GET', 'HEAD'] as const) {
    const direct = await fetch(`${registry.url}/v2/${repo}/blobs/${digest}`, { method, headers: { range: 'bytes=1000-1999' } });
    const through = await ask(tb, { method, path: `/v2/${repo}/blobs/${digest}`, headers: { range: 'bytes=1000-1999' } });
    t.equal(through.status, direct.status, `${method}: the same status (${direct.status})`);
    for (const name of ['content-range', 'content-length', 'docker-content-digest', 'etag', 'accept-ranges', 'content-type']) {
      t.equal(through.headers[name], direct.headers.get(name) ?? undefined, `${method}: ${name} as the registry sends it`);
    }
    if (method === 'GET') t.ok(through.body.equals(blob.subarray(1000, 2000)), 'the bytes of that range');
  }
});
