import pino, { type DestinationStream, type Logger } from 'pino';
import sonicBoom, { type SonicBoom as SonicBoomClass } from 'sonic-boom';

// sonic-boom is CommonJS (module.exports = SonicBoom); its types describe an ES default export.
const SonicBoom = sonicBoom as unknown as typeof SonicBoomClass;
import type { LogFormat, LogLevel } from '../config/validate.js';

/**
 * The root logger. Header objects are never logged by berth, and the redaction below
 * keeps it that way should one ever be passed in.
 */
export function createLogger(options: { level: LogLevel; format: LogFormat }, destination?: DestinationStream): Logger {
  const base = {
    level: options.level,
    base: { pid: process.pid },
    redact: {
      paths: ['headers.authorization', 'headers.cookie', 'req.headers.authorization', 'req.headers.cookie', '*.headers.authorization'],
      censor: '[redacted]',
    },
  };
  if (destination) return pino(base, destination);
  if (options.format === 'pretty') {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: process.stdout.isTTY, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } });
  }
  return pino(base, stdoutDestination());
}

/** How much log output may wait for a slow reader before lines are dropped. */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;

/** PIPE_BUF on Linux: a write this size or smaller to a pipe is never interleaved with another's. */
const ATOMIC_WRITE = 4096;

/**
 * berth's stdout. pino's default is asynchronous but unbounded, and registers a
 * synchronous flush at exit that spins forever when nobody reads stdout: behind a
 * stalled log collector berth could not even be stopped. This one holds at most
 * MAX_PENDING_BYTES (beyond, lines are dropped and counted, and the count is logged once
 * the reader catches up), is flushed at exit with a deadline (exitAfterFlush), and writes
 * whole lines within PIPE_BUF so the workers' lines never interleave on a shared pipe.
 */
function stdoutDestination(): DestinationStream {
  // minLength 1 writes every line at once, as 0 would, but makes flush(cb) wait for
  // the writes in flight (with 0 it calls back at once and the last lines are lost at exit).
  const destination = new SonicBoom({ fd: 1, sync: false, minLength: 1, maxLength: MAX_PENDING_BYTES, maxWrite: ATOMIC_WRITE });
  // EPIPE and the like: nobody reads stdout any more; keep serving rather than die for want of logs.
  destination.on('error', () => undefined);
  let dropped = 0;
  destination.on('drop', (data: string) => {
    dropped += data.split('\n').filter(Boolean).length;
  });
  destination.on('drain', () => {
    if (dropped === 0) return;
    const line = JSON.stringify({ level: 40, time: Date.now(), pid: process.pid, msg: 'log lines dropped: stdout was not read in time', dropped });
    dropped = 0;
    destination.write(line + '\n');
  });
  return destination;
}
