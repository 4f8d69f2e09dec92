/**
 * The V8 flags the benchmarks start berth with, as `npm start` and the image do (less
 * --expose-gc, which berth finds without it), and the naive proxy with the same, so that
 * a comparison is of code, not of V8's settings (young generation size and collection:
 * src/server/cluster.ts says why berth sets them). Read from the build.
 */
const built = await import('../../dist/server/cluster.js').catch(() => {
  console.error('bench: dist/ is missing or incomplete; run npm run build (the npm bench scripts build first)');
  process.exit(2);
});
export const NODE_FLAGS = built.WORKER_V8_FLAGS.filter((flag) => flag !== '--expose-gc');
