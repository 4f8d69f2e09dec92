import cluster, { type Worker } from 'node:cluster';
import crypto from 'node:crypto';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';

/**
 * Metrics across workers. prom-client's own cluster support waits for every worker it
 * asked and fails the whole scrape when one exits first (as workers do while berth
 * drains), so berth asks over its own messages and sums whatever answers arrive.
 */

interface Ask {
  readonly type: 'berth:metrics?';
  readonly id: string;
}
interface Answer {
  readonly type: 'berth:metrics';
  readonly id: string;
  readonly metrics: MetricObjectWithValues<MetricValue<string>>[];
}

/** In a worker: answer the primary's requests with this registry. */
export function answerMetricRequests(registry: Registry): void {
  process.on('message', (message: Ask) => {
    if (message?.type !== 'berth:metrics?') return;
    void registry.getMetricsAsJSON().then((metrics) => process.send?.({ type: 'berth:metrics', id: message.id, metrics } satisfies Answer));
  });
}

function askWorker(worker: Worker, timeoutMs: number): Promise<Answer['metrics'] | undefined> {
  // Each ask its own id: a late answer to an earlier scrape is not taken for this one's.
  const id = crypto.randomUUID();
  return new Promise((resolve) => {
    const done = (metrics: Answer['metrics'] | undefined): void => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', onExit);
      resolve(metrics);
    };
    const onMessage = (message: Answer): void => {
      if (message?.type === 'berth:metrics' && message.id === id) done(message.metrics);
    };
    const onExit = (): void => done(undefined);
    const timer = setTimeout(() => done(undefined), timeoutMs);
    worker.on('message', onMessage);
    worker.once('exit', onExit);
    try {
      // A worker exiting meanwhile (a drain) fails the write: no answer from it, said here
      // rather than as an 'error' event on the worker.
      worker.send({ type: 'berth:metrics?', id } satisfies Ask, (err: Error | null) => {
        if (err) done(undefined);
      });
    } catch {
      done(undefined);
    }
  });
}

/** In the primary: every connected worker's metrics, summed (gauges per their aggregator), as text. */
export async function workerMetricsText(timeoutMs = 2000): Promise<string> {
  const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
  const answers = (await Promise.all(workers.map((w) => askWorker(w, timeoutMs)))).filter((a) => a !== undefined);
  if (answers.length === 0) return '';
  return AggregatorRegistry.aggregate(answers).metrics();
}
