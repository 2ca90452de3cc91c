/**
 * A thread of the issuance floor (bench/issuance.ts): per certificate, what
 * node:crypto must do whatever the encoder: decode the CSR's public key
 * from its DER SPKI, verify the CSR signature, sign a TBSCertificate.
 * Plain JavaScript, so the thread starts without a TypeScript loader.
 *
 * A job: { items: Array<{ spki, info, sig }>, tbs, key } (see FloorJob in
 * bench/issuance.ts); the reply: { done, bad }.
 */
import { createPublicKey, sign, verify } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

const port = parentPort;
if (port) {
  port.postMessage('ready');
  port.on('message', (job) => {
    let bad = 0;
    for (const it of job.items) {
      const pub = createPublicKey({ key: Buffer.from(it.spki), format: 'der', type: 'spki' });
      if (!verify('sha256', it.info, { key: pub, dsaEncoding: 'der' }, it.sig)) bad++;
      sign('sha256', job.tbs, { key: job.key, dsaEncoding: 'der' });
    }
    port.postMessage({ done: job.items.length, bad });
  });
}
