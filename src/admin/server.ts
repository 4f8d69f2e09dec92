import { http } from '../net/httpModule.js';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { headerTimeout } from '../net/headerTimeout.js';
import type { Readiness } from './readiness.js';

/**
 * The admin listener: plain HTTP on its own address (loopback by default), so nothing
 * here can collide with a registry path or be reached through the TLS listener.
 *   GET /healthz  200 while the process runs
 *   GET /readyz   200 or 503, with the checks as JSON
 *   GET /metrics  Prometheus text
 */
export interface AdminSources {
  metrics(): Promise<{ contentType: string; body: string }>;
  readiness(): Promise<Readiness>;
}

export interface Admin {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

/**
 * Open connections the admin listener keeps: ample for the kubelet's probes and a few
 * scrapers; past it Node closes new ones at once, so a flood of them (the listener may be
 * on ":8444" in a pod) cannot take the process's file descriptors.
 */
export const ADMIN_MAX_CONNECTIONS = 128;

/** Open connections one address may hold, so that one client cannot starve the kubelet's probes. */
export const ADMIN_MAX_PER_CLIENT = 16;

/**
 * Longest time a request may take to arrive: probes send a few bytes at once, and a
 * connection idling without a request (or between requests) frees its slot this soon.
 */
export const ADMIN_REQUEST_DEADLINE_MS = 5000;

export interface AdminLimits {
  /** Time to receive a whole request (headers; admin requests have no body), ms; at most ADMIN_REQUEST_DEADLINE_MS. */
  readonly headersTimeout: number;
}

export async function startAdmin(listen: { host: string | undefined; port: number }, sources: AdminSources, logger: Logger, limits: AdminLimits): Promise<Admin> {
  const deadline = Math.min(limits.headersTimeout, ADMIN_REQUEST_DEADLINE_MS);
  const server = http.createServer({ ...headerTimeout(deadline), requestTimeout: deadline, keepAliveTimeout: deadline }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const send = (status: number, contentType: string, body: string): void => {
      res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const fail = (err: unknown): void => {
      logger.error({ err: { message: (err as Error).message }, path }, 'admin request failed');
      send(500, 'text/plain', `${(err as Error).message}\n`);
    };
    switch (path) {
      case '/healthz':
        return send(200, 'text/plain', 'ok\n');
      case '/readyz':
        return void sources.readiness().then((r) => send(r.ready ? 200 : 503, 'application/json', JSON.stringify(r) + '\n'), fail);
      case '/metrics':
        return void sources.metrics().then((m) => send(200, m.contentType, m.body), fail);
      default:
        return send(404, 'text/plain', 'not found: /healthz, /readyz, /metrics\n');
    }
  });
  server.maxConnections = ADMIN_MAX_CONNECTIONS;
  const perClient = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const client = socket.remoteAddress ?? '';
    const open = (perClient.get(client) ?? 0) + 1;
    if (open > ADMIN_MAX_PER_CLIENT) return void socket.destroy();
    perClient.set(client, open);
    socket.once('close', () => {
      const left = (perClient.get(client) ?? 1) - 1;
      if (left === 0) perClient.delete(client);
      else perClient.set(client, left);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: listen.host, port: listen.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, 'admin listener error'));
  return {
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
