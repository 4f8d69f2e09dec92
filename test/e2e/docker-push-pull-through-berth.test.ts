import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startCli } from '../helpers/cli.js';
import { dockerMissing, startDocker, trustRegistryCa } from '../helpers/docker.js';
import { writeOciImage } from '../helpers/oci.js';
import { REGISTRY_PASSWORD, REGISTRY_USER, e2eTools, startRegistry } from '../helpers/registry.js';
import { skopeo } from '../helpers/skopeo.js';
import { makeTestPki } from '../helpers/tls.js';
import { startTokenService } from '../helpers/tokenService.js';

// The client the mission is named after: Docker (Debian's docker.io 20.10) logs in, pushes
// a multi-layer image with a 200 MiB layer, and pulls it back through berth, against the
// real Distribution registry with htpasswd and behind a bearer-token service.

const tools = e2eTools();
const MiB = 1 << 20;
// CI runs this once, on its second pass (Node 24, the image's), where it overlaps the slow
// upload test; the first pass sets TEST_DOCKER=0.
const skip = !tools.ok ? `missing ${tools.missing.join(', ')}` : process.env.TEST_DOCKER === '0' ? 'TEST_DOCKER=0' : (dockerMissing() ?? false);

t.test('docker login, push and pull through berth', { skip, timeout: 600_000 }, async (t) => {
  const docker = await startDocker(t);
  for (const mode of ['htpasswd', 'token'] as const) {
    t.test(`${mode}: the image comes back with the same ID`, async (t) => {
      const tokens = mode === 'token' ? await startTokenService(t, { lifetimeSeconds: 900 }) : undefined;
      const registry = await startRegistry(t, { relativeUrls: false, auth: tokens ? { token: { realm: tokens.url, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.rootCertBundle } } : 'htpasswd' });
      const pki = await makeTestPki();
      const berth = await startCli(['--workers', 'auto', '--upstream', registry.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile]);
      t.teardown(() => void berth.child.kill('SIGKILL'));
      const host = `localhost:${berth.port}`;
      trustRegistryCa(t, host, pki.caFile);
      const work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-docker-'));
      t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
      const image = writeOciImage(path.join(work, 'src'), [200 * MiB + 4321, 2 * MiB, 4096]);
      const ref = `${host}/e2e/docker-${mode}:v1`;
      const tool = skopeo();
      await tool.run(['copy', '--policy', tool.policyFile, '--dest-daemon-host', `unix://${docker.socket}`, `oci:${image.dir}:${image.tag}`, `docker-daemon:${ref}`]);
      const id = (await docker.run(['image', 'inspect', '--format', '{{.Id}}', ref])).stdout.trim();
      t.match(id, /^sha256:[0-9a-f]{64}$/, 'the image is in the daemon');

      const login = await docker.run(['login', '--username', REGISTRY_USER, '--password-stdin', host], REGISTRY_PASSWORD);
      t.match(login.stdout, /Login Succeeded/);
      await docker.run(['push', ref]);
      await berth.waitForLine((l) => l.msg === 'request' && l.method === 'PUT' && String(l.path).includes('/manifests/v1'));
      await docker.run(['image', 'rm', ref]);
      t.rejects(docker.run(['image', 'inspect', ref]), 'gone from the daemon before the pull');
      await docker.run(['pull', ref]);
      t.equal((await docker.run(['image', 'inspect', '--format', '{{.Id}}', ref])).stdout.trim(), id, 'pulled back with the image ID it was pushed with');

      const requests = berth.lines.filter((l) => l.msg === 'request');
      t.notOk(requests.some((l) => (l.status as number) >= 500), 'no request failed with a 5xx');
      t.ok(requests.every((l) => /^docker\/20\.10/.test(String(l.userAgent))), 'every request came from Docker');
      const uploaded = requests.filter((l) => (l.method === 'PATCH' || l.method === 'PUT') && String(l.path).includes('/blobs/uploads/')).reduce((n, l) => n + (l.bytesIn as number), 0);
      t.ok(uploaded > 200 * MiB, `the layers went up through berth (${(uploaded / MiB).toFixed(0)} MiB)`);
      const pulled = requests.filter((l) => l.method === 'GET' && /\/blobs\/sha256:/.test(String(l.path))).reduce((n, l) => n + (l.bytesOut as number), 0);
      t.ok(pulled > 200 * MiB, `and came back down (${(pulled / MiB).toFixed(0)} MiB)`);
      t.ok(requests.some((l) => l.user === REGISTRY_USER && l.repository === `e2e/docker-${mode}`), 'the access lines name the user and the repository');
      if (tokens) t.ok(tokens.seen.some((s) => s.includes('scope=repository%3Ae2e%2Fdocker-token%3Apush%2Cpull') || s.includes('scope=repository%3Ae2e%2Fdocker-token%3Apull%2Cpush')), 'Docker got its push token from the token service');
    });
  }
});
