#!/usr/bin/env node
// A fast registry stand-in for the benchmarks, in its own process: plain HTTP on
// 127.0.0.1, an ephemeral port written to stdout as {"port":N}.
//   GET  /v2/                      200 {} with the registry's API header (small requests)
//   GET  /bench/count              how many GET /v2/ it has answered (bench:instructions)
//   GET  /v2/bench/blobs/<bytes>   <bytes> of data (downloads)
//   PUT|PATCH|POST anything else   reads and discards the body, answers 201 like the registry
import http from 'node:http';

const block = Buffer.alloc(1 << 20, 0x5a);
let small = 0;
const server = http.createServer({ requestTimeout: 0, keepAliveTimeout: 120_000 }, (req, res) => {
  if (req.method === 'GET' && req.url === '/v2/') {
    small++;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2', 'docker-distribution-api-version': 'registry/2.0' });
    return void res.end('{}');
  }
  if (req.method === 'GET' && req.url === '/bench/count') return void res.end(String(small));
  const blob = /^\/v2\/bench\/blobs\/(\d+)$/.exec(req.url ?? '');
  if (req.method === 'GET' && blob) {
    const size = Number(blob[1]);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size), 'docker-distribution-api-version': 'registry/2.0' });
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        const n = Math.min(block.length, size - sent);
        sent += n;
        if (!res.write(n === block.length ? block : block.subarray(0, n))) return void res.once('drain', pump);
      }
      res.end();
    };
    return pump();
  }
  let bytes = 0;
  req.on('data', (chunk) => (bytes += chunk.length));
  req.on('end', () => {
    const body = JSON.stringify({ bytes });
    res.writeHead(201, { 'content-type': 'application/json', 'content-length': String(body.length), 'docker-distribution-api-version': 'registry/2.0', location: '/v2/bench/blobs/sha256:0' });
    res.end(body);
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n'));
process.on('SIGTERM', () => process.exit(0));
