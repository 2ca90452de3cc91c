/**
 * Real CMP transcripts (test/fixtures/cmp, README there): every request the
 * OpenSSL 3.0 client wrote and every answer it read, from fleetpki and from
 * OpenSSL's mock server. Each parses with the src/asn1 schemas and
 * re-encodes byte for byte; its MAC verifies with the secret that keyed it
 * (and fails with any other), its signature with its protection certificate,
 * which chains to the root it claims; answers echo their request's
 * transactionID and nonce; a certConf hashes the certificate it confirms.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AsnConvert } from '@peculiar/asn1-schema';
import { bodyTypeOf, type BodyType } from '../../src/asn1/cmp_body.js';
import { PKIMessage } from '../../src/asn1/cmp_message.js';
import { id_it } from '../../src/asn1/cmp_oids.js';
import { isMacAlgorithm, verifyMac } from '../../src/protocols/cmp/mac.js';
import { decodeMessage, type ReceivedMessage } from '../../src/protocols/cmp/message.js';
import { publicKeyFromSpki, verifySignature } from '../../src/x509/algorithms.js';
import { parseCertificate } from '../../src/x509/cert_info.js';
import { validatePath } from '../../src/x509/chain.js';
import { REPO } from '../helpers/data_dir.js';

const DIR = join(REPO, 'test', 'fixtures', 'cmp');
const secrets = JSON.parse(readFileSync(join(DIR, 'secrets.json'), 'utf8')) as Record<string, string>;
const roots = [parseCertificate(readFileSync(join(DIR, 'fleetpki-root.pem'), 'utf8')), parseCertificate(readFileSync(join(DIR, 'manufacturer-root.pem'), 'utf8'))];
const read = (f: string) => new Uint8Array(readFileSync(join(DIR, f)));

type Protection = { mac: string } | 'signature' | 'none';

/** file → body and protection. MAC entries name the secret in secrets.json. */
const FIXTURES: Record<string, { body: BodyType; protection: Protection }> = {
  'mac-ir.der': { body: 'ir', protection: { mac: 'fx-mac' } },
  'mac-ip.der': { body: 'ip', protection: { mac: 'fx-mac' } },
  'mac-certconf.der': { body: 'certConf', protection: { mac: 'fx-mac' } },
  'mac-pkiconf.der': { body: 'pkiconf', protection: { mac: 'fx-mac' } },
  'mac-ir-wrong-secret.der': { body: 'ir', protection: { mac: 'not-the-secret' } },
  'error-badmessagecheck.der': { body: 'error', protection: 'signature' },
  'mac-p10cr.der': { body: 'p10cr', protection: { mac: 'fx-p10' } },
  'mac-cp-implicit.der': { body: 'cp', protection: { mac: 'fx-p10' } },
  'mfr-ir.der': { body: 'ir', protection: 'signature' },
  'mfr-ip.der': { body: 'ip', protection: 'signature' },
  'mfr-certconf.der': { body: 'certConf', protection: 'signature' },
  'mfr-pkiconf.der': { body: 'pkiconf', protection: 'signature' },
  'mfr-cr.der': { body: 'cr', protection: 'signature' },
  'mfr-cp-implicit.der': { body: 'cp', protection: 'signature' },
  'kur.der': { body: 'kur', protection: 'signature' },
  'kup.der': { body: 'kup', protection: 'signature' },
  'kur-certconf.der': { body: 'certConf', protection: 'signature' },
  'kur-pkiconf.der': { body: 'pkiconf', protection: 'signature' },
  'genm-cacerts.der': { body: 'genm', protection: 'signature' },
  'genp-cacerts.der': { body: 'genp', protection: 'signature' },
  'genm-certreqtemplate.der': { body: 'genm', protection: 'signature' },
  'genp-certreqtemplate.der': { body: 'genp', protection: 'signature' },
  'genm-currentcrl.der': { body: 'genm', protection: 'signature' },
  'genp-currentcrl.der': { body: 'genp', protection: 'signature' },
  'genm-rootcakeyupdate.der': { body: 'genm', protection: 'signature' },
  'genp-rootcakeyupdate.der': { body: 'genp', protection: 'signature' },
  'rr.der': { body: 'rr', protection: 'signature' },
  'rp.der': { body: 'rp', protection: 'signature' },
  'rej-ir.der': { body: 'ir', protection: { mac: 'fx-rej' } },
  'rej-ip.der': { body: 'ip', protection: { mac: 'fx-rej' } },
  'rej-certconf.der': { body: 'certConf', protection: { mac: 'fx-rej' } },
  'rej-pkiconf.der': { body: 'pkiconf', protection: { mac: 'fx-rej' } },
  'mock-ir.der': { body: 'ir', protection: { mac: 'mock' } },
  'mock-ip-waiting.der': { body: 'ip', protection: { mac: 'mock' } },
  'mock-pollreq.der': { body: 'pollReq', protection: { mac: 'mock' } },
  'mock-ip.der': { body: 'ip', protection: { mac: 'mock' } },
  'mock-certconf.der': { body: 'certConf', protection: { mac: 'mock' } },
  'mock-pkiconf.der': { body: 'pkiconf', protection: { mac: 'mock' } },
  'mock-genm.der': { body: 'genm', protection: { mac: 'mock' } },
  'mock-error.der': { body: 'error', protection: { mac: 'mock' } },
};
// The approval transcript: how many polls it took depends on timing, the names say what each is.
for (const f of readdirSync(DIR).filter((n) => /^wait-\d+-(req|rsp)-/.test(n))) {
  const kind = /-(ir|ip|pollreq|pollrep|certconf|pkiconf)\.der$/.exec(f)![1];
  const body = ({ ir: 'ir', ip: 'ip', pollreq: 'pollReq', pollrep: 'pollRep', certconf: 'certConf', pkiconf: 'pkiconf' } as const)[kind as 'ir'];
  FIXTURES[f] = { body, protection: { mac: 'fx-wait' } };
}

/** [request, answer] pairs of one exchange. */
const PAIRS: [string, string][] = [
  ['mac-ir.der', 'mac-ip.der'],
  ['mac-certconf.der', 'mac-pkiconf.der'],
  ['mac-ir-wrong-secret.der', 'error-badmessagecheck.der'],
  ['mac-p10cr.der', 'mac-cp-implicit.der'],
  ['mfr-ir.der', 'mfr-ip.der'],
  ['mfr-certconf.der', 'mfr-pkiconf.der'],
  ['mfr-cr.der', 'mfr-cp-implicit.der'],
  ['kur.der', 'kup.der'],
  ['kur-certconf.der', 'kur-pkiconf.der'],
  ['rr.der', 'rp.der'],
  ['rej-ir.der', 'rej-ip.der'],
  ['rej-certconf.der', 'rej-pkiconf.der'],
  ['mock-ir.der', 'mock-ip-waiting.der'],
  ['mock-pollreq.der', 'mock-ip.der'],
  ['mock-certconf.der', 'mock-pkiconf.der'],
  ['mock-genm.der', 'mock-error.der'],
  ...['cacerts', 'certreqtemplate', 'currentcrl', 'rootcakeyupdate'].map((t): [string, string] => [`genm-${t}.der`, `genp-${t}.der`]),
  ...[1, 2, 3, 4, 5, 6, 7, 8]
    .map((i) => [readdirSync(DIR).find((n) => n.startsWith(`wait-${i}-req-`)), readdirSync(DIR).find((n) => n.startsWith(`wait-${i}-rsp-`))])
    .filter((p): p is [string, string] => !!p[0] && !!p[1]),
];

/** [certConf, the answer that carried the certificate] */
const CONFIRMS: [string, string][] = [
  ['mac-certconf.der', 'mac-ip.der'],
  ['mfr-certconf.der', 'mfr-ip.der'],
  ['kur-certconf.der', 'kup.der'],
  ['rej-certconf.der', 'rej-ip.der'],
  ['mock-certconf.der', 'mock-ip.der'],
];

function message(f: string): ReceivedMessage {
  return decodeMessage(read(f));
}

/** fleetpki's issuing CA: it signs its answers and leads their extraCerts. */
const issuingCa = () => message('mfr-ip.der').extraCerts[0];

describe('CMP fixtures from openssl cmp', () => {
  it('ok every .der in the folder is listed here', () => {
    const files = readdirSync(DIR).filter((n) => n.endsWith('.der')).sort();
    assert.deepEqual(files, Object.keys(FIXTURES).sort());
    assert.ok(files.length >= 50);
  });

  for (const [file, want] of Object.entries(FIXTURES)) {
    it(`ok ${file}: ${want.body}, re-encoded byte for byte, ${typeof want.protection === 'object' ? 'MAC' : want.protection} verifies`, () => {
      const der = read(file);
      const msg = AsnConvert.parse(der, PKIMessage);
      assert.equal(bodyTypeOf(msg.body), want.body);
      assert.deepEqual(new Uint8Array(AsnConvert.serialize(msg)), der, 're-encoding gives the same bytes');
      const m = message(file);
      const alg = m.msg.header.protectionAlg!;
      const protection = new Uint8Array(m.msg.protection!);
      if (typeof want.protection === 'object') {
        assert.ok(isMacAlgorithm(alg));
        assert.ok(verifyMac(alg, secrets[want.protection.mac], m.protectedPart, protection), 'the MAC verifies with its secret');
        assert.ok(!verifyMac(alg, `${secrets[want.protection.mac]}x`, m.protectedPart, protection), 'and not with another');
        const flipped = m.protectedPart.slice();
        flipped[flipped.length - 1] ^= 1;
        assert.ok(!verifyMac(alg, secrets[want.protection.mac], flipped, protection), 'nor over other bytes');
      } else if (want.protection === 'signature') {
        const [leaf, ...rest] = m.extraCerts;
        assert.ok(leaf, 'the protection certificate comes first in extraCerts');
        assert.deepEqual(m.senderName, leaf.subjectDer, 'sender is its subject');
        const params = alg.parameters ? new Uint8Array(alg.parameters) : undefined;
        assert.ok(verifySignature(alg.algorithm, params, publicKeyFromSpki(leaf.spki), m.protectedPart, protection));
        // openssl sends the leaf alone; the issuing CA is in fleetpki's own answers.
        assert.ok(validatePath(leaf, [...rest, issuingCa()], roots, leaf.notBefore).anchor, 'it chains to a fixture root');
      }
    });
  }

  for (const [req, rsp] of PAIRS) {
    it(`ok ${rsp} answers ${req}: same transactionID, recipNonce = its senderNonce`, () => {
      const q = message(req);
      const r = message(rsp);
      assert.ok(q.transactionId && q.transactionId.length >= 32);
      assert.equal(r.transactionId, q.transactionId);
      assert.deepEqual(r.recipNonce, q.senderNonce);
      assert.ok(r.senderNonce && r.senderNonce.length >= 16);
    });
  }

  for (const [conf, rep] of CONFIRMS) {
    it(`ok ${conf} hashes the certificate of ${rep} (SHA-256 for ECDSA with SHA-256)`, () => {
      const status = message(conf).msg.body.certConf![0];
      const body = message(rep).msg.body;
      const cert = (body.ip ?? body.cp ?? body.kup)!.response[0].certifiedKeyPair!.certOrEncCert.certificate!;
      const hash = createHash('sha256').update(new Uint8Array(AsnConvert.serialize(cert))).digest();
      assert.deepEqual(Buffer.from(status.certHash.buffer), hash);
    });
  }

  it('ok the answers say what fleetpki means: implicitConfirm granted, waiting, rejection', () => {
    const info = (f: string) => (message(f).msg.header.generalInfo ?? []).map((i) => i.infoType);
    assert.ok(info('mac-cp-implicit.der').includes(id_it.implicitConfirm));
    assert.ok(info('mac-ip.der').includes(id_it.confirmWaitTime));
    assert.equal(message('wait-1-rsp-ip.der').msg.body.ip!.response[0].status.status, 3, 'waiting');
    assert.equal(message('rej-certconf.der').msg.body.certConf![0].statusInfo?.status, 2, 'the client rejects');
    const err = message('error-badmessagecheck.der').msg.body.error!.pKIStatusInfo;
    assert.deepEqual([err.status, err.failInfo?.names()], [2, ['badMessageCheck']]);
    assert.equal(message('mac-ip.der').msg.body.ip!.caPubs?.length, 1, 'the root, for a client that had only a secret');
  });
});
