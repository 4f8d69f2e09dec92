/**
 * Node's http server options that make `ms` the time a client has to send its header
 * section. Node checks that deadline every 30 s by default; check often enough that the
 * configured limit is what a slow client gets. 0 = no limit.
 */
export function headerTimeout(ms: number): { headersTimeout: number; connectionsCheckingInterval: number } {
  return { headersTimeout: ms, connectionsCheckingInterval: ms === 0 ? 30_000 : Math.min(30_000, Math.max(100, Math.floor(ms / 4))) };
}
