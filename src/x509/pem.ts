import { ProblemError } from '../errors.js';

/** RFC 7468 textual encoding, 64 columns. */
export function pemEncode(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export interface PemBlock {
  label: string;
  der: Uint8Array;
}

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** All PEM blocks in `text`, in order. */
export function pemDecodeAll(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(PEM_RE)) {
    const body = m[2].replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw new ProblemError('bad_request', `PEM block "${m[1]}" is not valid base64`);
    out.push({ label: m[1], der: new Uint8Array(Buffer.from(body, 'base64')) });
  }
  return out;
}

/**
 * Accepts DER bytes, or PEM text with one of `labels`. Returns the DER of the
 * first matching block. Throws `code` when nothing usable is found.
 */
export function derFromPemOrDer(
  input: Uint8Array | string,
  labels: readonly string[],
  code: 'bad_request' | 'bad_csr' = 'bad_request',
): Uint8Array {
  if (typeof input !== 'string') {
    // Binary that starts with SEQUENCE is DER; anything else may be PEM text in bytes.
    if (input.length > 0 && input[0] === 0x30) return input;
    input = Buffer.from(input).toString('latin1');
  }
  const blocks = pemDecodeAll(input);
  const hit = blocks.find((b) => labels.includes(b.label));
  if (!hit) {
    const found = blocks.length ? `found ${blocks.map((b) => b.label).join(', ')}` : 'no PEM block found';
    throw new ProblemError(code, `expected PEM ${labels.join(' or ')} (or DER): ${found}`);
  }
  return hit.der;
}
