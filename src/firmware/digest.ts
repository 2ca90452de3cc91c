/**
 * The image digest, streamed: one pass over chunks of whatever size the
 * source yields, so a 1 GiB image costs a chunk of memory, not a gigabyte.
 */
import { createHash } from 'node:crypto';
import { ProblemError } from '../errors.js';
import type { DigestName } from './manifest.js';

export interface ImageDigest {
  digest: Uint8Array;
  size: number;
}

/**
 * Hashes a stream. With `maxBytes`, stops reading and throws
 * payload_too_large as soon as the stream passes it (an upload larger than
 * the configured limit is not read to its end).
 */
export async function digestStream(image: AsyncIterable<Uint8Array | string>, alg: DigestName, o: { maxBytes?: number } = {}): Promise<ImageDigest> {
  const h = createHash(alg);
  let size = 0;
  for await (const chunk of image) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += b.length;
    if (o.maxBytes !== undefined && size > o.maxBytes) throw new ProblemError('payload_too_large', `the image is larger than ${o.maxBytes} octets (firmware.maxImageBytes)`);
    h.update(b);
  }
  return { digest: new Uint8Array(h.digest()), size };
}

/** One chunk as a stream (an image already in memory, tests). */
export async function* bytesOf(b: Uint8Array): AsyncIterable<Uint8Array> {
  yield b;
}
