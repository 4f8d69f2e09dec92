import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import t from 'tap';
import { startCli } from '../helpers/cli.js';
import { writeOciImage } from '../helpers/oci.js';
import { REGISTRY_PASSWORD, REGISTRY_USER, e2eTools, startRegistry } from '../helpers/registry.js';
import { skopeo } from '../helpers/skopeo.js';
import { makeTestPki } from '../helpers/tls.js';

const tools = e2eTools();
const MiB = 1 << 20;
const sha256 = (data: Buffer): string => `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`;

for (const relativeUrls of [false, true]) {
  t.test(`skopeo pushes and pulls a multi-layer image through berth with workers: auto (relativeurls: ${relativeUrls})`, { skip: tools.ok ? false : `missing ${(tools as { missing: string[] }).missing.join(', ')}` }, async (t) => {
    const registry = await startRegistry(t, { relativeUrls });
    const pki = await makeTestPki();
    const berth = await startCli(['--workers', 'auto', '--upstream', registry.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile]);
    t.teardown(() => void berth.child.kill('SIGKILL'));
    const host = `localhost:${berth.port}`;
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-e2e-'));
    t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
    const image = writeOciImage(path.join(work, 'src'), [100 * MiB + 12345, 3 * MiB, 4096]);
    const tool = skopeo();
    const repo = `${host}/e2e/image-${process.pid}-${relativeUrls ? 'rel' : 'abs'}`;

    await tool.run(['login', '--authfile', tool.authFile, '--cert-dir', pki.caDir, '-u', REGISTRY_USER, '--password-stdin', host], REGISTRY_PASSWORD);
    const push = tool.run([
      'copy', '--policy', tool.policyFile, '--authfile', tool.authFile, '--dest-cert-dir', pki.caDir,
      `oci:${image.dir}:${image.tag}`, `docker://${repo}:v1`,
    ]);
    // Renewal in the middle of the push: a new certificate from the same CA replaces the
    // files once the first upload has started, and SIGHUP (immediate, where the file watch
    // waits for the writes to settle) makes every worker reload; the push goes on.
    await berth.waitForLine((l) => l.msg === 'request' && l.method === 'POST' && String(l.path).includes('/blobs/uploads/'));
    const renewed = await pki.issue();
    for (const [file, content] of [[pki.keyFile, renewed.key], [pki.certFile, renewed.cert]] as const) {
      fs.writeFileSync(`${file}.new`, content);
      fs.renameSync(`${file}.new`, file);
    }
    berth.child.kill('SIGHUP');
    await push;
    // The access line is written when the answer has been sent, so it can reach the test's
    // pipe just after skopeo is done: wait for it rather than race it.
    await berth.waitForLine((l) => l.msg === 'request' && l.method === 'PUT' && String(l.path).includes('/manifests/'));
    const serving = berth.lines.find((l) => l.msg === 'berth is serving')!.workers as number;
    t.equal(berth.lines.filter((l) => l.msg === 'certificate reloaded').length, serving, 'every worker reloaded the certificate');
    const reloadedAt = berth.lines.findIndex((l) => l.msg === 'certificate reloaded');
    const manifestAt = berth.lines.findIndex((l) => l.msg === 'request' && l.method === 'PUT' && String(l.path).includes('/manifests/'));
    t.ok(reloadedAt >= 0 && reloadedAt < manifestAt, 'the reload happened before the push ended (its manifest PUT)');
    const before = berth.lines.slice(0, reloadedAt).filter((l) => l.msg === 'request');
    const started = before.filter((l) => l.method === 'POST' && String(l.path).includes('/blobs/uploads/')).length;
    const finished = before.filter((l) => l.method === 'PUT' && String(l.path).includes('/blobs/uploads/')).length;
    t.ok(started > finished, `a blob upload was in flight during the reload (${started} started, ${finished} finished)`);
    // skopeo compresses the uncompressed test layers on the fly while pushing, streaming
    // each one as a chunked body of unknown length, like Docker's own client.
    const inspected = JSON.parse(
      (await tool.run(['inspect', '--authfile', tool.authFile, '--cert-dir', pki.caDir, `docker://${repo}:v1`])).stdout,
    ) as { Digest: string; Layers: string[] };
    t.equal(inspected.Layers.length, image.layerDigests.length, 'the registry holds every layer');

    const back = path.join(work, 'back');
    await tool.run([
      'copy', '--policy', tool.policyFile, '--authfile', tool.authFile, '--src-cert-dir', pki.caDir,
      `docker://${repo}:v1`, `oci:${back}:back`,
    ]);
    const blob = (dir: string, digest: string): Buffer => fs.readFileSync(path.join(dir, 'blobs', 'sha256', digest.replace('sha256:', '')));
    const index = JSON.parse(fs.readFileSync(path.join(back, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    t.equal(index.manifests[0]!.digest, inspected.Digest, 'the pulled manifest has the digest the registry reports');
    const manifest = JSON.parse(blob(back, inspected.Digest).toString('utf8')) as { config: { digest: string }; layers: { digest: string }[] };
    const config = JSON.parse(blob(back, manifest.config.digest).toString('utf8')) as { rootfs: { diff_ids: string[] } };
    t.same(config.rootfs.diff_ids, image.layerDigests, 'the image config names the pushed layers');
    manifest.layers.forEach((layer, i) => {
      const content = zlib.gunzipSync(blob(back, layer.digest));
      t.equal(sha256(content), image.layerDigests[i], `layer ${i} pulled back byte-identical to what was pushed`);
      t.equal(sha256(blob(back, layer.digest)), layer.digest, `layer ${i} blob matches its digest`);
    });

    const requests = berth.lines.filter((l) => l.msg === 'request');
    t.ok(requests.some((l) => l.method === 'PUT' && l.status === 201 && l.uploadUuid), 'uploads completed through berth');
    t.notOk(requests.some((l) => (l.status as number) >= 500), 'no request failed with a 5xx');
    t.notOk(requests.some((l) => String(l.path).includes('_state=') && !String(l.path).includes('_state=REDACTED')), '_state never logged');
    t.ok(new Set(requests.map((l) => l.pid)).size > 1 || berth.lines.some((l) => l.msg === 'berth is serving' && l.workers === 1), 'requests were spread over the workers');
  });
}
