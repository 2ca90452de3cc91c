/**
 * docs/enrollment.md can be pasted as it stands (test/helpers/doc_script.ts
 * says how it is run): every ```sh block, in order, in one bash, against the
 * real server the doc itself starts.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fleetpki, REPO, runOpenssl, tempDir } from '../helpers/data_dir.js';
import { assertDocRan, runDocScript, type DocRun } from '../helpers/doc_script.js';

const work = tempDir('fleetpki-doc-enroll-');
const file = (...p: string[]) => join(work, ...p);

describe('docs/enrollment.md, pasted as it stands', () => {
  let result: DocRun;

  before(async () => {
    result = await runDocScript(join(REPO, 'docs', 'enrollment.md'), work, { org: 'Acme Devices' });
  });

  after(() => {
    result?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('every ```sh block ran to the end, exit 0, none skipped', () => {
    assertDocRan(result, { minBlocks: 10 });
  });

  it('the certificates it made verify with openssl against the root it fetched', () => {
    assert.equal(result.status, 0, 'see above');
    const expect: Array<[string, string]> = [
      ['sensor.pem', 'sensor-0001'],
      ['sensor-renewed.pem', 'sensor-0001'],
      ['curl-sensor.pem', 'sensor-0001'],
      ['curl-sensor-renewed.pem', 'sensor-0001'],
      ['ldevid.pem', 'SN-4711'],
      ['sensor-0100.pem', 'sensor-0100'],
    ];
    for (const [f, id] of expect) {
      const v = runOpenssl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', file('root.pem'), '-untrusted', file('issuing.pem'), file(f)]);
      assert.match(v.stdout, /: OK/, `${f}: ${v.stderr}`);
      const subject = runOpenssl(['x509', '-in', file(f), '-noout', '-subject', '-nameopt', 'RFC2253']).stdout.trim();
      assert.equal(subject, `subject=CN=${id},serialNumber=${id},O=Acme Devices`, f);
    }
    assert.equal(readFileSync(file('cacert.pem'), 'utf8').trim(), readFileSync(file('root.pem'), 'utf8').trim(), 'pki --estca: the root');
    assert.match(readFileSync(file('cacerts.pem'), 'utf8'), /BEGIN CERTIFICATE[\s\S]+BEGIN CERTIFICATE/, 'curl /cacerts: issuing CA and root');
  });

  it('the registry ends as the doc says', () => {
    assert.equal(result.status, 0, 'see above');
    const D = ['--dir', file('fleetpki-data')];
    const show = (id: string) => JSON.parse(fleetpki(['device', 'show', id, '--json', ...D]).stdout);
    const s1 = show('sensor-0001');
    assert.equal(s1.state, 'active', 'suspended, then resumed');
    assert.equal(s1.certificates.length, 4, 'pki enroll and renew, curl enroll and renew');
    assert.equal(show('SN-4711').state, 'retired');
    assert.equal(show('sensor-0100').state, 'active');
    for (const id of ['sensor-0002', 'gateway-01']) assert.equal(show(id).state, 'registered');
    const orders = JSON.parse(fleetpki(['order', 'list', '--json', ...D]).stdout);
    assert.equal(orders.length, 1);
    for (const id of ['th20-0001', 'th20-0002']) assert.equal(show(id).orderId, orders[0].id);
    const approved = JSON.parse(fleetpki(['enrollment', 'list', '--status', 'issued', '--json', ...D]).stdout);
    assert.deepEqual(approved.map((p: { deviceId: string }) => p.deviceId), ['sensor-0100']);
  });
});
