/* test_core.c: unit tests of the small shared modules (buf's allocators,
 * codec, id, clock, event, config, diag's limiters) and of the submission validator (notice)
 * and backoff. */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/codec.h"
#include "selo/config.h"
#include "selo/crypto.h"
#include "selo/diag.h"
#include "selo/event.h"
#include "selo/fileio.h"
#include "selo/id.h"
#include "selo/notice.h"
#include "selo/sender.h"
#include "t.h"
#include "t_stderr.h"

TEST(base64_rfc4648_vectors)
{
	static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (int i = 0; i < 7; i++) {
		struct buf b = BUF_INIT;
		base64_encode(&b, (const uint8_t *)in[i], strlen(in[i]), 0);
		CHECK_STR(buf_str(&b), out[i]);
		uint8_t d[16];
		ssize_t n = base64_decode(out[i], strlen(out[i]), d, sizeof(d));
		CHECK(n == (ssize_t)strlen(in[i]) && !memcmp(d, in[i], (size_t)n));
		buf_free(&b);
	}
	uint8_t d[16];
	CHECK(base64_decode("Zg=", 3, d, sizeof(d)) < 0);
	CHECK(base64_decode("Zh==", 4, d, sizeof(d)) < 0); /* non-zero trailing bits */
	CHECK(base64_decode("Zm9v\r\n", 6, d, sizeof(d)) < 0);
	CHECK(base64_decode_mime("Zm9v\r\nYmFy", 10, d, sizeof(d)) == 6);
	CHECK(base64_decode("Zm=v", 4, d, sizeof(d)) < 0);
	CHECK(base64_decode("Zm9vYmFy", 8, d, 5) < 0); /* no room */
}

TEST(base64_line_wrapping)
{
	uint8_t raw[100];
	memset(raw, 0xAB, sizeof(raw));
	struct buf b = BUF_INIT;
	base64_encode(&b, raw, sizeof(raw), 76);
	const char *nl = strstr(buf_str(&b), "\r\n");
	CHECK(nl && nl - b.data == 76);
	uint8_t back[100];
	CHECK(base64_decode_mime(b.data, b.len, back, sizeof(back)) == 100);
	CHECK(!memcmp(back, raw, 100));
	buf_free(&b);
}

TEST(base64url_and_hex)
{
	struct buf b = BUF_INIT;
	const uint8_t v[] = {0xfb, 0xff};
	base64url_encode(&b, v, 2);
	CHECK_STR(buf_str(&b), "-_8");
	uint8_t d[4];
	CHECK(base64url_decode("-_8", 3, d, 4) == 2 && d[0] == 0xfb && d[1] == 0xff);
	CHECK(base64url_decode("+/8", 3, d, 4) < 0);
	char hex[5];
	hex_encode(v, 2, hex);
	CHECK_STR(hex, "fbff");
	CHECK(hex_decode("FBff", 4, d, 4) == 2 && d[0] == 0xfb);
	CHECK(hex_decode("fg", 2, d, 4) < 0);
	buf_free(&b);
}

/* buf.h's allocators: copies as strdup/strndup, a zero size still gives
 * memory to free, and a size that overflows aborts (the memory policy)
 * instead of returning NULL. */
TEST(x_allocators)
{
	char *s = xstrdup("selo");
	CHECK_STR(s, "selo");
	free(s);
	s = xstrndup("selo", 2);
	CHECK_STR(s, "se");
	free(s);
	s = xstrndup("se", 10);
	CHECK_STR(s, "se");
	free(s);
	int *v = xreallocarray(NULL, 0, sizeof(*v));
	v = xreallocarray(v, 4, sizeof(*v));
	v[3] = 7;
	free(v);
	free(xmalloc(0));
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		(void)!freopen("/dev/null", "w", stderr);
		xreallocarray(NULL, SIZE_MAX / 2 + 1, 2);
		_exit(0);
	}
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

/* crlf_lines_check: the first fault in byte order, its line, and 8-bit. */
TEST(crlf_lines_check_finds_the_first_fault)
{
	static const struct {
		const char *p;
		size_t n, max;
		enum crlf_fault want;
		size_t at, line;
		int eightbit;
	} cases[] = {
		{"", 0, 0, CRLF_OK, 0, 0, 0},
		{"a\r\nb\r\n", 6, 0, CRLF_OK, 0, 0, 0},
		{"a\r\n\xC3\xA9\r\n", 7, 0, CRLF_OK, 0, 0, 1},
		{"abcdefghij\xC3\xA9\r\n", 14, 0, CRLF_OK, 0, 0, 1}, /* past the 8-byte words */
		{"a\r\nb\0c\r\n", 8, 0, CRLF_NUL, 4, 2, 0},
		{"a\r\nb\rc\r\n", 8, 0, CRLF_BARE_CR, 4, 2, 0},
		{"a\r\nb\r", 5, 0, CRLF_BARE_CR, 4, 2, 0},
		{"a\r\nb\nc\r\n", 8, 0, CRLF_BARE_LF, 4, 2, 0},
		{"\n", 1, 0, CRLF_BARE_LF, 0, 1, 0},
		{"\r\n\n", 3, 0, CRLF_BARE_LF, 2, 2, 0},
		{"ab\r\nb\rc\0\r\n", 10, 0, CRLF_BARE_CR, 5, 2, 0},
		{"ab\r\nb\0c\r\r\n", 10, 0, CRLF_NUL, 5, 2, 0},
		{"\xC3\xA9\r\nb\0", 6, 0, CRLF_NUL, 5, 2, 1},
		{"abc\r\nabcd\r\n", 11, 5, CRLF_LONG_LINE, 5, 2, 0},
		{"abc\r\nabcd\r\n", 11, 6, CRLF_OK, 0, 0, 0},
		{"abc", 3, 0, CRLF_OK, 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t at = 99, line = 99;
		int eb = -1;
		enum crlf_fault f = crlf_lines_check(cases[i].p, cases[i].n, cases[i].max, &at, &line, &eb);
		int ok = f == cases[i].want && eb == cases[i].eightbit &&
			 (f == CRLF_OK || (at == cases[i].at && line == cases[i].line));
		CHECK(ok);
		if (!ok)
			fprintf(stderr, "  case %zu: fault %d at %zu line %zu eightbit %d\n", i, (int)f, at,
				line, eb);
	}
}

/* codec.c's UTF-8 step: the code point and length, or 0 for what RFC
 * 3629 forbids. */
TEST(utf8_decode_code_points)
{
	static const struct {
		const char *s;
		size_t n, len;
		uint32_t cp;
	} cases[] = {
		{"A", 1, 1, 0x41}, {"\xC2\x85", 2, 2, 0x85}, {"\xC3\xA3", 2, 2, 0xE3},
		{"\xE2\x80\xA8", 3, 3, 0x2028}, {"\xE2\x81\xA9", 3, 3, 0x2069},
		{"\xED\x9F\xBF", 3, 3, 0xD7FF}, {"\xF0\x9F\x98\x80", 4, 4, 0x1F600},
		{"\xF4\x8F\xBF\xBF", 4, 4, 0x10FFFF},
		{"\xC0\x80", 2, 0, 0}, {"\xC1\xBF", 2, 0, 0}, {"\xE0\x9F\xBF", 3, 0, 0},
		{"\xED\xA0\x80", 3, 0, 0}, {"\xF0\x8F\xBF\xBF", 4, 0, 0},
		{"\xF4\x90\x80\x80", 4, 0, 0}, {"\xF5\x80\x80\x80", 4, 0, 0},
		{"\xE2\x80", 2, 0, 0}, {"\x80", 1, 0, 0}, {"\xC3\x28", 2, 0, 0}, {"", 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t cp = 0xFFFFFFFF;
		size_t len = utf8_decode((const uint8_t *)cases[i].s, cases[i].n, &cp);
		if (len != cases[i].len || (len && cp != cases[i].cp))
			fprintf(stderr, "  case %zu: len %zu cp %X\n", i, len, (unsigned)cp);
		CHECK(len == cases[i].len);
		CHECK(!len || cp == cases[i].cp);
	}
}

TEST(sha256_and_commitment)
{
	char hex[65];
	sha256_hex("abc", 3, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	uint8_t salt[32] = {0};
	char c[SELO_COMMIT_LEN + 1];
	commitment(salt, 32, "abc", 3, c);
	uint8_t cat[35] = {0};
	memcpy(cat + 32, "abc", 3);
	sha256_hex(cat, 35, hex);
	CHECK(!strncmp(c, "sha256:", 7) && !strcmp(c + 7, hex));
	CHECK(ct_equal("abc", "abc", 3) && !ct_equal("abc", "abd", 3));
}

/* RFC 4231 test cases 1, 2 and 6 (a key longer than the block). */
TEST(hmac_sha256_rfc4231)
{
	uint8_t key1[20], key6[131], mac[32];
	char hex[65];
	memset(key1, 0x0b, sizeof(key1));
	memset(key6, 0xaa, sizeof(key6));
	hmac_sha256(key1, sizeof(key1), "Hi There", 8, mac);
	hex_encode(mac, 32, hex);
	CHECK_STR(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	hmac_sha256((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28, mac);
	hex_encode(mac, 32, hex);
	CHECK_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	static const char m6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
	hmac_sha256(key6, sizeof(key6), m6, sizeof(m6) - 1, mac);
	hex_encode(mac, 32, hex);
	CHECK_STR(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

/* random_bytes reads getrandom(2), which can return fewer bytes than asked
 * for past 256 (when a signal interrupts it): a 1 MiB draw is filled to its
 * last byte, and two draws differ. */
TEST(random_bytes_fill_large_draws)
{
	size_t n = 1 << 20;
	uint8_t *a = calloc(1, n), *b = calloc(1, n);
	CHECK(a && b);
	if (!a || !b) {
		free(a);
		free(b);
		return;
	}
	random_bytes(a, n);
	random_bytes(b, n);
	static const uint8_t zero[32];
	int empty = 0;
	for (size_t off = 0; off < n; off += 32)
		empty += !memcmp(a + off, zero, 32) || !memcmp(b + off, zero, 32);
	CHECK(empty == 0);
	CHECK(memcmp(a, b, n) != 0);
	uint8_t one = 0;
	random_bytes(&one, 0); /* nothing asked, nothing written */
	CHECK(one == 0);
	free(a);
	free(b);
}

TEST(id_round_trip_and_order)
{
	uint8_t a[16], b[16], back[16];
	char ta[27], tb[27];
	id_new(a);
	usleep(2000);
	id_new(b);
	id_to_text(a, ta);
	id_to_text(b, tb);
	CHECK(strlen(ta) == 26 && strcmp(ta, tb) < 0);
	CHECK(id_from_text(ta, back) == 0 && !memcmp(a, back, 16));
	CHECK(id_text_valid("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
	CHECK(!id_text_valid("81ARZ3NDEKTSV4RRFFQ69G5FAV")); /* overflows 128 bits */
	CHECK(!id_text_valid("01ARZ3NDEKTSV4RRFFQ69G5FA"));
	CHECK(!id_text_valid("01ARZ3NDEKTSV4RRFFQ69G5FAU")); /* U is not Crockford */
	CHECK(!id_text_valid("../../etc/passwd"));
	/* the ULID spec's example: time part of 01ARZ3NDEK is 1469922850259 ms */
	CHECK(id_from_text("01ARZ3NDEKTSV4RRFFQ69G5FAV", back) == 0);
	uint64_t ms = 0;
	for (int i = 0; i < 6; i++)
		ms = ms << 8 | back[i];
	CHECK(ms == 1469922850259ULL);
}

TEST(clock_formats)
{
	char t[32], d[40];
	clock_rfc3339(1795457261303LL, t);
	CHECK_STR(t, "2026-11-23T18:07:41.303Z");
	int64_t ms;
	CHECK(clock_parse_rfc3339(t, &ms) == 0 && ms == 1795457261303LL);
	CHECK(clock_parse_rfc3339("2026-11-23T15:07:41.303-03:00", &ms) == 0 && ms == 1795457261303LL);
	CHECK(clock_parse_rfc3339("2026-11-23T18:07:41Z", &ms) == 0 && ms == 1795457261000LL);
	CHECK(clock_parse_rfc3339("2026-02-30T00:00:00Z", &ms) < 0);
	CHECK(clock_parse_rfc3339("2026-11-23 18:07:41Z", &ms) < 0);
	CHECK(clock_parse_rfc3339("2026-11-23T18:07:41", &ms) < 0);
	clock_rfc3339(0, t);
	CHECK_STR(t, "1970-01-01T00:00:00.000Z");
	clock_rfc3339(253402300799999LL, t); /* the last millisecond of 9999 */
	CHECK_STR(t, "9999-12-31T23:59:59.999Z");
	clock_rfc3339(951782400007LL, t);    /* 2000-02-29, a leap day */
	CHECK_STR(t, "2000-02-29T00:00:00.007Z");
	clock_rfc5322(1795457261303LL, d);
	CHECK_STR(d, "Mon, 23 Nov 2026 18:07:41 +0000");
}

/* A deadline is ms after now on the clock asked, normalized, never before
 * now (a negative wait is none). */
TEST(clock_deadline_adds_and_normalizes)
{
	static const int64_t waits[] = {0, 1, 999, 1000, 1500, 2999, 86400000, -5};
	for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
		struct timespec before, after;
		clock_gettime(CLOCK_MONOTONIC, &before);
		struct timespec d = clock_deadline(CLOCK_MONOTONIC, waits[i]);
		clock_gettime(CLOCK_MONOTONIC, &after);
		CHECK(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
		int64_t at = (int64_t)d.tv_sec * 1000000000 + d.tv_nsec;
		int64_t lo = (int64_t)before.tv_sec * 1000000000 + before.tv_nsec;
		int64_t hi = (int64_t)after.tv_sec * 1000000000 + after.tv_nsec;
		int64_t w = waits[i] > 0 ? waits[i] * 1000000 : 0;
		CHECK(at >= lo + w && at <= hi + w);
	}
	struct timespec r = clock_deadline(CLOCK_REALTIME, 250);
	CHECK((int64_t)r.tv_sec * 1000 + r.tv_nsec / 1000000 >= clock_now_ms() + 200);
}

TEST(event_entry_key_order)
{
	json_t *f = json_object();
	json_object_set_new(f, "z", json_integer(1));
	json_object_set_new(f, "a", json_string("ç"));
	struct buf b = BUF_INIT;
	CHECK(event_entry_encode(&b, "content_sealed", "01ARZ3NDEKTSV4RRFFQ69G5FAV", 1795457261303LL,
				 f) == 0);
	CHECK_STR(buf_str(&b), "{\"v\":1,\"type\":\"content_sealed\",\"notice\":\"01ARZ3NDEKTSV4RRFFQ69G5FAV\","
			       "\"time\":\"2026-11-23T18:07:41.303Z\",\"z\":1,\"a\":\"ç\"}");
	json_object_set_new(f, "time", json_string("forged"));
	buf_reset(&b);
	CHECK(event_entry_encode(&b, "x", "y", 0, f) < 0);
	json_decref(f);
	buf_free(&b);
}

/* event_field_* write the bytes jansson dumps for the same object: every
 * ASCII byte (the escapes), UTF-8 kept as is, integers at both ends. */
TEST(event_fields_as_text_equal_jansson)
{
	char ascii[128];
	for (int i = 1; i < 128; i++)
		ascii[i - 1] = (char)i;
	ascii[127] = '\0';
	const char *values[] = {"", "plain", ascii, "ç ação 日本 😀", "\"quoted\" \\ /path/",
				"Mozilla/5.0 (X11; Linux x86_64)", "tab\there\r\n\x7f", NULL};
	const long long ints[] = {0, 1, -1, 42, -30, 9223372036854775807LL, -9223372036854775807LL - 1};
	json_t *o = json_object();
	struct buf text = BUF_INIT;
	char key[16];
	for (size_t i = 0; values[i]; i++) {
		snprintf(key, sizeof(key), "s%zu", i);
		json_object_set_new(o, key, json_string(values[i]));
		CHECK(event_field_str(&text, key, values[i]) == 0);
	}
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		snprintf(key, sizeof(key), "i_%zu", i);
		json_object_set_new(o, key, json_integer(ints[i]));
		CHECK(event_field_int(&text, key, ints[i]) == 0);
	}
	struct buf want = BUF_INIT, got = BUF_INIT;
	CHECK(event_entry_encode(&want, "opened", "01ARZ3NDEKTSV4RRFFQ69G5FAV", 1795457261303LL, o) == 0);
	CHECK(event_entry_encode_text(&got, "opened", "01ARZ3NDEKTSV4RRFFQ69G5FAV", 1795457261303LL,
				      text.data, text.len) == 0);
	CHECK_STR(buf_str(&got), buf_str(&want));
	/* No fields: the head alone, as with an empty object. */
	buf_reset(&want);
	buf_reset(&got);
	CHECK(event_entry_encode(&want, "opened", "x", 0, NULL) == 0);
	CHECK(event_entry_encode_text(&got, "opened", "x", 0, NULL, 0) == 0);
	CHECK_STR(buf_str(&got), buf_str(&want));
	/* Refused, and nothing written: reserved or odd keys, invalid UTF-8. */
	size_t len = text.len;
	CHECK(event_field_str(&text, "time", "x") < 0);
	CHECK(event_field_int(&text, "notice", 1) < 0);
	CHECK(event_field_str(&text, "a\"b", "x") < 0);
	CHECK(event_field_str(&text, "k", "\xc3\x28") < 0);
	CHECK(event_field_str(&text, "k", "\xed\xa0\x80") < 0); /* a surrogate */
	CHECK(event_field_str(&text, "k", "ascii first \xc3\x28") < 0);
	CHECK(event_field_str(&text, "v", "x") < 0);
	CHECK(event_field_str(&text, "type", "x") < 0);
	CHECK(text.len == len);
	CHECK(event_entry_encode_text(&got, "bad type", "x", 0, NULL, 0) < 0);
	json_decref(o);
	buf_free(&text);
	buf_free(&want);
	buf_free(&got);
}

TEST(disclosures_keep_values)
{
	struct disclosures d = DISCLOSURES_INIT;
	uint8_t salt[32];
	random_bytes(salt, 32);
	char first[80];
	snprintf(first, sizeof(first), "%s", disclose(&d, salt, "a@b.example", 11));
	for (int i = 0; i < 20; i++)
		disclose(&d, salt, "x", 1);
	CHECK(d.n == 21 && !strcmp(d.v[0].commitment, first) && !strcmp(d.v[0].value, "a@b.example"));
	char c[SELO_COMMIT_LEN + 1];
	commitment(salt, 32, "a@b.example", 11, c);
	CHECK_STR(c, first);
	disclosures_free(&d);
}

static char tmpdir[64];

static void write_conf(const char *text)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/selo.conf", tmpdir);
	file_write_atomic(p, text, strlen(text), 0600, NULL);
}

TEST(config_defaults_and_errors)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/selo-conf-XXXXXX");
	CHECK(mkdtemp(tmpdir) != NULL);
	struct selo_config c;
	struct selo_err e;
	err_clear(&e);
	CHECK(config_load(tmpdir, &c, &e) < 0 && strstr(e.msg, "selo init"));
	write_conf("[mail]\ndomain = cobranca.example\n[smtp]\nmode = relay\nrelay = 127.0.0.1:25\n"
		   "[api]\nmax_body = 2M\n");
	err_clear(&e);
	CHECK(config_load(tmpdir, &c, &e) == 0);
	CHECK_STR(c.mail_from_address, "notificacoes@cobranca.example");
	CHECK_STR(c.dkim_domain, "cobranca.example");
	CHECK_STR(c.log_origin, "cobranca.example/selo-log");
	CHECK(c.api_max_body == 2u << 20 && c.smtp_mode == SMTP_RELAY);
	CHECK_STR(c.api_listen, "127.0.0.1:8480");
	write_conf("[api]\nlisten = 127.0.0.1:1\n\n[smtp]\nmodee = relay\n");
	err_clear(&e);
	CHECK(config_load(tmpdir, &c, &e) < 0 && strstr(e.msg, "line 5") && strstr(e.msg, "modee"));
	write_conf("[sender]\nworkers = many\n");
	err_clear(&e);
	CHECK(config_load(tmpdir, &c, &e) < 0 && strstr(e.msg, "workers"));
	write_conf("[smtp]\nmode = relay\n");
	err_clear(&e);
	CHECK(config_load(tmpdir, &c, &e) < 0 && strstr(e.msg, "smtp.relay"));
	char p[128];
	snprintf(p, sizeof(p), "%s/selo.conf", tmpdir);
	unlink(p);
	rmdir(tmpdir);
}

static int has_field(const struct selo_err *e, const char *f)
{
	for (int i = 0; i < e->nfields; i++)
		if (!strcmp(e->fields[i].field, f))
			return 1;
	return 0;
}

static int parse(const char *json, struct selo_err *e)
{
	static struct template_set *ts;
	struct selo_err le;
	err_clear(&le);
	if (!ts && template_set_load(NULL, &ts, &le) != 0)
		return -2;
	struct selo_config c;
	config_defaults(&c, "/x");
	c.max_attachment_bytes = 16;
	err_clear(e);
	json_t *j = json_loads(json, 0, NULL);
	struct notice_req r;
	int rc = notice_parse(j, &c, ts, &r, e);
	if (rc == 0)
		notice_req_free(&r);
	json_decref(j);
	return rc;
}

TEST(notice_parse_fields)
{
	struct selo_err e;
	CHECK(parse("{\"to\":\"a@b.example\",\"subject\":\"S\",\"text\":\"T\"}", &e) == 0);
	CHECK(parse("{\"to\":\"a@b.example\",\"subject\":\"S\"}", &e) < 0 && e.status == 422 &&
	      has_field(&e, "text"));
	CHECK(parse("{\"to\":\"a@b.example\",\"template\":\"lembrete\",\"subject\":\"S\"}", &e) < 0);
	CHECK(parse("{\"to\":\"a@b.example\",\"template\":\"nada\"}", &e) < 0 &&
	      !strcmp(e.type, "unknown-template") && has_field(&e, "template"));
	CHECK(parse("{\"to\":\"a@b.example\",\"template\":\"lembrete\",\"vars\":{\"nome\":\"A\"}}", &e) < 0 &&
	      has_field(&e, "vars.valor") && has_field(&e, "vars.credor"));
	CHECK(parse("[]", &e) < 0 && e.status == 400);
	CHECK(parse("{\"to\":5,\"subject\":\"S\",\"text\":\"T\",\"x\":1}", &e) < 0 && has_field(&e, "to") &&
	      has_field(&e, "x"));
	CHECK(parse("{\"to\":\"a@b.example\",\"subject\":\"S\",\"text\":\"T\",\"tags\":[\"\"]}", &e) < 0 &&
	      has_field(&e, "tags[0]"));
	CHECK(parse("{\"to\":\"a@b.example\",\"subject\":\"S\",\"text\":\"T\",\"track\":{\"opens\":1}}", &e) < 0 &&
	      has_field(&e, "track.opens"));
	CHECK(parse("{\"to\":\"a@b.example\",\"subject\":\"S\",\"text\":\"T\",\"attachments\":[{\"filename\":"
		    "\"a.pdf\",\"content_type\":\"application/pdf\",\"content_base64\":\"" 
		    "QUFBQUFBQUFBQUFBQUFBQUFBQUFB\"}]}", &e) < 0 &&
	      has_field(&e, "attachments[0].content_base64")); /* 20 bytes > the 16-byte limit */
	CHECK(parse("{\"to\":\"a@b.example\",\"subject\":\"S\",\"text\":\"T\",\"attachments\":[{\"filename\":"
		    "\"../a.pdf\",\"content_type\":\"application/pdf\",\"content_base64\":\"QUFB\"}]}", &e) < 0 &&
	      has_field(&e, "attachments[0].filename"));
	CHECK(parse("{\"to\":\"a@b.example\",\"subject\":\"S\",\"text\":\"T\\u0007\"}", &e) < 0 &&
	      has_field(&e, "text"));
	CHECK(parse("{\"to\":\"a@b.example\",\"subject\":\"S\",\"text\":\"linha\\r\\nlinha\\tx\"}", &e) == 0);
}

/* Issue 17: names, subjects, references, tags and filenames refuse C1
 * controls, U+2028/U+2029 and the bidi controls, naming the field and the
 * code point; body text refuses C1 but keeps the separators and bidi
 * controls right-to-left text needs. */
static int field_says(const struct selo_err *e, const char *f, const char *says)
{
	for (int i = 0; i < e->nfields; i++)
		if (!strcmp(e->fields[i].field, f) && strstr(e->fields[i].msg, says))
			return 1;
	return 0;
}

TEST(notice_parse_refuses_invisible_and_bidi_characters)
{
	struct selo_err e;
#define RAW(extra) "{\"to\":\"a@b.example\",\"subject\":\"S\",\"text\":\"T\"" extra "}"
	CHECK(parse(RAW(",\"to_name\":\"Maria\\u0085Souza\""), &e) < 0 && e.status == 422 &&
	      field_says(&e, "to_name", "U+0085 (a control character) at byte 5"));
	CHECK(parse(RAW(",\"to_name\":\"Maria\\u2028Souza\""), &e) < 0 &&
	      field_says(&e, "to_name", "U+2028 (LINE SEPARATOR)"));
	CHECK(parse(RAW(",\"to_name\":\"\\u202eanitraM\""), &e) < 0 &&
	      field_says(&e, "to_name", "U+202E (RIGHT-TO-LEFT OVERRIDE)"));
	CHECK(parse(RAW(",\"reference\":\"CTR\\u2066-1\""), &e) < 0 &&
	      field_says(&e, "reference", "U+2066"));
	CHECK(parse(RAW(",\"tags\":[\"a\\u2029\"]"), &e) < 0 && field_says(&e, "tags[0]", "U+2029"));
	CHECK(parse("{\"to\":\"a@b.example\",\"subject\":\"Aviso\\u2028Bcc\",\"text\":\"T\"}", &e) < 0 &&
	      field_says(&e, "subject", "U+2028 (LINE SEPARATOR) at byte 5"));
	CHECK(parse("{\"to\":\"a@b.example\",\"subject\":\"S\",\"text\":\"T\\u0085\"}", &e) < 0 &&
	      field_says(&e, "text", "U+0085 (a control character) at byte 1"));
	CHECK(parse(RAW(",\"attachments\":[{\"filename\":\"fatura\\u202efdp.exe\",\"content_type\":"
			"\"application/pdf\",\"content_base64\":\"QUFB\"}]"), &e) < 0 &&
	      field_says(&e, "attachments[0].filename", "U+202E"));
	/* a variable that lands in the subject is judged there */
	CHECK(parse("{\"to\":\"a@b.example\",\"template\":\"lembrete\",\"vars\":{\"nome\":\"A\","
		    "\"valor\":1,\"vencimento\":\"2026-12-10\",\"credor\":\"C\\u2028X\"}}", &e) < 0 &&
	      field_says(&e, "vars", "the rendered subject contains U+2028 (LINE SEPARATOR)"));
	CHECK(parse("{\"to\":\"a@b.example\",\"template\":\"lembrete\",\"vars\":{\"nome\":\"A\","
		    "\"valor\":1,\"vencimento\":\"2026-12-10\",\"credor\":\"C\"}}", &e) == 0);
	/* accepted: right-to-left text with its marks; the separators in bodies */
	CHECK(parse(RAW(",\"to_name\":\"\\u05e9\\u05e8\\u05d4 \\u200f(1)\""), &e) == 0);
	CHECK(parse("{\"to\":\"a@b.example\",\"subject\":\"S\",\"text\":\"a\\u2028b\\u202ec\"}", &e) == 0);
#undef RAW
}

TEST(backoff_doubles_and_caps)
{
	CHECK(sender_backoff_s(1, 60, 14400) == 60);
	CHECK(sender_backoff_s(2, 60, 14400) == 120);
	CHECK(sender_backoff_s(5, 60, 14400) == 960);
	CHECK(sender_backoff_s(9, 60, 14400) == 14400);
	CHECK(sender_backoff_s(1000, 60, 14400) == 14400);
	CHECK(sender_backoff_s(3, 1, 2) == 2);
}

/* ---- diag's limiters (stderr_of: t_stderr.h) */

static int lines_in(const char *s)
{
	int n = 0;
	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

static void fail_1000(void *arg)
{
	for (int i = 0; i < 1000; i++)
		diag_error_limited(arg, "disk full, request %d", i);
}

static void end_run(void *arg)
{
	diag_ended(arg, "works again");
}

TEST(diag_limited_writes_once_per_interval)
{
	struct diag_limit l = DIAG_LIMIT_INIT;
	char *out = stderr_of(fail_1000, &l);
	CHECK(lines_in(out) == 1 && strstr(out, "disk full, request 0"));
	free(out);
	out = stderr_of(end_run, &l);
	CHECK(lines_in(out) == 1 && strstr(out, "info") && strstr(out, "works again (after 1000 failures since") &&
	      strstr(out, "999 of them not logged one by one"));
	free(out);
	/* Ended: nothing more to say. */
	out = stderr_of(end_run, &l);
	CHECK(out && out[0] == '\0');
	free(out);
	/* Within the interval of the last line, a new run is counted, not
	 * written; once the interval has passed the next line says how many. */
	out = stderr_of(fail_1000, &l);
	CHECK(out && out[0] == '\0');
	free(out);
	out = stderr_of(end_run, &l); /* nobody was told of this run: silent */
	CHECK(out && out[0] == '\0');
	free(out);
	atomic_fetch_sub(&l.last_ms, DIAG_REPEAT_MS);
	out = stderr_of(fail_1000, &l);
	CHECK(lines_in(out) == 1 && strstr(out, "request 0 [1000 more like this since the last line]"));
	free(out);
}

static void *fail_thread(void *arg)
{
	for (int i = 0; i < 20000; i++)
		diag_warn_limited(arg, "round %d failed", i);
	return NULL;
}

static void four_threads(void *arg)
{
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, fail_thread, arg);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
}

TEST(diag_limited_across_threads)
{
	struct diag_limit l = DIAG_LIMIT_INIT;
	char *out = stderr_of(four_threads, &l);
	CHECK(lines_in(out) == 1);
	free(out);
	CHECK(atomic_load(&l.count) == 80000 && atomic_load(&l.held) == 79999);
}
