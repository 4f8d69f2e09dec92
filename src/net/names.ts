import net from 'node:net';

/**
 * The host names berth serves. A request (or a TLS connection) naming anything else is
 * misdirected: it must not reach the upstream, since its Host would flow into the
 * upload Locations and token realms berth and the registry build from it.
 */
export interface NameSet {
  readonly names: readonly string[];
  /** Whether a host (no port; IPv6 with or without brackets; any case) is served. */
  matches(host: string): boolean;
}

/**
 * An authority as RFC 3986 allows it in Host: reg-name or bracketed IPv6, optional port;
 * group 1 is the host, group 2 the port. Anything else ("evil.example/x?") never flows
 * into a Location or a redirect.
 */
export const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::(\d{1,5}))?$/;

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const HOSTNAME = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*$`);

function canonical(host: string): string {
  return host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
}

/** Parses one configured name: a host name, "*.example.com" (one label), or an IP address. */
export function parseName(text: string): string {
  const name = canonical(text);
  if (net.isIP(name) || HOSTNAME.test(name)) return name;
  throw new Error(`expected a host name such as registry.example.com or *.example.com, or an IP address, got "${text}"`);
}

export function nameSet(names: readonly string[]): NameSet {
  const exact = new Set<string>();
  const wildcards = new Set<string>();
  for (const name of names) {
    const parsed = parseName(name);
    if (parsed.startsWith('*.')) wildcards.add(parsed.slice(1));
    else exact.add(parsed);
  }
  return {
    names: [...exact, ...[...wildcards].map((w) => `*${w}`)],
    matches(host) {
      const name = canonical(host);
      if (exact.has(name)) return true;
      const dot = name.indexOf('.');
      return dot > 0 && !net.isIP(name) && wildcards.has(name.slice(dot));
    },
  };
}
