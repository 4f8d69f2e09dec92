import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { loadConfig, parseFlags } from '../../config/load.js';
import { ConfigError } from '../../config/validate.js';
import { DEV_FILES } from '../../tls/devCert.js';
import { authFindings, tokenLifetimeFinding, type AuthState } from './auth.js';
import { berthFindings, readyFinding } from './berth.js';
import { configFindings } from './config.js';
import { DEFAULT_REPOSITORY, DEFAULT_UPLOAD_SIZE, doctorContext, localAddress, type Credentials } from './context.js';
import type { Finding } from './findings.js';
import { timeoutFindings } from './limits.js';
import { throughputFindings, uploadFindings } from './upload.js';
import { upstreamFindings } from './upstream.js';
import { tlsFindings } from './tls.js';
import { storageFindings } from './storage.js';

/**
 * `berth doctor`: the whole chain, client to registry, as berth sees it: the settings, the
 * certificate, the upstream, the running berth, the registry's auth and the URLs it hands
 * clients, a timed upload and the limits on the way. One finding per check; each problem
 * with its cause and fix, and a page in docs/doctor/. `berth check` runs the fast part.
 */

export interface DoctorOptions {
  readonly user?: string;
  readonly passwordStdin: boolean;
  readonly repository: string;
  readonly json: boolean;
  readonly uploadSize: number;
  readonly ca?: string;
  /** The remaining arguments: berth's own flags (--config, --upstream, …). */
  readonly berthArgs: string[];
}

export const DOCTOR_USAGE = `usage: berth doctor [--config FILE] [berth flags] [--user USER --password-stdin]
                    [--repository NAME] [--upload-size SIZE] [--ca FILE] [--json]

  --user USER           a registry user that may push to --repository (token, upload and throughput checks)
  --password-stdin      read that user's password from standard input
  --repository NAME     scratch repository for the test uploads, cancelled afterwards (default library/berth-doctor)
  --upload-size SIZE    bytes for the timed upload: 16MiB (default), 200MB, 1GiB, …
  --ca FILE             the private CA your clients trust, to check the certificate chain up to it
  --json                the findings as JSON, for scripts and support threads
  --help, -h            this text
`;

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1 << 20, gb: 1e9, gib: 1 << 30 };

export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined || Number(m[1]) * unit < 1) throw new ConfigError('--upload-size', `expected a size like 16MiB or 200MB, got "${text}"`);
  return Math.round(Number(m[1]) * unit);
}

export function parseDoctorArgs(argv: readonly string[]): DoctorOptions {
  const berthArgs: string[] = [];
  const options: { -readonly [K in keyof DoctorOptions]?: DoctorOptions[K] } = {};
  const value = (i: number, name: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new ConfigError(name, 'needs a value');
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [name, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const take = (): string => inline ?? value(i++, name);
    switch (name) {
      case '--user':
        options.user = take();
        break;
      case '--password-stdin':
        options.passwordStdin = true;
        break;
      case '--repository':
        options.repository = take();
        break;
      case '--upload-size':
        options.uploadSize = parseSize(take());
        break;
      case '--ca':
        options.ca = take();
        break;
      case '--json':
        options.json = true;
        break;
      default:
        berthArgs.push(arg);
    }
  }
  const repository = options.repository ?? DEFAULT_REPOSITORY;
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(repository)) {
    throw new ConfigError('--repository', `"${repository}" is not a repository name (lower case, e.g. library/berth-doctor)`);
  }
  if (options.passwordStdin && !options.user) throw new ConfigError('--password-stdin', 'needs --user');
  if (options.user && !options.passwordStdin) throw new ConfigError('--user', 'give the password with --password-stdin (never on the command line)');
  return {
    passwordStdin: options.passwordStdin ?? false,
    repository,
    json: options.json ?? false,
    uploadSize: options.uploadSize ?? DEFAULT_UPLOAD_SIZE,
    berthArgs,
    ...(options.user ? { user: options.user } : {}),
    ...(options.ca ? { ca: options.ca } : {}),
  };
}

export async function doctor(options: DoctorOptions, env: NodeJS.ProcessEnv, readPassword: () => Promise<string>): Promise<Finding[]> {
  const config = loadConfig(parseFlags(options.berthArgs), env);
  if (options.ca && !fs.existsSync(options.ca)) throw new ConfigError('--ca', `cannot read ${options.ca}`);
  const credentials: Credentials | undefined = options.user ? { user: options.user, password: (await readPassword()).replace(/\r?\n$/, '') } : undefined;

  const ctx = doctorContext(config, { credentials, repository: options.repository, uploadSize: options.uploadSize, timeoutMs: 10_000 });

  const findings: Finding[] = [...configFindings(config)];
  findings.push(...tlsFindings(config, options.ca));
  const upstream = await upstreamFindings(ctx, findings);
  const listenHost = localAddress(config.listen.host);
  const listen = new URL(`https://${listenHost.includes(':') ? `[${listenHost}]` : listenHost}:${config.listen.port}`);
  // Clients trust the public roots, plus the private CA they were given (--ca), or berth's
  // development CA when berth serves its development certificate.
  const devCa = path.join(config.tls.dir, DEV_FILES.caCert);
  const privateCa = options.ca ?? (config.tls.cert === undefined && fs.existsSync(devCa) ? devCa : undefined);
  const ca = [...tls.rootCertificates, ...(privateCa ? [fs.readFileSync(privateCa, 'utf8')] : [])];
  const servername = new URL(ctx.publicOrigin).hostname.replace(/^\[(.*)\]$/, '$1');
  await berthFindings(ctx, { name: 'berth', connect: listen, servername, ca }, findings, privateCa !== undefined);
  findings.push(await readyFinding(config, ctx.timeoutMs));

  if (upstream.registry) {
    const auth: AuthState = await authFindings(ctx, upstream, findings);
    if (auth.authorization || auth.open) {
      await uploadFindings(ctx, auth, findings);
      await storageFindings(ctx, auth, ca, findings);
      const { bytesPerSecond } = await throughputFindings(ctx, auth, findings);
      if (auth.lifetime !== undefined) findings.push(tokenLifetimeFinding(auth.lifetime, bytesPerSecond));
    } else if (!credentials) {
      findings.push({
        id: 'auth-token',
        area: 'auth',
        level: 'warning',
        detail: 'no credentials given: token lifetime, upload URLs and throughput were not checked',
        fix: 'run berth doctor --user USER --password-stdin (a user that may push to --repository)',
      });
    }
  }
  findings.push(...timeoutFindings(config));
  return findings;
}
