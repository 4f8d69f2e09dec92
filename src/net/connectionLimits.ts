import fs from 'node:fs';
import type { Socket } from 'node:net';
import type { Connections, Refusal } from './connections.js';

/**
 * Caps on open client connections, overall and per client address, enforced as each
 * connection is accepted, before its TLS handshake: a connection that never completes a
 * handshake or a request holds a descriptor all the same. A connection over a cap is
 * still given a clean answer to its first request (503, or 429 for one client's excess,
 * in the registry's error shape) and is then closed: a client sees why and can retry,
 * where a dropped connection looks like a network fault. At most REFUSALS_ANSWERED such
 * answers are pending at once, each for at most the handshake deadline and one request;
 * past that, connections over a cap are closed at once, so a flood of idle connections
 * holds no more than the caps plus that many descriptors.
 */
export interface ConnectionLimits {
  /** Open connections per process; 0 = no cap. */
  readonly total: number;
  /** Open connections per client address; 0 = no cap. */
  readonly perClient: number;
}

/** Connections over a cap that are given an answer at the same time; more are closed at once. */
export const REFUSALS_ANSWERED = 64;

export interface AdmissionEvents {
  /** A connection over a cap: `answered` gets a 503/429, `closed` was closed at once. */
  refused(reason: Refusal, how: 'answered' | 'closed'): void;
}

/** The admission step for acceptConnections, with the caps it enforces; they change on a settings reload. */
export interface ConnectionCounter {
  /** Counts the connection and returns true to hand it to TLS (see connectionCounter). */
  admit(socket: Socket, client: string): boolean;
  /** New caps for new connections; those open stay open, and count. */
  setLimits(limits: ConnectionLimits): void;
}

/**
 * The admission step for acceptConnections: counts the connection and returns true to hand
 * it to TLS; marks it refused in `connections` when over a cap (read on the TLS socket
 * above it: Connections.refusalOf), or closes it and returns false when too many refusals
 * are pending. Connections are counted even with no cap, so that caps set by a reload see
 * those already open. `answerWithin` bounds how long a refused connection may take to ask
 * its request (ms).
 */
export function connectionCounter(limits: ConnectionLimits, events: AdmissionEvents, answerWithin: number, connections: Connections): ConnectionCounter {
  let caps = limits;
  let open = 0;
  let answering = 0;
  const perClient = new Map<string, number>();
  const admit = (socket: Socket, client: string): boolean => {
    const mine = (perClient.get(client) ?? 0) + 1;
    const reason: Refusal | undefined =
      caps.total > 0 && open >= caps.total ? 'too_many_connections' : caps.perClient > 0 && mine > caps.perClient ? 'too_many_client_connections' : undefined;
    if (reason && answering >= REFUSALS_ANSWERED) {
      events.refused(reason, 'closed');
      socket.destroy();
      return false;
    }
    open++;
    perClient.set(client, mine);
    let timer: NodeJS.Timeout | undefined;
    if (reason) {
      answering++;
      connections.setRefused(socket, reason);
      timer = setTimeout(() => socket.destroy(), answerWithin);
      timer.unref();
      events.refused(reason, 'answered');
    }
    socket.once('close', () => {
      if (reason) {
        answering--;
        clearTimeout(timer);
      }
      open--;
      const left = (perClient.get(client) ?? 1) - 1;
      if (left === 0) perClient.delete(client);
      else perClient.set(client, left);
    });
    return true;
  };
  return { admit, setLimits: (next) => void (caps = next) };
}

/** Descriptors a process keeps for itself: logs, the listeners, certificate reloads, Node's own. */
const DESCRIPTORS_RESERVED = 128;

/**
 * The most client connections the process's file descriptor limit allows: each may need
 * one upstream connection too, and refused connections wait for their answer. Undefined
 * where the limit cannot be read (not Linux) or is unlimited.
 */
export function connectionsForDescriptors(limitsFile = '/proc/self/limits'): { connections: number; descriptors: number } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(limitsFile, 'utf8');
  } catch {
    return undefined;
  }
  const soft = /^Max open files\s+(\d+|unlimited)/m.exec(text)?.[1];
  if (soft === undefined || soft === 'unlimited') return undefined;
  const descriptors = Number(soft);
  return { descriptors, connections: Math.max(16, Math.floor((descriptors - DESCRIPTORS_RESERVED - REFUSALS_ANSWERED) / 2)) };
}
