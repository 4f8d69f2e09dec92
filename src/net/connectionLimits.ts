import type { Socket } from 'node:net';
import { keyOf } from './accept.js';

/**
 * Caps on open client connections, overall and per client address. A connection over a
 * cap is still accepted and gets a clean answer to its first request (503, or 429 for
 * one client's excess, in the registry's error shape) and is then closed: a client sees
 * why and can retry, where a dropped connection looks like a network fault.
 */
export interface ConnectionLimits {
  /** Open connections per process; 0 = no cap. */
  readonly total: number;
  /** Open connections per client address; 0 = no cap. */
  readonly perClient: number;
}

export type Refusal = 'too_many_connections' | 'too_many_client_connections';

/**
 * Counted on the TCP connection, read on the TLS socket above it: both have the same peer
 * address and port, which is the key.
 */
const refusals = new Map<string, Refusal>();

/** Why the connection under this request is refused, if it is. */
export function refusalOf(socket: Socket): Refusal | undefined {
  return refusals.size === 0 ? undefined : refusals.get(keyOf(socket));
}

/** Returns the admission step for acceptConnections: counts the connection, marks it refused when over a cap. */
export function connectionCounter(limits: ConnectionLimits, onRefuse: (reason: Refusal) => void): (socket: Socket, client: string) => void {
  if (limits.total === 0 && limits.perClient === 0) return () => undefined;
  let open = 0;
  const perClient = new Map<string, number>();
  return (socket, client) => {
    const mine = (perClient.get(client) ?? 0) + 1;
    open++;
    perClient.set(client, mine);
    const key = keyOf(socket);
    socket.once('close', () => {
      refusals.delete(key);
      open--;
      const left = (perClient.get(client) ?? 1) - 1;
      if (left === 0) perClient.delete(client);
      else perClient.set(client, left);
    });
    const reason: Refusal | undefined =
      limits.total > 0 && open > limits.total ? 'too_many_connections' : limits.perClient > 0 && mine > limits.perClient ? 'too_many_client_connections' : undefined;
    if (reason) {
      refusals.set(key, reason);
      onRefuse(reason);
    }
  };
}
