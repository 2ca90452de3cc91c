/**
 * Path validation (src/x509/chain.ts) over certificates made by the openssl
 * CLI: a path through an intermediate, and each reason one is refused
 * (missing intermediate, a look-alike root, an issuer that is no CA, a path
 * length exceeded, a certificate outside its validity).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isProblem } from '../../src/errors.js';
import { parseCertificate, type CertInfo } from '../../src/x509/cert_info.js';
import { validatePath } from '../../src/x509/chain.js';

const dir = mkdtempSync(join(tmpdir(), 'fleetpki-chain-'));
const f = (n: string) => join(dir, n);
const c: Record<string, CertInfo> = {};

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A key and a certificate `name`, self-signed or issued by `issuer`, with the given extensions. */
function cert(name: string, subj: string, ext: string, issuer?: string, days = 30): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(`${name}.key`)]);
  writeFileSync(f(`${name}.ext`), ext);
  if (!issuer) {
    openssl(['req', '-x509', '-new', '-key', f(`${name}.key`), '-subj', subj, '-days', String(days), '-out', f(`${name}.pem`), '-addext', ext.split('\n')[0], ...ext.split('\n').slice(1).filter(Boolean).flatMap((e) => ['-addext', e])]);
  } else {
    openssl(['req', '-new', '-key', f(`${name}.key`), '-subj', subj, '-out', f(`${name}.csr`)]);
    openssl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${issuer}.pem`), '-CAkey', f(`${issuer}.key`), '-CAcreateserial', '-days', String(days), '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`)]);
  }
  c[name] = parseCertificate(readFileSync(f(`${name}.pem`), 'utf8'));
}

const CA = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign';
const CA0 = 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign';
const EE = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature';

before(() => {
  cert('root', '/CN=Chain Root', CA);
  cert('inter', '/CN=Chain Inter', CA0, 'root');
  cert('leaf', '/CN=leaf', EE, 'inter', 10);
  // Same name as the root, another key: only the signature tells them apart.
  cert('lookalike', '/CN=Chain Root', CA);
  cert('ee', '/CN=not a CA', EE, 'root');
  cert('under-ee', '/CN=under an EE', EE, 'ee');
  cert('inter2', '/CN=Below pathlen 0', CA, 'inter');
  cert('too-deep', '/CN=too deep', EE, 'inter2');
});
after(() => rmSync(dir, { recursive: true, force: true }));

const now = () => new Date();

describe('validatePath', () => {
  it('ok leaf → intermediate → root; the anchor is the root', () => {
    const p = validatePath(c.leaf, [c.inter], [c.root], now());
    assert.deepEqual(p.path.map((x) => x.subjectText), ['CN=leaf', 'CN=Chain Inter', 'CN=Chain Root']);
    assert.equal(p.anchor.fingerprintSha256, c.root.fingerprintSha256);
  });

  it('ok unrelated extra candidates are ignored', () => {
    assert.equal(validatePath(c.leaf, [c.ee, c.lookalike, c.inter], [c.lookalike, c.root], now()).anchor.fingerprintSha256, c.root.fingerprintSha256);
  });

  const refused: [string, () => unknown, RegExp][] = [
    ['fail-the intermediate is missing', () => validatePath(c.leaf, [], [c.root], now()), /does not chain/],
    ['fail-a root with the same name and another key', () => validatePath(c.leaf, [c.inter], [c.lookalike], now()), /does not chain/],
    ['fail-the issuer is no CA', () => validatePath(c['under-ee'], [c.ee], [c.root], now()), /does not chain/],
    ['fail-pathlen 0 exceeded', () => validatePath(c['too-deep'], [c.inter2, c.inter], [c.root], now()), /does not chain/],
    ['fail-the leaf has expired', () => validatePath(c.leaf, [c.inter], [c.root], new Date(Date.now() + 20 * 86_400_000)), /expired or not yet valid/],
    ['fail-the leaf is not yet valid', () => validatePath(c.leaf, [c.inter], [c.root], new Date(Date.now() - 86_400_000)), /expired or not yet valid/],
  ];
  for (const [title, run, reason] of refused) {
    it(`${title} → unauthorized`, () => {
      assert.throws(run, (e: unknown) => isProblem(e, 'unauthorized') && reason.test(e.detail));
    });
  }
});
