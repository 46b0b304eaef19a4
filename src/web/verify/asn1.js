// asn1.js: a small strict DER reader and what the page needs of X.509,
// CMS SignedData (RFC 3161 tokens, PDF signatures) and TSTInfo: parsing,
// names as text, and signature checks through WebCrypto (RSA PKCS #1 v1.5,
// ECDSA, Ed25519).
// Every length is checked against its container before use; any surprise
// throws DerError, which the caller turns into a failed check.

import { equal, digest, latin1 } from './util.js';

export class DerError extends Error {}

export class Unsupported extends Error {}

// One TLV: tag byte, class, constructed, tag number, where it starts (s),
// where its content starts (c) and where it ends (e), over bytes b.
class Node {
  constructor(b, tag, num, s, c, e) {
    Object.assign(this, { b, tag, num, s, c, e });
  }
  get cls() { return this.tag >> 6; }
  get cons() { return (this.tag & 0x20) !== 0; }
  get der() { return this.b.subarray(this.s, this.e); }
  get content() { return this.b.subarray(this.c, this.e); }
  kids() {
    const out = [];
    let p = this.c;
    while (p < this.e) {
      const k = readTLV(this.b, p, this.e);
      out.push(k);
      p = k.e;
      if (out.length > 100000) throw new DerError('too many elements');
    }
    return out;
  }
}

// Reads one TLV at pos (before end) in DER: definite, minimal lengths only.
export function readTLV(b, pos, end) {
  const s = pos;
  if (pos >= end) throw new DerError('truncated');
  const tag = b[pos++];
  if (tag === 0) throw new DerError('end-of-contents outside an indefinite length');
  let num = tag & 0x1f;
  if (num === 0x1f) {
    num = 0;
    for (let k = 0; ; k++) {
      if (pos >= end || k > 4) throw new DerError('bad tag');
      const x = b[pos++];
      if (k === 0 && x === 0x80) throw new DerError('non-minimal tag');
      num = num * 128 + (x & 0x7f);
      if (!(x & 0x80)) break;
    }
    if (num < 31) throw new DerError('non-minimal tag');
  }
  if (pos >= end) throw new DerError('truncated');
  let len = b[pos++];
  if (len & 0x80) {
    const k = len & 0x7f;
    if (k === 0) throw new DerError('indefinite length');
    if (k > 4 || pos + k > end) throw new DerError('bad length');
    if (b[pos] === 0) throw new DerError('non-minimal length');
    len = 0;
    for (let j = 0; j < k; j++) len = len * 256 + b[pos++];
    if (len < 128) throw new DerError('non-minimal length');
  }
  if (pos + len > end) throw new DerError('truncated');
  const n = new Node(b, tag, num, s, pos, pos + len);
  // DER: these universal types are always primitive.
  if (n.cls === 0 && n.cons && [1, 2, 3, 4, 5, 6, 12, 19, 22, 23, 24].includes(num))
    throw new DerError('constructed primitive type');
  return n;
}

// The single TLV that is all of b.
export function parseDer(b) {
  const n = readTLV(b, 0, b.length);
  if (n.e !== b.length) throw new DerError('stray bytes after the DER');
  return n;
}

const T = { BOOL: 0x01, INT: 0x02, BIT: 0x03, OCTET: 0x04, NULL: 0x05, OID: 0x06, SEQ: 0x30,
  SET: 0x31, UTC: 0x17, GEN: 0x18 };
export { T as TAG };

export function expect(n, tag, what) {
  if (!n || n.tag !== tag) throw new DerError(`${what}: unexpected element`);
  return n;
}

// SEQUENCE OF and SET OF: OpenSSL's decoder does not insist on the
// constructed bit there, so neither does this reader (same verdicts).
function expectOf(n, num, what) {
  if (!n || n.cls !== 0 || n.num !== num) throw new DerError(`${what}: unexpected element`);
  return n;
}

export function oid(n) {
  expect(n, T.OID, 'OID');
  const b = n.content;
  if (!b.length || b[b.length - 1] & 0x80) throw new DerError('bad OID');
  const parts = [];
  let v = 0n;
  for (let i = 0; i < b.length; i++) {
    if (v === 0n && b[i] === 0x80) throw new DerError('non-minimal OID');
    v = (v << 7n) | BigInt(b[i] & 0x7f);
    if (!(b[i] & 0x80)) {
      if (!parts.length) {
        const first = v < 80n ? v / 40n : 2n;
        parts.push(first, v - first * 40n);
      } else parts.push(v);
      v = 0n;
    }
  }
  return parts.join('.');
}

// INTEGER content bytes, minimal two's complement as DER wants.
export function intBytes(n) {
  expect(n, T.INT, 'INTEGER');
  const b = n.content;
  if (!b.length) throw new DerError('empty INTEGER');
  if (b.length > 1 && ((b[0] === 0 && !(b[1] & 0x80)) || (b[0] === 0xff && b[1] & 0x80)))
    throw new DerError('non-minimal INTEGER');
  return b;
}

export function smallInt(n) {
  const b = intBytes(n);
  if (b.length > 6 || b[0] & 0x80) throw new DerError('INTEGER out of range');
  let v = 0;
  for (const x of b) v = v * 256 + x;
  return v;
}

export function octets(n) {
  return expect(n, T.OCTET, 'OCTET STRING').content;
}

// BIT STRING content with its unused-bits byte first. Padding bits that
// are not zero are refused: OpenSSL would clear them, so the certificate
// would not be the bytes the receipt holds.
export function bitString(n, strict = false) {
  const b = expect(n, T.BIT, 'BIT STRING').content;
  if (!b.length || b[0] > 7 || (b.length === 1 && b[0])) throw new DerError('bad BIT STRING');
  if (strict && b[0] && (b[b.length - 1] & ((1 << b[0]) - 1))) throw new DerError('bad BIT STRING');
  return b;
}

// Any non-zero byte is TRUE, as OpenSSL's decoder reads it.
export function bool(n) {
  const b = expect(n, T.BOOL, 'BOOLEAN').content;
  if (b.length !== 1) throw new DerError('bad BOOLEAN');
  return b[0] !== 0;
}

// AlgorithmIdentifier: { oid, plain } where plain means the parameters are
// absent or NULL (the only encodings in use for SHA-2, RSA and ECDSA).
export function algId(n) {
  const k = expect(n, T.SEQ, 'AlgorithmIdentifier').kids();
  if (k.length < 1 || k.length > 2) throw new DerError('bad AlgorithmIdentifier');
  const plain = k.length === 1 || (k[1].tag === T.NULL && k[1].content.length === 0);
  // An ANY that is a constructed universal string is read as its parts
  // (OpenSSL does); SEQUENCE, SET and other classes are kept as they are.
  if (k[1] && k[1].cons && k[1].cls === 0 && k[1].num !== 16 && k[1].num !== 17) k[1].kids();
  return { oid: oid(k[0]), plain, params: k[1] || null, der: n.der };
}

// UTCTime or GeneralizedTime to ms, as OpenSSL reads them (Z only).
export function timeMs(n) {
  if (n.content.length > 64) throw new DerError('bad time');
  const s = latin1(n.content);
  let m;
  if (n.tag === T.UTC) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) throw new DerError('bad UTCTime');
    const yy = Number(m[1]);
    m = [null, String(yy < 50 ? 2000 + yy : 1900 + yy), ...m.slice(2), ''];
  } else if (n.tag === T.GEN) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d+))?Z$/.exec(s);
    if (!m) throw new DerError('bad GeneralizedTime');
  } else throw new DerError('not a time');
  const [Y, Mo, D, h, mi, se] = m.slice(1, 7).map(Number);
  if (Mo < 1 || Mo > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || se > 59)
    throw new DerError('bad time');
  // The fraction counts in ms, truncated (tsa.c gentime_ms).
  const frac = m[7] ? Number((m[7] + '00').slice(0, 3)) : 0;
  return Date.UTC(Y, Mo - 1, D, h, mi, se) + frac;
}

function lenientTime(n) {
  if (n.tag !== T.UTC && n.tag !== T.GEN) throw new DerError('bad validity');
  try { return timeMs(n); } catch (e) { return NaN; }
}

// ---- names -------------------------------------------------------------

const SHORT = {
  '2.5.4.3': 'CN', '2.5.4.6': 'C', '2.5.4.7': 'L', '2.5.4.8': 'ST', '2.5.4.10': 'O',
  '2.5.4.11': 'OU', '2.5.4.5': 'serialNumber', '2.5.4.9': 'street', '2.5.4.4': 'SN',
  '2.5.4.42': 'GN', '2.5.4.12': 'title', '2.5.4.97': 'organizationIdentifier',
  '1.2.840.113549.1.9.1': 'emailAddress', '0.9.2342.19200300.100.1.25': 'DC',
  '0.9.2342.19200300.100.1.1': 'UID',
};

function stringValue(n) {
  const b = n.content;
  switch (n.tag) {
    case 0x0c:
      try { return new TextDecoder('utf-8', { fatal: true }).decode(b); } catch (e) {
        throw new DerError('bad UTF8String'); // OpenSSL refuses it too
      }
    case 0x13: case 0x16: case 0x14: case 0x1a: return latin1(b);
    case 0x1e: {
      let s = '';
      for (let i = 0; i + 1 < b.length; i += 2) s += String.fromCharCode((b[i] << 8) | b[i + 1]);
      return s;
    }
    case 0x1c: {
      let s = '';
      for (let i = 0; i + 3 < b.length; i += 4)
        s += String.fromCodePoint(((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0);
      return s;
    }
    default: return '#' + Array.from(n.der, (x) => x.toString(16).padStart(2, '0')).join('');
  }
}

const NAME_VALUE_TAGS = new Set([3, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 22, 28, 29, 30]);

function escape2253(v) {
  let s = v.replace(/[,+"\\<>;]/g, (c) => '\\' + c);
  if (/^[ #]/.test(s)) s = '\\' + s;
  if (/ $/.test(s)) s = s.slice(0, -1) + '\\ ';
  return s;
}

// A Name in RFC 2253 order (last RDN first), like OpenSSL's
// X509_NAME_print_ex(..., XN_FLAG_RFC2253) that `selo verify` prints.
export function nameText(n) {
  const rdns = expectOf(n, 16, 'Name').kids().map((rdn) =>
    expectOf(rdn, 17, 'RDN').kids().map((atv) => {
      const [t, v] = expect(atv, T.SEQ, 'attribute').kids();
      const o = oid(t);
      // Directory strings: the universal types of OpenSSL's ASN1_PRINTABLE.
      if (!v || v.cls !== 0 || !NAME_VALUE_TAGS.has(v.num)) throw new DerError('bad name value');
      // A constructed string is only its primitive OCTET STRING parts.
      if (v.cons && v.num !== 16 && v.kids().some((x) => x.tag !== T.OCTET)) throw new DerError('bad name value');
      return `${SHORT[o] || o}=${escape2253(stringValue(v))}`;
    }).join('+'));
  return rdns.reverse().join(',');
}

// ---- X.509 ---------------------------------------------------------------

export const OID = {
  rsa: '1.2.840.113549.1.1.1', ec: '1.2.840.10045.2.1', ed25519: '1.3.101.112',
  p256: '1.2.840.10045.3.1.7', p384: '1.3.132.0.34', p521: '1.3.132.0.35',
  sha1: '1.3.14.3.2.26', sha256: '2.16.840.1.101.3.4.2.1', sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  signedData: '1.2.840.113549.1.7.2', tstInfo: '1.2.840.113549.1.9.16.1.4',
  data: '1.2.840.113549.1.7.1',
  contentType: '1.2.840.113549.1.9.3', messageDigest: '1.2.840.113549.1.9.4',
  signingCert: '1.2.840.113549.1.9.16.2.12', signingCertV2: '1.2.840.113549.1.9.16.2.47',
  basicConstraints: '2.5.29.19', keyUsage: '2.5.29.15', extKeyUsage: '2.5.29.37',
  skid: '2.5.29.14', akid: '2.5.29.35', san: '2.5.29.17', timeStamping: '1.3.6.1.5.5.7.3.8',
};

export const HASH_NAME = { [OID.sha1]: 'SHA-1', [OID.sha256]: 'SHA-256', [OID.sha384]: 'SHA-384',
  [OID.sha512]: 'SHA-512' };

// signature OID -> [key type, hash name]
const SIG_ALGS = {
  '1.2.840.113549.1.1.5': ['rsa', 'SHA-1'], '1.2.840.113549.1.1.11': ['rsa', 'SHA-256'],
  '1.2.840.113549.1.1.12': ['rsa', 'SHA-384'], '1.2.840.113549.1.1.13': ['rsa', 'SHA-512'],
  '1.2.840.10045.4.1': ['ec', 'SHA-1'], '1.2.840.10045.4.3.2': ['ec', 'SHA-256'],
  '1.2.840.10045.4.3.3': ['ec', 'SHA-384'], '1.2.840.10045.4.3.4': ['ec', 'SHA-512'],
  '1.3.101.112': ['ed25519', null],
};
export { SIG_ALGS };

// Extensions by OID. A repeated one is kept aside (dup): OpenSSL reads such
// a certificate but refuses it wherever it is used.
function extensions(n) {
  const out = new Map();
  let dup = false;
  const outer = n.kids();
  if (outer.length !== 1) throw new DerError('bad extensions');
  const seq = expectOf(outer[0], 16, 'Extensions');
  for (const e of seq.kids()) {
    const k = expect(e, T.SEQ, 'Extension').kids();
    const id = oid(k[0]);
    let i = 1, critical = false;
    if (k[i] && k[i].tag === T.BOOL) critical = bool(k[i++]);
    const value = octets(k[i++]);
    if (i !== k.length) throw new DerError('bad Extension');
    if (out.has(id)) dup = true;
    else out.set(id, { critical, value });
  }
  return { ext: out, dup };
}

export function parseCert(der) {
  const top = expect(parseDer(der), T.SEQ, 'Certificate');
  const [tbs, alg, sig, ...rest] = top.kids();
  if (rest.length) throw new DerError('bad Certificate');
  const k = expect(tbs, T.SEQ, 'TBSCertificate').kids();
  let i = 0, version = 0;
  // Any INTEGER: OpenSSL reads odd versions and the signature decides.
  if (k[0] && k[0].tag === 0xa0) version = intBytes(k[i++].kids()[0]);
  const serial = intBytes(k[i++]);
  const innerAlg = algId(k[i++]);
  const issuer = k[i++];
  const validity = expect(k[i++], T.SEQ, 'validity').kids();
  const subject = k[i++];
  const spki = expect(k[i++], T.SEQ, 'SubjectPublicKeyInfo');
  let ext = new Map(), dupExt = false;
  // Then only [1] issuerUniqueID, [2] subjectUniqueID, [3] extensions, in
  // that order: anything else is not a certificate (OpenSSL refuses it).
  let last = 0;
  for (; i < k.length; i++) {
    const order = { 0x81: 1, 0x82: 2, 0xa3: 3 }[k[i].tag];
    if (!order || order <= last) throw new DerError('bad TBSCertificate');
    last = order;
    if (k[i].tag === 0xa3) ({ ext, dup: dupExt } = extensions(k[i]));
  }
  const keyAlg = algId(spki.kids()[0]);
  const sigAlg = algId(alg);
  nameText(issuer);
  nameText(subject);
  expectOf(issuer, 16, 'issuer');
  expectOf(subject, 16, 'subject');
  if (validity.length !== 2 || spki.kids().length !== 2) throw new DerError('bad Certificate');
  bitString(spki.kids()[1]);
  return {
    // A signature with unused bits is no signature (X509_verify refuses it).
    // The outer signature is re-encoded by OpenSSL (the TBSCertificate is
    // kept as read), so its padding bits must already be zero.
    der, tbs: tbs.der, version, serial, sigAlg, innerAlg, sigBits: bitString(sig, true)[0],
    sig: bitString(sig, true).subarray(1), dupExt,
    issuer: issuer.der, issuerNode: issuer, subject: subject.der, subjectNode: subject,
    // OpenSSL reads a certificate whose times are malformed and objects
    // only when they are used (chain validation): NaN here, judged there.
    notBefore: lenientTime(validity[0]), notAfter: lenientTime(validity[1]),
    spki: spki.der, keyType: keyAlg.oid === OID.rsa ? 'rsa' : keyAlg.oid === OID.ec ? 'ec'
      : keyAlg.oid === OID.ed25519 ? 'ed25519' : keyAlg.oid,
    curve: keyAlg.oid === OID.ec && keyAlg.params && keyAlg.params.tag === T.OID
      ? oid(keyAlg.params) : null,
    ext,
  };
}

export function subjectText(c) { return nameText(c.subjectNode); }

export function basicCA(c) {
  const e = c.ext.get(OID.basicConstraints);
  if (!e) return { present: false, ca: false, pathLen: null };
  const k = expect(parseDer(e.value), T.SEQ, 'basicConstraints').kids();
  let ca = false, pathLen = null, i = 0;
  if (k[i] && k[i].tag === T.BOOL) ca = bool(k[i++]);
  if (k[i]) pathLen = smallInt(k[i]);
  return { present: true, ca, pathLen };
}

// keyUsage bits as a number (bit 0 = digitalSignature ... 5 = keyCertSign), or null.
export function keyUsage(c) {
  const e = c.ext.get(OID.keyUsage);
  if (!e) return null;
  const b = bitString(parseDer(e.value));
  let v = 0;
  for (let i = 1; i < b.length && i < 3; i++)
    for (let j = 0; j < 8; j++) if (b[i] & (0x80 >> j)) v |= 1 << ((i - 1) * 8 + j);
  return v;
}

export function extKeyUsage(c) {
  const e = c.ext.get(OID.extKeyUsage);
  if (!e) return null;
  return { critical: e.critical, oids: expect(parseDer(e.value), T.SEQ, 'EKU').kids().map(oid) };
}

function keyIds(c) {
  const s = c.ext.get(OID.skid);
  const a = c.ext.get(OID.akid);
  let akid = null;
  if (a) {
    for (const k of expect(parseDer(a.value), T.SEQ, 'AKID').kids())
      if (k.tag === 0x80) akid = k.content;
  }
  return { skid: s ? octets(parseDer(s.value)) : null, akid };
}

// X509_check_issued, the parts that matter here: the names chain, the key
// identifiers agree when both are given, and a key usage (if any) allows
// signing certificates.
export function issuedBy(child, issuer) {
  if (child.dupExt || issuer.dupExt) return 'invalid extensions';
  if (!equal(child.issuer, issuer.subject)) return 'names';
  const ci = keyIds(child), ii = keyIds(issuer);
  if (ci.akid && ii.skid && !equal(ci.akid, ii.skid)) return 'key identifiers';
  const ku = keyUsage(issuer);
  if (ku !== null && !(ku & (1 << 5)) && child !== issuer) return 'key usage';
  return null;
}

// ---- signatures ----------------------------------------------------------

const CURVES = { [OID.p256]: ['P-256', 32], [OID.p384]: ['P-384', 48], [OID.p521]: ['P-521', 66] };
// Real curves and algorithms OpenSSL knows and WebCrypto does not: the
// browser cannot judge them (amber). Anything else is unknown to both and
// fails, as it does in `selo verify`.
const OTHER_CURVES = {
  '1.3.132.0.10': 'secp256k1', '1.2.840.10045.3.1.1': 'P-192', '1.3.132.0.33': 'P-224',
  '1.3.36.3.3.2.8.1.1.7': 'brainpoolP256r1', '1.3.36.3.3.2.8.1.1.11': 'brainpoolP384r1',
  '1.3.36.3.3.2.8.1.1.13': 'brainpoolP512r1',
};
export const OTHER_SIG_ALGS = {
  '1.2.840.113549.1.1.10': 'RSA-PSS', '1.2.840.113549.1.1.14': 'RSA with SHA-224',
  '1.2.840.10045.4.3.1': 'ECDSA with SHA-224', '1.3.101.113': 'Ed448',
  '2.16.840.1.101.3.4.3.10': 'ECDSA with SHA3-256', '2.16.840.1.101.3.4.3.14': 'RSA with SHA3-256',
  '1.2.840.113549.1.1.4': 'RSA with MD5', '1.2.840.10040.4.3': 'DSA with SHA-1',
  '2.16.840.1.101.3.4.3.2': 'DSA with SHA-256',
};

// ECDSA-Sig-Value (DER) to the r || s form WebCrypto takes.
function ecdsaRaw(sig, size) {
  const k = expect(parseDer(sig), T.SEQ, 'ECDSA signature').kids();
  if (k.length !== 2) throw new DerError('bad ECDSA signature');
  const out = new Uint8Array(2 * size);
  k.forEach((n, j) => {
    let b = intBytes(n);
    while (b.length > 1 && b[0] === 0) b = b.subarray(1);
    if (b.length > size) throw new DerError('bad ECDSA signature');
    out.set(b, (j + 1) * size - b.length);
  });
  return out;
}

// Verifies sig over data with the key in spki (parsed cert c), for key type
// kt and hash name. Throws Unsupported for what WebCrypto cannot check.
export async function verifySig(c, kt, hash, data, sig) {
  if (kt !== c.keyType) return false;
  try {
    if (kt === 'rsa') {
      const key = await crypto.subtle.importKey('spki', c.spki,
        { name: 'RSASSA-PKCS1-v1_5', hash }, false, ['verify']);
      return await crypto.subtle.verify('RSASSA-PKCS1-v1_5', key, sig, data);
    }
    if (kt === 'ec') {
      const curve = CURVES[c.curve];
      if (!curve && OTHER_CURVES[c.curve]) throw new Unsupported(`the curve ${OTHER_CURVES[c.curve]}`);
      if (!curve) return false;
      const key = await crypto.subtle.importKey('spki', c.spki,
        { name: 'ECDSA', namedCurve: curve[0] }, false, ['verify']);
      let raw;
      try { raw = ecdsaRaw(sig, curve[1]); } catch (e) { return false; }
      return await crypto.subtle.verify({ name: 'ECDSA', hash }, key, raw, data);
    }
    if (kt === 'ed25519') {
      const key = await crypto.subtle.importKey('spki', c.spki, { name: 'Ed25519' }, false,
        ['verify']);
      return await crypto.subtle.verify('Ed25519', key, sig, data);
    }
  } catch (e) {
    if (e instanceof Unsupported) throw e;
    // Algorithms are vetted above, so a refusal is a bad key (a point off
    // the curve, say): no valid signature, as OpenSSL judges it. Only an
    // older browser without Ed25519 cannot judge at all.
    if (kt === 'ed25519' && e && e.name === 'NotSupportedError') throw new Unsupported('Ed25519');
    return false;
  }
  if (kt === '1.3.101.113' || kt === '1.2.840.10040.4.1' || kt === '1.2.840.113549.1.1.10')
    throw new Unsupported(`the key type ${kt === '1.3.101.113' ? 'Ed448' : kt === '1.2.840.10040.4.1' ? 'DSA' : 'RSA-PSS'}`);
  return false;
}

// The certificate's own signature by issuer's key (X509_verify): the
// outer and inner algorithm must be the same, as OpenSSL requires.
export async function certSignedBy(c, issuer) {
  if (!equal(c.sigAlg.der, c.innerAlg.der) || c.sigBits) return false;
  const alg = SIG_ALGS[c.sigAlg.oid];
  if (!alg && OTHER_SIG_ALGS[c.sigAlg.oid]) throw new Unsupported(OTHER_SIG_ALGS[c.sigAlg.oid]);
  if (!alg) return false;
  return verifySig(issuer, alg[0], alg[1], c.tbs, c.sig);
}

// ---- CMS SignedData with a TSTInfo (RFC 5652, RFC 3161) ------------------

function attributes(node) {
  const out = [];
  for (const a of node.kids()) {
    const [t, vals, ...rest] = expect(a, T.SEQ, 'Attribute').kids();
    if (rest.length) throw new DerError('bad Attribute');
    out.push({ oid: oid(t), values: expect(vals, T.SET, 'attribute values').kids() });
  }
  return out;
}

// DER SET OF: elements in ascending order of their encodings.
export function setSorted(node) {
  const k = node.kids();
  for (let i = 1; i < k.length; i++) {
    const a = k[i - 1].der, b = k[i].der;
    let d = 0;
    for (let j = 0; j < Math.min(a.length, b.length) && !d; j++) d = a[j] - b[j];
    if (d > 0 || (d === 0 && a.length > b.length)) return false;
  }
  return true;
}

export function parseSignerInfo(n) {
  const k = expect(n, T.SEQ, 'SignerInfo').kids();
  let i = 0;
  const version = smallInt(k[i++]);
  const sidNode = k[i++];
  let sid;
  if (sidNode.tag === T.SEQ) {
    const [iss, ser] = sidNode.kids();
    sid = { issuer: expect(iss, T.SEQ, 'issuer').der, serial: intBytes(ser) };
  } else if (sidNode.tag === 0x80) {
    sid = { skid: sidNode.content };
  } else throw new DerError('bad signer identifier');
  const digestAlg = algId(k[i++]);
  let signedAttrs = null, attrs = [];
  if (k[i] && k[i].tag === 0xa0) {
    const a = k[i++];
    // What was signed is the attributes as a SET (tag 0x31), not [0].
    signedAttrs = new Uint8Array(a.der);
    signedAttrs[0] = 0x31;
    attrs = attributes(a);
    if (!setSorted(a)) throw new DerError('signed attributes not in DER order');
  }
  const sigAlg = algId(k[i++]);
  const signature = octets(k[i++]);
  const unsigned = k[i] && k[i].tag === 0xa1;
  if (unsigned) i++;
  if (i !== k.length) throw new DerError('bad SignerInfo');
  return { version, sid, digestAlg, signedAttrs, attrs, sigAlg, signature, unsigned };
}

export function parseTstInfo(b) {
  const k = expect(parseDer(b), T.SEQ, 'TSTInfo').kids();
  let i = 0;
  const version = smallInt(k[i++]);
  const policy = oid(k[i++]);
  const [mAlg, mHash] = expect(k[i++], T.SEQ, 'MessageImprint').kids();
  const imprintAlg = algId(mAlg);
  const imprint = octets(mHash);
  const serial = intBytes(k[i++]);
  const genNode = expect(k[i++], T.GEN, 'genTime');
  const genMs = timeMs(genNode);
  let tsaName = null;
  for (; i < k.length; i++) {
    if (k[i].tag === 0xa0) tsaName = k[i].kids()[0];
  }
  return { version, policy, imprintAlg, imprint, serial, genMs,
    genText: latin1(genNode.content), tsaName };
}

// ContentInfo(SignedData) into its parts (RFC 5652 5.1): eContent is null
// when the content is detached (a PDF signature's). Throws on any
// structural problem.
export function parseSignedData(ciNode) {
  const ci = expect(ciNode, T.SEQ, 'ContentInfo').kids();
  if (ci.length !== 2 || oid(ci[0]) !== OID.signedData || ci[1].tag !== 0xa0)
    throw new DerError('not a SignedData');
  const inner = ci[1].kids();
  if (inner.length !== 1) throw new DerError('bad ContentInfo');
  const k = expect(inner[0], T.SEQ, 'SignedData').kids();
  let i = 0;
  const version = smallInt(k[i++]);
  const digestAlgsNode = expect(k[i++], T.SET, 'digestAlgorithms');
  const digestAlgs = digestAlgsNode.kids().map(algId);
  const eci = expect(k[i++], T.SEQ, 'EncapsulatedContentInfo').kids();
  const eType = oid(eci[0]);
  if (eci[1] && eci[1].tag !== 0xa0) throw new DerError('bad EncapsulatedContentInfo');
  const eContent = eci[1] ? octets(eci[1].kids()[0]) : null;
  const certs = [];
  let crls = false;
  if (k[i] && k[i].tag === 0xa0) for (const c of k[i++].kids()) certs.push(c.der);
  if (k[i] && k[i].tag === 0xa1) { crls = true; i++; }
  const signers = expect(k[i++], T.SET, 'signerInfos').kids().map(parseSignerInfo);
  if (i !== k.length) throw new DerError('bad SignedData');
  return { version, digestAlgs, eType, eContent, certs, crls, signers };
}

// An RFC 3161 token: ContentInfo(SignedData(TSTInfo)).
export function parseToken(der) {
  const t = parseSignedData(parseDer(der));
  if (t.eContent === null) throw new DerError('no encapsulated content');
  if (t.eType !== OID.tstInfo) throw new DerError('the content is not a TSTInfo');
  t.tst = parseTstInfo(t.eContent);
  return t;
}

const OTHER_HASHES = { '2.16.840.1.101.3.4.2.4': 'SHA-224', '2.16.840.1.101.3.4.2.8': 'SHA3-256',
  '2.16.840.1.101.3.4.2.9': 'SHA3-384', '2.16.840.1.101.3.4.2.10': 'SHA3-512' };

// The digest of data under an algorithm OID; an unknown one matches nothing.
export async function hashWith(oidStr, data) {
  const name = HASH_NAME[oidStr];
  if (!name && OTHER_HASHES[oidStr]) throw new Unsupported(OTHER_HASHES[oidStr]);
  if (!name) return new Uint8Array(0);
  return digest(name, data);
}
