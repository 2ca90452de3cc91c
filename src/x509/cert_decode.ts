/**
 * A certificate decoded for people (the web console's certificate page):
 * every field and every extension as text, known extensions by name and
 * unknown ones as hex. @peculiar/x509 writes the text; this only splits it
 * per extension so a page can list them.
 */
import 'reflect-metadata';
import { X509Certificate } from '@peculiar/x509';
import { rethrowAs } from '../errors.js';

const BASIC_CONSTRAINTS = '2.5.29.19';

export interface DecodedExtension {
  oid: string;
  /** The extension's name ("Subject Alternative Name"), or its OID when unknown. */
  name: string;
  critical: boolean;
  /** The decoded value, one line per item. */
  lines: string[];
}

export interface DecodedCertificate {
  version: number;
  signatureAlgorithm: string;
  extensions: DecodedExtension[];
  /** The whole certificate as text, like `openssl x509 -text`. */
  text: string;
}

export function decodeCertificate(der: Uint8Array): DecodedCertificate {
  const c = rethrowAs('bad_request', 'not a valid X.509 certificate', () => new X509Certificate(der));
  const extensions = c.extensions.map((e) => {
    const [head, ...rest] = e.toString('text').split('\n');
    const name = head.replace(/:( critical)?$/, '');
    const lines = rest.map((l) => l.replace(/^ {2}/, '')).filter((l) => l.trim());
    // The library prints nothing for defaults (basicConstraints cA FALSE): say so, or show the bytes.
    if (lines.length === 0) lines.push(e.type === BASIC_CONSTRAINTS ? 'CA: false' : Buffer.from(e.value).toString('hex'));
    return { oid: e.type, name, critical: e.critical, lines };
  });
  const text = c.toString('text');
  const version = /Version: v(\d)/.exec(text)?.[1];
  return { version: version ? Number(version) : 3, signatureAlgorithm: /Signature Algorithm: (\S+)/.exec(text)?.[1] ?? 'unknown', extensions, text };
}
