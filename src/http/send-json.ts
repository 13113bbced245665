import type { FastifyReply } from 'fastify';

/**
 * Sends a large JSON body built by ck itself (heartbeat batches, summary pages): JSON.stringify, which
 * beats the schema serializer on these shapes, encoded once into a Buffer. A string body would be
 * measured for content-length and encoded again on write, which cost more than building it
 * (docs/performance.md).
 */
export function sendJson(reply: FastifyReply, body: unknown): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(Buffer.from(JSON.stringify(body)));
}
