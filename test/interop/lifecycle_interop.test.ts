/**
 * Issue 8 against a running server and real peers: an ownership transfer
 * made with the CLI revokes the old certificate (openssl ocsp shows
 * affiliationChanged) and the device re-enrolls over EST (curl) for its new
 * domain; a device-management system's event signed with the documented
 * openssl/curl shell lines (and its replay refused); a retired device
 * refused by EST; operators signing in with client certificates (curl
 * --cert), refused once revoked; expiry notices from the server's timer to
 * a local HTTP receiver, signed and sent once per certificate and threshold.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { certOfPem, certsOfPkcs7, curl, ecKey, fleetpkiAsync, opensslCsrB64, registerDevice, run, startEstEnv, type CurlOptions, type EstEnv, type HttpAnswer } from '../helpers/est.js';

let env: EstEnv;
let n = 0;

async function newCsr(subj: string): Promise<{ key: string; b64: string; der: string }> {
  const key = await ecKey(env.file(`k${++n}.key`));
  return { key, ...(await opensslCsrB64(env, `r${n}`, key, subj)) };
}

function est(op: string, csr: { b64: string }, o: Omit<CurlOptions, 'dataFile'> = {}): Promise<HttpAnswer> {
  return curl(env, `/.well-known/est/${op}`, { dataFile: csr.b64, contentType: 'application/pkcs10', ...o });
}

async function enrollWithSecret(id: string, secret: string, name = id): Promise<{ cert: string; key: string; serial: string; sans: string[] }> {
  const csr = await newCsr(`/CN=${id}`);
  const r = await est('simpleenroll', csr, { user: `${id}:${secret}` });
  assert.equal(r.status, 200, r.body);
  const [pem] = await certsOfPkcs7(env, r.body);
  const file = env.file(`${name}.pem`);
  writeFileSync(file, pem);
  const info = certOfPem(pem);
  return { cert: file, key: csr.key, serial: info.serial, sans: info.sans.map((s) => `${s.type}:${s.value}`) };
}

const D = () => ['--dir', env.dir];

async function cli(args: string[]): Promise<string> {
  const r = await fleetpkiAsync([...args, ...D()]);
  assert.equal(r.status, 0, `fleetpki ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** `openssl ocsp` against the running responder; retries until `want` shows (the responder polls the store's change feed). */
async function ocspShows(certFile: string, want: RegExp): Promise<string> {
  let out = '';
  for (let i = 0; i < 20; i++) {
    const r = await run('openssl', ['ocsp', '-url', `${env.server.httpUrl}/ocsp`, '-CAfile', env.rootPem, '-issuer', env.issuingPem, '-cert', certFile, '-resp_text']);
    out = r.stdout + r.stderr;
    assert.match(r.stderr, /Response verify OK/, out);
    if (want.test(out)) return out;
    await new Promise((res) => setTimeout(res, 250));
  }
  assert.fail(`openssl ocsp never showed ${want}: ${out}`);
}

before(async () => {
  env = await startEstEnv({
    config: (c) => {
      c.lifecycle = { ...c.lifecycle, expiryCheckSeconds: 1 };
    },
  });
});

after(async () => {
  await env?.close();
});

describe('ownership transfer: revoked (affiliationChanged, openssl ocsp), re-enrolled over EST for the new domain', () => {
  it('ok-transfer with the CLI, OCSP shows the old certificate revoked, the device re-enrolls with curl', async () => {
    const secret = await registerDevice(env.ctx, { id: 'tr-1', domain: 'plant-a', owner: 'Acme' });
    const first = await enrollWithSecret('tr-1', secret, 'tr-1-old');
    assert.ok(first.sans.includes('uri:urn:fleetpki:domain:plant-a'), first.sans.join());
    await ocspShows(first.cert, /tr-1-old\.pem: good/);

    const out = JSON.parse(await cli(['device', 'transfer', 'tr-1', '--owner', 'Globex', '--domain', 'plant-b', '--secret', '--note', 'sold to Globex', '--json']));
    assert.equal(out.device.state, 'registered');
    assert.deepEqual(out.event.revokedSerials, [first.serial]);
    const r = await ocspShows(first.cert, /tr-1-old\.pem: revoked/);
    assert.match(r, /Reason: affiliationChanged/);

    // The old certificate no longer renews, whatever the CSR.
    const renew = await est('simplereenroll', await newCsr('/CN=tr-1'), { cert: first.cert, key: first.key });
    assert.equal(renew.status, 403, renew.body);

    const second = await enrollWithSecret('tr-1', out.secret, 'tr-1-new');
    assert.ok(second.sans.includes('uri:urn:fleetpki:domain:plant-b'), second.sans.join());
    assert.ok(!second.sans.includes('uri:urn:fleetpki:domain:plant-a'));
    await ocspShows(second.cert, /tr-1-new\.pem: good/);

    const show = JSON.parse(await cli(['device', 'show', 'tr-1', '--json']));
    assert.equal(show.owner, 'Globex');
    assert.equal(show.state, 'active');
    assert.equal(show.currentSerial, second.serial);
    assert.deepEqual(show.events.map((e: { kind: string; actor: string; source: string }) => `${e.kind}/${e.source}`), ['transferred/cli']);
    assert.match(show.events[0].actor, /^cli:/);
    assert.equal(show.events[0].details.note, 'sold to Globex');
    assert.equal(show.certificates.find((c: { serial: string }) => c.serial === first.serial).revocationReason, 'affiliationChanged');
  });
});

describe('inbound webhook with the shell lines of docs/lifecycle.md (openssl dgst -hmac, curl)', () => {
  let secret = '';
  before(async () => {
    secret = (await cli(['webhook', 'create', 'crm', '--inbound'])).trim();
    assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
  });

  /** The documented example, run by bash: sign the body with openssl, POST it with curl. */
  async function shellDelivery(body: string): Promise<{ status: string; body: string }> {
    const bodyFile = env.file(`hook-${++n}.json`);
    writeFileSync(bodyFile, body);
    const script = [
      'set -eu',
      'SIG=$(openssl dgst -sha256 -hmac "$HOOK_SECRET" -hex < "$BODY_FILE" | sed "s/^.*= //")',
      'curl -s -o "$BODY_FILE.out" -w "%{http_code}" --cacert "$CA" -H "Content-Type: application/json" -H "X-Fleetpki-Source: crm" -H "X-Fleetpki-Signature: sha256=$SIG" --data-binary @"$BODY_FILE" "$URL/api/v1/hooks/lifecycle"',
    ].join('\n');
    const r = await run('env', [`HOOK_SECRET=${secret}`, `BODY_FILE=${bodyFile}`, `CA=${env.rootPem}`, `URL=${env.base}`, 'bash', '-c', script]);
    assert.equal(r.status, 0, r.stderr);
    return { status: r.stdout, body: readFileSync(`${bodyFile}.out`, 'utf8') };
  }

  it('ok-a signed "retired" event retires the device; the replay → 409; a retired device is refused by EST', async () => {
    const s = await registerDevice(env.ctx, { id: 'wh-1' });
    const c = await enrollWithSecret('wh-1', s);
    const body = JSON.stringify({ id: 'crm-0001', timestamp: Math.floor(Date.now() / 1000), device: 'wh-1', event: 'retired', note: 'scrapped' });
    const ok = await shellDelivery(body);
    assert.equal(ok.status, '201', ok.body);
    assert.equal(JSON.parse(ok.body).state, 'retired');
    await ocspShows(c.cert, /Reason: cessationOfOperation/);
    const replay = await shellDelivery(body);
    assert.equal(replay.status, '409', replay.body);
    // The sender's secret check: a body changed after signing is refused.
    const sig = createHmac('sha256', secret).update(body).digest('hex');
    const tampered = await curl(env, '/api/v1/hooks/lifecycle', { body: body.replace('scrapped', 'fixed'), contentType: 'application/json', headers: ['X-Fleetpki-Source: crm', `X-Fleetpki-Signature: sha256=${sig}`] });
    assert.equal(tampered.status, 401, tampered.body);
    // Retired: a new secret is refused, and the old certificate cannot renew.
    assert.notEqual((await fleetpkiAsync(['device', 'secret', 'wh-1', ...D()])).status, 0);
    const renew = await est('simplereenroll', await newCsr('/CN=wh-1'), { cert: c.cert, key: c.key });
    assert.equal(renew.status, 403, renew.body);
  });
});

describe('operators with client certificates (mutual TLS, curl --cert)', () => {
  it('ok-a bound certificate signs in its operator with its role; unbound or revoked ones are refused', async () => {
    const csr = await newCsr('/CN=alice operator');
    const csrPem = env.file('alice.csr.pem');
    assert.equal((await run('openssl', ['req', '-in', csr.der, '-inform', 'DER', '-out', csrPem])).status, 0);
    const pem = env.file('alice.pem');
    await cli(['cert', 'issue', '--csr', csrPem, '--profile', 'device-tls', '--out', pem]);
    const serial = certOfPem(readFileSync(pem, 'utf8')).serial;
    const as = (path: string, o: CurlOptions = {}) => curl(env, path, { cert: pem, key: csr.key, ...o });

    assert.equal((await as('/api/v1/devices')).status, 401, 'not bound yet');
    await cli(['operator', 'add-cert', '--serial', serial, '--name', 'alice', '--role', 'auditor']);
    const list = await as('/api/v1/devices');
    assert.equal(list.status, 200, list.body);
    const refused = await as('/api/v1/devices/wh-1/events', { body: '{"event":"lost"}', contentType: 'application/json' });
    assert.equal(refused.status, 403, refused.body);
    assert.match(refused.body, /role auditor may not device lifecycle/);
    // Attributed: reads are not audited, but what the operator may do is logged by name.
    const bound = (await env.ctx.store.listAudit({ action: 'operator.cert.add' })).at(-1)!;
    assert.equal(bound.target, serial);

    await cli(['cert', 'revoke', serial, '--reason', 'keyCompromise']);
    const after = await as('/api/v1/devices');
    assert.equal(after.status, 401, after.body);
    assert.match(after.body, /revoked/);
  });

  it('ok-a device certificate (bound to no operator) gets no access; a bearer token still works alongside', async () => {
    const s = await registerDevice(env.ctx, { id: 'op-dev' });
    const c = await enrollWithSecret('op-dev', s);
    assert.equal((await curl(env, '/api/v1/devices', { cert: c.cert, key: c.key })).status, 401);
    const token = (await cli(['token', 'create', '--role', 'auditor', '--name', 'bob'])).trim();
    assert.equal((await curl(env, '/api/v1/devices', { headers: [`Authorization: Bearer ${token}`] })).status, 200);
  });
});

describe('expiry notices from the server timer to a local HTTP receiver', () => {
  let receiver: Server;
  let url = '';
  let failNext = 0;
  const got: Array<{ headers: IncomingMessage['headers']; body: string }> = [];

  before(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (b) => (body += b));
      req.on('end', () => {
        if (failNext > 0) {
          failNext--;
          res.writeHead(503).end();
          return;
        }
        got.push({ headers: req.headers, body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/notices`;
  });

  after(async () => {
    await new Promise((r) => receiver.close(r));
  });

  it('ok-a certificate 5 days from expiry: one signed notice for the 7-day threshold, retried after a 503, never twice', async () => {
    const created = JSON.parse(await cli(['webhook', 'create', 'ops', '--url', url, '--thresholds', '30,7,1', '--json']));
    const secret: string = created.secret;
    failNext = 1;
    const csr = await newCsr('/CN=short-lived');
    const csrPem = env.file('short.csr.pem');
    assert.equal((await run('openssl', ['req', '-in', csr.der, '-inform', 'DER', '-out', csrPem])).status, 0);
    const r = await env.ctx.authority.issue({ csr: readFileSync(csrPem, 'utf8'), profile: 'device-tls', validityDays: 5, actor: 'test' });
    const deadline = Date.now() + 15_000;
    while (!got.some((g) => g.body.includes(r.record.serial)) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
    const mine = got.filter((g) => g.body.includes(r.record.serial));
    assert.equal(mine.length, 1, 'delivered once the receiver answered 2xx');
    const n1 = mine[0];
    assert.equal(n1.headers['x-fleetpki-signature'], `sha256=${createHmac('sha256', secret).update(n1.body).digest('hex')}`);
    const doc = JSON.parse(n1.body);
    assert.equal(doc.type, 'certificate.expiring');
    assert.equal(doc.thresholdDays, 7);
    assert.ok(Math.abs(doc.timestamp * 1000 - Date.now()) < 60_000);
    assert.deepEqual(doc.certificates.map((c: { serial: string }) => c.serial).filter((s: string) => s === r.record.serial), [r.record.serial]);
    // Three more timer runs: nothing new for this certificate.
    await new Promise((res) => setTimeout(res, 3500));
    assert.equal(got.filter((g) => g.body.includes(r.record.serial)).length, 1);
    // The report shows it too.
    const rep = JSON.parse(await cli(['report', 'expiring', '--days', '7', '--json']));
    assert.ok(rep.expiring.some((c: { serial: string }) => c.serial === r.record.serial));
  });
});
