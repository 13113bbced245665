import type { Backend } from './backend.js';
import type { ScenarioResult } from './report.js';

/** What run.ts gives each scenario. */
export interface BenchContext {
  durationSec: number;
  /** User sessions for the scale scenario (BENCH_USERS). */
  users: number;
  /** A fresh database (schema or data dir), dropped after the scenario. */
  backend(name: string): Promise<Backend>;
  /** Runs `fn` after the scenario, even when it fails; the latest first. */
  defer(fn: () => Promise<void>): void;
  log(msg: string): void;
}

export type Scenario = (ctx: BenchContext) => Promise<ScenarioResult>;
