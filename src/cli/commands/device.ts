import type { Command } from 'commander';
import { ProblemError } from '../../errors.js';
import { parseDeviceFile } from '../../registry/device_file.js';
import { TRANSITIONS, type Transition } from '../../registry/lifecycle.js';
import { DEVICE_STATES, type DeviceRecord, type DeviceState } from '../../store/store.js';
import { cliActor } from '../../server/context.js';
import { deviceEventJson, deviceIdentitiesJson, deviceJson } from '../../protocols/api/views.js';
import { EVENT_RULES, REPORTABLE_EVENTS } from '../../registry/device_events.js';
import { withContext, withDir } from '../context.js';
import { progressBar } from '../progress.js';
import { collect, note, positiveInt, printJson, printLine, printTable, readUserFile } from '../output.js';

/** The lifecycle table as help text, one line per state. */
function lifecycleHelp(): string {
  const note = (t: Transition) => (t.needs === 'certificate' ? ' (has a certificate)' : t.needs === 'none' ? ' (has none)' : '');
  return DEVICE_STATES.map((from) => {
    const to = Object.entries(TRANSITIONS[from]).map(([s, t]) => `${s}${note(t!)}`);
    return `  ${from.padEnd(11)} → ${to.length ? to.join(', ') : 'nothing: final'}`;
  }).join('\n');
}

export function registerDevice(program: Command): void {
  const device = program.command('device').description('the device registry: which devices may get which certificate');

  withDir(device.command('register').description('register one device'))
    .requiredOption('--id <id>', 'device serial number (becomes CN and serialNumber)')
    .requiredOption('--profile <name>', 'certificate profile it may enroll for')
    .option('--domain <domain>', 'operational domain (site, building, tenant): certified as URI SAN urn:fleetpki:domain:<domain>')
    .option('--model <model>', 'device model')
    .option('--owner <owner>', 'owner')
    .option('--san <name>', 'extra name to certify: dns:..., ip:... or uri:... such as an OPC UA applicationUri (repeatable)', collect, [])
    .option('--order <id>', 'enrollment order whose quota its first certificate uses')
    .option('--approval', 'its enrollments wait for an ra-officer')
    .option('--secret', 'print a one-time enrollment secret on stdout, alone on its line (shown once)')
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const { device: d, secret } = await ctx.registry.register(
          { id: o.id, profile: o.profile, domain: o.domain, model: o.model, owner: o.owner, sans: o.san, orderId: o.order, requireApproval: !!o.approval },
          cliActor(),
          !!o.secret,
        );
        if (o.json) return printJson({ ...deviceJson(d), secret: secret ?? null });
        note(`registered device ${d.id} (profile ${d.profile}${d.domain ? `, domain ${d.domain}` : ''})`);
        if (secret) {
          note(`one-time enrollment secret (valid ${ctx.config.registry.secretTtlHours} h, shown once):`);
          printLine(secret);
        }
      }),
    );

  withDir(device.command('secret').description('issue a new one-time enrollment secret for a registered device (replaces the old one); printed on stdout, alone on its line'))
    .argument('<id>', 'device id')
    .option('--json', 'print as JSON: {"id", "secret", "expiresInHours"}, as the API answers')
    .action(async (id: string, o) =>
      withContext(o.dir, async (ctx) => {
        const secret = await ctx.registry.newSecret(id, cliActor());
        if (o.json) return printJson({ id, secret, expiresInHours: ctx.config.registry.secretTtlHours });
        note(`one-time enrollment secret for ${id} (valid ${ctx.config.registry.secretTtlHours} h, shown once):`);
        printLine(secret);
      }),
    );

  withDir(device.command('import').description('register many devices from a CSV or JSON file').argument('<file>', 'devices.csv or devices.json'))
    .option('--profile <name>', 'profile for rows that name none')
    .option('--domain <domain>', 'domain for rows that name none')
    .option('--model <model>', 'model for rows that name none')
    .option('--order <id>', 'order for rows that name none')
    .option('--format <format>', 'csv or json (default: from the file name)')
    .option('--json', 'print the summary as JSON')
    .addHelpText('after', `
CSV: a header row naming the columns id, profile, model, domain, owner, sans
(dns:/ip: names separated by spaces or semicolons), order, approval; other
columns become free attributes. JSON: an array of objects with the same keys.
Rows that are invalid or already registered are reported; the rest are
registered in batches of 1000.`)
    .action(async (file: string, o) =>
      withContext(o.dir, async (ctx) => {
        const format = o.format ?? (file.toLowerCase().endsWith('.json') ? 'json' : 'csv');
        if (format !== 'csv' && format !== 'json') throw new ProblemError('bad_request', '--format is csv or json');
        const text = readUserFile(file, 'device file').toString('utf8');
        const parsed = parseDeviceFile(text, format, { profile: o.profile, domain: o.domain, model: o.model, orderId: o.order });
        const r = await ctx.registry.importDevices(parsed.rows, cliActor(), progressBar());
        const rejected = [...parsed.rejected, ...r.rejected].sort((a, b) => a.line - b.line);
        const summary = { registered: r.inserted, alreadyRegistered: r.existing, rejected };
        if (rejected.length) process.exitCode = 3;
        if (o.json) return printJson(summary);
        note(`${r.inserted} registered, ${r.existing.length} already registered, ${rejected.length} rejected`);
        for (const x of rejected.slice(0, 50)) note(`  line ${x.line}${'id' in x && x.id ? ` (${x.id})` : ''}: ${x.reason}`);
        if (rejected.length > 50) note(`  ... and ${rejected.length - 50} more (use --json for all)`);
      }),
    );

  withDir(device.command('list').description('list devices'))
    .option('--state <state>', `one of ${DEVICE_STATES.join(', ')}`)
    .option('--domain <domain>', 'operational domain')
    .option('--model <model>', 'model')
    .option('--profile <name>', 'profile')
    .option('--owner <owner>', 'owner')
    .option('--after <id>', 'continue after this id')
    .option('--limit <n>', 'at most this many (max 1000)', positiveInt, 100)
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        if (o.state && !DEVICE_STATES.includes(o.state)) throw new ProblemError('bad_request', `--state is one of ${DEVICE_STATES.join(', ')}`);
        const rows = await ctx.registry.listDevices({ state: o.state as DeviceState | undefined, domain: o.domain, model: o.model, profile: o.profile, owner: o.owner, afterId: o.after, limit: Math.min(o.limit, 1000) });
        if (o.json) return printJson(rows.map(deviceJson));
        printTable(rows.map((d: DeviceRecord) => [d.id, d.state, d.profile, d.domain ?? '-', d.model ?? '-', d.currentSerial ?? '-']), ['ID', 'STATE', 'PROFILE', 'DOMAIN', 'MODEL', 'CURRENT CERTIFICATE']);
      }),
    );

  withDir(device.command('show').description('show a device and its certificates').argument('<id>', 'device id'))
    .option('--json', 'print as JSON')
    .action(async (id: string, o) =>
      withContext(o.dir, async (ctx) => {
        const d = await ctx.registry.device(id);
        const certs = await ctx.store.listCertificates({ deviceId: id, limit: 1000 });
        const secret = await ctx.store.getEnrollmentSecret(id);
        const j = {
          ...deviceJson(d),
          secret: secret ? { createdAt: secret.createdAt.toISOString(), expiresAt: secret.expiresAt.toISOString(), used: !!secret.usedAt } : null,
          certificates: certs.map((c) => ({ serial: c.serial, status: c.status, revocationReason: c.revocation?.reason ?? null, notAfter: c.notAfter.toISOString(), current: c.serial === d.currentSerial })),
          events: (await ctx.lifecycle.history(id)).map(deviceEventJson),
        };
        if (o.json) return printJson(j);
        for (const [k, v] of Object.entries({ id: d.id, state: d.state, profile: d.profile, model: d.model, domain: d.domain, owner: d.owner, 'extra names': d.sans.join(', '), order: d.orderId, approval: d.requireApproval ? 'required' : 'no' })) {
          if (v) printLine(`${k.padEnd(14)} ${v}`);
        }
        if (j.secret) printLine(`${'secret'.padEnd(14)} ${j.secret.used ? 'used' : `unused, expires ${j.secret.expiresAt}`}`);
        for (const c of j.certificates) printLine(`${'certificate'.padEnd(14)} ${c.serial} ${c.status}${c.revocationReason ? ` (${c.revocationReason})` : ''} until ${c.notAfter}${c.current ? ' (current)' : ''}`);
        for (const e of j.events) printLine(`${'event'.padEnd(14)} ${e.at} ${e.kind} by ${e.actor} via ${e.source}: ${e.fromState} → ${e.toState}${e.reason ? `, ${e.reason}` : ''}${e.revokedSerials.length ? ` (revoked ${e.revokedSerials.join(', ')})` : ''}`);
      }),
    );

  const eventTable = REPORTABLE_EVENTS.map((k) => {
    const r = EVENT_RULES[k];
    return `  ${k.padEnd(15)} → ${r.reasons.map((x) => `${r.state(x)} (${x}${x === r.defaultReason && r.reasons.length > 1 ? ', default' : ''})`).join(' or ')}`;
  }).join('\n');
  withDir(device.command('event').description('report a lifecycle event: the device changes state and its certificates are revoked with the matching reason').argument('<id>', 'device id').argument('<event>', REPORTABLE_EVENTS.join(' | ')))
    .option('--reason <reason>', 'lost or stolen: certificateHold (default, can be released) or keyCompromise')
    .option('--invalidity-date <iso>', 'keyCompromise: when the key was (suspected to be) compromised (default for compromised: now)')
    .option('--replaced-by <id>', 'replaced: the device that replaces it')
    .option('--note <text>', 'a note for the history')
    .option('--json', 'print as JSON: {"device", "event"}, as the API answers')
    .addHelpText('after', `\nEvents, the state the device goes to and the revocation reason:\n${eventTable}\nEvery good certificate of the device is revoked; a certificate on hold becomes\nthe permanent reason. A retired device never enrolls again.`)
    .action(async (id: string, event: string, o) =>
      withContext(o.dir, async (ctx) => {
        const inv = o.invalidityDate !== undefined ? new Date(o.invalidityDate) : undefined;
        if (inv && isNaN(inv.getTime())) throw new ProblemError('bad_request', `--invalidity-date "${o.invalidityDate}" is not a date`);
        const r = await ctx.lifecycle.report({ deviceId: id, event, reason: o.reason, invalidityDate: inv, replacedBy: o.replacedBy, note: o.note, actor: cliActor(), source: 'cli' });
        if (o.json) return printJson({ device: deviceJson(r.device), event: deviceEventJson(r.event) });
        const revoked = r.event.revokedSerials;
        printLine(`device ${r.device.id} ${r.event.kind}: now ${r.device.state}${revoked.length ? `; revoked (${r.event.reason}) ${revoked.join(', ')}` : '; no certificate to revoke'}`);
      }),
    );

  withDir(device.command('transfer').description('transfer a device to a new owner or domain: its certificates are revoked (affiliationChanged) and it re-enrolls for the new owner').argument('<id>', 'device id'))
    .option('--owner <owner>', 'the new owner')
    .option('--domain <domain>', 'the new operational domain')
    .option('--profile <name>', 'a new certificate profile (default: the current one)')
    .option('--secret', 'print a one-time enrollment secret for the re-enrollment on stdout, alone on its line (shown once)')
    .option('--note <text>', 'a note for the history')
    .option('--json', 'print as JSON: {"device", "event", "secret"}, as the API answers')
    .addHelpText('after', '\nThe device starts over as registered: it re-enrolls over EST or CMP with a new\none-time secret (--secret), its manufacturer certificate, or after approval,\nas its registration says. Retired and revoked devices cannot be transferred.')
    .action(async (id: string, o) =>
      withContext(o.dir, async (ctx) => {
        const r = await ctx.lifecycle.transfer({ deviceId: id, owner: o.owner, domain: o.domain, profile: o.profile, secret: !!o.secret, note: o.note, actor: cliActor(), source: 'cli' });
        if (o.json) return printJson({ device: deviceJson(r.device), event: deviceEventJson(r.event), secret: r.secret ?? null });
        note(`device ${r.device.id} transferred (owner ${r.device.owner ?? '-'}, domain ${r.device.domain ?? '-'}); revoked ${r.event.revokedSerials.length ? r.event.revokedSerials.join(', ') : 'nothing'} (affiliationChanged)`);
        if (r.secret) {
          note(`one-time enrollment secret (valid ${ctx.config.registry.secretTtlHours} h, shown once):`);
          printLine(r.secret);
        }
      }),
    );

  withDir(device.command('set-state').description('change a device\'s lifecycle state (revocation of its certificates is separate: cert revoke)').argument('<id>', 'device id').argument('<state>', DEVICE_STATES.join(' | ')))
    .addHelpText('after', `\nAllowed changes (a device becomes active by enrolling):\n${lifecycleHelp()}\nrevoked → registered is a re-registration: the current certificate is unlinked\n(kept in the history), the unused secret and waiting enrollments are void.`)
    .action(async (id: string, state: string, o) =>
      withContext(o.dir, async (ctx) => {
        if (!DEVICE_STATES.includes(state as DeviceState)) throw new ProblemError('bad_request', `state is one of ${DEVICE_STATES.join(', ')}`);
        const d = await ctx.registry.setState(id, state as DeviceState, cliActor());
        note(`device ${d.id} is now ${d.state}`);
      }),
    );

  withDir(device.command('identities').description('a device\'s chain of identities: manufacturer certificate, the first certificate of each stage, the current one').argument('<id>', 'device id'))
    .option('--json', 'print as JSON, as GET /api/v1/devices/{id}/identities answers')
    .action(async (id: string, o) =>
      withContext(o.dir, async (ctx) => {
        const r = await ctx.supply.identities(id);
        const j = deviceIdentitiesJson(r);
        if (o.json) return printJson(j);
        printLine(`device ${j.device}, stage ${j.stage ?? '-'}, current certificate ${j.currentSerial ?? 'none'}`);
        printTable(j.identities.map((i) => [i.kind === 'manufacturer' ? 'manufacturer' : `stage ${i.stage ?? '-'}`, i.serial, i.notAfter.slice(0, 10), i.subject, i.current ? 'current' : '']), ['IDENTITY', 'SERIAL', 'NOT AFTER', 'SUBJECT', '']);
      }),
    );
}
