/**
 * `fleetpki agent`: the device agent as a command. `enroll` bootstraps once,
 * `run` is the daemon, `renew` and `refresh` do one step now, `status`
 * reports, `trust` edits the cross-organisation trust list. Settings given
 * here are saved in the state directory, so later commands need only --state.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Agent, lockStateDir, readStatus, type AgentStatus, type BootstrapCredential } from '../../agent/agent.js';
import type { AgentSettings, KeyStoreSettings } from '../../agent/state.js';
import { ProblemError } from '../../errors.js';
import { isKeyAlgorithm } from '../../x509/algorithms.js';
import { collect, note, printFacts, printJson, printTable, readUserFile } from '../output.js';

const STATE_HELP = 'agent state directory (default: $FLEETPKI_AGENT_STATE, then ./fleetpki-agent)';

const stateDir = (o: { state?: string }) => resolve(o.state ?? process.env.FLEETPKI_AGENT_STATE ?? './fleetpki-agent');

function number(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ProblemError('bad_request', `"${v}" is not a number`);
  return n;
}

/** Options that become settings (saved in agent.json). */
function settingsOptions(cmd: Command): Command {
  return cmd
    .option('--state <dir>', STATE_HELP)
    .option('--server <url>', 'EST server, https://host:port (saved)')
    .option('--ca-bundle <file>', "the fleet's root certificate(s), PEM: the trust anchor for the EST server and for peers (saved as trust.pem)")
    .option('--id <id>', 'device id, as registered (saved)')
    .option('--label <label>', 'EST label: /.well-known/est/<label>/... (saved)')
    .option('--key-algorithm <alg>', 'device key: ecdsa-p256 (default), ecdsa-p384, ed25519 (files only), rsa-2048, rsa-3072, rsa-4096 (saved)')
    .option('--key-store <type>', 'where the device key lives: file (default; gen/<n>/key.pem, mode 0600) or pkcs11 (generated inside a token, never leaves it) (saved)')
    .option('--pkcs11-module <path>', 'PKCS#11 module of the token, e.g. /usr/lib/softhsm/libsofthsm2.so (saved)')
    .option('--pkcs11-token <label>', 'label of the token that holds the device key (saved)')
    .option('--pkcs11-pin-env <var>', 'name of the environment variable that holds the user PIN (the name is saved, never the PIN)')
    .option('--pkcs11-pin-file <file>', 'file that holds the user PIN, instead of --pkcs11-pin-env (the path is saved)')
    .option('--pkcs11-engine <path>', "OpenSSL's pkcs11 engine, which node:tls uses to present a token key (default: Debian's libengine-pkcs11-openssl) (saved)")
    .option('--bootstrap-cert <file>', 'manufacturer certificate (IDevID): bootstrap and recovery after expiry (saved)')
    .option('--bootstrap-key <file>', 'its private key (saved)')
    .option('--no-recover', 'never re-bootstrap with the manufacturer certificate after expiry or refusal (saved)')
    .option('--renew-at <share>', 'renew at this share of the lifetime, default 0.667 (saved)', number)
    .option('--jitter <share>', 'move the renewal by up to ± this share of the lifetime, default 0.05 (saved)', number)
    .option('--keep-key', 'keep the key on renewal (default: a new key each time) (saved)')
    .option('--backoff-initial <s>', 'first retry after a failure, seconds, default 30; doubles up to --backoff-max (saved)', number)
    .option('--backoff-max <s>', 'longest wait between retries, seconds, default 3600 (saved)', number)
    .option('--refresh <s>', 'fetch CA certificates and CRLs every s seconds, default 900 (saved)', number)
    .option('--crl-url <url>', 'another CRL to keep fresh (repeatable; saved)', collect, undefined)
    .option('--require-crl <which>', 'which chain certificates a peer needs a CRL for: all (default), leaf, none (saved)')
    .option('--hook <command>', 'run after enrollment, renewal, a new CRL or new CA certificates, with FLEETPKI_AGENT_* variables (saved)')
    .option('--signal <name>', 'send this signal (e.g. SIGHUP) after those events to the process in --pid-file (saved)')
    .option('--pid-file <file>', 'pid file of the process to signal (saved)');
}

/** --key-store and the --pkcs11-* options; undefined when none is given (the saved key store stays). */
function keyStoreFrom(o: Record<string, unknown>): KeyStoreSettings | undefined {
  const p11 = ['pkcs11Module', 'pkcs11Token', 'pkcs11PinEnv', 'pkcs11PinFile', 'pkcs11Engine'].filter((k) => o[k] !== undefined);
  if (o.keyStore === undefined) {
    if (p11.length) throw new ProblemError('bad_request', '--pkcs11-* options need --key-store pkcs11');
    return undefined;
  }
  if (o.keyStore === 'file') {
    if (p11.length) throw new ProblemError('bad_request', '--pkcs11-* options need --key-store pkcs11');
    return { type: 'file' };
  }
  if (o.keyStore !== 'pkcs11') throw new ProblemError('bad_request', `--key-store is file or pkcs11, not "${String(o.keyStore)}"`);
  if (!o.pkcs11Module || !o.pkcs11Token) throw new ProblemError('bad_request', '--key-store pkcs11 needs --pkcs11-module and --pkcs11-token');
  if (!o.pkcs11PinEnv === !o.pkcs11PinFile) throw new ProblemError('bad_request', 'give the PIN source: exactly one of --pkcs11-pin-env VAR and --pkcs11-pin-file FILE');
  return {
    type: 'pkcs11',
    module: resolve(String(o.pkcs11Module)),
    token: String(o.pkcs11Token),
    ...(o.pkcs11PinEnv ? { pinEnv: String(o.pkcs11PinEnv) } : { pinFile: resolve(String(o.pkcs11PinFile)) }),
    ...(o.pkcs11Engine ? { engine: resolve(String(o.pkcs11Engine)) } : {}),
  };
}

function settingsFrom(o: Record<string, unknown>): Partial<AgentSettings> {
  const s: Partial<AgentSettings> = {};
  const keyStore = keyStoreFrom(o);
  if (keyStore) s.keyStore = keyStore;
  if (o.server) s.server = String(o.server);
  if (o.id) s.deviceId = String(o.id);
  if (o.label) s.label = String(o.label);
  if (o.keyAlgorithm) {
    if (!isKeyAlgorithm(String(o.keyAlgorithm))) throw new ProblemError('bad_request', `unknown key algorithm ${String(o.keyAlgorithm)}`);
    s.keyAlgorithm = o.keyAlgorithm as AgentSettings['keyAlgorithm'];
  }
  if (o.bootstrapCert || o.bootstrapKey) {
    if (!o.bootstrapCert || !o.bootstrapKey) throw new ProblemError('bad_request', '--bootstrap-cert and --bootstrap-key go together');
    s.manufacturer = { cert: resolve(String(o.bootstrapCert)), key: resolve(String(o.bootstrapKey)) };
  }
  if (o.recover === false) s.recoverWithManufacturer = false;
  if (o.renewAt !== undefined) s.renewAt = o.renewAt as number;
  if (o.jitter !== undefined) s.jitter = o.jitter as number;
  if (o.keepKey) s.newKeyOnRenewal = false;
  if (o.backoffInitial !== undefined || o.backoffMax !== undefined) s.backoff = { initialSeconds: (o.backoffInitial as number) ?? 30, maxSeconds: (o.backoffMax as number) ?? 3600 };
  if (o.refresh !== undefined) s.refreshSeconds = o.refresh as number;
  if (o.crlUrl) s.crlUrls = o.crlUrl as string[];
  if (o.requireCrl) s.requireCrl = o.requireCrl as AgentSettings['requireCrl'];
  if (o.hook || o.signal || o.pidFile) s.hooks = { command: o.hook as string | undefined, signal: o.signal as string | undefined, pidFile: o.pidFile ? resolve(String(o.pidFile)) : undefined };
  return s;
}

async function openAgent(o: Record<string, unknown>, log?: (l: string) => void): Promise<Agent> {
  const settings = settingsFrom(o);
  return Agent.open({
    dir: stateDir(o),
    settings,
    saveSettings: Object.keys(settings).length > 0,
    trustPem: o.caBundle ? readUserFile(String(o.caBundle), 'CA bundle').toString('utf8') : undefined,
    log,
  });
}

/** The first-enrollment credential: a secret from the environment or a file (never argv), or the manufacturer certificate. */
function credentialFrom(o: Record<string, unknown>, agent: Agent): BootstrapCredential | undefined {
  if (o.secretEnv) {
    const v = process.env[String(o.secretEnv)];
    if (!v) throw new ProblemError('bad_request', `the environment variable ${String(o.secretEnv)} is empty or unset`);
    return { secret: v.trim() };
  }
  if (o.secretFile) {
    const v = readUserFile(String(o.secretFile), 'secret file').toString('utf8').trim();
    if (!v) throw new ProblemError('bad_request', `${String(o.secretFile)} is empty`);
    return { secret: v };
  }
  if (agent.settings.manufacturer) return { manufacturer: true };
  return undefined;
}

const timestamp = () => new Date().toISOString();

export function registerAgent(program: Command): void {
  const agent = program
    .command('agent')
    .description('the device agent: enrollment, renewal, CA certificates and CRLs, hooks')
    .addHelpText('after', `
A device runs "fleetpki agent run" as a service. The first run (or
"fleetpki agent enroll") bootstraps the identity over EST, with a one-time
secret (--secret-env VAR or --secret-file FILE) or a manufacturer
certificate (--bootstrap-cert/--bootstrap-key). Settings are saved in the
state directory; later commands need only --state. See docs/agent.md.

With --key-store pkcs11 --pkcs11-module M --pkcs11-token LABEL
--pkcs11-pin-env VAR (or --pkcs11-pin-file FILE) the device key is
generated inside the token and never leaves it: the token signs the CSR,
and node:tls presents the key through OpenSSL's pkcs11 engine
(libengine-pkcs11-openssl). Consumers find its PKCS#11 URI in
current/key.uri. "run", "renew" and "enroll" need the PIN; "status" does
not. See docs/keys.md.`);

  settingsOptions(agent.command('enroll').description('bootstrap the device identity once (first enrollment)'))
    .option('--secret-env <var>', 'environment variable holding the one-time enrollment secret')
    .option('--secret-file <file>', 'file holding the one-time enrollment secret')
    .option('--force', 'enroll again although a valid certificate exists')
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      const unlock = await lockStateDir(stateDir(o));
      try {
        const a = await openAgent(o);
        const cred = credentialFrom(o, a);
        if (!cred) throw new ProblemError('bad_request', 'give --secret-env, --secret-file or --bootstrap-cert/--bootstrap-key');
        const r = await a.enroll(cred, { force: !!o.force });
        if (r.status === 'pending') {
          process.exitCode = 4;
          if (o.json) return printJson(r);
          return note(`enrollment of ${a.settings.deviceId} awaits approval by an ra-officer; run again in ${r.retryAfterSeconds} s (or run the daemon, which retries)`);
        }
        await a.refresh().catch((e) => note(`enrolled, but fetching CRLs failed: ${(e as ProblemError).detail ?? e}`));
        if (o.json) return printJson(a.status());
        printStatus(a.status());
      } finally {
        await unlock();
      }
    });

  settingsOptions(agent.command('run').description('run the agent: bootstrap if needed, renew, refresh CA certificates and CRLs, run hooks'))
    .option('--secret-env <var>', 'environment variable holding the one-time enrollment secret (first run only)')
    .option('--secret-file <file>', 'file holding the one-time enrollment secret (first run only)')
    .option('--once', 'do what is due now and exit')
    .addHelpText('after', `
Signals: SIGTERM/SIGINT stop; SIGHUP rereads the trust list and fetches
CA certificates and CRLs now. Logs go to stderr, one line per event.`)
    .action(async (o) => {
      const dir = stateDir(o);
      const unlock = await lockStateDir(dir);
      const ctl = new AbortController();
      try {
        const a = await openAgent(o, (l) => note(`${timestamp()} ${l}`));
        const cred = credentialFrom(o, a);
        if (!a.enrolled && !cred) throw new ProblemError('bad_request', `device ${a.settings.deviceId} is not enrolled: give --secret-env, --secret-file or --bootstrap-cert/--bootstrap-key`);
        note(`${timestamp()} fleetpki agent for ${a.settings.deviceId} on ${dir} (server ${a.settings.server})`);
        if (o.once) {
          await a.tick(cred);
          return printStatus(a.status());
        }
        const stop = (sig: string) => {
          note(`${timestamp()} ${sig}: stopping`);
          ctl.abort();
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
        process.on('SIGHUP', () => a.poke());
        await a.run(ctl.signal, cred);
      } finally {
        await unlock();
      }
    });

  agent
    .command('renew')
    .description('renew the certificate now (a new key unless --keep-key was set)')
    .option('--state <dir>', STATE_HELP)
    .option('--json', 'print the status as JSON')
    .action(async (o) => {
      const unlock = await lockStateDir(stateDir(o));
      try {
        const a = await Agent.open({ dir: stateDir(o) });
        await a.renew();
        await a.refresh().catch(() => undefined);
        if (o.json) return printJson(a.status());
        printStatus(a.status());
      } finally {
        await unlock();
      }
    });

  agent
    .command('refresh')
    .description('fetch the CA certificates and CRLs now')
    .option('--state <dir>', STATE_HELP)
    .option('--json', 'print the status as JSON')
    .action(async (o) => {
      const unlock = await lockStateDir(stateDir(o));
      try {
        // CA certificates and CRLs need no key: a token's PIN is not asked for.
        const a = await Agent.open({ dir: stateDir(o), inspect: true });
        const r = await a.refresh();
        if (o.json) return printJson({ ...r, status: a.status() });
        note(r.crls.length ? `new CRLs: ${r.crls.join(', ')}` : 'CRLs unchanged');
      } finally {
        await unlock();
      }
    });

  agent
    .command('status')
    .description('identity, expiry, next renewal, CRLs, last error')
    .option('--state <dir>', STATE_HELP)
    .option('--json', 'print as JSON')
    .action(async (o) => {
      const st = await readStatus(stateDir(o));
      if (o.json) return printJson(st);
      printStatus(st);
    });

  const trust = agent.command('trust').description("other organisations' roots, each scoped to the domains it may speak for");
  trust
    .command('add')
    .description("trust another organisation's CA for some domains")
    .requiredOption('--name <name>', 'a name for the entry')
    .requiredOption('--ca <file>', 'its root (or CA) certificate, PEM; add its issuing CAs to the same file so their CRLs can be checked')
    .requiredOption('--domains <list>', 'comma-separated domains its devices may speak for')
    .option('--crl-url <url>', "a CRL of its CAs, to keep fresh (repeatable)", collect, [])
    .option('--state <dir>', STATE_HELP)
    .action(async (o) => {
      const a = await Agent.open({ dir: stateDir(o), inspect: true });
      const e = await a.trustList.add(o.name, readUserFile(o.ca, 'CA certificate').toString('utf8'), String(o.domains).split(',').map((d: string) => d.trim()).filter(Boolean), o.crlUrl as string[]);
      const below = e.intermediates.length ? ` with ${e.intermediates.length} CA${e.intermediates.length > 1 ? 's' : ''} below it` : '';
      note(`trusting ${e.cert.subjectText}${below} for ${e.domains.join(', ')}; a running agent picks it up on its next refresh, or now on SIGHUP`);
    });
  trust
    .command('list')
    .description('list the trust list')
    .option('--state <dir>', STATE_HELP)
    .option('--json', 'print as JSON')
    .action(async (o) => {
      const a = await Agent.open({ dir: stateDir(o), inspect: true });
      const entries = (await a.trustList.entries()).map((e) => ({ name: e.name, subject: e.cert.subjectText, domains: e.domains, notAfter: e.cert.notAfter.toISOString(), fingerprintSha256: e.cert.fingerprintSha256, intermediates: e.intermediates.map((c) => c.subjectText), crlUrls: e.crlUrls }));
      if (o.json) return printJson(entries);
      printTable(entries.map((e) => [e.name, e.domains.join(','), e.notAfter.slice(0, 10), e.subject]), ['NAME', 'DOMAINS', 'EXPIRES', 'SUBJECT']);
    });
  trust
    .command('remove')
    .description('remove an entry')
    .argument('<name>', 'entry name')
    .option('--state <dir>', STATE_HELP)
    .action(async (name: string, o) => {
      const a = await Agent.open({ dir: stateDir(o), inspect: true });
      if (!(await a.trustList.remove(name))) throw new ProblemError('not_found', `no trust entry "${name}"`);
      note(`removed ${name}; a running agent drops it on its next refresh, or now on SIGHUP`);
    });
}

function printStatus(st: AgentStatus): void {
  const rows: string[][] = [
    ['device', st.deviceId],
    ['state', st.state],
    ['server', st.server],
  ];
  if (st.identity) {
    rows.push(['subject', st.identity.subject], ['domains', st.identity.domains.join(', ') || '(none)'], ['serial', st.identity.serial], ['issuer', st.identity.issuer]);
    rows.push(['expires', `${st.identity.notAfter} (${st.identity.daysLeft} days)`]);
  }
  if (st.nextRenewal) rows.push(['next renewal', `${st.nextRenewal}${st.renewal.failures ? ` (retry after ${st.renewal.failures} failure${st.renewal.failures > 1 ? 's' : ''})` : ''}`]);
  if (st.lastCrl) rows.push(['last CRL', `${st.lastCrl.url} #${st.lastCrl.number ?? '?'}, fetched ${st.lastCrl.fetchedAt}, next update ${st.lastCrl.nextUpdate ?? '-'}`]);
  const e = st.lastError;
  rows.push(['last error', e ? `${e.at} ${e.during}: ${e.code}${e.reason ? ` (${e.reason})` : ''}: ${e.detail}` : 'none']);
  rows.push(['certificate', st.files.cert], ['key', st.key?.store === 'pkcs11' ? `${st.key.ref} (in the token; URI in ${st.files.key})` : st.files.key]);
  printFacts(rows);
}
