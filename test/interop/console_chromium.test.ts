/**
 * The web console (issue 10) in a real browser: Debian's Chromium driven by
 * playwright-core (never a downloaded browser). An operator signs in with the
 * keyboard, registers a device and gets its one-time secret, the device
 * enrolls over EST with curl and openssl, the console shows it active with
 * its certificate and the charts show the data, the operator revokes it from
 * the console and `openssl ocsp` reports it revoked, a pending enrollment is
 * approved from the console and the device's retry issued, a device is
 * transferred (OCSP: affiliationChanged) and a supplier manifest imported
 * from the console; an auditor sees the
 * register action refused by the server. No page may break the CSP.
 * Screenshots go to test-artifacts/console/.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { signManifest } from '../../src/registry/supply_cms.js';
import { encodeManifest } from '../../src/registry/supply_manifest.js';
import { REPO } from '../helpers/data_dir.js';
import { certsOfPkcs7, curl, ecKey, openssl, opensslCsrB64, startEstEnv, type EstEnv } from '../helpers/est.js';
import { makeSupplier } from '../helpers/supplier.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(REPO, 'test-artifacts', 'console');

describe('web console in Chromium', () => {
  let env: EstEnv;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let auditorToken: string;
  let adminToken: string;
  const cspViolations: string[] = [];
  const pageErrors: string[] = [];
  let secret = '';
  let serial = '';

  const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const goto = async (hash: string) => {
    await page.goto(`${env.base}/console/${hash}`);
  };

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    // 30-day device certificates, so the enrolled one lands in the 12-week expiry chart.
    env = await startEstEnv({ config: (c) => (c.profiles = { ...c.profiles, 'device-tls': { validityDays: 30 } }) });
    adminToken = (await env.ctx.operators.createToken({ name: 'console-admin', role: 'admin', actor: 'test' })).token;
    auditorToken = (await env.ctx.operators.createToken({ name: 'auditor-1', role: 'auditor', actor: 'test' })).token;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    // The listener's certificate is from the fleet's own CA, which this throwaway profile does not know.
    context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 768 } });
    page = await context.newPage();
    page.on('console', (m) => {
      if (/Content Security Policy|Refused to (load|execute|apply)/i.test(m.text())) cspViolations.push(m.text());
    });
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('dialog', (d) => void d.accept());
  });

  after(async () => {
    await browser?.close();
    await env?.close();
  });

  it('ok signs in with the keyboard (token field, Enter) and shows the operator', async () => {
    await goto('');
    const token = page.getByLabel('API token');
    await token.waitFor();
    // Page functions as text: this file is type-checked without the DOM library.
    assert.equal(await page.evaluate("document.activeElement?.getAttribute('name')"), 'token', 'the token field has focus');
    await page.keyboard.type(adminToken);
    await shot('01-sign-in');
    await page.keyboard.press('Enter');
    await page.locator('#operator').waitFor();
    assert.match(await page.locator('#operator').innerText(), /console-admin \(admin\)/);
    const cookies = await context.cookies();
    const c = cookies.find((x) => x.name === 'fleetpki_session');
    assert.ok(c && c.httpOnly && c.secure && c.sameSite === 'Strict', JSON.stringify(c));
    assert.equal(await page.evaluate('document.cookie'), '', 'scripts cannot read the session cookie');
  });

  it('ok registers a device and shows its one-time secret once', async () => {
    await goto('#/devices');
    await page.getByLabel('Device id (serial number)').fill('web-1');
    await page.getByLabel('Domain').last().fill('plant-a');
    await page.getByLabel('Model').last().fill('sensor-x');
    await page.getByRole('button', { name: 'Register' }).click();
    secret = (await page.locator('#one-time-secret').innerText()).trim();
    assert.match(secret, /^[A-Za-z0-9_-]{20,}$/);
    await shot('02-registered');
    const d = await env.ctx.store.getDevice('web-1');
    assert.equal(d?.state, 'registered');
    assert.equal(d?.domain, 'plant-a');
  });

  it('ok the device list filters by domain and state; the keyboard reaches the skip link first', async () => {
    await goto('#/devices?domain=plant-a');
    await page.locator('table').getByRole('link', { name: 'web-1' }).waitFor();
    await goto('#/devices?state=suspended');
    await page.getByText('No device matches.').waitFor();
    await page.reload();
    await page.getByText('No device matches.').waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement?.textContent'), 'Skip to content');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate('document.activeElement?.id'), 'main');
  });

  it('ok the device enrolls over EST (curl, openssl) and the console shows it active with its certificate', async () => {
    const key = await ecKey(env.file('web-1.key'));
    const csr = await opensslCsrB64(env, 'web-1', key, '/CN=web-1');
    const r = await curl(env, '/.well-known/est/simpleenroll', { dataFile: csr.b64, contentType: 'application/pkcs10', user: `web-1:${secret}` });
    assert.equal(r.status, 200, r.body);
    const [pem] = await certsOfPkcs7(env, r.body);
    writeFileSync(env.file('web-1.pem'), pem);
    await goto('#/devices/web-1');
    await page.locator('#device-certificates').waitFor();
    assert.match(await page.locator('.facts').innerText(), /active/);
    serial = (await env.ctx.store.getDevice('web-1'))!.currentSerial!;
    assert.match(await page.locator('#device-certificates').innerText(), new RegExp(serial));
    assert.match(await page.locator('#device-events').innerText(), /device\.register/);
    await shot('03-device-active');
  });

  it('ok the overview charts render with data', async () => {
    await goto('');
    const enrolled = page.locator('svg#chart-enrollments');
    await enrolled.waitFor();
    assert.ok(Number(await enrolled.getAttribute('data-total')) >= 1);
    assert.ok(Number(await page.locator('svg#chart-expiring').getAttribute('data-total')) >= 1);
    const heights = (await page.evaluate("[...document.querySelectorAll('svg#chart-enrollments rect.bar')].map((r) => r.getBBox().height)")) as number[];
    assert.equal(heights.length, 30);
    assert.ok(heights.some((h) => h > 10), `a visible bar: ${heights}`);
    assert.equal(await page.locator('[data-state="active"]').innerText(), '1');
    await shot('04-overview');
  });

  it('ok the certificate page decodes every extension and offers the PEM', async () => {
    await goto(`#/certificates/${serial}`);
    const exts = page.locator('#cert-extensions');
    await exts.waitFor();
    const text = await exts.innerText();
    for (const name of ['Subject Alternative Name', 'Key Usages', 'Extended Key Usages', 'CRL Distribution Points', 'Authority Info Access']) assert.match(text, new RegExp(name));
    assert.match(text, /urn:fleetpki:domain:plant-a/);
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download PEM' }).click()]);
    const path = await download.path();
    const r = await openssl(['x509', '-in', path, '-noout', '-serial']);
    assert.equal(r.stdout.trim().split('=')[1].toLowerCase(), serial);
    await shot('05-certificate');
  });

  it('ok revokes it from the console and openssl ocsp reports it revoked', async () => {
    await goto('#/devices/web-1');
    await page.getByLabel('Reason').selectOption('keyCompromise');
    await page.getByRole('button', { name: 'Revoke' }).click();
    await page.getByText(/Revoked \(keyCompromise\)/).waitFor();
    await shot('06-revoked');
    const args = ['ocsp', '-url', `${env.server.httpUrl}/ocsp`, '-CAfile', env.rootPem, '-issuer', env.issuingPem, '-cert', env.file('web-1.pem')];
    // The responder follows the store's change feed every second.
    let out = '';
    for (let i = 0; i < 20 && !/: revoked/.test(out); i++) {
      if (i) await new Promise((res) => setTimeout(res, 500));
      const r = await openssl(args);
      assert.equal(r.status, 0, r.stderr);
      out = r.stdout;
    }
    assert.match(out, /web-1\.pem: revoked/);
    assert.match(out, /Reason: keyCompromise/);
  });

  it('ok approves a pending enrollment from the console; the retry of the device is issued', async () => {
    const dev = await env.ctx.registry.register({ id: 'web-ap', profile: 'device-tls', requireApproval: true }, 'test', true);
    const key = await ecKey(env.file('web-ap.key'));
    const csr = await opensslCsrB64(env, 'web-ap', key, '/CN=web-ap');
    const enroll = () => curl(env, '/.well-known/est/simpleenroll', { dataFile: csr.b64, contentType: 'application/pkcs10', user: `web-ap:${dev.secret}` });
    assert.equal((await enroll()).status, 202);
    await goto('#/enrollments');
    await page.getByRole('button', { name: 'Approve the enrollment of web-ap' }).click();
    await page.getByText(/Approved the enrollment of web-ap/).waitFor();
    await shot('07-approved');
    const issued = await enroll();
    assert.equal(issued.status, 200);
    writeFileSync(env.file('web-ap.pem'), (await certsOfPkcs7(env, issued.body))[0]);
    assert.equal((await env.ctx.store.getDevice('web-ap'))?.state, 'active');
  });

  it('ok transfers a device from the console: OCSP reports its certificate revoked (affiliationChanged), a new secret is shown once', async () => {
    await goto('#/devices/web-ap');
    await page.getByLabel('New owner').fill('Buyer Ltd');
    await page.getByLabel('New domain').fill('plant-b');
    await page.getByRole('button', { name: 'Transfer' }).click();
    await page.getByText(/Transferred to Buyer Ltd \(domain plant-b\)/).waitFor();
    const secretShown = (await page.locator('#one-time-secret').innerText()).trim();
    assert.ok(secretShown.length > 20);
    await shot('08-transferred');
    const d = await env.ctx.store.getDevice('web-ap');
    assert.equal(d?.owner, 'Buyer Ltd');
    const args = ['ocsp', '-url', `${env.server.httpUrl}/ocsp`, '-CAfile', env.rootPem, '-issuer', env.issuingPem, '-cert', env.file('web-ap.pem')];
    let out = '';
    for (let i = 0; i < 20 && !/: revoked/.test(out); i++) {
      if (i) await new Promise((res) => setTimeout(res, 500));
      out = (await openssl(args)).stdout;
    }
    assert.match(out, /Reason: affiliationChanged/);
    // The secret shown is the one the device enrolls with for its new owner.
    const key = await ecKey(env.file('web-ap-2.key'));
    const csr = await opensslCsrB64(env, 'web-ap-2', key, '/CN=web-ap');
    const again = await curl(env, '/.well-known/est/simpleenroll', { dataFile: csr.b64, contentType: 'application/pkcs10', user: `web-ap:${secretShown}` });
    assert.ok([200, 202].includes(again.status), again.body);
  });

  it('ok imports a signed supplier manifest from the console: exactly its devices are registered in the stage', async () => {
    const sup = makeSupplier(env.work, 'ChipCo');
    await env.ctx.supply.addSupplier('ChipCo', readFileSync(sup.rootPem, 'utf8'), 'test');
    await new Promise((res) => setTimeout(res, 1100)); // the supplier's certificates start now, to the second
    const doc = encodeManifest({ supplier: 'ChipCo', stage: 'assembly', createdAt: new Date(), devices: [{ id: 'chip-a', publicKeySha256: 'a'.repeat(64) }, { id: 'chip-b', publicKeySha256: 'b'.repeat(64) }] });
    writeFileSync(env.file('chips.cms'), await signManifest(sup.identity(), doc, new Date()));
    await goto('#/supply-chain');
    await page.getByLabel('Signed manifest', { exact: true }).setInputFiles(env.file('chips.cms'));
    await page.getByLabel('Expected stage').fill('assembly');
    await page.getByRole('button', { name: 'Import' }).click();
    await page.getByText(/Imported the manifest of ChipCo for stage assembly: 2 registered, 0 moved/).waitFor();
    await page.locator('#manifests').getByRole('cell', { name: 'ChipCo', exact: true }).waitFor();
    assert.equal((await env.ctx.store.getDevice('chip-a'))?.stage, 'assembly');
    await shot('09-manifest-imported');
    // The same file again is a replay: refused, shown, nothing changes.
    await page.getByLabel('Signed manifest', { exact: true }).setInputFiles(env.file('chips.cms'));
    await page.getByRole('button', { name: 'Import' }).click();
    assert.match(await page.getByRole('alert').innerText(), /Error \(already_exists\): manifest [0-9a-f]{64} was imported/);
    await goto('#/devices/chip-b');
    await page.getByText(/Stage assembly; handed over by 1 manifest \(assembly: not entered yet\)/).waitFor();
  });


  it('ok the CA page shows the hierarchy and CRL status; the audit page shows an intact chain', async () => {
    await goto('#/cas');
    await page.locator('#crl-status').waitFor();
    assert.match(await page.locator('.tree').first().innerText(), /root[\s\S]*issuing/);
    await shot('10-cas');
    await goto('#/audit');
    await page.locator('#chain-status').waitFor();
    assert.match(await page.locator('#chain-status').innerText(), /Hash chain intact/);
    await shot('11-audit');
  });

  it('ok an auditor sees the register action refused by the server', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').fill(auditorToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#operator').waitFor();
    await goto('#/devices');
    await page.getByText(/Your role \(auditor\) does not include/).first().waitFor();
    await page.getByLabel('Device id (serial number)').fill('web-2');
    await page.getByRole('button', { name: 'Register' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /Refused \(forbidden\): role auditor may not device register/);
    assert.equal(await env.ctx.store.getDevice('web-2'), undefined);
    await shot('12-auditor-refused');
  });

  it('ok no page broke the Content-Security-Policy or threw', () => {
    assert.deepEqual(cspViolations, []);
    assert.deepEqual(pageErrors, []);
  });
});

