#!/usr/bin/python3
"""docs/openapi.yaml and the route table (issue 18, sections 7 and 9), through
the real binary.

1. `redocly lint` (@redocly/cli pinned in tests/openapi, installed with
   `npm ci`) finds no error in docs/openapi.yaml.
2. The routes of src/api.c's table (read from its text) and the spec's API
   paths+methods are the same set, both ways; every prefix the tracker's
   router (src/tracker.c, src/webpage.c) answers has a path in the spec.
   A running server answers every spec operation with something other than
   "no such resource" or 405, so the table text is what the binary routes.
3. The table answers 405 with Allow (HEAD after GET) for a known path with
   another method, 404 for an unknown one, and HEAD where GET exists.
4. GET /v1/templates, GET /v1/templates/{name} and `selo templates [NAME]`
   print the same metadata; an unknown name is 404 problem+json / exit 1.
Every JSON body met here is also validated against the spec (selotest)."""
import json, os, re, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403
import openapicheck

OPENAPI_DIR = os.path.join(ROOT, 'tests', 'openapi')
METHODS = ('get', 'post', 'put', 'delete', 'patch')


def npm_ready():
    if os.path.isdir(os.path.join(OPENAPI_DIR, 'node_modules', '@redocly', 'cli')):
        return
    p = subprocess.run(['npm', 'ci', '--no-audit', '--no-fund'], cwd=OPENAPI_DIR,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    if p.returncode != 0:
        raise Fail('npm ci in tests/openapi failed: ' + p.stdout.decode()[-1500:])


def shape(path):
    """/v1/notices/{id} and /v1/notices/{x+} compare equal."""
    return re.sub(r'\{[^}]*\}', '{}', path)


def table_routes():
    with open(os.path.join(ROOT, 'src', 'api.c'), encoding='utf-8') as f:
        src = f.read()
    body = re.search(r'api_routes\[\] = \{(.*?)\n\};', src, re.S)
    check(body, 'src/api.c has no api_routes[] table')
    rows = re.findall(r'\{"([A-Z]+)", "(/[^"]*)", rt_\w+\}', body.group(1))
    check(len(rows) > 10, f'too few routes read from the table: {rows}')
    return {(m, shape(p)) for m, p in rows}


def spec_ops():
    """(method, shape) of the API's operations; the tracker's separately."""
    spec = openapicheck.spec()
    api, pending, tracker = set(), set(), []
    for p, item in spec['paths'].items():
        if 'servers' in item:          # the tracker's paths carry their own server
            tracker.append(p)
            continue
        for m in METHODS:
            if m in item:
                (pending if item[m].get('x-selo-pending') else api).add((m.upper(), shape(p)))
    return api, pending, tracker


@test
def the_selotest_hook_refuses_a_body_the_spec_does_not_allow():
    ok = {'status': 'ok', 'store': 'ok', 'transport': 'relay'}
    openapicheck.validate('GET', '/healthz', 200, 'application/json', ok)
    bad = [('GET', '/healthz', 200, 'application/json', dict(ok, status='fine')),
           ('GET', '/healthz', 418, 'application/json', ok),
           ('GET', '/v1/templates/x', 200, 'text/json', {}),
           ('GET', '/v1/templates/x', 404, 'application/problem+json', {'type': 'x'}),
           ('GET', '/v1/nowhere', 200, 'application/json', {})]
    for case in bad:
        try:
            openapicheck.validate(*case)
        except openapicheck.SpecError as e:
            print(f'  refused as it should: {e}')
            continue
        raise Fail(f'the OpenAPI check let {case} through')


@test
def redocly_lint_finds_no_error():
    npm_ready()
    p = subprocess.run(['npx', '--no-install', 'redocly', 'lint', '--format', 'stylish',
                        os.path.join(ROOT, 'docs', 'openapi.yaml')], cwd=OPENAPI_DIR,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    out = p.stdout.decode()
    check(p.returncode == 0, f'redocly lint failed:\n{out[-3000:]}')


@test
def route_table_and_spec_list_the_same_routes():
    table = table_routes()
    api, pending, _ = spec_ops()
    missing = sorted(table - api - pending)
    check(not missing, f'the server answers routes docs/openapi.yaml lacks: {missing}')
    extra = sorted(api - table)
    check(not extra, f'docs/openapi.yaml lists routes src/api.c does not answer: {extra}')
    for r in sorted(pending & table):
        print(f'note: {r} is in the table now; drop its x-selo-pending mark in the spec')


@test
def tracker_prefixes_are_in_the_spec():
    _, _, tracker = spec_ops()
    with open(os.path.join(ROOT, 'src', 'tracker.c'), encoding='utf-8') as f:
        src = f.read()
    route = src[src.index('static enum MHD_Result route('):]
    route = route[:route.index('\n}\n')]
    prefixes = set(re.findall(r'strn?cmp\(url, "(/[^"]+)"', route))
    prefixes |= set(re.findall(r'strn?cmp\(url, "(/log/[^"]+)"', src))
    with open(os.path.join(ROOT, 'src', 'webpage.c'), encoding='utf-8') as f:
        prefixes |= set(re.findall(r'#define PREFIX "(/[^"]+)"', f.read()))
    check({'/o/', '/c/', '/r/', '/log/checkpoint', '/verify'} <= prefixes, str(prefixes))
    for pre in sorted(prefixes):
        if pre == '/log/':
            continue  # serve_log's own routes are listed one by one
        check(any(p.startswith(pre) or p == pre.rstrip('/') for p in tracker),
              f'the tracker answers {pre}... but docs/openapi.yaml has no such path')


def concrete(path):
    return (path.replace('{id}', 'wh_00000000000000000000000000' if '/webhooks/' in path
                         else ('seq_0000000000' if '/sequences/' in path else '01AAAAAAAAAAAAAAAAAAAAAAAA'))
            .replace('{address}', 'nobody%40destino.example').replace('{name}', 'nao-existe'))


@test
def the_running_server_answers_every_spec_operation():
    s = Selo().start()
    try:
        api, _, _ = spec_ops()
        spec = openapicheck.spec()
        for p, item in spec['paths'].items():
            if 'servers' in item:
                continue
            for m in METHODS:
                if m not in item or item[m].get('x-selo-pending'):
                    continue
                st, hd, j = s.api(m.upper(), concrete(p), {} if m == 'post' else None)
                check(st != 405, f'{m.upper()} {p}: 405 (Allow: {hd.get("allow")})')
                if st == 404:
                    check('no such resource' not in j.get('detail', ''),
                          f'{m.upper()} {p}: the server has no such route')
    finally:
        s.cleanup()


def head(url, key=None):
    """A HEAD request's status (curl -I: no body is awaited)."""
    argv = ['curl', '-s', '-S', '-I', '--max-time', '30', '-o', '/dev/null',
            '-w', '%{http_code}', url]
    if key:
        argv[1:1] = ['-H', f'Authorization: Bearer {key}']
    p = subprocess.run(argv, stdout=subprocess.PIPE, timeout=60)
    return int(p.stdout)


@test
def other_methods_get_405_with_allow_and_unknown_paths_404():
    s = Selo().start()
    try:
        cases = [('PUT', '/v1/notices', 'GET, HEAD, POST'),
                 ('GET', '/v1/notices/batch', 'POST'),
                 ('POST', '/v1/notices/01AAAAAAAAAAAAAAAAAAAAAAAA', 'GET, HEAD, DELETE'),
                 ('DELETE', '/v1/notices/01AAAAAAAAAAAAAAAAAAAAAAAA/receipt', 'GET, HEAD'),
                 ('GET', '/v1/sequences', 'POST'),
                 ('GET', '/v1/sequences/seq_x/stop', 'POST'),
                 ('PATCH', '/v1/webhooks', 'GET, HEAD, POST'),
                 ('DELETE', '/v1/webhooks/public-key', 'GET, HEAD'),
                 ('POST', '/v1/suppressions/a%40b.example', 'DELETE'),
                 ('DELETE', '/v1/templates', 'GET, HEAD'),
                 ('POST', '/v1/templates/lembrete', 'GET, HEAD'),
                 ('POST', '/healthz', 'GET, HEAD')]
        for method, path, allow in cases:
            st, hd, j = s.api(method, path, key='not-a-key')  # the method is checked first
            eq(st, 405, f'{method} {path}')
            eq(hd.get('allow'), allow, f'{method} {path} Allow')
            eq(j['type'], 'urn:selo:problem:method-not-allowed')
        for path in ('/nowhere', '/v1/notices/', '/v1/notices/x/y', '/v1/webhooks/',
                     '/v1/suppressions/', '/v1/templates/', '/v1/notices/' + 'x' * 65):
            st, _, j = s.api('GET', path)
            eq(st, 404, path)
            check('no such resource' in j['detail'], j)
        eq(head(s.url + '/healthz'), 200)
        eq(head(s.url + '/v1/templates', s.key), 200)
        eq(head(s.url + '/v1/templates'), 401)
        st, _, _ = s.api('GET', '/v1/templates', key='not-a-key')
        eq(st, 401)
    finally:
        s.cleanup()


@test
def templates_endpoints_and_cli_print_the_same():
    s = Selo().start()
    try:
        st, _, j = s.api('GET', '/v1/templates')
        eq(st, 200)
        names = [t['name'] for t in j['templates']]
        eq(names, ['acordo', 'atraso', 'lembrete', 'notificacao-extrajudicial', 'vencimento'])
        rc, out, _ = run(['templates', '--data', s.data], check_rc=0)
        eq(json.loads(out), j, 'selo templates = GET /v1/templates')
        st, _, one = s.api('GET', '/v1/templates/lembrete')
        eq(st, 200)
        eq(one['language'], 'pt-BR')
        eq(one['required'], ['nome', 'credor', 'valor', 'vencimento'])
        check('link_pagamento' in one['optional'], one)
        eq(one['filters']['valor'], ['brl'])
        eq(one['filters']['vencimento'], ['data'])
        eq(one['filters']['link_pagamento'], ['url'])
        check(one['description'], one)
        eq(one, next(t for t in j['templates'] if t['name'] == 'lembrete'))
        rc, out, _ = run(['templates', 'lembrete', '--data', s.data], check_rc=0)
        eq(json.loads(out), one, 'selo templates lembrete = GET /v1/templates/lembrete')
        st, hd, err = s.api('GET', '/v1/templates/nao-existe')
        eq(st, 404)
        eq(hd['content-type'], 'application/problem+json')
        eq(err['type'], 'urn:selo:problem:not-found')
        rc, out, e = run(['templates', 'nao-existe', '--data', s.data], check_rc=1)
        eq(out, '')
        check('nao-existe' in e, e)
        # Every required variable, given, renders a notice the API accepts.
        vars_ = {'nome': 'Ana', 'credor': 'Loja', 'valor': '10.00', 'vencimento': '2026-12-15'}
        eq(sorted(vars_), sorted(one['required']))
        st, _, _ = s.api('POST', '/v1/notices', {'to': 'ana@destino.example',
                                                 'template': 'lembrete', 'vars': vars_})
        eq(st, 202)
    finally:
        s.cleanup()


@test
def templates_of_a_templates_dir_are_listed():
    s = Selo()
    try:
        tdir = os.path.join(s.dir, 'tpl')
        os.makedirs(os.path.join(tdir, 'aviso'))
        files = {'template.ini': '[template]\nlanguage = en\ndescription = A short notice\n'
                                 'required = name\noptional = amount\n',
                 'subject.txt': 'Notice for {{name}}\n',
                 'body.txt': 'Hello {{name}}. {{#amount}}Due: {{amount|brl}}{{/amount}}\n',
                 'body.html': '<html><body><p>Hello {{name}}</p></body></html>\n'}
        for n, text in files.items():
            with open(os.path.join(tdir, 'aviso', n), 'w') as f:
                f.write(text)
        s.conf['templates'] = {'dir': tdir}
        s.write_conf()
        want = {'name': 'aviso', 'description': 'A short notice', 'language': 'en',
                'required': ['name'], 'optional': ['amount'], 'filters': {'amount': ['brl']}}
        rc, out, _ = run(['templates', '--data', s.data], check_rc=0)
        eq(json.loads(out), {'templates': [want]})
        s.start()
        st, _, j = s.api('GET', '/v1/templates/aviso')
        eq(st, 200)
        eq(j, want)
    finally:
        s.cleanup()


if __name__ == '__main__':
    main()
