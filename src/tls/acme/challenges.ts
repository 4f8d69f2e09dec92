import type { Peek } from '../../net/accept.js';
import tls from 'node:tls';
import { readClientHello } from './clientHello.js';
import type { AcmeStore } from './store.js';

/** The ALPN protocol of a TLS-ALPN-01 validation (RFC 8737). */
export const ACME_TLS_ALPN = 'acme-tls/1';

/** Where HTTP-01 validations ask (RFC 8555 8.3). */
export const HTTP_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';

/** A change to the challenges being answered, as the ACME manager sends it to every serving process. */
export type ChallengeChange =
  | { readonly op: 'set-http'; readonly token: string; readonly keyAuthorization: string }
  | { readonly op: 'delete-http'; readonly token: string }
  | { readonly op: 'set-alpn'; readonly name: string; readonly cert: string; readonly key: string }
  | { readonly op: 'delete-alpn'; readonly name: string };

/** How long a TLS-ALPN-01 validation connection may take to finish its handshake, ms. */
const VALIDATION_HANDSHAKE_MS = 10_000;

/**
 * The ACME challenges one serving process answers while an order is validated: HTTP-01
 * key authorizations on the plain-HTTP listener, and TLS-ALPN-01 certificates on the https
 * listener, for connections whose ClientHello offers `acme-tls/1` for a name being
 * validated. Every other connection goes to TLS as it came.
 */
export class Challenges {
  readonly #http = new Map<string, string>();
  readonly #alpn = new Map<string, tls.SecureContext>();
  readonly #shared: AcmeStore | undefined;

  /**
   * `shared`: the store on a volume other berths may share; a challenge not known here is
   * looked up there (another replica orders, and the CA reached this one). Every
   * connection's ClientHello is then looked at, not only during this process's orders.
   */
  constructor(shared?: AcmeStore) {
    this.#shared = shared;
  }

  apply(change: ChallengeChange): void {
    switch (change.op) {
      case 'set-http':
        return void this.#http.set(change.token, change.keyAuthorization);
      case 'delete-http':
        return void this.#http.delete(change.token);
      case 'set-alpn':
        return void this.#alpn.set(change.name.toLowerCase(), tls.createSecureContext({ cert: change.cert, key: change.key }));
      case 'delete-alpn':
        return void this.#alpn.delete(change.name.toLowerCase());
    }
  }

  /** The key authorization for an HTTP-01 request path, or undefined when it names no challenge. */
  httpAnswer(path: string): string | undefined {
    if (!path.startsWith(HTTP_CHALLENGE_PREFIX)) return undefined;
    const token = path.slice(HTTP_CHALLENGE_PREFIX.length);
    return this.#http.get(token) ?? this.#shared?.sharedChallenge('http-01', token);
  }

  /** The TLS-ALPN-01 certificate for `name`: this process's, or one another berth on the volume published. */
  #context(name: string): tls.SecureContext | undefined {
    const own = this.#alpn.get(name);
    if (own) return own;
    const shared = this.#shared?.sharedChallenge('tls-alpn-01', name);
    if (shared === undefined) return undefined;
    try {
      const { cert, key } = JSON.parse(shared) as { cert: string; key: string };
      return tls.createSecureContext({ cert, key });
    } catch {
      return undefined;
    }
  }

  /**
   * For acceptConnections, while a TLS-ALPN-01 validation may come (this process's own
   * order is pending, or another berth on the volume may order; undefined otherwise):
   * shown a connection's first bytes, returns undefined to see more, false to leave the
   * connection to TLS, or the answer to a validation: a handshake with the challenge's
   * certificate, and nothing after it.
   */
  peeker(): Peek | undefined {
    if (this.#alpn.size === 0 && this.#shared === undefined) return undefined;
    return (bytes) => {
      const hello = readClientHello(bytes);
      if (hello === undefined) return undefined;
      const context = hello?.servername !== undefined && hello.alpn.includes(ACME_TLS_ALPN) ? this.#context(hello.servername) : undefined;
      if (context === undefined) return false;
      return (socket) => {
        const validation = new tls.TLSSocket(socket, { isServer: true, secureContext: context, ALPNProtocols: [ACME_TLS_ALPN] });
        validation.setTimeout(VALIDATION_HANDSHAKE_MS, () => validation.destroy());
        // The CA only needs the handshake: it reads the certificate and closes.
        validation.once('secure', () => validation.end());
        validation.on('error', () => validation.destroy());
      };
    };
  }
}
