import type http from 'node:http';

/**
 * Whether the client sent some header name on more than one line. Read before the passes
 * change the header object: Node keeps one entry per name, so fewer entries than lines
 * means repeats.
 */
export function hasRepeatedLines(req: http.IncomingMessage): boolean {
  return Object.keys(req.headers).length * 2 !== req.rawHeaders.length;
}

/**
 * Node joins the lines of a repeated header into one value (`Accept: a` and `Accept: b`
 * become `a, b`); the upstream gets them as the client sent them, one line each, for every
 * header the passes left as Node joined it. Those whose repeats Node drops (`Authorization`,
 * `Content-Type`, `Host`, … : the first line counts, for berth as for a Go registry) and
 * those a pass set stay as they are.
 */
export function restoreRepeatedLines(req: http.IncomingMessage, headers: http.IncomingHttpHeaders): void {
  const distinct = req.headersDistinct;
  for (const name in headers) {
    const lines = distinct[name];
    const value = headers[name];
    if (lines === undefined || lines.length < 2 || typeof value !== 'string') continue;
    if (value === lines.join(', ')) headers[name] = lines;
  }
}
