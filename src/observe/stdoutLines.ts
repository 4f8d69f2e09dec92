import fs from 'node:fs';

/** How much log output may wait for a slow reader before lines are dropped. */
export const MAX_PENDING_BYTES = 16 * 1024 * 1024;

/** PIPE_BUF on Linux: a write this size or smaller to a pipe is never interleaved with another's. */
export const ATOMIC_WRITE = 4096;

/** How long a write that found the reader's pipe full waits before it tries again, ms. */
const RETRY_MS = 10;

/**
 * berth's log lines on their way to a file descriptor (stdout). The lines written during
 * one turn of the event loop go out together at its end, by write(2) on the loop's own
 * thread, in pieces of whole lines within PIPE_BUF, so the workers' lines never interleave
 * on a shared pipe. Writing never waits: Node puts a pipe on stdout in non-blocking mode,
 * so a write to a full one fails at once (EAGAIN) and is tried again a little later while
 * lines keep arriving. At most MAX_PENDING_BYTES wait; beyond, lines are dropped and
 * counted, and the count is logged once the reader catches up. A stdout nobody can write
 * to any more (EPIPE, EBADF) loses its lines, and berth keeps serving.
 *
 * (sonic-boom, pino's destination, hands each batch to libuv's threadpool instead: a thread
 * woken for the write, and the loop woken back when it is done.)
 */
export class StdoutLines {
  readonly #fd: number;
  readonly #maxPending: number;
  /** Lines written since the last write(2), not yet bytes. */
  #queued = '';
  /** Bytes a write(2) did not take yet, from #sentUpTo on. */
  #unsent: Buffer | undefined;
  #sentUpTo = 0;
  #scheduled = false;
  #retry: NodeJS.Timeout | undefined;
  #dropped = 0;
  #flushed: (() => void)[] = [];

  constructor(fd: number, maxPending = MAX_PENDING_BYTES) {
    this.#fd = fd;
    this.#maxPending = maxPending;
  }

  /** Queues a whole line (ending in "\n"); false when it was dropped, the reader being too far behind. */
  write(line: string): boolean {
    if (this.pendingBytes() + line.length > this.#maxPending) {
      this.#dropped++;
      return false;
    }
    this.#queued += line;
    if (!this.#scheduled && this.#retry === undefined) {
      this.#scheduled = true;
      setImmediate(this.#writeOut);
    }
    return true;
  }

  /** Writes what it can now; `done` runs once every line queued so far is out (or lost with stdout). */
  flush(done: () => void = () => {}): void {
    this.#flushed.push(done);
    this.#writeOut();
  }

  /** Bytes waiting (characters, for lines still queued as text). */
  pendingBytes(): number {
    return this.#queued.length + (this.#unsent === undefined ? 0 : this.#unsent.length - this.#sentUpTo);
  }

  readonly #writeOut = (): void => {
    this.#scheduled = false;
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    this.#retry = undefined;
    for (;;) {
      if (this.#unsent === undefined) {
        if (this.#queued === '') break;
        this.#unsent = Buffer.from(this.#queued);
        this.#sentUpTo = 0;
        this.#queued = '';
      }
      const unsent = this.#unsent;
      let end = Math.min(unsent.length, this.#sentUpTo + ATOMIC_WRITE);
      if (end < unsent.length) {
        const newline = unsent.lastIndexOf(0x0a, end - 1);
        // A line longer than PIPE_BUF cannot go out whole: it goes in pieces.
        if (newline >= this.#sentUpTo) end = newline + 1;
      }
      try {
        this.#sentUpTo += fs.writeSync(this.#fd, unsent, this.#sentUpTo, end - this.#sentUpTo);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          this.#retry = setTimeout(this.#writeOut, RETRY_MS);
          this.#retry.unref();
          return;
        }
        // Nobody can read these lines any more.
        this.#queued = '';
        this.#unsent = undefined;
        break;
      }
      if (this.#sentUpTo >= unsent.length) this.#unsent = undefined;
    }
    if (this.#dropped > 0) {
      const line = JSON.stringify({ level: 40, time: Date.now(), pid: process.pid, msg: 'log lines dropped: stdout was not read in time', dropped: this.#dropped });
      this.#dropped = 0;
      this.write(line + '\n');
      return;
    }
    const flushed = this.#flushed;
    this.#flushed = [];
    for (const done of flushed) done();
  };
}
