/**
 * The upstream's answer head, read strictly. The upstream's bytes are as hostile as a
 * client's: what is not plainly HTTP/1.x is refused (the answer is dropped with its
 * connection and the client gets 502), so that berth and the upstream never disagree on
 * where an answer ends. What is refused, beyond a line that is not a status line or a
 * header line: a bare LF, a folded line, a control byte in a name or value, a Content-Length
 * that is not digits or comes twice, a Transfer-Encoding that is not exactly `chunked`, both
 * framing headers at once, and body framing on an answer that has no body.
 */

/** How the answer's body is framed. */
export type ResponseFraming =
  | { readonly kind: 'none' }
  | { readonly kind: 'length'; readonly length: number }
  | { readonly kind: 'chunked' }
  /** Until the upstream closes the connection (no framing header on an answer with a body). */
  | { readonly kind: 'close' };

export interface ParsedHead {
  readonly status: number;
  readonly statusMessage: string;
  /** name, value, … in the upstream's order and case, values without surrounding blanks. */
  readonly rawHeaders: string[];
  readonly framing: ResponseFraming;
  /** Whether the connection may carry another request after this answer. */
  readonly keepAlive: boolean;
  /** How long the upstream says it keeps the connection open unused (`Keep-Alive: timeout=N`), ms. */
  readonly keptFor: number | undefined;
  /** Bytes the head took, its blank line included. */
  readonly size: number;
}

/** Why an answer head is refused: the detail logged with upstream_bad_response. */
export class MalformedAnswer extends Error {
  readonly code = 'BERTH_MALFORMED_ANSWER';
  constructor(detail: string) {
    super(detail);
    this.name = 'MalformedAnswer';
  }
}

/** Largest answer head berth reads (undici's and Node's default). */
export const RESPONSE_HEAD_LIMIT = 16 * 1024;

const NONE: ResponseFraming = { kind: 'none' };
const CHUNKED: ResponseFraming = { kind: 'chunked' };
const CLOSE: ResponseFraming = { kind: 'close' };

/** HTTP/1.x SP 3DIGIT [SP reason]: the reason any byte but controls (HTAB allowed). */
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: ([\t\x20-\x7e\x80-\xff]*))?\r\n/y;
/**
 * Every header line, then the blank line: name ":" OWS value OWS CRLF, a name a token, a
 * value without a control byte but HTAB. (Checked at once; the lines are then cut by
 * position: a regular expression's captures per line cost three times as many instructions.)
 */
const HEADER_LINES = /(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*\r\n/y;

/**
 * Reads the head at the start of `bytes`. Returns undefined while the head is not all in
 * (its blank line not yet received); throws MalformedAnswer for what is refused.
 * `head`: the request was HEAD (its answer has no body).
 */
export function parseResponseHead(bytes: Buffer, head: boolean): ParsedHead | undefined {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) {
    if (bytes.length > RESPONSE_HEAD_LIMIT) throw new MalformedAnswer('answer head too large');
    return undefined;
  }
  const size = end + 4;
  if (size > RESPONSE_HEAD_LIMIT) throw new MalformedAnswer('answer head too large');
  const text = bytes.toString('latin1', 0, size);
  STATUS_LINE.lastIndex = 0;
  const status = STATUS_LINE.exec(text);
  if (status === null) throw new MalformedAnswer('not an HTTP/1.x status line');
  const code = Number(status[2]);
  let keepAlive = status[1] === '1';
  const rawHeaders: string[] = [];
  let length: string | undefined;
  let lengths = 0;
  let encoding: string | undefined;
  let encodings = 0;
  let keptFor: number | undefined;
  let at = STATUS_LINE.lastIndex;
  HEADER_LINES.lastIndex = at;
  if (!HEADER_LINES.test(text) || HEADER_LINES.lastIndex !== size) throw new MalformedAnswer('malformed header line');
  const last = size - 2;
  while (at < last) {
    const eol = text.indexOf('\r\n', at);
    const colon = text.indexOf(':', at);
    const name = text.slice(at, colon);
    let from = colon + 1;
    let to = eol;
    while (from < to && isBlank(text.charCodeAt(from))) from++;
    while (to > from && isBlank(text.charCodeAt(to - 1))) to--;
    const value = text.slice(from, to);
    at = eol + 2;
    rawHeaders.push(name, value);
    // Only the names that frame the answer or close the connection are looked at.
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      lengths++;
      length = value;
    } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      encodings++;
      encoding = value;
    } else if (name.length === 10) {
      const lower = name.toLowerCase();
      if (lower === 'connection') keepAlive = connectionKeepsAlive(value, keepAlive);
      else if (lower === 'keep-alive') keptFor = keepAliveTimeout(value) ?? keptFor;
    }
  }
  const statusMessage = status[3] ?? '';
  return { status: code, statusMessage, rawHeaders, framing: framingOf(code, head, lengths, length, encodings, encoding), keepAlive, keptFor, size };
}

const isBlank = (c: number): boolean => c === 32 || c === 9;

/** RFC 9112, 6.3, strictly: anything a proxy and the upstream could read two ways is refused. */
function framingOf(status: number, head: boolean, lengths: number, length: string | undefined, encodings: number, encoding: string | undefined): ResponseFraming {
  if (lengths > 1) throw new MalformedAnswer('Content-Length more than once');
  if (encodings > 1) throw new MalformedAnswer('Transfer-Encoding more than once');
  if (lengths === 1 && encodings === 1) throw new MalformedAnswer('both Content-Length and Transfer-Encoding');
  if (encoding !== undefined && encoding.toLowerCase() !== 'chunked') throw new MalformedAnswer(`Transfer-Encoding ${JSON.stringify(encoding)}`);
  let declared: number | undefined;
  if (length !== undefined) {
    if (!/^\d{1,15}$/.test(length)) throw new MalformedAnswer(`Content-Length ${JSON.stringify(length)}`);
    declared = Number(length);
  }
  // Answers without a body, whatever their headers say of the representation. A
  // Transfer-Encoding on them, or a length on a 1xx or 204, is a body they cannot have.
  if (status < 200 || status === 204 || status === 304) {
    if (encoding !== undefined) throw new MalformedAnswer(`Transfer-Encoding on a ${status}`);
    if (declared !== undefined && declared !== 0 && status !== 304) throw new MalformedAnswer(`Content-Length on a ${status}`);
    return NONE;
  }
  if (head) return NONE;
  if (encoding !== undefined) return CHUNKED;
  if (declared !== undefined) return declared === 0 ? NONE : { kind: 'length', length: declared };
  return CLOSE;
}

/** The `timeout` of a Keep-Alive header (seconds: RFC 2068, 19.7.1.1), in ms. */
function keepAliveTimeout(value: string): number | undefined {
  const timeout = /(?:^|[,;\s])timeout\s*=\s*(\d{1,9})/i.exec(value);
  return timeout === null ? undefined : Number(timeout[1]) * 1000;
}

/** Whether a Connection header's tokens leave the connection open (`close` closes it, `keep-alive` opens an HTTP/1.0 one). */
function connectionKeepsAlive(value: string, before: boolean): boolean {
  let keep = before;
  for (const token of value.split(',')) {
    const t = token.trim().toLowerCase();
    if (t === 'close') return false;
    if (t === 'keep-alive') keep = true;
  }
  return keep;
}
