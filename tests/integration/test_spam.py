#!/usr/bin/python3
"""Every shipped template, rendered with realistic variables and sent as Selo
sends it (tracking on: rewritten links, the open pixel, the read-confirmation
link; S/MIME and DKIM signed), scores under 1.0 with SpamAssassin's local
tests (`spamassassin -L -t`: no network, no Bayes, a temporary home so no
user state is read or written). The scores and rules hit are printed; their
table is in docs/messages.md. Selo runs in maildir mode (nothing leaves the
machine); the message scored is the one the API returns, byte for byte."""
import email, email.policy, os, re, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403

LIMIT = 1.0
BASE = 'https://rastreio.cobranca.example.com.br'

# What an integrator sends: a person's name, a company, a real-looking bill.
COMMON = {
    'nome': 'Maria da Conceição Souza',
    'credor': 'Exemplo Serviços Educacionais Ltda',
    'valor': '1234.56',
    'vencimento': '2026-12-15',
    'descricao': 'Mensalidade escolar de dezembro de 2026 (aluno: Pedro Souza)',
    'documento': 'Contrato 2026/00417',
    'linha_digitavel': '23793.38128 60012.345678 90000.063305 8 96520000123456',
    'link_pagamento': 'https://pagamentos.exemplo.com.br/boleto/8Q2X7',
    'contato': '(11) 3456-7890, de segunda a sexta, das 9h às 18h, ou financeiro@exemplo.com.br',
    'credor_documento': '12.345.678/0001-90',
    'credor_endereco': 'Av. Paulista, 1000, 10º andar, Bela Vista, São Paulo/SP, 01310-100',
}
VARS = {
    'lembrete': {},
    'vencimento': {},
    'atraso': {'dias_atraso': '12'},
    'notificacao-extrajudicial': {'prazo_dias': '10'},
    'acordo': {'parcelas': '6', 'valor_parcela': '205.76', 'valor_total': '1234.56',
               'validade_proposta': '2026-12-22', 'primeiro_vencimento': '2027-01-10'},
}


def template_vars(name, required_only):
    """COMMON and the template's own, limited to what its template.ini lists
    (only its required variables when required_only: the shortest notice)."""
    names = set()
    with open(os.path.join(ROOT, 'templates', name, 'template.ini'), encoding='utf-8') as f:
        key = None
        for line in f:
            line = line.split(';')[0].rstrip()
            m = re.match(r'(\w+)\s*=\s*(.*)', line)
            if m:
                key, rest = m.group(1), m.group(2)
            elif line[:1].isspace() and key:
                rest = line
            else:
                continue
            if key == 'required' or (key == 'optional' and not required_only):
                names |= {v.strip() for v in rest.split(',') if v.strip()}
    return {k: v for k, v in dict(COMMON, **VARS[name]).items() if k in names}


def spamassassin(eml, home):
    p = subprocess.run(['spamassassin', '-L', '-t', '-x'], input=eml, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=dict(os.environ, HOME=home), timeout=300)
    out = p.stdout.decode('utf-8', 'replace')
    m = re.search(r'X-Spam-Status: \w+, score=(-?[\d.]+) required=[\d.]+ tests=(.*?)\s+autolearn',
                  out, re.S)
    if not m:
        raise Fail(f'no X-Spam-Status from spamassassin: {p.stderr.decode()[-800:]}')
    rules = re.sub(r'\s+', '', m.group(2)).split(',')
    return float(m.group(1)), [r for r in rules if r and r != 'none']


@test
def every_template_scores_under_one_with_tracking_on():
    if not shutil.which('spamassassin'):
        raise Fail('spamassassin is not installed (scripts/install-deps.sh installs it)')
    s = Selo(domain='cobranca.example.com.br', track={'base_url': BASE},
             mail={'from_name': 'Exemplo Serviços Educacionais'})
    home = tempfile.mkdtemp(prefix='selo-sa-')
    try:
        s.start()
        names = [(t, v) for t in sorted(VARS) for v in ('all variables', 'required only')]
        results = {}
        for name in names:
            t, variant = name
            n = {'to': 'maria.souza@destino.example', 'to_name': COMMON['nome'], 'template': t,
                 'reference': 'FAT-2026-0417',
                 'vars': template_vars(t, variant == 'required only')}
            st, _, j = s.api('POST', '/v1/notices', n)
            eq(st, 202, f'{name}: {j}')
            nid = j['id']
            def composed():
                st, _, body = s.api('GET', f'/v1/notices/{nid}/message')
                return body if st == 200 else None
            eml = wait_until(composed, 30, 0.1, f'{name}: the message composed')
            text = eml.decode('ascii', 'replace')
            check('DKIM-Signature:' in text and 'pkcs7-signature' in text, f'{name}: signed')
            html = [part.get_content() for part in
                    email.message_from_bytes(eml, policy=email.policy.default).walk()
                    if part.get_content_type() == 'text/html']
            check(len(html) == 1 and re.search(r'<img[^>]+src="' + re.escape(BASE), html[0]),
                  f'{name}: the open pixel is in the HTML')
            results[name] = spamassassin(eml, home)
        for name in names:
            score, rules = results[name]
            print(f'  {name[0]} ({name[1]}): {score} {",".join(rules)}')
        for name in names:
            score, rules = results[name]
            check(score < LIMIT, f'{name} scores {score} ({", ".join(rules)})')
    finally:
        s.cleanup()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == '__main__':
    main()
