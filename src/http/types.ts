import type { FastifyInstance } from 'fastify';
import type { Context } from '../context.js';

/** The HTTP app: Fastify with ck's context at `app.ck`. Routes and hooks take this type from here. */
export type App = FastifyInstance;

declare module 'fastify' {
  interface FastifyInstance {
    ck: Context;
  }
}
