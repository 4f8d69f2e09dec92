import net from 'node:net';
import tls from 'node:tls';
import { ConnectTimeout, FREE_CONNECTION_MS, UpstreamConnection, type ConnectionOwner } from './connection.js';

/**
 * The upstream's connections: the most recently freed is used first (its peer has had the
 * least time to drop it), as many are opened as there are requests at once, and a free one
 * is closed after FREE_CONNECTION_MS, or sooner when the upstream announced a shorter idle
 * limit (one sweep for all, not a timer per connection; a free connection past its limit is
 * never handed out).
 */
export class UpstreamPool implements ConnectionOwner {
  private readonly free: UpstreamConnection[] = [];
  private readonly open = new Set<UpstreamConnection>();
  private readonly host: string;
  private readonly port: number;
  private readonly servername: string | undefined;
  private session: Buffer | undefined = undefined;
  private timer: NodeJS.Timeout | undefined = undefined;
  private closed = false;

  constructor(
    private readonly upstream: URL,
    /** Connect timeout for connections opened from now on, ms. */
    public connectTimeout: number,
    private readonly onBug: (err: unknown) => void,
  ) {
    this.host = upstream.hostname.startsWith('[') ? upstream.hostname.slice(1, -1) : upstream.hostname;
    this.port = Number(upstream.port) || (upstream.protocol === 'https:' ? 443 : 80);
    this.servername = upstream.protocol === 'https:' && net.isIP(this.host) === 0 ? this.host : undefined;
  }

  /** A connection for one exchange: a free one, unless `fresh`, else a new one. Undefined once closed. */
  acquire(fresh: boolean): UpstreamConnection | undefined {
    if (this.closed) return undefined;
    if (!fresh && this.free.length > 0) {
      const now = performance.now();
      for (let free = this.free.pop(); free !== undefined; free = this.free.pop()) {
        if (!free.destroyed && now - free.freeSince < free.freeFor) return free;
        free.destroy();
      }
    }
    return this.dial();
  }

  release(connection: UpstreamConnection): void {
    if (this.closed) return connection.destroy();
    connection.freeSince = performance.now();
    this.free.push(connection);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.sweep(), FREE_CONNECTION_MS / 6);
      this.timer.unref();
    }
  }

  forget(connection: UpstreamConnection): void {
    this.open.delete(connection);
    const at = this.free.lastIndexOf(connection);
    if (at >= 0) this.free.splice(at, 1);
  }

  bug(err: unknown): void {
    this.onBug(err);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
    for (const connection of this.open) connection.destroy();
  }

  private sweep(): void {
    const now = performance.now();
    // Out of the free list at once (their 'close' comes later), so that an empty list stops the sweep now.
    for (let i = this.free.length - 1; i >= 0; i--) {
      const connection = this.free[i]!;
      if (now - connection.freeSince < connection.freeFor) continue;
      this.free.splice(i, 1);
      connection.destroy();
    }
    if (this.free.length === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private dial(): UpstreamConnection {
    const timeout = this.connectTimeout;
    const secure = this.upstream.protocol === 'https:';
    const socket = secure
      ? tls.connect({ host: this.host, port: this.port, servername: this.servername, ALPNProtocols: ['http/1.1'], session: this.session })
      : net.connect({ host: this.host, port: this.port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    if (secure) socket.on('session', (session: Buffer) => (this.session = session));
    if (timeout > 0) {
      socket.setTimeout(timeout, () => socket.destroy(new ConnectTimeout(timeout)));
      socket.once(secure ? 'secureConnect' : 'connect', () => socket.setTimeout(0));
    }
    const connection = new UpstreamConnection(socket, this);
    this.open.add(connection);
    return connection;
  }
}
