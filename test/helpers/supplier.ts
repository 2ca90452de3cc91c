/**
 * A stand-in supplier PKI made with the openssl CLI: a root, a signing CA
 * under it and an end-entity certificate that signs the supplier's manifests.
 * Synchronous (execFileSync): use it before a server starts, or in unit tests.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keyObjectSigner, loadPrivateKey } from '../../src/keys/key_store.js';
import type { SupplierAnchor, SupplierIdentity } from '../../src/registry/supply_cms.js';
import { parseCertificate } from '../../src/x509/cert_info.js';
import { pemDecodeAll } from '../../src/x509/pem.js';

export interface TestSupplier {
  name: string;
  /** PEM files. */
  rootPem: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  /** The signing CA only (what `manifest sign --chain` and `openssl cms -certfile` take). */
  chainPem: string;
  identity(): SupplierIdentity;
  anchor(supplier?: string): SupplierAnchor;
}

const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });

export function derOfPem(file: string): Uint8Array {
  return pemDecodeAll(readFileSync(file, 'utf8'))[0].der;
}

export function makeSupplier(dir: string, name: string, o: { curve?: string } = {}): TestSupplier {
  const slug = name.replace(/[^A-Za-z0-9]/g, '');
  const f = (n: string) => join(dir, `${slug}-${n}`);
  const key = (n: string) => {
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${o.curve ?? 'P-256'}`, '-out', f(`${n}.key`)]);
    return f(`${n}.key`);
  };
  const rootKey = key('root');
  openssl(['req', '-x509', '-new', '-key', rootKey, '-subj', `/O=${name}/CN=${name} Supplier Root`, '-days', '3650', '-out', f('root.pem'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  writeFileSync(f('ca.ext'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
  writeFileSync(f('leaf.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
  const caKey = key('ca');
  openssl(['req', '-new', '-key', caKey, '-subj', `/O=${name}/CN=${name} Manifest CA`, '-out', f('ca.csr')]);
  openssl(['x509', '-req', '-in', f('ca.csr'), '-CA', f('root.pem'), '-CAkey', rootKey, '-CAcreateserial', '-days', '3000', '-extfile', f('ca.ext'), '-out', f('ca.pem')]);
  const leafKey = key('signer');
  openssl(['req', '-new', '-key', leafKey, '-subj', `/O=${name}/CN=${name} Manifest Signer`, '-out', f('signer.csr')]);
  openssl(['x509', '-req', '-in', f('signer.csr'), '-CA', f('ca.pem'), '-CAkey', caKey, '-CAcreateserial', '-days', '1000', '-extfile', f('leaf.ext'), '-out', f('signer.pem')]);
  return {
    name,
    rootPem: f('root.pem'),
    caPem: f('ca.pem'),
    certPem: f('signer.pem'),
    keyPem: leafKey,
    chainPem: f('ca.pem'),
    identity: () => ({ signer: keyObjectSigner(loadPrivateKey(readFileSync(leafKey, 'utf8'))), certificate: parseCertificate(derOfPem(f('signer.pem'))), chain: [derOfPem(f('ca.pem'))] }),
    anchor: (supplier = name) => ({ supplier, certificate: parseCertificate(derOfPem(f('root.pem'))) }),
  };
}
