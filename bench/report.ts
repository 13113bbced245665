import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { ROOT } from './service.js';

/** One line of the results table. */
export interface Row {
  scenario: string;
  metric: string;
  value: string;
  baseline: string;
  ratio: string;
  target: string;
  result: 'PASS' | 'FAIL' | '';
}

export interface ScenarioResult {
  rows: Row[];
  /** Raw numbers for the JSON file. */
  raw: Record<string, unknown>;
}

export const fmt = {
  rate: (n: number) => `${Math.round(n).toLocaleString('en-US')}/s`,
  ms: (n: number) => `${n.toFixed(1)} ms`,
  s: (ms: number) => `${(ms / 1000).toFixed(2)} s`,
  mb: (n: number) => `${n.toFixed(0)} MB`,
  int: (n: number) => Math.round(n).toLocaleString('en-US'),
};

const pass = (ok: boolean): Row['result'] => (ok ? 'PASS' : 'FAIL');

/** value >= min x baseline. */
export function ratioAtLeast(scenario: string, metric: string, value: number, baseName: string, base: number, min: number, show = fmt.rate): Row {
  const ratio = value / base;
  return {
    scenario, metric, value: show(value), baseline: `${baseName} ${show(base)}`, ratio: `${ratio.toFixed(2)}x`,
    target: `>= ${min}x ${baseName}`, result: pass(ratio >= min),
  };
}

/** value < max x baseline (a sanity check: a contender that must stay below the baseline). */
export function ratioBelow(scenario: string, metric: string, value: number, baseName: string, base: number, max: number, show = fmt.rate): Row {
  const ratio = value / base;
  return {
    scenario, metric, value: show(value), baseline: `${baseName} ${show(base)}`, ratio: `${ratio.toFixed(2)}x`,
    target: `< ${max}x ${baseName}`, result: pass(ratio < max),
  };
}

/** value < limit (times, sizes). */
export function below(scenario: string, metric: string, value: number, limit: number, show: (n: number) => string): Row {
  return { scenario, metric, value: show(value), baseline: '', ratio: '', target: `< ${show(limit)}`, result: pass(value < limit) };
}

/** value >= limit (rates). */
export function atLeast(scenario: string, metric: string, value: number, limit: number, show: (n: number) => string): Row {
  return { scenario, metric, value: show(value), baseline: '', ratio: '', target: `>= ${show(limit)}`, result: pass(value >= limit) };
}

/** Counts that must all be zero (failed requests, unchanged checkpoints). */
export function none(scenario: string, metric: string, counts: Record<string, number>): Row {
  const value = Object.entries(counts).map(([k, v]) => `${k} ${fmt.int(v)}`).join(', ');
  const ok = Object.values(counts).every((v) => v === 0);
  return { scenario, metric, value, baseline: '', ratio: '', target: '0', result: pass(ok) };
}

/** A reported number without a target. */
export function info(scenario: string, metric: string, value: string): Row {
  return { scenario, metric, value, baseline: '', ratio: '', target: '', result: '' };
}

const COLUMNS: (keyof Row)[] = ['scenario', 'metric', 'value', 'baseline', 'ratio', 'target', 'result'];

export function printTable(rows: Row[]): void {
  const width = COLUMNS.map((c) => Math.max(c.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) => cells.map((v, i) => v.padEnd(width[i]!)).join('  ').trimEnd();
  console.log(line(COLUMNS));
  console.log(line(width.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(COLUMNS.map((c) => r[c])));
  const failed = rows.filter((r) => r.result === 'FAIL').length;
  const checked = rows.filter((r) => r.result !== '').length;
  console.log(`${checked - failed}/${checked} targets met`);
}

/** Writes bench/results/<time>-<backend>.json (gitignored) and returns its path. */
export function writeResults(backend: string, settings: Record<string, unknown>, results: Record<string, ScenarioResult>): string {
  const at = new Date().toISOString();
  const dir = `${ROOT}bench/results`;
  mkdirSync(dir, { recursive: true });
  const file = `${dir}/${at.replace(/[:.]/g, '-')}-${backend}.json`;
  const body = {
    at, backend, settings,
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, loadavg: loadavg() },
    scenarios: results,
  };
  writeFileSync(file, `${JSON.stringify(body, null, 2)}\n`);
  return file;
}
