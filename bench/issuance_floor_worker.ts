/**
 * A thread of the issuance floor (bench/issuance.ts): per certificate, what
 * node:crypto must do whatever the encoder: decode the CSR's public key
 * from its DER SPKI, verify the CSR signature, sign a TBSCertificate.
 */
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

export interface FloorJob {
  items: Array<{ spki: Uint8Array; info: Uint8Array; sig: Uint8Array }>;
  tbs: Uint8Array;
  key: KeyObject;
}

const port = parentPort;
if (port) {
  port.postMessage('ready');
  port.on('message', (job: FloorJob) => {
    let bad = 0;
    for (const it of job.items) {
      const pub = createPublicKey({ key: Buffer.from(it.spki), format: 'der', type: 'spki' });
      if (!verify('sha256', it.info, { key: pub, dsaEncoding: 'der' }, it.sig)) bad++;
      sign('sha256', job.tbs, { key: job.key, dsaEncoding: 'der' });
    }
    port.postMessage({ done: job.items.length, bad });
  });
}
