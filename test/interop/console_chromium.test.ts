/**
 * The web console (issue 10) in a real browser: Debian's Chromium driven by
 * playwright-core (never a downloaded browser). An operator signs in with the
 * keyboard, registers a device and gets its one-time secret, the device
 * enrolls over EST with curl and openssl, the console shows it active with
 * its certificate and the charts show the data, the operator revokes it from
 * the console and `openssl ocsp` reports it revoked, a pending enrollment is
 * approved from the console and the device's retry issued; an auditor sees the
 * register action refused by the server. No page may break the CSP.
 * Screenshots go to test-artifacts/console/.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { REPO } from '../helpers/data_dir.js';
import { certsOfPkcs7, curl, ecKey, openssl, opensslCsrB64, startEstEnv, type EstEnv } from '../helpers/est.js';

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
    assert.equal((await enroll()).status, 200);
    assert.equal((await env.ctx.store.getDevice('web-ap'))?.state, 'active');
  });

  it('ok the CA page shows the hierarchy and CRL status; the audit page shows an intact chain', async () => {
    await goto('#/cas');
    await page.locator('#crl-status').waitFor();
    assert.match(await page.locator('.tree').first().innerText(), /root[\s\S]*issuing/);
    await shot('08-cas');
    await goto('#/audit');
    await page.locator('#chain-status').waitFor();
    assert.match(await page.locator('#chain-status').innerText(), /Hash chain intact/);
    await shot('09-audit');
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
    await shot('10-auditor-refused');
  });

  it('ok no page broke the Content-Security-Policy or threw', () => {
    assert.deepEqual(cspViolations, []);
    assert.deepEqual(pageErrors, []);
  });
});

