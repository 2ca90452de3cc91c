/** `fleetpki report`, `fleetpki webhook` and `fleetpki operator`: the lifecycle tools of issue 8. */
import type { Command } from 'commander';
import { normaliseSerial } from '../../authority/serial.js';
import { ProblemError } from '../../errors.js';
import { expiringJson } from '../../protocols/api/lifecycle_routes.js';
import { operatorCertJson, webhookJson } from '../../protocols/api/views.js';
import { cliActor } from '../../server/context.js';
import { ROLES } from '../../store/store.js';
import { withContext, withDir } from '../context.js';
import { note, printJson, printLine, printTable } from '../output.js';

function days(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 3650) throw new ProblemError('bad_request', `--days "${v}" is a whole number from 0 to 3650`);
  return n;
}

function thresholds(v: string): number[] {
  const list = v.split(',').map((x) => Number(x.trim()));
  if (!list.length || !list.every((n) => Number.isInteger(n) && n >= 1)) throw new ProblemError('bad_request', `--thresholds "${v}" is a comma-separated list of whole days, e.g. 30,7,1`);
  return list;
}

function serialArg(v: string): string {
  const s = normaliseSerial(v);
  if (!s) throw new ProblemError('bad_request', `"${v}" is not a serial number (hex)`);
  return s;
}

export function registerLifecycle(program: Command): void {
  const report = program.command('report').description('reports on the fleet');
  withDir(report.command('expiring').description('certificates expiring within N days, expired ones, and devices that stopped renewing'))
    .option('--days <n>', 'look this many days ahead', days, 30)
    .option('--json', 'print as JSON, as GET /api/v1/reports/expiring answers')
    .addHelpText('after', '\nA device stopped renewing when its current certificate is past its renewal\npoint (lifecycle.renewAtShare of its lifetime, 2/3 by default, as the agent\nrenews) — "overdue" — or expired with no successor — "expired". Exits 0 either way.')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const r = await expiringJson(ctx, o.days);
        if (o.json) return printJson(r);
        printLine(`expiring within ${r.days} days: ${r.expiring.length}`);
        if (r.expiring.length) printTable(r.expiring.map((c) => [c.serial, c.notAfter.slice(0, 19), c.deviceId ?? '-', c.subject]), ['SERIAL', 'NOT AFTER', 'DEVICE', 'SUBJECT']);
        printLine(`expired (never revoked): ${r.expired.length}`);
        if (r.expired.length) printTable(r.expired.map((c) => [c.serial, c.notAfter.slice(0, 19), c.deviceId ?? '-', c.subject]), ['SERIAL', 'NOT AFTER', 'DEVICE', 'SUBJECT']);
        printLine(`devices that stopped renewing: ${r.staleDevices.length}`);
        if (r.staleDevices.length) printTable(r.staleDevices.map((d) => [d.id, d.status, d.renewBy.slice(0, 19), d.notAfter.slice(0, 19), d.serial]), ['DEVICE', 'STATUS', 'RENEW BY', 'NOT AFTER', 'SERIAL']);
      }),
    );

  const webhook = program.command('webhook').description('webhooks: device-management systems report lifecycle events (inbound); expiry notices (outbound)');
  withDir(webhook.command('create').description('create a webhook; its HMAC-SHA256 secret is printed once on stdout').argument('<name>', 'lowercase letters, digits and dashes'))
    .option('--inbound', 'a device-management or CRM system POSTs signed events to /api/v1/hooks/lifecycle')
    .option('--url <url>', 'outbound: POST signed expiry notices to this URL')
    .option('--thresholds <days>', 'outbound: notify this many days before expiry, comma-separated', thresholds)
    .option('--json', 'print as JSON, as POST /api/v1/webhooks answers')
    .addHelpText('after', '\nThe server opens the sealed secret (it needs the key store); see docs/lifecycle.md\nfor the signature and an example with openssl.')
    .action(async (name: string, o) =>
      withContext(o.dir, async (ctx) => {
        if (!!o.inbound === !!o.url) throw new ProblemError('bad_request', 'give either --inbound or --url');
        const { webhook: w, secret } = await ctx.webhooks.create({ name, direction: o.inbound ? 'inbound' : 'outbound', url: o.url, thresholdsDays: o.thresholds, actor: cliActor() });
        if (o.json) return printJson({ ...webhookJson(w), secret });
        note(`${w.direction} webhook ${w.name}${w.url ? ` → ${w.url} (${w.thresholdsDays.join(', ')} days)` : ''}; secret shown once:`);
        printLine(secret);
      }),
    );
  withDir(webhook.command('list').description('list webhooks (never their secrets)'))
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const rows = (await ctx.webhooks.list()).map(webhookJson);
        if (o.json) return printJson(rows);
        printTable(rows.map((w) => [w.name, w.direction, w.url ?? '-', w.thresholdsDays.join(',') || '-', w.createdAt.slice(0, 19)]), ['NAME', 'DIRECTION', 'URL', 'DAYS', 'CREATED']);
      }),
    );
  withDir(webhook.command('remove').description('remove a webhook').argument('<name>', 'webhook name')).action(async (name: string, o) =>
    withContext(o.dir, async (ctx) => {
      await ctx.webhooks.remove(name, cliActor());
      note(`webhook ${name} removed`);
    }),
  );

  const operator = program.command('operator').description('operators who sign in with a client certificate (mutual TLS), besides API tokens');
  withDir(operator.command('add-cert').description('let a certificate this CA issued sign an operator in with a role'))
    .requiredOption('--serial <serial>', 'the certificate (hex serial), e.g. from fleetpki cert issue')
    .requiredOption('--name <name>', 'the operator, as the audit log names them (cert:<name>)')
    .requiredOption('--role <role>', `role: ${ROLES.join(', ')}`)
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nThe certificate is checked at every request: once revoked (fleetpki cert revoke),\nexpired or removed here, it signs no one in.')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const r = await ctx.operators.addCertificate({ serial: serialArg(o.serial), name: o.name, role: o.role, actor: cliActor() });
        if (o.json) return printJson(operatorCertJson(r));
        note(`certificate ${r.serial} signs in ${r.name} (${r.role})`);
      }),
    );
  withDir(operator.command('list-certs').description('list operator client certificates'))
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const rows = (await ctx.operators.listCertificates()).map(operatorCertJson);
        if (o.json) return printJson(rows);
        printTable(rows.map((r) => [r.serial, r.name, r.role, r.createdAt.slice(0, 19)]), ['SERIAL', 'NAME', 'ROLE', 'ADDED']);
      }),
    );
  withDir(operator.command('remove-cert').description('stop a client certificate signing an operator in').argument('<serial>', 'hex serial')).action(async (serial: string, o) =>
    withContext(o.dir, async (ctx) => {
      await ctx.operators.removeCertificate(serialArg(serial), cliActor());
      note(`certificate ${serial} signs in no operator any more`);
    }),
  );
}
