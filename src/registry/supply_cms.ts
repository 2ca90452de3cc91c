/**
 * Signing and checking a supply-chain manifest: a CMS SignedData (RFC 5652)
 * with the JSON document inside as id-data, one signer, signed attributes,
 * and the signer's chain. Built and read with the firmware module's CMS code
 * (firmware/cms.ts), so `openssl cms -verify` accepts what fleetpki signs and
 * fleetpki accepts what `openssl cms -sign -nodetach -binary` signs.
 *
 * A manifest is refused if any byte of it differs from what was signed. The
 * signature covers the signed attributes, which cover the content through
 * messageDigest; the certificates are covered by their issuers' signatures.
 * What no signature covers is held to the one form a manifest has, so a
 * changed byte there cannot pass either: exactly DER, SignedData and
 * SignerInfo versions as RFC 5652 §5.1/§5.3 fix them for the signer
 * identifier used, digestAlgorithms naming exactly the signer's digest, no
 * unsigned attributes, no CRLs, and no certificate that is not on the
 * signer's path to its supplier CA.
 */
import { createHash } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { id_data, SignedData } from '@peculiar/asn1-cms';
import * as der from '../asn1/der.js';
import { ProblemError } from '../errors.js';
import { parseSignedData, signAttached, signerCertificate, signerSignatureProblem, type ParsedSignedData } from '../firmware/cms.js';
import { DIGEST_OIDS } from '../firmware/manifest.js';
import type { Signer } from '../keys/key_store.js';
import { parseCertificate, type CertInfo } from '../x509/cert_info.js';
import { validatePath } from '../x509/chain.js';
import { parseManifestJson, refuseManifest, type SupplyManifest } from './supply_manifest.js';

export interface SupplierIdentity {
  signer: Signer;
  certificate: CertInfo;
  /** The issuing CAs, DER, carried so the receiver can build the path. */
  chain: readonly Uint8Array[];
}

/** A CA trusted to vouch for one supplier's manifest signers. */
export interface SupplierAnchor {
  supplier: string;
  certificate: CertInfo;
}

export interface ReadManifest {
  sig: ParsedSignedData;
  /** The signed JSON bytes. */
  content: Uint8Array;
  /** sha256 (hex) of the content: the replay key (a re-signed copy is the same manifest). */
  digest: string;
  /** sha256 (hex) of the CMS DER. */
  cmsSha256: string;
}

export interface VerifiedManifest extends ReadManifest {
  manifest: SupplyManifest;
  signer: CertInfo;
  /** Signer first, supplier CA last. */
  path: CertInfo[];
  supplier: string;
  signingTime?: Date;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const sameDer = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

/** RFC 5753 §7: SHA-384 with P-384 keys; SHA-256 otherwise. */
function digestFor(s: Signer): 'sha256' | 'sha384' {
  return s.key.type === 'ec' && s.key.curve === 'P-384' ? 'sha384' : 'sha256';
}

/** Signs a manifest document (checked first: a supplier never ships one the receiver would refuse). */
export async function signManifest(id: SupplierIdentity, content: Uint8Array, now: Date): Promise<Uint8Array> {
  parseManifestJson(content);
  const c = id.certificate;
  if (c.isCa) throw new ProblemError('policy_violation', `${c.subjectText} is a CA certificate: manifests are signed with an end-entity certificate of the supplier`);
  if (c.keyUsage.length > 0 && !c.keyUsage.includes('digitalSignature')) throw new ProblemError('policy_violation', `${c.subjectText} may not sign (keyUsage lacks digitalSignature)`);
  if (c.notBefore > now || c.notAfter < now) throw new ProblemError('policy_violation', `the signer certificate ${c.subjectText} is not valid now (${c.notBefore.toISOString()} to ${c.notAfter.toISOString()})`);
  return signAttached({ signer: id.signer, certificate: c, chain: id.chain, digestAlgorithm: digestFor(id.signer), content, signingTime: now });
}

/** Reads the CMS and its content; refuses anything but the one form a manifest has (above). */
export function readManifest(input: Uint8Array): ReadManifest {
  const sig = parseSignedData(input, { content: 'attached', fail: (reason, detail) => refuseManifest(reason, detail) });
  // parseSignedData took exactly one TLV (no trailing bytes) from the input;
  // the library reads some non-DER length octets leniently, so the SignedData
  // must also be what it re-encodes to, byte for byte (X.690 §10: one encoding).
  const buf = sig.der;
  try {
    const [, explicit] = der.readChildren(buf, der.readTlv(buf, 0));
    const raw = der.slice(buf, der.readChildren(buf, explicit)[0]);
    if (!sameDer(raw, new Uint8Array(AsnConvert.serialize(AsnConvert.parse(raw, SignedData))))) throw new Error('it does not re-encode to the same bytes');
  } catch (e) {
    throw refuseManifest('malformed', `the manifest is not DER: ${(e as ProblemError).detail ?? (e as Error).message}`);
  }
  if (sig.eContentType !== id_data) throw refuseManifest('wrong_content_type', `the content type is ${sig.eContentType}, not id-data (${id_data})`);
  // RFC 5652 §5.3: v1 with issuerAndSerialNumber, v3 with subjectKeyIdentifier; §5.1: SignedData v1 or v3 accordingly for id-data.
  const bySki = 'ski' in sig.sid;
  const want = bySki ? 3 : 1;
  if (sig.versions.signerInfo !== want || sig.versions.signedData !== want) throw refuseManifest('malformed', `SignedData version ${sig.versions.signedData} / SignerInfo version ${sig.versions.signerInfo}; a manifest with ${bySki ? 'a subjectKeyIdentifier' : 'issuerAndSerialNumber'} has ${want} / ${want}`);
  if (sig.digestAlgorithms.length !== 1 || sig.digestAlgorithms[0] !== DIGEST_OIDS[sig.digestAlgorithm]) throw refuseManifest('malformed', 'digestAlgorithms must name exactly the signer\'s digest algorithm');
  if (sig.unsigned.attributes) throw refuseManifest('malformed', 'the signer carries unsigned attributes; a manifest has none');
  if (sig.unsigned.crls) throw refuseManifest('malformed', 'the manifest carries CRLs; a manifest has none');
  const content = sig.eContent!;
  return { sig, content, digest: sha256(content), cmsSha256: sha256(buf) };
}

/**
 * Everything an import checks before it looks at the devices: the CMS form,
 * the signature, the content digest, the signer's path (RFC 5280 §6.1, valid
 * `now`) to a supplier CA, the supplier named in the document being that
 * CA's, and the document itself.
 */
export function verifyManifest(input: Uint8Array, anchors: readonly SupplierAnchor[], now: Date): VerifiedManifest {
  const read = readManifest(input);
  const { sig, content } = read;
  const carried: CertInfo[] = sig.certificates.map((d) => {
    try {
      return parseCertificate(d);
    } catch {
      throw refuseManifest('malformed', 'a certificate in the manifest cannot be read');
    }
  });
  const signer = signerCertificate(sig);
  if (!signer) throw refuseManifest('malformed', 'the signer certificate is not in the manifest');
  const who = `${signer.subjectText} (serial ${signer.serial})`;

  // RFC 5652 §5.4, §5.6: the signature over the DER SET OF signed attributes.
  const bad = signerSignatureProblem(sig, signer);
  if (bad) throw refuseManifest(bad.reason, bad.detail);
  // §11.2: messageDigest is the digest of the content.
  if (hex(createHash(sig.digestAlgorithm).update(content).digest()) !== hex(sig.messageDigest)) {
    throw refuseManifest('digest_mismatch', 'the content is not the one signed: the manifest was changed after signing');
  }

  let path: CertInfo[];
  try {
    path = validatePath(signer, carried, anchors.map((a) => a.certificate), now).path;
  } catch (e) {
    throw refuseManifest('untrusted_supplier', `the signer ${who} does not chain to a trusted supplier CA valid now (${(e as ProblemError).detail ?? String(e)})`);
  }
  for (const c of carried) {
    if (!path.some((p) => sameDer(p.der, c.der))) throw refuseManifest('malformed', `the manifest carries ${c.subjectText}, which is not on the signer's path`);
  }
  if (signer.isCa) throw refuseManifest('wrong_purpose', `the signer ${who} is a CA certificate; manifests are signed with an end-entity certificate`);
  if (signer.keyUsage.length > 0 && !signer.keyUsage.includes('digitalSignature')) throw refuseManifest('wrong_purpose', `the signer ${who} may not sign (keyUsage lacks digitalSignature)`);
  const top = path[path.length - 1];
  const anchor = anchors.find((a) => sameDer(a.certificate.der, top.der))!;

  const manifest = parseManifestJson(content);
  if (manifest.supplier !== anchor.supplier) {
    throw refuseManifest('wrong_supplier', `the manifest names supplier "${manifest.supplier}" but is signed under a CA of supplier "${anchor.supplier}" (${anchor.certificate.subjectText})`);
  }
  return { ...read, manifest, signer, path, supplier: anchor.supplier, signingTime: sig.signingTime };
}
