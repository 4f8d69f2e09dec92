import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ask } from '../helpers/client.js';
import { cleanEnv, runCli, startCli, stopCli } from '../helpers/cli.js';
import { freePort, onFreePort } from '../helpers/ports.js';
import { makeTestPki } from '../helpers/tls.js';
import { startUpstream } from '../helpers/upstream.js';

// `berth check` as an operator (or the image's health check) runs it: a real process
// against real files, a real upstream and a real running berth.

const DAY = 86_400_000;

function findings(stdout: string): string[][] {
  return stdout
    .trim()
    .split('\n')
    .slice(0, -1)
    // Each finding's first line; its cause, fix and page follow, indented.
    .filter((line) => !line.startsWith(' '))
    .map((line) => {
      const m = /^(ok|warning|problem)\s+(.+?)\s{2,}(.*)$/.exec(line);
      return m ? [m[1]!, m[2]!, m[3]!] : ['unparsed', line, ''];
    });
}

function write(content: string): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'berth-check-')), 'file.pem');
  fs.writeFileSync(file, content);
  return file;
}

/** A registry's answer to GET /v2/ without credentials. */
const REGISTRY_401 = { 'www-authenticate': 'Bearer realm="x"', 'docker-distribution-api-version': 'registry/2.0' };

t.test('a good setup, with berth running: no problems, exit 0; the same findings as doctor\'s, without those that need credentials', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.writeHead(401, REGISTRY_401).end());
  const pki = await makeTestPki(['registry.example.com', 'localhost', '127.0.0.1']);
  const lasting = await pki.issue({ notAfter: new Date(Date.now() + 90 * DAY) }); // well beyond the 14-day warning
  const args = ['--upstream', up.url, '--public-origin', 'https://registry.example.com', '--cert', write(lasting.cert), '--key', write(lasting.key)];
  const berth = await startCli([...args, '--workers', '2', '--listen', '127.0.0.1:0']);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  const run = await runCli(['check', ...args, '--listen', '127.0.0.1:0', '--admin-listen', `127.0.0.1:${berth.adminPort}`]);
  t.equal(run.code, 0, run.stdout + run.stderr);
  t.match(findings(run.stdout), [
    ['ok', 'config', /upstream http:\/\/127\.0\.0\.1:\d+, listen 127\.0\.0\.1:0, workers/],
    ['ok', 'tls-files', /\.pem and .*\.pem load, and the key matches the certificate$/],
    ['warning', 'tls-chain', /^the chain ends at CN=registry\.example\.com, issued by .*: not a public root/],
    ['warning', 'tls-trust', /^a private CA/],
    ['ok', 'tls-expiry', /^valid until .* \((89|90) days\)$/],
    ['ok', 'tls-names', 'the certificate covers registry.example.com'],
    ['ok', 'upstream-reachable', /GET \/v2\/ answered 401 in \d+ ms$/],
    ['ok', 'upstream-scheme', /is plain HTTP behind berth's TLS$/],
    ['ok', 'upstream-registry', /registry\/2\.0/],
    ['ok', 'upstream-challenge', 'answers /v2/ with a Bearer (token) challenge'],
    ['ok', 'berth-ready', `ready: the berth running as pid ${berth.child.pid}, upstream ${up.url}, listen 127.0.0.1:0`],
    ['ok', 'limits-timeouts', /^berth's own: headers 60 s, client idle 10 min/],
  ]);
  t.match(run.stdout, /\nno problems \(2 warnings\)\n$/, 'the private CA: warnings');
  t.match(run.stdout, /^ {35}more: {2}docs\/doctor\/tls-trust\.md$/m, 'each warning names its page');
  const json = JSON.parse((await runCli(['check', '--json', ...args, '--listen', '127.0.0.1:0', '--admin-listen', `127.0.0.1:${berth.adminPort}`])).stdout) as { problems: number; findings: { id: string; area: string }[] };
  t.equal(json.problems, 0);
  t.match(json.findings[0], { id: 'config', area: 'berth' }, '--json: as doctor --json');
  const withCa = await runCli(['check', ...args, '--listen', '127.0.0.1:0', '--ca', pki.caFile, '--admin-listen', `127.0.0.1:${berth.adminPort}`]);
  t.match(findings(withCa.stdout).find((f) => f[1] === 'tls-chain'), ['ok', 'tls-chain', /^complete: 1 certificate, up to CN=/], '--ca: the chain checked up to the private CA');
  t.match(withCa.stdout, /\nno problems \(1 warning\)\n$/);
  const noCa = await runCli(['check', ...args, '--ca', '/nonexistent/ca.crt']);
  t.equal(noCa.code, 1);
  t.match(findings(noCa.stdout), [['problem', 'config', '--ca: cannot read /nonexistent/ca.crt']]);
  t.equal(await stopCli(berth.child), 0);
});

t.test('each kind of bad setup is a problem, saying what and why; exit 1', async (t) => {
  const up = await startUpstream(t, (req, res) => res.writeHead(req.url === '/v2/' ? 200 : 404).end());
  const notRegistry = await startUpstream(t, (_req, res) => res.writeHead(404).end());
  const pki = await makeTestPki(['registry.example.com']);
  const other = await pki.issue();
  const expired = await pki.issue({ notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) });
  const base = ['--upstream', up.url, '--public-origin', 'https://registry.example.com', '--admin-listen', 'off'];
  const cases: [string, string[], Record<string, string>, [string, string, RegExp | string]][] = [
    ['a key that is not the certificate’s', ['--cert', pki.certFile, '--key', write(other.key)], {}, ['problem', 'tls-files', /does not belong to the certificate/]],
    ['an expired certificate', ['--cert', write(expired.cert), '--key', write(expired.key)], {}, ['problem', 'tls-expiry', /^expired on /]],
    ['a missing certificate file', ['--cert', '/nonexistent/tls.crt', '--key', pki.keyFile], {}, ['problem', 'tls-files', /cannot read certificate \/nonexistent\/tls\.crt: ENOENT/]],
    ['names that miss the public host', ['--cert', pki.certFile, '--key', pki.keyFile, '--public-origin', 'https://harbor.example.org'], {}, ['problem', 'tls-names', 'the certificate names DNS:registry.example.com, not harbor.example.org']],
    ['an upstream that is down', ['--cert', pki.certFile, '--key', pki.keyFile, '--upstream', 'http://127.0.0.1:9'], {}, ['problem', 'upstream-reachable', 'http://127.0.0.1:9: GET /v2/ failed: ECONNREFUSED']],
    ['an upstream that is not a registry', ['--cert', pki.certFile, '--key', pki.keyFile, '--upstream', notRegistry.url], {}, ['problem', 'upstream-registry', 'GET /v2/ answered 404 without Docker-Distribution-Api-Version: registry/2.0']],
    ['a bad setting', ['--cert', pki.certFile, '--key', pki.keyFile], { BERTH_TIMEOUTS_HEADERS: 'soon' }, ['problem', 'config', /^timeouts\.headers: expected a duration/]],
  ];
  for (const [name, args, env, expected] of cases) {
    const run = await runCli(['check', ...base, ...args], { env });
    t.equal(run.code, 1, `${name}: exit 1`);
    t.match(
      findings(run.stdout).filter((f) => f[0] === 'problem'),
      [expected],
      `${name}: one problem, named`,
    );
    t.match(run.stdout, /\n1 problem(, \d+ warnings?)?\n$/);
  }
});

t.test('warnings do not fail the check', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.writeHead(200).end('{}'));
  const pki = await makeTestPki(['registry.example.com']);
  const soon = await pki.issue({ notAfter: new Date(Date.now() + 5 * DAY) });
  const run = await runCli(['check', '--upstream', up.url, '--cert', write(soon.cert), '--key', write(soon.key), '--admin-listen', 'off']);
  t.equal(run.code, 0);
  t.match(findings(run.stdout), [
    ['ok', 'config', /./],
    ['warning', 'config', /^publicOrigin and serverNames are unset: host names are not enforced/],
    ['ok', 'tls-files', /./],
    ['warning', 'tls-chain', /./],
    ['warning', 'tls-trust', /./],
    ['warning', 'tls-expiry', /\([45] days\)$/],
    ['warning', 'tls-names', /^publicOrigin is unset: the names clients use cannot be checked/],
    ['ok', 'upstream-reachable', /answered 200 in \d+ ms$/],
    ['ok', 'upstream-scheme', /./],
    ['warning', 'upstream-registry', 'GET /v2/ answered 200, as a registry does, but without Docker-Distribution-Api-Version: registry/2.0'],
    ['warning', 'upstream-challenge', /^answers \/v2\/ with 200: no authentication/],
    ['warning', 'berth-ready', 'admin.listen is off: not checked'],
    ['ok', 'limits-timeouts', /./],
  ]);
  t.match(run.stdout, /\nno problems \(8 warnings\)\n$/);
});

t.test('short timeouts: the warnings berth logs when it starts are check\'s limits-timeouts finding', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.writeHead(401, REGISTRY_401).end());
  const pki = await makeTestPki(['registry.example.com']);
  const base = ['check', '--upstream', up.url, '--cert', pki.certFile, '--key', pki.keyFile, '--admin-listen', 'off'];
  for (const [env, expected] of [
    [{ BERTH_TIMEOUTS_CLIENT_IDLE: '10s' }, /^timeouts\.clientIdle is under 60s/],
    [{ BERTH_TIMEOUTS_UPSTREAM_RESPONSE: '5m' }, /^timeouts\.upstreamResponse is under 15m/],
    [{ BERTH_TIMEOUTS_UPSTREAM_RESPONSE: '0' }, /^timeouts\.upstreamResponse is 0: a hung upstream/],
  ] as const) {
    const run = await runCli(base, { env });
    t.equal(run.code, 0, 'a warning');
    t.match(findings(run.stdout).find((f) => f[1] === 'limits-timeouts'), ['warning', 'limits-timeouts', expected], JSON.stringify(env));
  }
  // clientIdle 0 is no limit at all, not a short one.
  const off = await runCli(base, { env: { BERTH_TIMEOUTS_CLIENT_IDLE: '0' } });
  t.match(findings(off.stdout).find((f) => f[1] === 'limits-timeouts'), ['ok', 'limits-timeouts', /client idle none/]);
});

t.test('a running berth with other settings than those checked: said which berth, and what differs', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.writeHead(401, REGISTRY_401).end());
  const other = await startUpstream(t, (_req, res) => res.writeHead(401, REGISTRY_401).end());
  const pki = await makeTestPki(['registry.example.com']);
  const certFile = write(fs.readFileSync(pki.certFile, 'utf8'));
  const args = ['--public-origin', 'https://registry.example.com', '--cert', certFile, '--key', pki.keyFile, '--listen', '127.0.0.1:0'];
  const berth = await startCli(['--workers', '2', '--upstream', up.url, ...args]);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  const admin = ['--admin-listen', `127.0.0.1:${berth.adminPort}`];
  const ready = async (extra: string[]): Promise<string[] | undefined> => findings((await runCli(['check', ...args, ...admin, ...extra])).stdout).find((f) => f[1] === 'berth-ready');
  t.match(await ready(['--upstream', up.url]), ['ok', 'berth-ready', `ready: the berth running as pid ${berth.child.pid}, upstream ${up.url}, listen 127.0.0.1:0`]);
  t.match(
    await ready(['--upstream', other.url, '--public-origin', 'https://harbor.example.com']),
    ['warning', 'berth-ready', `the berth running as pid ${berth.child.pid} is ready, but serves upstream ${up.url} (checked: ${other.url}); publicOrigin https://registry.example.com (checked: https://harbor.example.com)`],
    'another upstream and public origin than the running berth\'s',
  );
  // The files change; berth has not reloaded them yet (it would within seconds: SIGHUP or its watch).
  const renewed = await pki.issue({ names: ['registry.example.com'] });
  fs.writeFileSync(certFile, renewed.cert);
  t.match(await ready(['--upstream', up.url, '--key', write(renewed.key)]), ['warning', 'berth-ready', `is ready, but serves a certificate other than the one in ${certFile}`], 'a certificate not reloaded yet');
  t.equal(await stopCli(berth.child), 0);
});

t.test('a running berth that is not ready is a problem, with its reasons', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.writeHead(200).end('{}'));
  const pki = await makeTestPki();
  const berth = await startCli(['--workers', '1', '--upstream', up.url, '--listen', '127.0.0.1:0', '--cert', pki.certFile, '--key', pki.keyFile]);
  t.teardown(() => void berth.child.kill('SIGKILL'));
  up.server.close();
  up.server.closeAllConnections();
  const run = await runCli(['check', '--upstream', up.url, '--cert', pki.certFile, '--key', pki.keyFile, '--admin-listen', `127.0.0.1:${berth.adminPort}`]);
  t.equal(run.code, 1);
  t.match(findings(run.stdout).find((f) => f[1] === 'berth-ready'), ['problem', 'berth-ready', /^not ready \(503\): upstream: GET \/v2\/ failed: ECONNREFUSED$/]);
  t.equal(await stopCli(berth.child), 0);
});

t.test('--as-running checks the settings of the running server (flags, BERTH_* environment, working directory), as the image health check does', async (t) => {
  const up = await startUpstream(t, (_req, res) => res.writeHead(401, { 'www-authenticate': 'Bearer realm="x"' }).end());
  const pki = await makeTestPki(['localhost', '127.0.0.1']);
  const lasting = await pki.issue({ notAfter: new Date(Date.now() + 90 * DAY) });
  // The server runs in its own directory, with certificate paths relative to it, the
  // upstream from its environment and the admin port from a flag: none of which the
  // health check's own command line or environment has.
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-running-'));
  fs.mkdirSync(path.join(home, 'tls'));
  fs.writeFileSync(path.join(home, 'tls', 'tls.crt'), lasting.cert);
  fs.writeFileSync(path.join(home, 'tls', 'tls.key'), lasting.key);
  // The admin port is a flag the check must read from the server's command line, so it is
  // chosen here (and chosen again should another process take it first).
  const { berth } = await onFreePort(async (adminPort) => ({
    berth: await startCli(['--workers', '2', '--listen', '127.0.0.1:0', '--cert', 'tls/tls.crt', '--key', 'tls/tls.key', '--admin-listen', `127.0.0.1:${adminPort}`], { cwd: home, env: { BERTH_UPSTREAM: up.url } }),
  }));
  t.teardown(() => void berth.child.kill('SIGKILL'));
  const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-check-cwd-'));

  const own = await runCli(['check'], { cwd: elsewhere, env: { BERTH_UPSTREAM: 'http://127.0.0.1:9' } });
  t.equal(own.code, 1, 'without it, the check tests its own (wrong) settings');

  const run = await runCli(['check', `--as-running=${berth.child.pid}`], { cwd: elsewhere, env: { BERTH_UPSTREAM: 'http://127.0.0.1:9' } });
  t.equal(run.code, 0, run.stdout + run.stderr);
  const found = findings(run.stdout);
  const of = (what: string): string[] | undefined => found.find((f) => f[1] === what && f[0] !== 'warning');
  t.same(found.filter((f) => f[0] === 'problem'), [], 'no problem');
  t.match(of('berth-settings'), ['ok', 'berth-settings', `those of the berth server running as pid ${berth.child.pid} (its flags, BERTH_* environment, working directory)`]);
  t.match(of('config'), ['ok', 'config', `upstream ${up.url}, listen 127.0.0.1:0, workers 2`], 'its upstream (from its environment) and its flags');
  t.match(of('tls-files'), ['ok', 'tls-files', 'tls/tls.crt and tls/tls.key load, and the key matches the certificate'], 'its certificate (paths relative to its directory)');
  t.match(of('tls-expiry'), ['ok', 'tls-expiry', /\((89|90) days\)$/]);
  t.match(of('upstream-reachable'), ['ok', 'upstream-reachable', /GET \/v2\/ answered 401 in \d+ ms$/]);
  t.match(of('berth-ready'), ['ok', 'berth-ready', `ready: the berth running as pid ${berth.child.pid}, upstream ${up.url}, listen 127.0.0.1:0`], 'its admin listener (from its flags), and the same settings');

  // A worker (its pid from the access line of a request it served) has the same command line.
  t.equal((await ask({ port: berth.port, pki }, { path: '/v2/' })).status, 401);
  const worker = (await berth.waitForLine((l) => l.msg === 'request')).pid as number;
  t.not(worker, berth.child.pid);
  const asWorker = await runCli(['check', `--as-running=${worker}`], { cwd: elsewhere });
  t.equal(asWorker.code, 1, 'a worker is not a server of its own');
  t.match(asWorker.stdout, new RegExp(`problem\\s+berth-settings\\s+process ${worker} is a worker of the berth server ${berth.child.pid}: use --as-running=${berth.child.pid}`));
  const notBerth = await runCli(['check', `--as-running=${process.pid}`], { cwd: elsewhere });
  t.equal(notBerth.code, 1);
  t.match(notBerth.stdout, new RegExp(`problem\\s+berth-settings\\s+process ${process.pid} is not a berth server \\(".*node`), 'another process: said so, with its command line');
  t.match((await runCli(['check', '--as-running=abc'])).stdout, /problem\s+berth-settings\s+--as-running=abc: expected a process id/);
  t.equal(await stopCli(berth.child), 0);
});

t.test('--as-running: a berth that runs but whose admin listener refuses connections is a problem (not "not running yet")', async (t) => {
  // A process whose command line is berth's, listening on nothing: a hung or half-started server.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-hung-'));
  fs.writeFileSync(path.join(dir, 'cli.js'), 'setInterval(() => undefined, 1000);\n');
  const adminPort = await freePort();
  const hung = spawn(process.execPath, [path.join(dir, 'cli.js'), '--admin-listen', `127.0.0.1:${adminPort}`], { stdio: 'ignore', env: cleanEnv() });
  t.teardown(() => void hung.kill('SIGKILL'));
  await once(hung, 'spawn');
  const run = await runCli(['check', `--as-running=${hung.pid}`]);
  t.equal(run.code, 1);
  t.match(findings(run.stdout).find((f) => f[1] === 'berth-ready'), ['problem', 'berth-ready', `it runs, but nothing listens on its admin listener 127.0.0.1:${adminPort}`]);
  const own = await runCli(['check', '--admin-listen', `127.0.0.1:${adminPort}`]);
  t.match(findings(own.stdout).find((f) => f[1] === 'berth-ready'), ['warning', 'berth-ready', /berth is not running \(or not yet\)/], 'without it, nothing listening only means berth is not running');
});
