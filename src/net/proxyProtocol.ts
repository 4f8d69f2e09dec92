import net from 'node:net';

/**
 * The PROXY protocol (HAProxy, https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt),
 * versions 1 (text) and 2 (binary): an L4 load balancer in front of berth states the
 * client's address in a header before the TLS handshake. Parsed from trusted sources only;
 * anyone else could claim any address with it.
 */

export interface ProxyHeader {
  /** The client's address, or undefined for LOCAL / UNKNOWN (the balancer's own health checks). */
  readonly source: { readonly address: string; readonly port: number } | undefined;
  /** Bytes the header took; what follows belongs to TLS. */
  readonly length: number;
}

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ');
/** v1 lines are at most 107 bytes; v2 headers 16 + 65535. */
const V1_MAX = 107;
export const PROXY_HEADER_MAX = 16 + 0xffff;

export class ProxyProtocolError extends Error {
  override name = 'ProxyProtocolError';
}

/** Whether these first bytes can only be the start of a PROXY header (as far as they go). */
export function startsLikeProxyHeader(data: Buffer): boolean {
  const n = Math.min(data.length, 12);
  return data.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n)) || data.subarray(0, Math.min(n, 6)).equals(V1_PREFIX.subarray(0, Math.min(n, 6)));
}

/**
 * Parses a header at the start of `data`: the header, or undefined when more bytes are
 * needed. Throws ProxyProtocolError for anything malformed.
 */
export function parseProxyHeader(data: Buffer): ProxyHeader | undefined {
  if (data.length >= 12 && data.subarray(0, 12).equals(V2_SIGNATURE)) return parseV2(data);
  if (data.length >= 6 && data.subarray(0, 6).equals(V1_PREFIX)) return parseV1(data);
  if (data.length < 12 && startsLikeProxyHeader(data)) return undefined;
  throw new ProxyProtocolError('no PROXY protocol header');
}

function parseV1(data: Buffer): ProxyHeader | undefined {
  const end = data.indexOf('\r\n');
  if (end < 0) {
    if (data.length >= V1_MAX) throw new ProxyProtocolError('PROXY v1 line too long');
    return undefined;
  }
  if (end + 2 > V1_MAX) throw new ProxyProtocolError('PROXY v1 line too long');
  const parts = data.toString('latin1', 0, end).split(' ');
  const length = end + 2;
  if (parts[1] === 'UNKNOWN') return { source: undefined, length };
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6')) throw new ProxyProtocolError('malformed PROXY v1 line');
  const [, family, src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const version = family === 'TCP4' ? 4 : 6;
  if (net.isIP(src) !== version || net.isIP(dst) !== version || !isPort(sport) || !isPort(dport)) throw new ProxyProtocolError('malformed PROXY v1 addresses');
  return { source: { address: src, port: Number(sport) }, length };
}

function isPort(text: string): boolean {
  return /^(0|[1-9]\d{0,4})$/.test(text) && Number(text) <= 65535;
}

function parseV2(data: Buffer): ProxyHeader | undefined {
  if (data.length < 16) return undefined;
  const versionCommand = data[12]!;
  if (versionCommand >> 4 !== 2) throw new ProxyProtocolError('unsupported PROXY v2 version');
  const command = versionCommand & 0x0f;
  const family = data[13]!;
  const length = 16 + data.readUInt16BE(14);
  if (data.length < length) return undefined;
  if (command === 0x0) return { source: undefined, length }; // LOCAL
  if (command !== 0x1) throw new ProxyProtocolError('unsupported PROXY v2 command');
  const body = data.subarray(16, length);
  switch (family) {
    case 0x11: // TCP over IPv4
    case 0x12: // UDP over IPv4
      if (body.length < 12) throw new ProxyProtocolError('short PROXY v2 IPv4 addresses');
      return { source: { address: [...body.subarray(0, 4)].join('.'), port: body.readUInt16BE(8) }, length };
    case 0x21: // TCP over IPv6
    case 0x22:
      if (body.length < 36) throw new ProxyProtocolError('short PROXY v2 IPv6 addresses');
      return { source: { address: ipv6(body.subarray(0, 16)), port: body.readUInt16BE(32) }, length };
    case 0x00: // UNSPEC
      return { source: undefined, length };
    default:
      throw new ProxyProtocolError('unsupported PROXY v2 address family');
  }
}

function ipv6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // Canonical text (e.g. "::ffff:10.0.0.1" stays comparable with Node's remoteAddress).
  return new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}
