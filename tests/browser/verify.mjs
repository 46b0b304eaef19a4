// verify.mjs: drives the verification page (GET /verify) in Debian's
// Chromium (Playwright) for tests/integration/test_verify_page.py.
// usage: node verify.mjs PLAN.json
// PLAN: {"base": "http://127.0.0.1:PORT", "out": DIR, "cases": [CASE...]}
// CASE: {"id", "file"?, "query"?, "vkey"?, "ca"?, "keyAfter"?, "drop"?,
//        "toggleLang"?, "screenshot"?}; optional "sweep" (see sweep()).
//  - opens BASE/verify + query (a fresh page per case);
//  - types vkey into the key field and picks ca as the TSA CA file (before
//    the receipt, or with keyAfter: after it, which must verify again);
//  - gives the receipt through the file picker, or with drop: true as a
//    file dropped on the drop zone;
//  - waits until the page says it is done (and, with ?checkpoint, until the
//    public checkpoint is shown), then reads what a person sees.
// Prints one JSON object: {cases: [{id, verdict, receiptVerdict (a PDF's
// embedded receipt), checks: [{name, status, detail}], pdf, pages (what the
// page says of a PDF's pages), checkpoint, lang}], sweep: [{verdict, lines}] | null,
// requests: [url...], errors: [...]}.
// Exits non-zero on any failure to drive the page.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';

const plan = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const requests = [];
const errors = [];
const results = [];
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'selo-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1100, height: 900 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

async function readPage(page) {
  return page.evaluate(() => {
    const q = (s) => document.querySelector(s);
    const checks = [...document.querySelectorAll('#checks li.check')].map((li) => ({
      name: li.dataset.name, status: li.dataset.status,
      detail: li.querySelector('.detail').textContent,
    }));
    const pdf = q('#pdf-message');
    const pages = q('#pdf-pages');
    const cmp = q('#cp-compare');
    return {
      verdict: q('#verdict') ? q('#verdict').dataset.verdict || null : null,
      receiptVerdict: q('#verdict') ? q('#verdict').dataset.receipt || null : null,
      pages: pages ? { status: pages.dataset.pages, text: pages.textContent } : null,
      verdictText: q('#verdict') ? q('#verdict').textContent.replace(/\s+/g, ' ').trim() : '',
      checks,
      pdf: pdf ? { kind: pdf.dataset.pdf, text: pdf.textContent } : null,
      checkpoint: q('#cp-size') ? {
        size: q('#cp-size').textContent, root: q('#cp-root').textContent,
        origin: q('#cp-origin').textContent, sig: q('#cp-sig').textContent,
        compare: cmp && cmp.dataset.compare ? cmp.dataset.compare : null,
        compareText: cmp ? cmp.textContent : '',
      } : null,
      lang: document.documentElement.lang,
      heading: q('h1').textContent,
    };
  });
}

async function dropFile(page, file) {
  const b64 = fs.readFileSync(file).toString('base64');
  const name = path.basename(file);
  await page.evaluate(({ b64, name }) => {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name));
    const zone = document.getElementById('drop');
    zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, { b64, name });
}

async function runCase(page, c) {
  await page.goto(`${plan.base}/verify${c.query || ''}`, { waitUntil: 'load' });
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  if (c.vkey && !c.keyAfter) await page.fill('#vkey', c.vkey);
  if (c.ca) await page.setInputFiles('#ca', c.ca);
  if (c.file) {
    if (c.drop) await dropFile(page, c.file);
    else await page.setInputFiles('#file', c.file);
    await page.waitForSelector('body[data-done]', { timeout: 60000 });
  }
  if (c.vkey && c.keyAfter) {
    const before = await page.getAttribute('body', 'data-done');
    await page.fill('#vkey', c.vkey);
    await page.waitForFunction((b) => document.body.dataset.done !== b, before, { timeout: 20000 });
  }
  if ((c.query || '').includes('checkpoint')) {
    await page.waitForSelector('body[data-checkpoint]', { timeout: 20000 });
    // The public checkpoint was checked with the key typed (it may have
    // arrived before the key did).
    if (c.vkey)
      await page.waitForFunction((k) => document.body.dataset.cpKey === k, c.vkey, { timeout: 20000 });
  }
  if (c.toggleLang) await page.click('#lang');
  const seen = await readPage(page);
  if (c.screenshot) {
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    for (const dir of [plan.out, ...(plan.copies || [])]) {
      fs.mkdirSync(dir, { recursive: true });
      await page.screenshot({ path: path.join(dir, c.screenshot), fullPage: true });
    }
  }
  return { id: c.id, ...seen };
}

// plan.sweep: {files: [path...], vkey, ca}: every file through the page's
// own verifier module in one page (no navigation per file), for the
// many-mutations comparison with selo verify.
async function sweep(page, sw) {
  await page.goto(`${plan.base}/verify`, { waitUntil: 'load' });
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15000 });
  const ca = sw.ca ? fs.readFileSync(sw.ca, 'utf8') : null;
  const out = [];
  for (let i = 0; i < sw.files.length; i += 25) {
    const batch = sw.files.slice(i, i + 25).map((f) => fs.readFileSync(f).toString('base64'));
    out.push(...await page.evaluate(async ({ batch, vkey, ca }) => {
      const { verifyReceipt } = await import('./verify/checks.js');
      const { certsFromBundle } = await import('./verify/tsa.js');
      const anchors = ca ? certsFromBundle(ca) : null;
      const res = [];
      for (const b64 of batch) {
        const bin = atob(b64);
        const bytes = new Uint8Array(bin.length);
        for (let k = 0; k < bin.length; k++) bytes[k] = bin.charCodeAt(k);
        const r = await verifyReceipt(bytes, { vkey, anchors }, null);
        res.push({ verdict: r.verdict, lines: r.checks.map((c) => [c.status, c.name]) });
      }
      return res;
    }, { batch, vkey: sw.vkey || null, ca }));
  }
  return out;
}

try {
  const page = browser.pages()[0] || await browser.newPage();
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push('console: ' + m.text()); });
  for (const c of plan.cases) {
    try {
      results.push(await runCase(page, c));
    } catch (e) {
      results.push({ id: c.id, error: String(e.message || e).slice(0, 2000) });
    }
  }
  const swept = plan.sweep ? await sweep(page, plan.sweep) : null;
  console.log(JSON.stringify({ cases: results, sweep: swept, requests, errors }));
} finally {
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
