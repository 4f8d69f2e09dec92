import cluster, { type Worker } from 'node:cluster';
import crypto from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import client from 'prom-client';
import { startAdminListener } from '../admin/start.js';
import { answerMetricRequests, workerMetricsText } from '../observe/clusterMetrics.js';
import { watchCertificate } from '../tls/reload.js';
import type { Config } from '../config/validate.js';
import { ENV_WORKER_TLS_PORT } from '../config/schema.js';
import { loadTlsMaterial, type TlsMaterial } from '../tls/material.js';
import { isTicketKeysRequest, rotateTicketKeys, ticketKeysFromPrimary, ticketKeysMessage } from '../tls/ticketKeys.js';
import { acmeFromPrimary, AcmeForWorkers } from './acme.js';
import { exitAfterFlush, logServing, reloadOnHangup, reloadSettings, stopOnSignals, type SettingsSource } from './lifecycle.js';
import { watchConfigFile } from '../config/watch.js';

/**
 * Several processes serving one listener (node:cluster). The primary makes what must
 * exist once (the development certificate), forks the workers, restarts one that dies,
 * and relays stop signals; workers serve requests. The primary also makes the TLS session
 * ticket keys, replaces them every tls.ticketKeyRotation and sends them to every worker
 * (tls/ticketKeys.ts), so a session resumes on whichever worker takes the connection.
 */

interface ListeningMessage {
  readonly type: 'berth:listening';
  readonly address: AddressInfo;
  readonly httpAddress: AddressInfo | undefined;
}

function isListening(message: unknown): message is ListeningMessage {
  return (message as ListeningMessage | undefined)?.type === 'berth:listening';
}

/**
 * V8 flags for workers. A 4 MiB young generation (semi-space; Node's default is 16 MiB):
 * V8 collects it after each semi-space of JavaScript allocation, at about 0.7 ms a
 * collection whatever the size, so the size sets how often small requests pay that. Main-
 * thread collection pauses per small request (--trace-gc-nvp, one worker, 64 connections):
 * 6-10 µs at 2 MiB, 3.3-4.9 at 4, 2.2-2.6 at 8; private memory under that load the same at 2
 * and 4 MiB (66-75 MiB), higher at 8 (72-101). Bodies are Buffers outside the V8 heap,
 * collected as they are relayed by BodyGarbage's pacing whatever the semi-space (README,
 * "Performance"). `--no-parallel-scavenge`: V8's helper threads took 0.41-0.47 ms of CPU
 * per young collection beside the main thread's 0.72-0.83, which alone took 0.83-0.87
 * (same traces): a third less collection CPU for a pause 0.1 ms longer, on machines where
 * the proxy shares its cores. `--expose-gc` gives BodyGarbage (proxy/bodyGarbage.ts) its
 * young-generation collection. An operator's own setting wins (`--parallel-scavenge` too).
 */
export const WORKER_V8_FLAGS = ['--max-semi-space-size=4', '--no-parallel-scavenge', '--expose-gc'];

/** A V8 flag's name, whatever its value or negation: --no-parallel-scavenge and --parallel-scavenge are one setting. */
const flagName = (arg: string): string => arg.split('=')[0]!.replace(/^--no-/, '--').replace(/_/g, '-');

export function workerExecArgv(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].map(flagName));
  const extra = WORKER_V8_FLAGS.filter((flag) => !given.has(flagName(flag)));
  return [...execArgv, ...extra];
}

/**
 * How the workers share the TLS port. On Linux each worker listens on it itself with
 * SO_REUSEPORT and the kernel spreads new connections across them. node:cluster's own way
 * has the primary accept every connection and pass it to a worker over IPC, which costs
 * about 350 µs of CPU per new connection (bench/README.md). Elsewhere, node:cluster's way.
 * (The plain-HTTP redirect listener keeps node:cluster's way: it only answers redirects.)
 */
export const REUSE_PORT = process.platform === 'linux';

/**
 * Binds a fixed TLS address once, plainly, and lets it go: a port that is taken fails here
 * with EADDRINUSE, before any worker starts, and so does a second berth on the same port
 * (its workers' SO_REUSEPORT sockets refuse a plain bind). Port 0 is not probed: a port
 * found and let go here could be taken by another process before the workers bind it, so
 * the first worker binds port 0 itself, holds what the kernel gives it, and the others
 * join that port (runPrimary).
 */
async function claimPort(at: Config['listen']): Promise<void> {
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen({ host: at.host, port: at.port, exclusive: true }, resolve);
  });
  await new Promise((resolve) => probe.close(resolve));
}

/**
 * Workers that die before they ever listen: more than this within the window means no
 * worker can start (a certificate it cannot read, a port it cannot bind): give up.
 */
const STARTUP_FAILURES = { max: 5, windowMs: 30_000 };

/**
 * A worker that served and then died is always replaced, as nginx's master does: giving
 * up would cut every upload on the other workers. Deaths close together are replaced
 * after a growing delay (none for the first three in a minute, then 0.5 s doubling up to
 * 30 s), so a worker that dies again at once does not spin the primary while others
 * serve. When none is left listening, there is no delay: on Linux the workers share the
 * port (REUSE_PORT), so with no worker listening every new connection is refused, and a delay
 * would only lengthen that outage (a replacement still takes its start-up time, which
 * bounds how fast a worker that keeps dying can be replaced).
 */
export function respawnDelay(recentDeaths: number, othersListening: number): number {
  if (recentDeaths <= 3 || othersListening === 0) return 0;
  return Math.min(30_000, 500 * 2 ** (recentDeaths - 4));
}
const RESPAWN_WINDOW_MS = 60_000;

/** The primary to a worker: the config file changed, read the settings again. */
const RELOAD_SETTINGS = { type: 'berth:reload-settings' } as const;

/**
 * The certificate the workers serve, as the primary's readiness and expiry metric see it:
 * the same files and checks as the workers' reloads, without their log lines; or what the
 * primary's ACME manager issued.
 */
function servedCertificate(config: Config, tls: TlsMaterial, logger: Logger, acme: AcmeForWorkers | undefined): () => crypto.X509Certificate | undefined {
  if (acme) return () => acme.manager.status().leaf;
  if (config.tls.cert === undefined || config.tls.key === undefined || tls.cert === undefined || tls.key === undefined) {
    const leaf = tls.cert === undefined ? undefined : new crypto.X509Certificate(tls.cert);
    return () => leaf;
  }
  const watch = watchCertificate({ certFile: config.tls.cert, keyFile: config.tls.key, current: { cert: tls.cert, key: tls.key }, apply: () => undefined, logger: logger.child({}, { level: 'silent' }) });
  process.on('SIGHUP', () => watch.reload('SIGHUP'));
  return () => watch.current();
}

export async function runPrimary(config: Config, tls: TlsMaterial, logger: Logger, source?: SettingsSource): Promise<void> {
  // First, before anything else listens or watches: a port berth cannot have ends it here.
  if (REUSE_PORT && config.listen.port !== 0) await claimPort(config.listen);
  /** The TLS port the workers share with SO_REUSEPORT; for port 0, known once the first listens. */
  let port: number | undefined = REUSE_PORT && config.listen.port !== 0 ? config.listen.port : undefined;
  /** Deaths of workers that had served, and of workers that never listened, recently. */
  const deaths: number[] = [];
  const startupFailures: number[] = [];
  const pending = new Set<NodeJS.Timeout>();
  let announced = false;
  let stopping = false;
  // The admin listener lives here, summing the workers' metrics.
  // ACME orders and renews here; the workers get what it issues (server/acme.ts).
  const acme = config.acme ? new AcmeForWorkers(config, logger, () => live.values()) : undefined;
  const certificate = servedCertificate(config, tls, logger, acme);
  const admin = await startAdminListener(config, logger, {
    registry: new client.Registry(),
    gathered: workerMetricsText,
    certificate,
    ...(acme ? { acme: () => acme.manager.status() } : {}),
    draining: () => stopping,
  });
  /** A worker cut requests (grace period over, second signal) or died while stopping. */
  let cutShort = false;

  cluster.setupPrimary({ execArgv: workerExecArgv() });
  // Workers alive, by id. Not cluster.workers: Node removes a worker from it only once both
  // its process has exited and its IPC channel has closed, in either order, so on 'exit'
  // the last worker may still be listed.
  const live = new Map<number, Worker>();
  const fork = (): Worker => {
    // Port "0": this worker is the first, and binds the port the others will share.
    const worker = cluster.fork(REUSE_PORT ? { [ENV_WORKER_TLS_PORT]: String(port ?? 0) } : {});
    live.set(worker.id, worker);
    // A message to a worker that is exiting fails its write (EPIPE) after isConnected() said
    // yes, and Node reports that as an 'error' event on the worker: unheard, it would end the
    // primary (and with it every worker's connections). The worker's exit is handled below.
    worker.on('error', (err: Error) => logger.debug({ worker: worker.process.pid, err }, 'a message to a worker was not delivered'));
    worker.on('message', (message: unknown) => {
      acme?.onMessage(worker, message);
      if (isTicketKeysRequest(message)) return void worker.send(ticketKeysMessage(ticketKeys.current()));
      if (!isListening(message)) return;
      listening.add(worker.id);
      if (REUSE_PORT && port === undefined) {
        port = message.address.port;
        for (let i = 1; i < config.workers; i++) fork();
      }
      if (!announced && listening.size >= config.workers) {
        announced = true;
        acme?.manager.begin();
        logServing(logger, config, message.address, tls, admin?.address, message.httpAddress);
      }
    });
    return worker;
  };
  const listening = new Set<number>();
  const ticketKeys = rotateTicketKeys(config.tls.ticketKeyRotation, logger);
  ticketKeys.onChange((keys) => {
    for (const worker of live.values()) if (worker.isConnected()) worker.send(ticketKeysMessage(keys));
  });

  cluster.on('exit', (worker, code, signal) => {
    acme?.onExit(worker);
    const served = listening.delete(worker.id);
    live.delete(worker.id);
    if (stopping) {
      // A worker still starting has no requests: the stop signal's default action ends it.
      if (served && code !== 0) cutShort = true;
      if (live.size === 0) {
        logger.info({ end: cutShort ? 'cut' : 'drained' }, 'stopped');
        exitAfterFlush(logger, cutShort ? 1 : 0);
      }
      return;
    }
    const now = Date.now();
    const window = served ? deaths : startupFailures;
    window.push(now);
    while (window.length && window[0]! < now - (served ? RESPAWN_WINDOW_MS : STARTUP_FAILURES.windowMs)) window.shift();
    if (!served && window.length > STARTUP_FAILURES.max) {
      logger.fatal({ worker: worker.process.pid, code, signal }, 'workers die before they can serve; stopping berth');
      exitAfterFlush(logger, 1);
      return;
    }
    const delay = served ? respawnDelay(deaths.length, listening.size) : 0;
    logger.error({ worker: worker.process.pid, code, signal, restartIn: `${delay / 1000}s`, listening: listening.size }, served ? 'worker died; starting another' : 'worker died while starting; starting another');
    const timer = setTimeout(() => {
      pending.delete(timer);
      fork();
    }, delay);
    pending.add(timer);
  });

  const relay = (signal: NodeJS.Signals): void => {
    logger.info({ signal, workers: live.size }, stopping ? 'second signal: workers close now' : 'stopping: workers drain');
    if (!stopping && grace > 0) {
      // Each worker ends its own drain at the grace period; one that cannot is killed.
      setTimeout(() => {
        for (const worker of live.values()) worker.process.kill('SIGKILL');
      }, grace + 5000).unref();
    }
    stopping = true;
    ticketKeys.stop();
    acme?.manager.stop();
    for (const timer of pending) clearTimeout(timer);
    pending.clear();
    if (live.size === 0) {
      // Every worker had died and the next was still to start: nothing to drain.
      logger.info({ end: 'drained' }, 'stopped');
      exitAfterFlush(logger, 0);
      return;
    }
    // Workers act on SIGTERM only: a Ctrl-C reaches the whole process group, and must
    // count once, through this relay.
    for (const worker of live.values()) worker.process.kill('SIGTERM');
  };
  process.on('SIGTERM', relay);
  process.on('SIGINT', relay);
  // The workers' grace period, as the settings in service say (they reload it too).
  let grace = config.shutdown.grace;
  const reloadGrace = (): void => {
    try {
      if (source) grace = source.load().shutdown.grace;
    } catch {
      // Each worker logs why the settings were refused, and keeps its grace period: so does this.
    }
  };
  // Each worker serves its own TLS context and settings: each reloads.
  process.on('SIGHUP', () => {
    reloadGrace();
    for (const worker of live.values()) worker.process.kill('SIGHUP');
  });
  if (source?.file !== undefined) {
    watchConfigFile(source.file, logger, () => {
      reloadGrace();
      for (const worker of live.values()) if (worker.isConnected()) worker.send(RELOAD_SETTINGS);
    });
  }

  // For port 0 with SO_REUSEPORT, one worker first: the rest follow once it has the port.
  const first = REUSE_PORT && port === undefined ? 1 : config.workers;
  for (let i = 0; i < first; i++) fork();
}

/** A worker: the same config as the primary (same argv and environment). */
export async function runWorker(config: Config, logger: Logger, source?: SettingsSource): Promise<void> {
  const acme = config.acme ? await acmeFromPrimary() : undefined;
  const tls: TlsMaterial = acme ? { source: 'acme', cert: acme.pair?.cert, key: acme.pair?.key } : await loadTlsMaterial(config, undefined);
  // Set by a primary that shares the port with SO_REUSEPORT (0: this worker picks it).
  const given = process.env[ENV_WORKER_TLS_PORT];
  const port = Number(given ?? NaN);
  const own = given !== undefined && Number.isInteger(port) && port >= 0;
  const served = (settings: Config): Config => (own && settings.listen.port === config.listen.port ? { ...settings, listen: Object.freeze({ ...settings.listen, port }) } : settings);
  const { startBerth } = await import('./berth.js'); // the proxy: not loaded in the primary
  const berth = await startBerth(served(config), tls, logger, { ticketKeys: await ticketKeysFromPrimary(logger), reusePort: own });
  acme?.serve(berth);
  answerMetricRequests(berth.registry);
  process.on('SIGINT', () => undefined); // see the primary's relay
  stopOnSignals(berth, logger, ['SIGTERM']);
  // Reloaded settings name the port as configured (0 for the others' port): this worker's is the one it serves.
  const mine = source && { load: () => served(source.load()) };
  reloadOnHangup(berth, logger, mine, false);
  process.on('message', (message: unknown) => {
    if (mine && (message as { type?: unknown } | undefined)?.type === RELOAD_SETTINGS.type) reloadSettings(berth, logger, mine.load);
  });
  process.send?.({ type: 'berth:listening', address: berth.address, httpAddress: berth.httpAddress } satisfies ListeningMessage);
}
