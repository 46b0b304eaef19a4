/* test_tsa.c: RFC 3161 timestamps, checked by a third party (the openssl
 * CLI) and by tsa_verify_token. Local: a token over a digest verifies with
 * `openssl ts -verify` against keys/ca.crt, carries Selo's policy, a nonce,
 * accuracy and a genTime close to now; the offline verifier accepts it and
 * rejects another digest, a flipped byte, stray bytes, another CA, and a
 * signer without the timeStamping EKU; 4 threads share one tsa. Http:
 * tests/integration/tsaserver.py (fork/exec, "PORT n" on its first line)
 * signs with the TSA key from keys_init; every failure mode (server down,
 * late, rejecting, HTTP 500, garbage, wrong content type, a stale answer, a
 * TSA outside tsa.ca) is a quick 503 with a message naming it. Every server
 * started is killed by PID on every path. Works in mkdtemp directories under
 * /tmp, removed after; only 127.0.0.1 is contacted. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <openssl/pkcs7.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include "selo/codec.h"
#include "selo/config.h"
#include "selo/crypto.h"
#include "selo/fileio.h"
#include "selo/keys.h"
#include "selo/tsa.h"
#include "t.h"
#include "t_run.h"

#define SELO_POLICY "2.25.207994476491351263116839556265121365311"

struct fixture {
	char root[64];
	char keys[128];
	struct selo_config cfg;
	struct buf ca; /* keys/ca.crt */
};

/* ---- helpers ----------------------------------------------------------- */


static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int keys_make(const char *dir, const char *domain)
{
	struct keys_report rep;
	struct selo_err err = {0};
	if (keys_init(dir, domain, "notices@example.com", "example.com/selo", 0, &rep, &err) == 0)
		return 0;
	fprintf(stderr, "  keys_init: %s\n", err.msg);
	return -1;
}

static int fixture_make(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "/tmp/selo-test-tsa-XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	snprintf(f->keys, sizeof(f->keys), "%s/keys", f->root);
	config_defaults(&f->cfg, f->root);
	char path[256];
	snprintf(path, sizeof(path), "%s/ca.crt", f->keys);
	struct selo_err err;
	if (keys_make(f->keys, "example.com") != 0 || file_read(path, 1 << 20, &f->ca, &err) != 0)
		return -1;
	return 0;
}

static void fixture_free(struct fixture *f)
{
	buf_free(&f->ca);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	if (strncmp(f->root, "/tmp/selo-test-", 15) == 0 && system(cmd) != 0)
		fprintf(stderr, "  cannot remove %s\n", f->root);
}

static int write_file(const struct fixture *f, const char *name, const void *p, size_t n)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", f->root, name);
	struct selo_err err;
	return file_write_atomic(path, p, n, 0644, &err);
}

/* openssl ts -verify of root/name over digest against CA file ca (relative
 * to root). Returns openssl's exit status; its output in out if given. */
static int openssl_verify(const struct fixture *f, const char *name, const uint8_t digest[32],
			  const char *ca, struct buf *out)
{
	char hex[65], cmd[1024];
	hex_encode(digest, 32, hex);
	snprintf(cmd, sizeof(cmd), "cd '%s' && openssl ts -verify -token_in -in %s -digest %s "
		 "-CAfile %s", f->root, name, hex, ca);
	return run(cmd, out);
}

static void digest_of(const char *s, uint8_t d[32])
{
	sha256(s, strlen(s), d);
}

/* ---- the test TSA server ----------------------------------------------- */

struct server {
	pid_t pid;
	int fd;   /* its stdout */
	int port;
};

/* Starts tsaserver.py signing with keys_dir's TSA key; extra: more options
 * separated by single spaces (or NULL). */
static int server_start(struct server *sv, const char *keys_dir, const char *extra)
{
	char key[256], crt[256], ca[256], more[256] = "";
	snprintf(key, sizeof(key), "%s/tsa.pem", keys_dir);
	snprintf(crt, sizeof(crt), "%s/tsa.crt", keys_dir);
	snprintf(ca, sizeof(ca), "%s/ca.crt", keys_dir);
	const char *argv[24] = {"/usr/bin/python3", "tests/integration/tsaserver.py", "--key", key,
				"--cert", crt, "--chain", ca};
	int argc = 8;
	if (extra) {
		snprintf(more, sizeof(more), "%s", extra);
		for (char *save = NULL, *tok = strtok_r(more, " ", &save); tok && argc < 22;
		     tok = strtok_r(NULL, " ", &save))
			argv[argc++] = tok;
	}
	int p[2];
	memset(sv, 0, sizeof(*sv));
	sv->pid = -1;
	if (pipe(p) != 0)
		return -1;
	fflush(NULL);
	sv->pid = fork();
	if (sv->pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	sv->fd = p[0];
	if (sv->pid < 0)
		return -1;
	char line[64] = "";
	size_t n = 0;
	double deadline = mono_s() + 15;
	while (n + 1 < sizeof(line) && !strchr(line, '\n') && mono_s() < deadline) {
		struct pollfd pf = {sv->fd, POLLIN, 0};
		if (poll(&pf, 1, 200) <= 0)
			continue;
		ssize_t r = read(sv->fd, line + n, sizeof(line) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		line[n] = '\0';
	}
	if (sscanf(line, "PORT %d", &sv->port) != 1) {
		fprintf(stderr, "  tsaserver did not say its port: \"%s\"\n", line);
		return -1;
	}
	return 0;
}

/* SIGTERM, then SIGKILL after 5 s; always reaps. */
static void server_stop(struct server *sv)
{
	if (sv->pid > 0) {
		kill(sv->pid, SIGTERM);
		int st;
		double deadline = mono_s() + 5;
		while (waitpid(sv->pid, &st, WNOHANG) == 0) {
			if (mono_s() > deadline) {
				kill(sv->pid, SIGKILL);
				waitpid(sv->pid, &st, 0);
				break;
			}
			usleep(20000);
		}
	}
	if (sv->fd > 0)
		close(sv->fd);
	sv->pid = -1;
	sv->fd = -1;
}

/* A port on 127.0.0.1 that nobody listens on (bound, then released). */
static int unused_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	int port = -1;
	if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(s, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (s >= 0)
		close(s);
	return port;
}

/* Opens an http tsa on port with tsa.ca = keys/ca.crt (relative to the
 * data directory on purpose). */
static int http_open(struct fixture *f, int port, int timeout_ms, struct tsa **t)
{
	snprintf(f->cfg.tsa_url, sizeof(f->cfg.tsa_url), "http://127.0.0.1:%d/", port);
	snprintf(f->cfg.tsa_ca, sizeof(f->cfg.tsa_ca), "keys/ca.crt");
	f->cfg.tsa_timeout_ms = timeout_ms;
	struct selo_err err = {0};
	if (tsa_open(&f->cfg, t, &err) == 0)
		return 0;
	fprintf(stderr, "  tsa_open: %s\n", err.msg);
	return -1;
}

/* One timestamp that must fail: 503, a message containing want (and want2
 * if given), within max_s seconds. */
static void expect_503(struct tsa *t, const char *want, const char *want2, double max_s)
{
	uint8_t d[32], *der = NULL;
	size_t len = 0;
	int64_t when = 0;
	struct selo_err err = {0};
	digest_of("expect failure", d);
	double t0 = mono_s();
	CHECK(tsa_timestamp(t, d, &der, &len, &when, &err) == -1);
	double took = mono_s() - t0;
	CHECK(der == NULL && len == 0);
	CHECK(err.status == 503);
	CHECK_STR(err.type, "tsa-unavailable");
	CHECK(strstr(err.msg, want) != NULL);
	CHECK(!want2 || strstr(err.msg, want2) != NULL);
	CHECK(took < max_s);
	if (!strstr(err.msg, want) || (want2 && !strstr(err.msg, want2)) || took >= max_s)
		fprintf(stderr, "  got (%.2f s): %s\n", took, err.msg);
	free(der);
}

/* Starts a server with extra options, opens a client on it, expects the
 * failure, and cleans up. */
static void http_failure_case(const char *keys_of_server, const char *extra, int timeout_ms,
			      const char *want, const char *want2, double max_s)
{
	struct fixture f;
	struct server sv = {.pid = -1, .fd = -1};
	struct tsa *t = NULL;
	CHECK(fixture_make(&f) == 0);
	const char *keys = keys_of_server ? keys_of_server : f.keys;
	CHECK(server_start(&sv, keys, extra) == 0);
	if (sv.port > 0 && http_open(&f, sv.port, timeout_ms, &t) == 0)
		expect_503(t, want, want2, max_s);
	else
		CHECK(0);
	tsa_close(t);
	server_stop(&sv);
	fixture_free(&f);
}

/* Where a DER object sits inside the token. */
struct region {
	size_t off, len;
};

static int region_find(const uint8_t *der, size_t len, const unsigned char *obj, int n,
		       struct region *r)
{
	const uint8_t *at = n > 0 ? memmem(der, len, obj, (size_t)n) : NULL;
	if (!at)
		return 0;
	r->off = (size_t)(at - der);
	r->len = (size_t)n;
	return 1;
}

/* The parts of a token its signatures cover, plus the signature value. */
static int covered_regions(const uint8_t *der, size_t len, struct region *r, int cap)
{
	const unsigned char *p = der;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)len);
	TS_TST_INFO *tst = p7 ? PKCS7_to_TS_TST_INFO(p7) : NULL;
	if (!tst) {
		PKCS7_free(p7);
		return 0;
	}
	int nr = 0;
	unsigned char *enc = NULL;
	int n = i2d_TS_TST_INFO(tst, &enc);
	nr += region_find(der, len, enc, n, &r[nr]);
	OPENSSL_free(enc);
	enc = NULL;
	n = i2d_X509(sk_X509_value(p7->d.sign->cert, 0), &enc);
	nr += region_find(der, len, enc, n, &r[nr]);
	OPENSSL_free(enc);
	PKCS7_SIGNER_INFO *si = sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(p7), 0);
	for (int i = 0; i < sk_X509_ATTRIBUTE_num(si->auth_attr) && nr + 1 < cap; i++) {
		enc = NULL;
		n = i2d_X509_ATTRIBUTE(sk_X509_ATTRIBUTE_value(si->auth_attr, i), &enc);
		nr += region_find(der, len, enc, n, &r[nr]);
		OPENSSL_free(enc);
	}
	nr += region_find(der, len, ASN1_STRING_get0_data(si->enc_digest),
			  ASN1_STRING_length(si->enc_digest), &r[nr]);
	TS_TST_INFO_free(tst);
	PKCS7_free(p7);
	return nr;
}

/* ---- local ------------------------------------------------------------- */

TEST(local_token_verifies_with_openssl)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct tsa *t = NULL;
	struct selo_err err = {0};
	CHECK(tsa_open(&f.cfg, &t, &err) == 0);
	if (!t) {
		fprintf(stderr, "  %s\n", err.msg);
		fixture_free(&f);
		return;
	}
	CHECK_STR(tsa_kind(t), "local");
	uint8_t d[32], *der = NULL;
	size_t len = 0;
	int64_t when = 0, before = now_ms();
	digest_of("checkpoint 42", d);
	CHECK(tsa_timestamp(t, d, &der, &len, &when, &err) == 0);
	CHECK(der && len > 500 && len < 8192);
	CHECK(when >= before - 1000 && when <= now_ms() + 1000);
	CHECK(write_file(&f, "tok.der", der, len) == 0);

	struct buf out = BUF_INIT;
	CHECK(openssl_verify(&f, "tok.der", d, "keys/ca.crt", &out) == 0);
	CHECK(strstr(buf_str(&out), "Verification: OK") != NULL);
	buf_reset(&out);
	uint8_t other[32];
	digest_of("checkpoint 43", other);
	CHECK(openssl_verify(&f, "tok.der", other, "keys/ca.crt", &out) != 0);

	/* What is inside, as openssl prints it. */
	char cmd[512];
	buf_reset(&out);
	snprintf(cmd, sizeof(cmd), "cd '%s' && openssl ts -reply -token_in -in tok.der -text",
		 f.root);
	CHECK(run(cmd, &out) == 0);
	const char *txt = buf_str(&out);
	CHECK(strstr(txt, "Policy OID: " SELO_POLICY) != NULL);
	CHECK(strstr(txt, "Hash Algorithm: sha256") != NULL);
	CHECK(strstr(txt, "Accuracy: 0x01 seconds") != NULL);
	CHECK(strstr(txt, "Nonce: 0x") != NULL);
	CHECK(strstr(txt, "TSA: DirName:") && strstr(txt, "Selo TSA (example.com)"));
	const char *serial = strstr(txt, "Serial number: 0x");
	CHECK(serial && strcspn(serial + 17, "\n") >= 24); /* 128 random bits */
	buf_free(&out);
	free(der);
	tsa_close(t);
	fixture_free(&f);
}

TEST(local_genTime_has_milliseconds)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct tsa *t = NULL;
	struct selo_err err = {0};
	CHECK(tsa_open(&f.cfg, &t, &err) == 0);
	int with_ms = 0;
	for (int i = 0; t && i < 5; i++) {
		uint8_t d[32], *der = NULL;
		size_t len;
		int64_t when = 0, before = now_ms();
		digest_of("ms", d);
		CHECK(tsa_timestamp(t, d, &der, &len, &when, &err) == 0);
		int64_t after = now_ms();
		CHECK(when >= before - 5 && when <= after + 5);
		with_ms += when % 1000 != 0;
		free(der);
	}
	CHECK(with_ms > 0);
	tsa_close(t);
	fixture_free(&f);
}

TEST(local_offline_verify_accepts_and_rejects)
{
	struct fixture f, g;
	CHECK(fixture_make(&f) == 0);
	CHECK(fixture_make(&g) == 0); /* a second, unrelated CA */
	struct tsa *t = NULL;
	struct selo_err err = {0};
	CHECK(tsa_open(&f.cfg, &t, &err) == 0);
	uint8_t d[32], *der = NULL;
	size_t len = 0;
	int64_t when = 0, seen = 0;
	char name[256];
	digest_of("notice 7", d);
	CHECK(t && tsa_timestamp(t, d, &der, &len, &when, &err) == 0);
	if (!der) {
		tsa_close(t);
		fixture_free(&f);
		fixture_free(&g);
		return;
	}
	CHECK(tsa_verify_token(der, len, d, f.ca.data, f.ca.len, NULL, 0, &seen, name,
			       sizeof(name), &err) == 0);
	CHECK(seen == when);
	CHECK_STR(name, "O=Selo,CN=Selo TSA (example.com)");

	/* Another digest. */
	uint8_t other[32];
	digest_of("notice 8", other);
	err_clear(&err);
	CHECK(tsa_verify_token(der, len, other, f.ca.data, f.ca.len, NULL, 0, &seen, name,
			       sizeof(name), &err) == -1);
	CHECK(err.status == 422 && strstr(err.msg, "different digest"));

	/* A flipped bit in any byte the signatures cover (the TSTInfo, the
	 * signed attributes, the TSA certificate) or in the signature value:
	 * never accepted. (Like any CMS, a few encoding fields outside them,
	 * such as version numbers, are not covered; docs/tsa.md.) */
	struct region r[16];
	int nr = covered_regions(der, len, r, 16);
	CHECK(nr >= 6);
	size_t flips = 0;
	for (int i = 0; i < nr; i++)
		for (size_t at = r[i].off; at < r[i].off + r[i].len; at++, flips++) {
			der[at] ^= 0x01;
			err_clear(&err);
			if (tsa_verify_token(der, len, d, f.ca.data, f.ca.len, NULL, 0, &seen, name,
					     sizeof(name), &err) == 0 || err.status != 422) {
				fprintf(stderr, "  flipped byte %zu of %zu accepted\n", at, len);
				CHECK(0);
			}
			der[at] ^= 0x01;
		}
	CHECK(flips > len / 2);
	der[len - 1] ^= 0x80; /* inside the signature value */
	err_clear(&err);
	CHECK(tsa_verify_token(der, len, d, f.ca.data, f.ca.len, NULL, 0, &seen, name,
			       sizeof(name), &err) == -1);
	der[len - 1] ^= 0x80;

	/* Another CA. */
	err_clear(&err);
	CHECK(tsa_verify_token(der, len, d, g.ca.data, g.ca.len, NULL, 0, &seen, name,
			       sizeof(name), &err) == -1);
	CHECK(err.status == 422 && strstr(err.msg, "does not chain"));

	/* Stray bytes after the DER. */
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, der, len);
	longer[len] = 0;
	err_clear(&err);
	CHECK(tsa_verify_token(longer, len + 1, d, f.ca.data, f.ca.len, NULL, 0, &seen, name,
			       sizeof(name), &err) == -1);
	CHECK(strstr(err.msg, "stray"));
	free(longer);

	/* Not a token; no CA. */
	err_clear(&err);
	CHECK(tsa_verify_token((const uint8_t *)"hello", 5, d, f.ca.data, f.ca.len, NULL, 0, &seen,
			       name, sizeof(name), &err) == -1);
	CHECK(err.status == 422);
	err_clear(&err);
	CHECK(tsa_verify_token(der, len, d, "", 0, NULL, 0, &seen, name, sizeof(name), &err) ==
	      -1);
	CHECK(err.status == 400);
	free(der);
	tsa_close(t);
	fixture_free(&f);
	fixture_free(&g);
}

TEST(local_certs_pem_is_tsa_then_ca)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct tsa *t = NULL;
	struct selo_err err = {0};
	CHECK(tsa_open(&f.cfg, &t, &err) == 0);
	struct buf certs = BUF_INIT, tsacrt = BUF_INIT;
	char path[256];
	snprintf(path, sizeof(path), "%s/tsa.crt", f.keys);
	CHECK(file_read(path, 1 << 20, &tsacrt, &err) == 0);
	CHECK(t && tsa_certs_pem(t, &certs, &err) == 2);
	const char *first = buf_str(&certs);
	const char *second = certs.len ? first + strlen(first) + 1 : "";
	CHECK_STR(first, buf_str(&tsacrt));
	CHECK_STR(second, buf_str(&f.ca));
	CHECK(certs.len == strlen(first) + 1 + strlen(second) + 1);

	/* The chain of one token says the same. */
	uint8_t d[32], *der = NULL;
	size_t len = 0;
	int64_t when;
	digest_of("chain", d);
	CHECK(t && tsa_timestamp(t, d, &der, &len, &when, &err) == 0);
	struct buf chain = BUF_INIT;
	CHECK(tsa_token_chain_pem(der, len, f.ca.data, f.ca.len, &chain, &err) == 2);
	CHECK(chain.len == certs.len && memcmp(chain.data, certs.data, certs.len) == 0);
	buf_reset(&chain);
	CHECK(t && tsa_token_certs_pem(t, der, len, &chain, &err) == 2);
	CHECK(chain.len == certs.len && memcmp(chain.data, certs.data, certs.len) == 0);
	buf_free(&chain);
	/* The NUL-separated list is accepted as PEM input: as untrusted
	 * certificates, and with only its root (the last text) as the CA. */
	int64_t seen;
	CHECK(tsa_verify_token(der, len, d, f.ca.data, f.ca.len, certs.data, certs.len, &seen, NULL,
			       0, &err) == 0);
	CHECK(tsa_verify_token(der, len, d, second, strlen(second), certs.data, certs.len, &seen,
			       NULL, 0, &err) == 0);
	buf_free(&certs);
	buf_free(&tsacrt);
	free(der);
	tsa_close(t);
	fixture_free(&f);
}

/* A token whose signer is the S/MIME certificate (EKU emailProtection): the
 * same TSTInfo re-signed with openssl cms. The control, re-signed with the
 * TSA certificate the same way, is accepted. */
TEST(signer_needs_timestamping_eku)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct tsa *t = NULL;
	struct selo_err err = {0};
	CHECK(tsa_open(&f.cfg, &t, &err) == 0);
	uint8_t d[32], *der = NULL;
	size_t len = 0;
	int64_t when;
	digest_of("eku", d);
	CHECK(t && tsa_timestamp(t, d, &der, &len, &when, &err) == 0);
	CHECK(der && write_file(&f, "tok.der", der, len) == 0);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && openssl cms -verify -noverify -inform DER -in tok.der -out tst.der && "
		 "for who in tsa smime; do openssl cms -sign -binary -nodetach -cades -md sha256 "
		 "-nosmimecap -econtent_type id-smime-ct-TSTInfo -in tst.der -signer keys/$who.crt "
		 "-inkey keys/$who.pem -outform DER -out resigned-$who.der || exit 1; done", f.root);
	CHECK(run(cmd, NULL) == 0);
	const char *names[] = {"resigned-tsa.der", "resigned-smime.der"};
	for (int i = 0; i < 2; i++) {
		char path[256];
		snprintf(path, sizeof(path), "%s/%s", f.root, names[i]);
		struct buf tok = BUF_INIT;
		CHECK(file_read(path, 1 << 20, &tok, &err) == 0);
		int64_t seen;
		char name[256];
		err_clear(&err);
		int rc = tsa_verify_token((const uint8_t *)tok.data, tok.len, d, f.ca.data, f.ca.len,
					  NULL, 0, &seen, name, sizeof(name), &err);
		CHECK(rc == (i == 0 ? 0 : -1));
		if (i == 1)
			CHECK(strstr(err.msg, "timeStamping") && strstr(err.msg, "purpose"));
		CHECK((openssl_verify(&f, names[i], d, "keys/ca.crt", NULL) == 0) == (i == 0));
		buf_free(&tok);
	}
	free(der);
	tsa_close(t);
	fixture_free(&f);
}

struct worker {
	struct tsa *t;
	const struct buf *ca;
	int id, n, ok;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < w->n; i++) {
		char text[64];
		snprintf(text, sizeof(text), "thread %d stamp %d", w->id, i);
		uint8_t d[32], *der = NULL;
		size_t len = 0;
		int64_t when = 0, seen = 0;
		struct selo_err err = {0};
		digest_of(text, d);
		if (tsa_timestamp(w->t, d, &der, &len, &when, &err) == 0 &&
		    tsa_verify_token(der, len, d, w->ca->data, w->ca->len, NULL, 0, &seen, NULL, 0,
				     &err) == 0 && seen == when)
			w->ok++;
		else
			fprintf(stderr, "  thread %d: %s\n", w->id, err.msg);
		free(der);
	}
	return NULL;
}

/* 4 threads x n stamps on t, each verified offline; how many passed. */
static int stamp_in_threads(struct tsa *t, const struct buf *ca, int n)
{
	struct worker w[4];
	pthread_t th[4];
	int started = 0, total = 0;
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){.t = t, .ca = ca, .id = i, .n = n};
		if (pthread_create(&th[i], NULL, worker_run, &w[i]) == 0)
			started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		total += w[i].ok;
	}
	return total;
}

TEST(local_four_threads_share_one_tsa)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct tsa *t = NULL;
	struct selo_err err = {0};
	CHECK(tsa_open(&f.cfg, &t, &err) == 0);
	CHECK(t && stamp_in_threads(t, &f.ca, 20) == 80);
	tsa_close(t);
	fixture_free(&f);
}

TEST(local_open_fails_without_keys)
{
	struct selo_config cfg;
	config_defaults(&cfg, "/nonexistent/selo");
	struct tsa *t = (struct tsa *)&cfg;
	struct selo_err err = {0};
	CHECK(tsa_open(&cfg, &t, &err) == -1);
	CHECK(t == NULL);
	CHECK(err.status == 500 && strstr(err.msg, "tsa.pem") && strstr(err.msg, "selo init"));
}

TEST(local_open_fails_on_foreign_ca)
{
	struct fixture f, g;
	CHECK(fixture_make(&f) == 0);
	CHECK(fixture_make(&g) == 0);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "cp '%s/ca.crt' '%s/ca.crt'", g.keys, f.keys);
	CHECK(system(cmd) == 0);
	struct tsa *t = NULL;
	struct selo_err err = {0};
	CHECK(tsa_open(&f.cfg, &t, &err) == -1);
	CHECK(err.status == 500 && strstr(err.msg, "self-test"));
	tsa_close(t);
	fixture_free(&f);
	fixture_free(&g);
}

/* ---- http -------------------------------------------------------------- */

TEST(http_token_verifies_with_openssl)
{
	struct fixture f;
	struct server sv = {.pid = -1, .fd = -1};
	struct tsa *t = NULL;
	CHECK(fixture_make(&f) == 0);
	CHECK(server_start(&sv, f.keys, NULL) == 0);
	CHECK(sv.port > 0 && http_open(&f, sv.port, 5000, &t) == 0);
	if (t) {
		CHECK_STR(tsa_kind(t), "http");
		uint8_t d[32], *der = NULL;
		size_t len = 0;
		int64_t when = 0, before = now_ms();
		struct selo_err err = {0};
		digest_of("over http", d);
		CHECK(tsa_timestamp(t, d, &der, &len, &when, &err) == 0);
		if (!der)
			fprintf(stderr, "  %s\n", err.msg);
		/* openssl ts -reply writes whole seconds. */
		CHECK(when >= before - 2000 && when <= now_ms() + 2000);
		CHECK(der && write_file(&f, "tok.der", der, len) == 0);
		CHECK(openssl_verify(&f, "tok.der", d, "keys/ca.crt", NULL) == 0);
		int64_t seen;
		char name[256];
		CHECK(tsa_verify_token(der, len, d, f.ca.data, f.ca.len, NULL, 0, &seen, name,
				       sizeof(name), &err) == 0);
		CHECK(seen == when);
		struct buf certs = BUF_INIT;
		CHECK(tsa_certs_pem(t, &certs, &err) == 2);
		CHECK(strstr(buf_str(&certs), "BEGIN CERTIFICATE"));
		buf_free(&certs);
		free(der);
	}
	tsa_close(t);
	server_stop(&sv);
	fixture_free(&f);
}

TEST(http_four_threads_share_one_tsa)
{
	struct fixture f;
	struct server sv = {.pid = -1, .fd = -1};
	struct tsa *t = NULL;
	CHECK(fixture_make(&f) == 0);
	CHECK(server_start(&sv, f.keys, NULL) == 0);
	CHECK(sv.port > 0 && http_open(&f, sv.port, 10000, &t) == 0);
	CHECK(t && stamp_in_threads(t, &f.ca, 5) == 20);
	struct buf certs = BUF_INIT;
	struct selo_err err = {0};
	CHECK(t && tsa_certs_pem(t, &certs, &err) == 2);
	buf_free(&certs);
	tsa_close(t);
	server_stop(&sv);
	fixture_free(&f);
}

TEST(http_certs_pem_before_any_token)
{
	struct fixture f;
	struct server sv = {.pid = -1, .fd = -1};
	struct tsa *t = NULL;
	CHECK(fixture_make(&f) == 0);
	CHECK(server_start(&sv, f.keys, NULL) == 0);
	CHECK(sv.port > 0 && http_open(&f, sv.port, 5000, &t) == 0);
	struct buf certs = BUF_INIT;
	struct selo_err err = {0};
	CHECK(t && tsa_certs_pem(t, &certs, &err) == 2);
	const char *second = certs.len ? certs.data + strlen(certs.data) + 1 : "";
	CHECK_STR(second, buf_str(&f.ca));
	buf_free(&certs);
	tsa_close(t);
	server_stop(&sv);
	fixture_free(&f);
}

TEST(http_server_down_is_503_quickly)
{
	struct fixture f;
	struct tsa *t = NULL;
	CHECK(fixture_make(&f) == 0);
	int port = unused_port();
	CHECK(port > 0 && http_open(&f, port, 5000, &t) == 0);
	if (t)
		expect_503(t, "unreachable", "tsa.url", 2.0);
	tsa_close(t);
	fixture_free(&f);
}

TEST(http_late_answer_is_503_at_timeout)
{
	http_failure_case(NULL, "--delay 3", 400, "did not answer within 400 ms", NULL, 2.0);
}

TEST(http_rejection_names_the_status)
{
	http_failure_case(NULL, "--status-fail", 5000, "refused to timestamp: status rejection",
			  "badAlg", 10.0);
}

TEST(http_status_500_is_503)
{
	http_failure_case(NULL, "--http-status 500", 5000, "answered HTTP 500", NULL, 10.0);
	http_failure_case(NULL, "--http-status 302", 5000, "answered HTTP 302",
			  "redirects are not followed", 10.0);
}

TEST(http_garbage_is_503)
{
	http_failure_case(NULL, "--garbage", 5000, "not an RFC 3161 TimeStampResp", NULL, 10.0);
}

TEST(http_wrong_content_type_is_503)
{
	http_failure_case(NULL, "--content-type text/html", 5000, "Content-Type \"text/html\"",
			  NULL, 10.0);
}

TEST(http_token_from_another_ca_is_503)
{
	struct fixture other;
	CHECK(fixture_make(&other) == 0);
	http_failure_case(other.keys, NULL, 5000, "token rejected", "does not chain", 10.0);
	fixture_free(&other);
}

/* The server answers every request with its first reply. */
TEST(http_stale_answer_is_503)
{
	struct fixture f;
	struct server sv = {.pid = -1, .fd = -1};
	struct tsa *t = NULL;
	CHECK(fixture_make(&f) == 0);
	CHECK(server_start(&sv, f.keys, "--replay") == 0);
	CHECK(sv.port > 0 && http_open(&f, sv.port, 5000, &t) == 0);
	uint8_t d[32], *der = NULL;
	size_t len = 0;
	int64_t when;
	struct selo_err err = {0};
	digest_of("expect failure", d);
	CHECK(t && tsa_timestamp(t, d, &der, &len, &when, &err) == 0);
	free(der);
	/* Same digest again: only the nonce tells. */
	if (t)
		expect_503(t, "nonce", NULL, 10.0);
	digest_of("another", d);
	der = NULL;
	err_clear(&err);
	CHECK(t && tsa_timestamp(t, d, &der, &len, &when, &err) == -1);
	CHECK(err.status == 503 && strstr(err.msg, "different digest"));
	free(der);
	tsa_close(t);
	server_stop(&sv);
	fixture_free(&f);
}

TEST(http_open_checks_config)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct tsa *t = NULL;
	struct selo_err err = {0};
	snprintf(f.cfg.tsa_url, sizeof(f.cfg.tsa_url), "ftp://127.0.0.1/");
	snprintf(f.cfg.tsa_ca, sizeof(f.cfg.tsa_ca), "keys/ca.crt");
	CHECK(tsa_open(&f.cfg, &t, &err) == -1);
	CHECK(err.status == 500 && strstr(err.msg, "http://"));
	snprintf(f.cfg.tsa_url, sizeof(f.cfg.tsa_url), "http://127.0.0.1:9/");
	snprintf(f.cfg.tsa_ca, sizeof(f.cfg.tsa_ca), "keys/missing.crt");
	err_clear(&err);
	CHECK(tsa_open(&f.cfg, &t, &err) == -1);
	CHECK(err.status == 500 && strstr(err.msg, "missing.crt"));
	snprintf(f.cfg.tsa_ca, sizeof(f.cfg.tsa_ca), "keys/tsa.pem"); /* no certificate */
	err_clear(&err);
	CHECK(tsa_open(&f.cfg, &t, &err) == -1);
	CHECK(err.status == 500 && strstr(err.msg, "no PEM certificate"));
	f.cfg.tsa_ca[0] = '\0';
	err_clear(&err);
	CHECK(tsa_open(&f.cfg, &t, &err) == -1);
	CHECK(err.status == 500 && strstr(err.msg, "tsa.ca"));
	/* An absolute tsa.ca works as well. */
	snprintf(f.cfg.tsa_ca, sizeof(f.cfg.tsa_ca), "%s/ca.crt", f.keys);
	CHECK(tsa_open(&f.cfg, &t, &err) == 0);
	tsa_close(t);
	fixture_free(&f);
}
