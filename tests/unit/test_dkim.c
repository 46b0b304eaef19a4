/* test_dkim.c: DKIM signatures made by src/dkim.c with the keys from
 * keys_init verify with two independent implementations, libopendkim
 * (dkim_verify_with_keyfile) and dkimpy (Debian python3-dkim), for both
 * rsa-sha256 and ed25519-sha256, including the canonicalisation corner
 * cases; a changed body byte, Subject, or an added Subject breaks them.
 * Works in a mkdtemp directory under /tmp, removed after. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "selo/dkim.h"
#include "selo/fileio.h"
#include "selo/keys.h"
#include "t.h"
#include "t_run.h"

#define PY "/usr/bin/python3"

/* Folded headers, a header that is not signed, odd spacing in the body and
 * trailing empty lines: the cases relaxed canonicalisation is about. */
static const char MSG[] =
	"From: Selo Notices <notices@example.com>\r\n"
	"To: Maria Silva <maria@example.org>\r\n"
	"Subject: Aviso de cobranca:\r\n"
	"  parcela 3 de 12\r\n"
	"Date: Mon, 01 Dec 2025 10:00:00 +0000\r\n"
	"Message-ID: <01JDEMO@example.com>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: text/plain;\r\n"
	"\tcharset=us-ascii\r\n"
	"X-Selo-Notice: 01JDEMO\r\n"
	"\r\n"
	"Prezada Maria,\r\n"
	"\r\n"
	"the  amount   due is R$ 1.234,56.   \r\n"
	"Pay by 2025-12-10.\r\n"
	"\r\n"
	"\r\n";

struct fixture {
	char root[64];
	char keys[128];
	char keyfile[192]; /* libopendkim's DKIM_QUERY_FILE format */
	struct keys_report rep;
	struct dkim_signer *signer;
};


static int fixture_make(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "/tmp/selo-test-dkim-XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	snprintf(f->keys, sizeof(f->keys), "%s/keys", f->root);
	struct selo_err err = {0};
	if (keys_init(f->keys, "example.com", "notices@example.com", "example.com/selo", 0,
		      &f->rep, &err) != 0) {
		fprintf(stderr, "  keys_init: %s\n", err.msg);
		return -1;
	}
	struct buf kf = BUF_INIT;
	buf_printf(&kf, "selo._domainkey.example.com %s\nselo-ed25519._domainkey.example.com %s\n",
		   f->rep.dkim_rsa_txt, f->rep.dkim_ed25519_txt);
	snprintf(f->keyfile, sizeof(f->keyfile), "%s/dkim-keys.txt", f->root);
	int rc = file_write_atomic(f->keyfile, kf.data, kf.len, 0644, &err);
	buf_free(&kf);
	if (rc != 0)
		return -1;
	char rsa[256], ed[256];
	snprintf(rsa, sizeof(rsa), "%s/dkim-rsa.pem", f->keys);
	snprintf(ed, sizeof(ed), "%s/dkim-ed25519.pem", f->keys);
	if (dkim_signer_load("example.com", "selo", rsa, ed, &f->signer, &err) != 0) {
		fprintf(stderr, "  dkim_signer_load: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static void fixture_free(struct fixture *f)
{
	dkim_signer_free(f->signer);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	if (strncmp(f->root, "/tmp/selo-test-", 15) == 0 && system(cmd) != 0)
		fprintf(stderr, "  cannot remove %s\n", f->root);
}

/* The signed message: signature headers first, then msg. */
static int sign(struct fixture *f, const char *msg, struct buf *out)
{
	struct selo_err err = {0};
	if (dkim_sign_message(f->signer, msg, strlen(msg), out, &err) != 0) {
		fprintf(stderr, "  dkim_sign_message: %s\n", err.msg);
		return -1;
	}
	buf_puts(out, msg);
	return 0;
}

static int verify_count(const struct fixture *f, const char *msg)
{
	struct selo_err err = {0};
	int n = dkim_verify_with_keyfile(msg, strlen(msg), f->keyfile, &err);
	if (n < 0)
		fprintf(stderr, "  dkim_verify_with_keyfile: %s\n", err.msg);
	return n;
}

/* dkimpy's verdict on signature 0 and 1, e.g. "True True". Its DNS lookups
 * are answered from the .txt files keys_init wrote. */
static int dkimpy_verdicts(const struct fixture *f, const char *msg, struct buf *out)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/msg.eml", f->root);
	struct selo_err err;
	if (file_write_atomic(path, msg, strlen(msg), 0644, &err) != 0)
		return -1;
	static const char script[] =
		"import dkim, sys\n"
		"keys, msg = sys.argv[1], open(sys.argv[2], 'rb').read()\n"
		"txt = {b'selo._domainkey.example.com.': open(keys + '/dkim-rsa.txt', 'rb').read().strip(),\n"
		"       b'selo-ed25519._domainkey.example.com.': open(keys + '/dkim-ed25519.txt', 'rb').read().strip()}\n"
		"def dns(name, timeout=5):\n"
		"    return txt.get(name if name.endswith(b'.') else name + b'.')\n"
		"def ok(i):\n"
		"    try:\n"
		"        return dkim.DKIM(msg).verify(idx=i, dnsfunc=dns)\n"
		"    except dkim.ValidationError:\n" /* e.g. body hash mismatch */
		"        return False\n"
		"print(ok(0), ok(1))\n";
	char spath[256];
	snprintf(spath, sizeof(spath), "%s/verify.py", f->root);
	if (file_write_atomic(spath, script, strlen(script), 0644, &err) != 0)
		return -1;
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), PY " '%s' '%s' '%s'", spath, f->keys, path);
	return run(cmd, out);
}

static int max_line_len(const char *s, size_t n)
{
	int max = 0, col = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n') {
			col = 0;
			continue;
		}
		if (s[i] != '\r' && ++col > max)
			max = col;
	}
	return max;
}

TEST(signature_headers_have_the_promised_shape)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct buf sig = BUF_INIT;
	struct selo_err err = {0};
	CHECK(dkim_sign_message(f.signer, MSG, strlen(MSG), &sig, &err) == 0);
	const char *rsa = sig.data;
	const char *ed = strstr(buf_str(&sig) + 1, "\r\nDKIM-Signature: ");
	CHECK(rsa && strncmp(rsa, "DKIM-Signature: ", 16) == 0);
	CHECK(ed != NULL);
	if (!ed) {
		buf_free(&sig);
		fixture_free(&f);
		return;
	}
	ed += 2;
	CHECK(strstr(rsa, "a=rsa-sha256;") && strstr(rsa, "a=rsa-sha256;") < ed);
	CHECK(strstr(ed, "a=ed25519-sha256;") != NULL);
	CHECK(strstr(rsa, "s=selo;") && strstr(ed, "s=selo-ed25519;"));
	CHECK(strstr(rsa, "c=relaxed/relaxed;") && strstr(ed, "c=relaxed/relaxed;"));
	CHECK(strstr(rsa, "d=example.com;") != NULL);
	/* Every line ends in CRLF, continuation lines start with a tab, no
	 * line is long. */
	CHECK(sig.len > 2 && memcmp(sig.data + sig.len - 2, "\r\n", 2) == 0);
	for (const char *p = sig.data; (p = strchr(p, '\n')) != NULL; p++) {
		CHECK(p[-1] == '\r');
		CHECK(p[1] == '\0' || p[1] == '\t' || strncmp(p + 1, "DKIM-Signature: ", 16) == 0);
	}
	CHECK(max_line_len(sig.data, sig.len) <= 78);
	/* h= lists the signed headers, From, To and Subject once more
	 * (over-signed), and not the X- header. Unfold to read it. */
	struct buf flat = BUF_INIT;
	for (const char *p = sig.data; p < ed; p++)
		if (*p != '\r' && *p != '\n' && *p != '\t' && *p != ' ')
			buf_putc(&flat, *p);
	const char *h = strstr(buf_str(&flat), ";h="); /* not bh= */
	CHECK(h != NULL);
	if (h) {
		h++;
		char hl[512];
		size_t n = strcspn(h + 2, ";");
		snprintf(hl, sizeof(hl), "%.*s", (int)n, h + 2);
		for (char *c = hl; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		const char *want[] = {"from", "to", "subject", "date", "message-id", "mime-version",
				      "content-type"};
		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			char pat[64];
			snprintf(pat, sizeof(pat), ":%s:", want[i]);
			char padded[520];
			snprintf(padded, sizeof(padded), ":%s:", hl);
			CHECK(strstr(padded, pat) != NULL);
		}
		int from = 0, subj = 0, to = 0;
		for (char *tok = strtok(hl, ":"); tok; tok = strtok(NULL, ":")) {
			from += strcmp(tok, "from") == 0;
			to += strcmp(tok, "to") == 0;
			subj += strcmp(tok, "subject") == 0;
			CHECK(strcmp(tok, "x-selo-notice") != 0);
		}
		CHECK(from == 2 && to == 2 && subj == 2);
	}
	buf_free(&flat);
	buf_free(&sig);
	fixture_free(&f);
}

TEST(libopendkim_verifies_both_signatures)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct buf m = BUF_INIT;
	CHECK(sign(&f, MSG, &m) == 0);
	CHECK(verify_count(&f, m.data) == 2);
	/* Relaxed canonicalisation: whitespace changes in transit are fine. */
	struct buf ws = BUF_INIT;
	const char *p = strstr(buf_str(&m), "Pay by");
	buf_append(&ws, m.data, (size_t)(p - m.data));
	buf_puts(&ws, "Pay    by");
	buf_puts(&ws, p + 6);
	CHECK(verify_count(&f, ws.data) == 2);
	CHECK(verify_count(&f, MSG) == 0); /* no signature at all */
	buf_free(&ws);
	buf_free(&m);
	fixture_free(&f);
}

TEST(dkimpy_verifies_both_signatures)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct buf m = BUF_INIT, out = BUF_INIT;
	CHECK(sign(&f, MSG, &m) == 0);
	CHECK(dkimpy_verdicts(&f, m.data, &out) == 0);
	CHECK_STR(out.data, "True True\n");
	buf_free(&out);
	buf_free(&m);
	fixture_free(&f);
}

/* Replaces the first occurrence of from with to in s (same length). */
static void patch(struct buf *s, const char *from, const char *to)
{
	char *p = strstr(s->data, from);
	if (p)
		memcpy(p, to, strlen(to));
}

TEST(changes_break_the_signatures)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct buf m = BUF_INIT, out = BUF_INIT;
	CHECK(sign(&f, MSG, &m) == 0);

	struct buf body = BUF_INIT;
	buf_puts(&body, m.data);
	patch(&body, "1.234,56", "1.234,66");
	CHECK(verify_count(&f, body.data) == 0);
	CHECK(dkimpy_verdicts(&f, body.data, &out) == 0);
	CHECK_STR(out.data, "False False\n");

	struct buf subj = BUF_INIT;
	buf_puts(&subj, m.data);
	patch(&subj, "parcela 3", "parcela 4");
	CHECK(verify_count(&f, subj.data) == 0);
	buf_reset(&out);
	CHECK(dkimpy_verdicts(&f, subj.data, &out) == 0);
	CHECK_STR(out.data, "False False\n");

	/* Over-signing: a second Subject added anywhere breaks it too. */
	struct buf added = BUF_INIT;
	const char *x = strstr(buf_str(&m), "X-Selo-Notice:");
	buf_append(&added, m.data, (size_t)(x - m.data));
	buf_puts(&added, "Subject: Pague agora\r\n");
	buf_puts(&added, x);
	CHECK(verify_count(&f, added.data) == 0);
	buf_reset(&out);
	CHECK(dkimpy_verdicts(&f, added.data, &out) == 0);
	CHECK_STR(out.data, "False False\n");

	/* An unsigned header may change without harm. */
	struct buf xh = BUF_INIT;
	buf_puts(&xh, m.data);
	patch(&xh, "X-Selo-Notice: 01JDEMO", "X-Selo-Notice: 01JDEMX");
	CHECK(verify_count(&f, xh.data) == 2);
	buf_free(&xh);
	buf_free(&added);
	buf_free(&subj);
	buf_free(&body);
	buf_free(&out);
	buf_free(&m);
	fixture_free(&f);
}

/* Corner cases of relaxed canonicalisation and header selection; each
 * must satisfy both verifiers. */
TEST(corner_cases_verify_with_both_verifiers)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	const char *cases[] = {
		/* two To: headers: signed bottom-up, over-signed once more */
		"From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\nTo: c@example.org\r\n"
		"\r\nbody\r\n",
		/* WSP after the colon, tabs and runs of spaces, folding */
		"From: a@example.com\r\nSubject:\t  many   spaces\t\r\n\t and a fold  \r\n"
		"Date:Mon, 01 Dec 2025 10:00:00 +0000\r\n\r\n  leading and\ttabs\t \r\n",
		/* the body is only blank and whitespace lines */
		"From: a@example.com\r\nSubject: s\r\n\r\n\r\n   \r\n\t\r\n",
		/* an empty header value and no signed header but From */
		"From: a@example.com\r\nX-Empty:\r\n\r\nx\r\n",
		/* mixed-case names */
		"FROM: a@example.com\r\nsUbJeCt: s\r\nmime-version: 1.0\r\n\r\nx\r\n",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf m = BUF_INIT, out = BUF_INIT;
		CHECK(sign(&f, cases[i], &m) == 0);
		int n = verify_count(&f, m.data);
		CHECK(n == 2);
		CHECK(dkimpy_verdicts(&f, m.data, &out) == 0);
		CHECK_STR(out.data, "True True\n");
		if (n != 2 || strcmp(buf_str(&out), "True True\n") != 0)
			fprintf(stderr, "  case %zu:\n%s\n", i, m.data);
		buf_free(&out);
		buf_free(&m);
	}
	fixture_free(&f);
}

/* A body longer than the pieces the body hash is taken in (64 KiB), with
 * whitespace runs, blank lines inside and at the end, and a blank line
 * falling across a piece's edge: both verifiers agree with the signer. */
TEST(long_body_verifies_with_both_verifiers)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct buf msg = BUF_INIT, m = BUF_INIT, out = BUF_INIT;
	buf_puts(&msg, "From: a@example.com\r\nTo: b@example.org\r\nSubject: long\r\n\r\n");
	for (int i = 0; msg.len < 200000; i++) {
		buf_printf(&msg, "line %d\t with  runs   of\t\twhite space and text  \r\n", i);
		if (i % 7 == 0)
			buf_puts(&msg, " \t \r\n\r\n");
	}
	buf_puts(&msg, "\r\n  \r\n\t\r\n\r\n");
	CHECK(sign(&f, msg.data, &m) == 0);
	CHECK(verify_count(&f, m.data) == 2);
	CHECK(dkimpy_verdicts(&f, m.data, &out) == 0);
	CHECK_STR(out.data, "True True\n");
	buf_free(&out);
	buf_free(&m);
	buf_free(&msg);
	fixture_free(&f);
}

TEST(one_key_gives_one_signature)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	char ed[256];
	snprintf(ed, sizeof(ed), "%s/dkim-ed25519.pem", f.keys);
	struct dkim_signer *s = NULL;
	struct selo_err err = {0};
	CHECK(dkim_signer_load("example.com", "selo", NULL, ed, &s, &err) == 0);
	struct buf m = BUF_INIT;
	CHECK(s && dkim_sign_message(s, MSG, strlen(MSG), &m, &err) == 0);
	CHECK(strstr(buf_str(&m), "a=ed25519-sha256") && !strstr(buf_str(&m), "a=rsa-sha256"));
	buf_puts(&m, MSG);
	CHECK(verify_count(&f, m.data) == 1);
	dkim_signer_free(s);
	buf_free(&m);
	fixture_free(&f);
}

TEST(bad_inputs_are_refused_with_reasons)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	char rsa[256], ed[256];
	snprintf(rsa, sizeof(rsa), "%s/dkim-rsa.pem", f.keys);
	snprintf(ed, sizeof(ed), "%s/dkim-ed25519.pem", f.keys);
	struct dkim_signer *s = NULL;
	struct selo_err err = {0};
	CHECK(dkim_signer_load("example.com", "selo", NULL, NULL, &s, &err) == -1);
	err_clear(&err);
	CHECK(dkim_signer_load("example.com", "selo", ed, NULL, &s, &err) == -1);
	CHECK(strstr(err.msg, "RSA") != NULL && strstr(err.msg, "dkim-ed25519.pem") != NULL);
	err_clear(&err);
	CHECK(dkim_signer_load("example.com", "selo", NULL, rsa, &s, &err) == -1);
	CHECK(strstr(err.msg, "ED25519") != NULL);
	err_clear(&err);
	CHECK(dkim_signer_load("example.com", "bad selector", rsa, NULL, &s, &err) == -1);
	CHECK(strstr(err.msg, "selector") != NULL);
	err_clear(&err);
	CHECK(dkim_signer_load("exa mple.com", "selo", rsa, NULL, &s, &err) == -1);
	err_clear(&err);
	CHECK(dkim_signer_load("example.com", "selo", "/nonexistent.pem", NULL, &s, &err) == -1);
	CHECK(strstr(err.msg, "/nonexistent.pem") != NULL);
	CHECK(s == NULL);

	/* Messages must be CRLF with a header and a blank line. */
	const char *bad[] = {"From: a@example.com\nTo: b@example.org\n\nbody\n",
			     "From: a@example.com\r\nno blank line\r\n",
			     "\r\nbody only\r\n",
			     " From: a@example.com\r\n\r\nbody\r\n",
			     "From a@example.com\r\n\r\nbody\r\n",
			     /* verifiers disagree on these two, so they are refused */
			     "From : a@example.com\r\n\r\nbody\r\n",
			     "From: a@example.com\r\n\r\nno final CRLF",
			     "From: a@example.com\r\n\r\nbare\rCR\r\n",
			     "From: a@example.com\r\n\r\nbare\nLF\r\n"};
	struct buf out = BUF_INIT;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&err);
		CHECK(dkim_sign_message(f.signer, bad[i], strlen(bad[i]), &out, &err) == -1);
		CHECK(err.msg[0] != '\0');
		CHECK(out.len == 0);
	}
	/* The error names the first bad byte. */
	static const struct { const char *msg; size_t len; const char *at; } where[] = {
		{"From: a@example.com\r\n\r\nN\0L\r\n", 28, "at byte 24 "},
		{"From: a@example.com\r\n\r\nbare\rCR\r\n", 33, "at byte 27 "},
		{"From: a@example.com\r\n\r\nbare\nLF\r\n", 33, "at byte 27 "},
		{"From: a@example.com\r\n\r\nx\r", 25, "at byte 24 "},
		{"\nFrom: a@example.com\r\n\r\nx\r\n", 27, "at byte 0 "},
	};
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		err_clear(&err);
		CHECK(dkim_sign_message(f.signer, where[i].msg, where[i].len, &out, &err) == -1);
		CHECK(strstr(err.msg, where[i].at) != NULL);
		if (!strstr(err.msg, where[i].at))
			fprintf(stderr, "  case %zu: %s\n", i, err.msg);
	}
	/* An empty body is a valid message. */
	const char *empty = "From: a@example.com\r\nSubject: x\r\n\r\n";
	CHECK(dkim_sign_message(f.signer, empty, strlen(empty), &out, &err) == 0);
	buf_puts(&out, empty);
	CHECK(verify_count(&f, out.data) == 2);
	buf_free(&out);
	fixture_free(&f);
}

/* One signer, several threads (the sender workers). */
struct worker {
	struct fixture *f;
	int ok;
};

static void *sign_worker(void *arg)
{
	struct worker *w = arg;
	w->ok = 1;
	for (int i = 0; i < 5; i++) {
		struct buf m = BUF_INIT;
		if (sign(w->f, MSG, &m) != 0 || verify_count(w->f, m.data) != 2)
			w->ok = 0;
		buf_free(&m);
	}
	return NULL;
}

TEST(signer_is_shared_by_threads)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	pthread_t th[4];
	struct worker w[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){&f, 0};
		CHECK(pthread_create(&th[i], NULL, sign_worker, &w[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK(w[i].ok);
	}
	fixture_free(&f);
}
