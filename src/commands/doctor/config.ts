import net from 'node:net';
import { settingWarnings, type Config } from '../../config/validate.js';
import type { Finding } from './findings.js';

/** The settings berth starts with, and those that are legal but likely to hurt (timeouts: limits.ts). */
export function configFindings(config: Config): Finding[] {
  const listen = `${config.listen.host === undefined ? '' : net.isIPv6(config.listen.host) ? `[${config.listen.host}]` : config.listen.host}:${config.listen.port}`;
  return [
    { id: 'config', area: 'berth', level: 'ok', detail: `upstream ${config.upstream.origin}, listen ${listen}, workers ${config.workers}` },
    ...settingWarnings(config).map((warning): Finding => ({ id: 'config', area: 'berth', level: 'warning', detail: warning })),
  ];
}
