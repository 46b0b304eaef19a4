// tsa.js: the RFC 3161 timestamp of a receipt's checkpoint, checked in the
// browser the way src/receipt.c and src/tsa.c check it with OpenSSL:
//  1. chainLinked: log.tsa_certs form a chain, each signed by the next, the
//     last a self-signed root (receipt.c chain_linked);
//  2. unsignedParts: the parts of the token no signature covers have their
//     one form (receipt.c token_unsigned_parts);
//  3. verifyToken: TS_RESP_verify_token with VERSION | SIGNATURE | IMPRINT |
//     SIGNER: the signer's chain to the trusted CA for time stamping (names,
//     signatures, validity now, CA flags, path length, the TSA's critical
//     timeStamping key purpose), the ESS signing-certificate(-v2) attribute,
//     the messageDigest over the TSTInfo, the signature over the signed
//     attributes, TSTInfo version 1, the imprint, the TSA name; then the
//     imprint must be SHA-256.
// Results are {ok} or {why, arg}; an algorithm WebCrypto cannot check
// gives {unsupported}, which the page shows amber, never green.

import {
  DerError, Unsupported, OID, SIG_ALGS, HASH_NAME, parseCert, parseToken, parseDer, expect,
  TAG, oid, octets, intBytes, algId, issuedBy, certSignedBy, verifySig, basicCA, keyUsage,
  extKeyUsage, hashWith, subjectText,
} from './asn1.js';
import { equal, b64decode, b64encode } from './util.js';

export const MAX_TOKEN = 65536;

// A certificate exactly as OpenSSL writes it in PEM (receipt.c
// cert_from_pem): the header, 64-column base64 of canonical DER, the footer,
// "\n" line ends and nothing else. The parsed certificate, or null.
export function certFromPem(text) {
  const m = /^-----BEGIN CERTIFICATE-----\n((?:[A-Za-z0-9+/=]{1,64}\n)+)-----END CERTIFICATE-----\n$/
    .exec(text);
  if (!m) return null;
  const der = b64decode(m[1].replace(/\n/g, ''));
  if (!der || !der.length) return null;
  let wrapped = '';
  const b64 = b64encode(der);
  for (let i = 0; i < b64.length; i += 64) wrapped += b64.slice(i, i + 64) + '\n';
  if (wrapped !== m[1]) return null;
  try { return parseCert(der); } catch (e) { return null; }
}

// Every certificate of a PEM bundle the user picked (any line ends, other
// text between blocks allowed, as OpenSSL's PEM reader does). Throws with a
// reason when a block is damaged or there is none.
export function certsFromBundle(text) {
  const out = [];
  const re = /-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----([\s\S]*?)-----END (?:X509 |TRUSTED )?CERTIFICATE-----/g;
  let m;
  while ((m = re.exec(text)) && out.length < 100) {
    const der = b64decode(m[1].replace(/\s+/g, ''));
    if (!der) throw new Error('a certificate in it is not valid base64');
    try { out.push(parseCert(der)); } catch (e) {
      throw new Error('a certificate in it cannot be read (' + e.message + ')');
    }
  }
  if (!out.length) throw new Error('it holds no PEM certificate');
  return out;
}

// receipt.c chain_linked: null, or {why, i}.
export async function chainLinked(certs) {
  for (let i = 0; i < certs.length; i++) {
    const issuer = certs[i + 1 < certs.length ? i + 1 : i];
    let ok = false;
    try {
      ok = issuedBy(certs[i], issuer) === null && await certSignedBy(certs[i], issuer);
    } catch (e) {
      if (e instanceof Unsupported) return { unsupported: e.message };
      ok = false;
    }
    if (!ok) return { why: i + 1 < certs.length ? 'chain_link' : 'chain_root', i };
  }
  return null;
}

// receipt.c sig_alg_consistent: the algorithm named beside the signature
// (unsigned) must fit the signer's key and digest.
function sigAlgConsistent(si, cert) {
  const alg = SIG_ALGS[si.sigAlg.oid];
  if (alg) {
    const md = HASH_NAME[si.digestAlg.oid];
    return alg[0] === cert.keyType && (alg[1] === null || alg[1] === md);
  }
  return si.sigAlg.oid === OID.rsa && cert.keyType === 'rsa';
}

// receipt.c token_unsigned_parts: null when the unsigned parts have their
// only form, else a reason key.
export function unsignedParts(der, certs) {
  let t;
  try { t = parseToken(der); } catch (e) { return 'tp_der'; }
  const si = t.signers.length === 1 ? t.signers[0] : null;
  if (t.version !== 3 || !si || si.version !== 1 || si.unsigned || t.crls ||
      !si.digestAlg.plain || !si.sigAlg.plain || !sigAlgConsistent(si, certs[0]))
    return 'tp_signed';
  let why = null;
  const md = t.digestAlgs.length === 1 ? t.digestAlgs[0] : null;
  if (!md || !md.plain || md.oid !== si.digestAlg.oid) why = 'tp_digest';
  for (const c of t.certs)
    if (!certs.some((x) => equal(x.der, c))) why = 'tp_cert';
  return why;
}

// ---- the signer's chain (OpenSSL X509_verify_cert, purpose timestamp) ----

// The extensions OpenSSL's chain verification understands (v3_purp.c
// supported_nids); a critical one outside this set fails verification.
const HANDLED = new Set([
  '2.16.840.1.113730.1.1', '2.5.29.15', '2.5.29.17', '2.5.29.19', '2.5.29.32', '2.5.29.31',
  '2.5.29.37', '1.3.6.1.5.5.7.1.7', '1.3.6.1.5.5.7.1.8', '1.3.6.1.5.5.7.48.1.5', '2.5.29.36',
  '1.3.6.1.5.5.7.1.14', '2.5.29.30', '2.5.29.33', '2.5.29.54',
]);
const NOT_EVALUATED = {
  '2.5.29.30': 'name constraints', '2.5.29.36': 'policy constraints',
  '2.5.29.33': 'policy mappings', '2.5.29.54': 'inhibitAnyPolicy',
};

function findIssuer(cert, pool) {
  return pool.find((c) => c !== cert && !equal(c.der, cert.der) && issuedBy(cert, c) === null);
}

function selfIssued(c) {
  return equal(c.issuer, c.subject);
}

// Builds signer -> ... -> trust anchor by names, then checks purposes, CA
// flags, path lengths, signatures and validity times. null, or a reason in
// OpenSSL's words.
async function signerChain(signer, untrusted, anchors, now) {
  const chain = [signer];
  let cur = signer;
  let trusted = anchors.some((a) => equal(a.der, cur.der));
  while (!trusted) {
    if (chain.length > 10) return 'certificate chain too long';
    const a = anchors.find((x) => issuedBy(cur, x) === null);
    if (a) {
      chain.push(a);
      trusted = true;
      break;
    }
    if (selfIssued(cur))
      return chain.length === 1 ? 'self-signed certificate'
        : 'self-signed certificate in certificate chain';
    const next = findIssuer(cur, untrusted);
    if (!next) return 'unable to get local issuer certificate';
    chain.push(next);
    cur = next;
  }
  // Critical extensions: those OpenSSL does not handle refuse the chain;
  // those it evaluates and the page does not (name and policy
  // constraints) leave it unchecked here, never passed.
  for (const c of chain) {
    for (const [id, e] of c.ext) {
      if (e.critical && !HANDLED.has(id)) return 'unhandled critical extension';
      if (NOT_EVALUATED[id]) throw new Unsupported(NOT_EVALUATED[id]);
    }
  }
  // Purposes: the TSA's key is for time stamping only, and says so in a
  // critical extension; every certificate above it is a CA.
  const eku = extKeyUsage(signer);
  const ku = keyUsage(signer);
  if (!eku || !eku.critical || eku.oids.length !== 1 || eku.oids[0] !== OID.timeStamping ||
      (ku !== null && ((ku & ~0x3) || !(ku & 0x3))))
    return 'unsupported certificate purpose';
  for (let i = 1; i < chain.length; i++) {
    const bc = basicCA(chain[i]);
    const cku = keyUsage(chain[i]);
    if (!bc.ca || (cku !== null && !(cku & (1 << 5)))) return 'invalid CA certificate';
    // Certificates below this one that are not self-issued (the leaf excluded).
    const below = chain.slice(1, i).filter((c) => !selfIssued(c)).length;
    if (bc.pathLen !== null && below > bc.pathLen) return 'path length constraint exceeded';
  }
  for (let i = 0; i < chain.length; i++) {
    if (Number.isNaN(chain[i].notBefore)) return 'format error in certificate\'s notBefore field';
    if (Number.isNaN(chain[i].notAfter)) return 'format error in certificate\'s notAfter field';
    if (now < chain[i].notBefore) return 'certificate is not yet valid';
    if (now > chain[i].notAfter) return 'certificate has expired';
    // The anchor's own signature is not checked (OpenSSL's default).
    if (i + 1 < chain.length && !(await certSignedBy(chain[i], chain[i + 1])))
      return 'certificate signature failure';
  }
  return null;
}

// ---- ESS signing certificate (RFC 2634, RFC 5035) -------------------------

// The first certificate the attribute names must be the signer's.
async function essMatches(si, signer) {
  const v2 = si.attrs.find((a) => a.oid === OID.signingCertV2);
  const v1 = si.attrs.find((a) => a.oid === OID.signingCert);
  const attr = v2 || v1;
  if (!attr || attr.values.length !== 1) return false;
  const ids = expect(expect(attr.values[0], TAG.SEQ, 'SigningCertificate').kids()[0], TAG.SEQ,
    'certs').kids();
  if (!ids.length) return false;
  const k = expect(ids[0], TAG.SEQ, 'ESSCertID').kids();
  let i = 0, hashOid = v2 ? OID.sha256 : OID.sha1;
  if (v2 && k[i] && k[i].tag === TAG.SEQ) hashOid = algId(k[i++]).oid;
  const want = octets(k[i++]);
  if (!equal(await hashWith(hashOid, signer.der), want)) return false;
  if (k[i]) {
    const [names, serial] = expect(k[i], TAG.SEQ, 'IssuerSerial').kids();
    const dirs = expect(names, TAG.SEQ, 'GeneralNames').kids()
      .filter((g) => g.tag === 0xa4).map((g) => g.kids()[0].der);
    if (!dirs.some((d) => equal(d, signer.issuer)) || !equal(intBytes(serial), signer.serial))
      return false;
  }
  return true;
}

// TS_VFY_SIGNER: the TSTInfo's tsa name, when present, names the signer.
function tsaNameMatches(tst, signer) {
  const g = tst.tsaName;
  if (!g) return true;
  if (g.tag === 0xa4) return equal(g.kids()[0].der, signer.subject);
  const san = signer.ext.get(OID.san);
  if (!san) return false;
  return expect(parseDer(san.value), TAG.SEQ, 'SAN').kids().some((x) => equal(x.der, g.der));
}

// tsa.c tsa_verify_token. {ok, genMs, tsa} or {why, arg} or {unsupported}.
export async function verifyToken(der, digest32, certs, anchors, now) {
  if (!der.length || der.length > MAX_TOKEN) return { why: 'tk_big' };
  let t;
  try { t = parseToken(der); } catch (e) { return { why: 'tk_parse' }; }
  try {
    const si = t.signers[0];
    if (!si || !si.signedAttrs) return { why: 'tk_noattrs' };
    const pool = certs.concat(t.certs.map((c) => parseCert(c)));
    const signer = si.sid.serial && pool.find((c) => equal(c.issuer, si.sid.issuer) &&
      equal(c.serial, si.sid.serial));
    if (!signer) return { why: 'tk_nosigner' };
    const chainWhy = await signerChain(signer, pool, anchors, now);
    if (chainWhy) return { why: 'tk_chain', arg: chainWhy };
    if (!(await essMatches(si, signer))) return { why: 'tk_ess' };
    const mdAttr = si.attrs.find((a) => a.oid === OID.messageDigest);
    if (!mdAttr || mdAttr.values.length !== 1 ||
        !equal(octets(mdAttr.values[0]), await hashWith(si.digestAlg.oid, t.eContent)))
      return { why: 'tk_digest' };
    const hash = HASH_NAME[si.digestAlg.oid];
    if (!(await verifySig(signer, signer.keyType, hash, si.signedAttrs, si.signature)))
      return { why: 'tk_sig' };
    const tst = t.tst;
    if (tst.version !== 1) return { why: 'tk_version' };
    if (!equal(tst.imprint, digest32)) return { why: 'tk_imprint' };
    if (!tsaNameMatches(tst, signer)) return { why: 'tk_tsaname' };
    if (tst.imprintAlg.oid !== OID.sha256) return { why: 'tk_notsha256' };
    return { ok: true, genMs: tst.genMs, tsa: subjectText(signer) };
  } catch (e) {
    if (e instanceof Unsupported) {
      // What needs no signature check still decides.
      if (t.tst.version !== 1) return { why: 'tk_version' };
      if (!equal(t.tst.imprint, digest32)) return { why: 'tk_imprint' };
      return { unsupported: e.message, genMs: t.tst.genMs };
    }
    if (e instanceof DerError) return { why: 'tk_parse' };
    throw e;
  }
}

export { oid };
