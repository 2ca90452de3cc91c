/**
 * General messages (RFC 9483 §4.3, RFC 9480 §2.3-2.6): genm → genp with the
 * CA certificates, a root CA update, a certificate request template, or
 * the current CRLs. CA certificates and CRLs are public, so a genm may come
 * unprotected; the template is personal when the genm's protection names a
 * registered device.
 */
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Extension, Extensions, SubjectAlternativeName, id_ce_subjectAltName } from '@peculiar/asn1-x509';
import { PKIBody } from '../../asn1/cmp_body.js';
import { CertReqTemplateContent, CRLStatusListValue, GenRepContent } from '../../asn1/cmp_general.js';
import { id_it, id_regCtrl } from '../../asn1/cmp_oids.js';
import { AttributeTypeAndValue, CertTemplate, Controls } from '../../asn1/crmf_template.js';
import * as der from '../../asn1/der.js';
import { crlUrl } from '../../authority/crl.js';
import type { DeviceRecord } from '../../store/store.js';
import { toGeneralName } from '../../x509/general_names.js';
import { buildName } from '../../x509/names.js';
import { beginTransaction, closeTransaction, type CmpDeps, type Exchange } from './exchange.js';
import { cmpProblem } from './failure.js';
import { itav } from './message.js';
import type { InfoTypeAndValue } from '../../asn1/cmp_header.js';

const OID = { ecPublicKey: '1.2.840.10045.2.1', p256: '1.2.840.10045.3.1.7', p384: '1.3.132.0.34', ed25519: '1.3.101.112', rsaEncryption: '1.2.840.113549.1.1.1' };

/** The device the genm's protection names, if any (MAC: senderKID; signature: our or a manufacturer certificate). */
async function deviceOf(deps: CmpDeps, ex: Exchange): Promise<DeviceRecord | undefined> {
  const v = ex.verified;
  if (v?.kind === 'mac') return deps.store.getDevice(v.deviceId);
  if (v?.kind === 'signature') {
    return deps.enrollment
      .identify({ kind: 'certificate', leaf: v.leaf, anchor: v.anchor })
      .then((r) => r.device)
      .catch(() => undefined);
  }
  return undefined;
}

/** RFC 9483 §4.3.3: the names the registry will certify, and the key type the profile wants (keySpec). */
async function certReqTemplate(deps: CmpDeps, ex: Exchange): Promise<Uint8Array> {
  const device = await deviceOf(deps, ex);
  const profileName = device?.profile ?? ex.profile ?? deps.config.est.defaultProfile;
  const profile = deps.authority.profile(profileName);
  const template = new CertTemplate();
  if (device) {
    const { subject, sans } = deps.enrollment.namesFor(device);
    template.subject = buildName(subject);
    if (sans.length) {
      const value = AsnConvert.serialize(new SubjectAlternativeName(sans.map(toGeneralName)));
      template.extensions = new Extensions([new Extension({ extnID: id_ce_subjectAltName, critical: false, extnValue: new OctetString(value) })]);
    }
  }
  const alg = profile.keyAlgorithms[0];
  const keySpec: AttributeTypeAndValue[] = [];
  const algId = (oid: string, param?: string) => new AlgorithmIdentifier({ algorithm: oid, parameters: param ? der.oid(param).slice().buffer : undefined });
  if (alg === 'ecdsa-p256' || alg === 'ecdsa-p384') keySpec.push(new AttributeTypeAndValue({ type: id_regCtrl.algId, value: AsnConvert.serialize(algId(OID.ecPublicKey, alg === 'ecdsa-p256' ? OID.p256 : OID.p384)) }));
  else if (alg === 'ed25519') keySpec.push(new AttributeTypeAndValue({ type: id_regCtrl.algId, value: AsnConvert.serialize(algId(OID.ed25519)) }));
  else {
    keySpec.push(new AttributeTypeAndValue({ type: id_regCtrl.algId, value: AsnConvert.serialize(new AlgorithmIdentifier({ algorithm: OID.rsaEncryption, parameters: null })) }));
    keySpec.push(new AttributeTypeAndValue({ type: id_regCtrl.rsaKeyLen, value: der.integer(Number(alg.slice(4))).slice().buffer }));
  }
  return new Uint8Array(AsnConvert.serialize(new CertReqTemplateContent({ certTemplate: template, keySpec: new Controls(keySpec) })));
}

/**
 * RFC 9483 §4.3.4: for each source the client names (a CA by issuer name,
 * or a CRL distribution point URL of ours), the newest CRL, unless the
 * client's thisUpdate shows it has that one already.
 */
async function crls(deps: CmpDeps, value: ArrayBuffer | undefined): Promise<Uint8Array | undefined> {
  if (!value) throw cmpProblem('bad_request', ['badRequest'], 'crlStatusList needs a CRLStatusListValue');
  const list = AsnConvert.parse(value, CRLStatusListValue);
  const cas = await deps.store.listCas();
  const out: Uint8Array[] = [];
  for (const status of list) {
    const issuers = (status.source.issuer ?? []).flatMap((g) => (g.directoryName ? [Buffer.from(AsnConvert.serialize(g.directoryName))] : []));
    const uris = new Set((status.source.dpn?.fullName ?? []).map((g) => g.uniformResourceIdentifier).filter((u): u is string => !!u));
    const known = status.thisUpdate?.getTime().getTime();
    for (const ca of cas) {
      const byIssuer = issuers.some((n) => n.equals(Buffer.from(parseSubject(ca.certDer))));
      // A distribution point names the full CRL (shard 0) or one partition.
      const shards = byIssuer ? [0] : [0, ...(await deps.store.listCrlShards(ca.name))].filter((s) => uris.has(crlUrl(deps.config.publicUrl, ca.name, 'base', s)));
      for (const shard of new Set(shards)) {
        const crl = await deps.store.getLatestCrl(ca.name, shard, 'base');
        if (crl && !(known !== undefined && crl.thisUpdate.getTime() <= known)) out.push(crl.der);
      }
    }
  }
  return out.length ? der.seq(...out) : undefined;
}

function parseSubject(certDer: Uint8Array): Uint8Array {
  // TBSCertificate: [0] version, serial, signature, issuer, validity, subject.
  const top = der.readTlv(certDer, 0);
  const [tbs] = der.readChildren(certDer, top);
  const kids = der.readChildren(certDer, tbs);
  return der.slice(certDer, kids[kids[0].tag === 0xa0 ? 5 : 4]);
}

async function answer(deps: CmpDeps, ex: Exchange, req: InfoTypeAndValue): Promise<InfoTypeAndValue> {
  switch (req.infoType) {
    case id_it.caCerts:
      // RFC 9483 §4.3.1: the CA certificates, here the issuing chain up to the root.
      return itav(id_it.caCerts, der.seq(...(await deps.authority.chain(ex.ca))));
    case id_it.rootCaCert:
    case id_it.rootCaKeyUpdate:
      // RFC 9483 §4.3.2: no root CA key update is on offer: the value is absent.
      return itav(id_it.rootCaKeyUpdate);
    case id_it.certReqTemplate:
      return itav(id_it.certReqTemplate, await certReqTemplate(deps, ex));
    case id_it.currentCRL: {
      // RFC 4210 §5.3.19.6: the CA's current (full) CRL; absent before the first one.
      const crl = await deps.store.getLatestCrl(ex.ca, 0, 'base');
      return itav(id_it.currentCRL, crl?.der);
    }
    case id_it.crlStatusList:
      return itav(id_it.crls, await crls(deps, req.infoValue));
    default:
      throw cmpProblem('bad_request', ['badRequest'], `genm info type ${req.infoType} is not supported (caCerts, rootCaCert, certReqTemplate, currentCRL, crlStatusList are)`);
  }
}

export async function general(deps: CmpDeps, ex: Exchange): Promise<PKIBody> {
  const items = ex.req.msg.body.genm!;
  if (items.length === 0) throw cmpProblem('bad_request', ['badRequest'], 'a genm names at least one info type (RFC 9483 §4.3)');
  const tx = await beginTransaction(deps, ex);
  try {
    const out: InfoTypeAndValue[] = [];
    for (const i of items) out.push(await answer(deps, ex, i));
    await closeTransaction(deps, tx.id, 'open', `genp: ${items.map((i) => i.infoType).join(', ')}`, ex.now);
    return new PKIBody({ genp: new GenRepContent(out) });
  } catch (e) {
    await closeTransaction(deps, tx.id, 'open', 'refused', ex.now);
    throw e;
  }
}
