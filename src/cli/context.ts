/** Opens the data directory for one CLI command and always closes it. */
import { openContext, type FleetContext } from '../server/context.js';
import type { Command } from 'commander';

export const DIR_HELP = 'data directory (default: $FLEETPKI_DIR, then ./fleetpki-data)';

export function withDir(cmd: Command): Command {
  return cmd.option('--dir <dir>', DIR_HELP);
}

export async function withContext<T>(dir: string | undefined, fn: (ctx: FleetContext) => Promise<T>): Promise<T> {
  const ctx = await openContext(dir);
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}
