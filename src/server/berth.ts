import crypto from 'node:crypto';
import type http from 'node:http';
import type https from 'node:https';
import client from 'prom-client';
import type { AddressInfo } from 'node:net';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import { changedSettings } from '../config/changes.js';
import { namesClientsUse, type Config } from '../config/validate.js';
import { createHandler, type HandlerDeps } from '../proxy/handler.js';
import { createTransport } from '../proxy/transport.js';
import { BodyGarbage, COLLECT_EVERY } from '../proxy/bodyGarbage.js';
import { InFlight } from '../observe/inFlight.js';
import { redactPath } from '../observe/accessLog.js';
import { UploadClock } from '../observe/explain.js';
import { createServingMetrics, type ServingMetrics } from '../observe/metrics.js';
import { warnUncovered } from '../tls/files.js';
import type { TlsMaterial } from '../tls/material.js';
import { TLS_PROFILE } from '../tls/profile.js';
import type { TicketKeySource } from '../tls/ticketKeys.js';
import { watchCertificate, type CertificateWatch } from '../tls/reload.js';
import { Challenges } from '../tls/acme/challenges.js';
import { AcmeStore } from '../tls/acme/store.js';
import { createDrain, type DrainEnd } from './drain.js';
import { createHttpsServer, limitRequestsPerConnection } from './https.js';
import { proxySettingsOf, servedNames } from './settings.js';
import { acceptConnections } from '../net/accept.js';
import { ClientIdle } from '../net/clientIdle.js';
import { Connections } from '../net/connections.js';
import { connectionCounter, connectionsForDescriptors, type AdmissionEvents, type ConnectionLimits } from '../net/connectionLimits.js';
import { createRedirectServer, type RedirectOptions } from './redirect.js';

export interface Berth {
  readonly server: https.Server;
  readonly address: AddressInfo;
  /** The plain-HTTP redirect listener, when http.listen is set. */
  readonly httpAddress: AddressInfo | undefined;
  readonly inFlight: InFlight;
  readonly draining: boolean;
  /**
   * Graceful stop: no new connections, idle ones closed, requests in flight finish within
   * shutdown.grace; resolves how it ended, once the upstream pool is closed too.
   */
  stop(): Promise<DrainEnd>;
  /** Ends a stop now: every connection is closed (a second signal). */
  cut(): void;
  /** stop(), for callers that only wait. */
  close(): Promise<void>;
  /** Re-reads tls.cert and tls.key (SIGHUP); they are also watched for changes. */
  reloadCertificate(reason: string): void;
  /**
   * Applies reloaded settings (SIGHUP): those that need no new listener or upstream pool
   * (LIVE_SETTINGS) at once, for new requests, without dropping a connection. Says which
   * were applied, and which changed but take a restart.
   */
  reconfigure(next: Config): { applied: string[]; restart: string[] };
  /** The leaf in service for new connections; undefined while ACME has issued none yet. */
  certificate(): crypto.X509Certificate | undefined;
  /** Puts a certificate into service for new connections (ACME: a new one issued). */
  useCertificate(pair: { readonly cert: string; readonly key: string }): void;
  /** ACME challenges this process answers (acme.* set). */
  readonly challenges: Challenges | undefined;
  /** This process's metrics (requests, bytes, connections, handshakes, runtime). */
  readonly registry: client.Registry;
}

/** Settings the request passes read: a reload prepares them again (proxySettingsOf). */
/** Said with each retry (the upstream transport's keep-alive pool keeps idle connections 30 s). */
const RETRY_HINT = 'now and then is harmless; often means the registry, or a balancer before it, closes idle connections sooner than 30 s';

const PASS_SETTINGS: ReadonlySet<string> = new Set(['serverNames', 'trustedProxies', 'hsts.maxAge']);

/**
 * Settings a reload applies in a running berth; any other takes a restart: those that need
 * a new listener or upstream (listen, http.listen, admin.listen, upstream, proxyProtocol.from,
 * tls.*), the workers, and the two time limits Node fixes when it makes the TLS listener
 * (timeouts.handshake; timeouts.headers, whose checks run at an interval set then).
 */
const LIVE_SETTINGS: ReadonlySet<string> = new Set([
  ...PASS_SETTINGS,
  'timeouts.clientIdle',
  'timeouts.keepAlive',
  'timeouts.upstreamConnect',
  'timeouts.upstreamResponse',
  'limits.connections',
  'limits.connectionsPerClient',
  'limits.requestsPerConnection',
  'shutdown.grace',
  'log.level',
]);

/** Wires config, TLS material, transport and handler into a listening server. */
export interface StartOptions {
  readonly ticketKeys?: TicketKeySource;
  /** Listen with SO_REUSEPORT, beside the other workers (server/cluster.ts). */
  readonly reusePort?: boolean;
}

export async function startBerth(config: Config, tls: TlsMaterial, logger: Logger, options: StartOptions = {}): Promise<Berth> {
  // Idle keep-alive connections and stalled requests alike; not a request waiting on the upstream.
  const clientIdle = new ClientIdle(config.timeouts.clientIdle);
  const connections = new Connections();
  const inFlight = new InFlight();
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const metrics = createServingMetrics(registry);
  const transport = createTransport({
    upstream: config.upstream,
    connectTimeout: config.timeouts.upstreamConnect,
    responseTimeout: config.timeouts.upstreamResponse,
    onBug: (err) => logger.error({ err }, 'internal error in an exchange with the registry: that request was dropped'),
    onRetry: ({ method, path, cause }) => {
      metrics.upstreamRetried();
      logger.info(
        { method, path: redactPath(path), code: (cause as NodeJS.ErrnoException).code, hint: RETRY_HINT },
        'the registry cut the connection before answering: the request was sent again on a new connection',
      );
    },
  });
  const handlerDeps: HandlerDeps = {
    settings: proxySettingsOf(config, tls.devCa !== undefined),
    transport,
    logger,
    clientIdle,
    inFlight,
    connections,
    observer: metrics,
    bodyGarbage: new BodyGarbage(COLLECT_EVERY),
    uploads: new UploadClock(),
  };
  const handler = createHandler(handlerDeps);
  const server = createHttpsServer({ config, cert: tls.cert, key: tls.key, logger, handler, clientIdle, connections, ticketKeys: options.ticketKeys });
  const setRequestsPerConnection = limitRequestsPerConnection(server, config.limits.requestsPerConnection);

  await listen(server, config.listen, options.reusePort === true);
  server.on('error', (err) => logger.error({ err }, 'listener error'));
  const address = server.address() as AddressInfo;
  let redirect: http.Server | undefined;
  // Another berth sharing tls.dir may order, and the CA may reach this one: its challenges are looked up there too.
  const challenges = config.acme ? new Challenges(new AcmeStore(config.tls.dir, config.acme.directory)) : undefined;
  const redirectOptions: RedirectOptions = { config, httpsPort: address.port, logger, names: servedNames(config), ...(challenges ? { challenges } : {}) };
  if (config.http.listen) {
    redirect = createRedirectServer(redirectOptions);
    await listen(redirect, config.http.listen).catch((err: unknown) => {
      server.close();
      throw err;
    });
    redirect.on('error', (err) => logger.error({ err }, 'http listener error'));
  }

  const certificate =
    config.tls.cert !== undefined && config.tls.key !== undefined && tls.cert !== undefined && tls.key !== undefined
      ? watchTls(server, config.tls.cert, config.tls.key, { cert: tls.cert, key: tls.key }, logger, () => namesClientsUse(applied))
      : undefined;
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    metrics.tlsHandshake(socket.getProtocol() ?? 'unknown', socket.isSessionReused());
    metrics.connectionOpened();
    socket.once('close', () => metrics.connectionClosed());
  });
  server.on('tlsClientError', () => metrics.tlsHandshakeFailed());
  const counter = connectionCounter(connectionCaps(config, logger), refusalReporter(metrics, logger), config.timeouts.handshake + Math.min(config.timeouts.headers, 10_000), connections);
  acceptConnections(server, {
    proxyFrom: config.proxyProtocol.from,
    headerTimeout: config.timeouts.headers,
    logger,
    admit: counter.admit,
    connections,
    ...(challenges ? { peek: () => challenges.peeker() } : {}),
  });
  /** The leaf in service when it does not come from watched files (development, ACME). */
  let leaf = tls.cert === undefined ? undefined : new crypto.X509Certificate(tls.cert);
  /** The settings in service: those berth started with, and the live ones reloaded since. */
  let applied = config;
  const drain = createDrain({ server, inFlight, logger, grace: config.shutdown.grace });
  let stopped: Promise<DrainEnd> | undefined;
  const stop = (): Promise<DrainEnd> => {
    if (stopped) return stopped;
    redirect?.close();
    redirect?.closeIdleConnections();
    stopped = drain.begin().then((end) => {
      certificate?.close();
      transport.close();
      return end;
    });
    return stopped;
  };
  return {
    server,
    address,
    httpAddress: redirect?.address() as AddressInfo | undefined,
    inFlight,
    get draining() {
      return drain.draining;
    },
    stop,
    cut: () => drain.cut(),
    close: () => stop().then(() => undefined),
    reconfigure(next) {
      const live = changedSettings(applied, next).filter((path) => LIVE_SETTINGS.has(path));
      if (live.some((path) => PASS_SETTINGS.has(path))) {
        handlerDeps.settings = proxySettingsOf(next, tls.devCa !== undefined);
        redirectOptions.names = servedNames(next);
      }
      // New names, the certificate in service: warned about as at start.
      const inService = certificate?.current() ?? leaf;
      if (live.includes('serverNames') && inService) warnUncovered(logger, inService, namesClientsUse(next));
      if (live.includes('timeouts.clientIdle')) clientIdle.setLimit(next.timeouts.clientIdle);
      if (live.includes('timeouts.keepAlive')) {
        server.keepAliveTimeout = next.timeouts.keepAlive;
        if (redirect) redirect.keepAliveTimeout = next.timeouts.keepAlive;
      }
      if (live.includes('limits.connections') || live.includes('limits.connectionsPerClient')) {
        counter.setLimits(connectionCaps(next, logger));
        if (redirect) redirect.maxConnections = next.limits.connections > 0 ? next.limits.connections : Infinity;
      }
      if (live.includes('limits.requestsPerConnection')) setRequestsPerConnection(next.limits.requestsPerConnection);
      if (live.includes('timeouts.upstreamConnect') || live.includes('timeouts.upstreamResponse')) {
        transport.setTimeouts({ connect: next.timeouts.upstreamConnect, response: next.timeouts.upstreamResponse });
      }
      if (live.includes('shutdown.grace')) drain.setGrace(next.shutdown.grace);
      if (live.includes('log.level')) logger.level = next.log.level;
      applied = next;
      // Against the settings berth started with: still to apply until a restart.
      return { applied: live, restart: changedSettings(config, next).filter((path) => !LIVE_SETTINGS.has(path)) };
    },
    registry,
    certificate: () => certificate?.current() ?? leaf,
    useCertificate(pair) {
      server.setSecureContext({ ...TLS_PROFILE, cert: pair.cert, key: pair.key, ticketKeys: server.getTicketKeys() });
      leaf = new crypto.X509Certificate(pair.cert);
    },
    challenges,
    reloadCertificate(reason) {
      if (certificate) certificate.reload(reason, true);
      else logger.info({ reason }, tls.source === 'acme' ? 'the certificate comes from ACME: nothing to reload from files' : 'no tls.cert configured: the development certificate is not reloaded');
    },
  };
}

/**
 * New pairs go to new connections through setSecureContext. The session ticket keys are
 * carried over, so sessions issued before a reload still resume (on every worker).
 */
function watchTls(server: https.Server, certFile: string, keyFile: string, current: { cert: string; key: string }, logger: Logger, names: () => readonly string[]): CertificateWatch {
  return watchCertificate({
    certFile,
    keyFile,
    current,
    logger,
    names,
    apply: (pair) => server.setSecureContext({ ...TLS_PROFILE, cert: pair.cert, key: pair.key, ticketKeys: server.getTicketKeys() }),
  });
}

/**
 * The connection caps in force: limits.connections, lowered to what the process's file
 * descriptor limit allows (a client connection may need an upstream one too). Past the
 * descriptor limit the kernel's accept fails and Node closes new connections without a
 * word; under the cap, berth refuses them itself, and says so.
 */
function connectionCaps(config: Config, logger: Logger): ConnectionLimits {
  const { connections, connectionsPerClient } = config.limits;
  const fit = connectionsForDescriptors();
  if (fit === undefined || (connections !== 0 && connections <= fit.connections)) return { total: connections, perClient: connectionsPerClient };
  logger.warn(
    { configured: connections === 0 ? 'no cap' : connections, connections: fit.connections, fileDescriptors: fit.descriptors },
    `limits.connections lowered to ${fit.connections}: the file descriptor limit (ulimit -n ${fit.descriptors}) allows no more; raise it to serve more`,
  );
  return { total: fit.connections, perClient: connectionsPerClient };
}

/** Counts refusals; closing new connections outright is logged, at most once every 10 s. */
function refusalReporter(metrics: ServingMetrics, logger: Logger): AdmissionEvents {
  let closed = 0;
  let quietUntil = 0;
  return {
    refused(reason, how) {
      metrics.connectionRefused(reason);
      if (how !== 'closed') return;
      closed++;
      const now = Date.now();
      if (now < quietUntil) return;
      quietUntil = now + 10_000;
      logger.warn({ reason, closed }, 'connection caps reached and refusals pending: new connections are closed at once');
      closed = 0;
    },
  };
}

function listen(server: http.Server, at: { host: string | undefined; port: number }, reusePort = false): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: at.host, port: at.port, ...(reusePort ? { reusePort } : {}) }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
