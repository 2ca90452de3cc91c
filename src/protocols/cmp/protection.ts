/**
 * Message protection (RFC 4210 §5.1.3, RFC 9483 §3.2): checking a request's
 * MAC or signature, and protecting answers.
 *
 * - MAC-based: keyed by the device's one-time enrollment secret; senderKID
 *   names the device. The secret comes from the vault (secret_vault.ts).
 *   The answer carries a MAC with the same secret (RFC 9483 §4.1.5).
 * - Signature-based: the protection certificate is the first of extraCerts
 *   and must chain to one of our CAs or a trusted manufacturer CA; sender
 *   must be its subject. Answers are signed by the issuing CA, whose
 *   certificate (keyUsage digitalSignature) leads extraCerts.
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import type { Authority } from '../../authority/authority.js';
import { ProblemError } from '../../errors.js';
import { caFingerprint } from '../../registry/enrollment.js';
import { SECRET_DENIED, type SecretVault } from '../../registry/secret_vault.js';
import type { Store } from '../../store/store.js';
import { publicKeyFromSpki, signatureAlgorithmFor, verifySignature } from '../../x509/algorithms.js';
import { parseCertificate, type CertInfo } from '../../x509/cert_info.js';
import { validatePath } from '../../x509/chain.js';
import { cmpProblem } from './failure.js';
import { answerMacAlgorithm, computeMac, isMacAlgorithm, verifyMac } from './mac.js';
import type { Protector, ReceivedMessage } from './message.js';

export type Verified =
  | { kind: 'mac'; deviceId: string; secret: string; sealed: Uint8Array; alg: AlgorithmIdentifier; senderKid: Uint8Array }
  | { kind: 'signature'; leaf: CertInfo; anchor: string; signerSha256: string }
  | { kind: 'none' };

const badCheck = (why: string) => cmpProblem('unauthorized', ['badMessageCheck'], why);

export interface VerifyOptions {
  /** A MAC transaction in progress: its sealed secret (the registry's copy is wiped once used) and device. */
  sealed?: { deviceId: string; sealed: Uint8Array };
  now: Date;
}

export class ProtectionVerifier {
  constructor(
    private readonly store: Store,
    private readonly vault: SecretVault,
  ) {}

  async verify(m: ReceivedMessage, o: VerifyOptions): Promise<Verified> {
    const alg = m.msg.header.protectionAlg;
    const protection = m.msg.protection;
    if (!alg && !protection) return { kind: 'none' };
    if (!alg || !protection) throw badCheck('protectionAlg and protection come together');
    return isMacAlgorithm(alg) ? this.verifyMac(m, alg, new Uint8Array(protection), o) : this.verifySignature(m, alg, new Uint8Array(protection), o.now);
  }

  private async verifyMac(m: ReceivedMessage, alg: AlgorithmIdentifier, mac: Uint8Array, o: VerifyOptions): Promise<Verified> {
    if (!m.senderKid?.length) throw badCheck('MAC-based protection needs senderKID: the device id (openssl cmp -ref)');
    const deviceId = Buffer.from(m.senderKid).toString('utf8');
    let secret: string;
    let sealed: Uint8Array;
    try {
      if (o.sealed) {
        if (o.sealed.deviceId !== deviceId) throw new ProblemError('unauthorized', SECRET_DENIED, { reason: 'senderKID names another device than the transaction' });
        sealed = o.sealed.sealed;
        secret = await this.vault.open(deviceId, sealed);
      } else {
        ({ secret, sealed } = await this.vault.secretFor(deviceId));
      }
    } catch (e) {
      // One answer for an unknown device and a wrong, used or expired secret.
      if (e instanceof ProblemError && e.code === 'unauthorized') throw new ProblemError('unauthorized', SECRET_DENIED, { failInfo: ['badMessageCheck'], reason: e.extra?.reason });
      throw e;
    }
    if (!verifyMac(alg, secret, m.protectedPart, mac)) throw new ProblemError('unauthorized', SECRET_DENIED, { failInfo: ['badMessageCheck'], reason: 'the MAC does not verify' });
    return { kind: 'mac', deviceId, secret, sealed, alg, senderKid: m.senderKid };
  }

  private async verifySignature(m: ReceivedMessage, alg: AlgorithmIdentifier, signature: Uint8Array, now: Date): Promise<Verified> {
    const [leaf, ...rest] = m.extraCerts;
    if (!leaf) throw badCheck('signature-based protection needs the protection certificate first in extraCerts (RFC 9483 §3.3)');
    // RFC 9483 §3.1: sender is the subject of the protection certificate.
    if (!m.senderName || Buffer.compare(Buffer.from(m.senderName), Buffer.from(leaf.subjectDer)) !== 0) throw badCheck(`sender is not the subject of the protection certificate (${leaf.subjectText})`);
    let ok: boolean;
    try {
      const params = alg.parameters ? new Uint8Array(alg.parameters) : undefined;
      ok = verifySignature(alg.algorithm, params, publicKeyFromSpki(leaf.spki), m.protectedPart, signature);
    } catch (e) {
      if (e instanceof ProblemError) throw cmpProblem('bad_request', ['badAlg'], e.detail);
      throw e;
    }
    if (!ok) throw badCheck('the signature protection does not verify with the protection certificate');

    const cas = await this.store.listCas();
    const manufacturers = await this.store.listTrustAnchors('manufacturer');
    const anchors = [...cas.filter((c) => c.kind === 'root').map((c) => parseCertificate(c.certDer)), ...manufacturers.map((t) => parseCertificate(t.der))];
    const intermediates = [...cas.filter((c) => c.kind !== 'root').map((c) => parseCertificate(c.certDer)), ...rest];
    let anchor: CertInfo;
    try {
      ({ anchor } = validatePath(leaf, intermediates, anchors, now));
    } catch (e) {
      if (e instanceof ProblemError) throw cmpProblem('unauthorized', ['signerNotTrusted'], e.detail);
      throw e;
    }
    return { kind: 'signature', leaf, anchor: caFingerprint(anchor.der), signerSha256: leaf.fingerprintSha256 };
  }
}

/** Answers to a MAC-protected request: the same secret, a fresh salt (RFC 9483 §4.1.5). */
export function macProtector(v: Extract<Verified, { kind: 'mac' }>): Protector {
  const algorithm = answerMacAlgorithm(v.alg);
  return {
    algorithm,
    senderKid: v.senderKid,
    extraCerts: [],
    protect: async (part) => computeMac(algorithm, v.secret, part),
  };
}

/** Answers signed by the CA `ca`; extraCerts: its certificate and chain without the root. */
export async function caProtector(authority: Authority, ca: string): Promise<Protector> {
  const signer = await authority.caSigner(ca);
  const loaded = await authority.ca(ca);
  const chain = (await authority.chain(ca)).filter((c, i, all) => i === 0 || i < all.length - 1);
  const sig = signatureAlgorithmFor(signer.key);
  return {
    algorithm: AsnConvert.parse(sig.algorithmIdentifier, AlgorithmIdentifier),
    senderKid: loaded.info.ski,
    extraCerts: chain,
    protect: (part) => signer.sign(part, sig.hash),
  };
}
