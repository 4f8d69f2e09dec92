import type { AcmeSettings } from '../../config/validate.js';

/** An ACME problem document (RFC 8555 6.7), as far as the CA sent one. */
export interface Problem {
  readonly type?: string;
  readonly detail?: string;
}

const TLS_TRUST = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_SIGNATURE_FAILURE', 'ERR_TLS_CERT_ALTNAME_INVALID']);
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

/**
 * A failed order, in the words of what the operator must do: the CA could not reach the
 * name (port closed, DNS elsewhere), the CA refuses the name, a rate limit, the directory
 * unreachable or untrusted. `problem` is the CA's own document, logged beside it.
 */
export function explainFailure(err: unknown, settings: AcmeSettings): { message: string; problem: Problem | undefined } {
  const e = err as Error & { code?: string; identifier?: string; problem?: Problem; cause?: { code?: string } };
  const problem = e.problem;
  const type = problem?.type?.replace('urn:ietf:params:acme:error:', '');
  const detail = problem?.detail ?? e.message;
  const name = e.identifier ?? settings.names.join(', ');
  const port = settings.challenge === 'http-01' ? 80 : 443;
  const code = e.code ?? e.cause?.code;
  let message: string;
  if (code !== undefined && TLS_TRUST.has(code)) {
    message = `the ACME directory ${settings.directory.href} presents a certificate berth does not trust (${code}); for a private CA, set acme.ca to its root`;
  } else if (code !== undefined && UNREACHABLE.has(code)) {
    message = `cannot reach the ACME directory ${settings.directory.href} (${code}): check acme.directory and that berth can reach it`;
  } else if (type === 'connection' || (type !== undefined && /fail(ed)? to connect|connection refused|no route to host|i\/o timeout|timed? ?out/i.test(detail))) {
    // Some CAs (Pebble among them) report a refused connection as "unauthorized" or "tls".
    message = `the CA could not connect to ${name} on port ${port}: port ${port} must be reachable from the internet and lead to berth (${settings.challenge}) (${detail})`;
  } else if (type === 'dns') {
    message = `DNS for ${name} does not resolve at the CA: point its A/AAAA records at this host (${detail})`;
  } else if (type === 'unauthorized' || type === 'incorrectResponse' || type === 'tls') {
    message = `the CA reached ${name} on port ${port} but not this berth: DNS points elsewhere, or something else answers on port ${port} (${detail})`;
  } else if (type === 'rejectedIdentifier' || type === 'caa') {
    message = `the CA refuses the name ${name} (${detail})`;
  } else if (type === 'rateLimited' || /rate.?limit/i.test(detail)) {
    message = `the CA's rate limit was reached (${detail}); berth retries later`;
  } else if (type === 'externalAccountRequired' || /external ?account/i.test(detail)) {
    message = `the CA requires External Account Binding: set acme.eab.kid and acme.eab.hmacKey (${detail})`;
  } else {
    message = detail;
  }
  return { message, problem: problem ?? (code ? { detail: `${code}: ${e.message}` } : { detail: e.message }) };
}
