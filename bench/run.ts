/**
 * `npm run bench [-- --quick] [crl] [ocsp] ...`: every scenario beside its
 * baseline in the same run; prints a table and writes
 * bench/results/latest.json (bench/results/quick.json with --quick, a
 * smoke run with small sizes that the test suite uses to keep the harness
 * working). docs/performance.md explains each scenario.
 */
import { fileURLToPath } from 'node:url';
import { crlScenarios } from './crl.js';
import { ocspScenarios } from './ocsp.js';
import { table, writeResults, type Result } from './lib/report.js';

const SCENARIOS: Record<string, (quick: boolean) => Promise<Result[]>> = {
  crl: crlScenarios,
  ocsp: ocspScenarios,
};

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const names = args.filter((a) => !a.startsWith('--'));
for (const n of names) {
  if (!SCENARIOS[n]) {
    console.error(`unknown scenario "${n}"; known: ${Object.keys(SCENARIOS).join(', ')}`);
    process.exit(2);
  }
}
const results: Result[] = [];
for (const name of names.length ? names : Object.keys(SCENARIOS)) {
  console.error(`bench: ${name}${quick ? ' (quick)' : ''} ...`);
  results.push(...(await SCENARIOS[name](quick)));
}
const file = fileURLToPath(new URL(`./results/${quick ? 'quick' : 'latest'}.json`, import.meta.url));
writeResults(file, results);
console.log(table(results));
console.error(`bench: results in ${file}`);
