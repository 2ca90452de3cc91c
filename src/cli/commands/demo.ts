import type { Command } from 'commander';
import { runDemo } from '../../demo/fleet_demo.js';
import { positiveInt } from '../output.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('a CA, an EST server and a simulated fleet in a temporary directory: enroll, mutual TLS by domain, renewal, revocation')
    .option('--keep', 'leave the server running afterwards and print its URLs (Ctrl-C stops it and removes the directory)')
    .option('--devices <n>', 'number of simulated devices, in two domains (default 20)', positiveInt)
    .option('--lifetime <seconds>', 'certificate lifetime in seconds; the demo waits for one renewal (default 20)', positiveInt)
    .addHelpText('after', `
Needs nothing but Node.js: the server uses the embedded SQLite store and
software keys in a temporary directory, removed at the end.`)
    .action(async (o) => {
      const r = await runDemo({ keep: !!o.keep, devices: o.devices, lifetimeSeconds: o.lifetime });
      if (!o.keep) return;
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
      await r.close();
    });
}
