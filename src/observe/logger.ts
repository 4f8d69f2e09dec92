import pino, { type DestinationStream, type Logger } from 'pino';
import sonicBoom, { type SonicBoom as SonicBoomClass } from 'sonic-boom';

// sonic-boom is CommonJS (module.exports = SonicBoom); its types describe an ES default export.
const SonicBoom = sonicBoom as unknown as typeof SonicBoomClass;
import type { LogFormat, LogLevel } from '../config/validate.js';

/**
 * The root logger. Header objects are never logged by berth, and the serializers below
 * keep credentials out should one ever be passed in as `headers` or `req`. (Serializers,
 * not pino's `redact`: they run only for lines that have such a key, where redaction paths
 * cost every line, the access line included, a walk of its own.)
 */
export function createLogger(options: { level: LogLevel; format: LogFormat }, destination?: DestinationStream): Logger {
  const base = {
    level: options.level,
    base: { pid: process.pid },
    serializers: { headers: withoutCredentials, req: (req: unknown) => (isObject(req) && isObject(req.headers) ? { ...req, headers: withoutCredentials(req.headers) } : req) },
  };
  if (destination) return pino(base, destination);
  if (options.format === 'pretty') {
    return pino({ ...base, transport: { target: 'pino-pretty', options: PRETTY(process.stdout.isTTY === true) } });
  }
  return pino(base, stdoutDestination());
}

/**
 * `--log-format pretty`: one line per entry, a request as a web server's access log writes it
 * ("request GET /v2/ 401 1.2 ms" after the time and level), the rest of its fields inline.
 */
export const PRETTY = (colorize: boolean): Record<string, unknown> => ({
  colorize,
  translateTime: 'SYS:HH:MM:ss.l',
  singleLine: true,
  // berth's `error` is the kind of failure, a string: inline with the rest, not an error object's block.
  errorLikeObjectKeys: ['err'],
  messageFormat: '{msg}{if status} {method} {path} {status} {durationMs} ms{end}',
  ignore: 'pid,hostname,method,path,status,durationMs',
});

const CREDENTIALS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** A header object or list with the credential headers' values replaced. */
export function withoutCredentials(headers: unknown): unknown {
  if (Array.isArray(headers)) return headers.map((item, i) => (i % 2 === 1 && CREDENTIALS.has(String(headers[i - 1]).toLowerCase()) ? '[redacted]' : item));
  if (!isObject(headers)) return headers;
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(headers)) out[name] = CREDENTIALS.has(name.toLowerCase()) ? '[redacted]' : value;
  return out;
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
  // Creating process.stdout makes Node put a pipe on fd 1 in non-blocking mode: a write to
  // a full pipe then fails with EAGAIN, which sonic-boom retries, instead of blocking the
  // libuv thread it runs on, which process.exit would then wait for forever.
  process.stdout.on('error', () => undefined);
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
