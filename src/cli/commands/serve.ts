import type { Command } from 'commander';
import { openContext } from '../../server/context.js';
import { startServer } from '../../server/server.js';
import { DIR_HELP } from '../context.js';
import { note } from '../output.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the HTTPS (admin API) and plain-HTTP (CA certificates) listeners')
    .option('--dir <dir>', DIR_HELP)
    .option('--listen <host:port>', 'HTTPS listener (default from the config)')
    .option('--http-listen <host:port>', 'plain-HTTP listener (default from the config)')
    .option('--store <spec>', 'use this store instead of the config\'s (postgres://...)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug', 'info')
    .action(async (o) => {
      const ctx = await openContext(o.dir, { storeOverride: o.store });
      const server = await startServer(ctx, { listen: o.listen, httpListen: o.httpListen, logger: { level: o.logLevel } });
      note(`fleetpki serving ${ctx.dir}`);
      note(`  admin API   ${server.httpsUrl}/api/v1   (OpenAPI: ${server.httpsUrl}/api/v1/openapi.json)`);
      note(`  console     ${server.httpsUrl}/console/   (sign in with an API token)`);
      note(`  CA certs    ${server.httpUrl}/ca/<name>.cer`);
      const stop = async (sig: string) => {
        note(`${sig}: stopping`);
        await server.close();
        await ctx.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop('SIGINT'));
      process.once('SIGTERM', () => void stop('SIGTERM'));
    });
}
