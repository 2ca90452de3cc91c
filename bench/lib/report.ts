/**
 * Benchmark results: every scenario is measured beside its baseline in the
 * same run, and reported as {scenario, value, unit, baseline, baselineValue,
 * ratio}. `ratio` is always "how many times better than the baseline" (for
 * times: baseline / value; for rates: value / baseline), so > 1 means
 * fleetpki wins whatever the unit.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname } from 'node:path';
import { execFileSync } from 'node:child_process';

export interface Result {
  scenario: string;
  value: number;
  unit: string;
  baseline: string;
  baselineValue: number | null;
  ratio: number | null;
  /** What the numbers need to be read right (target, memory, caveats). */
  note?: string;
}

export type Better = 'higher' | 'lower';

export function result(scenario: string, value: number, unit: string, better: Better, baseline: string, baselineValue: number | null, note?: string): Result {
  let ratio: number | null = null;
  if (baselineValue !== null && baselineValue > 0 && value > 0) ratio = better === 'higher' ? value / baselineValue : baselineValue / value;
  const r: Result = { scenario, value: round(value), unit, baseline, baselineValue: baselineValue === null ? null : round(baselineValue), ratio: ratio === null ? null : round(ratio, 3) };
  if (note) r.note = note;
  return r;
}

function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function machine(): Record<string, string | number> {
  const cpu = cpus();
  let openssl = '';
  try {
    openssl = execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim();
  } catch {
    /* reported as empty */
  }
  return { cpu: cpu[0]?.model ?? 'unknown', cores: cpu.length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, openssl, date: new Date().toISOString() };
}

/** The results as a Markdown table (docs/performance.md carries the latest). */
export function table(results: Result[]): string {
  const rows = results.map((r) => [
    r.scenario,
    `${fmt(r.value)} ${r.unit}`,
    r.baseline,
    r.baselineValue === null ? '—' : `${fmt(r.baselineValue)} ${r.unit}`,
    r.ratio === null ? '—' : `${r.ratio.toFixed(2)}×`,
    r.note ?? '',
  ]);
  const head = ['scenario', 'fleetpki', 'baseline', 'baseline value', 'ratio', 'note'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : String(n);
}

export function writeResults(file: string, results: Result[]): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ machine: machine(), results }, null, 2)}\n`);
}
