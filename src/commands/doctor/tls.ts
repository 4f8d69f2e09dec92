import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { namesClientsUse, type Config } from '../../config/validate.js';
import { DEV_FILES } from '../../tls/devCert.js';
import { loadPair, uncoveredNames } from '../../tls/files.js';
import { renewalTime } from '../../tls/acme/manager.js';
import { AcmeStore } from '../../tls/acme/store.js';
import type { Finding } from './findings.js';

const DAY = 86_400_000;
/** Certificates this close to expiry are a warning (doctor and check alike). */
const EXPIRY_WARNING_DAYS = 14;

function parseChain(pem: string): crypto.X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((block) => new crypto.X509Certificate(block));
}

const subjectOf = (c: crypto.X509Certificate): string => c.subject.replace(/\n/g, ', ');
const issuerOf = (c: crypto.X509Certificate): string => c.issuer.replace(/\n/g, ', ');
const issued = (child: crypto.X509Certificate, parent: crypto.X509Certificate): boolean => child.checkIssued(parent) && child.verify(parent.publicKey);

/** Mozilla's root store as Node ships it: what most clients trust out of the box. */
function roots(): crypto.X509Certificate[] {
  return tls.rootCertificates.map((pem) => new crypto.X509Certificate(pem));
}

/**
 * The certificate berth serves, from its files: loads with its key, chain in order and
 * complete, who must trust it, expiry, and the names clients use. `caFile` is the private
 * CA the operator's clients trust, when there is one.
 */
export function tlsFindings(config: Config, caFile: string | undefined, now = Date.now()): Finding[] {
  const findings: Finding[] = [];
  let chain: crypto.X509Certificate[];
  let devCa: string | undefined;
  if (config.acme) {
    const { directory, names, challenge } = config.acme;
    const store = new AcmeStore(config.tls.dir, directory);
    const stored = store.certificate(names);
    const from = `certificates from ACME (${directory.href}) for ${names.join(', ')} by ${challenge}`;
    if (!stored) {
      findings.push({
        id: 'tls-acme',
        area: 'tls',
        level: 'warning',
        detail: `${from}; none stored in ${store.dir} yet: berth orders one when it starts, and handshakes for these names fail until it is issued`,
        fix: challenge === 'http-01' ? 'the CA must reach port 80 of each name, and it must lead to http.listen' : 'the CA must reach port 443 of each name, and it must lead to berth\'s https listener',
      });
      return findings;
    }
    const renewal = renewalTime(stored.leaf, () => 0);
    findings.push({ id: 'tls-acme', area: 'tls', level: 'ok', detail: `${from}; stored: serial ${stored.leaf.serialNumber}, valid until ${stored.leaf.validTo}, renewed from about ${renewal.toISOString()}` });
    chain = parseChain(stored.cert);
  } else if (config.tls.cert === undefined || config.tls.key === undefined) {
    const file = path.join(config.tls.dir, DEV_FILES.cert);
    devCa = path.join(config.tls.dir, DEV_FILES.caCert);
    if (!fs.existsSync(file)) {
      findings.push({
        id: 'tls-files',
        area: 'tls',
        level: 'warning',
        detail: `no tls.cert: berth will make a development certificate in ${config.tls.dir}`,
        fix: 'for production set tls.cert and tls.key (BERTH_TLS_CERT, BERTH_TLS_KEY) to your certificate chain and key',
      });
      return findings;
    }
    chain = parseChain(fs.readFileSync(file, 'utf8'));
    findings.push({
      id: 'tls-files',
      area: 'tls',
      level: 'warning',
      detail: `no tls.cert: serving berth's development certificate ${file}`,
      fix: 'for production set tls.cert and tls.key (BERTH_TLS_CERT, BERTH_TLS_KEY) to your certificate chain and key',
    });
  } else {
    try {
      // Parse and key match only (a time before any certificate): expiry is its own finding.
      loadPair(config.tls.cert, config.tls.key, new Date(0));
      chain = parseChain(fs.readFileSync(config.tls.cert, 'utf8'));
      findings.push({ id: 'tls-files', area: 'tls', level: 'ok', detail: `${config.tls.cert} and ${config.tls.key} load, and the key matches the certificate` });
    } catch (err) {
      findings.push({
        id: 'tls-files',
        area: 'tls',
        level: 'problem',
        detail: (err as Error).message,
        cause: 'berth cannot serve this certificate: it will not start with it (or keeps the previous one on reload)',
        fix: 'tls.cert must hold the PEM chain (leaf first) and tls.key the leaf\'s private key',
      });
      return findings;
    }
  }
  const leaf = chain[0]!;

  // Order and completeness: each certificate issued by the next.
  const broken = chain.findIndex((c, i) => i + 1 < chain.length && !issued(c, chain[i + 1]!));
  const top = chain.at(-1)!;
  const selfSigned = issued(top, top);
  const extraCa = caFile ? parseChain(fs.readFileSync(caFile, 'utf8')) : devCa && fs.existsSync(devCa) ? parseChain(fs.readFileSync(devCa, 'utf8')) : [];
  const publicRoot = selfSigned ? undefined : roots().find((r) => issued(top, r));
  const privateRoot = selfSigned ? undefined : extraCa.find((r) => issued(top, r));
  if (broken >= 0) {
    findings.push({
      id: 'tls-chain',
      area: 'tls',
      level: 'problem',
      detail: `certificate ${broken + 1} in ${config.tls.cert ?? 'the file'} (${subjectOf(chain[broken]!)}) was not issued by the next one (${subjectOf(chain[broken + 1]!)})`,
      cause: 'the chain is out of order or holds a certificate that does not belong to it: clients fail with "x509: certificate signed by unknown authority"',
      fix: 'write the leaf first, then each intermediate in order (as your CA delivers "fullchain.pem")',
    });
  } else if (publicRoot || privateRoot || selfSigned) {
    findings.push({ id: 'tls-chain', area: 'tls', level: 'ok', detail: `complete: ${chain.length} certificate${chain.length > 1 ? 's' : ''}, up to ${subjectOf((publicRoot ?? privateRoot ?? top))}` });
  } else if (caFile) {
    findings.push({
      id: 'tls-chain',
      area: 'tls',
      level: 'problem',
      detail: `the chain ends at ${subjectOf(top)}, issued by ${issuerOf(top)}, which is not in ${caFile} nor a public root`,
      cause: 'an intermediate certificate is missing from tls.cert: clients that have only the root cannot build the chain',
      fix: `append the intermediate(s) up to ${caFile}'s CA to ${config.tls.cert}`,
    });
  } else {
    findings.push({
      id: 'tls-chain',
      area: 'tls',
      level: 'warning',
      detail: `the chain ends at ${subjectOf(top)}, issued by ${issuerOf(top)}: not a public root, so it could not be checked`,
      fix: 'pass the CA your clients trust with --ca FILE (berth check and berth doctor) to check the chain up to it',
    });
  }

  // Who must trust it.
  if (publicRoot) {
    findings.push({ id: 'tls-trust', area: 'tls', level: 'ok', detail: `issued under ${subjectOf(publicRoot)}, a public root: clients trust it as they are` });
  } else {
    const ca = devCa ?? caFile ?? 'your CA certificate';
    const host = config.publicOrigin?.host ?? `localhost:${config.listen.port}`;
    findings.push({
      id: 'tls-trust',
      area: 'tls',
      level: 'warning',
      detail: `a private CA (${privateRoot ? subjectOf(privateRoot) : issuerOf(top)}): every client must trust it`,
      fix: `Docker: copy ${ca} to /etc/docker/certs.d/${host}/ca.crt; containerd (Kubernetes nodes): /etc/containerd/certs.d/${host}/ with ca = "…" in hosts.toml; skopeo/podman: /etc/containers/certs.d/${host}/ca.crt`,
    });
  }

  const msLeft = new Date(leaf.validTo).getTime() - now;
  const days = Math.floor(msLeft / DAY);
  if (msLeft <= 0 || new Date(leaf.validFrom).getTime() > now) {
    findings.push({
      id: 'tls-expiry',
      area: 'tls',
      level: 'problem',
      detail: msLeft <= 0 ? `expired on ${leaf.validTo}` : `not valid before ${leaf.validFrom}`,
      cause: 'clients refuse it: "x509: certificate has expired or is not yet valid"',
      fix: `renew it and replace ${config.tls.cert ?? 'the files'} in place: berth reloads changed files without a restart`,
    });
  } else {
    findings.push({
      id: 'tls-expiry',
      area: 'tls',
      level: days < EXPIRY_WARNING_DAYS ? 'warning' : 'ok',
      detail: `valid until ${leaf.validTo} (${days} day${days === 1 ? '' : 's'})`,
      ...(days < EXPIRY_WARNING_DAYS ? { fix: 'renew it now; berth reloads the files when they change' } : {}),
    });
  }

  const names = namesClientsUse(config);
  if (config.publicOrigin === undefined) {
    findings.push({
      id: 'tls-names',
      area: 'tls',
      level: 'warning',
      detail: `publicOrigin is unset: the names clients use cannot be checked (the certificate names ${leaf.subjectAltName ?? 'nothing'})`,
      fix: 'set publicOrigin (BERTH_PUBLIC_ORIGIN) to https://<the name clients push to>',
    });
  }
  // The rule berth warns by at start and on every reload (tls/files.ts).
  const uncovered = uncoveredNames(leaf, names);
  if (uncovered.length > 0) {
    findings.push({
      id: 'tls-names',
      area: 'tls',
      level: 'problem',
      detail: `the certificate names ${leaf.subjectAltName ?? 'no subjectAltName'}, not ${uncovered.join(', ')}`,
      cause: `clients reaching ${uncovered[0]} fail with "x509: certificate is valid for …, not ${uncovered[0]}"`,
      fix: `get a certificate whose subjectAltName includes ${uncovered.join(', ')}, or set publicOrigin and serverNames to names it covers`,
    });
  } else if (names.length > 0 && config.publicOrigin !== undefined) {
    findings.push({ id: 'tls-names', area: 'tls', level: 'ok', detail: `the certificate covers ${names.map((n) => n.replace(/^\[(.*)\]$/, '$1')).join(', ')}` });
  }
  return findings;
}
