/**
 * The supplier side of `fleetpki manifest` (src/cli/commands/supply.ts): what
 * an entry pins for each kind of file, the CSV device list, and refusals
 * with a clear message and exit status 2, writing nothing.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { entriesOfCsv, pinOfFile } from '../../src/cli/commands/supply.js';
import { ProblemError } from '../../src/errors.js';
import { pemDecodeAll } from '../../src/x509/pem.js';
import { fleetpki, runOpenssl, tempDir } from '../helpers/data_dir.js';
import { makeSupplier, type TestSupplier } from '../helpers/supplier.js';

let dir: string;
let sup: TestSupplier;
const f = (n: string) => join(dir, n);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const derOf = (file: string) => pemDecodeAll(readFileSync(file, 'utf8'))[0].der;
const openssl = (args: string[]) => assert.equal(runOpenssl(args).status, 0, args.join(' '));
const badRequest = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: unknown) => e instanceof ProblemError && e.code === 'bad_request' && re.test(e.detail));

before(() => {
  dir = tempDir('fleetpki-supply-cli-');
  sup = makeSupplier(dir, 'ChipCo');
  openssl(['x509', '-in', sup.certPem, '-outform', 'DER', '-out', f('cert.der')]);
  openssl(['pkey', '-in', sup.keyPem, '-pubout', '-out', f('pub.pem')]);
  openssl(['pkey', '-in', sup.keyPem, '-pubout', '-outform', 'DER', '-out', f('pub.der')]);
  openssl(['req', '-new', '-key', sup.keyPem, '-subj', '/CN=dev', '-out', f('dev.csr')]);
  writeFileSync(f('garbage.bin'), 'not a certificate');
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('manifest create: what an entry pins', () => {
  it('ok-a certificate (PEM or DER) pins its SHA-256; with --pin public-key its key', () => {
    const cert = sha(derOf(sup.certPem));
    assert.deepEqual(pinOfFile(sup.certPem, 'certificate'), { certificateSha256: cert });
    assert.deepEqual(pinOfFile(f('cert.der'), 'certificate'), { certificateSha256: cert });
    const key = sha(readFileSync(f('pub.der')));
    assert.deepEqual(pinOfFile(sup.certPem, 'public-key'), { publicKeySha256: key });
    assert.deepEqual(pinOfFile(f('pub.pem'), 'public-key'), { publicKeySha256: key });
    assert.deepEqual(pinOfFile(f('pub.der'), 'public-key'), { publicKeySha256: key });
    assert.deepEqual(pinOfFile(f('dev.csr'), 'public-key'), { publicKeySha256: key });
  });

  it('fail-a key or CSR with --pin certificate, a private key, garbage, a missing file', () => {
    badRequest(() => pinOfFile(f('pub.pem'), 'certificate'), /--pin public-key/);
    writeFileSync(f('bad-cert.pem'), '-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n');
    badRequest(() => pinOfFile(f('bad-cert.pem'), 'public-key'), /not a valid X.509 certificate/);
    badRequest(() => pinOfFile(sup.keyPem, 'public-key'), /PRIVATE KEY, not a certificate/);
    badRequest(() => pinOfFile(f('garbage.bin'), 'public-key'), /not a certificate, a CSR or a public key/);
    badRequest(() => pinOfFile(f('nope.pem'), 'certificate'), /cannot read device file .*ENOENT/);
  });

  it('ok-a CSV list (RFC 4180, as device import reads it): header, files relative to it, optional model and batch, quoted fields, blank lines', () => {
    writeFileSync(f('list.csv'), '\uFEFFid,file,model,batch\r\nc-1,ChipCo-signer.pem,"m1, rev ""B""",B7\r\n\r\nc-2,cert.der,,\n');
    assert.deepEqual(entriesOfCsv(f('list.csv'), 'certificate'), [
      { id: 'c-1', certificateSha256: sha(derOf(sup.certPem)), model: 'm1, rev "B"', batch: 'B7' },
      { id: 'c-2', certificateSha256: sha(derOf(sup.certPem)) },
    ]);
  });

  it('fail-a CSV without the header, with an unknown column, or a row without a file', () => {
    writeFileSync(f('a.csv'), 'c-1,cert.der\n');
    badRequest(() => entriesOfCsv(f('a.csv'), 'certificate'), /header naming the columns/);
    writeFileSync(f('b.csv'), 'id,file,colour\nc-1,cert.der,red\n');
    badRequest(() => entriesOfCsv(f('b.csv'), 'certificate'), /header naming the columns/);
    writeFileSync(f('c.csv'), 'id,file\nc-1,\n');
    badRequest(() => entriesOfCsv(f('c.csv'), 'certificate'), /line 2: id and file are required/);
    writeFileSync(f('d.csv'), 'id,file\n"c-1,cert.der\n');
    badRequest(() => entriesOfCsv(f('d.csv'), 'certificate'), /quoted field is not closed/);
  });
});

describe('manifest create and sign: the CLI', () => {
  it('ok-create to stdout, sign, and the document round-trips', () => {
    const r = fleetpki(['manifest', 'create', '--supplier', 'ChipCo', '--stage', 'assembly', '--device', `c-1=${sup.certPem}`, '--batch', 'B1']);
    assert.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.format, 'fleetpki-supply-manifest');
    assert.deepEqual(doc.devices, [{ id: 'c-1', certificateSha256: sha(derOf(sup.certPem)), batch: 'B1' }]);
    writeFileSync(f('m.json'), r.stdout);
    const s = fleetpki(['manifest', 'sign', '--in', f('m.json'), '--key', sup.keyPem, '--cert', sup.certPem, '--chain', sup.chainPem, '--out', f('m.pem'), '--pem']);
    assert.equal(s.status, 0, s.stderr);
    assert.match(readFileSync(f('m.pem'), 'utf8'), /^-----BEGIN CMS-----/);
    const v = runOpenssl(['cms', '-verify', '-in', f('m.pem'), '-inform', 'PEM', '-CAfile', sup.rootPem, '-purpose', 'any', '-out', f('m.out')]);
    assert.equal(v.status, 0, v.stderr);
    assert.equal(readFileSync(f('m.out'), 'utf8'), r.stdout);
  });

  it('fail-no devices, a bad stage, a bad --device, a key of another certificate: exit 2, nothing written', () => {
    const cases: Array<[string[], RegExp]> = [
      [['manifest', 'create', '--supplier', 'ChipCo', '--stage', 'assembly', '--out', f('x.json')], /no devices/],
      [['manifest', 'create', '--supplier', 'ChipCo', '--stage', 'Assembly!', '--device', `c-1=${sup.certPem}`, '--out', f('x.json')], /"stage" must be lowercase/],
      [['manifest', 'create', '--supplier', 'ChipCo', '--stage', 'assembly', '--device', 'c-1', '--out', f('x.json')], /--device "c-1" is ID=FILE/],
      [['manifest', 'sign', '--in', f('garbage.bin'), '--key', sup.keyPem, '--cert', sup.certPem, '--out', f('x.cms')], /bad_content/],
      [['manifest', 'sign', '--in', f('m.json'), '--key', sup.keyPem, '--cert', sup.rootPem, '--out', f('x.cms')], /is not the key of the certificate/],
    ];
    for (const [args, re] of cases) {
      const r = fleetpki(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
    assert.ok(!existsSync(f('x.json')) && !existsSync(f('x.cms')));
  });
});
