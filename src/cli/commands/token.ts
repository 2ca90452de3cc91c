import type { Command } from 'commander';
import { ROLES } from '../../store/store.js';
import { cliActor } from '../../server/context.js';
import { withContext, withDir } from '../context.js';
import { note, positiveInt, printJson, printLine, printTable } from '../output.js';

export function registerToken(program: Command): void {
  const token = program.command('token').description('API bearer tokens for operators');

  withDir(token.command('create').description('create an API token; the secret is printed once on stdout'))
    .requiredOption('--role <role>', `role: ${ROLES.join(', ')}`)
    .option('--name <name>', 'who or what uses it (default: the role)')
    .option('--valid-days <n>', 'expire after this many days (default: never)', positiveInt)
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const { token: secret, record } = await ctx.operators.createToken({ name: o.name ?? o.role, role: o.role, validDays: o.validDays, actor: cliActor() });
        if (o.json) return printJson({ id: record.id, name: record.name, role: record.role, token: secret, expiresAt: record.expiresAt?.toISOString() ?? null });
        note(`token ${record.id} for "${record.name}" (${record.role}); shown once:`);
        printLine(secret);
      }),
    );

  withDir(token.command('list').description('list API tokens (never their secrets)'))
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const rows = await ctx.operators.listTokens();
        if (o.json) return printJson(rows.map(({ tokenHash: _h, ...t }) => t));
        printTable(
          rows.map((t) => [t.id, t.name, t.role, t.createdAt.toISOString().slice(0, 19), t.revokedAt ? 'revoked' : t.expiresAt ? `expires ${t.expiresAt.toISOString().slice(0, 10)}` : 'active']),
          ['ID', 'NAME', 'ROLE', 'CREATED', 'STATE'],
        );
      }),
    );

  withDir(token.command('revoke').description('revoke an API token').argument('<id>', 'token id'))
    .action(async (id: string, o) => withContext(o.dir, async (ctx) => {
      await ctx.operators.revokeToken(id, cliActor());
      note(`token ${id} revoked`);
    }));
}
