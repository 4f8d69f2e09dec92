import type httpModule from 'node:http';

/**
 * node:http, reached without an ESM import. Importing a built-in module as ESM reads every
 * one of its exports to build the module's namespace, and node:http's WebSocket,
 * CloseEvent and MessageEvent getters load Node's bundled copy of undici to answer, for
 * nothing berth uses: 6.5 MiB of private memory and
 * 2.3 MB of heap in a bare Node 24 process; in berth's, at rest, 1.6 MiB per worker and
 * 3.1 in the primary (RssAnon, three starts each). The CommonJS module object leaves
 * those getters unread. A lint rule (eslint.config.js) keeps node:http's value imports
 * out of src/. Import this `http` instead of `node:http` wherever its value is
 * needed (its types can still come from `import type`).
 */
export const http: typeof httpModule = process.getBuiltinModule('node:http');
