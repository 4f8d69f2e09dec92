import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, parseFlags } from '../config/load.js';
import { ConfigError, type Config } from '../config/validate.js';
import { readyFinding } from './doctor/berth.js';
import { configFindings } from './doctor/config.js';
import { doctorContext } from './doctor/context.js';
import type { Finding } from './doctor/findings.js';
import { timeoutFindings } from './doctor/limits.js';
import { tlsFindings } from './doctor/tls.js';
import { upstreamFindings } from './doctor/upstream.js';
import { findRunningServer, type RunningServer } from './running.js';

/**
 * `berth check`: the fast, local part of `berth doctor` (the same checks, findings and
 * pages): the settings as berth would start with them, the certificate files, the
 * upstream's GET /v2/, berth's timeouts and the running berth's readiness when its admin
 * listener answers. No credentials, no uploads, no connection through berth's TLS
 * listener. Exit 0 only when nothing is a problem; the container image uses it as its
 * health check.
 */

export const CHECK_USAGE = `usage: berth check [--config FILE] [berth flags] [--ca FILE] [--json]
       berth check --as-running[=PID]

Checks the setup as berth would start with it: the settings, the certificate and key (they
match, the chain, the names, the expiry), the upstream (GET /v2/), berth's timeouts, and the
running berth's readiness on its admin listener: the fast part of berth doctor, with the
same finding ids (each explained in docs/doctor/<id>.md). One line per finding; exit 0 only
if nothing is a problem (the image's HEALTHCHECK).

  --as-running[=PID]    check the settings of the berth server running here instead (PID,
                        or the one berth server found: PID 1 in a container): its flags,
                        BERTH_* environment and working directory
  berth flags           as for berth itself (berth --help): the settings to check
  --ca FILE             the private CA your clients trust, to check the certificate chain up to it
  --json                the findings as JSON, as berth doctor --json
  --help, -h            this text
`;

const PROBE_TIMEOUT_MS = 5000;

export async function check(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<Finding[]> {
  const findings: Finding[] = [];
  // Before --as-running may enter the server's directory: a relative --ca is this command's.
  let ca: string | undefined;
  try {
    ({ ca, argv } = takeCa(argv));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return [{ id: 'config', area: 'berth', level: 'problem', detail: err.message }];
  }
  const ofRunningServer = argv.some(isAsRunning);
  if (ofRunningServer) {
    const running = asRunning(argv, env);
    findings.push(running.finding);
    if (running.finding.level === 'problem') return findings;
    argv = running.argv;
    env = running.env;
  }
  let config: Config;
  try {
    config = loadConfig(parseFlags(argv), env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return [...findings, { id: 'config', area: 'berth', level: 'problem', detail: err.message }];
  }
  // In doctor's order, without what needs credentials, uploads or a TLS connection.
  findings.push(...configFindings(config), ...tlsFindings(config, ca));
  await upstreamFindings(doctorContext(config, { timeoutMs: PROBE_TIMEOUT_MS }), findings);
  findings.push(await readyFinding(config, PROBE_TIMEOUT_MS, ofRunningServer), ...timeoutFindings(config));
  return findings;
}

/** --ca FILE (or --ca=FILE): the private CA clients trust, as doctor's. */
function takeCa(argv: readonly string[]): { ca: string | undefined; argv: readonly string[] } {
  const at = argv.findIndex((arg) => arg === '--ca' || arg.startsWith('--ca='));
  if (at < 0) return { ca: undefined, argv };
  const inline = argv[at]!.startsWith('--ca=');
  const ca = inline ? argv[at]!.slice('--ca='.length) : argv[at + 1];
  if (!ca || ca.startsWith('--')) throw new ConfigError('--ca', 'needs a file');
  if (!fs.existsSync(ca)) throw new ConfigError('--ca', `cannot read ${ca}`);
  return { ca: path.resolve(ca), argv: [...argv.slice(0, at), ...argv.slice(at + (inline ? 1 : 2))] };
}

const isAsRunning = (arg: string): boolean => arg === '--as-running' || arg.startsWith('--as-running=');

/**
 * --as-running[=PID]: the settings of the berth server running here (its flags, then this
 * command's other flags; its BERTH_* variables; its working directory), for a container's
 * health check that cannot see the flags given to `docker run`.
 */
function asRunning(argv: readonly string[], env: NodeJS.ProcessEnv): { finding: Finding; argv: readonly string[]; env: NodeJS.ProcessEnv } {
  const flag = argv.find(isAsRunning)!;
  const value = flag.includes('=') ? flag.slice(flag.indexOf('=') + 1) : undefined;
  const pid = value === undefined ? undefined : Number(value);
  if (pid !== undefined && !(Number.isInteger(pid) && pid > 0)) return { finding: { id: 'berth-settings', area: 'berth', level: 'problem', detail: `${flag}: expected a process id` }, argv, env };
  let server: RunningServer;
  try {
    server = findRunningServer({ pid });
  } catch (err) {
    return { finding: { id: 'berth-settings', area: 'berth', level: 'problem', detail: (err as Error).message }, argv, env };
  }
  let cwd = false;
  if (server.cwd !== undefined) {
    try {
      process.chdir(server.cwd);
      cwd = true;
    } catch {
      // not ours to enter: relative paths stay relative to this command's directory
    }
  }
  const ownEnv = Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('BERTH_')));
  const read = ['its flags', ...(server.env ? ['BERTH_* environment'] : []), ...(cwd ? ['working directory'] : [])].join(', ');
  return {
    finding: { id: 'berth-settings', area: 'berth', level: 'ok', detail: `those of the berth server running as pid ${server.pid} (${read})` },
    argv: [...server.args, ...argv.filter((a) => !isAsRunning(a))],
    env: server.env ? { ...ownEnv, ...server.env } : env,
  };
}
