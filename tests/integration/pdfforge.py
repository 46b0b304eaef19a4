"""Forgeries of a signed PDF receipt, made as an attacker would (issue 17):
page 1 rewritten to read FORGED_TEXT, and the signature either
- hidden: /AcroForm renamed, so no form leads to it (mode 'rename');
- removed: the signature field keeps no /V, so qpdf drops the signature
  dictionary with its /ByteRange and /Contents (mode 'nosig');
then the whole file rewritten by qpdf (Debian's qpdf: --qdf, fix-qdf, a
plain rewrite); or
- left intact, with an incremental update appended after it that redefines
  page 1 (appended_update): the signature still verifies over the bytes it
  covers, and every reader shows the new page.
Used by test_receipt_pdf.py (selo verify) and test_verify_page.py (the
verification page)."""
import re, subprocess

FORGED_TEXT = 'LEITURA CONFIRMADA PELO DESTINATARIO'
FONT = b'<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>'
CONTENT = b'BT /FX 20 Tf 40 700 Td (' + FORGED_TEXT.encode() + b') Tj ET\n'


def _run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True,
                          timeout=60, **kw).stdout


def qpdf_forgery(src, dst, mode):
    """mode 'rename' or 'nosig' (above); writes dst."""
    qdf = dst + '.qdf'
    _run(['qpdf', '--qdf', '--object-streams=disable', src, qdf])
    with open(qdf, 'rb') as f:
        d = f.read()
    if mode == 'rename':
        d = d.replace(b'/AcroForm', b'/AcroFxrm')
    elif mode == 'nosig':
        d, n = re.subn(rb'\n  /V \d+ 0 R', b'', d)
        assert n == 1, 'one signature field with a /V'
    else:
        raise ValueError(mode)
    # page 1's content stream (QDF names it) becomes one line of text ...
    m = re.search(rb'%% Contents for page 1\n%% Original object ID: \d+ \d+\n\d+ 0 obj\n'
                  rb'<<\n  /Length \d+ 0 R\n>>\nstream\n', d)
    end = d.index(b'endstream', m.end())
    d = d[:m.end()] + CONTENT + d[end:]
    # ... in a font added to page 1's resources
    res = int(re.search(rb'%% Page 1\n.*?/Resources (\d+) 0 R', d, re.S).group(1))
    at = re.search(rb'\n%d 0 obj\n<<\n' % res, d).end()
    at += re.search(rb'  /Font <<\n', d[at:]).end()
    d = d[:at] + b'    /FX ' + FONT + b'\n' + d[at:]
    with open(qdf, 'wb') as f:
        f.write(d)
    fixed = _run(['fix-qdf', qdf])
    with open(qdf, 'wb') as f:
        f.write(fixed)
    _run(['qpdf', qdf, dst])


def appended_update(src, dst):
    """An incremental update after the signature: page 1 under its own
    number, with new content and resources; the signed bytes untouched."""
    with open(src, 'rb') as f:
        d = f.read()
    page = int(re.search(r'page 1: (\d+) 0 R', _run(['qpdf', '--show-pages', src]).decode())
               .group(1))
    pdict = _run(['qpdf', f'--show-object={page}', src]).decode().strip()
    trailer = d[d.rindex(b'trailer'):]
    size = int(re.search(rb'/Size (\d+)', trailer).group(1))
    root = re.search(rb'/Root (\d+ \d+ R)', trailer).group(1)
    prev = int(re.findall(rb'startxref\s+(\d+)', d)[-1])
    pdict = re.sub(r'/Contents \d+ 0 R', f'/Contents {size} 0 R', pdict)
    pdict, n = re.subn(r'/Resources \d+ 0 R', '/Resources << /Font << /FX ' + FONT.decode()
                       + ' >> >>', pdict)
    assert n == 1, pdict
    out = bytearray(d if d.endswith(b'\n') else d + b'\n')
    offs = {size: len(out)}
    out += b'%d 0 obj\n<< /Length %d >>\nstream\n' % (size, len(CONTENT)) + CONTENT
    out += b'endstream\nendobj\n'
    offs[page] = len(out)
    out += b'%d 0 obj\n' % page + pdict.encode() + b'\nendobj\n'
    xref = len(out)
    out += b'xref\n'
    for num in sorted(offs):
        out += b'%d 1\n%010d 00000 n \n' % (num, offs[num])
    out += (b'trailer\n<< /Size %d /Root %s /Prev %d >>\nstartxref\n%d\n%%%%EOF\n'
            % (size + 1, root, prev, xref))
    with open(dst, 'wb') as f:
        f.write(out)
