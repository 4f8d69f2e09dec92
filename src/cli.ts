#!/usr/bin/env -S node --max-semi-space-size=4 --no-parallel-scavenge --expose-gc
// The young generation's size and collection (WORKER_V8_FLAGS, server/cluster.ts, says
// why); --expose-gc: BodyGarbage collects it as bodies are relayed (proxy/bodyGarbage.ts).
import asyncHooks from 'node:async_hooks';
import fs from 'node:fs';
import { KEYS, envName } from './config/schema.js';
import { configFileIn, loadConfig, parseFlags } from './config/load.js';
import { ConfigError } from './config/validate.js';
import { formatJson, formatText } from './commands/doctor/findings.js';
import { createLogger } from './observe/logger.js';

// The commands and the server are loaded when they run: `berth check` need not load the proxy
// (its transport, prom-client), nor the server the doctor. Every berth process starts this way,
// workers included, so what it loads up front is paid once per process.
const checkCommand = () => import('./commands/check.js');
const doctorCommand = () => import('./commands/doctor/index.js');

function usage(): string {
  const lines = [
    'berth: a TLS front for Harbor and OCI/Docker registries',
    '',
    'usage: berth [--config FILE] [--upstream URL] [--listen HOST:PORT] [--cert FILE --key FILE] [...]',
    '       berth check [same options]   check the config, the certificate, the upstream and the running',
    '                                    berth (its admin /readyz); exit 0 only if nothing is a problem',
    '       berth check --as-running[=PID]  the same, on the settings of the berth server running here',
    '                                    (PID 1 or under an init): its flags, BERTH_* variables, directory',
    '       berth doctor [same options] [--user U --password-stdin] [--repository NAME] [--json]',
    '                                    diagnose the registry setup end to end: TLS, upstream, auth, upload',
    '                                    URLs, throughput, limits; each problem with its fix (berth doctor --help)',
    '       berth help [check|doctor]    this text, or a command\'s (also: berth check --help)',
    '       berth version                the version (also: berth --version, berth -v)',
    '',
    'Settings come from the YAML file (--config, $BERTH_CONFIG, or config/berth.yaml when present),',
    'then BERTH_* environment variables, then flags; each later one wins.',
    '',
    '  --config, -c FILE            YAML configuration file',
  ];
  for (const spec of KEYS) {
    const flag = spec.flag ? `--${spec.flag} VALUE` : '';
    const def = Array.isArray(spec.default) ? `[${spec.default.join(', ')}]` : (spec.default ?? 'unset');
    lines.push(`  ${flag.padEnd(28)} ${spec.path} (${envName(spec.path)}; default ${def})`);
    lines.push(`  ${''.padEnd(28)}   ${spec.doc}`);
  }
  lines.push('  --help, -h                   this text', '  --version, -v                the version');
  return lines.join('\n') + '\n';
}

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => (text += d));
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', reject);
  });
}

function fail(message: string, code: number): never {
  process.stderr.write(`berth: ${message}\n`);
  process.exit(code);
}

/** The subcommands, and what `berth help COMMAND` prints for each. */
const COMMAND_USAGE: Readonly<Record<string, () => Promise<string>>> = {
  check: async () => (await checkCommand()).CHECK_USAGE,
  doctor: async () => (await doctorCommand()).DOCTOR_USAGE,
};

const asksForHelp = (argv: readonly string[]): boolean => argv.includes('--help') || argv.includes('-h');

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return `berth ${pkg.version}\n`;
}

async function main(argv: readonly string[]): Promise<void> {
  const command = argv[0];
  if (command === 'help') {
    const topic = argv[1] === undefined ? async () => usage() : COMMAND_USAGE[argv[1]];
    if (topic === undefined) fail(`help: no command "${argv[1]}"; the commands are ${Object.keys(COMMAND_USAGE).join(', ')}`, 2);
    process.stdout.write(await topic());
    return;
  }
  if (command === 'version') {
    process.stdout.write(version());
    return;
  }
  if (command === 'check') {
    const { CHECK_USAGE, check } = await checkCommand();
    if (asksForHelp(argv)) {
      process.stdout.write(CHECK_USAGE);
      return;
    }
    const args = argv.slice(1);
    const findings = await check(args.filter((a) => a !== '--json'), process.env);
    process.stdout.write(args.includes('--json') ? formatJson(findings) : formatText(findings));
    process.exitCode = findings.some((f) => f.level === 'problem') ? 1 : 0;
    return;
  }
  if (command === 'doctor') {
    const { DOCTOR_USAGE, doctor, parseDoctorArgs } = await doctorCommand();
    if (asksForHelp(argv)) {
      process.stdout.write(DOCTOR_USAGE);
      return;
    }
    const options = parseDoctorArgs(argv.slice(1));
    const findings = await doctor(options, process.env, readStdin);
    process.stdout.write(options.json ? formatJson(findings) : formatText(findings));
    process.exitCode = findings.some((f) => f.level === 'problem') ? 1 : 0;
    return;
  }
  if (command !== undefined && !command.startsWith('-')) {
    fail(`unknown command "${command}": berth alone runs the proxy; its commands are check, doctor, help and version (berth --help)`, 2);
  }
  const args = parseFlags(argv);
  if (args.help) {
    process.stdout.write(usage());
    return;
  }
  if (args.version) {
    process.stdout.write(version());
    return;
  }
  const config = loadConfig(args, process.env);
  // SIGHUP, and a change of the config file, read the settings again: the same file, variables and flags.
  const { run } = await import('./server/run.js');
  await run(config, createLogger(config.log), { load: () => loadConfig(args, process.env), file: configFileIn(args, process.env) });
}

// Node settles how it carries async context (Node 24: AsyncContextFrame) the first time something
// asks, and only then puts the active versions of its functions in place. Every callback queued
// before that (a worker's start-up exchanges with the primary queue ten) teaches V8 both
// versions, and the optimized process.nextTick then builds each of its tick objects through the
// runtime: a few µs more per request in every worker (docs/performance.md, "Workers"). Asking
// here, before anything is queued, settles it first. The getter's answer itself is not needed.
void asyncHooks.AsyncLocalStorage;

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) fail(`config error: ${err.message}`, 2);
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    fail(`cannot listen: ${(err as Error).message}`, 1);
  }
  fail(`could not start: ${(err as Error).stack ?? String(err)}`, 1);
});
