import client from 'prom-client';
import type { ErrorKind } from '../proxy/errors.js';
import type { Explained } from './explain.js';
import { operationOf, type Operation } from './operation.js';

/**
 * berth's Prometheus metrics. Each serving process keeps its own; with workers the
 * admin listener in the primary sums them (prom-client's cluster aggregation), and adds
 * what only the primary knows (the certificate's expiry).
 */

/** What the request handler reports; the proxy layer knows nothing else of metrics. */
export interface RequestObserver {
  started(method: string, path: string): Operation;
  finished(done: {
    readonly method: string;
    readonly operation: Operation;
    readonly status: number;
    readonly bytesIn: number;
    readonly bytesOut: number;
    readonly seconds: number;
    readonly error: ErrorKind | undefined;
    readonly explained?: Explained | undefined;
  }): void;
}

export interface ServingMetrics extends RequestObserver {
  connectionOpened(): void;
  connectionClosed(): void;
  /** A handshake that completed: its protocol, and whether a session (ticket) was resumed. */
  tlsHandshake(protocol: string, resumed: boolean): void;
  tlsHandshakeFailed(): void;
  connectionRefused(reason: string): void;
  /** A GET or HEAD sent again on a new connection: the upstream cut the one it went out on. */
  upstreamRetried(): void;
}

/** Durations from a token request to a multi-hour push. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14_400];

export function createServingMetrics(registry: client.Registry): ServingMetrics {
  const registers = [registry];
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []): client.Counter<L> => new client.Counter<L>({ name, help, labelNames, registers });
  // Requests and body bytes are counted here and handed to prom-client at scrape time, as
  // the in-flight gauges are: prom-client builds and hashes a label key on every inc().
  const tally = new RequestTally();
  let bytesInCounted = 0;
  let bytesOutCounted = 0;
  new client.Counter({
    name: 'berth_requests_total',
    help: 'Requests answered (or cut), by method, status class and registry operation.',
    labelNames: ['method', 'status_class', 'operation'] as const,
    registers,
    collect() {
      tally.handOver((labels, count) => this.inc(labels, count));
    },
  });
  const duration = new LabelledHistogram('berth_request_duration_seconds', 'Time from the request line to the end of the response, by registry operation.', 'operation', DURATION_BUCKETS, registry);
  const countedAtScrape = (name: string, help: string, read: () => number): void => {
    let handed = 0;
    new client.Counter({
      name,
      help,
      registers,
      collect() {
        const now = read();
        if (now > handed) this.inc(now - handed);
        handed = now;
      },
    });
  };
  countedAtScrape('berth_request_body_bytes_total', 'Request body bytes received from clients (counted when a request ends).', () => bytesInCounted);
  countedAtScrape('berth_response_body_bytes_total', 'Response body bytes relayed to clients (counted when a request ends).', () => bytesOutCounted);
  // Counted here and read at scrape time: two fewer prom-client calls on every request.
  let inFlight = 0;
  let uploads = 0;
  new client.Gauge({
    name: 'berth_requests_in_flight',
    help: 'Requests being served.',
    registers,
    collect() {
      this.set(inFlight);
    },
  });
  new client.Gauge({
    name: 'berth_uploads_in_flight',
    help: 'Blob upload requests (POST, PATCH, PUT) being served.',
    registers,
    collect() {
      this.set(uploads);
    },
  });
  // Per connection, counted here and read at scrape time too.
  let connections = 0;
  new client.Gauge({
    name: 'berth_open_connections',
    help: 'Client connections open on the TLS listener.',
    registers,
    collect() {
      this.set(connections);
    },
  });
  // Handshakes since the last scrape, by protocol: [full, resumed].
  const handshakesCounted = new Map<string, [number, number]>();
  new client.Counter({
    name: 'berth_tls_handshakes_total',
    help: 'TLS handshakes completed, by protocol and whether a session was resumed (no certificate sent, far less CPU).',
    labelNames: ['protocol', 'resumed'] as const,
    registers,
    collect() {
      for (const [protocol, counts] of handshakesCounted) {
        if (counts[0] > 0) this.inc({ protocol, resumed: 'false' }, counts[0]);
        if (counts[1] > 0) this.inc({ protocol, resumed: 'true' }, counts[1]);
        counts[0] = counts[1] = 0;
      }
    },
  });
  const handshakeFailures = new client.Counter({ name: 'berth_tls_handshake_failures_total', help: 'TLS handshakes that failed (protocol, cipher, certificate or a client that left).', registers });
  const upstreamErrors = counter('berth_upstream_errors_total', 'Requests that failed on the upstream side, by kind.', ['kind']);
  const refused = counter('berth_connections_refused_total', 'Connections answered with a refusal because a connection cap was reached, by reason.', ['reason']);
  const retries = counter('berth_upstream_retries_total', 'GET and HEAD requests sent again on a new connection because the registry cut the kept-alive one they went out on before answering.');
  const finish = new client.Histogram({
    name: 'berth_blob_upload_finish_seconds',
    help: "Time the registry took to answer the final PUT of a blob upload after its last byte (digest check, move to storage).",
    buckets: [0.05, 0.25, 1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600],
    registers,
  });
  const mounts = counter('berth_blob_mounts_total', 'Cross-repository blob mounts asked for, by result: mounted (201), or an upload started instead (202).', ['result']);
  const anotherHop = counter(
    'berth_not_registry_answers_total',
    "Errors on /v2/ answered by something between berth and the registry (no Docker-Distribution-Api-Version: a proxy's 413, a balancer's 502/504, an HTML page), by status.",
    ['status'],
  );
  const tokenExpired = counter('berth_upload_token_expired_total', 'Upload requests (PATCH, PUT) the registry refused 401 after the bearer token the client sent had expired: a push that outlived the token.');
  const isUpload = (method: string, operation: Operation): boolean => operation === 'blob_upload' && method !== 'GET' && method !== 'HEAD' && method !== 'DELETE';

  return {
    started(method, path) {
      const operation = operationOf(method, path);
      inFlight++;
      if (isUpload(method, operation)) uploads++;
      return operation;
    },
    finished(done) {
      inFlight--;
      if (isUpload(done.method, done.operation)) uploads--;
      tally.count(done.method, done.operation, done.status);
      duration.observe(done.operation, done.seconds);
      bytesInCounted += done.bytesIn;
      bytesOutCounted += done.bytesOut;
      if (done.error?.startsWith('upstream_')) upstreamErrors.inc({ kind: done.error.slice('upstream_'.length) });
      const explained = done.explained;
      if (explained !== undefined) {
        if (explained.finishMs !== undefined) finish.observe(explained.finishMs / 1000);
        if (explained.mount !== undefined) mounts.inc({ result: explained.mount });
        if (explained.anotherHop !== undefined) anotherHop.inc({ status: String(done.status) });
        if (explained.tokenExpired !== undefined) tokenExpired.inc();
      }
    },
    connectionOpened: () => void connections++,
    connectionClosed: () => void connections--,
    tlsHandshake: (protocol, resumed) => {
      let counts = handshakesCounted.get(protocol);
      if (counts === undefined) handshakesCounted.set(protocol, (counts = [0, 0]));
      counts[resumed ? 1 : 0]++;
    },
    tlsHandshakeFailed: () => handshakeFailures.inc(),
    connectionRefused: (reason) => refused.inc({ reason }),
    upstreamRetried: () => retries.inc(),
  };
}

/**
 * berth_requests_total as plain counts: by method, then operation, then status class (1xx to
 * 5xx; 499 counts as 4xx), with no string built or hashed per request. handOver gives
 * prom-client what was counted since the last scrape, with the labels it expects.
 */
export class RequestTally {
  readonly #counts = new Map<string, Map<Operation, number[]>>();
  readonly #handed = new Map<string, Map<Operation, number[]>>();

  count(method: string, operation: Operation, status: number): void {
    let byOperation = this.#counts.get(method);
    if (byOperation === undefined) this.#counts.set(method, (byOperation = new Map()));
    let byClass = byOperation.get(operation);
    if (byClass === undefined) byOperation.set(operation, (byClass = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    byClass[Math.min(9, Math.max(0, Math.floor(status / 100)))]!++;
  }

  handOver(inc: (labels: { method: string; status_class: string; operation: Operation }, count: number) => void): void {
    for (const [method, byOperation] of this.#counts) {
      let handedByOperation = this.#handed.get(method);
      if (handedByOperation === undefined) this.#handed.set(method, (handedByOperation = new Map()));
      for (const [operation, byClass] of byOperation) {
        let handed = handedByOperation.get(operation);
        if (handed === undefined) handedByOperation.set(operation, (handed = byClass.map(() => 0)));
        for (let c = 0; c < byClass.length; c++) {
          const fresh = byClass[c]! - handed[c]!;
          if (fresh > 0) inc({ method, status_class: `${c}xx`, operation }, fresh);
          handed[c] = byClass[c]!;
        }
      }
    }
  }
}

/** A line of a histogram's exposition, as prom-client's registry reads it. */
interface HistogramValue {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName: string;
}

/** One series of a LabelledHistogram: observations per bucket (not cumulative), their sum and count. */
interface HistogramSeries {
  readonly perBucket: number[];
  sum: number;
  count: number;
}

/**
 * A Prometheus histogram with one label, observed into plain arrays: prom-client's
 * Histogram builds, validates and hashes a label object on every observe(), once per
 * request for berth_request_duration_seconds. It answers its registry as prom-client's
 * metrics do (get, reset; the 'sum' aggregator across workers), with the values in
 * prom-client's order and shape, so its text and the workers' sum are the ones a
 * prom-client Histogram gives for the same observations (a generated-input test compares
 * them).
 */
export class LabelledHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #series = new Map<string, HistogramSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly label: string,
    private readonly buckets: readonly number[],
    registry: client.Registry,
  ) {
    registry.registerMetric(this as unknown as client.Metric);
  }

  /** One observation for the series whose label has this value; a value that is not finite is not counted. */
  observe(labelValue: string, value: number): void {
    if (!Number.isFinite(value)) return;
    let series = this.#series.get(labelValue);
    if (series === undefined) this.#series.set(labelValue, (series = { perBucket: this.buckets.map(() => 0), sum: 0, count: 0 }));
    const buckets = this.buckets;
    for (let i = 0; i < buckets.length; i++) {
      if (value <= buckets[i]!) {
        series.perBucket[i]!++;
        break;
      }
    }
    series.sum += value;
    series.count++;
  }

  /** The values as prom-client's Histogram gives them: cumulative buckets, +Inf, sum and count, series by series. */
  get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: HistogramValue[] }> {
    const values: HistogramValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const [labelValue, series] of this.#series) {
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += series.perBucket[i]!;
        values.push({ labels: { le: this.buckets[i]!, [this.label]: labelValue }, value: cumulative, metricName: bucket });
      }
      values.push(
        { labels: { le: '+Inf', [this.label]: labelValue }, value: series.count, metricName: bucket },
        { labels: { [this.label]: labelValue }, value: series.sum, metricName: `${this.name}_sum` },
        { labels: { [this.label]: labelValue }, value: series.count, metricName: `${this.name}_count` },
      );
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  reset(): void {
    this.#series.clear();
  }
}

/** The served certificate's remaining lifetime; the lowest across workers wins. */
export function registerCertificateExpiry(registry: client.Registry, validTo: () => Date | undefined): void {
  new client.Gauge({
    name: 'berth_certificate_expiry_seconds',
    help: 'Seconds until the served certificate expires (negative once expired).',
    registers: [registry],
    aggregator: 'min',
    collect() {
      const end = validTo();
      if (end) this.set(Math.round((end.getTime() - Date.now()) / 1000));
    },
  });
}

export function registerDraining(registry: client.Registry, draining: () => boolean): void {
  new client.Gauge({
    name: 'berth_draining',
    help: '1 while berth stops: it accepts no connections and waits for requests in flight.',
    registers: [registry],
    aggregator: 'max',
    collect() {
      this.set(draining() ? 1 : 0);
    },
  });
}

/** ACME, where it orders (the single process, or the primary): orders by result, and the next renewal. */
export function registerAcme(registry: client.Registry, status: () => { readonly nextRenewal: Date | undefined; readonly orders: { readonly issued: number; readonly failed: number } }): void {
  const counted = { issued: 0, failed: 0 };
  new client.Counter({
    name: 'berth_acme_orders_total',
    help: 'ACME orders since start, by result (issued, failed).',
    labelNames: ['result'] as const,
    registers: [registry],
    collect() {
      const { orders } = status();
      for (const result of ['issued', 'failed'] as const) {
        if (orders[result] > counted[result]) this.inc({ result }, orders[result] - counted[result]);
        counted[result] = orders[result];
      }
    },
  });
  new client.Gauge({
    name: 'berth_acme_next_renewal_timestamp_seconds',
    help: 'When berth next orders (renewal, or the retry of a failed order), as a Unix time.',
    registers: [registry],
    collect() {
      const next = status().nextRenewal;
      if (next) this.set(Math.round(next.getTime() / 1000));
    },
  });
}
