import type { Logger } from 'pino';

/**
 * Failed TLS handshakes, in the default logs without flooding them. A client that refuses
 * berth's certificate (`x509: certificate signed by unknown authority`, a name it does not
 * cover) fails in the handshake, before any request: without this line a broken setup
 * leaves no trace at the default level. The first failure after a quiet interval is logged
 * at once; those that follow within the interval are summed into one line at its end,
 * counted by reason and by client, and so on while failures keep coming.
 */
export class HandshakeFailures {
  private window: { count: number; reasons: Map<string, number>; clients: Map<string, number> } | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: Pick<Logger, 'warn'>,
    private readonly intervalMs = 60_000,
  ) {}

  failed(err: { code?: string | undefined; message: string }, client: string): void {
    const reason = handshakeReason(err);
    if (this.window === undefined) {
      this.logger.warn({ reason, code: err.code ?? null, client }, 'TLS handshake failed');
      this.open();
      return;
    }
    this.window.count++;
    this.window.reasons.set(reason, (this.window.reasons.get(reason) ?? 0) + 1);
    this.window.clients.set(client, (this.window.clients.get(client) ?? 0) + 1);
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.window = undefined;
  }

  private open(): void {
    this.window = { count: 0, reasons: new Map(), clients: new Map() };
    this.timer = setTimeout(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }

  private flush(): void {
    const window = this.window!;
    this.close();
    if (window.count === 0) return; // quiet: the next failure is logged at once
    this.logger.warn({ failures: window.count, seconds: this.intervalMs / 1000, reasons: top(window.reasons), clients: top(window.clients) }, 'TLS handshakes failed');
    this.open();
  }
}

/** The ten largest counts, largest first, as an object for the log line. */
function top(counts: Map<string, number>): Record<string, number> {
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]).slice(0, 10));
}

/** OpenSSL's and Node's codes, in the words an operator needs. */
const REASONS: Record<string, string> = {
  ERR_SSL_HTTP_REQUEST: 'plain HTTP sent to the TLS port (a client configured with http://, or an insecure-registry setting)',
  ERR_SSL_WRONG_VERSION_NUMBER: 'not TLS, or a TLS version berth does not speak',
  ERR_SSL_UNSUPPORTED_PROTOCOL: 'a TLS version berth does not speak (berth: TLS 1.2 and 1.3)',
  ERR_SSL_NO_SHARED_CIPHER: 'no cipher in common (a client older than TLS 1.2 with forward secrecy)',
  ERR_TLS_HANDSHAKE_TIMEOUT: 'the client did not finish the handshake in time (timeouts.handshake)',
  ECONNRESET: 'the client closed the connection during the handshake',
};

/** Alerts by which a client says it refuses berth's certificate. */
const CERTIFICATE_ALERTS = /ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED|UNSUPPORTED_CERTIFICATE|DECRYPT_ERROR|ACCESS_DENIED)$/;

export function handshakeReason(err: { code?: string | undefined; message: string }): string {
  const code = err.code ?? '';
  const known = REASONS[code];
  if (known) return known;
  const alert = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(.+)$/.exec(code)?.[1]?.toLowerCase().replace(/_/g, ' ');
  if (alert === undefined) return code || err.message;
  if (CERTIFICATE_ALERTS.test(code)) return `the client refused berth's certificate (alert: ${alert}): it does not trust the CA, the names or the dates; berth check shows which`;
  return `the client ended the handshake (alert: ${alert})`;
}
