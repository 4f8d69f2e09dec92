/**
 * Every configuration key berth knows, with its default and its documentation.
 * This table is the single source: validation, environment variables, the example
 * file (config/berth.example.yaml, checked against it by a test) and `--help` read it.
 */

export type Kind =
  | 'listen' // "HOST:PORT", ":PORT" or "[::1]:PORT"
  | 'optionalListen' // as listen, or "off"
  | 'upstreamUrl' // http(s)://host[:port], no path, query or credentials
  | 'publicOrigin' // https://host[:port], optional
  | 'path' // a file or directory path, optional where the default is null
  | 'cidrList' // list of CIDRs or single addresses
  | 'nameList' // list of host names ("*.example.com" allowed) or IP addresses
  | 'duration' // "500ms", "60s", "15m", "1h", "30d", or a number of seconds; 0 = off where allowed
  | 'logLevel'
  | 'logFormat'
  | 'workers' // "auto" (one per CPU) or a whole number from 1
  | 'count' // a whole number from 0
  | 'email' // an e-mail address, optional
  | 'directoryUrl' // an https URL (path allowed)
  | 'acmeChallenge' // tls-alpn-01 or http-01
  | 'text'; // a string, optional

export interface KeySpec {
  /** Dotted path in the YAML file. */
  readonly path: string;
  readonly kind: Kind;
  /** The default, written as it would be in YAML (null = unset). */
  readonly default: string | readonly string[] | null;
  readonly doc: string;
  /** Long command-line flag, where there is one. */
  readonly flag?: string;
}

export const KEYS: readonly KeySpec[] = [
  {
    path: 'listen',
    kind: 'listen',
    default: ':8443',
    flag: 'listen',
    doc: 'Address of the HTTPS listener, HOST:PORT. ":8443" listens on every interface (IPv4 and IPv6).',
  },
  {
    path: 'upstream',
    kind: 'upstreamUrl',
    default: 'http://127.0.0.1:5000',
    flag: 'upstream',
    doc: "The registry's plain-HTTP address (Harbor's HTTP port or the Distribution registry). https:// re-encrypts with the system CAs.",
  },
  {
    path: 'workers',
    kind: 'workers',
    default: 'auto',
    flag: 'workers',
    doc: 'Processes that serve requests, sharing the listener: "auto" is one per CPU; 1 serves from a single process.',
  },
  {
    path: 'publicOrigin',
    kind: 'publicOrigin',
    default: null,
    flag: 'public-origin',
    doc: 'The https origin clients use, e.g. https://registry.example.com. Unset: taken from each request\'s Host header.',
  },
  {
    path: 'tls.cert',
    kind: 'path',
    default: null,
    flag: 'cert',
    doc: 'PEM certificate chain (leaf first). Unset together with tls.key: a development CA and certificate are made in tls.dir.',
  },
  {
    path: 'tls.key',
    kind: 'path',
    default: null,
    flag: 'key',
    doc: 'PEM private key of tls.cert.',
  },
  {
    path: 'tls.dir',
    kind: 'path',
    default: 'certs',
    flag: 'cert-dir',
    doc: 'Where the development CA and certificate are kept across restarts (relative to the working directory).',
  },
  {
    path: 'tls.ticketKeyRotation',
    kind: 'duration',
    default: '12h',
    doc: 'How often the TLS session ticket keys are replaced (shared by all workers), so that one leaked key exposes at most that long of resumed sessions. A client whose ticket is older makes a full handshake. 0 = keep one set for the life of the process.',
  },
  {
    path: 'acme.email',
    kind: 'email',
    default: null,
    flag: 'acme-email',
    doc: 'Set to get and renew the certificate automatically from an ACME CA (Let\'s Encrypt by default) for acme.names; the CA\'s account is registered with this address. Not together with tls.cert/tls.key. Certificates and keys are kept in tls.dir/acme.',
  },
  {
    path: 'acme.directory',
    kind: 'directoryUrl',
    default: 'https://acme-v02.api.letsencrypt.org/directory',
    flag: 'acme-directory',
    doc: 'The ACME CA\'s directory URL. Let\'s Encrypt\'s staging CA, for trying a setup without its rate limits: https://acme-staging-v02.api.letsencrypt.org/directory.',
  },
  {
    path: 'acme.names',
    kind: 'nameList',
    default: [],
    doc: 'The names on the ACME certificate. Empty (default): publicOrigin\'s host and serverNames. Wildcards and IP addresses are refused (they need DNS-01, which berth does not do).',
  },
  {
    path: 'acme.challenge',
    kind: 'acmeChallenge',
    default: 'tls-alpn-01',
    flag: 'acme-challenge',
    doc: 'How the CA checks that berth answers for the names: tls-alpn-01 (on the https listener, which the CA reaches on port 443) or http-01 (on the plain-HTTP listener, http.listen, which the CA reaches on port 80).',
  },
  {
    path: 'acme.ca',
    kind: 'path',
    default: null,
    doc: 'PEM file of extra root certificates to trust for the ACME directory, for a private ACME CA (step-ca, Pebble); the system\'s roots are trusted as well.',
  },
  {
    path: 'acme.eab.kid',
    kind: 'text',
    default: null,
    doc: 'External Account Binding key id, for CAs that require one (ZeroSSL, Google, some private CAs); set with acme.eab.hmacKey.',
  },
  {
    path: 'acme.eab.hmacKey',
    kind: 'text',
    default: null,
    doc: 'External Account Binding MAC key (base64url), as the CA gives it.',
  },
  {
    path: 'serverNames',
    kind: 'nameList',
    default: [],
    flag: 'server-names',
    doc: 'Host names berth serves besides publicOrigin\'s host ("*.example.com" matches one label). With either set, a request whose Host or TLS SNI names another host gets 421 and never reaches the upstream.',
  },
  {
    path: 'trustedProxies',
    kind: 'cidrList',
    default: [],
    flag: 'trusted-proxies',
    doc: 'Peers (CIDRs) whose Forwarded / X-Forwarded-* / X-Real-IP headers are kept. From anyone else they are removed.',
  },
  {
    path: 'proxyProtocol.from',
    kind: 'cidrList',
    default: [],
    flag: 'proxy-protocol-from',
    doc: 'L4 load balancers (CIDRs) whose connections may start with a PROXY protocol v1/v2 header; its client address then counts as the peer. From anyone else no header is read.',
  },
  {
    path: 'timeouts.handshake',
    kind: 'duration',
    default: '10s',
    doc: 'Time a client has to complete the TLS handshake after it connects; a connection that does not is closed (it holds a descriptor and a connection slot meanwhile).',
  },
  {
    path: 'timeouts.headers',
    kind: 'duration',
    default: '60s',
    doc: 'Time a client has to send a complete request header section once connected (slowloris guard).',
  },
  {
    path: 'timeouts.clientIdle',
    kind: 'duration',
    default: '10m',
    doc: 'Inactivity on a client connection while it sends a body or reads a response. Never a limit on total request time.',
  },
  {
    path: 'timeouts.keepAlive',
    kind: 'duration',
    default: '75s',
    doc: 'Idle time between requests on a kept-alive client connection; keep it above any load balancer idle timeout.',
  },
  {
    path: 'timeouts.upstreamConnect',
    kind: 'duration',
    default: '10s',
    doc: 'Time to open a connection to the upstream before answering 504.',
  },
  {
    path: 'timeouts.upstreamResponse',
    kind: 'duration',
    default: '15m',
    doc: 'Inactivity allowed on the upstream connection, including the wait for its answer to the final PUT of a large blob (the registry re-hashes it first). 0 = none.',
  },
  {
    path: 'http.listen',
    kind: 'optionalListen',
    default: 'off',
    flag: 'http-listen',
    doc: 'Plain-HTTP listener, e.g. ":80": answers 308 to the same host and path on https (under /v2/, a registry error saying to use https). "off" (default): none.',
  },
  {
    path: 'hsts.maxAge',
    kind: 'duration',
    default: '365d',
    doc: 'Strict-Transport-Security max-age on https answers for named hosts with a configured certificate (never for localhost, IP addresses or the development certificate). 0 = off.',
  },
  {
    path: 'admin.listen',
    kind: 'optionalListen',
    default: '127.0.0.1:8444',
    flag: 'admin-listen',
    doc: 'Plain-HTTP admin listener for /healthz, /readyz and /metrics; loopback by default (in a pod, ":8444" so the kubelet can probe it). It keeps at most 128 open connections, 16 per client address, and gives each request at most 5 s (or timeouts.headers, if shorter) to arrive. "off" disables it.',
  },
  {
    path: 'limits.connections',
    kind: 'count',
    default: '10000',
    doc: 'Open client connections per serving process, counted as they are accepted; one over it is answered 503 (retry shortly) and closed, and when 64 such answers are already pending, new connections are closed at once. Lowered to what the file descriptor limit (ulimit -n) allows, with a warning. The HTTP listener has the same cap (past it, new connections are closed). 0 = no cap.',
  },
  {
    path: 'limits.connectionsPerClient',
    kind: 'count',
    default: '512',
    doc: 'Open connections per client address, per serving process, counted as they are accepted; one over it is answered 429 and closed (or closed at once, as for limits.connections). Clients behind one NAT share an address: keep it generous. 0 = no cap.',
  },
  {
    path: 'limits.requestsPerConnection',
    kind: 'count',
    default: '0',
    doc: 'Requests served on one client connection before berth answers with "Connection: close" (as nginx\'s keepalive_requests), so clients reconnect and a TCP load balancer spreads them over replicas. 0 = no limit.',
  },
  {
    path: 'shutdown.grace',
    kind: 'duration',
    default: '10m',
    doc: 'On SIGTERM or SIGINT, how long requests in flight (uploads included) may take to finish before their connections are closed. 0 = no limit.',
  },
  {
    path: 'log.level',
    kind: 'logLevel',
    default: 'info',
    flag: 'log-level',
    doc: 'One of fatal, error, warn, info, debug, trace, silent.',
  },
  {
    path: 'log.format',
    kind: 'logFormat',
    default: 'json',
    flag: 'log-format',
    doc: 'json (one object a line, for collectors) or pretty (readable, for the dev case).',
  },
];

/** BERTH_TIMEOUTS_UPSTREAM_CONNECT for timeouts.upstreamConnect. */
export function envName(path: string): string {
  return (
    'BERTH_' +
    path
      .split('.')
      .map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase())
      .join('_')
  );
}

/** Environment variables that are not config keys but are still berth's own. */
export const ENV_CONFIG_FILE = 'BERTH_CONFIG';
/** Set by the primary for its workers: the TLS port it claimed for them (server/cluster.ts). */
export const ENV_WORKER_TLS_PORT = 'BERTH_WORKER_TLS_PORT';
