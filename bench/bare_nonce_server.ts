/**
 * The floor of a nonce-signing OCSP responder in Node (bench/ocsp.ts): a
 * bare node:http server per core (node:cluster) that reads each POST and
 * makes the one ECDSA signature every nonce answer needs, over the same
 * number of bytes as a real answer's ResponseData plus the request, then
 * answers the bytes of a real nonce answer. No ASN.1, no status, no store:
 * what no responder can avoid. Usage: bare_nonce_server.ts PORT KEY.der ANSWER.der PROCESSES
 */
import cluster from 'node:cluster';
import { createPrivateKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

const [port, keyFile, answerFile, processes] = process.argv.slice(2);
if (cluster.isPrimary) {
  for (let i = 0; i < Number(processes); i++) cluster.fork();
  cluster.on('exit', (_w, code) => process.exit(code ?? 1));
} else {
  const key = createPrivateKey({ key: readFileSync(keyFile), format: 'der', type: 'pkcs8' });
  const answer = readFileSync(answerFile);
  // A real answer's ResponseData is most of the answer; the request's bytes
  // (its nonce) make every signature a new one.
  const tbs = answer.subarray(0, Math.min(answer.length, 250));
  const headers = { 'content-type': 'application/ocsp-response', 'cache-control': 'no-store' };
  http
    .createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        sign('sha256', Buffer.concat([tbs, ...chunks]), key);
        res.writeHead(200, headers);
        res.end(answer);
      });
    })
    .listen(Number(port), '127.0.0.1');
}
