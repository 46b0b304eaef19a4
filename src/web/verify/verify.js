// verify.js: the verification page's behaviour (docs/verify-page.md). A
// person drops or picks r.json or r.pdf; the receipt (or the one embedded
// in the PDF) goes through every check of `selo verify` (checks.js), each
// shown as it completes; for a PDF, its own signature first (pdf.js
// pdfSignature): a PDF whose pages no valid signature covers is INVALID as
// a document, and the page says that only its embedded receipt is proven.
// Optional trust anchors: the log's verifier key and the TSA's CA
// certificate. `?checkpoint` (the PDF's QR code) also
// fetches this origin's /log/checkpoint; `?lang=en` switches to English.
// The page makes no other request, and sends the file nowhere.

import { verifyReceipt, MAX_RECEIPT_BYTES, vkeyParse, checkpointParse, idHex, noteOpen } from './checks.js';
import { embeddedReceipt, isPdf, PdfError, pdfSignature } from './pdf.js';
import { certsFromBundle } from './tsa.js';
import { subjectText } from './asn1.js';
import { ui, detail, checkInfo, eventName } from './i18n.js';
import { b64encode, rfc3339 } from './util.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const state = {
  lang: params.get('lang') === 'en' ? 'en' : 'pt-BR',
  bytes: null, // the file dropped
  fileName: '',
  source: null, // {kind: 'json'} | {kind: 'pdf', name, pages} | {kind: 'pdf', error, text}
  result: null,
  anchors: null, // CA certificates given
  caError: null,
  caNames: [],
  run: 0,
  cp: null, // the public checkpoint fetched: {text, parsed, error}
};

const t = (key, ...a) => ui(state.lang, key, ...a);

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

// ---- language ---------------------------------------------------------

function applyLang() {
  document.documentElement.lang = state.lang;
  document.title = t('title') + ' — Selo';
  for (const n of document.querySelectorAll('[data-t]')) n.textContent = t(n.dataset.t);
  const other = state.lang === 'en' ? 'pt-BR' : 'en';
  $('lang').textContent = t('lang');
  $('lang').setAttribute('lang', other);
  $('lang').setAttribute('aria-label', t('langLabel'));
  $('ca-pick').textContent = state.lang === 'en' ? 'Choose CA certificate…' : 'Escolher certificado da AC…';
  renderCaStatus();
  renderFileName();
  if (state.result || state.source) renderResult();
  renderCheckpoint();
}

function toggleLang() {
  state.lang = state.lang === 'en' ? 'pt-BR' : 'en';
  const u = new URL(location.href);
  if (state.lang === 'en') u.searchParams.set('lang', 'en');
  else u.searchParams.delete('lang');
  history.replaceState(null, '', u);
  applyLang();
}

// ---- time -------------------------------------------------------------

function brasilia(ms) {
  try {
    return new Intl.DateTimeFormat(state.lang === 'en' ? 'en-GB' : 'pt-BR', {
      timeZone: 'America/Sao_Paulo', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
    }).format(new Date(ms));
  } catch (e) {
    return '';
  }
}

// ---- rendering ----------------------------------------------------------

function renderFileName() {
  $('filename').textContent = state.fileName ? `${t('file')}: ${state.fileName}` : '';
}

function checkRow(c) {
  const word = { ok: '✓ ' + t('S_ok'), fail: '✗ ' + t('S_fail'), warn: '! ' + t('S_warn'),
    skip: '? ' + t('S_skip') }[c.status];
  return el('li', { class: `check ${c.status}`, 'data-name': c.name, 'data-status': c.status },
    el('span', { class: 'badge', text: word }),
    el('code', { class: 'name', text: c.name }),
    el('span', { class: 'what', text: checkInfo(state.lang, c.name) }),
    el('span', { class: 'detail', text: detail(state.lang, c.msg, c.args) }));
}

const VERDICT_CLASS = { VALID: 'ok', INVALID: 'fail', UNREADABLE: 'fail', INCOMPLETE: 'skip' };

function renderVerdict() {
  const v = $('verdict');
  const r = state.result;
  if (!r) {
    v.className = 'verdict wait';
    v.dataset.verdict = 'WORKING';
    $('verdict-title').textContent = t('working');
    $('verdict-text').textContent = '';
    $('verdict-failed').textContent = '';
    return;
  }
  const warned = r.checks.some((c) => c.status === 'warn');
  // The receipt inside proven, the pages around it not: said as such.
  const unproven = r.receiptVerdict === 'VALID' && r.pdfStatus === 'fail';
  v.className = 'verdict ' + (r.verdict === 'VALID' && warned ? 'warn' : VERDICT_CLASS[r.verdict]);
  v.dataset.verdict = r.verdict;
  if (r.receiptVerdict) v.dataset.receipt = r.receiptVerdict;
  else delete v.dataset.receipt;
  $('verdict-title').textContent = t(unproven ? 'V_PDF_UNPROVEN' : 'V_' + r.verdict);
  $('verdict-text').textContent = t(unproven ? 'VD_PDF_UNPROVEN'
    : r.verdict === 'VALID' && warned ? 'VD_VALID_WARN' : 'VD_' + r.verdict);
  const failed = [...new Set(r.checks.filter((c) => c.status === 'fail').map((c) => c.name))];
  $('verdict-failed').textContent = failed.length ? t('failedList', failed.join(', ')) : '';
}

function renderSource() {
  const box = $('source');
  box.textContent = '';
  const s = state.source;
  if (!s || s.kind !== 'pdf') return;
  if (s.error) {
    box.append(el('p', { id: 'pdf-message', class: 'note fail', 'data-pdf': s.error,
      text: s.error === 'none' ? t('pdfNone') : t('pdfBad', s.text) }));
    return;
  }
  box.append(el('p', { id: 'pdf-message', class: 'note', 'data-pdf': 'found',
    text: t('pdfFound', s.name) }));
  if (!s.pages) return;
  const key = { ok: 'pdfPagesOk', fail: 'pdfPagesNot', skip: 'pdfPagesSkip' }[s.pages];
  box.append(el('p', { id: 'pdf-pages', class: s.pages === 'ok' ? 'note' : `note ${s.pages}`,
    'data-pages': s.pages, text: t(key) }));
}

function renderSummary() {
  const r = state.result;
  const info = r && r.info;
  const has = !!(info && info.notice && r.verdict !== 'UNREADABLE');
  $('summary').hidden = !has;
  $('timeline').hidden = !(has && info.events);
  $('disclosed').hidden = !(has && info.disclosed && info.disclosed.length);
  if (!has) return;
  const dl = $('summary-list');
  dl.textContent = '';
  const row = (k, v) => { if (v) dl.append(el('dt', { text: k }), el('dd', { text: v })); };
  row(t('sNotice'), info.notice);
  if (info.events) row(t('sEvents'), String(info.events.length));
  if (info.hasEml !== undefined) row(t('sForm'), t(info.hasEml ? 'formFull' : 'formShort'));
  if (info.checkpoint) {
    row(t('sLog'), info.checkpoint.origin);
    row(t('sTree'), t('treeText', String(info.checkpoint.size), info.checkpoint.root));
  }
  if (info.genMs !== undefined && info.genMs !== null)
    row(t('sTime'), `${rfc3339(info.genMs)} (UTC) — ${brasilia(info.genMs)} (${t('evLocal')})`);
  if (info.tsa) row(t('sTsa'), info.tsa);
  const tb = $('timeline-body');
  tb.textContent = '';
  for (const e of (info.events || []).slice(0, 500)) {
    tb.append(el('tr', {},
      el('td', { class: 'mono', text: '#' + e.index }),
      el('td', {}, eventName(state.lang, e.type), ' ', el('code', { text: e.type })),
      el('td', { class: 'mono', text: e.time === null ? '?' : rfc3339(e.time) }),
      el('td', { text: e.time === null ? '' : brasilia(e.time) })));
  }
  const dd = $('disclosed-list');
  dd.textContent = '';
  for (const d of (info.disclosed || []).slice(0, 200)) {
    const v = d.value.length > 300 ? d.value.slice(0, 297) + '…' : d.value;
    dd.append(el('dt', {}, el('code', { text: d.field })), el('dd', { text: v }));
  }
}

function renderResult() {
  $('result').hidden = false;
  renderVerdict();
  renderSource();
  renderSummary();
  const list = $('checks');
  list.textContent = '';
  if (state.result) for (const c of state.result.checks) list.append(checkRow(c));
  renderComparison();
}

// ---- trust anchors --------------------------------------------------------

function renderCaStatus() {
  const s = $('ca-status');
  if (state.caError) s.textContent = t('caBad', state.caError);
  else if (state.anchors) s.textContent = t('caOk', state.anchors.length, state.caNames.join('; '));
  else s.textContent = '';
  $('ca-clear').hidden = !(state.anchors || state.caError);
}

async function loadCa(file) {
  state.anchors = null;
  state.caError = null;
  state.caNames = [];
  try {
    if (file.size > 4 * 1024 * 1024) throw new Error('larger than 4 MiB');
    const certs = certsFromBundle(await file.text());
    state.anchors = certs;
    state.caNames = certs.slice(0, 4).map((c) => { try { return subjectText(c); } catch (e) { return '?'; } });
  } catch (e) {
    state.caError = String(e.message || e);
  }
  renderCaStatus();
  if (state.bytes) await verify();
}

// ---- verifying ------------------------------------------------------------

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

async function verify() {
  const run = ++state.run;
  state.result = null;
  $('again').disabled = false;
  let json = state.bytes;
  state.source = { kind: 'json' };
  $('result').hidden = false;
  renderVerdict();
  $('checks').textContent = '';
  $('summary').hidden = true;
  $('timeline').hidden = true;
  $('disclosed').hidden = true;
  if (!window.crypto || !crypto.subtle) {
    state.result = { verdict: 'INCOMPLETE', checks: [], info: {} };
    renderResult();
    $('source').append(el('p', { class: 'note fail', text: t('noCrypto') }));
    document.body.dataset.done = String(run);
    return;
  }
  let pdfCheck = null;
  if (json.length <= MAX_RECEIPT_BYTES && isPdf(json)) {
    state.source = { kind: 'pdf' };
    try {
      const r = await embeddedReceipt(json);
      pdfCheck = await pdfCheckOf(json);
      json = r.data;
      state.source.name = r.name;
      state.source.pages = pdfCheck.status;
    } catch (e) {
      if (run !== state.run) return;
      state.source.error = e instanceof PdfError ? e.code : 'bad';
      state.source.text = String(e.message || e);
      state.result = { verdict: 'UNREADABLE', checks: [], info: {} };
      renderResult();
      document.body.dataset.done = String(run);
      return;
    }
  }
  if (run !== state.run) return;
  renderSource();
  let shown = 0;
  if (pdfCheck) $('checks').append(checkRow(pdfCheck));
  state.lastKey = $('vkey').value.trim();
  const result = await verifyReceipt(json, {
    vkey: state.lastKey || null, anchors: state.anchors, caError: state.caError,
  }, async (c) => {
    if (run !== state.run) return;
    $('checks').append(checkRow(c));
    // A short pause for the first lines: a person sees each turn green or red.
    if (shown++ < 16) await pause(35);
  });
  if (run !== state.run) return;
  if (pdfCheck) pdfVerdict(result, pdfCheck);
  state.result = result;
  if (state.cp && state.cp.text) await checkCheckpoint();
  renderResult();
  renderCheckpoint();
  document.body.dataset.done = String(run);
}

// The check pdf_signature of `selo verify FILE.pdf`; a surprise in the
// PDF fails it, never passes it.
async function pdfCheckOf(bytes) {
  try {
    return { name: 'pdf_signature', ...(await pdfSignature(bytes)) };
  } catch (e) {
    return { name: 'pdf_signature', status: 'fail', msg: 'internal',
      args: { text: String((e && e.message) || e).slice(0, 200) } };
  }
}

// As `selo verify` decides for a PDF: the receipt inside keeps its own
// verdict (receiptVerdict); the file is INVALID when no valid signature
// covers its pages, INCOMPLETE when this browser could not tell.
function pdfVerdict(result, pdfCheck) {
  result.checks.unshift(pdfCheck);
  result.receiptVerdict = result.verdict;
  result.pdfStatus = pdfCheck.status;
  if (pdfCheck.status === 'fail' && result.verdict !== 'UNREADABLE') result.verdict = 'INVALID';
  else if (pdfCheck.status === 'skip' && result.verdict === 'VALID') result.verdict = 'INCOMPLETE';
}

async function takeFile(file) {
  if (!file) return;
  state.fileName = `${file.name} (${file.size} bytes)`;
  renderFileName();
  if (file.size > MAX_RECEIPT_BYTES) {
    // Not read at all: nothing that large is a receipt (docs/receipt.md).
    state.bytes = null;
    state.source = null;
    state.result = { verdict: 'UNREADABLE', checks: [{ name: 'format', status: 'fail', msg: 'fmt_big', args: {} }], info: {} };
    renderResult();
    document.body.dataset.done = String(++state.run);
    return;
  }
  try {
    state.bytes = new Uint8Array(await file.arrayBuffer());
  } catch (e) {
    state.result = null;
    $('result').hidden = false;
    $('source').textContent = t('readErr', e.message || e);
    document.body.dataset.done = String(++state.run);
    return;
  }
  await verify();
}

// ---- the public checkpoint (?checkpoint) ---------------------------------

async function loadCheckpoint() {
  state.cp = { loading: true };
  renderCheckpoint();
  try {
    const resp = await fetch('log/checkpoint', { cache: 'no-store', credentials: 'omit',
      redirect: 'error', referrerPolicy: 'no-referrer' });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const buf = new Uint8Array(await resp.arrayBuffer());
    if (buf.length > 65536) throw new Error('too large');
    const text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
    state.cp = { text };
    await checkCheckpoint();
  } catch (e) {
    state.cp = { error: String(e.message || e) };
  }
  renderCheckpoint();
  document.body.dataset.checkpoint = state.cp.error ? 'error' : 'loaded';
}

// Verifies the public checkpoint's signature with the key given, else with
// the loaded receipt's key; reads its size and root.
async function checkCheckpoint() {
  const cp = state.cp;
  if (!cp || !cp.text) return;
  const given = $('vkey').value.trim();
  const receiptKey = state.result && state.result.info && state.result.info.vkey;
  cp.sig = null;
  document.body.dataset.cpKey = given;
  let keyText = given || receiptKey || null;
  cp.keyFrom = given ? 'keyGiven' : 'keyReceipt';
  const split = cp.text.lastIndexOf('\n\n');
  cp.parsed = await checkpointParse(split < 0 ? cp.text : cp.text.slice(0, split + 1));
  if (!keyText) return;
  const k = await vkeyParse(keyText);
  if (k.err) { cp.sig = { ok: false, name: keyText.slice(0, 80) }; return; }
  const r = await noteOpen(cp.text, k);
  cp.sig = { ok: !r.err, name: `${k.name} ${idHex(k.id)}` };
}

function renderCheckpoint() {
  const out = $('cp-out');
  out.textContent = '';
  const cp = state.cp;
  if (!cp) return;
  if (cp.loading) { out.append(el('p', { text: t('cpLoading') })); return; }
  if (cp.error) { out.append(el('p', { class: 'note fail', text: t('cpErr', cp.error) })); return; }
  const dl = el('dl', { id: 'cp-list' });
  const p = cp.parsed || {};
  const row = (k, v, id) => dl.append(el('dt', { text: k }), el('dd', { text: v, ...(id ? { id } : {}) }));
  if (p.err) row(t('cpOrigin'), '?');
  else {
    row(t('cpOrigin'), p.origin, 'cp-origin');
    row(t('cpSize'), String(p.size), 'cp-size');
    row(t('cpRoot'), b64encode(p.root), 'cp-root');
  }
  let sig = t('cpSigNone');
  if (cp.sig) sig = cp.sig.ok ? t('cpSigOk', cp.sig.name, t(cp.keyFrom)) : t('cpSigBad', cp.sig.name);
  row(t('cpSig'), sig, 'cp-sig');
  out.append(el('div', { class: 'summary' }, dl));
  out.append(el('p', { id: 'cp-compare' }));
  renderComparison();
}

// The receipt's checkpoint against the public one: same log, and the log
// never shrinks; equal sizes need equal roots.
function renderComparison() {
  const box = $('cp-compare');
  if (!box) return;
  box.textContent = '';
  box.className = '';
  delete box.dataset.compare;
  const cp = state.cp;
  const mine = state.result && state.result.info && state.result.info.checkpoint;
  if (!cp || !cp.parsed || cp.parsed.err || !mine) return;
  const pub = cp.parsed;
  let key, cls = 'note', args;
  if (pub.origin !== mine.origin) { key = 'cpOther'; cls = 'note fail'; args = [pub.origin, mine.origin]; }
  else if (pub.size > mine.size) { key = 'cpGrown'; args = [String(pub.size), String(mine.size)]; }
  else if (pub.size === mine.size) {
    const same = b64encode(pub.root) === mine.root;
    key = same ? 'cpSame' : 'cpFork';
    if (!same) cls = 'note fail';
    args = [String(pub.size)];
  } else { key = 'cpShrunk'; cls = 'note fail'; args = [String(pub.size), String(mine.size)]; }
  box.className = cls;
  box.dataset.compare = key;
  box.textContent = t(key, ...args) + (key === 'cpGrown' ? ' ' + t('cpNoProof') : '');
}

// ---- wiring ---------------------------------------------------------------

function init() {
  applyLang();
  $('lang').addEventListener('click', toggleLang);
  $('pick').addEventListener('click', () => $('file').click());
  $('file').addEventListener('change', () => takeFile($('file').files[0]));
  $('ca-pick').addEventListener('click', () => $('ca').click());
  $('ca').addEventListener('change', () => { if ($('ca').files[0]) loadCa($('ca').files[0]); });
  $('ca-clear').addEventListener('click', async () => {
    state.anchors = null;
    state.caError = null;
    $('ca').value = '';
    renderCaStatus();
    if (state.bytes) await verify();
  });
  $('again').addEventListener('click', () => { if (state.bytes) verify(); });
  let timer = null;
  $('vkey').addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      // Typing ends in a new key: verify again (once per key).
      if (state.bytes && $('vkey').value.trim() !== state.lastKey) await verify();
      if (state.cp && state.cp.text) { await checkCheckpoint(); renderCheckpoint(); }
    }, 400);
  });
  $('cp-load').addEventListener('click', loadCheckpoint);
  const drop = $('drop');
  for (const ev of ['dragenter', 'dragover']) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add('over'); });
  }
  for (const ev of ['dragleave', 'drop']) drop.addEventListener(ev, () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (f) takeFile(f);
  });
  // A file dropped anywhere else must not make the browser open it.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (f) takeFile(f);
  });
  if (params.has('checkpoint')) {
    // Whoever followed the PDF's QR code came for the live log: show it first.
    $('drop').after($('checkpoint'));
    loadCheckpoint();
  }
  document.body.dataset.ready = '1';
}

init();
