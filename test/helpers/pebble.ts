import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import { makeTestPki } from './tls.js';
import { freePort, onFreePort, waitForPort } from './ports.js';

/** Debian's pebble (the ACME test server) and pebble-challtestsrv (its DNS), when installed. */
export function pebbleMissing(): string | undefined {
  const missing = ['pebble', 'pebble-challtestsrv'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
  if (missing.length === 0) return undefined;
  if (process.env.CI === 'true') throw new Error(`CI must install ${missing.join(' and ')} (Debian package pebble)`);
  return `${missing.join(' and ')} not installed (Debian package pebble)`;
}

export interface TestPebble {
  /** The ACME directory URL. */
  readonly directory: string;
  /** The CA of the directory's own https certificate: berth's acme.ca. */
  readonly caFile: string;
  /** The root Pebble issues under (fetched from its management interface): what a client trusts. */
  root(): Promise<string>;
  /** New orders placed so far (pebble's "POST /order-plz" lines), over every run of this pebble. */
  orders(): number;
  /** Names the DNS answers with another address (an A record), e.g. one where berth does not listen. */
  resolve(host: string, address: string): Promise<void>;
  /** Stops pebble (the DNS stays); start() brings it back on the same address, with new state (pebble keeps none). */
  stop(): Promise<void>;
  start(): Promise<void>;
}

/**
 * Pebble on loopback, validating on `httpPort` (HTTP-01) and `tlsPort` (TLS-ALPN-01) of
 * 127.0.0.1, with pebble-challtestsrv as its DNS: every name resolves to 127.0.0.1.
 * Validations are immediate (PEBBLE_VA_NOSLEEP), no nonce is refused at random, and
 * authorizations are never reused, so that each order is validated.
 */
export async function startPebble(t: Test, options: { httpPort: number; tlsPort: number; validitySeconds?: number; eab?: Record<string, string> }): Promise<TestPebble> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-pebble-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const pki = await makeTestPki(['localhost', '127.0.0.1']);
  const children: ChildProcess[] = [];
  t.teardown(() => children.forEach((c) => c.kill('SIGKILL')));

  const dns = await onFreePort(async (port) => {
    const management = await freePort();
    const child = spawn('pebble-challtestsrv', ['-dns01', `127.0.0.1:${port}`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${management}`, '-defaultIPv6', ''], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    await waitForPort(management, () => (child.exitCode !== null ? `pebble-challtestsrv exited: ${out}` : undefined), child.pid);
    return { port, management };
  });

  let log = '';
  let orders = 0;
  let child: ChildProcess | undefined;
  let listen = 0;
  let management = 0;
  /** On its first start, on ports found free; again on the same ones, so that the directory URL berth has stays right. */
  const start = async (): Promise<void> => {
    const again = listen !== 0;
    await onFreePort(async (port) => {
      listen = again ? listen : port;
      management = again ? management : await freePort();
      const config = path.join(dir, 'pebble.json');
      fs.writeFileSync(
        config,
        JSON.stringify({
          pebble: {
            listenAddress: `127.0.0.1:${listen}`,
            managementListenAddress: `127.0.0.1:${management}`,
            certificate: pki.certFile,
            privateKey: pki.keyFile,
            httpPort: options.httpPort,
            tlsPort: options.tlsPort,
            ocspResponderURL: '',
            externalAccountBindingRequired: options.eab !== undefined,
            ...(options.eab ? { externalAccountMACKeys: options.eab } : {}),
            ...(options.validitySeconds ? { certificateValidityPeriod: options.validitySeconds } : {}),
          },
        }),
      );
      const env = { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' };
      const started = spawn('pebble', ['-config', config, '-dnsserver', `127.0.0.1:${dns.port}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(started);
      const read = (d: Buffer): void => {
        const text = d.toString();
        log += text;
        orders += text.split('POST /order-plz').length - 1;
      };
      started.stdout.on('data', read);
      started.stderr.on('data', read);
      await waitForPort(listen, () => (started.exitCode !== null ? `pebble exited: ${log.slice(-500)}` : undefined), started.pid);
      child = started;
    });
  };
  await start();

  const fetchText = async (url: string): Promise<string> => {
    // Pebble's management interface is https with its own certificate, which the test CA signed.
    const { default: https } = await import('node:https');
    return new Promise((resolve, reject) => {
      https
        .get(url, { ca: pki.ca }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve(body));
        })
        .on('error', reject);
    });
  };
  return {
    get directory() {
      return `https://127.0.0.1:${listen}/dir`;
    },
    caFile: pki.caFile,
    root: () => fetchText(`https://127.0.0.1:${management}/roots/0`),
    orders: () => orders,
    async resolve(host, address) {
      const body = JSON.stringify({ host, addresses: [address] });
      const res = await fetch(`http://127.0.0.1:${dns.management}/add-a`, { method: 'POST', body });
      if (!res.ok) throw new Error(`pebble-challtestsrv add-a: ${res.status}`);
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
    start,
  };
}
