#!/usr/bin/env node
// A floor for bench:compare's new-connection rows: Node's https server with nothing else — no
// proxying, no upstream, no listeners of its own — in WORKERS processes, each listening on the
// same port with SO_REUSEPORT as berth's workers do. It answers a request with 204, but the
// handshake measurement (openssl s_time -new) sends none: what it measures is accepting a
// connection, the TLS handshake and closing, in Node, on this machine. Beside the single
// process, the same with WORKERS processes says what spreading connections over processes
// costs per connection on this machine (the processes and the clients share its cores).
// Usage: node bench/bare-tls.mjs CERT KEY [WORKERS]; prints {"port":N} once all listen.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';

const [certFile, keyFile, workersArg = '1', portArg] = process.argv.slice(2);

if (portArg === undefined) {
  // The parent holds the port (SO_REUSEPORT, port 0) until every child listens on it too,
  // then closes its own socket so that only the children accept.
  const holder = net.createServer();
  await new Promise((resolve) => holder.listen({ port: 0, host: '127.0.0.1', reusePort: true }, resolve));
  const { port } = holder.address();
  const kids = [];
  for (let i = 0; i < Number(workersArg); i++) {
    const kid = spawn(process.execPath, [...process.execArgv, process.argv[1], certFile, keyFile, workersArg, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    kids.push(kid);
    await new Promise((resolve, reject) => {
      kid.stdout.once('data', resolve);
      kid.once('exit', (code) => reject(new Error(`bare-tls: a process exited with ${code}`)));
    });
  }
  holder.close();
  process.stdout.write(JSON.stringify({ port }) + '\n');
  process.on('SIGTERM', () => {
    for (const kid of kids) kid.kill('SIGTERM');
    process.exit(0);
  });
} else {
  const server = https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }, (req, res) => res.writeHead(204).end());
  server.listen({ port: Number(portArg), host: '127.0.0.1', reusePort: true }, () => process.stdout.write('listening\n'));
  process.on('SIGTERM', () => process.exit(0));
}
