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
 * With workers, the primary makes the keys and rotates them; a worker asks for them before
 * it listens and gets every rotation, so a session resumes on whichever worker takes the
 * connection, a worker started later included (Node's own cluster sharing would hand that
 * one the first worker's original keys; server/https.ts turns it off).
 */

/** Node's layout: 16 bytes key name, 16 bytes HMAC secret, 16 bytes AES key. */
export const newTicketKeys = (): Buffer => crypto.randomBytes(48);

/** Primary → worker: the keys to serve with (the answer to a request, and each rotation). */
export interface TicketKeysMessage {
  readonly type: 'berth:ticket-keys';
  /** base64 of the 48 bytes (IPC messages are JSON). */
  readonly keys: string;
}

/** Worker → primary, before it listens: which keys? */
export const TICKET_KEYS_REQUEST = { type: 'berth:ticket-keys?' } as const;

export function isTicketKeysMessage(message: unknown): message is TicketKeysMessage {
  return (message as TicketKeysMessage | undefined)?.type === 'berth:ticket-keys' && typeof (message as TicketKeysMessage).keys === 'string';
}

export function isTicketKeysRequest(message: unknown): boolean {
  return (message as { type?: unknown } | undefined)?.type === TICKET_KEYS_REQUEST.type;
}

export const ticketKeysMessage = (keys: Buffer): TicketKeysMessage => ({ type: 'berth:ticket-keys', keys: keys.toString('base64') });

/** The keys in service and their replacements, as a server needs them. */
export interface TicketKeySource {
  current(): Buffer;
  /** Called with each new set from now on. */
  onChange(listener: (keys: Buffer) => void): void;
}

/** Holds the current keys and tells listeners of each new set. */
function keyHolder(first: Buffer): TicketKeySource & { set(keys: Buffer): void } {
  let keys = first;
  const listeners: ((keys: Buffer) => void)[] = [];
  return {
    current: () => keys,
    onChange: (listener) => void listeners.push(listener),
    set(next) {
      keys = next;
      for (const listener of listeners) listener(next);
    },
  };
}

/** Makes the first keys now, and new ones every intervalMs (0 = never), logging each replacement. */
export function rotateTicketKeys(intervalMs: number, logger: Logger): TicketKeySource & { stop(): void } {
  const holder = keyHolder(newTicketKeys());
  const timer =
    intervalMs > 0
      ? setInterval(() => {
          holder.set(newTicketKeys());
          logger.info({ nextInSeconds: Math.round(intervalMs / 1000) }, 'TLS session ticket keys rotated');
        }, intervalMs)
      : undefined;
  timer?.unref();
  return { current: holder.current, onChange: holder.onChange, stop: () => clearInterval(timer) };
}

/**
 * A worker's keys, asked of the primary before it listens, so that it never serves with
 * keys of its own; later rotations arrive on the same channel (logged at debug as each
 * comes into service).
 */
export function ticketKeysFromPrimary(logger: Logger): Promise<TicketKeySource> {
  return new Promise((resolve) => {
    let holder: ReturnType<typeof keyHolder> | undefined;
    process.on('message', (message: unknown) => {
      if (!isTicketKeysMessage(message)) return;
      const keys = Buffer.from(message.keys, 'base64');
      if (holder) {
        holder.set(keys);
        return void logger.debug('TLS session ticket keys from the primary in service');
      }
      holder = keyHolder(keys);
      resolve(holder);
    });
    process.send?.(TICKET_KEYS_REQUEST);
  });
}
