/**
 * `npm run bench [-- --quick] [crl] [ocsp] ...`: every scenario beside its
 * baseline in the same run; prints a table and writes
 * bench/results/latest.json (bench/results/quick.json with --quick, a
 * smoke run with small sizes that the test suite uses to keep the harness
 * working). docs/performance.md explains each scenario.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { crlScenarios } from './crl.js';
import { estScenarios } from './est.js';
import { firmwareScenarios } from './firmware.js';
import { issuanceScenarios } from './issuance.js';
import { ocspScenarios } from './ocsp.js';
import { storeScenarios } from './store.js';
import { machine, table, writeResults, type Result } from './lib/report.js';

const SCENARIOS: Record<string, (quick: boolean) => Promise<Result[]>> = {
  crl: crlScenarios,
  ocsp: ocspScenarios,
  est: estScenarios,
  firmware: firmwareScenarios,
  issuance: issuanceScenarios,
  store: storeScenarios,
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
// A full run of every scenario is the table docs/performance.md shows.
const doc = fileURLToPath(new URL('../docs/performance.md', import.meta.url));
if (!quick && !names.length && existsSync(doc)) {
  const m = machine();
  const block = `<!-- bench:begin -->\nRun ${String(m.date).slice(0, 10)} on ${m.cores} × ${m.cpu}, ${m.memoryGiB} GiB, Node ${m.node}, ${m.openssl}.\n\n${table(results)}\n<!-- bench:end -->`;
  writeFileSync(doc, readFileSync(doc, 'utf8').replace(/<!-- bench:begin -->[\s\S]*<!-- bench:end -->/, block));
  console.error(`bench: table written to ${doc}`);
}
console.error(`bench: results in ${file}`);
