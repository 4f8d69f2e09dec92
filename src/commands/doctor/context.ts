import type { Config } from '../../config/validate.js';
import { createContext, type ProxySettings } from '../../proxy/context.js';
import { REQUEST_PASSES } from '../../proxy/passes.js';
import { proxySettingsOf } from '../../server/settings.js';
import type { Endpoint } from './probe.js';

/**
 * What every check of `berth doctor` and `berth check` works from: the settings, where
 * clients reach berth, the upstream, and for doctor's registry checks the user and the
 * scratch repository.
 */

export interface Credentials {
  readonly user: string;
  readonly password: string;
}

export interface DoctorContext {
  readonly config: Config;
  /** https://host[:port] as clients reach berth. */
  readonly publicOrigin: string;
  /** host[:port]: the Host clients send, and berth keeps. */
  readonly publicHost: string;
  readonly upstream: Endpoint;
  /** The running berth, when one answers. */
  berth?: Endpoint;
  readonly credentials?: Credentials;
  readonly repository: string;
  readonly uploadSize: number;
  readonly timeoutMs: number;
  /** The passes' settings, as the running berth has them. */
  readonly settings: ProxySettings;
}

/** doctor's scratch repository and timed upload, unless --repository and --upload-size say otherwise. */
export const DEFAULT_REPOSITORY = 'library/berth-doctor';
export const DEFAULT_UPLOAD_SIZE = 16 << 20;

export function doctorContext(config: Config, options: { credentials?: Credentials | undefined; repository?: string; uploadSize?: number; timeoutMs: number }): DoctorContext {
  const publicOrigin = config.publicOrigin?.origin ?? `https://localhost:${config.listen.port}`;
  return {
    config,
    publicOrigin,
    publicHost: new URL(publicOrigin).host,
    upstream: { name: 'upstream', connect: new URL(config.upstream.origin) },
    ...(options.credentials ? { credentials: options.credentials } : {}),
    repository: options.repository ?? DEFAULT_REPOSITORY,
    uploadSize: options.uploadSize ?? DEFAULT_UPLOAD_SIZE,
    timeoutMs: options.timeoutMs,
    settings: proxySettingsOf(config, config.tls.cert === undefined),
  };
}

/** Where to reach a listener from this machine: a wildcard (or no) host is reached on the loopback address. */
export function localAddress(host: string | undefined): string {
  return host === undefined || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
}

export const API_VERSION = 'docker-distribution-api-version';

/**
 * The headers berth sends the upstream for a client's request to the public host with
 * these headers: built by berth's own request passes (Host kept, X-Forwarded-* set once),
 * so that doctor asks the registry exactly as berth would.
 */
export function forwarded(ctx: DoctorContext, method: string, extra: Record<string, string> = {}): Record<string, string> {
  const request = createContext(ctx.settings, {
    method,
    url: '/v2/',
    headers: { host: ctx.publicHost, ...extra },
    socket: { remoteAddress: '127.0.0.1', localPort: ctx.config.listen.port, servername: new URL(ctx.publicOrigin).hostname.replace(/^\[(.*)\]$/, '$1') },
  });
  for (const pass of REQUEST_PASSES) pass(request);
  return request.headers as Record<string, string>;
}

/** A client's headers, to the public host. */
export function asClient(ctx: DoctorContext, extra: Record<string, string> = {}): Record<string, string> {
  return { host: ctx.publicHost, ...extra };
}

/** The rewrite functions' view of the settings. */
export const view = (ctx: DoctorContext): { upstream: URL; publicOrigin: string } => ({ upstream: ctx.config.upstream, publicOrigin: ctx.publicOrigin });

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'forever';
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1e12) return `${(bytes / 1e12).toFixed(1)} TB`;
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(bytes % (1 << 20) === 0 ? 0 : 1)} MiB`;
  return `${bytes} bytes`;
}
