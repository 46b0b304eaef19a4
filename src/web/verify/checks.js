// checks.js: every check of `selo verify` (src/receipt.c), with the same
// names, in the same order, judged the same way, run in the browser.
// Each check reports {name, status, msg, args}: status "ok", "fail",
// "warn" (key_pinned, tsa_pinned without a key or CA given, as the C
// verifier warns) or "skip" (a part the browser could not check: amber,
// never green); msg and args name the detail text in i18n.js.
// Nothing in the receipt is trusted: sizes are capped, decoders strict,
// and any exception inside a check becomes that check's failure.

import { parseJson, JsonError, isObject, isString, isInteger, utf8Length } from './json.js';
import {
  b64decode, b64encode, hex, unhex, isLowerHex, utf8, concat, equal, sha256, rfc3339,
  parseRfc3339,
} from './util.js';
import { certFromPem, chainLinked, unsignedParts, verifyToken, MAX_TOKEN } from './tsa.js';
import { subjectText } from './asn1.js';

export const FORMAT = 'selo-receipt/v1';
export const MAX_RECEIPT_BYTES = 64 * 1024 * 1024;
const MAX_EVENTS = 10000;
const MAX_ENTRY = 65535;
const MAX_NOTE = 65536;
const MAX_CERTS = 8;
const MAX_CERT_PEM = 65536;
const MAX_VKEY = 1024;
const MAX_PROOF = 64;
const MAX_SIGS = 100;
const MAX_CHECKS = 96;
const INCLUSION_LINES = MAX_CHECKS - 16;
const TS_TOLERANCE_MS = 1000;
const COMMIT_LEN = 7 + 64;
const CROCK = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

// ---- C2SP signed-note keys and notes (keys.c, note.c) --------------------

function nameValid(name) {
  return name.length > 0 && name.length <= 255 && /^[!-*,-~]+$/.test(name);
}

async function keyId(name, pub) {
  const h = await sha256(utf8(name), new Uint8Array([0x0a, 0x01]), pub);
  return ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
}

export const idHex = (id) => id.toString(16).padStart(8, '0');

// keys.c note_vkey_parse: {name, pub, id} or {err}.
export async function vkeyParse(s) {
  const p1 = s.indexOf('+');
  const p2 = p1 < 0 ? -1 : s.indexOf('+', p1 + 1);
  if (p1 <= 0 || p2 - p1 - 1 !== 8 || p1 >= 256) return { err: 'vk_shape' };
  const name = s.slice(0, p1);
  const idb = unhex(s.slice(p1 + 1, p2));
  const typed = b64decode(s.slice(p2 + 1), 33);
  if (!nameValid(name) || !idb || !typed || typed.length !== 33 || typed[0] !== 1)
    return { err: 'vk_shape' };
  const id = ((idb[0] << 24) | (idb[1] << 16) | (idb[2] << 8) | idb[3]) >>> 0;
  const pub = typed.subarray(1);
  if ((await keyId(name, pub)) !== id) return { err: 'vk_id', id: idHex(id) };
  return { name, pub, id };
}

function vkeyFormat(k) {
  return `${k.name}+${idHex(k.id)}+${b64encode(concat(new Uint8Array([1]), k.pub))}`;
}

async function sameKey(a, b) {
  const x = await vkeyParse(a), y = await vkeyParse(b);
  return !x.err && !y.err && x.name === y.name && equal(x.pub, y.pub);
}

// note.c text_chars_ok on a string from JSON (valid UTF-8 by then).
const controlFree = (s) => !/[\u0000-\u0009\u000b-\u001f]/.test(s);
const UNICODE_SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

function lastBlank(s) {
  return s.lastIndexOf('\n\n');
}

// note.c note_parse + note_open for one key: {text} or {err, args}.
export async function noteOpen(note, key) {
  if (!controlFree(note)) return { err: 'note_chars' };
  const split = lastBlank(note);
  if (split < 0) return { err: 'note_noblank' };
  const block = note.slice(split + 2);
  if (!block.length) return { err: 'note_nosig' };
  if (block[block.length - 1] !== '\n') return { err: 'note_noeol' };
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGS) return { err: 'note_many', args: { n: lines.length } };
  const sigs = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    let why = null;
    if (!line.startsWith('\u2014 ')) why = 'line_dash';
    const rest = line.slice(2);
    const sp = rest.indexOf(' ');
    if (!why && sp < 0) why = 'line_space';
    const name = rest.slice(0, sp);
    if (!why && (!name.length || UNICODE_SPACE.test(name) || name.includes('+'))) why = 'line_name';
    const raw = why ? null : b64decode(rest.slice(sp + 1));
    if (!why && (!raw || raw.length < 5)) why = 'line_b64';
    if (why) return { err: 'note_line', args: { n: i + 1, why } };
    sigs.push({ line, name, id: ((raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]) >>> 0,
      sig: raw.subarray(4) });
  }
  const text = note.slice(0, split + 1);
  const textBytes = utf8(text);
  let good = 0;
  for (let i = 0; i < sigs.length; i++) {
    const s = sigs[i];
    if (s.id !== key.id || s.name !== key.name) continue;
    if (sigs.slice(0, i).some((x) => x.line === s.line)) continue;
    if (s.sig.length !== 64 || !(await ed25519Verify(key.pub, s.sig, textBytes)))
      return { err: 'note_badsig', args: { name: key.name, id: idHex(key.id) } };
    good++;
  }
  if (!good) return { err: 'note_untrusted', args: { first: sigs.length ? sigs[0].name.slice(0, 200) : '' } };
  return { text };
}

export class NoEd25519 extends Error {}

async function ed25519Verify(pub, sig, msg) {
  let key;
  try {
    key = await crypto.subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
  } catch (e) {
    if (e && e.name === 'NotSupportedError') throw new NoEd25519();
    return false; // not a valid point: not a valid signature either
  }
  try {
    return await crypto.subtle.verify('Ed25519', key, sig, msg);
  } catch (e) {
    return false;
  }
}

// note.c checkpoint_parse: {origin, size (BigInt), root} or {err}.
export async function checkpointParse(text) {
  if (!text.length || text[text.length - 1] !== '\n') return { err: 'cp_eol' };
  if (!controlFree(text)) return { err: 'cp_chars' };
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) return { err: 'cp_lines' };
  const [origin, size, root, ...ext] = lines;
  const olen = utf8Length(origin);
  if (olen === 0 || olen >= 256) return { err: 'cp_origin' };
  if (!/^(0|[1-9][0-9]{0,19})$/.test(size) || BigInt(size) > 0xffffffffffffffffn)
    return { err: 'cp_size' };
  const r = b64decode(root, 32);
  if (!r || r.length !== 32) return { err: 'cp_root' };
  if (ext.some((l) => l === '')) return { err: 'cp_ext' };
  if (BigInt(size) === 0n && !equal(r, await sha256(new Uint8Array(0)))) return { err: 'cp_empty' };
  return { origin, size: BigInt(size), root: r };
}

// ---- RFC 9162 --------------------------------------------------------------

const ONE = new Uint8Array([1]);
const ZERO = new Uint8Array([0]);
export const leafHash = (entryBytes) => sha256(ZERO, entryBytes);

// RFC 9162 section 2.1.3.2: the root the proof leads to, or null.
export async function rootFromProof(index, size, leaf, proof) {
  if (index >= size) return null;
  let fn = index, sn = size - 1n, r = leaf;
  for (const p of proof) {
    if (sn === 0n) return null;
    if ((fn & 1n) || fn === sn) {
      r = await sha256(ONE, p, r);
      while (fn !== 0n && !(fn & 1n)) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await sha256(ONE, r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n ? r : null;
}

// ---- format: reading the document (receipt.c read_doc) ------------------

class Problems {
  constructor() { this.n = 0; this.fatal = false; this.first = null; }
  bad(fatal, msg, args = {}) {
    if (fatal) this.fatal = true;
    if (this.n++ === 0) this.first = { msg, args };
  }
}

function onlyKeys(o, allowed, where, p) {
  for (const k of o.keys())
    if (!allowed.includes(k)) p.bad(false, 'p_unknown', { field: k.slice(0, 40), where });
}

function getString(o, key, where, max, p) {
  const v = o.get(key);
  const path = `${where}.${key}`;
  if (v === undefined) { p.bad(true, 'p_missing', { path }); return null; }
  if (!isString(v)) { p.bad(true, 'p_notstring', { path }); return null; }
  if (utf8Length(v) > max) { p.bad(true, 'p_toolong', { path, max }); return null; }
  return v;
}

function getTyped(o, key, where, wantObject, p) {
  const v = o.get(key);
  const path = `${where}.${key}`;
  if (v === undefined) p.bad(true, 'p_missing', { path });
  else if (wantObject ? !isObject(v) : !Array.isArray(v))
    p.bad(true, 'p_nottype', { path, what: wantObject ? 'object' : 'array' });
  else return v;
  return null;
}

function readCerts(d, arr, p) {
  if (arr.length === 0 || arr.length > MAX_CERTS) {
    p.bad(true, 'p_certs_count', { n: arr.length });
    return;
  }
  for (let i = 0; i < arr.length; i++) {
    const v = arr[i];
    if (!isString(v) || utf8Length(v) > MAX_CERT_PEM) {
      p.bad(true, 'p_cert_notpem', { i });
      return;
    }
    const c = certFromPem(v);
    if (!c) {
      p.bad(true, 'p_cert_form', { i });
      return;
    }
    d.certs.push(c);
  }
}

async function readLog(d, log, p) {
  onlyKeys(log, ['verifier_key', 'checkpoint', 'timestamp', 'tsa_certs'], 'log', p);
  d.vkey = getString(log, 'verifier_key', 'log', MAX_VKEY, p);
  if (d.vkey !== null) {
    const k = await vkeyParse(d.vkey);
    if (k.err) p.bad(false, 'p_vkey', { why: k.err, id: k.id });
    else if (!nameValid(k.name) || vkeyFormat(k) !== d.vkey)
      p.bad(false, 'p_vkey_form', { canon: vkeyFormat(k).slice(0, 100) });
  }
  d.note = getString(log, 'checkpoint', 'log', MAX_NOTE, p);
  const ts = getString(log, 'timestamp', 'log', MAX_TOKEN * 2, p);
  if (ts !== null && !(d.tst = b64decode(ts))) p.bad(true, 'p_ts_b64');
  const certs = getTyped(log, 'tsa_certs', 'log', false, p);
  if (certs) readCerts(d, certs, p);
}

function readEvent(e, o, i, p) {
  const where = `events[${i}]`;
  if (!isObject(o)) { p.bad(true, 'p_ev_notobj', { i }); return; }
  onlyKeys(o, ['index', 'entry', 'proof'], where, p);
  const ix = o.get('index');
  if (!isInteger(ix) || ix < 0n) { p.bad(true, 'p_ev_index', { i }); return; }
  e.index = ix;
  e.entry = getString(o, 'entry', where, MAX_ENTRY, p);
  const proof = getTyped(o, 'proof', where, false, p);
  if (!proof) return;
  if (proof.length > MAX_PROOF) {
    p.bad(true, 'p_proof_many', { i, n: proof.length });
    return;
  }
  for (let j = 0; j < proof.length; j++) {
    const h = isString(proof[j]) ? b64decode(proof[j], 32) : null;
    if (!h || h.length !== 32) { p.bad(true, 'p_proof_hash', { i, j }); return; }
    e.proof.push(h);
  }
}

function readEvents(d, arr, p) {
  if (arr.length === 0 || arr.length > MAX_EVENTS) {
    p.bad(true, 'p_events_count', { n: arr.length });
    return;
  }
  for (let i = 0; i < arr.length; i++) {
    const e = { index: 0n, entry: null, proof: [], obj: null, type: '?', timeMs: null };
    d.ev.push(e);
    readEvent(e, arr[i], i, p);
    if (i > 0 && e.index <= d.ev[i - 1].index)
      p.bad(false, 'p_order', { i, idx: String(e.index), prev: String(d.ev[i - 1].index) });
  }
}

function readMessage(d, m, p) {
  onlyKeys(m, ['sha256', 'eml_base64'], 'message', p);
  d.sha256 = getString(m, 'sha256', 'message', 64, p);
  if (d.sha256 !== null && !isLowerHex(d.sha256, 64)) p.bad(false, 'p_sha_hex');
  const eml = m.get('eml_base64');
  if (eml === undefined) return;
  if (!isString(eml) || !(d.eml = b64decode(eml))) {
    d.eml = null;
    p.bad(true, 'p_eml_b64');
    return;
  }
  d.hasEml = true;
}

function readDisclosure(d, o, p) {
  onlyKeys(o, ['salt', 'values'], 'disclosure', p);
  const salt = getString(o, 'salt', 'disclosure', 64, p);
  if (salt !== null && !isLowerHex(salt, 64)) p.bad(true, 'p_salt');
  else if (salt !== null) d.salt = unhex(salt);
  d.values = getTyped(o, 'values', 'disclosure', true, p);
  if (d.values)
    for (const [k, v] of d.values)
      if (!isString(v)) p.bad(true, 'p_value_notstring', { k: k.slice(0, 24) });
}

function timeCanonical(s) {
  const ms = parseRfc3339(s);
  return ms !== null && rfc3339(ms) === s;
}

async function readDoc(d, root, p) {
  onlyKeys(root, ['format', 'notice', 'issued_at', 'log', 'events', 'message', 'disclosure'],
    'the receipt', p);
  d.notice = getString(root, 'notice', 'receipt', 64, p);
  d.issuedAt = getString(root, 'issued_at', 'receipt', 64, p);
  if (d.issuedAt !== null && !timeCanonical(d.issuedAt)) p.bad(false, 'p_issued_at');
  let o;
  if ((o = getTyped(root, 'log', 'receipt', true, p))) await readLog(d, o, p);
  if ((o = getTyped(root, 'events', 'receipt', false, p))) readEvents(d, o, p);
  if ((o = getTyped(root, 'message', 'receipt', true, p))) readMessage(d, o, p);
  if ((o = getTyped(root, 'disclosure', 'receipt', true, p))) readDisclosure(d, o, p);
}

// The entries are the log's own JSON, parsed once for the content checks.
function parseEntries(d) {
  for (const e of d.ev) {
    let o = null;
    try { o = parseJson(e.entry); } catch (x) { o = null; }
    if (!isObject(o)) continue;
    e.obj = o;
    const t = o.get('type');
    if (isString(t)) e.type = t;
    const tm = o.get('time');
    e.timeMs = isString(tm) ? parseRfc3339(tm) : null;
  }
}

// ---- the verifier ---------------------------------------------------------

class Run {
  constructor(onCheck) {
    this.checks = [];
    this.onCheck = onCheck || (() => {});
    this.d = { certs: [], ev: [], hasEml: false, eml: null, tst: null, salt: null, values: null };
    this.text = '';
    this.keyName = '';
    this.cp = null;
    this.genMs = null;
    this.tsStatus = 'fail';
    this.info = {};
  }

  async add(name, status, msg, args = {}) {
    if (this.checks.length >= MAX_CHECKS) {
      if (status !== 'fail') return;
      this.checks.length = MAX_CHECKS - 1;
    }
    const c = { name, status, msg, args };
    this.checks.push(c);
    await this.onCheck(c);
  }

  // Returns 0 to go on, 1 for UNREADABLE, -1 when a field is unusable.
  async format(bytes) {
    if (!bytes || !bytes.length) {
      await this.add('format', 'fail', 'fmt_empty');
      return 1;
    }
    if (bytes.length > MAX_RECEIPT_BYTES) {
      await this.add('format', 'fail', 'fmt_big');
      return 1;
    }
    let root;
    try {
      const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
      root = parseJson(text);
    } catch (e) {
      const j = e instanceof JsonError ? e : { line: 1, column: 1, text: 'not valid UTF-8' };
      await this.add('format', 'fail', 'fmt_json', { line: j.line, col: j.column, text: j.text });
      return 1;
    }
    const f = isObject(root) ? root.get('format') : undefined;
    if (!isObject(root) || !isString(f)) {
      await this.add('format', 'fail', 'fmt_noformat');
      return 1;
    }
    if (f !== FORMAT) {
      await this.add('format', 'fail', 'fmt_other', { f: f.slice(0, 60) });
      return 1;
    }
    const p = new Problems();
    await readDoc(this.d, root, p);
    if (p.n) {
      await this.add('format', 'fail', 'fmt_problem', { p: p.first, more: p.n > 1 });
      if (p.fatal) return -1;
    } else {
      await this.add('format', 'ok', 'fmt_ok', { n: this.d.ev.length, eml: this.d.hasEml });
    }
    parseEntries(this.d);
    this.info.vkey = this.d.vkey;
    return 0;
  }

  async notice() {
    const id = this.d.notice;
    this.info.notice = id;
    const valid = id.length === 26 && [...id.toUpperCase()].every((c) => CROCK.includes(c)) &&
      CROCK.indexOf(id[0].toUpperCase()) < 8;
    if (!valid) await this.add('notice', 'fail', 'notice_bad', { id: id.slice(0, 40) });
    else await this.add('notice', 'ok', 'notice_ok', { id });
  }

  noteTextUnverified() {
    const n = this.d.note;
    const i = lastBlank(n);
    this.text = i < 0 ? '' : n.slice(0, i + 1);
  }

  async signature(pinned) {
    const use = pinned !== null ? pinned : this.d.vkey;
    const whose = pinned !== null ? 'given' : 'receipt';
    this.noteTextUnverified();
    const k = await vkeyParse(use);
    if (k.err) {
      await this.add('checkpoint_signature', 'fail', 'sig_keybad', { whose, why: k.err, id: k.id });
      return;
    }
    this.keyName = k.name;
    let r;
    try {
      r = await noteOpen(this.d.note, k);
    } catch (e) {
      if (!(e instanceof NoEd25519)) throw e;
      await this.add('checkpoint_signature', 'skip', 'sig_noed25519');
      return;
    }
    if (r.err) {
      await this.add('checkpoint_signature', 'fail', 'sig_bad',
        { whose, name: k.name.slice(0, 80), id: idHex(k.id), why: r.err, wargs: r.args || {} });
      return;
    }
    this.text = r.text;
    const differs = pinned !== null && !(await sameKey(pinned, this.d.vkey));
    await this.add('checkpoint_signature', 'ok', 'sig_ok',
      { name: k.name.slice(0, 80), id: idHex(k.id), whose, differs });
  }

  async keyPinned(pinned) {
    if (pinned === null) {
      await this.add('key_pinned', 'warn', 'kp_none', { vkey: this.d.vkey.slice(0, 160) });
      return;
    }
    if (!(await sameKey(pinned, this.d.vkey))) {
      await this.add('key_pinned', 'fail', 'kp_diff',
        { vkey: this.d.vkey.slice(0, 140), given: pinned.slice(0, 140) });
      return;
    }
    await this.add('key_pinned', 'ok', 'kp_ok');
  }

  async origin() {
    const cp = await checkpointParse(this.text);
    if (cp.err) {
      await this.add('checkpoint_origin', 'fail', 'org_parse', { why: cp.err });
      return;
    }
    this.cp = cp;
    this.info.checkpoint = { origin: cp.origin, size: cp.size, root: b64encode(cp.root) };
    if (!this.keyName || cp.origin !== this.keyName) {
      await this.add('checkpoint_origin', 'fail', 'org_mismatch',
        { origin: cp.origin.slice(0, 100), key: this.keyName.slice(0, 100) });
      return;
    }
    await this.add('checkpoint_origin', 'ok', 'org_ok',
      { origin: cp.origin.slice(0, 100), size: String(cp.size), root: b64encode(cp.root) });
  }

  async timestamp(anchors, caError) {
    const d = this.d;
    const linked = await chainLinked(d.certs);
    if (linked && linked.unsupported) {
      await this.add('checkpoint_timestamp', 'skip', 'ts_unsupported', { what: linked.unsupported });
      return;
    }
    if (linked) {
      await this.add('checkpoint_timestamp', 'fail', 'ts_chain', linked);
      return;
    }
    const odd = unsignedParts(d.tst, d.certs);
    if (odd) {
      await this.add('checkpoint_timestamp', 'fail', 'ts_parts', { why: odd });
      return;
    }
    const digest = await sha256(utf8(d.note));
    const hx = hex(digest).slice(0, 16);
    if (caError) {
      await this.add('checkpoint_timestamp', 'fail', 'ts_bad', { hex: hx, why: 'tk_ca', arg: caError });
      return;
    }
    const r = await verifyToken(d.tst, digest, d.certs, anchors || [d.certs[d.certs.length - 1]],
      Date.now());
    const root = subjectText(d.certs[d.certs.length - 1]).slice(0, 100);
    if (r.unsupported) {
      this.genMs = r.genMs;
      this.tsStatus = 'skip';
      this.info.genMs = r.genMs;
      await this.add('checkpoint_timestamp', 'skip', 'ts_skip',
        { hex: hx, what: r.unsupported, when: rfc3339(r.genMs) });
      return;
    }
    if (!r.ok) {
      await this.add('checkpoint_timestamp', 'fail', 'ts_bad', { hex: hx, why: r.why, arg: r.arg });
      return;
    }
    this.genMs = r.genMs;
    this.tsStatus = 'ok';
    this.info.genMs = r.genMs;
    this.info.tsa = r.tsa;
    await this.add('checkpoint_timestamp', 'ok', 'ts_ok',
      { hex: hx, when: rfc3339(r.genMs), tsa: r.tsa.slice(0, 120), root });
  }

  async tsaPinned(pinned) {
    if (pinned) {
      await this.add('tsa_pinned', 'ok', 'tp_ok');
      return;
    }
    await this.add('tsa_pinned', 'warn', 'tp_none',
      { root: subjectText(this.d.certs[this.d.certs.length - 1]).slice(0, 150) });
  }

  // {ok, why, n, size}: event e in the checkpoint's tree?
  async included(e) {
    if (!this.cp) return { ok: false, why: 'inc_nocp' };
    if (e.index >= this.cp.size) return { ok: false, why: 'inc_beyond', size: String(this.cp.size) };
    const leaf = await leafHash(utf8(e.entry));
    const r = await rootFromProof(e.index, this.cp.size, leaf, e.proof);
    if (!r || !equal(r, this.cp.root)) return { ok: false, why: 'inc_bad' };
    return { ok: true, why: 'inc_ok', n: e.proof.length, size: String(this.cp.size) };
  }

  async inclusion() {
    const ev = this.d.ev;
    const each = ev.length <= INCLUSION_LINES ? ev.length : INCLUSION_LINES - 1;
    for (let i = 0; i < each; i++) {
      const r = await this.included(ev[i]);
      await this.add('inclusion', r.ok ? 'ok' : 'fail', 'inc',
        { idx: String(ev[i].index), type: ev[i].type.slice(0, 40), r });
    }
    if (each === ev.length) return;
    let failed = 0, first = 0;
    for (let i = each; i < ev.length; i++)
      if (!(await this.included(ev[i])).ok && !failed++) first = i;
    if (failed)
      await this.add('inclusion', 'fail', 'inc_rest_fail', { failed, from: String(ev[each].index),
        first: String(ev[first].index), type: ev[first].type.slice(0, 40) });
    else
      await this.add('inclusion', 'ok', 'inc_rest_ok', { n: ev.length - each,
        from: String(ev[each].index) });
  }

  async entriesNotice() {
    const notice = this.d.notice;
    for (const e of this.d.ev) {
      let why = null;
      const o = e.obj;
      if (!o) why = 'en_notobj';
      else if (!isInteger(o.get('v')) || o.get('v') !== 1n) why = 'en_v';
      else if (!isString(o.get('type'))) why = 'en_type';
      else if (!isString(o.get('time'))) why = 'en_time';
      else if (o.get('notice') !== notice) why = 'en_other';
      if (why) {
        await this.add('entries_notice', 'fail', 'en_bad', { idx: String(e.index), why });
        return;
      }
    }
    await this.add('entries_notice', 'ok', 'en_ok', { n: this.d.ev.length, notice: notice.slice(0, 40) });
  }

  async timeOrder() {
    const ev = this.d.ev;
    for (let i = 0; i < ev.length; i++) {
      if (ev[i].timeMs === null) {
        await this.add('time_order', 'fail', 'to_notime', { idx: String(ev[i].index) });
        return;
      }
      if (i > 0 && ev[i].timeMs < ev[i - 1].timeMs) {
        await this.add('time_order', 'fail', 'to_back',
          { idx: String(ev[i].index), type: ev[i].type.slice(0, 40) });
        return;
      }
    }
    if (ev[0].type !== 'submission_accepted') {
      await this.add('time_order', 'fail', 'to_first', { type: ev[0].type.slice(0, 40) });
      return;
    }
    const last = ev[ev.length - 1];
    const issued = parseRfc3339(this.d.issuedAt);
    if (issued === null || issued < last.timeMs) {
      await this.add('time_order', 'fail', 'to_issued', { at: this.d.issuedAt.slice(0, 40) });
      return;
    }
    await this.add('time_order', 'ok', 'to_ok', { n: ev.length, a: rfc3339(ev[0].timeMs),
      b: rfc3339(last.timeMs), at: this.d.issuedAt.slice(0, 40) });
  }

  async beforeTimestamp() {
    if (this.tsStatus === 'fail' || this.genMs === null) {
      await this.add('entries_before_timestamp', 'fail', 'bt_cannot');
      return;
    }
    const ts = rfc3339(this.genMs);
    for (const e of this.d.ev) {
      if (e.timeMs === null || e.timeMs > this.genMs + TS_TOLERANCE_MS) {
        await this.add('entries_before_timestamp', 'fail', 'bt_after', { idx: String(e.index),
          type: e.type.slice(0, 40), t: e.timeMs === null ? null : rfc3339(e.timeMs), ts });
        return;
      }
    }
    await this.add('entries_before_timestamp', this.tsStatus,
      this.tsStatus === 'ok' ? 'bt_ok' : 'bt_unverified', { ts });
  }

  async message() {
    const d = this.d;
    let any = null, e = null;
    for (const x of d.ev) {
      if (!x.obj || x.type !== 'content_sealed') continue;
      any = x;
      if (d.sha256 !== null && x.obj.get('sha256') === d.sha256) { e = x; break; }
    }
    if (!e) {
      if (any) await this.add('message_digest', 'fail', 'md_notsealed', { idx: String(any.index) });
      else await this.add('message_digest', 'fail', 'md_none');
      return;
    }
    if (!d.hasEml) {
      await this.add('message_digest', 'ok', 'md_short', { sha: d.sha256.slice(0, 16), idx: String(e.index) });
      return;
    }
    const hx = hex(await sha256(d.eml));
    const size = e.obj.get('size');
    if (hx !== d.sha256) {
      await this.add('message_digest', 'fail', 'md_hash', { hex: hx.slice(0, 16), sha: d.sha256.slice(0, 16) });
      return;
    }
    if (isInteger(size) && BigInt(d.eml.length) !== size) {
      await this.add('message_digest', 'fail', 'md_size', { n: d.eml.length, size: String(size) });
      return;
    }
    this.info.emlBytes = d.eml.length;
    await this.add('message_digest', 'ok', 'md_ok', { n: d.eml.length, hex: hx.slice(0, 16), idx: String(e.index) });
  }

  async disclosures() {
    const d = this.d;
    const committed = new Map();
    const collect = (j, type, field) => {
      if (isString(j)) {
        if (utf8Length(j) === COMMIT_LEN && j.startsWith('sha256:') && !committed.has(j))
          committed.set(j, `${type.slice(0, 40)}.${field.slice(0, 40)}`);
      } else if (isObject(j)) {
        for (const [k, v] of j) collect(v, type, k);
      } else if (Array.isArray(j)) {
        for (const v of j) collect(v, type, field);
      }
    };
    for (const e of d.ev) if (e.obj) collect(e.obj, e.type, '?');
    const names = [];
    let n = 0;
    for (const [k, v] of d.values) {
      const mine = 'sha256:' + hex(await sha256(d.salt, utf8(v)));
      if (mine !== k) {
        await this.add('disclosures', 'fail', 'ds_mismatch', { k: k.slice(0, 24) });
        return;
      }
      const w = committed.get(k);
      if (!w) {
        await this.add('disclosures', 'fail', 'ds_nocommit', { k: k.slice(0, 24) });
        return;
      }
      if (!names.includes(w)) names.push(w);
      n++;
      this.info.disclosed = this.info.disclosed || [];
      this.info.disclosed.push({ field: w, value: v });
    }
    if (n === 0) await this.add('disclosures', 'ok', 'ds_none');
    else await this.add('disclosures', 'ok', 'ds_ok', { n, names: names.join(', ').slice(0, 300) });
  }

  events() {
    return this.d.ev.map((e) => ({ index: String(e.index), type: e.type,
      time: e.timeMs === null ? null : e.timeMs }));
  }
}

// Runs every check on the bytes of a JSON receipt. opts.vkey: the log key
// given by the person (string) or null; opts.anchors: parsed CA
// certificates given, or null; opts.caError: why the CA file given could
// not be read. onCheck(check) is awaited after each line.
export async function verifyReceipt(bytes, opts, onCheck) {
  const run = new Run(onCheck);
  let verdict;
  let r;
  try {
    r = await run.format(bytes);
  } catch (e) {
    await run.add('format', 'fail', 'internal', { text: String((e && e.message) || e).slice(0, 200) });
    r = 1;
  }
  if (r === 0) {
    const pinned = opts.vkey ? opts.vkey.trim().slice(0, MAX_VKEY) : null;
    const caGiven = !!(opts.anchors || opts.caError);
    const steps = [
      ['notice', () => run.notice()],
      ['checkpoint_signature', () => run.signature(pinned)],
      ['key_pinned', () => run.keyPinned(pinned)],
      ['checkpoint_origin', () => run.origin()],
      ['checkpoint_timestamp', () => run.timestamp(opts.anchors, opts.caError)],
      ['tsa_pinned', () => run.tsaPinned(caGiven)],
      ['inclusion', () => run.inclusion()],
      ['entries_notice', () => run.entriesNotice()],
      ['time_order', () => run.timeOrder()],
      ['entries_before_timestamp', () => run.beforeTimestamp()],
      ['message_digest', () => run.message()],
      ['disclosures', () => run.disclosures()],
    ];
    for (const [name, step] of steps) {
      try {
        await step();
      } catch (e) {
        // A hostile input no branch foresaw: that check fails, never passes.
        await run.add(name, 'fail', 'internal', { text: String((e && e.message) || e).slice(0, 200) });
      }
    }
    run.info.events = run.events();
    run.info.hasEml = run.d.hasEml;
  }
  if (r > 0) verdict = 'UNREADABLE';
  else if (run.checks.some((c) => c.status === 'fail')) verdict = 'INVALID';
  else if (run.checks.some((c) => c.status === 'skip')) verdict = 'INCOMPLETE';
  else verdict = 'VALID';
  return { verdict, checks: run.checks, info: run.info };
}
