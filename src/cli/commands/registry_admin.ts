import type { Command } from 'commander';
import { ProblemError } from '../../errors.js';
import { anchorJson, orderJson, pendingJson } from '../../protocols/api/views.js';
import { cliActor } from '../../server/context.js';
import type { PendingStatus } from '../../store/store.js';
import { withContext, withDir } from '../context.js';
import { note, positiveInt, printJson, printRaw, printTable, readUserFile } from '../output.js';

/** Manufacturer trust, enrollment orders and approvals. */
export function registerRegistryAdmin(program: Command): void {
  const trust = program.command('trust').description('CAs trusted to vouch for devices (manufacturer certificates, IDevID)');

  withDir(trust.command('add-manufacturer').description('trust a manufacturer CA: devices with a certificate from it may bootstrap'))
    .requiredOption('--ca <file>', 'PEM file with the manufacturer CA certificate(s)')
    .option('--json', 'print as JSON')
    .addHelpText('after', `
A device presenting a certificate that chains to this CA is matched to its
registry record by the subject serialNumber (config registry.manufacturerId
can name the CN or a URI SAN prefix instead). It must still be registered.`)
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const added = await ctx.registry.addManufacturerCa(readUserFile(o.ca, 'CA file').toString('utf8'), cliActor());
        if (o.json) return printJson(added.map(anchorJson));
        for (const a of added) note(`trusted manufacturer CA ${a.subject} (sha256 ${a.fingerprint})`);
      }),
    );

  withDir(trust.command('list').description('list trusted manufacturer CAs'))
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const rows = (await ctx.registry.listManufacturerCas()).map(anchorJson);
        if (o.json) return printJson(rows);
        printTable(rows.map((a) => [a.fingerprint.slice(0, 16), a.notAfter.slice(0, 10), a.subject]), ['SHA-256', 'NOT AFTER', 'SUBJECT']);
      }),
    );

  withDir(trust.command('remove').description('stop trusting a manufacturer CA').argument('<fingerprint>', 'its SHA-256 fingerprint (hex)'))
    .action(async (fp: string, o) => withContext(o.dir, async (ctx) => {
      const all = await ctx.registry.listManufacturerCas();
      const hit = all.filter((a) => a.fingerprint.startsWith(fp.toLowerCase().replace(/:/g, '')));
      if (hit.length !== 1) {
        throw new ProblemError(hit.length ? 'bad_request' : 'not_found', hit.length ? 'that prefix matches several CAs' : `no trusted manufacturer CA ${fp}`);
      }
      await ctx.registry.removeManufacturerCa(hit[0].fingerprint, cliActor());
      note(`no longer trusted: ${hit[0].subject}`);
    }));

  const order = program.command('order').description('enrollment orders: N certificates of a profile for a model or domain');

  withDir(order.command('create').description('create an enrollment order'))
    .requiredOption('--profile <name>', 'certificate profile')
    .requiredOption('--quantity <n>', 'how many first certificates it grants', positiveInt)
    .option('--model <model>', 'only devices of this model')
    .option('--domain <domain>', 'only devices of this domain')
    .option('--valid-days <n>', 'expires after this many days', positiveInt)
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const rec = await ctx.registry.createOrder({ profile: o.profile, quantity: o.quantity, model: o.model, domain: o.domain, validDays: o.validDays }, cliActor());
        if (o.json) return printJson(orderJson(rec));
        note(`order ${rec.id}: ${rec.quantity} x ${rec.profile}${rec.model ? ` for model ${rec.model}` : ''}${rec.domain ? ` in ${rec.domain}` : ''}`);
        printRaw(`${rec.id}\n`);
      }),
    );

  withDir(order.command('list').description('list enrollment orders'))
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const rows = (await ctx.registry.listOrders()).map(orderJson);
        if (o.json) return printJson(rows);
        printTable(rows.map((r) => [r.id, r.profile, `${r.used}/${r.quantity}`, r.model ?? '-', r.domain ?? '-', r.expiresAt?.slice(0, 10) ?? 'never']), ['ID', 'PROFILE', 'USED', 'MODEL', 'DOMAIN', 'EXPIRES']);
      }),
    );

  const enrollment = program.command('enrollment').description('enrollments waiting for approval');

  withDir(enrollment.command('list').description('list enrollments (default: pending)'))
    .option('--status <status>', 'pending, approved, rejected or issued', 'pending')
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const rows = (await ctx.registry.listPending(o.status as PendingStatus)).map(pendingJson);
        if (o.json) return printJson(rows);
        printTable(rows.map((p) => [p.id, p.deviceId, p.status, p.createdAt.slice(0, 19)]), ['ID', 'DEVICE', 'STATUS', 'REQUESTED']);
      }),
    );

  for (const [verb, approve] of [['approve', true], ['reject', false]] as const) {
    withDir(enrollment.command(verb).description(`${verb} a pending enrollment; the device's next retry is ${approve ? 'issued' : 'refused'}`).argument('<id>', 'enrollment id'))
      .action(async (id: string, o) => withContext(o.dir, async (ctx) => {
        const p = await ctx.registry.decide(id, approve, cliActor());
        note(`enrollment ${p.id} of device ${p.deviceId}: ${p.status}`);
      }));
  }
}
