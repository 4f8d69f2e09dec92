import type https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/validate.js';
import { createHandler } from '../proxy/handler.js';
import { createTransport } from '../proxy/transport.js';
import type { TlsMaterial } from '../tls/material.js';
import { createHttpsServer } from './https.js';

export interface Berth {
  readonly server: https.Server;
  readonly address: AddressInfo;
  /** Stops accepting, closes idle connections, and resolves when the rest have finished. */
  close(): Promise<void>;
}

/** Wires config, TLS material, transport and handler into a listening server. */
export async function startBerth(config: Config, tls: TlsMaterial, logger: Logger): Promise<Berth> {
  const awaitingUpstream = new WeakSet<Socket>();
  const transport = createTransport({
    upstream: config.upstream,
    connectTimeout: config.timeouts.upstreamConnect,
    responseTimeout: config.timeouts.upstreamResponse,
  });
  const handler = createHandler({
    settings: {
      upstream: config.upstream,
      publicOrigin: config.publicOrigin?.origin,
      trustedProxies: config.trustedProxies,
    },
    transport,
    logger,
    clientIdle: config.timeouts.clientIdle,
    awaitingUpstream,
  });
  const server = createHttpsServer({ config, cert: tls.cert, key: tls.key, logger, handler, awaitingUpstream });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: config.listen.host, port: config.listen.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, 'listener error'));

  return {
    server,
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          transport.close();
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
