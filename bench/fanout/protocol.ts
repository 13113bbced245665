import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ROOT } from '../service.js';

/** Messages to an SSE client process (sse-clients.ts). */
export type ToChild =
  | { type: 'connect'; url: string; key: string; filters: (string | null)[]; parallel: number }
  | { type: 'start' }
  | { type: 'count' }
  | { type: 'finish'; answered: [string, number][] };

export interface ChildResult {
  type: 'result';
  clients: number;
  deliveries: number;
  /** Deliveries of events the writer has no 201 for. */
  unmatched: number;
  /** Expected deliveries (every answered change to every matching client here) that did not arrive. */
  missing: number;
  duplicate: number;
  /** Clients that got fewer events than their filter matched. */
  short: number;
  wrong: number;
  /** `event: error` received (the server cut a slow client). */
  errors: number;
  closed: number;
  /** % of one core, from `start` to `finish`. */
  cpu: number;
  /** [commit-to-receipt ms, deliveries] */
  latency: [number, number][];
}

/** The parent's handle on one client process. */
export interface ClientProcess {
  pid: number;
  ask<T>(msg: ToChild, replyType: string): Promise<T>;
  tell(msg: ToChild): void;
  kill(): void;
}

const SCRIPT = fileURLToPath(new URL('./sse-clients.ts', import.meta.url));

export function forkClients(): ClientProcess {
  const child: ChildProcess = fork(SCRIPT, [], { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let exited = false;
  child.once('exit', () => (exited = true));
  return {
    pid: child.pid!,
    ask<T>(msg: ToChild, replyType: string): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const onMessage = (m: { type: string }) => {
          if (m.type !== replyType) return;
          child.off('message', onMessage);
          child.off('exit', onExit);
          resolve(m as T);
        };
        const onExit = () => reject(new Error(`SSE client process ${child.pid} exited`));
        child.on('message', onMessage);
        child.once('exit', onExit);
        child.send(msg);
      });
    },
    tell: (msg) => void child.send(msg),
    kill: () => void (exited || child.kill('SIGKILL')),
  };
}
