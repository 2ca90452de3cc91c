/**
 * The CMP server (RFC 9483) with the real `openssl cmp` client (OpenSSL 3.0)
 * against a running server: ir with a one-time secret, ir and cr with a
 * manufacturer certificate, p10cr, kur with the current certificate, rr
 * (then `openssl ocsp` says revoked), genm; implicitConfirm, a rejecting
 * certConf, no certConf at all, polling while approval waits, labels, the
 * HTTPS listener; a wrong secret, tampered protection and a replay refused
 * with the right failure bits and nothing issued. Then docs/cmp.md, run as
 * it is written.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { id_it } from '../../src/asn1/cmp_oids.js';
import type { KyselyStore } from '../../src/store/kysely_store.js';
import { answerOf, newKey, opensslCmp } from '../helpers/cmp.js';
import { BIN, REPO } from '../helpers/data_dir.js';
import {
  auditHead,
  auditSince,
  certCount,
  certOfPem,
  makeManufacturer,
  OffsetClock,
  openssl,
  registerDevice,
  registrySubject,
  run,
  spkiOf,
  startEstEnv,
  verifyClientCert,
  type EstEnv,
} from '../helpers/est.js';

const ORG = 'Cmp Fleet';
const clock = new OffsetClock(0);
let env: EstEnv;
let mfr: Awaited<ReturnType<typeof makeManufacturer>>;

before(async () => {
  env = await startEstEnv({
    org: ORG,
    clock,
    config: (c) => {
      c.est.retryAfterSeconds = 1;
      c.cmp.labels = { line2: { ca: 'issuing-2' } };
    },
    setup: async (ctx) => {
      await ctx.authority.createIssuingCa({ name: 'issuing-2', parent: 'root', subject: [{ type: 'O', value: ORG }, { type: 'CN', value: 'Line 2 Issuing CA' }], keyAlgorithm: 'ecdsa-p256', validityDays: 1000, actor: 'test' });
    },
  });
  mfr = await makeManufacturer(env, 'Maker');
  await env.ctx.registry.addManufacturerCa(readFileSync(mfr.rootPem, 'utf8'), 'test');
});

after(async () => {
  await env?.close();
});

const trusted = () => ['-trusted', env.rootPem];

/** Enrolls `id` with its one-time secret over ir; returns the certificate and key files. */
async function enrollWithSecret(id: string, extra: string[] = []): Promise<{ cert: string; key: string; serial: string }> {
  const secret = await registerDevice(env.ctx, { id });
  const key = await newKey(env, id);
  const cert = env.file(`${id}.pem`);
  const r = await opensslCmp(env, ['-cmd', 'ir', '-ref', id, '-secret', `pass:${secret}`, '-newkey', key, '-subject', `/CN=${id}`, '-certout', cert, ...extra]);
  assert.equal(r.status, 0, r.out);
  return { cert, key, serial: certOfPem(readFileSync(cert, 'utf8')).serial };
}

/**
 * Runs a request that must be refused: openssl fails, its answer is an
 * error message with `bits`, nothing is issued, and the refusal is audited.
 */
async function refused(args: string[], bits: string[], o: { audit?: string; https?: boolean } = {}): Promise<ReturnType<typeof answerOf>> {
  const rsp = env.file(`refused-${Math.random().toString(36).slice(2)}.der`);
  const before = await certCount(env.ctx);
  const seq = await auditHead(env.ctx);
  const r = await opensslCmp(env, [...args, '-rspout', rsp], o);
  assert.notEqual(r.status, 0, `openssl cmp should fail: ${r.out}`);
  const a = answerOf(rsp);
  assert.equal(a.body, 'error', r.out);
  assert.equal(a.status, 2, 'rejection');
  assert.deepEqual(a.failInfo, bits, a.text);
  assert.match(r.out, new RegExp(`PKIFailureInfo: ${bits[0]}`), 'openssl shows the failure');
  assert.equal(await certCount(env.ctx), before, 'nothing issued');
  const audits = await auditSince(env.ctx, seq, o.audit ?? 'enrollment.refuse');
  assert.equal(audits.length, 1, `one ${o.audit ?? 'enrollment.refuse'} audit entry`);
  return a;
}

describe('CMP with openssl cmp', () => {
  let current: { cert: string; key: string; serial: string };

  it('ok-ir-with-one-time-secret: registry names, root in caPubs, chain saved, certConf sent, device active', async () => {
    const secret = await registerDevice(env.ctx, { id: 'cmp-1', domain: 'plant-a', sans: ['dns:cmp-1.plant-a.example'] });
    const key = await newKey(env, 'cmp-1');
    const out = (n: string) => env.file(`cmp-1.${n}`);
    const seq = await auditHead(env.ctx);
    const r = await opensslCmp(env, [
      '-cmd', 'ir', '-ref', 'cmp-1', '-secret', `pass:${secret}`, '-newkey', key, '-subject', '/CN=whatever',
      '-certout', out('pem'), '-chainout', out('chain.pem'), '-cacertsout', out('cacerts.pem'), '-reqout', `${out('ir.der')},${out('certconf.der')}`, '-rspout', `${out('ip.der')},${out('pkiconf.der')}`,
    ]);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /sending CERTCONF[\s\S]*received PKICONF/);
    const cert = certOfPem(readFileSync(out('pem'), 'utf8'));
    assert.deepEqual(cert.subject, registrySubject(ORG, 'cmp-1'));
    assert.deepEqual(cert.sans, [
      { type: 'uri', value: 'urn:fleetpki:domain:plant-a' },
      { type: 'dns', value: 'cmp-1.plant-a.example' },
    ]);
    assert.equal(await spkiOf(out('pem'), 'cert'), await spkiOf(key, 'key'));
    await verifyClientCert(env, readFileSync(out('pem'), 'utf8'));
    // The client can check the chain with what the MAC-protected answer gave it.
    const v = await openssl(['verify', '-CAfile', out('cacerts.pem'), '-untrusted', out('chain.pem'), out('pem')]);
    assert.equal(v.status, 0, v.stdout + v.stderr);
    assert.equal(certOfPem(readFileSync(out('cacerts.pem'), 'utf8')).subjectText, `O=${ORG}, CN=${ORG} Root CA`);
    const d = await env.ctx.registry.device('cmp-1');
    assert.deepEqual([d.state, d.currentSerial], ['active', cert.serial]);
    assert.ok((await env.ctx.store.getEnrollmentSecret('cmp-1'))?.usedAt, 'the secret is spent');
    const issue = await auditSince(env.ctx, seq, 'certificate.issue');
    assert.deepEqual([issue.length, issue[0].details.via, issue[0].details.method], [1, 'cmp', 'secret']);
    const tx = await env.ctx.store.getCmpTransaction(answerOf(out('ip.der')).msg.transactionId!);
    assert.deepEqual([tx?.state, tx?.outcome, tx?.sealedSecret], ['closed', 'accepted', undefined], 'closed and the secret copy wiped');
    current = { cert: out('pem'), key, serial: cert.serial };
  });

  it('ok-kur-with-the-current-certificate: new key, new serial, now current', async () => {
    const key = await newKey(env, 'cmp-1-new');
    const cert = env.file('cmp-1-new.pem');
    const r = await opensslCmp(env, ['-cmd', 'kur', ...trusted(), '-cert', current.cert, '-key', current.key, '-newkey', key, '-certout', cert]);
    assert.equal(r.status, 0, r.out);
    const info = certOfPem(readFileSync(cert, 'utf8'));
    assert.notEqual(info.serial, current.serial);
    assert.deepEqual(info.subject, registrySubject(ORG, 'cmp-1'));
    assert.equal(await spkiOf(cert, 'cert'), await spkiOf(key, 'key'));
    assert.equal((await env.ctx.registry.device('cmp-1')).currentSerial, info.serial);
    assert.equal((await env.ctx.store.getCertificate(current.serial))?.status, 'good', 'the old certificate is not revoked');
    const old = current;
    current = { cert, key, serial: info.serial };
    // Only the current certificate renews.
    const again = await newKey(env);
    const a = await refused(['-cmd', 'kur', ...trusted(), '-cert', old.cert, '-key', old.key, '-newkey', again, '-certout', env.file('x.pem')], ['notAuthorized']);
    assert.match(a.text, /not the current certificate/);
  });

  it('ok-genm: caCerts (issuing CA and root), certReqTemplate for the device, currentCRL, rootCaKeyUpdate without value', async () => {
    const ask = async (infotype: string) => {
      const rsp = env.file(`genp-${infotype}.der`);
      const r = await opensslCmp(env, ['-cmd', 'genm', '-infotype', infotype, ...trusted(), '-cert', current.cert, '-key', current.key, '-rspout', rsp]);
      assert.equal(r.status, 0, r.out);
      assert.match(r.out, new RegExp(`genp contains ITAV of type: id-it-${infotype === 'rootCaKeyUpdate' ? 'rootCaKeyUpdate' : infotype}`));
      const [itav] = answerOf(rsp).msg.msg.body.genp!;
      return itav;
    };
    const ca = await ask('caCerts');
    assert.equal(ca.infoType, id_it.caCerts);
    const chain = await env.ctx.authority.chain('issuing');
    const p = await openssl(['asn1parse', '-inform', 'DER', '-in', env.file('genp-caCerts.der')]);
    for (const c of chain) assert.ok(Buffer.from(readFileSync(env.file('genp-caCerts.der'))).includes(Buffer.from(c)), 'each CA certificate is in the genp');
    assert.match(p.stdout, /Cmp Fleet Root CA/);
    const t = await ask('certReqTemplate');
    assert.ok(t.infoValue && Buffer.from(t.infoValue).includes(Buffer.from('cmp-1')), 'the template names the device');
    const crl = await ask('currentCRL');
    assert.deepEqual(Buffer.from(crl.infoValue!), Buffer.from((await env.ctx.store.getLatestCrl('issuing', 0, 'base'))!.der));
    const root = await ask('rootCaKeyUpdate');
    assert.equal(root.infoValue, undefined, 'no root CA key update on offer');
  });

  it('ok-rr-signed-with-the-certificate: rp accepted, then openssl ocsp says revoked (keyCompromise)', async () => {
    const seq = await auditHead(env.ctx);
    const r = await opensslCmp(env, ['-cmd', 'rr', ...trusted(), '-cert', current.cert, '-key', current.key, '-oldcert', current.cert, '-revreason', '1']);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /revocation accepted/);
    const rec = await env.ctx.store.getCertificate(current.serial);
    assert.deepEqual([rec?.status, rec?.revocation?.reason], ['revoked', 'keyCompromise']);
    assert.equal((await auditSince(env.ctx, seq, 'certificate.revoke'))[0].actor, 'device:cmp-1');
    const o = await openssl(['ocsp', '-url', `${env.server.httpUrl}/ocsp`, '-CAfile', env.rootPem, '-issuer', env.issuingPem, '-cert', current.cert]);
    assert.match(o.stdout + o.stderr, /Response verify OK/);
    assert.match(o.stdout, /: revoked/);
    assert.match(o.stdout, /Reason: keyCompromise/);
    // Revoking it again: certRevoked.
    await refused(['-cmd', 'rr', ...trusted(), '-cert', current.cert, '-key', current.key, '-oldcert', current.cert, '-revreason', '1'], ['certRevoked'], { audit: 'revocation.refuse' });
  });

  it('ok-ir-and-cr-with-a-manufacturer-certificate (bootstrap): names from the registry', async () => {
    for (const [cmd, id] of [['ir', 'SN-CMP-1'], ['cr', 'SN-CMP-2']]) {
      await registerDevice(env.ctx, { id }, false);
      const idev = await mfr.idevid(id);
      const key = await newKey(env, id);
      const cert = env.file(`${id}.ldevid.pem`);
      const r = await opensslCmp(env, ['-cmd', cmd, ...trusted(), '-cert', idev.cert, '-key', idev.key, '-newkey', key, '-subject', `/CN=${id}`, '-certout', cert]);
      assert.equal(r.status, 0, `${cmd}: ${r.out}`);
      const info = certOfPem(readFileSync(cert, 'utf8'));
      assert.deepEqual(info.subject, registrySubject(ORG, id));
      assert.equal((await env.ctx.registry.device(id)).currentSerial, info.serial);
    }
  });

  it('fail-manufacturer-certificate-of-an-unregistered-device → notAuthorized', async () => {
    const idev = await mfr.idevid('SN-NOBODY');
    const a = await refused(['-cmd', 'ir', ...trusted(), '-cert', idev.cert, '-key', idev.key, '-newkey', await newKey(env), '-subject', '/CN=x', '-certout', env.file('x.pem')], ['notAuthorized']);
    assert.match(a.text, /not registered/);
  });

  it('fail-certificate-from-an-untrusted-manufacturer → signerNotTrusted', async () => {
    const rogue = await makeManufacturer(env, 'Rogue');
    const idev = await rogue.idevid('SN-CMP-1');
    const a = await refused(['-cmd', 'ir', ...trusted(), '-cert', idev.cert, '-key', idev.key, '-newkey', await newKey(env), '-subject', '/CN=x', '-certout', env.file('x.pem')], ['signerNotTrusted']);
    assert.match(a.text, /does not chain to a trusted CA/);
  });

  it('ok-p10cr-with-secret-and-implicitConfirm: certReqId -1, no certConf', async () => {
    const secret = await registerDevice(env.ctx, { id: 'cmp-p10' });
    const key = await newKey(env, 'cmp-p10');
    const csr = env.file('cmp-p10.csr');
    await openssl(['req', '-new', '-key', key, '-subj', '/CN=cmp-p10', '-out', csr]);
    const rsp = env.file('cmp-p10.cp.der');
    const r = await opensslCmp(env, ['-cmd', 'p10cr', '-ref', 'cmp-p10', '-secret', `pass:${secret}`, '-csr', csr, '-implicit_confirm', '-certout', env.file('cmp-p10.pem'), '-rspout', rsp]);
    assert.equal(r.status, 0, r.out);
    assert.doesNotMatch(r.out, /CERTCONF/);
    const a = answerOf(rsp);
    assert.equal(a.msg.msg.body.cp!.response[0].certReqId, -1);
    assert.ok((a.msg.msg.header.generalInfo ?? []).some((i) => i.infoType === id_it.implicitConfirm), 'implicitConfirm granted');
    assert.deepEqual(certOfPem(readFileSync(env.file('cmp-p10.pem'), 'utf8')).subject, registrySubject(ORG, 'cmp-p10'));
  });

  it('fail-wrong-secret → badMessageCheck, the secret stays usable', async () => {
    const secret = await registerDevice(env.ctx, { id: 'cmp-wrong' });
    const args = ['-cmd', 'ir', ...trusted(), '-ref', 'cmp-wrong', '-newkey', await newKey(env), '-subject', '/CN=cmp-wrong', '-certout', env.file('x.pem')];
    const a = await refused([...args, '-secret', `pass:${secret}x`], ['badMessageCheck']);
    assert.match(a.text, /unknown device or wrong, used or expired enrollment secret/);
    // An unknown device gets the very same answer.
    const b = await refused([...args.map((x) => (x === 'cmp-wrong' ? 'nobody-here' : x)), '-secret', `pass:${secret}`], ['badMessageCheck']);
    assert.equal(b.text, a.text);
    assert.equal((await env.ctx.store.getEnrollmentSecret('cmp-wrong'))?.usedAt, undefined);
  });

  it('fail-tampered-protection → badMessageCheck; the untampered request is then accepted', async () => {
    const secret = await registerDevice(env.ctx, { id: 'cmp-tamper' });
    const req = env.file('tamper.der');
    const base = ['-cmd', 'ir', ...trusted(), '-ref', 'cmp-tamper', '-secret', `pass:${secret}`, '-newkey', await newKey(env), '-subject', '/CN=cmp-tamper', '-certout', env.file('tamper.pem')];
    // -rspin with an empty file: openssl writes the request and sends nothing.
    writeFileSync(env.file('empty.der'), '');
    await opensslCmp(env, [...base, '-reqout', req, '-rspin', env.file('empty.der')]);
    const bad = Buffer.from(readFileSync(req));
    bad[bad.length - 1] ^= 0x01; // the last octet of the protection
    writeFileSync(env.file('tamper-bad.der'), bad);
    await refused([...base, '-reqin', env.file('tamper-bad.der')], ['badMessageCheck']);
    const ok = await opensslCmp(env, [...base, '-reqin', req]);
    assert.equal(ok.status, 0, ok.out);
  });

  it('fail-replayed-transaction (the same ir again) → transactionIdInUse', async () => {
    const secret = await registerDevice(env.ctx, { id: 'cmp-replay' });
    const req = env.file('replay-ir.der');
    const base = ['-cmd', 'ir', ...trusted(), '-ref', 'cmp-replay', '-secret', `pass:${secret}`, '-newkey', await newKey(env), '-subject', '/CN=cmp-replay', '-certout', env.file('replay.pem')];
    const first = await opensslCmp(env, [...base, '-reqout', `${req},${env.file('replay-cc.der')}`]);
    assert.equal(first.status, 0, first.out);
    const a = await refused([...base, '-reqin', req], ['transactionIdInUse'], { audit: 'enrollment.refuse' });
    assert.match(a.text, /in use/);
    // The certConf of the finished transaction, replayed: its nonce is spent.
    const c = await refused([...base, '-reqin', env.file('replay-cc.der')], ['badRequest']);
    assert.match(c.text, /closed/);
  });

  it('ok-client-rejects-the-certificate (-out_trusted another root): it is revoked, the device has no certificate again', async () => {
    const secret = await registerDevice(env.ctx, { id: 'cmp-reject' });
    const rsp = env.file('reject-ip.der');
    const r = await opensslCmp(env, ['-cmd', 'ir', '-ref', 'cmp-reject', '-secret', `pass:${secret}`, '-newkey', await newKey(env), '-subject', '/CN=cmp-reject', '-out_trusted', mfr.rootPem, '-certout', env.file('reject.pem'), '-rspout', rsp]);
    assert.notEqual(r.status, 0);
    assert.match(r.out, /sending CERTCONF[\s\S]*received PKICONF[\s\S]*did not accept/);
    const cert = answerOf(rsp).msg.msg.body.ip!.response[0].certifiedKeyPair!.certOrEncCert.certificate!;
    const serial = Buffer.from(cert.tbsCertificate.serialNumber).toString('hex');
    const rec = await env.ctx.store.getCertificate(serial);
    assert.deepEqual([rec?.status, rec?.revocation?.reason], ['revoked', 'cessationOfOperation'], 'committed, then revoked');
    const d = await env.ctx.registry.device('cmp-reject');
    assert.deepEqual([d.state, d.currentSerial], ['registered', undefined]);
  });

  it('ok-no-certConf-within-confirmWaitSeconds: the sweep revokes it and the previous certificate is current again', async () => {
    const first = await enrollWithSecret('cmp-silent');
    const next = env.file('silent-2.pem');
    // -disable_confirm: openssl sends no certConf at all.
    const r = await opensslCmp(env, ['-cmd', 'kur', ...trusted(), '-cert', first.cert, '-key', first.key, '-newkey', await newKey(env), '-disable_confirm', '-certout', next]);
    assert.equal(r.status, 0, r.out);
    const serial = certOfPem(readFileSync(next, 'utf8')).serial;
    assert.equal((await env.ctx.registry.device('cmp-silent')).currentSerial, serial);
    assert.deepEqual(await env.server.sweepCmp().then((s) => s.abandoned), 0, 'not before the deadline');
    clock.offsetMs = (env.ctx.config.cmp.confirmWaitSeconds + 5) * 1000;
    try {
      const s = await env.server.sweepCmp();
      assert.ok(s.abandoned >= 1);
    } finally {
      clock.offsetMs = 0;
    }
    assert.equal((await env.ctx.store.getCertificate(serial))?.status, 'revoked');
    assert.equal((await env.ctx.registry.device('cmp-silent')).currentSerial, first.serial, 'the previous certificate is current again');
    // ... so the device can update its key again.
    const again = await opensslCmp(env, ['-cmd', 'kur', ...trusted(), '-cert', first.cert, '-key', first.key, '-newkey', await newKey(env), '-implicit_confirm', '-certout', env.file('silent-3.pem')]);
    assert.equal(again.status, 0, again.out);
  });

  it('ok-approval: ip waiting, openssl polls, an ra-officer approves, the certificate arrives', async () => {
    const secret = await registerDevice(env.ctx, { id: 'cmp-wait', requireApproval: true });
    const cert = env.file('wait.pem');
    const client = opensslCmp(env, ['-cmd', 'ir', '-ref', 'cmp-wait', '-secret', `pass:${secret}`, '-newkey', await newKey(env), '-subject', '/CN=cmp-wait', '-certout', cert]);
    let pending;
    for (let i = 0; i < 100 && !pending; i++) {
      pending = (await env.ctx.registry.listPending('pending')).find((p) => p.deviceId === 'cmp-wait');
      if (!pending) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(pending, 'the enrollment waits');
    // Approve only once a pollReq was answered with a pollRep (the transaction moved on).
    const db = (env.ctx.store as KyselyStore).db;
    for (let i = 0; i < 200; i++) {
      const row = await db.selectFrom('cmp_transactions').select(['created_at', 'updated_at']).where('device_id', '=', 'cmp-wait').where('state', '=', 'waiting').executeTakeFirst();
      if (row && Number(row.updated_at) > Number(row.created_at)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await env.ctx.registry.decide(pending.id, true, 'token:officer');
    const r = await client;
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /received POLLREP[\s\S]*received IP[\s\S]*received PKICONF/);
    assert.deepEqual(certOfPem(readFileSync(cert, 'utf8')).subject, registrySubject(ORG, 'cmp-wait'));
  });

  it('ok-label /.well-known/cmp/p/line2 issues from its CA; an unknown label is 404', async () => {
    const secret = await registerDevice(env.ctx, { id: 'cmp-line2' });
    const cert = env.file('line2.pem');
    const r = await opensslCmp(env, ['-cmd', 'ir', '-ref', 'cmp-line2', '-secret', `pass:${secret}`, '-newkey', await newKey(env), '-subject', '/CN=cmp-line2', '-certout', cert], { label: 'line2' });
    assert.equal(r.status, 0, r.out);
    assert.equal(certOfPem(readFileSync(cert, 'utf8')).issuerText, `O=${ORG}, CN=Line 2 Issuing CA`);
    const nope = await opensslCmp(env, ['-cmd', 'genm', '-infotype', 'caCerts', '-unprotected_requests', '-ref', 'anyone', ...trusted()], { label: 'nope' });
    assert.notEqual(nope.status, 0);
    assert.match(nope.out, /404/);
  });

  it('ok-https-listener: the same ir over TLS', async () => {
    const secret = await registerDevice(env.ctx, { id: 'cmp-tls' });
    const cert = env.file('tls.pem');
    const r = await opensslCmp(env, ['-cmd', 'ir', '-tls_used', '-tls_trusted', env.rootPem, '-tls_host', '127.0.0.1', '-ref', 'cmp-tls', '-secret', `pass:${secret}`, '-newkey', await newKey(env), '-subject', '/CN=cmp-tls', '-certout', cert], { https: true });
    assert.equal(r.status, 0, r.out);
    assert.deepEqual(certOfPem(readFileSync(cert, 'utf8')).subject, registrySubject(ORG, 'cmp-tls'));
  });
});

/**
 * docs/cmp.md as a reader pastes it: every ```sh block, in order, in one
 * shell, with `fleetpki` on the PATH and the default listener addresses
 * pointing at this server.
 */
describe('docs/cmp.md', () => {
  it('ok-every-sh-block-runs-as-written', async () => {
    const doc = readFileSync(join(REPO, 'docs', 'cmp.md'), 'utf8');
    const blocks = [...doc.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
    assert.ok(blocks.length >= 6, 'the page has its examples');
    const host = (u: string) => u.replace(/^https?:\/\//, '');
    const script = blocks
      .join('\n')
      .replaceAll('127.0.0.1:8080', host(env.server.httpUrl))
      .replaceAll('127.0.0.1:8443', host(env.server.httpsUrl));
    const cwd = env.file('docs-run');
    const bin = join(cwd, 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'fleetpki'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`, { mode: 0o755 });
    // A manufacturer's CA and an IDevID for SN-4711, as section 2 assumes.
    const maker = await makeManufacturer(env, 'DocMaker');
    const idev = await maker.idevid('SN-4711');
    writeFileSync(join(cwd, 'mfr-root.pem'), readFileSync(maker.rootPem));
    writeFileSync(join(cwd, 'idevid.pem'), readFileSync(idev.cert));
    writeFileSync(join(cwd, 'idevid.key'), readFileSync(idev.key));
    writeFileSync(join(cwd, 'doc.sh'), `set -eu\ncd "${cwd}"\nexport PATH="${bin}:$PATH"\n${script.replaceAll('export FLEETPKI_DIR=$PWD/fleetpki-data', `export FLEETPKI_DIR="${env.dir}"`)}`);
    const r = await run('sh', [join(cwd, 'doc.sh')], '', 120_000);
    assert.equal(r.status, 0, `docs/cmp.md failed:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /sensor\.pem: OK/);
    assert.match(r.stdout, /sensor-new\.pem: revoked/);
    const ldevid = certOfPem(readFileSync(join(cwd, 'ldevid.pem'), 'utf8'));
    assert.deepEqual(ldevid.subject, registrySubject(ORG, 'SN-4711'));
    assert.equal((await env.ctx.registry.device('sensor-0001')).state, 'active');
    assert.equal((await env.ctx.store.getCertificate(certOfPem(readFileSync(join(cwd, 'sensor-new.pem'), 'utf8')).serial))?.status, 'revoked');
  });
});
