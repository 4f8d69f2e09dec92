import crypto from 'node:crypto';
import type { Logger } from 'pino';

/**
 * TLS session ticket keys, replaced on a schedule. A ticket (TLS 1.2 resumption, TLS 1.3
 * PSK) is encrypted with these keys, so whoever obtains them can decrypt every session
 * resumed with a ticket they issued: rotating them bounds what one leak exposes (forward
 * secrecy), as Mozilla's guidelines and Caddy do; Node, like nginx without
 * ssl_session_ticket_key files, keeps one set for the life of the process. Node holds a
 * single set, so a client whose ticket predates a rotation makes a full handshake once.
 *
 * With workers, the primary rotates and sends the keys to every worker (and to a worker
 * that starts later: Node hands it the first worker's original keys), so a session
 * resumes on whichever worker takes the connection.
 */

/** Node's layout: 16 bytes key name, 16 bytes HMAC secret, 16 bytes AES key. */
export const newTicketKeys = (): Buffer => crypto.randomBytes(48);

export interface TicketKeysMessage {
  readonly type: 'berth:ticket-keys';
  /** base64 of the 48 bytes (IPC messages are JSON). */
  readonly keys: string;
}

export function isTicketKeysMessage(message: unknown): message is TicketKeysMessage {
  return (message as TicketKeysMessage | undefined)?.type === 'berth:ticket-keys' && typeof (message as TicketKeysMessage).keys === 'string';
}

export const ticketKeysMessage = (keys: Buffer): TicketKeysMessage => ({ type: 'berth:ticket-keys', keys: keys.toString('base64') });

export interface TicketKeyRotation {
  /** The keys in service. */
  current(): Buffer;
  stop(): void;
}

/** Makes keys now, hands them to apply, and again every intervalMs (0 = never again), logging each replacement. */
export function rotateTicketKeys(intervalMs: number, apply: (keys: Buffer) => void, logger: Logger): TicketKeyRotation {
  let keys = newTicketKeys();
  apply(keys);
  const timer =
    intervalMs > 0
      ? setInterval(() => {
          keys = newTicketKeys();
          apply(keys);
          logger.info({ nextInSeconds: Math.round(intervalMs / 1000) }, 'TLS session ticket keys rotated');
        }, intervalMs)
      : undefined;
  timer?.unref();
  return { current: () => keys, stop: () => clearInterval(timer) };
}
