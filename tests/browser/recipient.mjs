// recipient.mjs: plays the recipient in Debian's Chromium (Playwright).
// usage: node recipient.mjs MESSAGE.html LANDING_URL_PREFIX OUTDIR
// Opens the HTML part of a real sent message as a page (its pixel loads from
// the tracker), clicks the tracked payment link and waits to land on the
// test's page, opens "Confirmar recebimento", presses the button, waits for
// the confirmation and saves a screenshot. Prints one JSON line of what it
// saw; exits non-zero on any failure. Only 127.0.0.1 is ever contacted.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';

const [html, landing, outdir] = process.argv.slice(2);
// A person's browser does not announce itself as headless; the tracker
// classifies "HeadlessChrome" as an automated client.
const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
  'Chrome/156.0.0.0 Safari/537.36';
const seen = { pixel: 0, requests: [] };
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'selo-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  userAgent: UA,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = browser.pages()[0] || await browser.newPage();
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol.startsWith('http') && u.hostname !== '127.0.0.1')
      throw new Error(`request to a host other than 127.0.0.1: ${r.url()}`);
    seen.requests.push(r.url());
  });
  page.on('response', (r) => { if (/\/o\/[^/]+\.gif$/.test(r.url()) && r.status() === 200) seen.pixel++; });
  await page.goto('file://' + path.resolve(html), { waitUntil: 'networkidle' });
  if (seen.pixel < 1) throw new Error('the pixel did not load');
  const confirmHref = await page.locator('a', { hasText: 'Confirmar recebimento' }).first().getAttribute('href');
  // the payment link: any tracked /c/ link
  const link = page.locator('a[href*="/c/"]').first();
  await Promise.all([page.waitForURL((u) => u.toString().startsWith(landing), { timeout: 15000 }), link.click()]);
  seen.landed = page.url();
  await page.goto(confirmHref, { waitUntil: 'load' });
  const button = page.getByRole('button', { name: 'Confirmar recebimento' });
  await button.waitFor({ timeout: 10000 });
  await Promise.all([page.waitForLoadState('load'), button.click()]);
  await page.getByText('Recebimento confirmado').first().waitFor({ timeout: 10000 });
  seen.confirmedText = (await page.textContent('body')).replace(/\s+/g, ' ').trim().slice(0, 300);
  fs.mkdirSync(outdir, { recursive: true });
  await page.screenshot({ path: path.join(outdir, 'confirmation.png'), fullPage: true });
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
