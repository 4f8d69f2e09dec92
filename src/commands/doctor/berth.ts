import crypto from 'node:crypto';
import fs from 'node:fs';
import { http } from '../../net/httpModule.js';
import path from 'node:path';
import type { Serving } from '../../admin/readiness.js';
import { describeListen, type Config } from '../../config/validate.js';
import { DEV_FILES } from '../../tls/devCert.js';
import { AcmeStore } from '../../tls/acme/store.js';
import type { Finding } from './findings.js';
import { API_VERSION, asClient, localAddress, type DoctorContext } from './context.js';
import { errorCode, send, type Endpoint, type Reply } from './probe.js';

// The running berth: whether it says it is ready, and what clients get from its TLS listener.

/** OpenSSL's and Node's codes for a certificate whose issuer the client does not know. */
const UNKNOWN_ISSUER = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT']);
const REFUSED_CERTIFICATE = /CERT|^ERR_TLS_|^UNABLE_TO_/;

export async function berthFindings(ctx: DoctorContext, candidate: Endpoint, findings: Finding[], privateCaKnown: boolean): Promise<void> {
  let reply: Reply;
  try {
    reply = await send(candidate, { path: '/v2/', headers: asClient(ctx), timeoutMs: ctx.timeoutMs });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (UNKNOWN_ISSUER.has(code) && !privateCaKnown) {
      findings.push({
        id: 'berth-running',
        area: 'berth',
        level: 'warning',
        detail: `berth on ${candidate.connect.host} serves a certificate from a CA doctor does not know (${code}): checks through berth are skipped`,
        fix: 'give doctor the CA your clients trust: --ca FILE',
      });
    } else if (REFUSED_CERTIFICATE.test(code)) {
      findings.push({
        id: 'berth-running',
        area: 'berth',
        level: 'problem',
        detail: `clients refuse the certificate berth on ${candidate.connect.host} serves: ${code}`,
        cause: 'the certificate in service is not the one in the files (not reloaded yet?), or does not cover the name, or has expired',
        fix: 'compare the tls findings above with what berth logged at its last "certificate loaded"; kill -HUP reloads the files',
      });
    } else {
      findings.push({
        id: 'berth-running',
        area: 'berth',
        level: 'warning',
        detail: `no berth answers on ${candidate.connect.host} (${errorCode(err)}): checks through berth are skipped`,
        fix: 'start berth (or run doctor where it runs, with the same config) to check what clients see',
      });
    }
    return;
  }
  ctx.berth = candidate;
  const registry = reply.headers[API_VERSION] === 'registry/2.0';
  findings.push({
    id: 'berth-running',
    area: 'berth',
    level: registry && reply.status < 500 ? 'ok' : 'problem',
    detail: `berth on ${candidate.connect.host} answered GET /v2/ as ${ctx.publicHost}: ${reply.status}${registry ? '' : ' without the registry header'}; its certificate verifies`,
    ...(reply.status >= 500 ? { cause: reply.body.trim().slice(0, 200), fix: "see the upstream findings; berth's access log has the error" } : {}),
  });
}

/**
 * The running berth's own readiness, from its admin listener's /readyz. `known`: berth is
 * known to run (check --as-running), so an admin listener that refuses connections is a
 * problem, not "not running (yet)".
 */
export function readyFinding(config: Config, timeoutMs: number, known = false): Promise<Finding> {
  const admin = config.admin.listen;
  const found = (level: Finding['level'], detail: string, more: Partial<Finding> = {}): Finding => ({ id: 'berth-ready', area: 'berth', level, detail, ...more });
  if (admin === undefined) return Promise.resolve(found('warning', 'admin.listen is off: not checked'));
  const host = localAddress(admin.host);
  return new Promise((resolve) => {
    const req = http.get({ host, port: admin.port, path: '/readyz', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        if (res.statusCode === 200) return resolve(readyAs(config, body, found));
        let reasons = body.trim();
        try {
          const parsed = JSON.parse(body) as { checks: Record<string, { ok: boolean; detail: string }> };
          reasons = Object.entries(parsed.checks)
            .filter(([, c]) => !c.ok)
            .map(([name, c]) => `${name}: ${c.detail}`)
            .join('; ');
        } catch {
          /* not berth's answer: show it as it is */
        }
        resolve(found('problem', `not ready (${res.statusCode}): ${reasons}`, { fix: 'see the findings about the part it names (upstream, certificate); a draining berth is stopping' }));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve(
        err.code !== 'ECONNREFUSED'
          ? found('problem', `no answer on ${host}:${admin.port} (${err.code ?? err.message})`, { fix: 'a berth that does not answer its admin listener is hung or overloaded: see its log' })
          : known
            ? found('problem', `it runs, but nothing listens on its admin listener ${host}:${admin.port}`, { fix: 'see its log: it may still be starting, or failed to bind admin.listen' })
            : found('warning', `nothing listens on ${host}:${admin.port}: berth is not running (or not yet)`),
      ),
    );
  });
}

/**
 * A ready berth, and whether it is the berth these settings describe: the one answering on
 * the admin listener may run with other flags, or serve a certificate other than the files'
 * (changed, and not reloaded yet). Which berth answered is always said.
 */
function readyAs(config: Config, body: string, found: (level: Finding['level'], detail: string, more?: Partial<Finding>) => Finding): Finding {
  let serving: Serving | undefined;
  try {
    serving = (JSON.parse(body) as { serving?: Serving }).serving;
  } catch {
    /* an answer without it: nothing to compare */
  }
  if (serving === undefined) return found('ok', 'ready');
  const who = `the berth running as pid ${serving.pid}`;
  const differs: string[] = [];
  const compare = (what: string, running: string, checked: string): void => {
    if (running !== checked) differs.push(`${what} ${running} (checked: ${checked})`);
  };
  compare('upstream', serving.upstream, config.upstream.origin);
  compare('listen', serving.listen, describeListen(config.listen));
  compare('publicOrigin', serving.publicOrigin ?? 'unset', config.publicOrigin?.origin ?? 'unset');
  const acme = config.acme ? new AcmeStore(config.tls.dir, config.acme.directory) : undefined;
  const file = acme ? acme.dir : (config.tls.cert ?? path.join(config.tls.dir, DEV_FILES.cert));
  const leaf = acme && config.acme ? acme.certificate(config.acme.names)?.leaf : fileLeaf(file);
  if (leaf !== undefined && leaf.fingerprint256 !== serving.certificate) differs.push(`a certificate other than the one in ${file}`);
  const renewal = serving.acme ? `; ACME: next renewal ${serving.acme.nextRenewal ?? 'not scheduled'}${serving.acme.lastError ? `, last error: ${serving.acme.lastError}` : ''}` : '';
  if (differs.length === 0) return found(serving.acme?.lastError ? 'warning' : 'ok', `ready: ${who}, upstream ${serving.upstream}, listen ${serving.listen}${renewal}`);
  return found('warning', `${who} is ready, but serves ${differs.join('; ')}`, {
    cause: 'the settings checked are not those of the berth running (other flags or variables, another config file), or the certificate files changed and berth has not reloaded them yet',
    fix: 'berth check --as-running checks the running berth\'s own settings; restart berth to apply new ones; kill -HUP reloads the certificate files',
  });
}

/** The first certificate in a PEM file, or undefined when it cannot be read. */
function fileLeaf(file: string): crypto.X509Certificate | undefined {
  try {
    return new crypto.X509Certificate(fs.readFileSync(file));
  } catch {
    return undefined;
  }
}
