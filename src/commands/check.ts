import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { probeUpstream } from '../admin/readiness.js';
import { loadConfig, parseFlags } from '../config/load.js';
import { ConfigError, warnings, type Config } from '../config/validate.js';
import { DEV_FILES } from '../tls/devCert.js';
import { loadPair } from '../tls/files.js';
import { findRunningServer, type RunningServer } from './running.js';

/**
 * `berth check`: the setup as berth would start it, checked and printed one line per
 * finding, with the running berth's readiness when its admin listener answers. Exit 0
 * only when nothing is a problem; the container image uses it as its health check.
 */

export const CHECK_USAGE = `usage: berth check [--config FILE] [berth flags]
       berth check --as-running[=PID]

Checks the setup as berth would start with it: the settings, the certificate and key (they
match, the names, the expiry), the upstream (GET /v2/), and the running berth's readiness on
its admin listener. One line per finding; exit 0 only if nothing is a problem (the image's
HEALTHCHECK).

  --as-running[=PID]    check the settings of the berth server running here instead (PID,
                        or the one berth server found: PID 1 in a container): its flags,
                        BERTH_* environment and working directory
  berth flags           as for berth itself (berth --help): the settings to check
  --help, -h            this text
`;

export type Level = 'ok' | 'warning' | 'problem';

export interface Finding {
  readonly level: Level;
  readonly what: string;
  readonly detail: string;
}

/** Certificates this close to expiry are a warning. */
const EXPIRY_WARNING_DAYS = 14;
const DAY = 86_400_000;
const PROBE_TIMEOUT_MS = 5000;

export async function check(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<Finding[]> {
  const findings: Finding[] = [];
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
    return [{ level: 'problem', what: 'config', detail: err.message }];
  }
  findings.push({ level: 'ok', what: 'config', detail: `upstream ${config.upstream.origin}, listen ${describeListen(config.listen)}, workers ${config.workers}` });
  for (const warning of warnings(config)) findings.push({ level: 'warning', what: 'config', detail: warning });

  findings.push(...checkCertificate(config));

  const upstream = await probeUpstream(config.upstream, PROBE_TIMEOUT_MS);
  findings.push({ level: upstream.ok ? 'ok' : 'problem', what: 'upstream', detail: `${config.upstream.origin}: ${upstream.detail}` });

  findings.push(await checkRunning(config, ofRunningServer));
  return findings;
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
  if (pid !== undefined && !(Number.isInteger(pid) && pid > 0)) return { finding: { level: 'problem', what: 'settings', detail: `${flag}: expected a process id` }, argv, env };
  let server: RunningServer;
  try {
    server = findRunningServer({ pid });
  } catch (err) {
    return { finding: { level: 'problem', what: 'settings', detail: (err as Error).message }, argv, env };
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
    finding: { level: 'ok', what: 'settings', detail: `those of the berth server running as pid ${server.pid} (${read})` },
    argv: [...server.args, ...argv.filter((a) => !isAsRunning(a))],
    env: server.env ? { ...ownEnv, ...server.env } : env,
  };
}

function describeListen(listen: { host: string | undefined; port: number }): string {
  return `${listen.host === undefined ? '' : net.isIPv6(listen.host) ? `[${listen.host}]` : listen.host}:${listen.port}`;
}

function checkCertificate(config: Config): Finding[] {
  if (config.tls.cert === undefined || config.tls.key === undefined) {
    const file = path.join(config.tls.dir, DEV_FILES.cert);
    if (!fs.existsSync(file)) {
      return [{ level: 'warning', what: 'certificate', detail: `no tls.cert: a development certificate will be made in ${config.tls.dir}; clients must trust its CA` }];
    }
    const leaf = new crypto.X509Certificate(fs.readFileSync(file));
    return [{ level: 'warning', what: 'certificate', detail: `no tls.cert: serving the development certificate ${file} (valid until ${leaf.validTo}); clients must trust ${path.join(config.tls.dir, DEV_FILES.caCert)}` }];
  }
  let leaf: crypto.X509Certificate;
  try {
    leaf = loadPair(config.tls.cert, config.tls.key).leaf;
  } catch (err) {
    return [{ level: 'problem', what: 'certificate', detail: (err as Error).message }];
  }
  const findings: Finding[] = [];
  const days = Math.floor((new Date(leaf.validTo).getTime() - Date.now()) / DAY);
  const summary = `${leaf.subject.replace(/\n/g, ', ')}; ${leaf.subjectAltName ?? 'no subjectAltName'}; valid until ${leaf.validTo}`;
  findings.push(
    days < EXPIRY_WARNING_DAYS
      ? { level: 'warning', what: 'certificate', detail: `expires in ${days} day${days === 1 ? '' : 's'}: ${summary}` }
      : { level: 'ok', what: 'certificate', detail: `key matches; ${summary}` },
  );
  const host = config.publicOrigin?.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === undefined) {
    findings.push({ level: 'warning', what: 'certificate names', detail: 'publicOrigin is unset: the names clients use cannot be checked' });
  } else {
    const covered = net.isIP(host) ? leaf.checkIP(host) !== undefined : leaf.checkHost(host) !== undefined;
    findings.push(
      covered
        ? { level: 'ok', what: 'certificate names', detail: `cover ${host}` }
        : { level: 'problem', what: 'certificate names', detail: `do not cover ${host}, the host of publicOrigin: clients will refuse the certificate` },
    );
  }
  return findings;
}

/**
 * The running berth, through its admin listener's /readyz. With --as-running berth is
 * known to run, so an admin listener that refuses connections is a problem, not "not
 * running (yet)".
 */
function checkRunning(config: Config, running: boolean): Promise<Finding> {
  const admin = config.admin.listen;
  if (admin === undefined) return Promise.resolve({ level: 'warning', what: 'running berth', detail: 'admin.listen is off: not checked' });
  const host = admin.host === undefined || admin.host === '0.0.0.0' || admin.host === '::' ? '127.0.0.1' : admin.host;
  return new Promise((resolve) => {
    const req = http.get({ host, port: admin.port, path: '/readyz', agent: false, timeout: PROBE_TIMEOUT_MS }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        if (res.statusCode === 200) return resolve({ level: 'ok', what: 'running berth', detail: 'ready' });
        let reasons = body.trim();
        try {
          const parsed = JSON.parse(body) as { checks: Record<string, { ok: boolean; detail: string }> };
          reasons = Object.entries(parsed.checks)
            .filter(([, c]) => !c.ok)
            .map(([name, c]) => `${name}: ${c.detail}`)
            .join('; ');
        } catch {
          /* not berth's answer: show it as it is */
        }
        resolve({ level: 'problem', what: 'running berth', detail: `not ready (${res.statusCode}): ${reasons}` });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve(
        err.code === 'ECONNREFUSED'
          ? running
            ? { level: 'problem', what: 'running berth', detail: `it runs, but nothing listens on its admin listener ${host}:${admin.port}` }
            : { level: 'warning', what: 'running berth', detail: `nothing listens on ${host}:${admin.port}: berth is not running (or not yet)` }
          : { level: 'problem', what: 'running berth', detail: `no answer on ${host}:${admin.port} (${err.code ?? err.message})` },
      ),
    );
  });
}

export function formatFindings(findings: readonly Finding[]): string {
  const lines = findings.map((f) => `${f.level.padEnd(8)} ${f.what.padEnd(18)} ${f.detail}`);
  const problems = findings.filter((f) => f.level === 'problem').length;
  const warned = findings.filter((f) => f.level === 'warning').length;
  lines.push(problems === 0 ? `all well${warned ? ` (${warned} warning${warned > 1 ? 's' : ''})` : ''}` : `${problems} problem${problems > 1 ? 's' : ''}`);
  return lines.join('\n') + '\n';
}
