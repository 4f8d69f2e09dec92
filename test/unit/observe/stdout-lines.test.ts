import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { ATOMIC_WRITE, StdoutLines } from '../../../src/observe/stdoutLines.js';

/**
 * StdoutLines against a real pipe (a FIFO, as Docker's and Kubernetes' log collectors give
 * a container's stdout), opened non-blocking as Node leaves stdout: the reader is stalled,
 * slow or gone, and the lines must still arrive whole, in order, never interleaved, or be
 * counted as dropped.
 */

interface Pipe {
  readonly reader: number;
  readonly writer: number;
  /** Reads what the pipe holds now, or at most `max` bytes of it. */
  drain(max?: number): string;
  /** The reader goes away. */
  closeReader(): void;
}

const atEnd: (() => void)[] = [];
t.teardown(() => {
  for (const close of atEnd) close();
});

function fifo(t: Test): Pipe {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-fifo-'));
  const file = path.join(dir, 'stdout');
  if (spawnSync('mkfifo', [file]).status !== 0) throw new Error('mkfifo failed');
  // The reader first: a non-blocking writer needs one.
  const reader = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const writer = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  const closed = new Set<number>();
  const close = (fd: number): void => {
    if (!closed.has(fd)) fs.closeSync(fd);
    closed.add(fd);
  };
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // Closed when the whole file is done, not after each test: a writer of a test that failed
  // may still retry its writes, and must not find its descriptor number reused by the next test's pipe.
  atEnd.push(() => {
    close(writer);
    close(reader);
  });
  const buffer = Buffer.alloc(1 << 16);
  // A read may end inside a character: the decoder keeps its first bytes for the next.
  const decoder = new StringDecoder('utf8');
  return {
    reader,
    writer,
    closeReader: () => close(reader),
    drain(max = Infinity) {
      const parts: string[] = [];
      for (let left = max; left > 0; ) {
        let n = 0;
        try {
          n = fs.readSync(reader, buffer, 0, Math.min(buffer.length, left), null);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break;
          throw err;
        }
        if (n === 0) break;
        parts.push(decoder.write(buffer.subarray(0, n)));
        left -= n;
      }
      return parts.join('');
    },
  };
}

/** A log line of about `size` bytes, some of them outside ASCII, naming its writer and number. */
function line(writer: string, n: number, size: number): string {
  return JSON.stringify({ writer, n, pad: 'é✓x'.repeat(Math.max(0, Math.floor(size / 6))) }) + '\n';
}

/** Reads the pipe until `done` says the text (after `before`) holds all it waits for, or 30 s pass; `max` bytes at a time. */
async function readUntil(pipe: Pipe, done: (text: string) => boolean, max?: () => number, before = ''): Promise<string> {
  let text = before;
  const deadline = Date.now() + 30_000;
  while (!done(text) && Date.now() < deadline) {
    text += pipe.drain(max?.());
    await sleep(2);
  }
  return text;
}

t.test('two writers on one pipe, a slow reader: every line arrives whole and in order, none interleaved', async (t) => {
  const pipe = fifo(t);
  const a = new StdoutLines(pipe.writer);
  const b = new StdoutLines(pipe.writer);
  const count = 800;
  // Up to most of PIPE_BUF per line: a write of several lines fills the pipe's free space only in part.
  const sizes = Array.from({ length: count }, (_, i) => 40 + ((i * 7919) % (ATOMIC_WRITE - 200)));
  let seed = 7;
  const sip = (): number => (seed = (seed * 48271) % 2147483647) % 12_000;
  let text = '';
  for (let i = 0; i < count; i++) {
    t.equal(a.write(line('a', i, sizes[i]!)) && b.write(line('b', i, sizes[count - 1 - i]!)), true, 'queued');
    // A turn of the event loop every few lines; the reader takes a little now and then.
    if (i % 5 === 4) await new Promise((resolve) => setImmediate(resolve));
    // A little at a time: the pipe often has room for one writer's next piece and not the other's.
    if (i % 3 === 0) text += pipe.drain(sip());
  }
  text = await readUntil(pipe, (all) => all.split('\n').length > 2 * count, sip, text);
  const lines = text.split('\n').filter(Boolean);
  t.equal(lines.length, 2 * count, 'every line arrived');
  const next = { a: 0, b: 0 };
  let whole = true;
  for (const l of lines) {
    let parsed: { writer: 'a' | 'b'; n: number };
    try {
      parsed = JSON.parse(l) as typeof parsed;
    } catch {
      whole = false;
      break;
    }
    if (parsed.n !== next[parsed.writer]) whole = false;
    next[parsed.writer]++;
  }
  t.ok(whole, 'each line is one JSON object, and each writer\'s lines come in their order');
});

t.test('a stalled reader: writing never blocks, lines beyond the limit are dropped and counted, the rest arrive', async (t) => {
  const pipe = fifo(t);
  const limit = 256 * 1024;
  const out = new StdoutLines(pipe.writer, limit);
  let dropped = 0;
  const started = performance.now();
  for (let i = 0; i < 2000; i++) {
    if (!out.write(line('a', i, 900))) dropped++;
    if (i % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
  }
  t.ok(performance.now() - started < 5000, 'writes returned at once, the pipe full');
  t.ok(dropped > 0, `lines beyond ${limit} bytes waiting were dropped (${dropped})`);
  t.ok(out.pendingBytes() <= limit, 'no more than the limit waits');
  let flushed = false;
  out.flush(() => (flushed = true));
  await sleep(50);
  t.notOk(flushed, 'flush waits while the reader is stalled');

  const text = await readUntil(pipe, (all) => all.includes('log lines dropped'));
  const lines = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { n?: number; msg?: string; dropped?: number; level?: number });
  const notice = lines.at(-1)!;
  t.match(notice, { level: 40, msg: 'log lines dropped: stdout was not read in time', dropped }, 'the count of dropped lines follows once the reader catches up');
  const kept = lines.slice(0, -1).map((l) => l.n!);
  t.equal(kept.length, 2000 - dropped, 'every line not dropped arrived');
  t.same(kept, [...kept].sort((x, y) => x - y), 'in order');
  await readUntil(pipe, () => flushed);
  t.ok(flushed, 'flush called back once everything was out');
});

t.test('a reader that is gone: the lines are lost, berth is not', async (t) => {
  const pipe = fifo(t);
  const out = new StdoutLines(pipe.writer);
  pipe.closeReader();
  for (let i = 0; i < 100; i++) out.write(line('a', i, 100));
  let flushed = false;
  out.flush(() => (flushed = true));
  t.ok(flushed, 'flush calls back at once: nothing can be written any more');
  t.equal(out.pendingBytes(), 0, 'nothing is held');
});

t.test('a regular file: lines of any length, more than PIPE_BUF at once, all in order', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-lines-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'log');
  const fd = fs.openSync(file, 'a');
  atEnd.push(() => fs.closeSync(fd));
  const out = new StdoutLines(fd);
  const expected: string[] = [];
  for (let i = 0; i < 300; i++) {
    const l = line('a', i, i % 10 === 0 ? 3 * ATOMIC_WRITE : 100 + i);
    expected.push(l);
    out.write(l);
  }
  await new Promise<void>((resolve) => out.flush(resolve));
  t.equal(fs.readFileSync(file, 'utf8'), expected.join(''), 'byte for byte, a line longer than PIPE_BUF included');
});
