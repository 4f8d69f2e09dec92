import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { Test } from 'tap';
import { startCli, type RunningCli } from './cli.js';
import { startPebble, type TestPebble } from './pebble.js';
import { freePort, onFreePort } from './ports.js';
import { startUpstream, type TestUpstream } from './upstream.js';

/** The name berth gets certificates for in the ACME tests (Pebble's DNS resolves it to 127.0.0.1). */
export const NAME = 'registry.berth.test';

export interface BerthOptions {
  /** Another port than the one Pebble validates on: a second berth on the same tls.dir. */
  readonly port?: number;
  readonly workers?: number | 'auto';
  readonly challenge?: 'tls-alpn-01' | 'http-01';
  readonly names?: readonly string[];
  /** Another directory than Pebble's (a stand-in in front of it), and the CA file that trusts both. */
  readonly directory?: string;
  readonly ca?: string;
}

export interface Setup {
  readonly pebble: TestPebble;
  readonly upstream: TestUpstream;
  readonly dir: string;
  readonly tlsPort: number;
  readonly httpPort: number;
  /** berth's flags and variables for ACME from Pebble, on the ports Pebble validates on. */
  settings(options?: BerthOptions): { args: string[]; env: Record<string, string> };
  /** Starts berth with those settings. */
  berth(options?: BerthOptions): Promise<RunningCli>;
}

/** An upstream, Pebble validating on two ports found free, and berth's settings for ACME from it on those ports. */
export async function setupAcme(t: Test, options: { validitySeconds?: number; eab?: Record<string, string> } = {}): Promise<Setup> {
  const upstream = await startUpstream(
    t,
    (req, res) => {
      if (req.method === 'GET') return void res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' }).end('{}');
      const hash = crypto.createHash('sha256');
      req.on('data', (d: Buffer) => hash.update(d));
      req.on('end', () => res.writeHead(201, { 'docker-content-digest': `sha256:${hash.digest('hex')}`, 'content-length': '0' }).end());
    },
    { streaming: true },
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-acme-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // Pebble is told the ports it validates on; berth then listens on them (another try if one was taken meanwhile).
  return onFreePort(async (tlsPort) => {
    const httpPort = await freePort();
    const pebble = await startPebble(t, { tlsPort, httpPort, ...options });
    const settings: Setup['settings'] = ({ port = tlsPort, workers = 2, challenge = 'tls-alpn-01', names, directory = pebble.directory, ca = pebble.caFile } = {}) => {
      const args = ['--workers', String(workers), '--listen', `127.0.0.1:${port}`, '--upstream', upstream.url, '--public-origin', `https://${NAME}`, '--cert-dir', dir];
      args.push('--acme-email', 'ops@berth.test', '--acme-directory', directory, '--acme-challenge', challenge);
      if (challenge === 'http-01') args.push('--http-listen', `127.0.0.1:${httpPort}`);
      const env: Record<string, string> = { BERTH_ACME_CA: ca, ...(names ? { BERTH_ACME_NAMES: names.join(','), BERTH_SERVER_NAMES: names.join(',') } : {}) };
      return { args, env };
    };
    const berth: Setup['berth'] = async (options = {}) => {
      const { args, env } = settings(options);
      const running = await startCli(args, { env });
      t.teardown(() => void running.child.kill('SIGKILL'));
      return running;
    };
    return { pebble, upstream, dir, tlsPort, httpPort, settings, berth };
  });
}

/** A TLS connection for `servername`, verified against `ca` as a client does; its leaf's serial, and GET /v2/'s status. */
export function connect(port: number, ca: string, servername = NAME): Promise<{ serial: string; status: number }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.write(`GET /v2/ HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
      let reply = '';
      socket.on('data', (d: Buffer) => (reply += d.toString()));
      socket.on('end', () => resolve({ serial, status: Number(reply.split(' ')[1]) }));
    });
    socket.on('error', reject);
  });
}

export function readyz(berth: RunningCli): Promise<{ status: number; body: { checks: { certificate: { ok: boolean; detail: string } }; serving: { certificate: string | null } } }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: berth.adminPort, path: '/readyz' }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(body) }));
      })
      .on('error', reject);
  });
}

export const issued = (berth: RunningCli): Promise<Record<string, unknown>> => berth.waitForLine((l) => l.msg === 'ACME certificate issued and in service');
