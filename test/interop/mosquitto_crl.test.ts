/**
 * Revocation as an MQTT broker sees it: a real Mosquitto (Debian, 2.0) with
 * mutual TLS, `require_certificate` and a `crlfile`, its certificate and the
 * devices' issued by fleetpki. A device is revoked through fleetpki, the
 * server publishes the new CRL on its plain-HTTP listener, the CRL is
 * downloaded into the crlfile and the broker reloaded with SIGHUP (what a
 * deployment's cron job or CRL fetcher does): the device is refused from then
 * on, the others keep working, and a certificate from another CA never gets in.
 *
 * Mosquitto checks only the leaf issuer's CRL (X509_V_FLAG_CRL_CHECK, not
 * _ALL), so the crlfile holds the issuing CA's CRL alone.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { pemEncode } from '../../src/x509/pem.js';
import { makeDataDir, opensslCsr, run, tempDir, type TestDataDir } from '../helpers/data_dir.js';
import { shareWithBroker, startMosquitto, type RunningMosquitto } from '../helpers/mosquitto.js';

const TOPIC = 'fleet/test';

describe('Mosquitto with a fleetpki CA and CRL (mutual TLS, crlfile, SIGHUP reload)', () => {
  let d: TestDataDir;
  let server: RunningServer;
  let broker: RunningMosquitto;
  const work = tempDir('fleetpki-mosquitto-');
  const f = (n: string) => join(work, n);
  let issuingCa = '';
  const serials: Record<string, string> = {};
  let msgNo = 0;

  /** Downloads the issuing CA's CRL from the distribution point and replaces the crlfile (write + rename: the broker never reads half a file). */
  async function refreshCrlFile(): Promise<string> {
    const res = await fetch(`${server.httpUrl}/crl/${issuingCa}.crl`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/pkix-crl');
    const der = new Uint8Array(await res.arrayBuffer());
    writeFileSync(f('crl.pem.new'), pemEncode('X509 CRL', der));
    renameSync(f('crl.pem.new'), f('crl.pem'));
    shareWithBroker(work, [f('crl.pem')]);
    return (await run('openssl', ['crl', '-in', f('crl.pem'), '-noout', '-text'])).stdout;
  }

  async function issueDevice(name: string): Promise<void> {
    const { csrPem } = opensslCsr(work, name, { subj: `/CN=${name}/O=Test Fleet` });
    const r = await d.ctx.authority.issue({ csr: csrPem, profile: 'device-tls', actor: 'test' });
    writeFileSync(f(`${name}.pem`), r.pem);
    serials[name] = r.record.serial;
    issuingCa = r.record.issuerCa;
  }

  const tlsArgs = (name: string) => ['--cafile', f('root.pem'), '--cert', f(`${name}.pem`), '--key', f(`${name}.key`), '-h', '127.0.0.1', '-p', String(broker.port)];

  function publish(name: string, message: string) {
    return run('mosquitto_pub', [...tlsArgs(name), '-t', TOPIC, '-m', message, '-q', '1'], '', 10_000);
  }

  /**
   * Starts `mosquitto_sub -C 1` as `name` and resolves once the broker has
   * acknowledged the subscription (seen in the broker's log: the client's
   * stdout is block-buffered into a pipe); `received` then waits for the message.
   */
  async function subscribe(name: string): Promise<{ received: Promise<{ status: number | null; out: string }> }> {
    const clientId = `sub-${name}-${++msgNo}`;
    const p = spawn('mosquitto_sub', [...tlsArgs(name), '-i', clientId, '-t', TOPIC, '-C', '1', '-W', '10', '-q', '1']);
    let out = '';
    p.stdout.on('data', (b) => (out += b));
    p.stderr.on('data', (b) => (out += b));
    const received = new Promise<{ status: number | null; out: string }>((resolve) => p.on('close', (status) => resolve({ status, out })));
    const deadline = Date.now() + 10_000;
    while (!broker.log().includes(`Sending SUBACK to ${clientId}`)) {
      if (p.exitCode !== null || Date.now() > deadline) {
        p.kill();
        assert.fail(`mosquitto_sub as ${name} did not subscribe:\n${out}\n--- broker log ---\n${broker.log()}`);
      }
      await sleep(25);
    }
    return { received };
  }

  /**
   * Connects with openssl s_client as `name`; returns its output, which names
   * the TLS alert the broker sent. Under TLS 1.3 the alert follows the
   * client's Finished: -ign_eof keeps s_client reading until it arrives
   * (only for connections the broker refuses; the timeout bounds the rest).
   */
  async function tlsAlert(name: string): Promise<string> {
    const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${broker.port}`, '-cert', f(`${name}.pem`), '-key', f(`${name}.key`), '-CAfile', f('root.pem'), '-verify_return_error', '-ign_eof'], '', 10_000);
    return r.stderr + r.stdout;
  }

  /** A publishes, B (subscribed first) receives the exact message. */
  async function roundTrip(publisher: string, subscriber: string): Promise<void> {
    const sub = await subscribe(subscriber);
    const message = `hello from ${publisher} #${++msgNo}`;
    const pub = await publish(publisher, message);
    assert.equal(pub.status, 0, `${publisher} could not publish: ${pub.stdout}${pub.stderr}\n--- broker log ---\n${broker.log()}`);
    const got = await sub.received;
    assert.equal(got.status, 0, got.out);
    assert.ok(got.out.split('\n').includes(message), `${subscriber} did not receive "${message}":\n${got.out}`);
  }

  before(async () => {
    d = await makeDataDir();
    server = await startServer(d.ctx, { listen: '127.0.0.1:0', httpListen: '127.0.0.1:0' });

    // The broker: server-tls, key and CSR made by openssl.
    const { csrPem } = opensslCsr(work, 'broker', { subj: '/CN=localhost', san: 'IP:127.0.0.1,DNS:localhost' });
    const b = await d.ctx.authority.issue({
      csr: csrPem,
      profile: 'server-tls',
      sans: [{ type: 'ip', value: '127.0.0.1' }, { type: 'dns', value: 'localhost' }],
      actor: 'test',
    });
    assert.ok(b.chain.length >= 2, 'issuing CA + root');
    const issuingPem = pemEncode('CERTIFICATE', b.chain[0]);
    const rootPem = pemEncode('CERTIFICATE', b.chain[b.chain.length - 1]);
    writeFileSync(f('root.pem'), rootPem);
    // Clients send only their leaf: the broker needs the issuing CA too.
    writeFileSync(f('ca-bundle.pem'), rootPem + issuingPem);
    // The broker presents its chain, so clients trust the root alone.
    writeFileSync(f('broker-chain.pem'), b.pem + b.chain.slice(0, -1).map((c) => pemEncode('CERTIFICATE', c)).join(''));

    await issueDevice('device-a');
    await issueDevice('device-b');

    // A would-be device-b from a CA the broker does not trust.
    const other = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('other-ca.key'), '-out', f('other-ca.pem'), '-subj', '/CN=Other CA', '-days', '2',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    assert.equal(other.status, 0, other.stderr);
    opensslCsr(work, 'intruder', { subj: '/CN=device-b/O=Test Fleet' });
    writeFileSync(f('intruder.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
    const leaf = await run('openssl', ['x509', '-req', '-in', f('intruder.csr'), '-CA', f('other-ca.pem'), '-CAkey', f('other-ca.key'), '-CAcreateserial', '-days', '1', '-extfile', f('intruder.ext'), '-out', f('intruder.pem')]);
    assert.equal(leaf.status, 0, leaf.stderr);

    const crlText = await refreshCrlFile();
    assert.doesNotMatch(crlText, /Serial Number:/, 'no revocations yet');
    broker = await startMosquitto(work, { cafile: f('ca-bundle.pem'), certfile: f('broker-chain.pem'), keyfile: f('broker.key'), crlfile: f('crl.pem') });
  });

  after(async () => {
    await broker?.stop();
    await server?.close();
    await d?.cleanup();
    await run('rm', ['-rf', work]);
  });

  it('devices A and B connect with their fleetpki certificates, publish and receive', async () => {
    await roundTrip('device-a', 'device-b');
    await roundTrip('device-b', 'device-a');
    // use_identity_as_username: the certificate's CN is the MQTT user name.
    assert.match(broker.log(), /New client connected from 127\.0\.0\.1:\d+ as \S+ \([^)]*\bu'device-a'\)/);
    assert.match(broker.log(), /\bu'device-b'\)/);
    // Started as root, the broker runs as `mosquitto` and read its files as that user.
    if (process.getuid?.() === 0) assert.equal((await run('ps', ['-o', 'user=', '-p', String(broker.pid)])).stdout.trim(), 'mosquitto');
  });

  it('after device A is revoked and the new CRL is loaded (SIGHUP), A is refused and B still works', async () => {
    await d.ctx.authority.revoke(serials['device-a'], 'keyCompromise', 'test');
    const published = await server.publishCrls();
    assert.ok(published.some((p) => p.startsWith(`${issuingCa}:base:`)), `a new base CRL: ${published.join(', ')}`);
    const crlText = await refreshCrlFile();
    assert.match(crlText, new RegExp(`Serial Number: ${serials['device-a'].toUpperCase()}[\\s\\S]*?Key Compromise`));
    assert.doesNotMatch(crlText, new RegExp(serials['device-b'].toUpperCase()));

    const from = broker.log().length;
    broker.reload();
    // The reload is asynchronous (the signal sets a flag the main loop acts
    // on): retry, bounded. Under TLS 1.3 the client finishes its handshake
    // before the broker checks its certificate, so mosquitto_pub sees a lost
    // connection (status 7), not a handshake error.
    let refused: Awaited<ReturnType<typeof publish>> | undefined;
    for (let i = 0; i < 40 && !refused; i++) {
      const r = await publish('device-a', `revoked? #${++msgNo}`);
      if (r.status !== 0) refused = r;
      else await sleep(250);
    }
    let log = broker.log().slice(from);
    assert.ok(refused, `device-a was still accepted after the reload:\n${log}`);
    log = await broker.waitForLog(/certificate verify failed/, from);
    assert.match(log, /Reloading config/, log);
    // A crlfile the broker cannot read after dropping privileges is logged and the old CRL stays in force: make sure that did not happen.
    assert.doesNotMatch(log, /Unable to load certificate revocation file|Error when reloading/, log);
    assert.match(log, /OpenSSL Error\[0\]: .*certificate verify failed/, `the broker logs the refusal:\n${log}`);
    const firstRefusal = log.search(/certificate verify failed/);
    assert.doesNotMatch(log.slice(firstRefusal), /\bu'device-a'\)/, 'no session as device-a once the new CRL is in force');

    // Mosquitto's log does not say why verification failed; the TLS alert it
    // sends does: certificate_revoked (44), i.e. the CRL entry, not a chain problem.
    const alert = await tlsAlert('device-a');
    assert.match(alert, /alert certificate revoked|alert number 44/, alert);

    // Again, to be sure it is the certificate and not a transient failure.
    const again = await publish('device-a', 'still revoked');
    assert.notEqual(again.status, 0, again.stdout + again.stderr);
    await roundTrip('device-b', 'device-b');
  });

  it('a certificate from another CA is refused, even with a fleet device name', async () => {
    const from = broker.log().length;
    const r = await publish('intruder', 'let me in');
    assert.notEqual(r.status, 0, r.stdout + r.stderr);
    const log = await broker.waitForLog(/certificate verify failed/, from);
    assert.match(log, /certificate verify failed/, log);
    assert.doesNotMatch(log, /New client connected/, log);
    const alert = await tlsAlert('intruder');
    assert.match(alert, /alert unknown ca|alert number 48/, alert);
  });
});
