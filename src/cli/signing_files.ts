/**
 * A signing identity from files the user names: a private key, its
 * certificate and the issuing CAs. What `firmware sign --key` and
 * `manifest sign` use where the signer is not in a data directory (a build
 * pipeline, a supplier's own PKI). The key's passphrase comes from the
 * environment, never argv.
 */
import { certsOfPem } from '../agent/certs.js';
import { ProblemError } from '../errors.js';
import { keyObjectSigner, loadPrivateKey, type Signer } from '../keys/key_store.js';
import { parseCertificate, type CertInfo } from '../x509/cert_info.js';
import { readUserFile } from './output.js';

export const SIGNING_KEY_PASSPHRASE_ENV = 'FLEETPKI_SIGNING_KEY_PASSPHRASE';

export interface FileSigningIdentity {
  signer: Signer;
  certificate: CertInfo;
  chain: Uint8Array[];
}

export function signingIdentityFromFiles(o: { key: string; cert: string; chain?: string }): FileSigningIdentity {
  const certificate = parseCertificate(readUserFile(o.cert, 'certificate'));
  const chain = o.chain ? certsOfPem(readUserFile(o.chain, 'chain').toString('utf8'), o.chain).map((c) => c.der) : [];
  const pem = readUserFile(o.key, 'key').toString('utf8');
  let key;
  try {
    key = loadPrivateKey(pem, process.env[SIGNING_KEY_PASSPHRASE_ENV] || undefined);
  } catch {
    throw new ProblemError('key_unavailable', `cannot read the key ${o.key} (encrypted? set $${SIGNING_KEY_PASSPHRASE_ENV})`);
  }
  const signer = keyObjectSigner(key);
  if (Buffer.compare(Buffer.from(signer.spki), Buffer.from(certificate.spki)) !== 0) throw new ProblemError('bad_request', `the key ${o.key} is not the key of the certificate ${o.cert} (${certificate.subjectText})`);
  return { signer, certificate, chain };
}
