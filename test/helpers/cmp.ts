/**
 * The real `openssl cmp` client against a running fleetpki server (the EST
 * environment of est.ts: a data directory, config edits, both listeners),
 * and a reader for the answers it saved with -rspout.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createHash, createPublicKey, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, GeneralName, Name, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { bodyTypeOf, PKIBody } from '../../src/asn1/cmp_body.js';
import { CertConfirmContent, CertStatus } from '../../src/asn1/cmp_confirm.js';
import { InfoTypeAndValue, InfoTypeAndValues, PKIHeader } from '../../src/asn1/cmp_header.js';
import { id_it } from '../../src/asn1/cmp_oids.js';
import type { FailureBit, PKIStatusInfo } from '../../src/asn1/cmp_status.js';
import { POPOSigningKey, ProofOfPossession } from '../../src/asn1/crmf_pop.js';
import { CertReqMessages, CertReqMsg, CertRequest } from '../../src/asn1/crmf_request.js';
import { CertTemplate } from '../../src/asn1/crmf_template.js';
import * as der from '../../src/asn1/der.js';
import { computeMac } from '../../src/protocols/cmp/mac.js';
import { decodeMessage, encodeMessage, type Protector, type ReceivedMessage } from '../../src/protocols/cmp/message.js';
import { keyInfoOf, signatureAlgorithmFor } from '../../src/x509/algorithms.js';
import { ecKey, run, type EstEnv } from './est.js';

export interface CmpRun {
  status: number | null;
  /** stdout and stderr, with the config-file chatter dropped. */
  out: string;
}

/** The CMP URL of the plain-HTTP listener (or the HTTPS one). */
export function cmpUrl(env: EstEnv, o: { https?: boolean; label?: string } = {}): string {
  return `${o.https ? env.server.httpsUrl : env.server.httpUrl}/.well-known/cmp${o.label ? `/p/${o.label}` : ''}`;
}

/** Runs `openssl cmp -server URL args...` without blocking the event loop (the server is in this process). */
export async function opensslCmp(env: EstEnv, args: string[], o: { https?: boolean; label?: string } = {}): Promise<CmpRun> {
  const r = await run('openssl', ['cmp', '-server', cmpUrl(env, o), ...args], '', 60_000);
  const out = `${r.stdout}${r.stderr}`
    .split('\n')
    .filter((l) => !/OpenSSL configuration file|\[cmp\] section/.test(l))
    .join('\n');
  return { status: r.status, out };
}

/** An answer saved with -rspout: its body, status and failure bits. */
export function answerOf(file: string | Uint8Array): { msg: ReceivedMessage; body: string; status?: number; failInfo: FailureBit[]; text: string } {
  if (typeof file === 'string' && !existsSync(file)) throw new Error(`no answer saved at ${file}`);
  const msg = decodeMessage(typeof file === 'string' ? new Uint8Array(readFileSync(file)) : file);
  const body = msg.msg.body;
  const info = body.error?.pKIStatusInfo ?? (body.ip ?? body.cp ?? body.kup)?.response[0]?.status ?? body.rp?.status[0];
  return { msg, body: bodyTypeOf(body), status: info?.status, failInfo: info?.failInfo?.names() ?? [], text: (info?.statusString ?? []).join(' ') };
}

/** A fresh P-256 key file in the environment's work folder. */
let n = 0;
export async function newKey(env: EstEnv, name = `k${++n}`): Promise<string> {
  return ecKey(env.file(`${name}-${Date.now().toString(36)}.key`));
}

// ------------------------------------------------------- building requests
// For the edge cases openssl cannot be made to send: headers, protections
// and bodies built with the src/asn1 schemas and protected like a client.


export type RequestProtection = { mac: AlgorithmIdentifier; secret: string; kid: string } | { key: KeyObject; certs: Uint8Array[] };

export interface RequestOptions {
  body: PKIBody;
  /** DER Name of the sender; the NULL-DN when absent. */
  sender?: Uint8Array;
  transactionId?: Uint8Array | null;
  senderNonce?: Uint8Array | null;
  recipNonce?: Uint8Array;
  messageTime?: Date | null;
  pvno?: number;
  implicitConfirm?: boolean;
  protection?: RequestProtection;
  /** protectionAlg without protection, or the reverse. */
  breakProtection?: 'noAlg' | 'noBits';
}

export function macProtection(mac: AlgorithmIdentifier, secret: string, kid: string): Protector {
  // Parameters the server must refuse cannot make a MAC here either: send any bits.
  const protect = async (p: Uint8Array) => {
    try {
      return computeMac(mac, secret, p);
    } catch {
      return new Uint8Array(randomBytes(20));
    }
  };
  return { algorithm: mac, senderKid: new Uint8Array(Buffer.from(kid)), extraCerts: [], protect };
}

function signatureProtection(key: KeyObject, certs: Uint8Array[]): Protector {
  const alg = signatureAlgorithmFor(keyInfoOf(key));
  return {
    algorithm: AsnConvert.parse(alg.algorithmIdentifier, AlgorithmIdentifier),
    extraCerts: certs,
    protect: async (p) => new Uint8Array(cryptoSign(alg.hash, p, { key, dsaEncoding: 'der' })),
  };
}

/** A request PKIMessage (DER), protected as asked; defaults are what openssl sends. */
export async function buildRequest(o: RequestOptions, now: Date): Promise<Uint8Array> {
  const h = new PKIHeader({
    pvno: o.pvno ?? 2,
    sender: new GeneralName({ directoryName: o.sender ? AsnConvert.parse(o.sender, Name) : new Name() }),
    recipient: new GeneralName({ directoryName: new Name() }),
  });
  if (o.messageTime !== null) h.messageTime = new Date(Math.floor((o.messageTime ?? now).getTime() / 1000) * 1000);
  if (o.transactionId !== null) h.transactionID = new OctetString(o.transactionId ?? randomBytes(16));
  if (o.senderNonce !== null) h.senderNonce = new OctetString(o.senderNonce ?? randomBytes(16));
  if (o.recipNonce) h.recipNonce = new OctetString(new Uint8Array(o.recipNonce));
  if (o.implicitConfirm) h.generalInfo = new InfoTypeAndValues([new InfoTypeAndValue({ infoType: id_it.implicitConfirm, infoValue: Uint8Array.of(5, 0).buffer })]);
  const p = o.protection;
  const protector = !p ? undefined : 'mac' in p ? macProtection(p.mac, p.secret, p.kid) : signatureProtection(p.key, p.certs);
  if (protector) {
    h.protectionAlg = protector.algorithm;
    if (protector.senderKid) h.senderKID = new OctetString(protector.senderKid);
  }
  if (o.breakProtection === 'noBits') return encodeMessage(h, o.body);
  const signed = await encodeMessage(h, o.body, protector);
  if (o.breakProtection === 'noAlg') {
    delete h.protectionAlg;
    const unprotected = await encodeMessage(h, o.body);
    // Keep the [0] protection of the protected form after the bare header and body.
    const kids = der.readChildren(signed, der.readTlv(signed, 0));
    const bare = der.readChildren(unprotected, der.readTlv(unprotected, 0));
    return der.seq(der.slice(unprotected, bare[0]), der.slice(unprotected, bare[1]), ...kids.slice(2).map((k) => der.slice(signed, k)));
  }
  return signed;
}

/** One CertReqMsg for `key` with a signature POP over certReq (RFC 4211 §4.1). */
export function certReqMessages(key: KeyObject, o: { subject?: Uint8Array; certReqId?: number; noPublicKey?: boolean; badPop?: boolean; raVerified?: boolean; count?: number } = {}): CertReqMessages {
  const pub = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }));
  const template = new CertTemplate({ subject: o.subject ? AsnConvert.parse(o.subject, Name) : undefined });
  if (!o.noPublicKey) template.publicKey = AsnConvert.parse(pub, SubjectPublicKeyInfo);
  const certReq = new CertRequest({ certReqId: o.certReqId ?? 0, certTemplate: template });
  const alg = signatureAlgorithmFor(keyInfoOf(key));
  const signature = cryptoSign(alg.hash, new Uint8Array(AsnConvert.serialize(certReq)), { key, dsaEncoding: 'der' });
  if (o.badPop) signature[signature.length - 1] ^= 1;
  const popo = o.raVerified
    ? new ProofOfPossession({ raVerified: null })
    : new ProofOfPossession({ signature: new POPOSigningKey({ algorithmIdentifier: AsnConvert.parse(alg.algorithmIdentifier, AlgorithmIdentifier), signature: new Uint8Array(signature).buffer }) });
  const msg = new CertReqMsg({ certReq, popo });
  return new CertReqMessages(Array.from({ length: o.count ?? 1 }, () => msg));
}


/** A certConf for `certDer` (SHA-256 certHash), accepting unless a status is given. */
export function certConf(certDer: Uint8Array, o: { certReqId?: number; status?: PKIStatusInfo; hash?: Uint8Array } = {}): PKIBody {
  const certHash = new OctetString(o.hash ?? createHash('sha256').update(certDer).digest());
  return new PKIBody({ certConf: new CertConfirmContent([new CertStatus({ certHash, certReqId: o.certReqId ?? 0, statusInfo: o.status })]) });
}
