/**
 * docs/supply-chain.md can be pasted as it stands (test/helpers/doc_script.ts
 * says how it is run): three parties, two signed manifests (fleetpki and
 * openssl), devices enrolling over EST with curl, against the real server
 * the doc starts. Then the registry and the files are what the doc says.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fleetpki, REPO, runOpenssl, tempDir } from '../helpers/data_dir.js';
import { assertDocRan, runDocScript, type DocRun } from '../helpers/doc_script.js';

const work = tempDir('fleetpki-doc-supply-');
const file = (...p: string[]) => join(work, ...p);
const D = ['--dir', file('fleetpki-data')];

describe('docs/supply-chain.md, pasted as it stands', () => {
  let result: DocRun;

  before(async () => {
    result = await runDocScript(join(REPO, 'docs', 'supply-chain.md'), work, { org: 'Acme Devices' });
  });

  after(() => {
    result?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('every ```sh block ran to the end, exit 0, none skipped', () => {
    assertDocRan(result, { minBlocks: 8 });
  });

  it('the unlisted chip was refused with the reason the doc shows', () => {
    assert.equal(result.status, 0, 'see above');
    assert.match(result.out, /^403$/m);
    assert.match(readFileSync(file('refused.txt'), 'utf8'), /device chip-0003 is listed in no imported supplier manifest/);
    assert.equal(JSON.parse(fleetpki(['device', 'show', 'chip-0003', '--json', ...D]).stdout).state, 'registered');
  });

  it('the operational certificates verify with openssl and carry the domain', () => {
    assert.equal(result.status, 0, 'see above');
    // The doc fetched only the root; openssl verify needs the issuing CA too.
    writeFileSync(file('issuing.pem'), fleetpki(['ca', 'cert', ...D]).stdout);
    for (const id of ['chip-0001', 'chip-0002']) {
      const v = runOpenssl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', file('root.pem'), '-untrusted', file('issuing.pem'), file(`${id}-op.pem`)]);
      assert.match(v.stdout, /: OK/, v.stderr);
      assert.match(runOpenssl(['x509', '-in', file(`${id}-op.pem`), '-noout', '-ext', 'subjectAltName']).stdout, /URI:urn:fleetpki:domain:plant-a/);
    }
  });

  it('each gateway has the chain of identities manufacturer → assembly → operation, in stage operation', () => {
    assert.equal(result.status, 0, 'see above');
    for (const id of ['chip-0001', 'chip-0002']) {
      const j = JSON.parse(fleetpki(['device', 'identities', id, '--json', ...D]).stdout);
      assert.equal(j.stage, 'operation');
      assert.deepEqual(j.identities.map((i: { kind: string; stage: string | null }) => `${i.kind}:${i.stage ?? ''}`), ['manufacturer:', 'certificate:assembly', 'certificate:operation']);
      assert.equal(j.identities[2].current, true);
      const dev = JSON.parse(fleetpki(['device', 'show', id, '--json', ...D]).stdout);
      assert.equal(dev.owner, 'Acme Utilities');
    }
    const manifests = JSON.parse(fleetpki(['manifest', 'list', '--json', ...D]).stdout);
    assert.deepEqual(manifests.map((m: { supplier: string; stage: string }) => `${m.supplier}:${m.stage}`), ['AssemblyCo:operation', 'ChipCo:assembly']);
  });
});
