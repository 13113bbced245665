import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { writeRawProblem } from './error-handler.js';
import { ERRORS } from './errors.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** How long a client may take: bounded so slow or idle clients cannot hold connections. */
export const HTTP_TIMEOUTS = {
  /** Until the request's headers have arrived. */
  headersTimeoutMs: 10_000,
  /** Until the whole request (headers and body) has arrived. */
  requestTimeoutMs: 30_000,
  /** An idle kept-alive connection. */
  keepAliveTimeoutMs: 10_000,
  /** A socket with no traffic either way (a client that stopped reading an event stream included). */
  idleSocketMs: 30_000,
  /** How often Node checks the two above; its default (30 s) let a 30 s limit hold a connection for up to 60 s. */
  checkIntervalMs: 1000,
};

/**
 * Fastify's `serverFactory`: ck's node:http server. `front` sees each request first (the heartbeat lane,
 * once the app is built) and passes what it does not answer to Fastify's handler. CONNECT, which Node
 * would otherwise drop without a word, gets a problem+json 405.
 */
export function createNodeServer(handler: Handler, front: () => ((req: IncomingMessage, res: ServerResponse, next: Handler) => void) | undefined): Server {
  const server = createServer({
    headersTimeout: HTTP_TIMEOUTS.headersTimeoutMs,
    requestTimeout: HTTP_TIMEOUTS.requestTimeoutMs,
    keepAliveTimeout: HTTP_TIMEOUTS.keepAliveTimeoutMs,
    connectionsCheckingInterval: HTTP_TIMEOUTS.checkIntervalMs,
  }, (req, res) => {
    const f = front();
    if (f) f(req, res, handler);
    else handler(req, res);
  });
  server.setTimeout(HTTP_TIMEOUTS.idleSocketMs);
  server.on('connect', (req: IncomingMessage, socket: Socket) => {
    writeRawProblem(socket, ERRORS.methodNotAllowed('CONNECT is not supported'), req.url ?? '/');
    socket.end();
  });
  return server;
}
