import type http from 'node:http';

/**
 * The client's request body as undici reads a stream body: its 'data', 'end', 'error' and
 * 'close', paused and resumed under backpressure. What undici does to a body it is done
 * with (destroy it) stays here: the client's request, whose rest berth may still have to
 * read (an early answer, berth's own error), is left to the handler.
 */
type Listener = (...args: any[]) => void; // eslint-disable-line @typescript-eslint/no-explicit-any -- an EventEmitter listener

export class RequestBody {
  destroyed = false;
  constructor(private readonly req: http.IncomingMessage) {
    // Nothing flows before undici listens: it attaches only once a connection is there.
    req.pause();
  }
  on(event: string, listener: Listener): this {
    this.req.on(event, listener);
    return this;
  }
  removeListener(event: string, listener: Listener): this {
    this.req.removeListener(event, listener);
    return this;
  }
  off(event: string, listener: Listener): this {
    return this.removeListener(event, listener);
  }
  pause(): void {
    this.req.pause();
  }
  resume(): void {
    if (!this.destroyed) this.req.resume();
  }
  /** Present only for undici's test of what a stream is; never piped. */
  pipe(): never {
    throw new Error('RequestBody is read by undici, not piped');
  }
  get errored(): Error | null {
    return this.req.errored;
  }
  get readableEnded(): boolean {
    return this.req.readableEnded;
  }
  get closed(): boolean {
    return this.req.closed;
  }
  destroy(): void {
    this.destroyed = true;
  }
}
