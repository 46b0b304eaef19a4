#!/usr/bin/python3
"""The SMTP transcript covers the whole session, through the reply to the
message, whether the server offers CHUNKING (a real Postfix: libesmtp sends
BDAT and its monitor goes blind, docs/transports.md) or not (aiosmtpd: DATA).
Relay mode and mx mode; several notices in one session, each transcript with
only its own transaction. Every peer runs on 127.0.0.1 and is stopped by PID."""
import os, re, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from selotest import *  # noqa: F401,F403


def submit_batch(s, tos):
    notices = [{'to': to, 'subject': 'Aviso', 'text': 'Aviso de cobrança.'} for to in tos]
    st, _, j = s.api('POST', '/v1/notices/batch', {'notices': notices})
    eq(st, 200, j)
    return [r['id'] for r in j['results']]


def accepted(s, nid, typ):
    ev = [e['entry'] for e in s.notice(nid)['events'] if e['type'] == typ]
    eq(len(ev), 1, s.notice(nid))
    return ev[0]


def transcript_of(s, nid, e):
    def disclosed():
        st, _, r = s.api('GET', f'/v1/notices/{nid}/receipt')
        return r['disclosure']['values'].get(e['transcript']) if st == 200 else None
    return wait_until(disclosed, 20, 0.2, 'the transcript in the receipt')


def check_whole_story(t, to, others, chunking, qid=None):
    """RCPT TO and its reply verbatim; the final reply to the message; nobody
    else's recipient."""
    check(f'C: RCPT TO:<{to}>' in t or f'C~ RCPT TO:<{to}>' in t, f'RCPT TO {to}: {t}')
    check(re.search(r'(?m)^S[:~] 250[ -]2\.1\.5', t), f'the RCPT reply: {t}')
    if chunking:
        check('CHUNKING' in t, t)
        check('C~ BDAT 0 LAST' in t, f'the BDAT: {t}')
        final = re.search(r'(?m)^S~ 250 2\.0\.0 .*queued as (\S+)', t)
        check(final, f'the final 250 to the message: {t}')
        if qid:
            eq(final.group(1), qid, t)
    else:
        check('~' not in t, f'no rebuilt lines without CHUNKING: {t}')
        check(re.search(r'(?m)^C: DATA\n(S: 354.*\n)?C: <message data, \d+ bytes>\nC: \.\nS: 250 ', t),
              f'DATA and the final 250: {t}')
        check(re.search(r'(?m)^C: QUIT\nS: 221', t), t)
    for o in others:
        check(o not in t, f'another notice\'s recipient {o} in this transcript: {t}')


def run_relay(smtp_conf, tos, typ, chunking, pf=None):
    s = Selo(smtp=smtp_conf, sender={'workers': '1', 'batch': '10'})
    try:
        s.start()
        ids = submit_batch(s, tos)
        for nid, to in zip(ids, tos):
            s.wait_status(nid, ['delivered', 'relayed'])
            e = accepted(s, nid, typ)
            eq(e['code'], 250, e)
            t = transcript_of(s, nid, e)
            check_whole_story(t, to, [o for o in tos if o != to], chunking, e.get('queue_id'))
            if pf:
                check(f"{e['queue_id']}: " in pf.log(), f'postfix logged {e["queue_id"]}')
    finally:
        s.cleanup()


TOS = [f'devedor{i}@destino.example' for i in range(3)]


def need_postfix():
    if not shutil.which('postfix'):
        raise Fail('postfix is not installed (scripts/install-deps.sh installs it)')


@test
def postfix_relay_with_chunking_whole_transcript():
    need_postfix()
    pf = Postfix()
    try:
        run_relay({'mode': 'relay', 'relay': f'127.0.0.1:{pf.port}', 'starttls': 'try',
                   'tls_verify': 'no'}, TOS, 'relay_accepted', True, pf)
    finally:
        pf.stop()


@test
def postfix_mx_with_chunking_whole_transcript():
    need_postfix()
    pf = Postfix()
    try:
        run_relay({'mode': 'mx', 'mx_override': f'destino.example=127.0.0.1:{pf.port}',
                   'starttls': 'require', 'tls_verify': 'no'}, TOS, 'delivery_accepted', True, pf)
    finally:
        pf.stop()


@test
def aiosmtpd_without_chunking_verbatim_transcript():
    sink = SMTPServer()
    try:
        run_relay({'mode': 'relay', 'relay': f'127.0.0.1:{sink.port}', 'starttls': 'no'},
                  TOS, 'relay_accepted', False)
        eq(len(sink.messages()), 3)
    finally:
        sink.stop()


@test
def postfix_rcpt_refused_with_chunking():
    """A refused recipient: its reply is in the transcript verbatim and no
    data is sent for it (libesmtp waits for the RCPT reply under CHUNKING)."""
    need_postfix()
    pf = Postfix(main_extra='virtual_mailbox_maps = inline:{ devedor0@destino.example=caixa/ }\n')
    s = Selo(smtp={'mode': 'relay', 'relay': f'127.0.0.1:{pf.port}', 'starttls': 'no'},
             sender={'workers': '1', 'batch': '10'})
    try:
        s.start()
        ids = submit_batch(s, ['devedor0@destino.example', 'ninguem@destino.example'])
        s.wait_status(ids[0], ['relayed'])
        j = s.wait_status(ids[1], ['failed', 'bounced'])
        ev = [e['entry'] for e in j['events'] if e['type'] in ('delivery_failed', 'bounced')]
        check(ev and ev[0].get('code') == 550, j)
        t = transcript_of(s, ids[1], ev[0])
        check('RCPT TO:<ninguem@destino.example>' in t and re.search(r'(?m)^S[:~] 550', t), t)
        check('BDAT 0 LAST' not in t, f'no data for a refused recipient: {t}')
        t0 = transcript_of(s, ids[0], accepted(s, ids[0], 'relay_accepted'))
        check_whole_story(t0, 'devedor0@destino.example', ['ninguem@'], True)
    finally:
        s.cleanup()
        pf.stop()


if __name__ == '__main__':
    main()
