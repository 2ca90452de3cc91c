import type { Command } from 'commander';
import { defaultWorkerThreads, isServeProcess, parseProcesses, supervise, type ReadyMessage } from '../../server/cluster.js';
import { openContext } from '../../server/context.js';
import { startServer } from '../../server/server.js';
import { ensureTlsIdentity } from '../../server/tls_identity.js';
import { DIR_HELP } from '../context.js';
import { note, reportError } from '../output.js';

interface ServeOptions {
  dir?: string;
  listen?: string;
  httpListen?: string;
  store?: string;
  logLevel: string;
  processes: string;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the HTTPS (admin API) and plain-HTTP (CA certificates) listeners')
    .option('--dir <dir>', DIR_HELP)
    .option('--listen <host:port>', 'HTTPS listener (default from the config)')
    .option('--http-listen <host:port>', 'plain-HTTP listener (default from the config)')
    .option('--store <spec>', 'use this store instead of the config\'s (postgres://...)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug', 'info')
    .option(
      '--processes <n>',
      'server processes on the same listeners and data directory (node:cluster), or "auto" for one per core; each signs on its own core (docs/deployment.md)',
      '1',
    )
    .action(async (o: ServeOptions) => {
      const processes = parseProcesses(o.processes);
      if (isServeProcess()) return worker(o, processes);
      if (processes > 1) return primary(o, processes);
      const { ctx, server } = await start(o, 1);
      stopOnSignals(() => server.close(), () => ctx.close(), (why) => note(`${why}: stopping`));
      banner(ctx.dir, server);
    });
}

/** One server: alone, or one of `processes` (their share of the cores as worker threads). */
async function start(o: ServeOptions, processes: number) {
  const ctx = await openContext(o.dir, { storeOverride: o.store, defaultIssuanceWorkers: defaultWorkerThreads(processes) });
  const server = await startServer(ctx, { listen: o.listen, httpListen: o.httpListen, logger: { level: o.logLevel } });
  return { ctx, server };
}

/** On SIGINT or SIGTERM: closes the listeners, then the store, and exits (1 if closing failed). */
function stopOnSignals(closeServer: () => Promise<void>, closeContext: () => Promise<void>, say?: (why: string) => void): void {
  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    say?.(why);
    try {
      await closeServer();
      await closeContext();
    } catch (e) {
      process.exit(reportError(e) || 1);
    }
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

/**
 * A process of `--processes N`: the whole server, silent (the primary says
 * where). A failure to start ends the process, which tells the primary; its
 * channel to the primary would otherwise keep it alive.
 */
async function worker(o: ServeOptions, processes: number): Promise<void> {
  try {
    const { ctx, server } = await start(o, processes);
    stopOnSignals(() => server.close(), () => ctx.close());
    process.send!({ fleetpki: 'ready', httpsUrl: server.httpsUrl, httpUrl: server.httpUrl } satisfies ReadyMessage);
  } catch (e) {
    process.exit(reportError(e));
  }
}

function banner(dir: string, urls: { httpsUrl: string; httpUrl: string }, processes = 1): void {
  note(`fleetpki serving ${dir}${processes > 1 ? ` (${processes} processes)` : ''}`);
  note(`  admin API   ${urls.httpsUrl}/api/v1   (OpenAPI: ${urls.httpsUrl}/api/v1/openapi.json)`);
  note(`  console     ${urls.httpsUrl}/console/   (sign in with an API token)`);
  note(`  CA certs    ${urls.httpUrl}/ca/<name>.cer`);
}

/**
 * The primary of `--processes N`: opens the data directory once (an
 * unreadable config or store is reported here, not N times) and makes what
 * the processes would otherwise each make at once: the listener pair, so
 * they start from one, and the secret sealing key of a data directory made
 * before CMP. Then it supervises them.
 */
async function primary(o: ServeOptions, processes: number): Promise<void> {
  const ctx = await openContext(o.dir, { storeOverride: o.store, defaultIssuanceWorkers: 0 });
  const dir = ctx.dir;
  try {
    await ensureTlsIdentity(ctx);
    await ctx.vault.ensureKey('system');
  } finally {
    await ctx.close();
  }
  const code = await supervise({ processes, note, onReady: (ready) => banner(dir, ready, processes) });
  process.exit(code);
}
