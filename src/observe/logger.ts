import pino, { type DestinationStream, type Logger } from 'pino';
import type { LogFormat, LogLevel } from '../config/validate.js';
import { StdoutLines } from './stdoutLines.js';

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

/**
 * berth's stdout: StdoutLines, which never blocks the event loop behind a stalled log
 * collector, holds at most MAX_PENDING_BYTES for it, writes whole lines within PIPE_BUF
 * so the workers' lines never interleave on a shared pipe, and is flushed at exit with a
 * deadline (exitAfterFlush). (pino's default destination is unbounded, and registers a
 * synchronous flush at exit that spins forever when nobody reads stdout: behind a
 * stalled collector berth could not even be stopped.)
 */
function stdoutDestination(): DestinationStream {
  // Creating process.stdout makes Node put a pipe on fd 1 in non-blocking mode: a write to
  // a full pipe then fails at once with EAGAIN instead of blocking the event loop.
  process.stdout.on('error', () => undefined);
  const destination = new StdoutLines(1);
  // What is still queued when the process exits: as much as the reader takes at once.
  process.once('exit', () => destination.flush());
  return destination;
}
