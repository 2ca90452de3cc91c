/**
 * Proof of possession in CRMF (RFC 4211 §4). IMPLICIT TAGS, except on the
 * CHOICE types GeneralName and POPOPrivKey, whose tags are explicit.
 */
import { AsnProp, AsnPropTypes, AsnType, AsnTypeTypes } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, GeneralName, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';

/**
 * ```asn1
 * PKMACValue ::= SEQUENCE {
 *     algId  AlgorithmIdentifier,
 *     value  BIT STRING }
 * ```
 */
export class PKMACValue {
  @AsnProp({ type: AlgorithmIdentifier })
  algId = new AlgorithmIdentifier();

  @AsnProp({ type: AsnPropTypes.BitString })
  value: ArrayBuffer = new ArrayBuffer(0);

  constructor(params: Partial<PKMACValue> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * authInfo CHOICE {
 *     sender              [0] GeneralName,
 *     publicKeyMAC        PKMACValue }
 * ```
 */
@AsnType({ type: AsnTypeTypes.Choice })
export class POPOSigningKeyInputAuthInfo {
  @AsnProp({ type: GeneralName, context: 0 })
  sender?: GeneralName;

  @AsnProp({ type: PKMACValue })
  publicKeyMAC?: PKMACValue;

  constructor(params: Partial<POPOSigningKeyInputAuthInfo> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * POPOSigningKeyInput ::= SEQUENCE {
 *     authInfo            CHOICE { ... },
 *     publicKey           SubjectPublicKeyInfo }
 * ```
 */
export class POPOSigningKeyInput {
  @AsnProp({ type: POPOSigningKeyInputAuthInfo })
  authInfo = new POPOSigningKeyInputAuthInfo();

  @AsnProp({ type: SubjectPublicKeyInfo })
  publicKey = new SubjectPublicKeyInfo();

  constructor(params: Partial<POPOSigningKeyInput> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * POPOSigningKey ::= SEQUENCE {
 *     poposkInput           [0] POPOSigningKeyInput OPTIONAL,
 *     algorithmIdentifier   AlgorithmIdentifier,
 *     signature             BIT STRING }
 * ```
 */
export class POPOSigningKey {
  @AsnProp({ type: POPOSigningKeyInput, context: 0, implicit: true, optional: true })
  poposkInput?: POPOSigningKeyInput;

  @AsnProp({ type: AlgorithmIdentifier })
  algorithmIdentifier = new AlgorithmIdentifier();

  @AsnProp({ type: AsnPropTypes.BitString })
  signature: ArrayBuffer = new ArrayBuffer(0);

  constructor(params: Partial<POPOSigningKey> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * SubsequentMessage ::= INTEGER {
 *     encrCert (0),
 *     challengeResp (1) }
 * ```
 */
export enum SubsequentMessage {
  encrCert = 0,
  challengeResp = 1,
}

/**
 * ```asn1
 * POPOPrivKey ::= CHOICE {
 *     thisMessage       [0] BIT STRING,         -- Deprecated
 *     subsequentMessage [1] SubsequentMessage,
 *     dhMAC             [2] BIT STRING,         -- Deprecated
 *     agreeMAC          [3] PKMACValue,
 *     encryptedKey      [4] EnvelopedData }
 * ```
 * fleetpki accepts only signature POP; encryptedKey is not modelled, so a
 * message using it fails to parse and is answered badDataFormat.
 */
@AsnType({ type: AsnTypeTypes.Choice })
export class POPOPrivKey {
  @AsnProp({ type: AsnPropTypes.BitString, context: 0, implicit: true })
  thisMessage?: ArrayBuffer;

  @AsnProp({ type: AsnPropTypes.Integer, context: 1, implicit: true })
  subsequentMessage?: SubsequentMessage;

  @AsnProp({ type: AsnPropTypes.BitString, context: 2, implicit: true })
  dhMAC?: ArrayBuffer;

  @AsnProp({ type: PKMACValue, context: 3, implicit: true })
  agreeMAC?: PKMACValue;

  constructor(params: Partial<POPOPrivKey> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * ProofOfPossession ::= CHOICE {
 *     raVerified        [0] NULL,
 *     signature         [1] POPOSigningKey,
 *     keyEncipherment   [2] POPOPrivKey,
 *     keyAgreement      [3] POPOPrivKey }
 * ```
 */
@AsnType({ type: AsnTypeTypes.Choice })
export class ProofOfPossession {
  @AsnProp({ type: AsnPropTypes.Null, context: 0, implicit: true })
  raVerified?: null;

  @AsnProp({ type: POPOSigningKey, context: 1, implicit: true })
  signature?: POPOSigningKey;

  @AsnProp({ type: POPOPrivKey, context: 2 })
  keyEncipherment?: POPOPrivKey;

  @AsnProp({ type: POPOPrivKey, context: 3 })
  keyAgreement?: POPOPrivKey;

  constructor(params: Partial<ProofOfPossession> = {}) {
    Object.assign(this, params);
  }
}
