import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';
import type acmeClient from 'acme-client';
import type { Logger } from 'pino';
import type { AcmeSettings } from '../../config/validate.js';
import type { ChallengeChange } from './challenges.js';
import { explainFailure } from './problems.js';
import { renewalWindow } from './renewalInfo.js';
import { AcmeStore } from './store.js';

/** A certificate and its key, as the serving processes put it into service. */
export interface IssuedPair {
  readonly cert: string;
  readonly key: string;
}

/** Where the manager's results go: every serving process (in one process, or over IPC to the workers). */
export interface AcmeOutlets {
  /** Applies a challenge change in every serving process; resolves once each has. */
  challenge(change: ChallengeChange): Promise<void>;
  /** Puts a certificate into service in every serving process, for new connections. */
  certificate(pair: IssuedPair): void;
}

export interface AcmeStatus {
  /** Set while no certificate is in service: what berth waits for, and why. */
  readonly waiting: string | undefined;
  readonly nextRenewal: Date | undefined;
  /** The last failure, in the operator's words, with the CA's problem detail; cleared by a success. */
  readonly lastError: string | undefined;
  /** The leaf in service. */
  readonly leaf: crypto.X509Certificate | undefined;
  /** Orders since start: issued, and failed. */
  readonly orders: { readonly issued: number; readonly failed: number };
}

/** Retries after a failure: from a minute, doubling, up to six hours; never a tight loop. */
export const BACKOFF_FIRST_MS = 60_000;
export const BACKOFF_MAX_MS = 6 * 3_600_000;
/** setTimeout holds at most ~24.8 days: longer waits are taken in steps. */
const LONGEST_TIMER_MS = 86_400_000;

/**
 * When to renew: once a third of the certificate's lifetime is left (whatever the CA's
 * lifetime: 90 days today, 64 and 45 as Let's Encrypt shortens them), less a random part
 * of up to a thirtieth of it, so that replicas and restarts spread their orders.
 */
export function renewalTime(leaf: crypto.X509Certificate, random: () => number = Math.random): Date {
  const from = new Date(leaf.validFrom).getTime();
  const to = new Date(leaf.validTo).getTime();
  const lifetime = Math.max(0, to - from);
  return new Date(from + (lifetime * 2) / 3 - random() * (lifetime / 30));
}

/** The wait before retry `attempt` (1 = the first retry), with ±10% jitter. */
export function backoff(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.9 + 0.2 * random()));
}

/**
 * Gets and renews the certificate for acme.names, in the one process that does it (the
 * single berth process, or a cluster's primary). A stored certificate that still covers
 * the names is served at once and nothing is ordered until its renewal time. Orders,
 * challenges and failures are logged; a failure keeps the certificate in service and is
 * retried with backoff.
 */
export class AcmeManager {
  readonly #settings: AcmeSettings;
  readonly #store: AcmeStore;
  readonly #logger: Logger;
  readonly #outlets: AcmeOutlets;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #failures = 0;
  #leaf: crypto.X509Certificate | undefined;
  #waiting: string | undefined;
  #nextRenewal: Date | undefined;
  #lastError: string | undefined;
  readonly #agent: https.Agent;
  readonly #orders = { issued: 0, failed: 0 };
  /** acme-client and what it loads (axios, node-forge: about 15 MiB of heap), only once an order is placed. */
  #library: Promise<typeof acmeClient> | undefined;
  #askAgain: NodeJS.Timeout | undefined;

  constructor(settings: AcmeSettings, tlsDir: string, logger: Logger, outlets: AcmeOutlets) {
    this.#settings = settings;
    this.#store = new AcmeStore(tlsDir, settings.directory);
    this.#logger = logger.child({ acme: settings.directory.host });
    this.#outlets = outlets;
    // The directory's https: the system roots, and the extra ones of a private CA.
    this.#agent = new https.Agent({ keepAlive: true, ...(settings.ca !== undefined ? { ca: [...tls.rootCertificates, fs.readFileSync(settings.ca, 'utf8')] } : {}) });
  }

  /** The stored certificate, when it covers the names and has not expired: served at once, nothing ordered before its renewal time. */
  stored(): IssuedPair | undefined {
    const stored = this.#store.certificate(this.#settings.names);
    if (!stored || !covers(stored.leaf, this.#settings.names) || new Date(stored.leaf.validTo).getTime() <= Date.now()) return undefined;
    this.#leaf = stored.leaf;
    this.#logger.info({ names: this.#settings.names, serial: stored.leaf.serialNumber, validTo: stored.leaf.validTo, dir: this.#store.dir }, 'ACME certificate loaded from tls.dir');
    return { cert: stored.cert, key: stored.key };
  }

  /**
   * Schedules the renewal of the stored certificate, or orders the first one: now, or once
   * the backoff of failures recorded in tls.dir has passed (a restart loop orders no faster
   * than the backoff allows). Call once berth listens.
   */
  begin(): void {
    if (this.#leaf) return this.#plan(this.#leaf);
    const recorded = this.#store.failures(this.#settings.names);
    this.#failures = recorded.count;
    const at = recorded.count > 0 ? new Date(Math.max(Date.now(), recorded.last + backoff(recorded.count))) : new Date();
    this.#waiting = `ordering a certificate for ${this.#settings.names.join(', ')} from ${this.#settings.directory.href} (${this.#settings.challenge})`;
    if (at.getTime() > Date.now()) this.#waiting += `; the last ${recorded.count} order(s) failed, the next attempt is at ${at.toISOString()}`;
    this.#logger.info(
      { names: this.#settings.names, challenge: this.#settings.challenge, directory: this.#settings.directory.href, ...(recorded.count > 0 ? { failedBefore: recorded.count, nextAttempt: at.toISOString() } : {}) },
      'no ACME certificate yet: ordering one; handshakes for these names fail until it is issued',
    );
    this.#schedule(at);
  }

  status(): AcmeStatus {
    return {
      waiting: this.#waiting === undefined ? undefined : `waiting for the ACME certificate: ${this.#waiting}`,
      nextRenewal: this.#nextRenewal,
      lastError: this.#lastError,
      leaf: this.#leaf,
      orders: { ...this.#orders },
    };
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#askAgain);
  }

  #schedule(at: Date): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#nextRenewal = at;
    const wait = Math.max(0, at.getTime() - Date.now());
    this.#timer = setTimeout(() => (wait > LONGEST_TIMER_MS ? this.#schedule(at) : void this.#renew()), Math.min(wait, LONGEST_TIMER_MS));
    this.#timer.unref();
  }

  async #renew(): Promise<void> {
    const started = Date.now();
    const { names } = this.#settings;
    // One berth orders at a time for these names, whatever shares tls.dir.
    const release = await this.#store.lock(names, (holder) => this.#logger.info({ names, holder }, 'another berth sharing tls.dir is ordering this certificate: waiting for it'));
    try {
      if (this.#stopped) return;
      // Another berth may have renewed it meanwhile: then that certificate serves, and nothing is ordered.
      const stored = this.#store.certificate(names);
      if (stored && covers(stored.leaf, names) && stored.leaf.fingerprint256 !== this.#leaf?.fingerprint256 && renewalTime(stored.leaf).getTime() > Date.now()) {
        this.#inService(stored, 'ACME certificate issued to another berth sharing tls.dir: in service');
        return;
      }
      const pair = await this.#order();
      this.#store.saveCertificate(names, pair.cert, pair.key);
      this.#store.saveFailures(names, { count: 0, last: 0 });
      this.#orders.issued++;
      this.#inService({ ...pair, leaf: new crypto.X509Certificate(pair.cert) }, 'ACME certificate issued and in service', Date.now() - started);
    } catch (err) {
      this.#failures++;
      this.#orders.failed++;
      this.#store.saveFailures(names, { count: this.#failures, last: Date.now() });
      const explained = explainFailure(err, this.#settings);
      const retry = backoff(this.#failures);
      this.#lastError = explained.message;
      if (this.#leaf === undefined) this.#waiting = explained.message;
      this.#logger.error(
        { names, attempt: this.#failures, retryIn: `${Math.round(retry / 1000)}s`, problem: explained.problem, keeping: this.#leaf ? this.#leaf.serialNumber : 'none' },
        `ACME order failed: ${explained.message}`,
      );
      this.#schedule(new Date(Date.now() + retry));
    } finally {
      release();
    }
  }

  #inService(pair: IssuedPair & { leaf: crypto.X509Certificate }, message: string, tookMs?: number): void {
    this.#outlets.certificate({ cert: pair.cert, key: pair.key });
    this.#leaf = pair.leaf;
    this.#waiting = undefined;
    this.#lastError = undefined;
    this.#failures = 0;
    const next = renewalTime(pair.leaf);
    this.#logger.info({ names: this.#settings.names, serial: pair.leaf.serialNumber, validTo: pair.leaf.validTo, renewAt: next.toISOString(), ...(tookMs === undefined ? {} : { tookMs }) }, message);
    this.#plan(pair.leaf);
  }

  /**
   * Schedules the renewal of `leaf`: when a third of its lifetime is left, or earlier when the
   * CA's renewal information (RFC 9773) suggests a window that starts before; that is asked
   * again as often as the CA says (between an hour and a day). The CA's answer is advice:
   * when it cannot be had, the usual time stands.
   */
  #plan(leaf: crypto.X509Certificate): void {
    const usual = renewalTime(leaf);
    this.#schedule(usual);
    clearTimeout(this.#askAgain);
    void renewalWindow(this.#settings.directory, this.#agent, leaf).then(
      (window) => {
        if (window === undefined || this.#stopped || this.#leaf?.fingerprint256 !== leaf.fingerprint256) return;
        const pick = new Date(window.start.getTime() + Math.random() * (window.end.getTime() - window.start.getTime()));
        if (pick < (this.#nextRenewal ?? usual)) {
          this.#logger.info(
            { serial: leaf.serialNumber, windowStart: window.start.toISOString(), windowEnd: window.end.toISOString(), renewAt: pick.toISOString(), explanation: window.explanation },
            "the CA's renewal information (ARI) asks for an earlier renewal",
          );
          this.#schedule(pick);
        }
        if (pick.getTime() - Date.now() > window.askAgainMs) {
          this.#askAgain = setTimeout(() => this.#plan(leaf), window.askAgainMs);
          this.#askAgain.unref();
        }
      },
      (err: unknown) => this.#logger.debug({ error: (err as Error).message }, "the CA's renewal information (ARI) could not be read: the usual renewal time stands"),
    );
  }

  /** A challenge for this berth's own processes (through the outlets) and for every berth sharing tls.dir. */
  async #publish(change: ChallengeChange): Promise<void> {
    if (change.op === 'set-http') this.#store.shareChallenge('http-01', change.token, change.keyAuthorization);
    if (change.op === 'delete-http') this.#store.shareChallenge('http-01', change.token, undefined);
    if (change.op === 'set-alpn') this.#store.shareChallenge('tls-alpn-01', change.name.toLowerCase(), JSON.stringify({ cert: change.cert, key: change.key }));
    if (change.op === 'delete-alpn') this.#store.shareChallenge('tls-alpn-01', change.name.toLowerCase(), undefined);
    await this.#outlets.challenge(change);
  }

  #acme(): Promise<typeof acmeClient> {
    this.#library ??= import('acme-client').then(({ default: acme }) => {
      acme.axios.defaults.httpsAgent = this.#agent;
      acme.setLogger((message: string) => this.#logger.trace({ acmeClient: message }, 'acme-client'));
      // No retries inside the library (up to 75 s per request): a failed order is retried by
      // berth's own backoff, and said at once.
      (acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } }).acmeSettings.retryMaxAttempts = 0;
      return acme;
    });
    return this.#library;
  }

  /** One order, start to finish: account, authorizations answered, CSR, certificate. */
  async #order(): Promise<IssuedPair> {
    const acme = await this.#acme();
    const { names, challenge: type, email, eab } = this.#settings;
    // The library loses a network error's code (it reports a TypeError): ask once ourselves.
    await reachDirectory(this.#settings.directory, this.#agent);
    const accountKey = this.#store.accountKey(newEcdsaKey);
    const accountUrl = this.#store.accountUrl();
    const client = new acme.Client({
      directoryUrl: this.#settings.directory.href,
      accountKey,
      // Polls for a challenge's or an order's status: from a second, up to 10 s apart.
      backoffAttempts: 12,
      backoffMin: 1000,
      backoffMax: 10_000,
      ...(accountUrl ? { accountUrl } : {}),
      ...(eab ? { externalAccountBinding: { kid: eab.kid, hmacKey: eab.hmacKey } } : {}),
    });
    if (!accountUrl) {
      await client.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:${email}`] });
      this.#store.saveAccountUrl(client.getAccountUrl());
    }
    const order = await client.createOrder({ identifiers: names.map((value) => ({ type: 'dns', value })) });
    this.#logger.info({ names, challenge: type, order: order.url }, 'ACME order placed');
    const authorizations = await client.getAuthorizations(order);
    for (const authz of authorizations) {
      if (authz.status === 'valid') {
        // The CA kept this account's earlier validation of the name (CAs may reuse one): no challenge.
        this.#logger.info({ name: authz.identifier.value }, 'ACME authorization still valid at the CA: no challenge needed');
        continue;
      }
      const challenge = authz.challenges.find((c) => c.type === type);
      if (!challenge) throw new Error(`the CA offers no ${type} challenge for ${authz.identifier.value} (offered: ${authz.challenges.map((c) => c.type).join(', ')}); set acme.challenge to one of those`);
      const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
      const name = authz.identifier.value;
      const set: ChallengeChange =
        type === 'http-01'
          ? { op: 'set-http', token: challenge.token, keyAuthorization }
          : await (async () => {
              const [key, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization);
              return { op: 'set-alpn', name, cert: cert.toString(), key: key.toString() } as const;
            })();
      await this.#publish(set);
      try {
        await client.completeChallenge(challenge);
        await client.waitForValidStatus(challenge);
      } catch (err) {
        // The challenge's own problem document says why (connection, dns, unauthorized, …).
        const [again] = await client.getAuthorizations({ ...order, authorizations: [authz.url] }).catch(() => [undefined]);
        const failed = again?.challenges.find((c) => c.type === type) as { error?: { type?: string; detail?: string } } | undefined;
        throw Object.assign(new Error((err as Error).message), { identifier: name, problem: failed?.error });
      } finally {
        await this.#publish(type === 'http-01' ? { op: 'delete-http', token: challenge.token } : { op: 'delete-alpn', name });
      }
      this.#logger.info({ name, challenge: type }, 'ACME challenge validated');
    }
    const key = newEcdsaKey();
    const [, csr] = await acme.crypto.createCsr({ altNames: [...names] }, key);
    const finalized = await client.finalizeOrder(order, csr);
    const cert = await client.getCertificate(finalized);
    return { cert, key };
  }
}

/** GET the directory: resolves if it answers at all, else rejects with the network or TLS error (its code kept). */
function reachDirectory(directory: URL, agent: https.Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = https.get(directory, { agent, timeout: 15_000 }, (res) => {
      res.resume();
      resolve();
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('no answer within 15 s'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
  });
}

function newEcdsaKey(): string {
  return crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** Whether the certificate names every one of `names` (as clients check it: exact, or one label under a wildcard). */
function covers(leaf: crypto.X509Certificate, names: readonly string[]): boolean {
  return names.every((name) => leaf.checkHost(name, { wildcards: true, subject: 'never' }) !== undefined);
}
