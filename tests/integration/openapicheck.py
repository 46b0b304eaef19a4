"""openapicheck: validates a JSON body the API answered against
docs/openapi.yaml, for selotest's Selo.api (so every integration test checks
the spec as it goes) and test_openapi.py. The operation is found by path
(literal segments before {params}) and method (HEAD as GET), the response by
status and Content-Type; a status or media type the spec does not list is a
failure too. Needs Debian's python3-jsonschema and python3-yaml."""
import os, re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC_PATH = os.path.join(ROOT, 'docs', 'openapi.yaml')
_spec = None
_routes = None


class SpecError(Exception):
    pass


def _modules():
    try:
        import jsonschema, yaml
    except ImportError as e:
        raise SpecError(f'the OpenAPI check needs Debian packages python3-jsonschema and '
                        f'python3-yaml ({e}); apt-get install python3-jsonschema python3-yaml')
    return jsonschema, yaml


def spec():
    global _spec, _routes
    if _spec is None:
        _, yaml = _modules()
        with open(SPEC_PATH, encoding='utf-8') as f:
            _spec = yaml.safe_load(f)
        _routes = []
        for p in _spec['paths']:
            rx = re.escape(p)
            rx = re.sub(r'\\\{[a-z_]+\\\}', '[^/]+', rx)
            _routes.append((p.count('{'), re.compile('^' + rx + '$'), p))
        _routes.sort(key=lambda r: r[0])  # literal segments first
    return _spec


def deref(obj):
    while isinstance(obj, dict) and '$ref' in obj:
        node = spec()
        for part in obj['$ref'][2:].split('/'):
            node = node[part]
        obj = node
    return obj


def find_path(path):
    """The spec's path template for a request path (no query), or None."""
    spec()
    path = path.split('?', 1)[0]
    for _, rx, p in _routes:
        if rx.match(path):
            return p
    return None


def validate(method, path, status, ctype, body):
    """Raises SpecError when body (parsed JSON) does not match the spec."""
    jsonschema, _ = _modules()
    s = spec()
    tmpl = find_path(path)
    media = ctype.split(';')[0].strip().lower()
    if tmpl is None or (method.lower() if method != 'HEAD' else 'get') not in s['paths'][tmpl]:
        # no such route (404) or another method (405): a problem document
        if status not in (404, 405):
            raise SpecError(f'{method} {path} answered {status} but docs/openapi.yaml has no '
                            f'such operation')
        schema = {'$ref': '#/components/schemas/Problem'}
    else:
        op = s['paths'][tmpl][method.lower() if method != 'HEAD' else 'get']
        resp = op['responses'].get(str(status)) or op['responses'].get('default')
        if resp is None:
            raise SpecError(f'{method} {tmpl} answered {status}, a status docs/openapi.yaml '
                            f'does not list for it')
        content = deref(resp).get('content', {})
        if media not in content:
            raise SpecError(f'{method} {tmpl} {status} answered {media}, which docs/openapi.yaml '
                            f'does not list (it has {sorted(content)})')
        schema = content[media].get('schema', {})
    root = dict(schema)
    root['components'] = s['components']
    v = jsonschema.Draft202012Validator(root)
    errs = sorted(v.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errs:
        e = errs[0]
        where = '/'.join(str(x) for x in e.absolute_path)
        raise SpecError(f'{method} {path} {status}: the body does not match docs/openapi.yaml '
                        f'at /{where}: {e.message}')
