import net from 'node:net';
import t from 'tap';
import { listensOn, onFreePort, waitForPort } from '../../helpers/ports.js';

// The helpers that start nginx, HAProxy and berths on ports chosen in advance: a port
// another process takes first is noticed and another one tried.

t.test('onFreePort tries another port when the first was taken, and gives up on other errors', async (t) => {
  const tried: number[] = [];
  const port = await onFreePort(async (p) => {
    tried.push(p);
    if (tried.length === 1) throw new Error(`listen EADDRINUSE: address already in use 127.0.0.1:${p}`);
    return p;
  });
  t.equal(tried.length, 2);
  t.equal(port, tried[1]);
  await t.rejects(onFreePort(() => Promise.reject(new Error('ENOENT: no such file'))), /ENOENT/, 'not a port clash: no retry');
  let attempts = 0;
  await t.rejects(onFreePort(() => (attempts++, Promise.reject(new Error('EADDRINUSE'))), 3), /EADDRINUSE/);
  t.equal(attempts, 3, 'up to the attempts given');
});

t.test('waitForPort with a pid: a listener that is another process\'s is reported as taken', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  t.teardown(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  t.ok(listensOn(process.pid, port), 'this process holds it');
  t.notOk(listensOn(process.ppid, port), 'its parent does not');
  await waitForPort(port, () => undefined, process.pid);
  await t.rejects(waitForPort(port, () => undefined, process.ppid), /taken by another process/);
});
