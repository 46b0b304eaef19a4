// pdf.js: finds the JSON receipt a Selo PDF receipt carries as an embedded
// file (docs/receipt.md, "selo verify FILE.pdf"), in an untrusted PDF:
//  - every "N G obj ... endobj" is read in file order, so with incremental
//    updates the last definition of an object number wins; objects inside
//    object streams (/Type /ObjStm) count as defined where their stream is;
//  - a file specification is a dictionary with /EF; its name is /UF, else
//    /F; the first whose name ends in ".json" is the receipt, taken in the
//    order of the catalog's /EmbeddedFiles name tree, then in object order;
//  - its /EF /F (or /UF) stream is read unfiltered or /FlateDecode
//    (DecompressionStream), at most 64 MiB.
// pdfSignature judges the PDF's own signature as `selo verify` does
// (src/pdf.c pdf_signature_check): the catalog's /AcroForm, its first
// signature field's /V; /ByteRange [0 a b c] must leave out exactly the
// hex /Contents and reach the end of the file; the detached CMS there must
// verify over those bytes (messageDigest, then the signer's signature with
// WebCrypto). Its certificate chain is a PDF reader's business, as there.
// Errors are PdfError with code "none" (no receipt inside) or "bad".

import {
  DerError, Unsupported, OID, HASH_NAME, OTHER_SIG_ALGS, readTLV, parseDer, parseCert,
  parseSignedData, octets, verifySig, hashWith, subjectText,
} from './asn1.js';
import { concat, equal } from './util.js';

export class PdfError extends Error {
  constructor(code, text) {
    super(text);
    this.code = code;
  }
}

const MAX_OUT = 64 * 1024 * 1024;
const MAX_DEPTH = 64;
const MAX_ITEMS = 100000;

export class Name { constructor(n) { this.n = n; } }
export class Ref { constructor(num, gen) { this.num = num; this.gen = gen; } }
// A string's bytes; a hex string also knows where it stands: [s, e) in src.
class Str { constructor(b, at = null) { this.b = b; this.at = at; } }
class Keyword { constructor(k) { this.k = k; } }

const WS = new Set([0, 9, 10, 12, 13, 32]);
const DELIM = new Set([0x28, 0x29, 0x3c, 0x3e, 0x5b, 0x5d, 0x7b, 0x7d, 0x2f, 0x25]);

// A tokenizer/parser over bytes b from position pos.
class Lexer {
  constructor(b, pos, end = b.length) {
    this.b = b;
    this.p = pos;
    this.end = end;
    this.items = 0;
  }

  skip() {
    const b = this.b;
    while (this.p < this.end) {
      const c = b[this.p];
      if (WS.has(c)) this.p++;
      else if (c === 0x25) { // comment to the end of the line
        while (this.p < this.end && b[this.p] !== 10 && b[this.p] !== 13) this.p++;
      } else break;
    }
  }

  regular() {
    const s = this.p;
    while (this.p < this.end && !WS.has(this.b[this.p]) && !DELIM.has(this.b[this.p])) this.p++;
    return String.fromCharCode(...this.b.subarray(s, Math.min(this.p, s + 256)));
  }

  literal() {
    const b = this.b, out = [];
    let depth = 1;
    this.p++;
    while (this.p < this.end) {
      let c = b[this.p++];
      if (c === 0x5c) {
        if (this.p >= this.end) break;
        c = b[this.p++];
        const map = { 0x6e: 10, 0x72: 13, 0x74: 9, 0x62: 8, 0x66: 12 };
        if (map[c] !== undefined) out.push(map[c]);
        else if (c >= 0x30 && c <= 0x37) {
          let v = c - 0x30;
          for (let k = 0; k < 2 && this.p < this.end && b[this.p] >= 0x30 && b[this.p] <= 0x37; k++)
            v = v * 8 + b[this.p++] - 0x30;
          out.push(v & 0xff);
        } else if (c === 13) { if (b[this.p] === 10) this.p++; } else if (c !== 10) out.push(c);
      } else if (c === 0x28) { depth++; out.push(c); } else if (c === 0x29) {
        if (--depth === 0) return new Str(new Uint8Array(out));
        out.push(c);
      } else out.push(c);
      if (out.length > 65536) throw new PdfError('bad', 'a string in the PDF is too long');
    }
    throw new PdfError('bad', 'an unterminated string in the PDF');
  }

  hexString() {
    const b = this.b, digits = [], s = this.p;
    this.p++;
    while (this.p < this.end && b[this.p] !== 0x3e) {
      const c = b[this.p++];
      if (WS.has(c)) continue;
      const v = parseInt(String.fromCharCode(c), 16);
      if (Number.isNaN(v)) throw new PdfError('bad', 'a bad hex string in the PDF');
      digits.push(v);
      if (digits.length > 131072) throw new PdfError('bad', 'a string in the PDF is too long');
    }
    this.p++;
    if (digits.length % 2) digits.push(0);
    const out = new Uint8Array(digits.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = digits[2 * i] * 16 + digits[2 * i + 1];
    return new Str(out, { src: b, s, e: this.p });
  }

  name() {
    this.p++;
    const raw = this.regular();
    return new Name(raw.replace(/#([0-9A-Fa-f]{2})/g, (m, h) => String.fromCharCode(parseInt(h, 16))));
  }

  // One object; references "n g R" are recognised after two integers.
  value(depth = 0) {
    if (depth > MAX_DEPTH || ++this.items > MAX_ITEMS) throw new PdfError('bad', 'the PDF nests too deep');
    this.skip();
    if (this.p >= this.end) throw new PdfError('bad', 'the PDF ends inside an object');
    const c = this.b[this.p];
    if (c === 0x2f) return this.name();
    if (c === 0x28) return this.literal();
    if (c === 0x3c) {
      if (this.b[this.p + 1] === 0x3c) return this.dict(depth);
      return this.hexString();
    }
    if (c === 0x5b) {
      this.p++;
      const a = [];
      for (;;) {
        this.skip();
        if (this.b[this.p] === 0x5d) { this.p++; return a; }
        a.push(this.value(depth + 1));
      }
    }
    const word = this.regular();
    if (!word) throw new PdfError('bad', 'an unexpected character in the PDF');
    if (/^[+-]?\d+$/.test(word)) {
      const save = this.p;
      this.skip();
      const w2 = /[0-9]/.test(String.fromCharCode(this.b[this.p] || 0)) ? this.regular() : '';
      if (/^\d+$/.test(w2)) {
        this.skip();
        if (this.b[this.p] === 0x52 && (this.p + 1 >= this.end || WS.has(this.b[this.p + 1]) ||
            DELIM.has(this.b[this.p + 1]))) {
          this.p++;
          return new Ref(Number(word), Number(w2));
        }
      }
      this.p = save;
      return Number(word);
    }
    if (/^[+-]?(\d+\.?\d*|\.\d+)$/.test(word)) return Number(word);
    if (word === 'true') return true;
    if (word === 'false') return false;
    if (word === 'null') return null;
    return new Keyword(word);
  }

  dict(depth) {
    this.p += 2;
    const m = new Map();
    for (;;) {
      this.skip();
      if (this.b[this.p] === 0x3e && this.b[this.p + 1] === 0x3e) { this.p += 2; return m; }
      const k = this.value(depth + 1);
      if (!(k instanceof Name)) throw new PdfError('bad', 'a dictionary key is not a name');
      m.set(k.n, this.value(depth + 1));
    }
  }
}

function indexOfBytes(b, pat, from, to = b.length) {
  const first = pat.charCodeAt(0);
  outer: for (let i = b.indexOf(first, from); i >= 0 && i + pat.length <= to; i = b.indexOf(first, i + 1)) {
    for (let k = 1; k < pat.length; k++) if (b[i + k] !== pat.charCodeAt(k)) continue outer;
    return i;
  }
  return -1;
}

// Every object definition in file order: {num, value, stream: {start, dict}}.
function scanObjects(b) {
  const text = new TextDecoder('windows-1252').decode(b);
  const re = /(\d{1,10})[\0\t\n\f\r ]+(\d{1,5})[\0\t\n\f\r ]+obj(?=[\0\t\n\f\r <\[\/(%]|$)/g;
  const defs = [];
  let m;
  while ((m = re.exec(text))) {
    const lx = new Lexer(b, re.lastIndex);
    let value;
    try { value = lx.value(); } catch (e) { continue; }
    const def = { num: Number(m[1]), gen: Number(m[2]), value, pos: m.index, stream: null };
    lx.skip();
    re.lastIndex = Math.max(re.lastIndex, lx.p);
    if (value instanceof Map && indexOfBytes(b, 'stream', lx.p, lx.p + 6) === lx.p) {
      let start = lx.p + 6;
      if (b[start] === 13 && b[start + 1] === 10) start += 2;
      else if (b[start] === 10 || b[start] === 13) start += 1;
      def.stream = { start };
      // Skip the stream's bytes: an "obj" inside them is data, not an object.
      const end = indexOfBytes(b, 'endstream', start);
      if (end > 0) re.lastIndex = end;
      def.stream.endstream = end;
    }
    defs.push(def);
    if (defs.length > 1000000) throw new PdfError('bad', 'too many objects in the PDF');
  }
  return defs;
}

async function inflate(data) {
  const ds = new DecompressionStream('deflate');
  const reader = new Blob([data]).stream().pipeThrough(ds).getReader();
  const parts = [];
  let n = 0;
  for (;;) {
    let r;
    try { r = await reader.read(); } catch (e) {
      throw new PdfError('bad', 'the embedded file\'s /FlateDecode data is damaged');
    }
    if (r.done) break;
    n += r.value.length;
    if (n > MAX_OUT) {
      reader.cancel();
      throw new PdfError('bad', 'the embedded file is larger than 64 MiB');
    }
    parts.push(r.value);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

class Pdf {
  constructor(b) {
    this.b = b;
    this.objs = new Map();
    for (const d of scanObjects(b)) this.objs.set(d.num, d); // last one wins
    this.expandObjectStreams();
  }

  get(v, depth = 0) {
    while (v instanceof Ref && depth++ < 32) {
      const d = this.objs.get(v.num);
      v = d ? d.value : null;
    }
    return v instanceof Ref ? null : v;
  }

  // The raw bytes of an object's stream, by /Length when it checks out
  // (followed by "endstream"), else up to "endstream".
  raw(def) {
    const b = this.b, s = def.stream.start;
    const len = this.get(def.value.get('Length'));
    if (Number.isInteger(len) && len >= 0 && s + len <= b.length) {
      let q = s + len;
      while (q < b.length && WS.has(b[q]) && q < s + len + 4) q++;
      if (indexOfBytes(b, 'endstream', q, q + 9) === q) return b.subarray(s, s + len);
    }
    let e = def.stream.endstream;
    if (e < 0) throw new PdfError('bad', 'a stream in the PDF has no end');
    if (b[e - 1] === 10) e--;
    if (b[e - 1] === 13) e--;
    return b.subarray(s, Math.max(s, e));
  }

  async data(def) {
    const dict = def.value;
    let filters = this.get(dict.get('Filter'));
    if (filters === null || filters === undefined) filters = [];
    if (!Array.isArray(filters)) filters = [filters];
    let out = this.raw(def);
    for (const f of filters) {
      const name = this.get(f);
      if (!(name instanceof Name) || (name.n !== 'FlateDecode' && name.n !== 'Fl'))
        throw new PdfError('bad', `the embedded file uses the filter ${name instanceof Name ? name.n : '?'}, which this page does not read`);
      const parms = this.get(dict.get('DecodeParms'));
      const pred = parms instanceof Map ? this.get(parms.get('Predictor')) : null;
      if (Number.isInteger(pred) && pred > 1)
        throw new PdfError('bad', 'the embedded file uses a /FlateDecode predictor, which this page does not read');
      out = await inflate(out);
    }
    if (out.length > MAX_OUT) throw new PdfError('bad', 'the embedded file is larger than 64 MiB');
    return out;
  }

  // Objects inside /Type /ObjStm streams (PDF 1.5), unless a later plain
  // definition of the same number follows the stream.
  expandObjectStreams() {
    this.pending = [];
    for (const d of [...this.objs.values()]) {
      if (!d.stream || !(d.value instanceof Map)) continue;
      const t = this.get(d.value.get('Type'));
      if (t instanceof Name && t.n === 'ObjStm') this.pending.push(d);
    }
  }

  async loadObjectStreams() {
    for (const d of this.pending) {
      let data;
      try { data = await this.data(d); } catch (e) { continue; }
      const n = this.get(d.value.get('N')), first = this.get(d.value.get('First'));
      if (!Number.isInteger(n) || !Number.isInteger(first) || n < 0 || n > 100000 ||
          first < 0 || first > data.length) continue;
      const head = new Lexer(data, 0, first);
      for (let i = 0; i < n; i++) {
        let num, off;
        try { num = head.value(); off = head.value(); } catch (e) { break; }
        if (!Number.isInteger(num) || !Number.isInteger(off) || first + off >= data.length) break;
        const cur = this.objs.get(num);
        if (cur && cur.pos > d.pos) continue;
        let value;
        try { value = new Lexer(data, first + off).value(); } catch (e) { continue; }
        this.objs.set(num, { num, gen: 0, value, pos: d.pos, stream: null });
      }
    }
  }

  // File specifications in the catalog's /EmbeddedFiles name tree order,
  // then every other dictionary with /EF, in object number order.
  fileSpecs() {
    const out = [];
    const seen = new Set();
    const push = (fs) => { if (fs instanceof Map && fs.has('EF') && !seen.has(fs)) { seen.add(fs); out.push(fs); } };
    const catalogs = [...this.objs.values()].filter((d) => d.value instanceof Map &&
      this.get(d.value.get('Type')) instanceof Name && this.get(d.value.get('Type')).n === 'Catalog');
    catalogs.sort((a, b) => b.pos - a.pos);
    const walkTree = (node, depth) => {
      node = this.get(node);
      if (!(node instanceof Map) || depth > 16) return;
      const names = this.get(node.get('Names'));
      if (Array.isArray(names)) for (let i = 1; i < names.length; i += 2) push(this.get(names[i]));
      const kids = this.get(node.get('Kids'));
      if (Array.isArray(kids)) for (const k of kids.slice(0, 1000)) walkTree(k, depth + 1);
    };
    if (catalogs.length) {
      const names = this.get(catalogs[0].value.get('Names'));
      if (names instanceof Map) walkTree(names.get('EmbeddedFiles'), 0);
    }
    const walk = (v, depth) => {
      if (depth > 12) return;
      if (v instanceof Map) {
        push(v);
        for (const x of v.values()) walk(x, depth + 1);
      } else if (Array.isArray(v)) {
        for (const x of v.slice(0, 10000)) walk(x, depth + 1);
      }
    };
    const nums = [...this.objs.keys()].sort((a, b) => a - b);
    for (const n of nums) walk(this.objs.get(n).value, 0);
    return out;
  }
}

// PDF text strings: UTF-16BE with a BOM, UTF-8 with a BOM (PDF 2.0), else
// PDFDocEncoding (Latin-1 for the characters of a file name).
function textString(v) {
  if (!(v instanceof Str)) return null;
  const b = v.b;
  if (b[0] === 0xfe && b[1] === 0xff) return new TextDecoder('utf-16be').decode(b.subarray(2));
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) return new TextDecoder().decode(b.subarray(3));
  return latin1(b);
}

function latin1(b) {
  let s = '';
  for (let i = 0; i < b.length; i += 4096) s += String.fromCharCode(...b.subarray(i, i + 4096));
  return s;
}

export function isPdf(bytes) {
  return bytes.length >= 5 && String.fromCharCode(...bytes.subarray(0, 5)) === '%PDF-';
}

// {name, data} of the embedded receipt, or throws PdfError.
export async function embeddedReceipt(bytes) {
  if (!isPdf(bytes)) throw new PdfError('bad', 'not a PDF');
  if (bytes.length > MAX_OUT) throw new PdfError('bad', 'the PDF is larger than 64 MiB');
  const pdf = new Pdf(bytes);
  await pdf.loadObjectStreams();
  for (const fs of pdf.fileSpecs()) {
    const name = textString(pdf.get(fs.get('UF'))) || textString(pdf.get(fs.get('F')));
    if (!name || !name.toLowerCase().endsWith('.json')) continue;
    const ef = pdf.get(fs.get('EF'));
    if (!(ef instanceof Map)) continue;
    const ref = ef.get('F') || ef.get('UF');
    const def = ref instanceof Ref ? pdf.objs.get(ref.num) : null;
    if (!def || !def.stream) throw new PdfError('bad', `the embedded file ${name} has no data stream`);
    return { name, data: await pdf.data(def) };
  }
  throw new PdfError('none', 'no embedded .json file');
}

// ---- the PDF's own signature (pdf.c pdf_signature_check) -----------------

function lastIndexOfBytes(b, pat, from) {
  const first = pat.charCodeAt(0);
  outer: for (let i = b.lastIndexOf(first, from); i >= 0; i = i ? b.lastIndexOf(first, i - 1) : -1) {
    if (i + pat.length > b.length) continue;
    for (let k = 1; k < pat.length; k++) if (b[i + k] !== pat.charCodeAt(k)) continue outer;
    return i;
  }
  return -1;
}

// The document catalog as selo verify finds it: the last trailer with a
// /Root, else the last object of /Type /Catalog.
function catalogOf(pdf) {
  const b = pdf.b;
  for (let at = lastIndexOfBytes(b, 'trailer', b.length - 1); at >= 0;
    at = at ? lastIndexOfBytes(b, 'trailer', at - 1) : -1) {
    let t;
    try { t = new Lexer(b, at + 7).value(); } catch (e) { continue; }
    const root = t instanceof Map ? pdf.get(t.get('Root')) : null;
    if (root instanceof Map) return root;
  }
  let best = null;
  for (const d of pdf.objs.values()) {
    const ty = d.value instanceof Map ? pdf.get(d.value.get('Type')) : null;
    if (ty instanceof Name && ty.n === 'Catalog' && (!best || d.pos >= best.pos)) best = d;
  }
  return best ? best.value : null;
}

// The first field of /AcroForm /Fields with /FT /Sig and a /V dictionary.
function signatureDict(pdf, cat) {
  const form = pdf.get(cat.get('AcroForm'));
  const fields = form instanceof Map ? pdf.get(form.get('Fields')) : null;
  if (!Array.isArray(fields)) return null;
  for (const item of fields) {
    const f = pdf.get(item);
    if (!(f instanceof Map)) continue;
    const ft = pdf.get(f.get('FT'));
    const v = pdf.get(f.get('V'));
    if (ft instanceof Name && ft.n === 'Sig' && v instanceof Map) return v;
  }
  return null;
}

const bad = (why, args = {}) => ({ status: 'fail', msg: 'ps_bad', args: { why, ...args } });

// /ByteRange [0 a b c]: [a, b) must be exactly the hex /Contents; b + c at
// most the file's size. The four offsets, or null.
function byteRange(pdf, sig, contents) {
  const br = pdf.get(sig.get('ByteRange'));
  if (!Array.isArray(br) || br.length !== 4) return null;
  const r = br.map((x) => pdf.get(x));
  if (!r.every((x) => Number.isInteger(x) && x >= 0 && x <= pdf.b.length)) return null;
  if (r[0] !== 0 || r[1] !== contents.at.s || r[2] !== contents.at.e || r[2] + r[3] > pdf.b.length)
    return null;
  return r;
}

function skidOf(c) {
  const e = c.ext.get(OID.skid);
  try { return e ? octets(parseDer(e.value)) : null; } catch (x) { return null; }
}

// CMS_verify(CMS_DETACHED | CMS_NO_SIGNER_CERT_VERIFY) over content: every
// signer found among the certificates, its signed attributes (contentType
// and messageDigest once each), the digest and the signature. {ok, signer}
// or {why}; throws Unsupported for what WebCrypto cannot check.
async function cmsVerify(der, content) {
  let sd, certs;
  try {
    // The DER is padded with zeros up to the room /Contents reserves.
    sd = parseSignedData(readTLV(der, 0, der.length));
    certs = sd.certs.map((c) => parseCert(c));
  } catch (e) {
    if (e instanceof DerError) return { why: 'ps_cms' };
    throw e;
  }
  if (!sd.signers.length) return { why: 'ps_cms' };
  let first = null;
  for (const si of sd.signers) {
    const cert = certs.find((c) => (si.sid.serial ? equal(c.issuer, si.sid.issuer) &&
      equal(c.serial, si.sid.serial) : skidOf(c) && equal(skidOf(c), si.sid.skid)));
    if (!cert) return { why: 'ps_nosigner' };
    if (OTHER_SIG_ALGS[si.sigAlg.oid]) throw new Unsupported(OTHER_SIG_ALGS[si.sigAlg.oid]);
    const hash = HASH_NAME[si.digestAlg.oid];
    const md = await hashWith(si.digestAlg.oid, content);
    if (!hash) return { why: 'ps_sig' };
    let signed = content;
    if (si.signedAttrs) {
      const one = (o) => si.attrs.filter((a) => a.oid === o);
      const ct = one(OID.contentType), mdA = one(OID.messageDigest);
      if (ct.length !== 1 || ct[0].values.length !== 1 || mdA.length !== 1 ||
          mdA[0].values.length !== 1)
        return { why: 'ps_cms' };
      if (!equal(octets(mdA[0].values[0]), md)) return { why: 'ps_digest' };
      signed = si.signedAttrs;
    }
    if (!(await verifySig(cert, cert.keyType, hash, signed, si.signature)))
      return { why: si.signedAttrs ? 'ps_sig' : 'ps_digest' };
    first = first || cert;
  }
  return { ok: true, signer: subjectText(first) };
}

// The check `pdf_signature` of `selo verify FILE.pdf`: {status, msg, args}.
// ok only when a valid signature covers the whole file but its /Contents;
// fail when the PDF is unsigned, its signature does not hold, or bytes
// follow what it covers (an update appended after signing, which can
// change what the pages show); skip when this browser cannot check it.
export async function pdfSignature(bytes) {
  let pdf;
  try { pdf = new Pdf(bytes); } catch (e) { return bad('ps_unreadable'); }
  const cat = catalogOf(pdf);
  const sig = cat ? signatureDict(pdf, cat) : null;
  if (!sig) return { status: 'fail', msg: 'ps_none', args: {} };
  const sub = pdf.get(sig.get('SubFilter'));
  if (!(sub instanceof Name) || !['ETSI.CAdES.detached', 'adbe.pkcs7.detached'].includes(sub.n))
    return bad('ps_subfilter');
  const contents = pdf.get(sig.get('Contents'));
  if (!(contents instanceof Str) || !contents.at || contents.at.src !== bytes)
    return bad('ps_contents');
  const r = byteRange(pdf, sig, contents);
  if (!r) return bad('ps_range');
  let v;
  try {
    v = await cmsVerify(contents.b, concat(bytes.subarray(0, r[1]), bytes.subarray(r[2], r[2] + r[3])));
  } catch (e) {
    if (e instanceof Unsupported) return { status: 'skip', msg: 'ps_skip', args: { what: e.message } };
    if (e instanceof DerError) return bad('ps_cms');
    throw e;
  }
  if (!v.ok) return bad(v.why);
  const covered = r[2] + r[3];
  if (covered < bytes.length)
    return { status: 'fail', msg: 'ps_partial', args: { covered, size: bytes.length,
      added: bytes.length - covered } };
  return { status: 'ok', msg: 'ps_ok', args: { signer: v.signer.slice(0, 200) } };
}
