import { timeoutWarnings, type Config } from '../../config/validate.js';
import type { Finding } from './findings.js';
import { formatDuration } from './context.js';

/** berth's own timeouts, judged by the rules its start-up warnings use (config/validate.ts). */
export function timeoutFindings(config: Config): Finding[] {
  const t = config.timeouts;
  const short = timeoutWarnings(config);
  if (short.length > 0) {
    return [
      {
        id: 'limits-timeouts',
        area: 'limits',
        level: 'warning',
        detail: short.join('; '),
        cause: 'large pushes can be cut by berth itself, or a hung upstream holds connections',
        fix: 'timeouts.clientIdle of 60s or more (default 10m); timeouts.upstreamResponse of 15m or more (the default), not 0',
      },
    ];
  }
  const list = `headers ${formatDuration(t.headers / 1000)}, client idle ${t.clientIdle ? formatDuration(t.clientIdle / 1000) : 'none'}, keep-alive ${formatDuration(t.keepAlive / 1000)}, upstream connect ${formatDuration(t.upstreamConnect / 1000)}, upstream response ${formatDuration(t.upstreamResponse / 1000)}; no whole-request limit`;
  return [{ id: 'limits-timeouts', area: 'limits', level: 'ok', detail: `berth's own: ${list}. Load balancer timeouts in front of berth cannot be seen from here` }];
}
