import net from 'node:net';
import os from 'node:os';
import { addressSet, type AddressSet } from '../net/cidr.js';
import { parseName } from '../net/names.js';
import { KEYS, envName, type KeySpec } from './schema.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type LogFormat = 'json' | 'pretty';

/** The validated configuration: frozen, typed, durations in milliseconds. */
export interface Config {
  readonly listen: { readonly host: string | undefined; readonly port: number };
  readonly upstream: URL;
  readonly publicOrigin: URL | undefined;
  readonly tls: { readonly cert: string | undefined; readonly key: string | undefined; readonly dir: string; readonly ticketKeyRotation: number };
  readonly trustedProxies: AddressSet;
  readonly proxyProtocol: { readonly from: AddressSet };
  /** serverNames as configured (publicOrigin's host is served too). */
  readonly serverNames: readonly string[];
  readonly timeouts: {
    readonly handshake: number;
    readonly headers: number;
    readonly clientIdle: number;
    readonly keepAlive: number;
    readonly upstreamConnect: number;
    readonly upstreamResponse: number;
  };
  readonly shutdown: { readonly grace: number };
  /** Connection caps per serving process; 0 = none. */
  readonly limits: { readonly connections: number; readonly connectionsPerClient: number; readonly requestsPerConnection: number };
  /** The plain-HTTP listener that redirects to https; unset when "off". */
  readonly http: { readonly listen: { readonly host: string | undefined; readonly port: number } | undefined };
  /** HSTS max-age, ms; 0 = off. */
  readonly hsts: { readonly maxAge: number };
  /** Unset when "off". */
  readonly admin: { readonly listen: { readonly host: string | undefined; readonly port: number } | undefined };
  readonly log: { readonly level: LogLevel; readonly format: LogFormat };
  /** Serving processes; 1 = no workers. */
  readonly workers: number;
  /** Automatic certificates (tls/acme/); unset when acme.email is. */
  readonly acme: AcmeSettings | undefined;
}

export type AcmeChallenge = 'tls-alpn-01' | 'http-01';

export interface AcmeSettings {
  readonly email: string;
  readonly directory: URL;
  /** The names on the certificate: acme.names, or publicOrigin's host and serverNames. */
  readonly names: readonly string[];
  readonly challenge: AcmeChallenge;
  /** Extra roots (a PEM file) for the directory's https. */
  readonly ca: string | undefined;
  readonly eab: { readonly kid: string; readonly hmacKey: string } | undefined;
}

/** A raw value and where it came from, so an error can say which line to fix. */
export interface Raw {
  readonly value: unknown;
  readonly source: string;
}

/** One line: the key path, what was expected, and where the bad value came from. */
export class ConfigError extends Error {
  constructor(
    readonly keyPath: string,
    readonly expected: string,
    readonly source?: string,
  ) {
    super(`${keyPath}: ${expected}${source ? ` (from ${source})` : ''}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];
const ACME_CHALLENGES: readonly AcmeChallenge[] = ['tls-alpn-01', 'http-01'];
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : `${JSON.stringify(value) ?? String(value)} (${typeof value})`;
}

export function parseDuration(value: unknown): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return Math.round(value * 1000);
  if (typeof value === 'string') {
    const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(value);
    if (match) return Math.round(Number(match[1]) * UNITS[match[2] ?? 's']!);
  }
  throw new Error(`expected a duration such as "500ms", "60s", "15m" or "1h", got ${show(value)}`);
}

export function parseListen(value: unknown): { host: string | undefined; port: number } {
  const text = typeof value === 'number' ? `:${value}` : value;
  if (typeof text === 'string') {
    const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]*)):(\d{1,5})$/.exec(text.trim());
    const port = match ? Number(match[3]) : NaN;
    const host = match ? (match[1] ?? match[2]) : undefined;
    if (match && port <= 65535 && (match[1] === undefined || net.isIPv6(match[1]))) {
      return { host: host === '' ? undefined : host, port };
    }
  }
  throw new Error(`expected HOST:PORT such as "0.0.0.0:8443", ":8443" or "[::1]:8443", got ${show(value)}`);
}

function parseOrigin(value: unknown, schemes: readonly string[]): URL {
  const want = `an absolute ${schemes.join(' or ')} URL with a host and no path, query or credentials`;
  if (typeof value !== 'string') throw new Error(`expected ${want}, got ${show(value)}`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`expected ${want}, got ${show(value)}`);
  }
  const bare = url.pathname === '/' && !url.search && !url.hash && !url.username && !url.password;
  if (!schemes.includes(url.protocol.slice(0, -1)) || !url.hostname || !bare) {
    throw new Error(`expected ${want}, got ${show(value)}`);
  }
  return url;
}

function parseList(value: unknown, what = 'CIDRs'): string[] {
  if (typeof value === 'string') return value.split(',').map((s) => s.trim()).filter(Boolean);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  throw new Error(`expected a list of ${what} (YAML list, or comma-separated), got ${show(value)}`);
}

function parseEnum<T extends string>(value: unknown, allowed: readonly T[]): T {
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw new Error(`expected one of ${allowed.join(', ')}, got ${show(value)}`);
}

function parsePath(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string' && value.trim() !== '') return value;
  throw new Error(`expected a file path, got ${show(value)}`);
}

export function parseWorkers(value: unknown): number {
  if (value === 'auto') return os.availableParallelism();
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 256) return n;
  throw new Error(`expected "auto" or a whole number from 1 to 256, got ${show(value)}`);
}

function parseKey(spec: KeySpec, value: unknown): unknown {
  switch (spec.kind) {
    case 'listen':
      return parseListen(value);
    case 'optionalListen':
      return value === 'off' ? undefined : parseListen(value);
    case 'upstreamUrl':
      return parseOrigin(value, ['http', 'https']);
    case 'publicOrigin':
      return value === null || value === undefined || value === '' ? undefined : parseOrigin(value, ['https']);
    case 'path':
      return parsePath(value);
    case 'nameList':
      return parseList(value, 'host names').map(parseName);
    case 'cidrList': {
      const list = parseList(value);
      for (const item of list) addressSet([item]);
      return addressSet(list);
    }
    case 'duration':
      return parseDuration(value);
    case 'logLevel':
      return parseEnum(value, LOG_LEVELS);
    case 'logFormat':
      return parseEnum(value, LOG_FORMATS);
    case 'workers':
      return parseWorkers(value);
    case 'email':
      if (value === null || value === undefined || value === '') return undefined;
      if (typeof value === 'string' && /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/.test(value)) return value;
      throw new Error(`expected an e-mail address, got ${show(value)}`);
    case 'directoryUrl': {
      let url: URL | undefined;
      try {
        url = typeof value === 'string' ? new URL(value) : undefined;
      } catch {
        url = undefined;
      }
      if (url?.protocol === 'https:' && !url.username && !url.password) return url;
      throw new Error(`expected an https URL (an ACME directory), got ${show(value)}`);
    }
    case 'acmeChallenge':
      return parseEnum(value, ACME_CHALLENGES);
    case 'text':
      if (value === null || value === undefined) return undefined;
      if (typeof value === 'string' && value.trim() !== '') return value.trim();
      throw new Error(`expected a string, got ${show(value)}`);
    case 'count': {
      const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
      if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) return n;
      throw new Error(`expected a whole number from 0, got ${show(value)}`);
    }
  }
}

/**
 * Flattens a YAML document into dotted paths, refusing keys berth does not know,
 * so a typo ("trustedProxy") fails start-up instead of being silently ignored.
 */
export function flattenYaml(doc: unknown, source: string): Map<string, Raw> {
  const out = new Map<string, Raw>();
  if (doc === null || doc === undefined) return out;
  const known = new Set(KEYS.map((k) => k.path));
  const groups = new Set(KEYS.flatMap((k) => k.path.split('.').slice(0, -1).map((_, i, a) => a.slice(0, i + 1).join('.'))));
  const walk = (node: unknown, prefix: string): void => {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) {
      throw new ConfigError(prefix || '(top level)', `expected a mapping of keys, got ${show(node)}`, source);
    }
    for (const [key, value] of Object.entries(node)) {
      const path = prefix ? `${prefix}.${key}` : key;
      if (known.has(path)) out.set(path, { value, source });
      else if (groups.has(path)) walk(value, path);
      else throw new ConfigError(path, 'unknown key; see config/berth.example.yaml for the keys berth reads', source);
    }
  };
  walk(doc, '');
  return out;
}

/** Reads BERTH_* variables; an unknown one is an error, since it is almost always a typo. */
export function fromEnv(env: NodeJS.ProcessEnv, ignore: readonly string[]): Map<string, Raw> {
  const byName = new Map(KEYS.map((k) => [envName(k.path), k.path]));
  const out = new Map<string, Raw>();
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('BERTH_') || ignore.includes(name) || value === undefined) continue;
    const path = byName.get(name);
    if (!path) throw new ConfigError(name, `unknown environment variable; known: ${[...byName.keys()].join(', ')}`);
    out.set(path, { value, source: name });
  }
  return out;
}

/** Layers (lowest first) become one validated Config; the first bad key throws a ConfigError. */
export function buildConfig(layers: readonly Map<string, Raw>[]): Config {
  const values = new Map<string, unknown>();
  for (const spec of KEYS) {
    let raw: Raw = { value: spec.default, source: 'default' };
    for (const layer of layers) raw = layer.get(spec.path) ?? raw;
    try {
      values.set(spec.path, parseKey(spec, raw.value));
    } catch (err) {
      throw new ConfigError(spec.path, (err as Error).message, raw.source === 'default' ? undefined : raw.source);
    }
  }
  const get = <T>(path: string): T => values.get(path) as T;
  const cert = get<string | undefined>('tls.cert');
  const key = get<string | undefined>('tls.key');
  if ((cert === undefined) !== (key === undefined)) {
    throw new ConfigError(cert === undefined ? 'tls.cert' : 'tls.key', 'tls.cert and tls.key must be set together');
  }
  for (const path of ['timeouts.handshake', 'timeouts.headers', 'timeouts.upstreamConnect', 'timeouts.keepAlive']) {
    if (get<number>(path) === 0) throw new ConfigError(path, 'expected a duration above 0');
  }
  const acme = acmeSettings(get, values);
  return Object.freeze({
    listen: Object.freeze(get<Config['listen']>('listen')),
    upstream: get<URL>('upstream'),
    publicOrigin: get<URL | undefined>('publicOrigin'),
    tls: Object.freeze({ cert, key, dir: get<string>('tls.dir'), ticketKeyRotation: get<number>('tls.ticketKeyRotation') }),
    trustedProxies: get<AddressSet>('trustedProxies'),
    serverNames: Object.freeze(get<string[]>('serverNames')),
    proxyProtocol: Object.freeze({ from: get<AddressSet>('proxyProtocol.from') }),
    timeouts: Object.freeze({
      handshake: get<number>('timeouts.handshake'),
      headers: get<number>('timeouts.headers'),
      clientIdle: get<number>('timeouts.clientIdle'),
      keepAlive: get<number>('timeouts.keepAlive'),
      upstreamConnect: get<number>('timeouts.upstreamConnect'),
      upstreamResponse: get<number>('timeouts.upstreamResponse'),
    }),
    shutdown: Object.freeze({ grace: get<number>('shutdown.grace') }),
    limits: Object.freeze({
      connections: get<number>('limits.connections'),
      connectionsPerClient: get<number>('limits.connectionsPerClient'),
      requestsPerConnection: get<number>('limits.requestsPerConnection'),
    }),
    http: Object.freeze({ listen: get<Config['http']['listen']>('http.listen') }),
    hsts: Object.freeze({ maxAge: get<number>('hsts.maxAge') }),
    admin: Object.freeze({ listen: get<Config['admin']['listen']>('admin.listen') }),
    log: Object.freeze({ level: get<LogLevel>('log.level'), format: get<LogFormat>('log.format') }),
    workers: get<number>('workers'),
    acme,
  });
}

/**
 * The acme.* settings, checked together: on only with acme.email; not with certificate
 * files; names a CA can validate over HTTP or TLS-ALPN (no wildcards, no IP addresses);
 * http-01 only with the plain-HTTP listener.
 */
function acmeSettings(get: <T>(path: string) => T, values: ReadonlyMap<string, unknown>): AcmeSettings | undefined {
  const email = get<string | undefined>('acme.email');
  if (email === undefined) {
    const spec = KEYS.filter((k) => k.path.startsWith('acme.') && k.path !== 'acme.email');
    const set = spec.find((k) => JSON.stringify(toPlain(values.get(k.path))) !== JSON.stringify(toPlain(parseKey(k, k.default))));
    if (set) throw new ConfigError(set.path, 'is set but acme.email is not: automatic certificates are on only with acme.email');
    return undefined;
  }
  if (get<string | undefined>('tls.cert') !== undefined) {
    throw new ConfigError('acme.email', 'not together with tls.cert and tls.key: the certificate comes either from those files or from ACME; unset one or the other');
  }
  const publicOrigin = get<URL | undefined>('publicOrigin');
  const configured = get<string[]>('acme.names');
  const names = configured.length > 0 ? configured : [...new Set([...(publicOrigin ? [publicOrigin.hostname] : []), ...get<string[]>('serverNames')])];
  if (names.length === 0) throw new ConfigError('acme.names', 'no names to get a certificate for: set publicOrigin (or serverNames, or acme.names)');
  for (const name of names) {
    if (name.startsWith('*.')) throw new ConfigError('acme.names', `${name} is a wildcard: a CA issues wildcards only through DNS-01, which berth does not do; name each host`);
    if (net.isIP(name.replace(/^\[(.*)\]$/, '$1')) !== 0) throw new ConfigError('acme.names', `${name} is an IP address: berth gets certificates for DNS names only`);
    if (!name.includes('.')) throw new ConfigError('acme.names', `${name} is not a public DNS name: a CA can only validate names it can resolve`);
  }
  const challenge = get<AcmeChallenge>('acme.challenge');
  if (challenge === 'http-01' && get<unknown>('http.listen') === undefined) {
    throw new ConfigError('acme.challenge', 'http-01 needs the plain-HTTP listener: set http.listen (e.g. ":80"; the CA connects to port 80 of each name)');
  }
  const kid = get<string | undefined>('acme.eab.kid');
  const hmacKey = get<string | undefined>('acme.eab.hmacKey');
  if ((kid === undefined) !== (hmacKey === undefined)) throw new ConfigError(kid === undefined ? 'acme.eab.kid' : 'acme.eab.hmacKey', 'acme.eab.kid and acme.eab.hmacKey must be set together');
  return Object.freeze({
    email,
    directory: get<URL>('acme.directory'),
    names: Object.freeze(names),
    challenge,
    ca: get<string | undefined>('acme.ca'),
    eab: kid !== undefined && hmacKey !== undefined ? Object.freeze({ kid, hmacKey }) : undefined,
  });
}

const toPlain = (value: unknown): unknown => (value instanceof URL ? value.href : value);

/**
 * Timeouts that are legal but can cut a push: the entry point logs each, and `berth check`
 * and `berth doctor` report them (their limits-timeouts finding), by these same rules.
 */
export function timeoutWarnings(config: Config): string[] {
  const out: string[] = [];
  const { upstreamResponse, clientIdle } = config.timeouts;
  if (upstreamResponse !== 0 && upstreamResponse < 15 * 60_000) {
    out.push('timeouts.upstreamResponse is under 15m: the final PUT of a large blob may be cut while the registry hashes it');
  }
  if (clientIdle !== 0 && clientIdle < 60_000) {
    out.push('timeouts.clientIdle is under 60s: pushes over slow or bursty links may be cut');
  }
  if (upstreamResponse === 0) out.push('timeouts.upstreamResponse is 0: a hung upstream holds client connections forever');
  return out;
}

/** Other settings that are legal but likely to hurt. */
export function settingWarnings(config: Config): string[] {
  if (config.publicOrigin === undefined && config.serverNames.length === 0) {
    return ['publicOrigin and serverNames are unset: host names are not enforced, and any Host a client sends flows into upload Locations and token realms (fine for local development; set publicOrigin in production)'];
  }
  return [];
}

/** Every warning about the settings; the entry point logs each. */
export function warnings(config: Config): string[] {
  return [...timeoutWarnings(config), ...settingWarnings(config)];
}

/** A listen address as the settings write it: ":8443", "127.0.0.1:8443", "[::1]:8443". */
export function describeListen(listen: { readonly host: string | undefined; readonly port: number }): string {
  return `${listen.host === undefined ? '' : net.isIPv6(listen.host) ? `[${listen.host}]` : listen.host}:${listen.port}`;
}

/** The names clients reach berth by, when known: serverNames and publicOrigin's host (as the URL writes it: an IPv6 address in brackets). */
export function namesClientsUse(config: Config): string[] {
  return [...config.serverNames, ...(config.publicOrigin ? [config.publicOrigin.hostname] : [])];
}
