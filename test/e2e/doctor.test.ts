import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Finding } from '../../src/commands/doctor/findings.js';
import { CLI, NODE_FLAGS, cleanEnv, startCli, type RunningCli } from '../helpers/cli.js';
import { haveNginx, startNginx } from '../helpers/nginx.js';
import { onFreePort } from '../helpers/ports.js';
import { REGISTRY_PASSWORD, REGISTRY_USER, e2eTools, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeTestPki, type TestPki } from '../helpers/tls.js';
import { startTokenService } from '../helpers/tokenService.js';

// berth doctor against the real registry, in a good setup and in each broken one the suite
// can build: an inner nginx (Debian's) that overwrites X-Forwarded-Proto or caps bodies or
// redirects to https, token auth with an internal realm or short-lived tokens, a
// Harbor-shaped realm, expired and wrongly named certificates.

const tools = e2eTools();
const skip = !tools.ok ? `missing ${tools.missing.join(', ')}` : haveNginx || process.env.CI ? false : 'nginx is not installed (apt-get install nginx-light); CI installs it';

interface Report {
  readonly code: number | null;
  readonly findings: Finding[];
  readonly problems: number;
  readonly stderr: string;
}


function doctor(args: readonly string[], password?: string): Promise<Report> {
  return new Promise((resolve) => {
    const withAuth = password === undefined ? [] : ['--user', REGISTRY_USER, '--password-stdin'];
    const child = spawn(process.execPath, [...NODE_FLAGS, CLI, 'doctor', '--json', '--admin-listen', 'off', ...withAuth, ...args], { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(password === undefined ? '' : `${password}\n`);
    child.on('close', (code) => {
      let parsed: { findings: Finding[]; problems: number } = { findings: [], problems: -1 };
      try {
        parsed = JSON.parse(stdout) as typeof parsed;
      } catch {
        stderr += `\n(stdout was not JSON: ${stdout.slice(0, 500)})`;
      }
      resolve({ code, findings: parsed.findings, problems: parsed.problems, stderr });
    });
  });
}

const find = (r: Report, id: string): Finding | undefined => r.findings.find((f) => f.id === id);

/** Asserts one finding's level and that its text mentions what the operator must read. */
function expectFinding(t: Test, r: Report, id: string, level: Finding['level'], mentions: readonly (string | RegExp)[] = []): void {
  const f = find(r, id);
  t.ok(f, `${id} is reported`, { findings: r.findings.map((x) => `${x.level} ${x.id}: ${x.detail}`), stderr: r.stderr });
  if (!f) return;
  t.equal(f.level, level, `${id}: ${level} (${f.detail})`);
  const text = [f.detail, f.cause, f.fix].join(' | ');
  for (const m of mentions) t.match(text, m, `${id} says ${String(m)}`);
}

interface Setup {
  readonly pki: TestPki;
  readonly port: number;
  readonly origin: string;
  readonly berth: RunningCli;
  readonly args: string[];
}

/** berth in front of `upstream` on a port known in advance (publicOrigin names it). */
async function berthFor(t: Test, upstream: string, names?: string[]): Promise<Setup> {
  const pki = await makeTestPki();
  // Longer than the test CA's two days, so the expiry check has nothing to warn about.
  const leaf = await pki.issue({ ...(names ? { names } : {}), notAfter: new Date(Date.now() + 60 * 86_400_000) });
  fs.writeFileSync(pki.certFile, leaf.cert);
  fs.writeFileSync(pki.keyFile, leaf.key);
  // publicOrigin names the port, so it is chosen before berth starts (again if taken first).
  const { port, origin, args, berth } = await onFreePort(async (port) => {
    const origin = `https://localhost:${port}`;
    const args = ['--upstream', upstream, '--listen', `127.0.0.1:${port}`, '--public-origin', origin, '--cert', pki.certFile, '--key', pki.keyFile];
    return { port, origin, args, berth: await startCli(['--workers', '1', ...args]) };
  });
  t.teardown(() => void berth.child.kill('SIGKILL'));
  // doctor asks the running berth's admin listener for /readyz (berth-ready).
  return { pki, port, origin, berth, args: [...args, '--admin-listen', `127.0.0.1:${berth.adminPort}`, '--ca', pki.caFile] };
}

/**
 * Debian's nginx as the inner proxy in front of the registry, as Harbor has one: Host kept,
 * X-Forwarded-Proto as given (an overwriting nginx uses $scheme), body size cap as given.
 */
function innerNginx(t: Test, registryPort: number, options: { xfp: '$scheme' | '$http_x_forwarded_proto'; maxBody: string; extra?: string }): Promise<{ url: string; port: number }> {
  return startNginx(
    t,
    `    client_max_body_size ${options.maxBody};
${options.extra ?? ''}
    location / {
      proxy_pass http://127.0.0.1:${registryPort};
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto ${options.xfp};
      proxy_http_version 1.1;
      proxy_request_buffering off;
      proxy_buffering off;
    }`,
  );
}

/**
 * Upload sessions left in the registry's storage for a repository: an upload directory
 * with its data or start time. (Distribution 2.8 writes a stray hashstates/ file back after
 * deleting a cancelled upload's directory; without data and startedat it is no session:
 * the registry answers BLOB_UPLOAD_UNKNOWN for it.)
 */
function uploadsLeft(registry: TestRegistry, repository: string): string[] {
  const dir = path.join(registry.root, 'data/docker/registry/v2/repositories', repository, '_uploads');
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((uuid) => ['data', 'startedat'].some((f) => fs.existsSync(path.join(dir, uuid, f))));
}

t.test('doctor', { skip }, async (t) => {
  t.test('a good setup: every check passes, and the scratch uploads leave nothing behind', async (t) => {
    const registry = await startRegistry(t, { relativeUrls: false });
    const s = await berthFor(t, registry.url);
    const r = await doctor([...s.args, '--repository', 'doctor/good'], REGISTRY_PASSWORD);
    t.equal(r.code, 0, 'exit 0', { stderr: r.stderr });
    t.equal(r.problems, 0);
    for (const id of ['config', 'tls-files', 'tls-chain', 'tls-expiry', 'tls-names', 'upstream-reachable', 'upstream-registry', 'upstream-challenge', 'upstream-scheme', 'berth-running', 'berth-ready', 'auth-realm', 'auth-token', 'upload-location', 'upload-forwarded-headers', 'upload-cleanup', 'storage-redirect', 'limits-body-size', 'throughput', 'limits-timeouts']) {
      expectFinding(t, r, id, 'ok');
    }
    expectFinding(t, r, 'tls-trust', 'warning', ['private CA', '/etc/docker/certs.d/localhost:']);
    expectFinding(t, r, 'upload-location', 'ok', ['absolute']);
    expectFinding(t, r, 'throughput', 'ok', ['through berth', /\d+(\.\d)? MB\/s/]);
    t.same(uploadsLeft(registry, 'doctor/good'), [], 'no upload session left in the registry');
    const started = fs.readdirSync(path.join(registry.root, 'data/docker/registry/v2/repositories/doctor/good/_uploads'));
    t.equal(started.length, 3, 'doctor started three uploads (direct, through berth, timed)');
    const patches = s.berth.lines.filter((l) => l.msg === 'request' && l.method === 'PATCH');
    t.ok(patches.some((l) => l.status === 202 && (l.bytesIn as number) === 16 << 20), 'the timed 16 MiB upload went through berth');
  });

  t.test('an inner nginx that overwrites X-Forwarded-Proto: http:// Locations, rewritten by berth, and said so', async (t) => {
    const registry = await startRegistry(t, { relativeUrls: false });
    const nginx = await innerNginx(t, registry.port, { xfp: '$scheme', maxBody: '0' });
    const s = await berthFor(t, nginx.url);
    const r = await doctor([...s.args, '--repository', 'doctor/xfp'], REGISTRY_PASSWORD);
    expectFinding(t, r, 'upload-forwarded-headers', 'warning', ['X-Forwarded-Proto: https', 'http://localhost:', 'proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto', 'Harbor']);
    expectFinding(t, r, 'upload-location', 'ok', ['absolute (http://localhost:', `berth rewrites it to ${s.origin}`]);
    t.equal(r.code, 0, 'a warning, not a problem: pushes through berth work');
    t.same(uploadsLeft(registry, 'doctor/xfp'), [], 'no upload session left');
  });

  t.test('blob GETs redirected to object storage: followed as a client would, from here', async (t) => {
    // The "object storage": https on localhost, serving the registry's own storage files,
    // with a certificate set once the CA clients trust (berth's, given to doctor) exists.
    let root = '';
    const storage = https.createServer((req, res) => {
      const file = path.join(root, 'data', new URL(req.url!, 'https://storage').pathname);
      if (!file.startsWith(path.join(root, 'data')) || !fs.existsSync(file)) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(fs.readFileSync(file));
    });
    await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve));
    t.teardown(() => void storage.close());
    const storagePort = (storage.address() as AddressInfo).port;
    const registry = await startRegistry(t, { relativeUrls: false, storageRedirect: `https://localhost:${storagePort}` });
    root = registry.root;
    const s = await berthFor(t, registry.url);
    const trusted = await s.pki.issue();
    storage.setSecureContext({ cert: trusted.cert, key: trusted.key });
    const r = await doctor([...s.args, '--repository', 'doctor/storage'], REGISTRY_PASSWORD);
    expectFinding(t, r, 'storage-redirect', 'ok', [`redirected (307) to https://localhost:${storagePort}`, 'the certificate verifies and it served the blob']);

    // A certificate from a CA clients were not given.
    const other = await makeTestPki();
    storage.setSecureContext({ cert: other.cert, key: other.key });
    const untrusted = await doctor([...s.args, '--repository', 'doctor/storage'], REGISTRY_PASSWORD);
    expectFinding(t, untrusted, 'storage-redirect', 'problem', ['certificate does not verify', 'storage.redirect.disable: true']);
  });

  t.test('blob GETs redirected to a storage name clients cannot resolve', async (t) => {
    const registry = await startRegistry(t, { relativeUrls: false, storageRedirect: 'https://minio.berth-test.invalid:9000' });
    const s = await berthFor(t, registry.url);
    const r = await doctor([...s.args, '--repository', 'doctor/storage'], REGISTRY_PASSWORD);
    expectFinding(t, r, 'storage-redirect', 'problem', ['minio.berth-test.invalid does not resolve', 'Harbor storage_service.redirect.disable: true']);
    t.equal(r.code, 1, 'exit 1');
  });

  t.test('an inner nginx with a small client_max_body_size: 413, with the fix', async (t) => {
    const registry = await startRegistry(t, { relativeUrls: true });
    const nginx = await innerNginx(t, registry.port, { xfp: '$http_x_forwarded_proto', maxBody: '1m' });
    const s = await berthFor(t, nginx.url);
    const r = await doctor([...s.args, '--repository', 'doctor/cap'], REGISTRY_PASSWORD);
    expectFinding(t, r, 'limits-body-size', 'problem', ['413', 'client_max_body_size 0', 'berth has none', /answered by "nginx[^"]*" between berth and the registry, not the registry/]);
    expectFinding(t, r, 'upload-location', 'ok', ['relative']);
    t.equal(r.code, 1, 'exit 1');
    t.same(uploadsLeft(registry, 'doctor/cap'), [], 'no upload session left');
  });

  t.test('token auth with the realm on an internal host over http, and one-minute tokens', async (t) => {
    const tokens = await startTokenService(t, { lifetimeSeconds: 60 });
    const registry = await startRegistry(t, { relativeUrls: false, auth: { token: { realm: tokens.url, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.rootCertBundle } } });
    const s = await berthFor(t, registry.url);
    const r = await doctor([...s.args, '--repository', 'doctor/token'], REGISTRY_PASSWORD);
    expectFinding(t, r, 'auth-realm', 'problem', [tokens.url, 'auth.token.realm', 'external_url']);
    expectFinding(t, r, 'auth-token', 'ok', ['60 s']);
    expectFinding(t, r, 'auth-token-lifetime', 'warning', ['tokens last 60 s', 'MB/s', 'a 30 GB image needs', "raise the token service's expiry"]);
    expectFinding(t, r, 'upload-location', 'ok');
    expectFinding(t, r, 'throughput', 'ok');
    t.ok(tokens.seen.some((l) => l.includes('scope=repository%3Adoctor%2Ftoken%3Apull%2Cpush%2Cdelete')), 'the token was asked for the scratch repository');
    t.equal(r.code, 1);
    t.same(uploadsLeft(registry, 'doctor/token'), [], 'no upload session left');
  });

  t.test('Harbor-shaped: /service/token on the public host over http (external_url unset), 30-minute tokens', async (t) => {
    // The realm, berth's listener and publicOrigin all name the port: the whole setup is
    // made for it (and made again on another should a process take it first).
    const { port, realm, args, pki, berth } = await onFreePort(async (port) => {
      const tokens = await startTokenService(t, { lifetimeSeconds: 1800, path: '/service/token' });
      const realm = `http://localhost:${port}/service/token`;
      const registry = await startRegistry(t, { relativeUrls: false, auth: { token: { realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.rootCertBundle } } });
      // Harbor's nginx: /service/ to core (here the token service), /v2/ to the registry.
      const nginx = await innerNginx(t, registry.port, {
        xfp: '$http_x_forwarded_proto',
        maxBody: '0',
        extra: `    location /service/ { proxy_pass http://127.0.0.1:${tokens.port}; proxy_set_header Host $http_host; }`,
      });
      const pki = await makeTestPki();
      const args = ['--upstream', nginx.url, '--listen', `127.0.0.1:${port}`, '--public-origin', `https://localhost:${port}`, '--cert', pki.certFile, '--key', pki.keyFile];
      return { port, realm, args, pki, berth: await startCli(['--workers', '1', ...args]) };
    });
    const origin = `https://localhost:${port}`;
    t.teardown(() => void berth.child.kill('SIGKILL'));
    const r = await doctor([...args, '--ca', pki.caFile, '--repository', 'library/doctor'], REGISTRY_PASSWORD);
    expectFinding(t, r, 'auth-realm', 'warning', [realm, `berth rewrites it to https://localhost:${port}/service/token`]);
    expectFinding(t, r, 'auth-harbor-external-url', 'warning', [`external_url: ${origin}`, './prepare']);
    expectFinding(t, r, 'auth-token', 'ok', ['30 min']);
    const lifetime = find(r, 'auth-token-lifetime');
    t.match(lifetime?.detail ?? '', /tokens last 30 min: at [\d.]+ MB\/s \(measured here\) a push of up to [\d.]+ [GT]B finishes in time; a 30 GB image needs/, 'the 30-minute default against a 30 GB image, at the measured rate');
    t.ok(berth.lines.some((l) => l.msg === 'request' && String(l.path).startsWith('/service/token')), 'the token came through berth, as a client gets it');
    t.equal(r.code, 0, 'warnings only');
  });

  t.test('an expired and a wrongly named certificate', async (t) => {
    const registry = await startRegistry(t, { relativeUrls: false });
    const pki = await makeTestPki();
    const dir = t.testdir({});
    const write = (name: string, text: string): string => (fs.writeFileSync(path.join(dir, name), text), path.join(dir, name));
    const expired = await pki.issue({ names: ['registry.example.com'], notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    const base = ['--upstream', registry.url, '--listen', '127.0.0.1:1', '--public-origin', 'https://registry.example.com', '--ca', pki.caFile];
    const r1 = await doctor([...base, '--cert', write('expired.crt', expired.cert), '--key', write('expired.key', expired.key)]);
    expectFinding(t, r1, 'tls-expiry', 'problem', ['expired on', 'x509: certificate has expired', 'renew it']);
    expectFinding(t, r1, 'tls-names', 'ok');
    expectFinding(t, r1, 'berth-running', 'warning', ['no berth answers']);
    t.equal(r1.code, 1);
    const other = await pki.issue({ names: ['other.example.org'], notAfter: new Date(Date.now() + 60 * 86_400_000) });
    const r2 = await doctor([...base, '--cert', write('other.crt', other.cert), '--key', write('other.key', other.key)]);
    expectFinding(t, r2, 'tls-names', 'problem', ['DNS:other.example.org', 'not registry.example.com', 'subjectAltName includes registry.example.com']);
    expectFinding(t, r2, 'tls-expiry', 'ok');
    t.equal(r2.code, 1);
    const r3 = await doctor([...base, '--cert', write('mismatch.crt', other.cert), '--key', write('mismatch.key', expired.key)]);
    expectFinding(t, r3, 'tls-files', 'problem', ['key']);
  });

  t.test('an upstream that redirects to https: the loop, and how to undo it', async (t) => {
    const nginx = await startNginx(t, '    location / { return 301 https://$host$request_uri; }');
    const s = await berthFor(t, nginx.url);
    const r = await doctor(s.args);
    expectFinding(t, r, 'upstream-redirect', 'problem', ['301', 'https://localhost', 'loops', 'harbor.yml', 'upstream: https://']);
    t.notOk(find(r, 'upload-location'), 'no upload is tried against it');
    t.equal(r.code, 1);
  });

  t.test('a connection cut during a large body between berth and the registry', async (t) => {
    const registry = await startRegistry(t, { relativeUrls: false });
    // A middlebox that drops any connection once it has carried 4 MiB towards the registry.
    const relay = net.createServer((client) => {
      const server = net.connect(registry.port, '127.0.0.1');
      let carried = 0;
      const cut = (): void => {
        client.destroy();
        server.destroy();
      };
      client.on('data', (d: Buffer) => {
        carried += d.length;
        if (carried > 4 << 20) cut();
        else server.write(d);
      });
      server.pipe(client);
      client.on('error', cut).on('close', cut);
      server.on('error', cut).on('close', cut);
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    t.teardown(() => relay.close());
    const s = await berthFor(t, `http://127.0.0.1:${(relay.address() as net.AddressInfo).port}`);
    const r = await doctor([...s.args, '--repository', 'doctor/cut'], REGISTRY_PASSWORD);
    expectFinding(t, r, 'limits-cut-connection', 'problem', ['16 MiB upload through berth failed between berth and the registry', 'berth: the registry closed the connection before answering', 'load balancer idle timeout']);
    expectFinding(t, r, 'upload-location', 'ok');
    t.notOk(find(r, 'throughput'), 'no rate from a cut upload');
    t.equal(r.code, 1);
    // The registry refuses to cancel an upload whose body was cut (its URL's signed state is
    // stale): doctor says so, and the other two uploads are gone.
    const cleanups = r.findings.filter((f) => f.id === 'upload-cleanup');
    t.ok(cleanups.some((f) => f.level === 'warning' && /the cut upload could not be cancelled/.test(f.detail) && /uploadpurging/.test(f.fix ?? '')), 'the cut upload left behind is reported', { cleanups });
    t.equal(uploadsLeft(registry, 'doctor/cut').length, 1, 'only the cut upload is left, for the registry to purge');
  });

  t.test('what berth serves is verified as a client verifies it', async (t) => {
    const registry = await startRegistry(t, { relativeUrls: false });
    const s = await berthFor(t, registry.url);
    const withoutCa = s.args.filter((a, i, all) => a !== '--ca' && all[i - 1] !== '--ca');
    const r1 = await doctor(withoutCa);
    expectFinding(t, r1, 'berth-running', 'warning', ['a CA doctor does not know', '--ca FILE']);
    t.notOk(find(r1, 'auth-realm')?.data?.throughBerth, 'nothing is asked through a berth whose certificate did not verify');
    // The files now hold a certificate for another name, but berth still serves the old one
    // until it reloads: doctor tells the two apart.
    const other = await s.pki.issue({ names: ['other.example.org'], notAfter: new Date(Date.now() + 60 * 86_400_000) });
    const dir = t.testdir({ 'other.crt': other.cert, 'other.key': other.key });
    const swapped = s.args.map((a, i, all) => (all[i - 1] === '--cert' ? path.join(dir, 'other.crt') : all[i - 1] === '--key' ? path.join(dir, 'other.key') : a));
    const r2 = await doctor(swapped);
    expectFinding(t, r2, 'tls-names', 'problem', ['not localhost']);
    expectFinding(t, r2, 'berth-running', 'ok', ['its certificate verifies']);
    // And berth serving a certificate that does not cover publicOrigin's name.
    const wrong = await berthFor(t, registry.url, ['other.example.org']);
    const r3 = await doctor(wrong.args);
    expectFinding(t, r3, 'berth-running', 'problem', ['clients refuse the certificate', 'ERR_TLS_CERT_ALTNAME_INVALID']);
  });

  t.test('without credentials: what was not checked, and how to check it', async (t) => {
    const registry = await startRegistry(t, { relativeUrls: false });
    const s = await berthFor(t, registry.url);
    const r = await doctor(s.args);
    expectFinding(t, r, 'auth-token', 'warning', ['no credentials', '--password-stdin']);
    t.notOk(find(r, 'throughput'), 'no upload without credentials');
    t.equal(r.code, 0);
  });
});
