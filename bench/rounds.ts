import { median } from './load.js';
import { pct } from './proc.js';
import { below, type Row } from './report.js';
import type { Proc } from './service.js';
import type { LoadResult } from './wrk.js';

/** A server driven in the rounds, with its results. */
export interface Contender {
  name: string;
  proc: Proc;
  runs: LoadResult[];
}

/**
 * Drives each contender in turn for `rounds` rounds, each round starting one contender later, so each
 * runs once in every position: a noisy neighbour on this machine then slows every contender alike, and
 * whoever follows a database-heavy contender is not always the same one.
 */
export async function interleave(
  contenders: Contender[], rounds: number, drive: (c: Contender, round: number) => Promise<LoadResult>,
  log: (msg: string) => void,
): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    log(`round ${round + 1} of ${rounds}`);
    const k = round % contenders.length;
    for (const c of [...contenders.slice(k), ...contenders.slice(0, k)]) c.runs.push(await drive(c, round));
  }
}

/** Runs of one server folded into one result: median rate, latencies and CPU, summed counts. */
export function fold(runs: LoadResult[]): LoadResult {
  const statuses: Record<string, number> = {};
  for (const r of runs) for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  return {
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    max: Math.max(...runs.map((r) => r.max)),
    requests: runs.reduce((a, r) => a + r.requests, 0),
    failed: runs.reduce((a, r) => a + r.failed, 0),
    statuses,
    // The busiest run counts: it is the one closest to saturating the generator.
    generatorCpu: Math.max(...runs.map((r) => r.generatorCpu)),
    serverCpu: median(runs.map((r) => r.serverCpu)),
  };
}

/** Mean of two or more runs (a baseline measured before and after a one-off run). */
export function mean(runs: LoadResult[]): LoadResult {
  const avg = (f: (r: LoadResult) => number) => runs.reduce((a, r) => a + f(r), 0) / runs.length;
  return { ...fold(runs), rps: avg((r) => r.rps), p50: avg((r) => r.p50), p99: avg((r) => r.p99), serverCpu: avg((r) => r.serverCpu) };
}

/** Above this share of one core, wrk itself may have been the limit and the figures are not ck's. */
export const GENERATOR_LIMIT = 90;

/**
 * The generator's CPU in each contender's busiest run (which must leave headroom), with each server's
 * CPU beside it.
 */
export function generatorRow(scenario: string, named: [string, LoadResult][]): Row {
  const worst = Math.max(...named.map(([, r]) => r.generatorCpu));
  const row = below(scenario, 'wrk CPU, % of one core (server CPU)', worst, GENERATOR_LIMIT, pct);
  row.value = named.map(([n, r]) => `${n} ${pct(r.generatorCpu)} (${pct(r.serverCpu)})`).join(', ');
  return row;
}
