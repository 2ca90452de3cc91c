/**
 * Object identifiers of CMP (RFC 4210, RFC 9480), CRMF (RFC 4211) and the
 * CMP algorithms profile (RFC 9481) that fleetpki reads or writes.
 */

/** id-it: InfoTypeAndValue types (RFC 4210 §5.3.19, RFC 9480 §2.3-2.5, §2.14). */
export const id_it = {
  caProtEncCert: '1.3.6.1.5.5.7.4.1',
  signKeyPairTypes: '1.3.6.1.5.5.7.4.2',
  encKeyPairTypes: '1.3.6.1.5.5.7.4.3',
  preferredSymmAlg: '1.3.6.1.5.5.7.4.4',
  caKeyUpdateInfo: '1.3.6.1.5.5.7.4.5',
  currentCRL: '1.3.6.1.5.5.7.4.6',
  unsupportedOIDs: '1.3.6.1.5.5.7.4.7',
  keyPairParamReq: '1.3.6.1.5.5.7.4.10',
  keyPairParamRep: '1.3.6.1.5.5.7.4.11',
  revPassphrase: '1.3.6.1.5.5.7.4.12',
  implicitConfirm: '1.3.6.1.5.5.7.4.13',
  confirmWaitTime: '1.3.6.1.5.5.7.4.14',
  origPKIMessage: '1.3.6.1.5.5.7.4.15',
  suppLangTags: '1.3.6.1.5.5.7.4.16',
  caCerts: '1.3.6.1.5.5.7.4.17',
  rootCaKeyUpdate: '1.3.6.1.5.5.7.4.18',
  certReqTemplate: '1.3.6.1.5.5.7.4.19',
  rootCaCert: '1.3.6.1.5.5.7.4.20',
  certProfile: '1.3.6.1.5.5.7.4.21',
  crlStatusList: '1.3.6.1.5.5.7.4.22',
  crls: '1.3.6.1.5.5.7.4.23',
} as const;

/** id-regCtrl / id-regInfo (RFC 4211 §6-7, RFC 9480 §2.5). */
export const id_regCtrl = {
  regToken: '1.3.6.1.5.5.7.5.1.1',
  authenticator: '1.3.6.1.5.5.7.5.1.2',
  pkiPublicationInfo: '1.3.6.1.5.5.7.5.1.3',
  pkiArchiveOptions: '1.3.6.1.5.5.7.5.1.4',
  oldCertID: '1.3.6.1.5.5.7.5.1.5',
  protocolEncrKey: '1.3.6.1.5.5.7.5.1.6',
  algId: '1.3.6.1.5.5.7.5.1.11',
  rsaKeyLen: '1.3.6.1.5.5.7.5.1.12',
} as const;

/** Protection and key derivation (RFC 4210 §5.1.3.1, RFC 9481 §6, RFC 8018). */
export const id_alg = {
  passwordBasedMac: '1.2.840.113533.7.66.13',
  pbmac1: '1.2.840.113549.1.5.14',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSHA1: '1.2.840.113549.2.7',
  hmacWithSHA224: '1.2.840.113549.2.8',
  hmacWithSHA256: '1.2.840.113549.2.9',
  hmacWithSHA384: '1.2.840.113549.2.10',
  hmacWithSHA512: '1.2.840.113549.2.11',
  /** RFC 2104 HMAC-SHA1 as OpenSSL names it "hmac-sha1" (IPsec arc). */
  hmacSha1Ipsec: '1.3.6.1.5.5.8.1.2',
  sha1: '1.3.14.3.2.26',
  sha224: '2.16.840.1.101.3.4.2.4',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
} as const;

/** Extended key usages for CMP entities (RFC 9480 §2.10). */
export const id_kp = {
  cmcCA: '1.3.6.1.5.5.7.3.27',
  cmcRA: '1.3.6.1.5.5.7.3.28',
  cmKGA: '1.3.6.1.5.5.7.3.32',
} as const;

/** id-ce-cRLReasons, carried in RevDetails.crlEntryDetails (RFC 4210 §5.3.9). */
export const id_ce_cRLReasons = '2.5.29.21';
export const id_ce_invalidityDate = '2.5.29.24';
