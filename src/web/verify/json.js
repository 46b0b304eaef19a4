// json.js: a strict JSON reader that judges a document the way Selo's C
// verifier (jansson with JSON_REJECT_DUPLICATES) does, so the page and
// `selo verify` call the same receipts unreadable:
// - the top level is an object or an array; nothing but whitespace after it;
// - objects are Maps in document order, a repeated key is an error;
// - integers (no fraction, no exponent) are BigInt, other numbers Number;
//   an integer outside the signed 64-bit range is an error, as in jansson;
// - "\u0000" and lone surrogates are errors; raw control characters too;
// - nesting deeper than 2048 is an error (jansson's limit).
// The input is a JS string already decoded from strict UTF-8.

export class JsonError extends Error {
  constructor(text, line, column) {
    super(text);
    this.text = text;
    this.line = line;
    this.column = column;
  }
}

const MAX_DEPTH = 2048;
const INT_MAX = (1n << 63n) - 1n;
const INT_MIN = -(1n << 63n);

export function parseJson(s) {
  let i = 0;
  const n = s.length;

  function fail(text, at = i) {
    // Line and column as jansson counts them (1-based), for the message.
    let line = 1, col = 0;
    for (let k = 0; k < at && k < n; k++) {
      if (s.charCodeAt(k) === 10) { line++; col = 0; } else col++;
    }
    throw new JsonError(text, line, col + 1);
  }

  function ws() {
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  }

  function literal(word, value) {
    if (s.startsWith(word, i)) { i += word.length; return value; }
    fail('invalid token');
  }

  function hex4(at) {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = s.charCodeAt(at + k);
      let d;
      if (c >= 48 && c <= 57) d = c - 48;
      else if (c >= 65 && c <= 70) d = c - 55;
      else if (c >= 97 && c <= 102) d = c - 87;
      else fail('invalid escape', at);
      v = v * 16 + d;
    }
    return v;
  }

  function string() {
    i++; // opening quote
    let out = '';
    let start = i;
    for (;;) {
      if (i >= n) fail('premature end of input');
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        out += s.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail('control character 0x' + c.toString(16) + ' in a string');
      if (c >= 0xd800 && c <= 0xdfff) {
        // Decoded from valid UTF-8, so always a whole pair; checked anyway.
        const d = s.charCodeAt(i + 1);
        if (c > 0xdbff || !(d >= 0xdc00 && d <= 0xdfff)) fail('invalid Unicode');
        i += 2;
        continue;
      }
      if (c !== 0x5c) { i++; continue; }
      out += s.slice(start, i);
      const e = s[i + 1];
      i += 2;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (i + 4 > n) fail('invalid escape');
          let v = hex4(i);
          i += 4;
          if (v === 0) fail('\\u0000 is not allowed');
          if (v >= 0xdc00 && v <= 0xdfff) fail('invalid Unicode \\u' + v.toString(16));
          if (v >= 0xd800 && v <= 0xdbff) {
            if (s[i] !== '\\' || s[i + 1] !== 'u') fail('invalid Unicode \\u' + v.toString(16));
            const w = hex4(i + 2);
            if (w < 0xdc00 || w > 0xdfff) fail('invalid Unicode \\u' + v.toString(16));
            i += 6;
            out += String.fromCharCode(v, w);
          } else {
            out += String.fromCharCode(v);
          }
          break;
        }
        default:
          fail('invalid escape');
      }
      start = i;
    }
  }

  const NUM = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
  function number() {
    NUM.lastIndex = i;
    const m = NUM.exec(s);
    if (!m) fail('invalid token');
    const text = m[0];
    i += text.length;
    if (i < n && /[0-9A-Za-z.+-]/.test(s[i])) fail('invalid token');
    if (m[1] === undefined && m[2] === undefined) {
      const v = BigInt(text);
      if (v > INT_MAX || v < INT_MIN) fail('too big integer');
      return v;
    }
    const v = Number(text);
    if (!Number.isFinite(v)) fail('real number overflow');
    return v;
  }

  function value(depth) {
    if (depth > MAX_DEPTH) fail('maximum parsing depth reached');
    ws();
    if (i >= n) fail("premature end of input");
    const c = s[i];
    if (c === '{') return object(depth);
    if (c === '[') return array(depth);
    if (c === '"') return string();
    if (c === 't') return literal('true', true);
    if (c === 'f') return literal('false', false);
    if (c === 'n') return literal('null', null);
    if (c === '-' || (c >= '0' && c <= '9')) return number();
    fail('invalid token');
  }

  function object(depth) {
    i++;
    const m = new Map();
    ws();
    if (s[i] === '}') { i++; return m; }
    for (;;) {
      ws();
      if (s[i] !== '"') fail('string or \'}\' expected');
      const k = string();
      if (m.has(k)) fail('duplicate object key');
      ws();
      if (s[i] !== ':') fail("':' expected");
      i++;
      m.set(k, value(depth + 1));
      ws();
      if (s[i] === ',') { i++; continue; }
      if (s[i] === '}') { i++; return m; }
      fail("'}' expected");
    }
  }

  function array(depth) {
    i++;
    const a = [];
    ws();
    if (s[i] === ']') { i++; return a; }
    for (;;) {
      a.push(value(depth + 1));
      ws();
      if (s[i] === ',') { i++; continue; }
      if (s[i] === ']') { i++; return a; }
      fail("']' expected");
    }
  }

  ws();
  if (s[i] !== '{' && s[i] !== '[') fail("'[' or '{' expected");
  const v = value(1);
  ws();
  if (i !== n) fail('end of file expected');
  return v;
}

export const isObject = (v) => v instanceof Map;
export const isString = (v) => typeof v === 'string';
export const isInteger = (v) => typeof v === 'bigint';

// Bytes of s in UTF-8 (jansson measures strings in bytes).
export function utf8Length(s) {
  let n = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) { n += 4; k++; } else n += 3;
  }
  return n;
}
