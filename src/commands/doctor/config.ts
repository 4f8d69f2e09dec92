import { describeListen, settingWarnings, type Config } from '../../config/validate.js';
import type { Finding } from './findings.js';

/** The settings berth starts with, and those that are legal but likely to hurt (timeouts: limits.ts). */
export function configFindings(config: Config): Finding[] {
  return [
    { id: 'config', area: 'berth', level: 'ok', detail: `upstream ${config.upstream.origin}, listen ${describeListen(config.listen)}, workers ${config.workers}` },
    ...settingWarnings(config).map((warning): Finding => ({ id: 'config', area: 'berth', level: 'warning', detail: warning })),
  ];
}
