import type http from 'node:http';

/** How long a client may go on sending a body after its answer (nginx: lingering_time 30s). */
const LINGER_MS = 30_000;

/**
 * Lingering close, as nginx does it: the answer went out (or is going out) before the
 * request body was all in: nginx's 413 relayed from upstream, a registry's 401, berth's
 * own 502 for a dead registry or 421 for a wrong host. Closing the connection while the
 * client still sends makes the kernel reset it, and the client reports "connection reset"
 * or EPIPE instead of the answer. So the rest of the body is read and dropped (framed by
 * the parser, never read as a request) for at most LINGER_MS after the answer, and only
 * then is a connection that is to close (berth's errors, `Connection: close`,
 * limits.requestsPerConnection) closed; one kept alive goes on serving.
 *
 * Call it before the answer finishes. Node closes a connection from the response's
 * 'finish' through socket.destroySoon(); that call, on this socket only, is put off until
 * the body is in.
 */
export function lingerUntilBodyIn(req: http.IncomingMessage, res: http.ServerResponse): void {
  const socket = req.socket;
  if (req.complete || socket.destroyed) return;
  const close = socket.destroySoon;
  const restore = (): void => void Reflect.deleteProperty(socket, 'destroySoon'); // back to the prototype's
  let closing = false;
  socket.destroySoon = function putOff(): void {
    restore();
    closing = true;
    drop(() => close.call(socket));
  };
  const drop = (done?: () => void): void => {
    if (req.complete || socket.destroyed) return void done?.();
    // Nobody has a use for the rest: stop any pipe (the upstream request is over) and read it.
    req.unpipe();
    req.resume();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    req.once('end', () => {
      clearTimeout(timer);
      done?.();
    });
    socket.once('close', () => clearTimeout(timer));
  };
  // Node's own 'finish' listener (added before the request was handed out) runs first and
  // calls destroySoon if the connection is to close; if it did not, the connection is kept
  // alive and the body still has to be read, within the same time.
  res.once('finish', () => {
    if (closing) return;
    restore();
    drop();
  });
  res.once('close', () => {
    if (!res.writableFinished && !closing) restore();
  });
}

/**
 * Whether some of the request's body may still be on its way. (While the handler runs,
 * `req.complete` is false even for a request without a body: the parser completes it
 * only after 'request' has been emitted.)
 */
function bodyPending(req: http.IncomingMessage): boolean {
  if (req.complete) return false;
  // Every header line as received, not req.headers, which holds only the first
  // maxHeadersCount: the parser frames the body by any of them.
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'transfer-encoding' || (name === 'content-length' && raw[i + 1]!.trim() !== '0')) return true;
  }
  return false;
}

/**
 * For an answer that does not use the request body (berth's own errors, the HTTP
 * listener's redirects): when some of it may still come, the connection is to close, and
 * closes once the rest is in. A request without a body keeps its connection.
 */
export function closeOnceBodyIn(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (!bodyPending(req)) return;
  res.shouldKeepAlive = false;
  lingerUntilBodyIn(req, res);
}
