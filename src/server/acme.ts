import type { Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { Config } from '../config/validate.js';
import type { ChallengeChange } from '../tls/acme/challenges.js';
import { AcmeManager, type AcmeOutlets, type IssuedPair } from '../tls/acme/manager.js';
import type { Berth } from './berth.js';

/**
 * ACME in a running berth. One process orders and renews (tls/acme/manager.ts): the single
 * berth process, or a cluster's primary, which has no listener of its own and sends each
 * certificate and each challenge to every worker over IPC; a worker answers challenges and
 * serves certificates as they come. A challenge counts as published once every worker has
 * said it applied it, so the CA never validates against a worker that does not know it yet.
 */

interface StateMessage {
  readonly type: 'berth:acme-state';
  readonly pair: IssuedPair | undefined;
  readonly challenges: readonly ChallengeChange[];
}
interface ChallengeMessage {
  readonly type: 'berth:acme-challenge';
  readonly seq: number;
  readonly change: ChallengeChange;
}
interface CertificateMessage {
  readonly type: 'berth:acme-certificate';
  readonly pair: IssuedPair;
}
interface AppliedMessage {
  readonly type: 'berth:acme-applied';
  readonly seq: number;
}
const HELLO = { type: 'berth:acme-hello' } as const;

const typeOf = (message: unknown): unknown => (message as { type?: unknown } | undefined)?.type;

/** How long the primary waits for workers to apply a challenge before the CA is told to validate. */
const APPLIED_WITHIN_MS = 5_000;

/** ACME in the one berth process: the manager's results go straight to its listener. */
export function acmeInProcess(config: Config, logger: Logger): { manager: AcmeManager; stored: IssuedPair | undefined; serve(berth: Berth): void } {
  let berth: Berth | undefined;
  const outlets: AcmeOutlets = {
    challenge: async (change) => void berth?.challenges?.apply(change),
    certificate: (pair) => berth?.useCertificate(pair),
  };
  const manager = new AcmeManager(config.acme!, config.tls.dir, logger, outlets);
  return {
    manager,
    stored: manager.stored(),
    serve(running) {
      berth = running;
      manager.begin();
    },
  };
}

/** ACME in a cluster's primary: the manager, and what it sends the workers. */
export class AcmeForWorkers implements AcmeOutlets {
  readonly manager: AcmeManager;
  readonly #workers: () => Iterable<Worker>;
  /** The challenges being answered now, for workers that start meanwhile. */
  readonly #challenges = new Map<string, ChallengeChange>();
  #pair: IssuedPair | undefined;
  #seq = 0;
  readonly #waiting = new Map<number, { left: Set<number>; done: () => void }>();

  constructor(config: Config, logger: Logger, workers: () => Iterable<Worker>) {
    this.#workers = workers;
    this.manager = new AcmeManager(config.acme!, config.tls.dir, logger, this);
    this.#pair = this.manager.stored();
  }

  challenge(change: ChallengeChange): Promise<void> {
    const key = 'token' in change ? `http:${change.token}` : `alpn:${change.name}`;
    if (change.op === 'set-http' || change.op === 'set-alpn') this.#challenges.set(key, change);
    else this.#challenges.delete(key);
    const seq = ++this.#seq;
    const left = new Set<number>();
    for (const worker of this.#workers()) {
      if (!worker.isConnected()) continue;
      left.add(worker.id);
      worker.send({ type: 'berth:acme-challenge', seq, change } satisfies ChallengeMessage);
    }
    if (left.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(), APPLIED_WITHIN_MS);
      const finish = (): void => {
        clearTimeout(timer);
        this.#waiting.delete(seq);
        resolve();
      };
      this.#waiting.set(seq, { left, done: finish });
    });
  }

  certificate(pair: IssuedPair): void {
    this.#pair = pair;
    for (const worker of this.#workers()) if (worker.isConnected()) worker.send({ type: 'berth:acme-certificate', pair } satisfies CertificateMessage);
  }

  /** A worker's message: its hello (it gets the certificate and the challenges in service), or its word that it applied a challenge. */
  onMessage(worker: Worker, message: unknown): void {
    if (typeOf(message) === HELLO.type) {
      worker.send({ type: 'berth:acme-state', pair: this.#pair, challenges: [...this.#challenges.values()] } satisfies StateMessage);
    } else if (typeOf(message) === 'berth:acme-applied') {
      const waiting = this.#waiting.get((message as AppliedMessage).seq);
      waiting?.left.delete(worker.id);
      if (waiting?.left.size === 0) waiting.done();
    }
  }

  /** A worker is gone: nothing more is waited for from it. */
  onExit(worker: Worker): void {
    for (const waiting of this.#waiting.values()) {
      waiting.left.delete(worker.id);
      if (waiting.left.size === 0) waiting.done();
    }
  }
}

/**
 * ACME in a worker: asks the primary for the certificate and the challenges in service
 * before it listens; `serve` then applies what comes later to its listener.
 */
export function acmeFromPrimary(): Promise<{ pair: IssuedPair | undefined; serve(berth: Berth): void }> {
  return new Promise((resolve) => {
    const onState = (message: unknown): void => {
      if (typeOf(message) !== 'berth:acme-state') return;
      process.off('message', onState);
      const state = message as StateMessage;
      // What comes before the listener is up waits for it, in order.
      let berth: Berth | undefined;
      const early: unknown[] = [];
      const apply = (later: unknown): void => {
        if (berth === undefined) return void early.push(later);
        if (typeOf(later) === 'berth:acme-certificate') berth.useCertificate((later as CertificateMessage).pair);
        if (typeOf(later) === 'berth:acme-challenge') {
          const { seq, change } = later as ChallengeMessage;
          berth.challenges?.apply(change);
          process.send?.({ type: 'berth:acme-applied', seq } satisfies AppliedMessage);
        }
      };
      process.on('message', apply);
      resolve({
        pair: state.pair,
        serve(running) {
          berth = running;
          for (const change of state.challenges) running.challenges?.apply(change);
          for (const later of early.splice(0)) apply(later);
        },
      });
    };
    process.on('message', onState);
    process.send?.(HELLO);
  });
}
