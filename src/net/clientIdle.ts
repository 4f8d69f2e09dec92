import type { Server, Socket } from 'node:net';

/**
 * Marks a client socket whose request waits for the upstream's answer. A mark on the socket
 * itself, not a WeakSet: a request sets and clears it, and a WeakSet's add and delete were
 * a microsecond of every small request (cpu profile, one worker).
 */
const AWAITING = Symbol('berth.awaitingUpstream');
type Marked = Socket & { [AWAITING]?: boolean };

/**
 * timeouts.clientIdle, the one inactivity limit on a client connection while a request is
 * in flight, and its one exception: a request whose body is complete and which waits for
 * the upstream's answer (the registry may hash a large blob for minutes before it answers
 * the final PUT) is governed by timeouts.upstreamResponse instead. A connection is closed
 * when it has been silent for the limit and does not wait so. Owned by the listener
 * (server/berth.ts); the request handler reports each request's phases.
 */
export class ClientIdle {
  #server: (Server & { timeout: number }) | undefined;

  /** @param limit ms; 0 = none */
  constructor(private limit: number) {}

  /** Applies the limit to the server's connections (its 'timeout' event). */
  enforceOn(server: Server & { timeout: number }): void {
    this.#server = server;
    server.timeout = this.limit;
    server.on('timeout', (socket: Socket) => {
      if ((socket as Marked)[AWAITING] !== true) socket.destroy();
    });
  }

  /**
   * A request began on the socket. Node sets the server's timeout again itself when a
   * request ends a keep-alive wait (22 and later; 20 set 0); what it does not renew is a
   * connection's limit from before a reload (its first request, or one pipelined behind
   * another): set here when it differs, since a socket's setTimeout costs a timer and a
   * bound function (about 0.4 KiB per small request when it ran for every one).
   */
  requestStarted(socket: Socket): void {
    if (socket.timeout !== this.limit) socket.setTimeout(this.limit);
  }

  /** The request's body is in and no answer has begun: the wait is the upstream's. */
  awaitingUpstream(socket: Socket): void {
    (socket as Marked)[AWAITING] = true;
  }

  /** A new limit (settings reloaded): for new connections, and each request from its start. */
  setLimit(limit: number): void {
    this.limit = limit;
    if (this.#server) this.#server.timeout = limit;
  }

  /** The answer began, or the request ended: the client's limit applies again. */
  answered(socket: Socket): void {
    if ((socket as Marked)[AWAITING] === true) (socket as Marked)[AWAITING] = false;
  }
}
