/**
 * PKCS#11 URIs (RFC 7512): how fleetpki names a key inside a token, e.g.
 * `pkcs11:token=fleet-ca;object=root-ca;id=%01%a2;type=private`. The same
 * string works with OpenSSL's pkcs11 engine and p11tool, so an operator can
 * point other software at the key fleetpki uses.
 *
 * Only the path attributes fleetpki needs are read. A PIN in the URI
 * (`pin-value`, RFC 7512 §2.3) is refused: PINs come from the environment or
 * a file, never from a string that lands in config files and logs.
 */
import { ProblemError } from '../errors.js';

export interface Pkcs11Uri {
  token?: string;
  /** CKA_LABEL of the object. */
  object?: string;
  /** CKA_ID of the object. */
  id?: Uint8Array;
  type?: 'private' | 'public' | 'cert' | 'secret-key' | 'data';
}

const PATH_ATTRS = new Set(['token', 'object', 'id', 'type', 'manufacturer', 'model', 'serial', 'library-manufacturer', 'library-description', 'library-version', 'slot-description', 'slot-manufacturer', 'slot-id']);

/** RFC 7512 §2.3: pct-encoded octets; every other character stands for itself. */
function decodePct(s: string, what: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '%') {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new ProblemError('bad_request', `PKCS#11 URI: bad percent-encoding in ${what}`);
      out.push(parseInt(hex, 16));
      i += 2;
    } else {
      out.push(...Buffer.from(s[i], 'utf8'));
    }
  }
  return Uint8Array.from(out);
}

/** Unreserved characters (RFC 3986 §2.3) stay readable; everything else is %XX. */
function encodePct(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    s += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).padStart(2, '0')}`;
  }
  return s;
}

export function parsePkcs11Uri(uri: string): Pkcs11Uri {
  if (!uri.startsWith('pkcs11:')) throw new ProblemError('bad_request', `"${uri}" is not a PKCS#11 URI (RFC 7512: pkcs11:token=...;object=...)`);
  const [path, query = ''] = uri.slice('pkcs11:'.length).split('?', 2);
  if (/(^|&)pin-(value|source)=/.test(query)) throw new ProblemError('bad_request', 'PKCS#11 URI: a PIN may not be part of the URI; give it through the environment or a file');
  const out: Pkcs11Uri = {};
  for (const part of path.split(';')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq < 1) throw new ProblemError('bad_request', `PKCS#11 URI: "${part}" is not attribute=value`);
    const name = part.slice(0, eq).toLowerCase();
    const value = part.slice(eq + 1);
    if (!PATH_ATTRS.has(name)) throw new ProblemError('bad_request', `PKCS#11 URI: unknown path attribute "${name}"`);
    const bytes = decodePct(value, name);
    if (name === 'id') out.id = bytes;
    else if (name === 'token') out.token = Buffer.from(bytes).toString('utf8');
    else if (name === 'object') out.object = Buffer.from(bytes).toString('utf8');
    else if (name === 'type') {
      const t = Buffer.from(bytes).toString('utf8');
      if (!['private', 'public', 'cert', 'secret-key', 'data'].includes(t)) throw new ProblemError('bad_request', `PKCS#11 URI: unknown type "${t}"`);
      out.type = t as Pkcs11Uri['type'];
    }
    // Other attributes (manufacturer, serial, ...) narrow the token; fleetpki selects it by label.
  }
  return out;
}

export function formatPkcs11Uri(u: Pkcs11Uri): string {
  const parts: string[] = [];
  if (u.token !== undefined) parts.push(`token=${encodePct(Buffer.from(u.token, 'utf8'))}`);
  if (u.object !== undefined) parts.push(`object=${encodePct(Buffer.from(u.object, 'utf8'))}`);
  // CKA_ID is binary: always fully percent-encoded, as p11tool prints it.
  if (u.id !== undefined) parts.push(`id=${[...u.id].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')}`);
  if (u.type !== undefined) parts.push(`type=${u.type}`);
  return `pkcs11:${parts.join(';')}`;
}
