/**
 * What `berth doctor` and `berth check` report: one finding per check, each with a stable
 * id that names its page in docs/doctor/, and for a problem the cause and the exact fix.
 * `check` runs the fast, local subset of doctor's checks (no credentials, no uploads).
 */

export type Level = 'ok' | 'warning' | 'problem';

export type Area = 'tls' | 'upstream' | 'berth' | 'auth' | 'upload' | 'storage' | 'throughput' | 'limits';

export interface Finding {
  /** Stable, kebab-case; docs/doctor/<id>.md explains it. */
  readonly id: FindingId;
  readonly area: Area;
  readonly level: Level;
  readonly detail: string;
  readonly cause?: string;
  readonly fix?: string;
  /** Measurements and raw values for scripts and support threads (--json). */
  readonly data?: Record<string, unknown>;
}

/** Where each finding is explained, relative to berth's repository (and shipped docs). */
export function docPage(id: FindingId): string {
  return `docs/doctor/${id}.md`;
}

/** Every id doctor can report: each has a page (a test holds the two together). */
export const FINDING_IDS = [
  'config',
  'berth-settings',
  'tls-files',
  'tls-acme',
  'tls-chain',
  'tls-expiry',
  'tls-names',
  'tls-trust',
  'upstream-reachable',
  'upstream-registry',
  'upstream-challenge',
  'upstream-redirect',
  'upstream-scheme',
  'berth-running',
  'berth-ready',
  'auth-realm',
  'auth-harbor-external-url',
  'auth-token',
  'auth-token-lifetime',
  'upload-location',
  'upload-forwarded-headers',
  'upload-cleanup',
  'storage-redirect',
  'throughput',
  'limits-timeouts',
  'limits-body-size',
  'limits-cut-connection',
] as const;

export type FindingId = (typeof FINDING_IDS)[number];

const LEVEL_WIDTH = 8;
const ID_WIDTH = 25;

/**
 * The registry's signed upload state (`_state`, also percent-encoded as `%5Fstate`) in any
 * URL a finding quotes. Whoever holds it can continue the upload, and doctor's output is
 * meant to be pasted into support threads: it is replaced, as in the access log.
 */
const UPLOAD_STATE = /([?&](?:_|%5f)state=)[^&#\s"'()<>]*/gi;

function redacted<T>(value: T): T {
  if (typeof value === 'string') return value.replace(UPLOAD_STATE, '$1REDACTED') as T;
  if (Array.isArray(value)) return value.map(redacted) as T;
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redacted(v)])) as T;
  return value;
}

export function formatText(all: readonly Finding[]): string {
  const findings = redacted(all);
  const pad = ' '.repeat(LEVEL_WIDTH + 1 + ID_WIDTH + 1);
  const lines: string[] = [];
  for (const f of findings) {
    lines.push(`${f.level.padEnd(LEVEL_WIDTH)} ${f.id.padEnd(ID_WIDTH)} ${f.detail}`);
    if (f.cause) lines.push(`${pad}cause: ${f.cause}`);
    if (f.fix) lines.push(`${pad}fix:   ${f.fix}`);
    if (f.level !== 'ok') lines.push(`${pad}more:  ${docPage(f.id)}`);
  }
  const problems = findings.filter((f) => f.level === 'problem').length;
  const warnings = findings.filter((f) => f.level === 'warning').length;
  lines.push(
    problems === 0
      ? `no problems${warnings ? ` (${warnings} warning${warnings > 1 ? 's' : ''})` : ''}`
      : `${problems} problem${problems > 1 ? 's' : ''}${warnings ? `, ${warnings} warning${warnings > 1 ? 's' : ''}` : ''}`,
  );
  return lines.join('\n') + '\n';
}

export function formatJson(all: readonly Finding[]): string {
  const findings = redacted(all);
  return (
    JSON.stringify(
      {
        problems: findings.filter((f) => f.level === 'problem').length,
        warnings: findings.filter((f) => f.level === 'warning').length,
        findings: findings.map((f) => ({ ...f, more: docPage(f.id) })),
      },
      null,
      2,
    ) + '\n'
  );
}
