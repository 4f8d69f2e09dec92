import type { IncomingHttpHeaders } from 'node:http';
import type { AddressSet } from '../net/cidr.js';
import type { NameSet } from '../net/names.js';
import { hstsNamesHost } from './response/hsts.js';
import { isNamed } from './headerName.js';

/** What the passes read from the configuration; prepared once, shared read-only. */
export interface ProxySettings {
  readonly upstream: URL;
  /** "https://host[:port]" when configured; otherwise each request's Host decides. */
  readonly publicOrigin: string | undefined;
  readonly trustedProxies: AddressSet;
  /** The host names served (publicOrigin's and serverNames); undefined = not enforced. */
  readonly names?: NameSet | undefined;
  /** Strict-Transport-Security value, or undefined when HSTS is off. */
  readonly hsts?: string | undefined;
  /** `hsts` when publicOrigin is set and names a host (not an address, not localhost); prepared by proxySettings. */
  readonly publicOriginHsts?: string | undefined;
}

/** The settings with what every request would otherwise work out again prepared once. */
export function proxySettings(given: Omit<ProxySettings, 'publicOriginHsts'>): ProxySettings {
  const host = given.publicOrigin === undefined ? undefined : new URL(given.publicOrigin).hostname;
  return { ...given, publicOriginHsts: given.hsts !== undefined && host !== undefined && hstsNamesHost(host) ? given.hsts : undefined };
}

/**
 * How the request body is framed, as berth read the headers: no body, Content-Length, or
 * chunked. The body is forwarded with exactly this framing, or not at all.
 */
export type BodyFraming = 'none' | 'length' | 'chunked';

/**
 * One request on its way through the passes. The passes change `headers` (the request's
 * own header object, which the transport forwards) and fill in what they learn.
 */
export interface RequestContext {
  readonly settings: ProxySettings;
  readonly method: string;
  /** The request target in origin-form ("/v2/…?…"), as forwarded; the host pass may change it. */
  url: string;
  readonly headers: IncomingHttpHeaders;
  /** The server name the client sent in its TLS handshake (SNI), if any. */
  readonly sni: string | undefined;
  /** The port the client connected to (berth's listener, as seen from inside a container). */
  readonly localPort: number | undefined;
  /** How many Host header lines the request had (req.headers keeps only the first). */
  readonly hostLines: number;
  /** The TCP peer (or the client a PROXY protocol header named): the client, or a proxy in front of berth. */
  readonly peer: string;
  /** The peer is in trustedProxies. */
  readonly trusted: boolean;
  /** https origin clients see, e.g. "https://registry.example.com:8443"; set by the host pass. */
  publicOrigin: string;
  /** Strict-Transport-Security for the answers, if any: decided with publicOrigin. */
  hsts: string | undefined;
  /** The client's address as best known (from a trusted chain, or the peer); set by the forwarded pass. */
  client: string;
  /** The body's framing; set by the hop-by-hop pass, which restates it for the upstream. */
  body: BodyFraming;
  /** X-Request-Id as sent upstream and logged; set by the request id pass. */
  requestId: string;
}

/** `peer`: the client address of the connection (Connections.clientOf); its TCP peer by default. */
export function createContext(
  settings: ProxySettings,
  req: {
    method?: string | undefined;
    url?: string | undefined;
    headers: IncomingHttpHeaders;
    rawHeaders?: readonly string[];
    socket: { remoteAddress?: string | undefined; remotePort?: number | undefined; localPort?: number | undefined; servername?: string | false | null | undefined };
  },
  // Behind an L4 balancer speaking the PROXY protocol, the client it names is the peer.
  peer: string = req.socket.remoteAddress ?? '',
): RequestContext {
  return {
    settings,
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    headers: req.headers,
    sni: typeof req.socket.servername === 'string' ? req.socket.servername : undefined,
    localPort: req.socket.localPort,
    hostLines: req.rawHeaders ? countHostLines(req.rawHeaders) : req.headers.host === undefined ? 0 : 1,
    peer,
    trusted: settings.trustedProxies.has(peer),
    publicOrigin: settings.publicOrigin ?? '',
    hsts: settings.publicOriginHsts,
    client: peer,
    body: 'none',
    requestId: '',
  };
}

/** A step on the way in: reads and changes the context, throws a ProxyError to answer instead. */
export type RequestPass = (ctx: RequestContext) => void;

function countHostLines(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (isNamed(name, 'host')) n++;
  }
  return n;
}
