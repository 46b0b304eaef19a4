// util.js: bytes, strict base64 and hex (the one form Selo writes, as
// src/codec.c reads it) and SHA-256 through WebCrypto.

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64VAL = new Int16Array(128).fill(-1);
for (let k = 0; k < 64; k++) B64VAL[B64.charCodeAt(k)] = k;

// Standard padded base64 with no other characters and zero trailing bits
// (codec.c base64_decode); null when not exactly that. max bounds the
// decoded size (null beyond it), as the C decoder's output capacity does.
export function b64decode(s, max = Infinity) {
  if (typeof s !== 'string' || s.length % 4) return null;
  let n = s.length;
  if (n && s[n - 1] === '=') n--;
  if (n && s[n - 1] === '=') n--;
  if (s.length - n && (n % 4) + (s.length - n) !== 4) return null;
  if (n % 4 === 1) return null;
  const olen = Math.floor(n / 4) * 3 + (n % 4 ? (n % 4) - 1 : 0);
  if (olen > max) return null;
  const out = new Uint8Array(olen);
  let o = 0, acc = 0, bits = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? B64VAL[c] : -1;
    if (v < 0) return null;
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
      acc &= (1 << bits) - 1;
    }
  }
  if (acc !== 0) return null;
  return out;
}

export function b64encode(b) {
  let s = '';
  for (let i = 0; i < b.length; i += 3) {
    const left = b.length - i;
    const v = (b[i] << 16) | (left > 1 ? b[i + 1] << 8 : 0) | (left > 2 ? b[i + 2] : 0);
    s += B64[(v >> 18) & 63] + B64[(v >> 12) & 63] +
      (left > 1 ? B64[(v >> 6) & 63] : '=') + (left > 2 ? B64[v & 63] : '=');
  }
  return s;
}

// Bytes as one character each (Latin-1), in chunks the call stack takes.
export function latin1(b) {
  let s = '';
  for (let i = 0; i < b.length; i += 4096) s += String.fromCharCode(...b.subarray(i, i + 4096));
  return s;
}

export function hex(b) {
  let s = '';
  for (let i = 0; i < b.length; i++) s += (b[i] < 16 ? '0' : '') + b[i].toString(16);
  return s;
}

// Lower or upper case hex, as codec.c hex_decode accepts; null otherwise.
export function unhex(s) {
  if (s.length % 2) return null;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) {
    const pair = s.substr(2 * i, 2);
    if (!/^[0-9a-fA-F]{2}$/.test(pair)) return null;
    out[i] = parseInt(pair, 16);
  }
  return out;
}

export const isLowerHex = (s, n) => s.length === n && /^[0-9a-f]*$/.test(s);

const enc = new TextEncoder();
export const utf8 = (s) => enc.encode(s);

export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function equal(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export async function sha256(...parts) {
  const data = parts.length === 1 ? parts[0] : concat(...parts);
  return new Uint8Array(await crypto.subtle.digest('SHA-256', data));
}

export async function digest(alg, data) {
  return new Uint8Array(await crypto.subtle.digest(alg, data));
}

// "2026-11-23T18:44:10.120Z" for a time in ms (clock.c clock_rfc3339).
export function rfc3339(ms) {
  const d = new Date(Number(ms));
  if (Number.isNaN(d.getTime())) return '?';
  const p = (v, k) => String(v).padStart(k, '0');
  return `${p(d.getUTCFullYear(), 4)}-${p(d.getUTCMonth() + 1, 2)}-${p(d.getUTCDate(), 2)}T` +
    `${p(d.getUTCHours(), 2)}:${p(d.getUTCMinutes(), 2)}:${p(d.getUTCSeconds(), 2)}.` +
    `${p(d.getUTCMilliseconds(), 3)}Z`;
}

// clock.c clock_parse_rfc3339: ms since the epoch, or null.
export function parseRfc3339(s) {
  if (typeof s !== 'string') return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/.exec(s);
  if (!m) return null;
  const [Y, M, D, h, mi, sec] = m.slice(1, 7).map(Number);
  const frac = m[7] ? Number((m[7] + '00').slice(0, 3)) : 0;
  let off = 0;
  if (!m[8]) {
    const oh = Number(m[10]), om = Number(m[11]);
    if (oh > 23 || om > 59) return null;
    off = (oh * 60 + om) * (m[9] === '+' ? 1 : -1);
  }
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || sec > 60) return null;
  const mdays = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  const leap = (Y % 4 === 0 && Y % 100 !== 0) || Y % 400 === 0;
  if (D > mdays[M - 1] || (M === 2 && D === 29 && !leap)) return null;
  const t = Date.UTC(Y, M - 1, D, h, mi, sec > 59 ? 59 : sec);
  // Date.UTC maps years 0..99 to 1900..1999; timegm does not.
  const fixed = Y < 100 ? new Date(t).setUTCFullYear(Y) : t;
  return fixed - off * 60000 + frac;
}
