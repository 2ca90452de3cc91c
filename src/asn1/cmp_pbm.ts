/**
 * Parameters of MAC-based protection: PasswordBasedMac (RFC 4210 §5.1.3.1,
 * RFC 9481 §6.1.1) and PBMAC1 with PBKDF2 (RFC 8018 §A.2, §A.5; RFC 9481
 * §6.1.2).
 */
import { AsnProp, AsnPropTypes, AsnType, AsnTypeTypes, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';

/**
 * ```asn1
 * PBMParameter ::= SEQUENCE {
 *     salt                OCTET STRING,
 *     owf                 AlgorithmIdentifier,
 *     iterationCount      INTEGER,
 *     mac                 AlgorithmIdentifier }
 * ```
 */
export class PBMParameter {
  @AsnProp({ type: OctetString })
  salt = new OctetString();

  @AsnProp({ type: AlgorithmIdentifier })
  owf = new AlgorithmIdentifier();

  @AsnProp({ type: AsnPropTypes.Integer })
  iterationCount = 0;

  @AsnProp({ type: AlgorithmIdentifier })
  mac = new AlgorithmIdentifier();

  constructor(params: Partial<PBMParameter> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * salt CHOICE {
 *     specified       OCTET STRING,
 *     otherSource     AlgorithmIdentifier {{PBKDF2-SaltSources}} }
 * ```
 */
@AsnType({ type: AsnTypeTypes.Choice })
export class Pbkdf2Salt {
  @AsnProp({ type: OctetString })
  specified?: OctetString;

  @AsnProp({ type: AlgorithmIdentifier })
  otherSource?: AlgorithmIdentifier;

  constructor(params: Partial<Pbkdf2Salt> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * PBKDF2-params ::= SEQUENCE {
 *     salt CHOICE { ... },
 *     iterationCount INTEGER (1..MAX),
 *     keyLength INTEGER (1..MAX) OPTIONAL,
 *     prf AlgorithmIdentifier {{PBKDF2-PRFs}} DEFAULT algid-hmacWithSHA1 }
 * ```
 * RFC 9481 §6.1.2: keyLength MUST be present. A prf equal to the DEFAULT is
 * absent in DER, so `prf` undefined means hmacWithSHA1.
 */
export class PBKDF2Params {
  @AsnProp({ type: Pbkdf2Salt })
  salt = new Pbkdf2Salt();

  @AsnProp({ type: AsnPropTypes.Integer })
  iterationCount = 0;

  @AsnProp({ type: AsnPropTypes.Integer, optional: true })
  keyLength?: number;

  @AsnProp({ type: AlgorithmIdentifier, optional: true })
  prf?: AlgorithmIdentifier;

  constructor(params: Partial<PBKDF2Params> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * PBMAC1-params ::= SEQUENCE {
 *     keyDerivationFunc AlgorithmIdentifier {{PBMAC1-KDFs}},
 *     messageAuthScheme AlgorithmIdentifier {{PBMAC1-MACs}} }
 * ```
 */
export class PBMAC1Params {
  @AsnProp({ type: AlgorithmIdentifier })
  keyDerivationFunc = new AlgorithmIdentifier();

  @AsnProp({ type: AlgorithmIdentifier })
  messageAuthScheme = new AlgorithmIdentifier();

  constructor(params: Partial<PBMAC1Params> = {}) {
    Object.assign(this, params);
  }
}
