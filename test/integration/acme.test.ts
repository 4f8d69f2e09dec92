import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { runCli, startCli, stopCli, type RunningCli } from '../helpers/cli.js';
import { pebbleMissing, startPebble, type TestPebble } from '../helpers/pebble.js';
import { freePort, onFreePort } from '../helpers/ports.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { until } from '../helpers/wait.js';

// Automatic certificates against a real ACME server: Debian's Pebble, with its DNS
// (pebble-challtestsrv) resolving every name to 127.0.0.1, validating on berth's own ports.

const NAME = 'registry.berth.test';
const skip = pebbleMissing() ?? false;

interface BerthOptions {
  readonly workers?: number;
  readonly challenge?: 'tls-alpn-01' | 'http-01';
  readonly names?: readonly string[];
}

interface Setup {
  readonly pebble: TestPebble;
  readonly upstream: TestUpstream;
  readonly dir: string;
  readonly tlsPort: number;
  readonly httpPort: number;
  /** berth's flags and variables for ACME from Pebble, on the ports Pebble validates on. */
  settings(options?: BerthOptions): { args: string[]; env: Record<string, string> };
  /** Starts berth with those settings. */
  berth(options?: BerthOptions): Promise<RunningCli>;
}

async function setup(t: Test, options: { validitySeconds?: number } = {}): Promise<Setup> {
  const upstream = await startUpstream(
    t,
    (req, res) => {
      if (req.method === 'GET') return void res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' }).end('{}');
      const hash = crypto.createHash('sha256');
      req.on('data', (d: Buffer) => hash.update(d));
      req.on('end', () => res.writeHead(201, { 'docker-content-digest': `sha256:${hash.digest('hex')}`, 'content-length': '0' }).end());
    },
    { streaming: true },
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-acme-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // Pebble is told the ports it validates on; berth then listens on them (another try if one was taken meanwhile).
  return onFreePort(async (tlsPort) => {
    const httpPort = await freePort();
    const pebble = await startPebble(t, { tlsPort, httpPort, ...options });
    const settings: Setup['settings'] = ({ workers = 2, challenge = 'tls-alpn-01', names } = {}) => {
      const args = ['--workers', String(workers), '--listen', `127.0.0.1:${tlsPort}`, '--upstream', upstream.url, '--public-origin', `https://${NAME}`, '--cert-dir', dir];
      args.push('--acme-email', 'ops@berth.test', '--acme-directory', pebble.directory, '--acme-challenge', challenge);
      if (challenge === 'http-01') args.push('--http-listen', `127.0.0.1:${httpPort}`);
      const env: Record<string, string> = { BERTH_ACME_CA: pebble.caFile, ...(names ? { BERTH_ACME_NAMES: names.join(','), BERTH_SERVER_NAMES: names.join(',') } : {}) };
      return { args, env };
    };
    const berth: Setup['berth'] = async (options = {}) => {
      const { args, env } = settings(options);
      const running = await startCli(args, { env });
      t.teardown(() => void running.child.kill('SIGKILL'));
      return running;
    };
    return { pebble, upstream, dir, tlsPort, httpPort, settings, berth };
  });
}

/** A TLS connection for `servername`, verified against `ca` as a client does; its leaf's serial, and GET /v2/'s status. */
function connect(port: number, ca: string, servername = NAME): Promise<{ serial: string; status: number }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.write(`GET /v2/ HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
      let reply = '';
      socket.on('data', (d: Buffer) => (reply += d.toString()));
      socket.on('end', () => resolve({ serial, status: Number(reply.split(' ')[1]) }));
    });
    socket.on('error', reject);
  });
}

function readyz(berth: RunningCli): Promise<{ status: number; body: { checks: { certificate: { ok: boolean; detail: string } }; serving: { certificate: string | null } } }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: berth.adminPort, path: '/readyz' }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(body) }));
      })
      .on('error', reject);
  });
}

const issued = (berth: RunningCli): Promise<Record<string, unknown>> => berth.waitForLine((l) => l.msg === 'ACME certificate issued and in service');

t.test('TLS-ALPN-01 with two workers: issued, served by every worker, verified against the CA; a restart serves the stored certificate and orders nothing', { skip }, async (t) => {
  const s = await setup(t);
  const berth = await s.berth();
  const line = await issued(berth);
  t.match(line, { names: [NAME], serial: /^[0-9A-F]+$/ }, 'issued');
  t.ok(berth.lines.some((l) => l.msg === 'ACME challenge validated' && l.name === NAME && l.challenge === 'tls-alpn-01'), 'through a TLS-ALPN-01 challenge');
  const root = await s.pebble.root();
  // 16 connections: both workers serve it (the kernel puts all on one once in 32,768 runs).
  const served = await Promise.all(Array.from({ length: 16 }, () => connect(s.tlsPort, root)));
  t.same(new Set(served.map((c) => c.serial)), new Set([line.serial]), 'every connection gets the issued certificate, verified against the CA\'s root');
  t.same(new Set(served.map((c) => c.status)), new Set([200]), 'and is proxied');
  const ready = await readyz(berth);
  t.match(ready.body.checks.certificate, { ok: true, detail: /^valid until / }, '/readyz: the certificate check passes');
  const stored = path.join(s.dir, 'acme', `127.0.0.1_${s.pebble.directory.split(':')[2]!.replace('/dir', '')}_dir`);
  t.equal(fs.statSync(path.join(stored, 'account.key')).mode & 0o777, 0o600, 'the account key is kept, mode 0600');
  t.equal(fs.statSync(path.join(stored, `${NAME}.key`)).mode & 0o777, 0o600, 'the certificate key too');
  t.match(fs.readFileSync(path.join(stored, `${NAME}.key`), 'utf8'), /BEGIN PRIVATE KEY/);
  t.equal(crypto.createPrivateKey(fs.readFileSync(path.join(stored, `${NAME}.key`))).asymmetricKeyDetails?.namedCurve, 'prime256v1', 'an ECDSA P-256 key');
  // berth check, with the same settings, against the running berth and the CA's root.
  fs.writeFileSync(path.join(s.dir, 'root.crt'), root);
  const { args, env } = s.settings();
  const check = await runCli(['check', ...args, '--admin-listen', `127.0.0.1:${berth.adminPort}`, '--ca', path.join(s.dir, 'root.crt')], { env });
  t.match(check.stdout, new RegExp(`ok\\s+tls-acme\\s+certificates from ACME \\(${s.pebble.directory.replace(/[.]/g, '\\.')}\\) for ${NAME.replace(/[.]/g, '\\.')} by tls-alpn-01; stored: serial ${line.serial}`), 'check: where the certificate comes from, and the one stored');
  t.match(check.stdout, /ok\s+tls-chain\s+complete/, 'its chain checked up to the CA\'s root');
  t.match(check.stdout, /ok\s+berth-ready\s+ready: the berth running as pid \d+, .*; ACME: next renewal \d{4}-\d\d-\d\dT/, 'and the running berth\'s next renewal');
  t.equal(check.code, 0, check.stdout);
  t.equal(await stopCli(berth.child), 0);

  // The CA is gone: a restart must not need it.
  const orders = s.pebble.orders();
  await s.pebble.stop();
  const again = await s.berth();
  t.match(await again.waitForLine((l) => l.msg === 'ACME certificate loaded from tls.dir'), { serial: line.serial }, 'the restart loads the stored certificate');
  t.equal((await connect(s.tlsPort, root)).serial, line.serial, 'and serves it at once');
  t.equal((await readyz(again)).body.checks.certificate.ok, true);
  t.notOk(again.lines.some((l) => l.msg === 'ACME order placed' || l.msg === 'ACME order failed'), 'no order was tried');
  t.equal(s.pebble.orders(), orders, 'and none reached the CA');
  t.equal(await stopCli(again.child), 0);
});

t.test('HTTP-01 with one process: answered on the plain-HTTP listener, never redirected or forwarded', { skip }, async (t) => {
  const s = await setup(t);
  const berth = await s.berth({ workers: 1, challenge: 'http-01' });
  const line = await issued(berth);
  t.ok(berth.lines.some((l) => l.msg === 'ACME challenge validated' && l.challenge === 'http-01'), 'through an HTTP-01 challenge');
  t.equal((await connect(s.tlsPort, await s.pebble.root())).serial, line.serial, 'served, verified against the CA');
  t.notOk(s.upstream.seen.some((r) => r.url.includes('acme-challenge')), 'no challenge request reached the upstream');
  const unknown = await new Promise<number>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: s.httpPort, path: '/.well-known/acme-challenge/unknown-token', headers: { host: NAME } }, (res) => resolve(res.statusCode!)).on('error', reject);
  });
  t.equal(unknown, 308, 'a token berth does not hold is redirected like any path');
  t.equal(await stopCli(berth.child), 0);
});

t.test('before the first certificate: handshakes fail, /readyz says what berth waits for; the CA unreachable is said in those words', { skip }, async (t) => {
  const s = await setup(t);
  await s.pebble.stop();
  const berth = await s.berth();
  await berth.waitForLine((l) => l.msg === 'no ACME certificate yet: ordering one; handshakes for these names fail until it is issued');
  const failed = await berth.waitForLine((l) => l.msg === `ACME order failed: cannot reach the ACME directory ${s.pebble.directory} (ECONNREFUSED): check acme.directory and that berth can reach it`);
  t.match(failed, { level: 50, attempt: 1, keeping: 'none' }, 'the failure, at error');
  const retry = Number(/^(\d+)s$/.exec(String(failed.retryIn))?.[1]);
  t.ok(retry >= 54 && retry <= 66, `retried in about a minute, not in a tight loop (${failed.retryIn})`);
  const ready = await readyz(berth);
  t.equal(ready.status, 503, '/readyz: 503');
  t.match(ready.body.checks.certificate, { ok: false, detail: /^waiting for the ACME certificate: cannot reach the ACME directory/ }, 'saying what berth waits for, and why');
  t.equal(ready.body.serving.certificate, null);
  const handshake = await connect(s.tlsPort, await makeAnyCa()).then(
    () => 'connected',
    (err: NodeJS.ErrnoException) => err.code ?? err.message,
  );
  t.notOk(handshake === 'connected', `a handshake for the name fails: no certificate is served (${handshake})`);
  t.notMatch(handshake, /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/, 'rather than serving something untrusted');
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(berth.lines.filter((l) => String(l.msg).startsWith('ACME order failed')).length, 1, 'no second attempt within seconds');
  t.equal(await stopCli(berth.child), 0);
});

t.test('a name the CA cannot validate: a clear error naming it and the port, one attempt, no retry storm', { skip }, async (t) => {
  const s = await setup(t);
  // The DNS sends the CA for this name to an address where berth does not listen.
  await s.pebble.resolve('elsewhere.berth.test', '127.0.0.2');
  const berth = await s.berth({ workers: 1, names: [NAME, 'elsewhere.berth.test'] });
  const failed = await berth.waitForLine((l) => String(l.msg).startsWith('ACME order failed'));
  t.match(failed.msg, /the CA could not connect to elsewhere\.berth\.test on port 443: port 443 must be reachable from the internet and lead to berth/, 'names the name, the port and what to fix');
  t.match(failed.problem, { type: /^urn:ietf:params:acme:error:/, detail: /127\.0\.0\.2/ }, 'with the CA\'s problem document');
  t.match((await readyz(berth)).body.checks.certificate.detail, /could not connect to elsewhere\.berth\.test/);
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(s.pebble.orders(), 1, 'one order, not a storm');
  t.equal(await stopCli(berth.child), 0);
});

t.test('renewal at a third of the lifetime left, during a long upload: the upload finishes, the next connection gets the new certificate', { skip }, async (t) => {
  // 21 s certificates: renewed after 13-14 s.
  const s = await setup(t, { validitySeconds: 21 });
  const berth = await s.berth();
  const first = await issued(berth);
  const root = await s.pebble.root();
  t.equal((await connect(s.tlsPort, root)).serial, first.serial);
  // An upload of 8 MiB sent over about 18 s, on a connection opened before the renewal.
  const body = crypto.randomBytes(8 * 1024 * 1024);
  const digest = `sha256:${crypto.createHash('sha256').update(body).digest('hex')}`;
  const answer = new Promise<string>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: s.tlsPort, servername: NAME, ca: root }, () => {
      socket.write(`PUT /v2/lib/blobs/uploads/u1?digest=${digest} HTTP/1.1\r\nHost: ${NAME}\r\nContent-Length: ${body.length}\r\n\r\n`);
      let sent = 0;
      const piece = body.length / 180;
      const timer = setInterval(() => {
        socket.write(body.subarray(sent, sent + piece));
        sent += piece;
        if (sent >= body.length) clearInterval(timer);
      }, 100);
      let reply = '';
      socket.on('data', (d: Buffer) => {
        reply += d.toString();
        if (reply.includes('\r\n\r\n')) resolve(reply);
      });
      socket.on('close', () => reject(new Error(`closed before an answer (${sent} of ${body.length} bytes sent)`)));
    });
    socket.on('error', reject);
  });
  const renewed = await berth.waitForLine((l) => l.msg === 'ACME certificate issued and in service' && l.serial !== first.serial);
  t.ok(await until(async () => (await connect(s.tlsPort, root)).serial === renewed.serial, 3000), 'the next connection gets the new certificate');
  const reply = await answer;
  t.match(reply, /^HTTP\/1\.1 201 /, 'the upload that spanned the renewal finished');
  t.match(reply, new RegExp(`docker-content-digest: ${digest}`, 'i'), 'with every byte');
  t.equal(await stopCli(berth.child), 0);
});

/** A CA no one uses: a client trusting only it refuses any certificate berth might serve. */
async function makeAnyCa(): Promise<string> {
  const { makeTestPki } = await import('../helpers/tls.js');
  return (await makeTestPki()).ca;
}
