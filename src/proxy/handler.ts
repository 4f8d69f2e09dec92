import type http from 'node:http';
import type { Socket } from 'node:net';
import { pipeline } from 'node:stream';
import type { Logger } from 'pino';
import { accessLine, type Exchanged } from '../observe/accessLog.js';
import { createContext, type ProxySettings } from './context.js';
import { ProxyError, classify, sendError } from './errors.js';
import { REQUEST_PASSES, RESPONSE_PASSES } from './passes.js';
import { flattenPairs, pairsFromRaw, type ResponseContext } from './response/headers.js';
import type { Transport } from './transport.js';

export interface HandlerDeps {
  readonly settings: ProxySettings;
  readonly transport: Transport;
  readonly logger: Logger;
  /** Inactivity allowed on a client connection while a request is in flight, ms; 0 = none. */
  readonly clientIdle: number;
  /** Sockets whose request body is complete and which wait for the upstream's answer. */
  readonly awaitingUpstream: WeakSet<Socket>;
}

/** Runs the passes in order for one request and streams it through the transport. */
export function createHandler(deps: HandlerDeps): http.RequestListener {
  const { settings, transport, logger, awaitingUpstream } = deps;

  return (req, res) => {
    const record: Exchanged = { started: process.hrtime.bigint(), bytesIn: 0, bytesOut: 0, client: '', error: undefined };
    const socket = req.socket;
    // Per request, since Node resets the socket timeout to 0 after a keep-alive wait.
    socket.setTimeout(deps.clientIdle);
    req.on('data', (chunk: Buffer) => (record.bytesIn += chunk.length));
    req.once('end', () => {
      if (!res.headersSent) awaitingUpstream.add(socket);
    });
    res.once('close', () => {
      awaitingUpstream.delete(socket);
      // The error that closed the response (client gone, upstream reset) is reported on
      // the next ticks; log once they have run.
      setImmediate(() => {
        if (!res.writableFinished && !record.error) record.error = new ProxyError('client_gone');
        logger.info(accessLine(req, res, record));
      });
    });

    const ctx = createContext(settings, req);
    record.client = ctx.client;
    try {
      for (const pass of REQUEST_PASSES) pass(ctx);
    } catch (err) {
      record.error = classify(err);
      sendError(req, res, record.error);
      return;
    }
    record.client = ctx.client;
    req.url = ctx.url; // the transport forwards req.url byte-for-byte

    transport.forward(req, res, {
      onResponse(proxyRes) {
        awaitingUpstream.delete(socket);
        const out: ResponseContext = {
          status: proxyRes.statusCode ?? 502,
          headers: pairsFromRaw(proxyRes.rawHeaders),
          upstream: settings.upstream,
          publicOrigin: ctx.publicOrigin,
        };
        for (const pass of RESPONSE_PASSES) pass(out);
        proxyRes.on('data', (chunk: Buffer) => (record.bytesOut += chunk.length));
        res.writeHead(out.status, proxyRes.statusMessage, flattenPairs(out.headers));
        pipeline(proxyRes, res, (err) => {
          // A failure after the headers went out can only be signalled by closing the
          // connection, which pipeline has done; the upstream socket is destroyed with proxyRes.
          if (err && !record.error) record.error = res.writableFinished ? undefined : classifyMidStream(err, res);
        });
      },
      onError(err) {
        awaitingUpstream.delete(socket);
        const error = classify(err);
        if (res.writableFinished) return; // the answer was complete; a late upstream error changes nothing
        record.error = socket.destroyed ? new ProxyError('client_gone', { cause: err }) : error;
        if (record.error.kind === 'client_gone') return;
        sendError(req, res, record.error);
      },
    });
  };
}

function classifyMidStream(err: Error, res: http.ServerResponse): ProxyError {
  return res.socket === null || res.socket.destroyed ? new ProxyError('client_gone', { cause: err }) : classify(err);
}
