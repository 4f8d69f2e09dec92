import type { Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import { normalizeAddress, type AddressSet } from './cidr.js';
import type { Connections } from './connections.js';
import { PROXY_HEADER_MAX, ProxyProtocolError, parseProxyHeader, startsLikeProxyHeader } from './proxyProtocol.js';

/**
 * Every TCP connection to the TLS listener passes here before the TLS handshake: from a
 * source in proxyProtocol.from, a PROXY protocol header (v1 or v2) is read off the front
 * and its client address becomes the connection's client; then the connection is counted
 * (connection caps) and handed to TLS. From anyone else nothing is read: a PROXY header
 * there is just bytes the TLS handshake refuses.
 */

export interface AcceptOptions {
  /** Sources whose connections may start with a PROXY header. */
  readonly proxyFrom: AddressSet;
  /** Time a trusted source has to send its header, ms. */
  readonly headerTimeout: number;
  readonly logger: Logger;
  /** Called once per connection with its client address, before TLS; may mark it refused, or close it (false). */
  readonly admit: (socket: Socket, client: string) => boolean;
  /** The listener's connections: a client a PROXY header names is kept there. */
  readonly connections: Connections;
  /**
   * When it returns a function (an ACME TLS-ALPN-01 validation is pending), each admitted
   * connection's first bytes are shown to it before TLS: it returns undefined to see more,
   * false to leave the connection to TLS, or a function that takes the connection (its
   * bytes put back first).
   */
  readonly peek?: () => Peek | undefined;
}

export type Peek = (bytes: Buffer) => ((socket: Socket) => void) | false | undefined;

export function acceptConnections(server: Server, options: AcceptOptions): void {
  // tls.Server starts the handshake from its own 'connection' listener: run it after ours.
  const tlsListeners = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  const toTls = (socket: Socket): void => {
    for (const listener of tlsListeners) listener.call(server, socket);
  };
  const handOver = (socket: Socket, client: string): void => {
    if (!options.admit(socket, client)) return;
    const peek = options.peek?.();
    if (peek === undefined) return toTls(socket);
    let seen: Buffer = Buffer.alloc(0);
    // A client that sends nothing is closed as one that sends no PROXY header would be.
    const timer = setTimeout(() => socket.destroy(), options.headerTimeout);
    socket.once('close', () => clearTimeout(timer));
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const take = peek(seen);
      if (take === undefined) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      socket.unshift(seen);
      if (take) take(socket);
      else toTls(socket);
    };
    socket.on('data', onData);
  };

  server.on('connection', (socket: Socket) => {
    const peer = normalizeAddress(socket.remoteAddress ?? '');
    if (!options.proxyFrom.has(peer)) return handOver(socket, peer);

    let buffered: Buffer = Buffer.alloc(0);
    const fail = (reason: string): void => {
      options.logger.debug({ peer, reason }, 'PROXY protocol header refused');
      socket.destroy();
    };
    const timer = setTimeout(() => fail('no header in time'), options.headerTimeout);
    socket.once('close', () => clearTimeout(timer));
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      let header;
      if (!startsLikeProxyHeader(buffered)) {
        // No header (a health check, or a client let through directly): TLS from the start.
        finish(buffered, peer);
        return;
      }
      try {
        header = parseProxyHeader(buffered);
      } catch (err) {
        if (err instanceof ProxyProtocolError) return fail(err.message);
        throw err;
      }
      if (header === undefined) {
        if (buffered.length > PROXY_HEADER_MAX) fail('header too long');
        return;
      }
      const client = header.source ? normalizeAddress(header.source.address) : peer;
      if (header.source) options.connections.setClient(socket, client);
      finish(buffered.subarray(header.length), client);
    };
    const finish = (rest: Buffer, client: string): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      // TLS reads what is buffered on the socket first (TLSSocket's initRead).
      if (rest.length > 0) socket.unshift(rest);
      handOver(socket, client);
    };
    socket.on('data', onData);
  });
}
