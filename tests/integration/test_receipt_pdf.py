#!/usr/bin/python3
"""PDF receipts (issue 8), through the real binary and third-party readers:
notices sent by `selo serve` to a real SMTP server, their PDF receipts made
with `selo receipt --pdf` and GET .../receipt?format=pdf, then checked with
poppler's pdfsig (signature valid, document unmodified; one flipped byte
breaks it), qpdf --check, pdfdetach (the embedded JSON is byte for byte
`selo receipt -o`, the .eml is the delivered message), pdftotext (every
event in order, the addresses, the checkpoint root, the labels in pt-BR and
English, the ETSI evidence names), and `selo verify r.pdf`: a PDF whose pages
no valid signature covers (signature hidden or removed and a page rewritten,
then rewritten by qpdf; an update appended after signing) is INVALID as a
document, exit 1, while its embedded receipt is said to be VALID."""
import base64, email, email.policy, json, os, re, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403
from pdfforge import FORGED_TEXT, appended_update, qpdf_forgery

OUT = os.path.join(ROOT, 'tests', 'out', 'receipt_pdf')

NOTICE = {'to': 'devedor@destino.example', 'to_name': 'Maria Souza', 'template': 'vencimento',
          'reference': 'CTR-77',
          'vars': {'nome': 'Maria Souza', 'valor': 99.9, 'vencimento': '2026-12-10',
                   'credor': 'Financeira Exemplo S.A.'}}


def tool(argv, input=None):
    """Runs a third-party tool; (rc, stdout+stderr as text)."""
    p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    return p.returncode, p.stdout.decode('utf-8', 'replace')


def pdftotext(path):
    rc, out = tool(['pdftotext', '-layout', path, '-'])
    eq(rc, 0, f'pdftotext {path}: {out[-500:]}')
    return out


def flat(text):
    """pdftotext output with runs of blanks and line ends made one space, so
    a value wrapped across lines or columns is still found."""
    return re.sub(r'\s+', ' ', text)


def verify(s, path):
    keys = os.path.join(s.data, 'keys')
    return run(['verify', path, '--key', os.path.join(keys, 'log.vkey'), '--tsa-ca',
                os.path.join(keys, 'ca.crt')])


def receipt_files(s, nid, name, *extra):
    """`selo receipt ID -o name.json --pdf name.pdf [extra]`, retried while the
    events are not yet under a timestamped checkpoint."""
    js, pdf = os.path.join(s.dir, name + '.json'), os.path.join(s.dir, name + '.pdf')

    def made():
        rc, _, err = run(['receipt', nid, '--data', s.data, '-o', js, '--pdf', pdf] + list(extra))
        if rc != 0 and ('not-in-log' in err or 'not yet' in err or 'timestamp' in err):
            return None
        eq(rc, 0, f'selo receipt --pdf: {err}')
        return True
    wait_until(made, 30, 0.3, 'a receipt')
    with open(js, 'rb') as f:
        return js, pdf, f.read()


def save(name, path):
    os.makedirs(OUT, exist_ok=True)
    with open(path, 'rb') as f, open(os.path.join(OUT, name), 'wb') as o:
        o.write(f.read())


def detach(pdf, tmp):
    """pdfdetach -list and -saveall: {name: bytes}."""
    rc, out = tool(['pdfdetach', '-list', pdf])
    eq(rc, 0, f'pdfdetach -list: {out}')
    d = os.path.join(tmp, 'detached-' + os.path.basename(pdf))
    os.makedirs(d, exist_ok=True)
    rc, out2 = tool(['pdfdetach', '-saveall', '-o', d, pdf])
    eq(rc, 0, f'pdfdetach -saveall: {out2}')
    files = {}
    for n in os.listdir(d):
        with open(os.path.join(d, n), 'rb') as f:
            files[n] = f.read()
    return out, files


def sent_notice(s, smtp, body=NOTICE):
    st, _, j = s.api('POST', '/v1/notices', body)
    eq(st, 202, f'POST: {j}')
    s.wait_status(j['id'], ['relayed'])
    return j['id']


def checkpoint_root(receipt):
    return receipt['log']['checkpoint'].split('\n')[2]


def event_types(receipt):
    return [json.loads(e['entry'])['type'] for e in receipt['events']]


@test
def pdf_receipt_is_signed_self_contained_and_readable():
    smtp = SMTPServer()
    s = Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{smtp.port}', 'starttls': 'no'}).start()
    try:
        nid = sent_notice(s, smtp)
        js, pdf, jbytes = receipt_files(s, nid, 'full')
        save('full-pt.pdf', pdf)
        receipt = json.loads(jbytes)

        # pdfsig: valid, whole document signed; a flipped byte breaks it
        rc, out = tool(['pdfsig', pdf])
        check('Signature is Valid' in out, f'pdfsig: {out}')
        check('Total document signed' in out, f'pdfsig: the signature covers the file: {out}')
        check('ETSI.CAdES.detached' in out, f'pdfsig: PAdES subfilter: {out}')
        with open(pdf, 'rb') as f:
            raw = bytearray(f.read())
        at = raw.find(b'/Type /Page') if raw.find(b'/Type /Page') > 0 else len(raw) // 3
        raw[at + 1] ^= 0x01
        bad = os.path.join(s.dir, 'flipped.pdf')
        with open(bad, 'wb') as f:
            f.write(raw)
        rc, out = tool(['pdfsig', bad])
        check('Signature is Valid' not in out, f'pdfsig after a flipped byte: {out}')
        # selo verify sees it too, though the receipt inside is intact
        rc, out, err = verify(s, bad)
        eq(rc, 1, f'selo verify on a PDF changed after signing: {out} {err}')
        check('FAIL pdf_signature' in out and 'verdict: INVALID' in out, out)

        # poppler renders the first page (the picture in docs/receipt-pdf.md)
        os.makedirs(OUT, exist_ok=True)
        rc, out = tool(['pdftoppm', '-png', '-r', '70', '-f', '1', '-l', '1', '-singlefile', pdf,
                        os.path.join(OUT, 'page1')])
        eq(rc, 0, f'pdftoppm: {out}')
        check(os.path.getsize(os.path.join(OUT, 'page1.png')) > 10000, 'a rendered page')

        # qpdf finds nothing wrong
        rc, out = tool(['qpdf', '--check', pdf])
        eq(rc, 0, f'qpdf --check: {out}')
        check('No syntax or stream encoding errors' in out, out)

        # the embedded files: the JSON is `selo receipt -o`'s bytes, the .eml the sent one
        listing, files = detach(pdf, s.dir)
        check(f'receipt-{nid}.json' in listing and f'message-{nid}.eml' in listing, listing)
        eq(files.get(f'receipt-{nid}.json'), jbytes, 'the embedded JSON is selo receipt -o')
        eml = smtp.messages()[0][0]
        eq(files.get(f'message-{nid}.eml'), eml, 'the embedded .eml is the delivered message')

        # what a person reads, in order
        text = pdftotext(pdf)
        ft = flat(text)
        for want in ['Recibo', 'devedor@destino.example', 'Maria Souza', checkpoint_root(receipt),
                     nid, 'SubmissionAcceptance', 'RelayToNonERDS', 'O que este recibo prova',
                     'Como verificar', 'CTR-77']:
            check(want in ft, f'pdftotext has {want!r}: {text[:3000]}')
        pos = [ft.find(w) for w in ('SubmissionAcceptance', 'RelayToNonERDS')]
        check(-1 < pos[0] < pos[1], f'the events in order: {pos}')

        # selo verify reads the PDF through its embedded JSON
        rc, out, err = verify(s, pdf)
        eq(rc, 0, f'selo verify r.pdf: {out} {err}')
        check('receipt embedded' in out and 'verdict: VALID' in out, out)
        check('ok   pdf_signature: the PDF is signed by O=Selo,CN=' in out, out)

        # English
        _, pdf_en, _ = receipt_files(s, nid, 'full-en', '--lang', 'en')
        save('full-en.pdf', pdf_en)
        ft_en = flat(pdftotext(pdf_en))
        for want in ['Receipt', 'What this receipt proves', 'How to verify', 'RelayToNonERDS',
                     'devedor@destino.example']:
            check(want in ft_en, f'English pdftotext has {want!r}: {ft_en[:2000]}')
        check('O que este recibo prova' not in ft_en, 'no pt-BR box in the English PDF')
        rc, out, err = verify(s, pdf_en)
        eq(rc, 0, f'selo verify English PDF: {out} {err}')

        # the API gives the same kind of PDF
        st, hd, body = s.api('GET', f'/v1/notices/{nid}/receipt?format=pdf&lang=en')
        eq(st, 200, f'GET ?format=pdf: {body[:300]}')
        eq(hd.get('content-type'), 'application/pdf')
        check(body.startswith(b'%PDF-'), 'a PDF')
        api_pdf = os.path.join(s.dir, 'api.pdf')
        with open(api_pdf, 'wb') as f:
            f.write(body)
        rc, out = tool(['pdfsig', api_pdf])
        check('Signature is Valid' in out, f'pdfsig on the API PDF: {out}')
        rc, out, err = verify(s, api_pdf)
        eq(rc, 0, f'selo verify API PDF: {out} {err}')
        st, _, j = s.api('GET', f'/v1/notices/{nid}/receipt?format=pdf&lang=fr')
        eq(st, 400, f'lang=fr: {j}')
        st, _, j = s.api('GET', f'/v1/notices/{nid}/receipt?format=docx')
        eq(st, 400, f'format=docx: {j}')
    finally:
        s.cleanup()
        smtp.stop()


@test
def altered_or_empty_pdfs_are_refused():
    smtp = SMTPServer()
    s = Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{smtp.port}', 'starttls': 'no'}).start()
    try:
        nid = sent_notice(s, smtp)
        _, pdf, jbytes = receipt_files(s, nid, 'r')
        with open(pdf, 'rb') as f:
            raw = f.read()
        at = raw.find(jbytes)
        check(at > 0, 'the JSON is stored as is in the PDF')
        # one character of the first entry changed, in place
        entry = json.loads(jbytes)['events'][0]['entry']
        mark = b'submission_accepted'
        k = raw.find(mark, at)
        check(k > 0, 'the entry is in the PDF')
        bad = raw[:k] + b'submission_acceptee' + raw[k + len(mark):]
        badp = os.path.join(s.dir, 'altered.pdf')
        with open(badp, 'wb') as f:
            f.write(bad)
        rc, out, err = verify(s, badp)
        eq(rc, 1, f'selo verify altered PDF: {out} {err}')
        check('FAIL inclusion' in out, f'names the broken check: {out}')
        check(entry, 'entry read')

        # a PDF with no receipt inside: cairo's own, without our update
        plain = os.path.join(s.dir, 'plain.pdf')
        with open(plain, 'wb') as f:
            f.write(b'%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n'
                    b'2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n'
                    b'trailer\n<< /Root 1 0 R /Size 3 >>\n%%EOF\n')
        rc, out, err = verify(s, plain)
        eq(rc, 2, f'selo verify on a PDF without a receipt: {out} {err}')
        check('no receipt inside' in err, err)
        rc, out, err = verify(s, os.path.join(s.dir, 'missing.pdf'))
        eq(rc, 2, 'a missing file')
    finally:
        s.cleanup()
        smtp.stop()


@test
def pages_no_signature_covers_are_not_proven():
    """Issue 17: /AcroForm renamed and page 1 rewritten to read "LEITURA
    CONFIRMADA PELO DESTINATARIO", rewritten with qpdf, was VALID (exit 0,
    WARN pdf_signature). Now that PDF, one whose signature dictionary was
    removed, and one with an update appended after signing are INVALID as
    documents (exit 1); each says plainly that the receipt inside is VALID
    and the pages are not proven."""
    smtp = SMTPServer()
    s = Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{smtp.port}', 'starttls': 'no'}).start()
    try:
        nid = sent_notice(s, smtp)
        _, pdf, _ = receipt_files(s, nid, 'genuine')
        rc, out, err = verify(s, pdf)
        eq(rc, 0, f'the genuine PDF: {out} {err}')
        check('ok   pdf_signature:' in out and 'verdict: VALID' in out, out)
        check('pages: NOT PROVEN' not in out, out)
        forged = {k: os.path.join(s.dir, k + '.pdf') for k in ('renamed', 'nosig', 'appended')}
        qpdf_forgery(pdf, forged['renamed'], 'rename')
        qpdf_forgery(pdf, forged['nosig'], 'nosig')
        appended_update(pdf, forged['appended'])
        for k, path in forged.items():
            save(f'forged-{k}.pdf', path)
            # what a person sees: the forged page, the receipt still inside
            ft = flat(pdftotext(path))
            check(FORGED_TEXT in ft, f'{k}: the forged page reads {ft[:300]!r}')
            rc, q = tool(['qpdf', '--check', path])
            eq(rc, 0, f'{k}: qpdf --check: {q}')
            check(f'receipt-{nid}.json' in detach(path, s.dir)[0], f'{k}: the receipt is inside')
        with open(forged['nosig'], 'rb') as f:
            raw = f.read()
        check(b'/ByteRange' not in raw and not re.search(rb'/Type\s*/Sig\b', raw) and
              b'/Adobe.PPKLite' not in raw, 'the signature dictionary is gone')
        rc, ps = tool(['pdfsig', '-nocert', forged['appended']])
        check('Signature is Valid' in ps and 'Not total document signed' in ps, ps)
        why = {'renamed': 'FAIL pdf_signature: the PDF is not signed',
               'nosig': 'FAIL pdf_signature: the PDF is not signed',
               'appended': 'FAIL pdf_signature: the signature is valid but covers only the first'}
        for k, path in forged.items():
            rc, out, err = verify(s, path)
            eq(rc, 1, f'{k}: selo verify exit: {out} {err}')
            lines = out.splitlines()
            check(why[k] in out, f'{k}: {out}')
            check(f'receipt: VALID: the receipt embedded in the PDF (receipt-{nid}.json)' in out, out)
            check('pages: NOT PROVEN' in out and 'only the embedded receipt is' in out, out)
            eq(lines[-1], 'verdict: INVALID', f'{k}: {out}')
            # the receipt's own checks are reported as they are: all pass
            fails = [l for l in lines if l.startswith(('FAIL', 'WARN'))]
            eq(fails, [l for l in lines if l.startswith('FAIL pdf_signature:')], f'{k}: {out}')
            check(sum(l.startswith('ok   ') for l in lines) >= 12, out)
    finally:
        s.cleanup()
        smtp.stop()


@test
def failed_delivery_receipt_shows_every_attempt():
    smtp = SMTPServer('--reply', '451:4.3.0 try later')
    s = Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{smtp.port}', 'starttls': 'no'},
             sender={'retry_base': '1', 'retry_max': '1', 'lifetime': '3'}).start()
    try:
        st, _, j = s.api('POST', '/v1/notices', NOTICE)
        eq(st, 202)
        nid = j['id']
        s.wait_status(nid, ['failed'], timeout=40)
        _, pdf, jbytes = receipt_files(s, nid, 'failed')
        save('failed.pdf', pdf)
        receipt = json.loads(jbytes)
        types = event_types(receipt)
        check('delivery_failed' in types and types.count('delivery_deferred') >= 1, types)
        ft = flat(pdftotext(pdf))
        check('RelayToNonERDSFailure' in ft, 'the failure is named as its ETSI evidence')
        check(ft.count('451') >= types.count('delivery_deferred'), 'every attempt with its reply')
        rc, out, err = verify(s, pdf)
        eq(rc, 0, f'selo verify failed-delivery PDF: {out} {err}')
        rc, out = tool(['pdfsig', pdf])
        check('Signature is Valid' in out, out)
    finally:
        s.cleanup()
        smtp.stop()


@test
def short_form_discloses_no_content():
    smtp = SMTPServer()
    s = Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{smtp.port}', 'starttls': 'no'}).start()
    try:
        nid = sent_notice(s, smtp)
        eml = smtp.messages()[0][0]
        m = email.message_from_bytes(eml, policy=email.policy.default)
        subject = str(m['Subject'])
        body = next(p for p in m.walk() if p.get_content_type() == 'text/plain').get_content()
        line = next(l for l in body.splitlines() if len(l) > 30)

        js, pdf, jbytes = receipt_files(s, nid, 'short', '--form', 'short')
        save('short-pt.pdf', pdf)
        r = json.loads(jbytes)
        check('eml_base64' not in r['message'], 'no .eml in the short JSON')
        check(subject not in jbytes.decode() and 'Financeira' not in jbytes.decode(),
              'no subject or variables in the short JSON')
        listing, files = detach(pdf, s.dir)
        check(f'message-{nid}.eml' not in listing and f'receipt-{nid}.json' in listing, listing)
        eq(files.get(f'receipt-{nid}.json'), jbytes, 'the short JSON is embedded as is')
        ft = flat(pdftotext(pdf))
        check(subject not in ft, f'no subject in the short PDF: {subject}')
        check(flat(line) not in ft, f'no body text in the short PDF: {line}')
        check('devedor@destino.example' in ft, 'the address stays')
        for path in (js, pdf):
            rc, out, err = verify(s, path)
            eq(rc, 0, f'selo verify {path}: {out} {err}')

        # and the full one does show the subject and text
        _, fpdf, _ = receipt_files(s, nid, 'full')
        ff = flat(pdftotext(fpdf))
        check(flat(line) in ff, f'the full PDF shows the text: {line}')
        for etsi in ('SubmissionAcceptance', 'RelayToNonERDS'):
            check(etsi in ff, f'ETSI name {etsi}')
    finally:
        s.cleanup()
        smtp.stop()


@test
def receipt_cli_errors():
    s = Selo()
    try:
        rc, _, err = run(['receipt', '01ARZ3NDEKTSV4RRFFQ69G5FAV', '--data', s.data, '--pdf',
                          os.path.join(s.dir, 'x.pdf'), '--lang', 'fr'])
        eq(rc, 2, f'--lang fr: {err}')
        check('pt-BR or en' in err, err)
        rc, _, err = run(['receipt', '01ARZ3NDEKTSV4RRFFQ69G5FAV', '--data', s.data, '--pdf',
                          os.path.join(s.dir, 'x.pdf')])
        eq(rc, 1, f'unknown notice: {err}')
        check(not os.path.exists(os.path.join(s.dir, 'x.pdf')), 'nothing written')
    finally:
        s.cleanup()


if __name__ == '__main__':
    main()
