#!/usr/bin/env node
// The reference row of bench:compare: what Node itself can do as a TLS front, with the
// least a proxy must do. An https server; hop-by-hop headers stripped; X-Forwarded-Proto
// and X-Forwarded-For set; bodies streamed both ways through an undici Pool with
// backpressure. No logs, no metrics, no checks: berth's own work is the difference.
// Usage: node bench/naive-undici.mjs CERT KEY UPSTREAM_PORT [WORKERS]; prints {"port":N}.
import cluster from 'node:cluster';
import fs from 'node:fs';
import https from 'node:https';
import { Pool } from 'undici';

const [certFile, keyFile, upstreamPort, workersArg = '1'] = process.argv.slice(2);
const workers = Number(workersArg);
const HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection', 'expect']);

if (cluster.isPrimary && workers > 1) {
  let listening = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork().on('message', (m) => {
      if (++listening === workers) process.stdout.write(JSON.stringify(m) + '\n');
    });
  }
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    process.exit(0);
  });
} else {
  // No time limits: a registry's final PUT may take minutes before its answer.
  const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 256, headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: 30_000 });
  const server = https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), requestTimeout: 0 }, (req, res) => {
    const headers = {};
    for (const [name, value] of Object.entries(req.headers)) if (!HOP.has(name)) headers[name] = value;
    headers['x-forwarded-proto'] = 'https';
    headers['x-forwarded-for'] = req.socket.remoteAddress;
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    pool.stream(
      { path: req.url, method: req.method, headers, body: hasBody ? req : null },
      ({ statusCode, headers: answer }) => {
        for (const name of HOP) delete answer[name];
        res.writeHead(statusCode, answer);
        return res;
      },
      (err) => {
        if (err && !res.headersSent) res.writeHead(502).end();
        else if (err) res.destroy();
      },
    );
  });
  server.listen(0, '127.0.0.1', () => {
    const message = { port: server.address().port };
    if (cluster.isWorker) process.send(message);
    else process.stdout.write(JSON.stringify(message) + '\n');
  });
  process.on('SIGTERM', () => process.exit(0));
}
