import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { makeTestPki } from '../helpers/tls.js';
import { runCli } from '../helpers/cli.js';

/** A bad config stops start-up with one line naming the key, exit code 2, no stack trace. */
function assertOneLine(t: Test, result: { code: number | null; stderr: string; stdout: string }, pattern: RegExp): void {
  t.equal(result.code, 2, 'exit code 2');
  const lines = result.stderr.trimEnd().split('\n');
  t.equal(lines.length, 1, `one line: ${result.stderr.trimEnd()}`);
  t.match(lines[0], pattern);
  t.notMatch(result.stderr, /\n\s+at /, 'no stack trace');
  t.equal(result.stdout, '', 'nothing on stdout');
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cli-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const write = (name: string, text: string): string => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
};

t.test('a flag with a bad URL', async (t) => {
  assertOneLine(t, await runCli(['--upstream', 'registry:5000'], { cwd: dir }), /^berth: config error: upstream: expected an absolute http or https URL.*\(from --upstream\)$/);
});

t.test('an unknown key in the YAML file', async (t) => {
  const file = write('unknown.yaml', 'upstream: http://r:5000\ntimeouts:\n  upstreamRead: 5m\n');
  assertOneLine(t, await runCli(['--config', file], { cwd: dir }), /^berth: config error: timeouts\.upstreamRead: unknown key.*\(from .*unknown\.yaml\)$/);
});

t.test('a wrong type in the YAML file', async (t) => {
  const file = write('type.yaml', 'trustedProxies: {a: 1}\n');
  assertOneLine(t, await runCli(['--config', file], { cwd: dir }), /^berth: config error: trustedProxies: expected a list of CIDRs/);
});

t.test('YAML that does not parse', async (t) => {
  const file = write('broken.yaml', 'upstream: [http://r\n');
  assertOneLine(t, await runCli(['--config', file], { cwd: dir }), /^berth: config error: .*broken\.yaml: not valid YAML/);
});

t.test('a config file that does not exist', async (t) => {
  assertOneLine(t, await runCli(['--config', path.join(dir, 'nope.yaml')], { cwd: dir }), /^berth: config error: --config: cannot read .*nope\.yaml: ENOENT$/);
});

t.test('a bad CIDR from the environment', async (t) => {
  assertOneLine(t, await runCli([], { cwd: dir, env: { BERTH_TRUSTED_PROXIES: '10.0.0.0/8,10.300.0.0/16' } }), /^berth: config error: trustedProxies: .*10\.300\.0\.0\/16.*\(from BERTH_TRUSTED_PROXIES\)$/);
});

t.test('an unknown BERTH_ variable', async (t) => {
  assertOneLine(t, await runCli([], { cwd: dir, env: { BERTH_UPSTRAEM: 'http://r' } }), /^berth: config error: BERTH_UPSTRAEM: unknown environment variable/);
});

t.test('an unknown flag', async (t) => {
  assertOneLine(t, await runCli(['--upstraem', 'http://r'], { cwd: dir }), /^berth: config error: command line: .*upstraem/);
});

t.test('an unreadable certificate', async (t) => {
  const key = write('only.key', 'x');
  assertOneLine(t, await runCli(['--cert', path.join(dir, 'missing.crt'), '--key', key], { cwd: dir }), /^berth: config error: tls\.cert: cannot read certificate .*missing\.crt: ENOENT$/);
});

t.test('a key that does not belong to the certificate', async (t) => {
  const a = await makeTestPki();
  const b = await makeTestPki();
  assertOneLine(t, await runCli(['--cert', a.certFile, '--key', b.keyFile], { cwd: dir }), /^berth: config error: tls\.key: the key in .* does not belong to the certificate/);
});

t.test('a file that is not a certificate', async (t) => {
  const a = await makeTestPki();
  const bogus = write('bogus.crt', 'hello');
  assertOneLine(t, await runCli(['--cert', bogus, '--key', a.keyFile], { cwd: dir }), /^berth: config error: tls\.cert: expected a PEM certificate/);
});

t.test('--help lists every key with its variable and default', async (t) => {
  const result = await runCli(['--help'], { cwd: dir });
  t.equal(result.code, 0);
  for (const text of ['--upstream', 'BERTH_TIMEOUTS_UPSTREAM_RESPONSE', 'timeouts.clientIdle', 'default :8443']) t.match(result.stdout, text);
});

t.test('every command answers --help and -h with its own usage, without running; help, version and -v work', async (t) => {
  // The upstream is a dead address: a check that ran would report it as a problem (exit 1).
  const env = { BERTH_UPSTREAM: 'http://127.0.0.1:9' };
  for (const args of [['check', '--help'], ['check', '-h'], ['check', '--as-running', '-h'], ['help', 'check']]) {
    const result = await runCli(args, { cwd: dir, env });
    t.equal(result.code, 0, `berth ${args.join(' ')}: exit 0`);
    t.match(result.stdout, /^usage: berth check /, `berth ${args.join(' ')}: check's usage`);
    t.notMatch(result.stdout, /^(ok|warning|problem)\s/m, 'no finding: nothing was checked');
  }
  for (const args of [['doctor', '--help'], ['doctor', '-h'], ['help', 'doctor']]) {
    const result = await runCli(args, { cwd: dir, env });
    t.equal(result.code, 0, `berth ${args.join(' ')}: exit 0`);
    t.match(result.stdout, /^usage: berth doctor /, `berth ${args.join(' ')}: doctor's usage`);
  }
  for (const args of [['help'], ['-h'], ['--help']]) {
    const result = await runCli(args, { cwd: dir, env });
    t.equal(result.code, 0);
    t.match(result.stdout, /^berth: a TLS front/, `berth ${args.join(' ')}: berth's usage`);
  }
  const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const args of [['-v'], ['--version'], ['version']]) {
    const result = await runCli(args, { cwd: dir, env });
    t.same([result.code, result.stdout], [0, `berth ${pkg.version}\n`], `berth ${args.join(' ')}`);
  }
  assertOneLine(t, await runCli(['chek'], { cwd: dir, env }), /^berth: unknown command "chek": .*check, doctor, help and version/);
  assertOneLine(t, await runCli(['help', 'chek'], { cwd: dir, env }), /^berth: help: no command "chek"; the commands are check, doctor$/);
});

t.test('config/berth.yaml in the working directory is read when present', async (t) => {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cwd-'));
  t.teardown(() => fs.rmSync(cwd, { recursive: true, force: true }));
  fs.mkdirSync(path.join(cwd, 'config'));
  fs.writeFileSync(path.join(cwd, 'config', 'berth.yaml'), 'log:\n  level: loud\n');
  assertOneLine(t, await runCli([], { cwd }), /^berth: config error: log\.level: expected one of .* got "loud" \(from config\/berth\.yaml\)$/);
  assertOneLine(t, await runCli(['--log-level', 'chatty'], { cwd }), /^berth: config error: log\.level: .*"chatty" \(from --log-level\)$/, );
});
