/** Why a connection over a cap is refused (net/connectionLimits.ts): overall, or its client's. */
export type Refusal = 'too_many_connections' | 'too_many_client_connections';

interface Peer {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
}

/** Names a connection by its peer's address and port: the same on the TCP socket and the TLS socket above it. */
export const keyOf = (socket: Peer): string => `${socket.remoteAddress}|${socket.remotePort}`;

/**
 * What one listener knows of its client connections beyond the sockets themselves: the
 * client a PROXY protocol header named (net/accept.ts) and the refusal of a connection over
 * a cap (net/connectionLimits.ts). Learnt on the TCP connection, before TLS, and read on
 * the TLS socket above it, so both are kept by the peer's address and port, each until its
 * connection closes. Owned by the listener (server/berth.ts), never shared by two.
 */
export class Connections {
  readonly #clients = new Map<string, string>();
  readonly #refusals = new Map<string, Refusal>();

  /** The client address of the connection under this socket: from a PROXY header, or its peer. */
  clientOf(socket: Peer): string {
    return (this.#clients.size === 0 ? undefined : this.#clients.get(keyOf(socket))) ?? socket.remoteAddress ?? '';
  }

  /** Why the connection under this socket is refused, if it is. */
  refusalOf(socket: Peer): Refusal | undefined {
    return this.#refusals.size === 0 ? undefined : this.#refusals.get(keyOf(socket));
  }

  /** A PROXY header named the connection's client; kept until the connection closes. */
  setClient(socket: Closing, client: string): void {
    keepUntilClose(this.#clients, socket, client);
  }

  /** The connection is over a cap; kept until the connection closes. */
  setRefused(socket: Closing, reason: Refusal): void {
    keepUntilClose(this.#refusals, socket, reason);
  }
}

type Closing = Peer & { once(event: 'close', listener: () => void): unknown };

function keepUntilClose<T>(map: Map<string, T>, socket: Closing, value: T): void {
  const key = keyOf(socket);
  map.set(key, value);
  socket.once('close', () => map.delete(key));
}
