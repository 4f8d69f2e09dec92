import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startCli, stopCli, type RunningCli } from '../helpers/cli.js';
import { writeOciImage } from '../helpers/oci.js';
import { onFreePort, waitForPort } from '../helpers/ports.js';
import { REGISTRY_PASSWORD, REGISTRY_USER, e2eTools, startRegistry } from '../helpers/registry.js';
import { skopeo } from '../helpers/skopeo.js';
import { makeTestPki } from '../helpers/tls.js';

// Scale-out, simulated: two berth replicas behind a round-robin TCP balancer (HAProxy from
// Debian, as a cloud L4 load balancer or a Kubernetes Service would be), the real registry
// behind both, and a real client. berth keeps no upload state, so an upload whose requests
// land on different replicas completes: the access logs show it.

const tools = e2eTools();
const haveHaproxy = spawnSync('sh', ['-c', 'command -v haproxy']).status === 0;
const skip = !tools.ok
  ? `missing ${tools.missing.join(', ')}`
  : haveHaproxy
    ? false
    : process.env.CI
      ? false
      : 'haproxy is not installed (apt-get install haproxy); CI installs it';
const MiB = 1 << 20;


t.test('two replicas behind a round-robin TCP balancer: push and pull succeed with an upload spread over both', { skip, timeout: 240_000 }, async (t) => {
  const registry = await startRegistry(t, { relativeUrls: false });
  const pki = await makeTestPki();
  // Every answer closes its connection (limits.requestsPerConnection: 1), so each request
  // is a new connection that the balancer hands to the next replica.
  const replica = (): Promise<RunningCli> =>
    startCli(['--workers', '1', '--upstream', registry.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile], {
      env: { BERTH_LIMITS_REQUESTS_PER_CONNECTION: '1' },
    });
  const replicas = [await replica(), await replica()];
  t.teardown(() => replicas.forEach((r) => r.child.exitCode === null && r.child.kill('SIGKILL')));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-scale-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const port = await onFreePort(async (port) => {
    fs.writeFileSync(
      path.join(dir, 'haproxy.cfg'),
      `defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend registry
  bind 127.0.0.1:${port}
  default_backend berth
backend berth
  balance roundrobin
  server a 127.0.0.1:${replicas[0]!.port}
  server b 127.0.0.1:${replicas[1]!.port}
`,
    );
    const haproxy = spawn('haproxy', ['-db', '-f', path.join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let haproxyErr = '';
    haproxy.stderr.on('data', (d: Buffer) => (haproxyErr += d.toString()));
    t.teardown(() => void haproxy.kill('SIGKILL'));
    await waitForPort(port, () => (haproxy.exitCode !== null ? `haproxy did not start: ${haproxyErr}` : undefined), haproxy.pid).catch((err: unknown) => {
      haproxy.kill('SIGKILL');
      throw err;
    });
    return port;
  });

  const host = `localhost:${port}`;
  const image = writeOciImage(path.join(dir, 'src'), [16 * MiB + 777, 2 * MiB, 4096]);
  const tool = skopeo();
  const repo = `${host}/scale/image-${process.pid}`;
  await tool.run(['login', '--authfile', tool.authFile, '--cert-dir', pki.caDir, '-u', REGISTRY_USER, '--password-stdin', host], REGISTRY_PASSWORD);
  await tool.run(['copy', '--policy', tool.policyFile, '--authfile', tool.authFile, '--dest-cert-dir', pki.caDir, `oci:${image.dir}:${image.tag}`, `docker://${repo}:v1`]);
  const back = path.join(dir, 'back');
  await tool.run(['copy', '--policy', tool.policyFile, '--authfile', tool.authFile, '--src-cert-dir', pki.caDir, `docker://${repo}:v1`, `oci:${back}:back`]);
  const inspected = JSON.parse((await tool.run(['inspect', '--authfile', tool.authFile, '--cert-dir', pki.caDir, `docker://${repo}:v1`])).stdout) as { Digest: string; Layers: string[] };
  t.equal(inspected.Layers.length, 3, 'the registry holds every layer');
  const index = JSON.parse(fs.readFileSync(path.join(back, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  t.equal(index.manifests[0]!.digest, inspected.Digest, 'the image pulled back is the one pushed');

  for (const r of replicas) t.equal(await stopCli(r.child), 0, 'a replica stops cleanly');
  const logs = replicas.map((r) => r.lines.filter((l) => l.msg === 'request'));
  logs.forEach((lines, i) => t.ok(lines.length > 0, `replica ${i === 0 ? 'a' : 'b'} served ${lines.length} requests`));
  t.notOk(logs.flat().some((l) => (l.status as number) >= 500), 'no request failed with a 5xx');

  // One upload, several requests (POST, PATCH, PUT), on both replicas: from the access logs.
  const uploads = logs.map((lines) => new Set(lines.map((l) => l.uploadUuid).filter(Boolean)));
  const spread = [...uploads[0]!].filter((uuid) => uploads[1]!.has(uuid));
  t.ok(spread.length > 0, `${spread.length} upload(s) had requests on both replicas`);
  const first = spread[0];
  if (first) {
    const trail = logs.flatMap((lines, i) => lines.filter((l) => l.uploadUuid === first).map((l) => `${i === 0 ? 'a' : 'b'} ${l.method} ${l.status}`));
    t.comment(`upload ${first}: ${trail.join(', ')}`);
    t.ok(trail.some((s) => / POST 202$/.test(s)), 'it started with a POST (202)');
    t.ok(trail.some((s) => / PUT 201$/.test(s)), 'and completed with a PUT (201)');
  }
});
