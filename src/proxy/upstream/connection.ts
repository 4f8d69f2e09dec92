import type http from 'node:http';
import type net from 'node:net';
import { ChunkedBody } from './chunked.js';
import { MalformedAnswer, parseResponseHead, type ParsedHead } from './responseHead.js';

/**
 * One of berth's connections to the upstream (kept by pool.ts): HTTP/1.1, one request at a
 * time (no pipelining), kept open between requests. A connection goes back to the pool only
 * after an answer framed by its headers ended exactly where its framing said, with the whole
 * request sent and nothing left over; any other end (an answer read to its connection's close, a
 * `Connection: close`, bytes beyond the answer, an exchange cut short) closes it.
 */

/** What a connection tells the exchange it carries (proxy/transport.ts). */
export interface ExchangeSink {
  /** The final answer's head (informational answers are skipped). False: refused, and the connection is dropped. */
  onHead(head: ParsedHead): boolean;
  /** A slice of the answer's body. False: the connection stops reading until `resume`. */
  onData(chunk: Buffer): boolean;
  /** The answer is complete. */
  onEnd(): void;
  /** Body bytes went out to the upstream. */
  onSent(): void;
  /** The exchange failed; `answered`: the final answer's head had arrived. Called at most once, and never after onEnd. */
  onFail(error: Error, answered: boolean): void;
}

/** How the request body goes out: as Node's parser delivers it with a Content-Length, or re-chunked. */
export type BodyFraming = 'length' | 'chunked';

/** The upstream closed the connection before the answer was complete (or before any). */
export class UpstreamClosed extends Error {
  readonly code = 'BERTH_UPSTREAM_CLOSED';
  constructor(detail: string) {
    super(detail);
    this.name = 'UpstreamClosed';
  }
}

/** No connection to the upstream within timeouts.upstreamConnect. */
export class ConnectTimeout extends Error {
  readonly code = 'BERTH_CONNECT_TIMEOUT';
  constructor(ms: number) {
    super(`no connection within ${ms} ms`);
    this.name = 'ConnectTimeout';
  }
}

const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');

export class UpstreamConnection {
  /** The exchange the connection carries; undefined while it is free. */
  private sink: ExchangeSink | undefined = undefined;
  private head = false;
  private isHead = false;
  /** A head's first bytes, while the rest is awaited. */
  private pending: Buffer | undefined = undefined;
  private parsed: ParsedHead | undefined = undefined;
  private remaining = 0;
  private chunked: ChunkedBody | undefined = undefined;
  private answered = false;
  private responseDone = false;
  private reusable = true;
  private requestDone = true;
  private body: http.IncomingMessage | undefined = undefined;
  private bodyFraming: BodyFraming = 'length';
  /** Body bytes still to send with a Content-Length framing. */
  private bodyLeft = 0;
  private waitingDrain = false;
  /** The request's head while it waits for the body's first bytes. */
  private unsent: string | undefined = undefined;
  private error: Error | undefined = undefined;
  closed = false;
  /** When it went back to the pool, ms (performance.now()). */
  freeSince = 0;
  /** How long it may stay free: FREE_CONNECTION_MS, or less when the upstream says it closes sooner. */
  freeFor = FREE_CONNECTION_MS;

  constructor(
    private readonly socket: net.Socket,
    private readonly pool: ConnectionOwner,
  ) {
    socket.on('data', (bytes: Buffer) => this.received(bytes));
    socket.on('end', () => this.guarded(() => this.ended()));
    socket.on('error', (err: Error) => (this.error ??= err));
    socket.on('close', () => this.guarded(() => this.gone()));
  }

  /** Sends a request: its head now, its body (if any) as `req` delivers it. */
  start(sink: ExchangeSink, method: string, head: string, req: http.IncomingMessage, framing: BodyFraming | undefined): void {
    this.sink = sink;
    this.isHead = method === 'HEAD';
    this.head = false;
    this.parsed = undefined;
    this.chunked = undefined;
    this.answered = false;
    this.responseDone = false;
    if (framing === undefined) {
      this.socket.write(head, 'latin1');
      this.requestDone = true;
      return;
    }
    // Written with the body's first bytes: a request whose body never comes (the client
    // left, or Node's parser refused what followed its head) never reaches the upstream.
    this.unsent = head;
    this.requestDone = false;
    this.body = req;
    this.bodyFraming = framing;
    this.bodyLeft = framing === 'length' ? Number(req.headers['content-length']) : Infinity;
    req.on('data', this.bodyData);
    req.on('end', this.bodyEnd);
  }

  /** The exchange `sink` ends early (the client left, a timeout, a refused answer): the connection is dropped. */
  abort(sink: ExchangeSink): void {
    if (this.sink !== sink) return;
    this.sink = undefined;
    this.detachBody();
    this.socket.destroy();
  }

  /** Reads the answer again after onData returned false. */
  resume(sink: ExchangeSink): void {
    if (this.sink === sink) this.socket.resume();
  }

  /** Whether its socket is gone, or going (its 'close' not yet emitted). */
  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  /** Closes a free connection (the pool's idle limit, the transport closed). */
  destroy(): void {
    this.socket.destroy();
  }

  private readonly bodyData = (chunk: Buffer): void => {
    if (chunk.length === 0 || this.bodyLeft === 0) return;
    const socket = this.socket;
    let ok: boolean;
    if (this.bodyFraming === 'chunked') {
      socket.cork();
      this.writeHead();
      socket.write(chunk.length.toString(16) + '\r\n', 'latin1');
      socket.write(chunk);
      ok = socket.write(CRLF);
      socket.uncork();
    } else {
      // Never more than the length berth sent (the handler's framing guard ends the client's connection).
      if (chunk.length > this.bodyLeft) chunk = chunk.subarray(0, this.bodyLeft);
      this.bodyLeft -= chunk.length;
      if (this.unsent !== undefined) {
        socket.cork();
        this.writeHead();
        ok = socket.write(chunk);
        socket.uncork();
      } else ok = socket.write(chunk);
    }
    this.sink?.onSent();
    if (!ok && !this.waitingDrain) {
      this.waitingDrain = true;
      this.body!.pause();
      socket.once('drain', this.bodyDrained);
    }
  };

  private readonly bodyDrained = (): void => {
    this.waitingDrain = false;
    this.body?.resume();
  };

  /** The request's head, if it is still to go (it goes with the body's first bytes). */
  private writeHead(): void {
    if (this.unsent === undefined) return;
    this.socket.write(this.unsent, 'latin1');
    this.unsent = undefined;
  }

  private readonly bodyEnd = (): void => {
    this.writeHead(); // a chunked body with no data
    if (this.bodyFraming === 'chunked') this.socket.write(LAST_CHUNK);
    this.detachBody();
    this.requestDone = true;
    if (this.responseDone) this.release();
  };

  private detachBody(): void {
    const body = this.body;
    if (body === undefined) return;
    this.body = undefined;
    body.removeListener('data', this.bodyData);
    body.removeListener('end', this.bodyEnd);
    if (this.waitingDrain) {
      this.waitingDrain = false;
      this.socket.removeListener('drain', this.bodyDrained);
    }
  }

  private received(bytes: Buffer): void {
    const sink = this.sink;
    if (sink === undefined || this.responseDone || this.unsent !== undefined) {
      // Bytes nobody asked for (none, or none yet: a request with a body waits for its first
      // bytes): the connection can no longer be trusted to frame the next answer.
      this.socket.destroy();
      return;
    }
    this.answered = true;
    try {
      this.read(sink, bytes);
    } catch (err) {
      if (this.sink !== sink) return;
      if (!(err instanceof MalformedAnswer)) this.pool.bug(err);
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private read(sink: ExchangeSink, received: Buffer): void {
    let bytes = received;
    let at = 0;
    if (!this.head) {
      if (this.pending !== undefined) {
        bytes = Buffer.concat([this.pending, received]);
        this.pending = undefined;
      }
      let parsed: ParsedHead | undefined;
      for (;;) {
        parsed = parseResponseHead(at === 0 ? bytes : bytes.subarray(at), this.isHead);
        if (parsed === undefined) {
          this.pending = at === 0 ? bytes : bytes.subarray(at);
          return;
        }
        // berth never forwards Expect: a 100 is not an answer to anything it sent.
        if (parsed.status === 100) throw new MalformedAnswer('100 Continue to a request that did not expect it');
        at += parsed.size;
        // 102, 103: informational, the final answer follows (Node's client relays none either).
        if (parsed.status > 101 && parsed.status < 200) {
          if (at === bytes.length) return;
          continue;
        }
        break;
      }
      this.head = true;
      this.parsed = parsed;
      if (!parsed.keepAlive) this.reusable = false;
      if (parsed.keptFor !== undefined) {
        // Not reused when the upstream may already be closing it (undici's margin: 2 s).
        this.freeFor = Math.min(FREE_CONNECTION_MS, parsed.keptFor - KEPT_FOR_MARGIN_MS);
        if (this.freeFor <= 0) this.reusable = false;
      }
      const framing = parsed.framing;
      if (framing.kind === 'length') this.remaining = framing.length;
      else if (framing.kind === 'chunked') this.chunked = new ChunkedBody();
      else if (framing.kind === 'close') this.reusable = false;
      if (!sink.onHead(parsed)) {
        this.abort(sink);
        return;
      }
      if (this.sink !== sink) return;
    }
    const kind = this.parsed!.framing.kind;
    if (kind === 'length') {
      const take = Math.min(this.remaining, bytes.length - at);
      if (take > 0) {
        this.remaining -= take;
        this.deliver(sink, at === 0 && take === bytes.length ? bytes : bytes.subarray(at, at + take));
        at += take;
        if (this.sink !== sink) return;
      }
      if (this.remaining === 0) this.complete(sink, at < bytes.length);
    } else if (kind === 'chunked') {
      const chunked = this.chunked!;
      at = chunked.read(bytes, at, (slice) => this.deliver(sink, slice));
      if (this.sink !== sink) return;
      if (chunked.done) this.complete(sink, at < bytes.length);
    } else if (kind === 'close') {
      if (at < bytes.length) this.deliver(sink, at === 0 ? bytes : bytes.subarray(at));
    } else {
      this.complete(sink, at < bytes.length);
    }
  }

  private deliver(sink: ExchangeSink, slice: Buffer): void {
    if (this.sink !== sink) return;
    if (!sink.onData(slice) && this.sink === sink) this.socket.pause();
  }

  /** The answer ended where its framing said; `leftover`: bytes came after it. */
  private complete(sink: ExchangeSink, leftover: boolean): void {
    this.responseDone = true;
    if (leftover) this.reusable = false;
    sink.onEnd();
    if (this.requestDone) this.release();
  }

  /** Both ways done: back to the pool, or closed. */
  private release(): void {
    if (this.sink === undefined) return;
    this.sink = undefined;
    if (!this.reusable || this.closed) return void this.socket.destroy();
    // The answer's last bytes may have filled the client response: a free connection reads on
    // (to see its close, or bytes nobody asked for).
    if (this.socket.isPaused()) this.socket.resume();
    this.pool.release(this);
  }

  /** The upstream ended its side: the end of an answer read to the close, else a cut. */
  private ended(): void {
    const sink = this.sink;
    if (sink !== undefined && this.head && this.parsed!.framing.kind === 'close') {
      this.reusable = false;
      this.complete(sink, false);
      return;
    }
    if (sink !== undefined) this.fail(new UpstreamClosed(this.answered ? 'the registry closed the connection during its answer' : 'the registry closed the connection before answering'));
    this.socket.destroy();
  }

  private gone(): void {
    this.closed = true;
    this.pool.forget(this);
    if (this.sink !== undefined) this.fail(this.error ?? new UpstreamClosed(this.answered ? 'the connection to the registry closed during its answer' : 'the connection to the registry closed before an answer'));
  }

  /**
   * Runs what tells the exchange of an end: an exception out of it (berth's bug) is reported
   * and the connection dropped, never thrown into the socket's event, which would end the
   * process.
   */
  private guarded(tell: () => void): void {
    try {
      tell();
    } catch (err) {
      this.pool.bug(err);
      this.sink = undefined;
      this.socket.destroy();
    }
  }

  private fail(error: Error): void {
    const sink = this.sink;
    if (sink === undefined) return;
    this.sink = undefined;
    this.detachBody();
    this.socket.destroy();
    sink.onFail(error, this.head);
  }
}

/** What a connection tells its pool (pool.ts). */
export interface ConnectionOwner {
  release(connection: UpstreamConnection): void;
  forget(connection: UpstreamConnection): void;
  /** An exception out of berth's own code while reading an answer. */
  bug(err: unknown): void;
}

/** How long an unused upstream connection is kept: well under common upstream idle limits (nginx: 75 s). */
export const FREE_CONNECTION_MS = 30_000;
/** Taken off an upstream's announced idle limit (`Keep-Alive: timeout=N`): its close may be on its way. */
const KEPT_FOR_MARGIN_MS = 2000;
