import type { Command } from 'commander';
import { parseAnchor, verifyStoredAuditChain, type AuditAnchor } from '../../store/audit_chain.js';
import { ProblemError } from '../../errors.js';
import { withContext, withDir } from '../context.js';
import { positiveInt, printJson, printLine, printTable } from '../output.js';

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('the hash-chained audit log');

  withDir(audit.command('list').description('print audit entries, oldest first'))
    .option('--after <seq>', 'entries after this sequence number', (v) => Number(v), 0)
    .option('--limit <n>', 'at most this many', positiveInt, 100)
    .option('--action <action>', 'only this action, e.g. certificate.issue')
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const rows = await ctx.store.listAudit({ afterSeq: o.after, limit: o.limit, action: o.action });
        if (o.json) return printJson(rows);
        printTable(rows.map((e) => [String(e.seq), e.at.toISOString().slice(0, 19), e.actor, e.action, e.target ?? '-']), ['SEQ', 'AT', 'ACTOR', 'ACTION', 'TARGET']);
      }),
    );

  withDir(audit.command('head').description('print the newest entry as SEQ:HASH, an anchor to keep outside the database for audit verify --anchor'))
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const seq = await ctx.store.lastAuditSeq();
        const [e] = seq ? await ctx.store.listAudit({ afterSeq: seq - 1, limit: 1 }) : [];
        if (o.json) return printJson({ seq, hash: e?.hash ?? null, anchor: e ? `${e.seq}:${e.hash}` : null });
        if (!e) throw new ProblemError('not_found', 'the audit log is empty');
        printLine(`${e.seq}:${e.hash}`);
      }),
    );

  const anchorArg = (v: string, prev: AuditAnchor[] = []) => {
    const a = parseAnchor(v);
    if (!a) throw new ProblemError('bad_request', `--anchor "${v}" is SEQ:HASH as audit head prints it`);
    return [...prev, a];
  };
  withDir(audit.command('verify').description('check the hash chain of the whole audit log; exit 1 if it is broken'))
    .option('--anchor <seq:hash>', 'a head printed earlier by audit head (repeatable): also catches entries cut off or appended at the end', anchorArg, [])
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nEach entry commits to the one before (sha256). An entry edited in the database,\ninserted or deleted breaks the chain at that entry. Keep the output of\n`audit head` somewhere else (a ticket, a printout) and pass it with --anchor to\nalso catch the end of the log being cut off or rewritten.')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const r = await verifyStoredAuditChain(ctx.store, o.anchor);
        if (o.json) printJson(r);
        else if (r.ok) printLine(`audit log intact: ${r.entries} entries`);
        else printLine(`AUDIT LOG BROKEN at entry ${r.brokenAt}: ${r.reason}`);
        if (!r.ok) process.exitCode = 1;
      }),
    );
}
