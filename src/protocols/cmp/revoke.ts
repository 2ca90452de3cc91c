/**
 * Revocation over CMP (RFC 9483 §4.2): rr → rp. The request is signed with
 * the certificate it revokes; the registry's enrollment core checks that it
 * is a certificate of ours held by a device (Enrollment.revokeOwn).
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import { PKIBody } from '../../asn1/cmp_body.js';
import { id_ce_cRLReasons, id_ce_invalidityDate } from '../../asn1/cmp_oids.js';
import { PKIStatusInfos, RevRepContent } from '../../asn1/cmp_revocation.js';
import { PKIStatus, PKIStatusInfo } from '../../asn1/cmp_status.js';
import * as der from '../../asn1/der.js';
import { ProblemError } from '../../errors.js';
import { REVOCATION_REASONS, type RevocationReason } from '../../store/store.js';
import { audited } from './enroll.js';
import { beginTransaction, closeTransaction, type CmpDeps, type Exchange } from './exchange.js';
import { cmpProblem } from './failure.js';

const REASON_BY_CODE = new Map<number, RevocationReason>(Object.entries(REVOCATION_REASONS).map(([name, code]) => [code, name as RevocationReason]));

/** The reasonCode and invalidityDate CRL entry extensions of a RevDetails (RFC 5280 §5.3.1-2). */
function entryDetails(ex: Exchange): { reason: RevocationReason; invalidityDate?: Date } {
  let reason: RevocationReason = 'unspecified';
  let invalidityDate: Date | undefined;
  for (const ext of ex.req.msg.body.rr![0].crlEntryDetails ?? []) {
    const v = new Uint8Array(ext.extnValue.buffer);
    try {
      const t = der.expectSingleTlv(v, ext.extnID);
      if (ext.extnID === id_ce_cRLReasons) {
        if (t.tag !== der.TAG.ENUMERATED || t.end - t.contentStart !== 1) throw new Error('not a one-octet ENUMERATED');
        const r = REASON_BY_CODE.get(v[t.contentStart]);
        if (!r || r === 'removeFromCRL') throw new Error(`reason code ${v[t.contentStart]}`);
        reason = r;
      } else if (ext.extnID === id_ce_invalidityDate) {
        if (t.tag !== der.TAG.GeneralizedTime) throw new Error('not a GeneralizedTime');
        const s = Buffer.from(der.content(v, t)).toString('ascii');
        const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
        if (!m) throw new Error(`"${s}"`);
        invalidityDate = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
      } else if (ext.critical) {
        throw new Error('critical and unknown');
      }
    } catch (e) {
      throw cmpProblem('bad_request', ['badRequest'], `crlEntryDetails ${ext.extnID}: ${(e as Error).message}`);
    }
  }
  return { reason, invalidityDate };
}

export async function revoke(deps: CmpDeps, ex: Exchange): Promise<PKIBody> {
  const v = ex.verified;
  if (v?.kind !== 'signature') throw cmpProblem('unauthorized', ['notAuthorized'], 'a revocation request is signed with the certificate it revokes (RFC 9483 §4.2)');
  const rr = ex.req.msg.body.rr!;
  if (rr.length !== 1) throw cmpProblem('bad_request', ['badRequest'], `an rr carries exactly one RevDetails (RFC 9483 §4.2), not ${rr.length}`);
  const t = rr[0].certDetails;
  if (!t.serialNumber || !t.issuer) throw cmpProblem('bad_request', ['badCertId'], 'certDetails must name issuer and serialNumber (RFC 9483 §4.2)');
  const serial = Buffer.from(t.serialNumber).toString('hex');
  const issuer = new Uint8Array(AsnConvert.serialize(t.issuer));
  if (serial !== v.leaf.serial || Buffer.compare(Buffer.from(issuer), Buffer.from(v.leaf.issuerDer)) !== 0) {
    throw cmpProblem('forbidden', ['badCertId'], `the request revokes ${serial}, but is signed with certificate ${v.leaf.serial}: a device revokes the certificate it signs with`);
  }
  const details = entryDetails(ex);
  const tx = await beginTransaction(deps, ex);
  try {
    await deps.enrollment.revokeOwn({ credential: { kind: 'certificate', leaf: v.leaf, anchor: v.anchor }, serial, ...details, via: 'cmp', remote: ex.remote });
  } catch (e) {
    if (e instanceof ProblemError) audited.add(e);
    await closeTransaction(deps, tx.id, 'open', `refused: ${e instanceof ProblemError ? e.code : 'internal'}`, ex.now);
    throw e;
  }
  await closeTransaction(deps, tx.id, 'open', `revoked ${serial} (${details.reason})`, ex.now);
  return new PKIBody({ rp: new RevRepContent({ status: new PKIStatusInfos([new PKIStatusInfo({ status: PKIStatus.accepted })]) }) });
}
