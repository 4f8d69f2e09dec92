import type { Server } from 'node:http';
import { http } from '../net/httpModule.js';
import type { Logger } from 'pino';
import type { Config } from '../config/validate.js';
import { headerTimeout } from '../net/headerTimeout.js';
import { closeOnceBodyIn } from '../net/linger.js';
import { HOST, type NameSet } from '../net/names.js';
import { ProxyError, isRegistryPath, sendError } from '../proxy/errors.js';
import type { Challenges } from '../tls/acme/challenges.js';

export interface RedirectOptions {
  readonly config: Config;
  /** The port the TLS listener serves, for redirects built from Host. */
  readonly httpsPort: number;
  readonly logger: Logger;
  /** The served names, when enforced; replaced when serverNames are reloaded (Berth.reconfigure). */
  names: NameSet | undefined;
  /** ACME HTTP-01 challenges being answered (acme.challenge http-01): each is answered here, never redirected. */
  readonly challenges?: Challenges;
}

/**
 * The optional plain-HTTP listener. ACME HTTP-01 validations are answered; everything else is redirected to https with 308 (method
 * and body kept, as clients that follow it must), to the public origin when one is
 * configured, else to the host the client asked for on berth's https port. Under /v2/
 * registry clients get a registry error instead: none of them replays an upload body
 * across a redirect, and a push must not start over plain HTTP. When the served names are
 * known, a Host naming another host is answered 421 and never redirected to.
 */
export function createRedirectServer(options: RedirectOptions): Server {
  const { config } = options;
  const server = http.createServer(
    { ...headerTimeout(config.timeouts.headers), keepAliveTimeout: config.timeouts.keepAlive, requestTimeout: config.timeouts.headers, insecureHTTPParser: false },
    (req, res) => {
      const url = req.url ?? '/';
      const keyAuthorization = options.challenges?.httpAnswer(url);
      if (keyAuthorization !== undefined) {
        closeOnceBodyIn(req, res);
        return void res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(keyAuthorization) }).end(keyAuthorization);
      }
      const hostMatch = HOST.exec(req.headers.host ?? '');
      // berth's own answers (sendError) close the connection once the request body is in.
      if (options.names && !(hostMatch && options.names.matches(hostMatch[1]!))) return sendError(req, res, new ProxyError('misdirected'));
      const origin = httpsOrigin(hostMatch?.[1], options);
      if (isRegistryPath(url) || origin === undefined || !url.startsWith('/')) {
        return sendError(req, res, new ProxyError('https_only', { hint: origin === undefined ? 'use https' : `use ${origin}${isRegistryPath(url) ? '/v2/' : '/'}` }));
      }
      // The request body is never used here: answer, then close once it is in.
      closeOnceBodyIn(req, res);
      const location = origin + url; // the path and query byte-for-byte
      const body = `Moved to ${location}\n`;
      res.writeHead(308, { location, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    },
  );
  // The same overall cap as the TLS listener's, per process. Its connections carry one small
  // answer each, so past the cap Node simply closes new ones.
  if (config.limits.connections > 0) server.maxConnections = config.limits.connections;
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });
  return server;
}

/** "https://host[:port]" to send the client to (host from Host, without its port), or undefined without one. */
function httpsOrigin(host: string | undefined, options: RedirectOptions): string | undefined {
  if (options.config.publicOrigin) return options.config.publicOrigin.origin;
  if (host === undefined) return undefined;
  return `https://${host.toLowerCase()}${options.httpsPort === 443 ? '' : `:${options.httpsPort}`}`;
}
