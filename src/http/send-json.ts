import type { FastifyReply } from 'fastify';

/**
 * Sends JSON text ck built itself, encoded once into a Buffer. A large string body would be measured for
 * content-length and encoded again on write, which cost more than building it (docs/performance.md).
 */
export function sendJson(reply: FastifyReply, text: string): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(text.length < 4096 ? text : Buffer.from(text));
}
