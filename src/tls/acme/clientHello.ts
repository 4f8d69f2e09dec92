/** What a TLS ClientHello offers that berth routes on before the handshake: the name and the ALPN protocols. */
export interface HelloOffer {
  readonly servername: string | undefined;
  readonly alpn: readonly string[];
}

/** The most bytes read before the handshake is handed over: one TLS record and its header. */
export const HELLO_MAX = 5 + 16_384;

/**
 * Reads the ClientHello at the start of a connection (RFC 8446 4.1.2, RFC 6066 3,
 * RFC 7301 3.1): undefined while more bytes are needed; null when the bytes are not a
 * ClientHello that fits in its first record (TLS then sees them and answers as it does);
 * otherwise the server name and the ALPN protocols offered. Never throws: the bytes are
 * the client's.
 */
export function readClientHello(bytes: Buffer): HelloOffer | undefined | null {
  if (bytes.length === 0) return undefined;
  if (bytes[0] !== 0x16) return null; // not a handshake record
  if (bytes.length < 5) return undefined;
  const recordEnd = 5 + bytes.readUInt16BE(3);
  if (recordEnd > HELLO_MAX) return null;
  if (bytes.length < recordEnd) return undefined;
  let at = 5;
  const need = (n: number): boolean => at + n <= recordEnd;
  if (!need(4) || bytes[at] !== 0x01) return null; // ClientHello
  const helloEnd = at + 4 + bytes.readUIntBE(at + 1, 3);
  if (helloEnd > recordEnd) return null; // spread over records: not routed
  at += 4 + 2 + 32; // type and length, legacy_version, random
  const skip = (lengthBytes: 1 | 2): boolean => {
    if (!need(lengthBytes)) return false;
    const length = bytes.readUIntBE(at, lengthBytes);
    at += lengthBytes + length;
    return at <= helloEnd;
  };
  if (!skip(1) || !skip(2) || !skip(1)) return null; // session id, cipher suites, compression methods
  if (at === helloEnd) return { servername: undefined, alpn: [] }; // no extensions
  if (at + 2 > helloEnd) return null;
  const extensionsEnd = at + 2 + bytes.readUInt16BE(at);
  if (extensionsEnd > helloEnd) return null;
  at += 2;
  let servername: string | undefined;
  const alpn: string[] = [];
  while (at + 4 <= extensionsEnd) {
    const type = bytes.readUInt16BE(at);
    const end = at + 4 + bytes.readUInt16BE(at + 2);
    if (end > extensionsEnd) return null;
    const body = bytes.subarray(at + 4, end);
    if (type === 0 && body.length >= 5 && body[2] === 0) {
      // server_name: list length, then host_name (type 0) with its length
      const length = body.readUInt16BE(3);
      if (5 + length <= body.length) servername = body.subarray(5, 5 + length).toString('latin1').toLowerCase();
    } else if (type === 16 && body.length >= 2) {
      // application_layer_protocol_negotiation: list length, then length-prefixed names
      let p = 2;
      const listEnd = Math.min(body.length, 2 + body.readUInt16BE(0));
      while (p < listEnd) {
        const length = body[p]!;
        if (p + 1 + length > listEnd) break;
        alpn.push(body.subarray(p + 1, p + 1 + length).toString('latin1'));
        p += 1 + length;
      }
    }
    at = end;
  }
  return { servername, alpn };
}
