import { EventEmitter, once } from 'node:events';
import { Writable } from 'node:stream';
import type { Test } from 'tap';
import { buildConfig, type Config, type Raw } from '../../src/config/validate.js';
import { createLogger } from '../../src/observe/logger.js';
import { startBerth, type Berth } from '../../src/server/berth.js';
import { makeTestPki, type TestPki } from './tls.js';

export interface TestBerth {
  readonly berth: Berth;
  readonly config: Config;
  readonly port: number;
  /** https://localhost:PORT */
  readonly origin: string;
  readonly pki: TestPki;
  /** Every log line berth wrote, parsed. */
  readonly logs: Record<string, unknown>[];
  /** Emits 'line' for each log line as it is written. */
  readonly logEvents: EventEmitter;
}

let sharedPki: Promise<TestPki> | undefined;

/** Starts berth in-process on 127.0.0.1:0 with a certificate from a CA made for the test run. */
export async function startTestBerth(t: Test, settings: Record<string, unknown>, options: { devCa?: string } = {}): Promise<TestBerth> {
  sharedPki ??= makeTestPki();
  const pki = await sharedPki;
  const layer = new Map<string, Raw>();
  const all: Record<string, unknown> = { listen: '127.0.0.1:0', 'tls.cert': pki.certFile, 'tls.key': pki.keyFile, ...settings };
  for (const [key, value] of Object.entries(all)) layer.set(key, { value, source: 'test' });
  const config = buildConfig([layer]);
  const logs: Record<string, unknown>[] = [];
  const logEvents = new EventEmitter();
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (!text) continue;
        const line = JSON.parse(text) as Record<string, unknown>;
        logs.push(line);
        logEvents.emit('line', line);
      }
      done();
    },
  });
  const logger = createLogger({ level: 'info', format: 'json' }, sink);
  const berth = await startBerth(config, { source: options.devCa ? 'development' : 'files', cert: pki.cert, key: pki.key, ...options }, logger);
  t.teardown(() => {
    berth.server.closeAllConnections();
    return berth.close();
  });
  const port = berth.address.port;
  return { berth, config, port, origin: `https://localhost:${port}`, pki, logs, logEvents };
}

/** Resolves with the first log line (written already or later) that matches. */
export async function waitForLog(tb: TestBerth, match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  // By index: several lines can be emitted in one go, before a waiter re-arms.
  for (let i = 0; ; i++) {
    while (i >= tb.logs.length) await once(tb.logEvents, 'line');
    if (match(tb.logs[i]!)) return tb.logs[i]!;
  }
}
