/* test_mime.c: addresses, header text, RFC 2047 headers, quoted-printable
 * and attachments, checked against Python's email package (a parser we did
 * not write): what we encode must decode to exactly what went in. */
#include <stdint.h>
#include <unistd.h>
#include "selo/mime.h"
#include "t.h"

#define PY "/usr/bin/python3"

/* Runs python code with the given files as argv[1..]; returns its stdout
 * (malloc'd, trailing newline kept) or NULL if it failed. */
static char *py(const char *code, const char *a1, const char *a2)
{
	char script[] = "/tmp/selo-t-mime-py-XXXXXX";
	int fd = mkstemp(script);
	if (fd < 0)
		return NULL;
	FILE *f = fdopen(fd, "w");
	fputs(code, f);
	fclose(f);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), PY " %s %s %s", script, a1 ? a1 : "", a2 ? a2 : "");
	FILE *p = popen(cmd, "r");
	struct buf out = BUF_INIT;
	char chunk[4096];
	size_t n;
	while (p && (n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		buf_append(&out, chunk, n);
	int rc = p ? pclose(p) : -1;
	unlink(script);
	if (rc != 0) {
		buf_free(&out);
		return NULL;
	}
	return buf_steal(&out, NULL);
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	fwrite(p, 1, n, f);
	fclose(f);
}

/* Every line ends in CRLF, no bare CR or LF, none longer than max, and
 * every line after the first starts with a space (folded header). */
static int lines_ok(const char *s, size_t n, size_t max, int folded)
{
	size_t start = 0, lines = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' && (i + 1 >= n || s[i + 1] != '\n'))
			return 0;
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			return 0;
		if (s[i] != '\n')
			continue;
		if (i - 1 - start > max)
			return 0;
		if (folded && lines > 0 && s[start] != ' ')
			return 0;
		lines++;
		start = i + 1;
	}
	return start == n; /* ends with CRLF */
}

/* ---- Addresses. */

TEST(addr_accepts)
{
	const char *good[] = {
		"a@b.com", "first.last+tag@sub.example.com.br", "x_y-z@a-b.c0m",
		"o'brien@example.org", "!#$%&'*+-/=?^_`{|}~@example.com", "UPPER@EXAMPLE.COM",
		"a@xn--exmple-cua.com",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		struct selo_err e;
		err_clear(&e);
		int r = mime_addr_check(good[i], "to", &e);
		if (r != 0)
			fprintf(stderr, "  refused %s: %s\n", good[i], e.msg);
		CHECK(r == 0);
	}
	char local64[128], long_ok[300];
	memset(local64, 'a', 64);
	strcpy(local64 + 64, "@example.com");
	CHECK(mime_addr_check(local64, "to", NULL) == 0);
	/* 254 in all: 64 local + '@' + 189 domain (labels of 62 + '.') */
	snprintf(long_ok, sizeof(long_ok), "%.64s@%.62s.%.62s.%.59s.com", local64, local64, local64, local64);
	CHECK(strlen(long_ok) == 254);
	CHECK(mime_addr_check(long_ok, "to", NULL) == 0);
}

TEST(addr_refuses)
{
	char local65[128], too_long[300], label64[128];
	memset(local65, 'a', 65);
	strcpy(local65 + 65, "@example.com");
	memset(too_long, 'a', 64);
	snprintf(too_long + 64, sizeof(too_long) - 64, "@%.62s.%.62s.%.60s.com", local65, local65, local65);
	CHECK(strlen(too_long) == 255);
	strcpy(label64, "a@");
	memset(label64 + 2, 'b', 64);
	strcpy(label64 + 66, ".com");
	const char nul[] = "a\0@b.com"; /* a NUL ends the C string: "a", no '@' */
	const char *bad[] = {
		"", "a", "a@b", "@b.com", "a@", "a@@b.com", "a@b@c.com",
		"\"john doe\"@example.com", "\"j\"@example.com",
		"a@[192.0.2.1]", "a@[IPv6:2001:db8::1]", "a@192.0.2.1",
		"jos\xC3\xA9@example.com", "a@ex\xC3\xA4mple.com",
		"a@b.com\r\nBcc: x@y.com", "a@b.com\nBcc: x@y.com", "a@b.com\r", "a b@c.com",
		" a@b.com", "a@b.com ", "a\t@b.com", "a\x7F@b.com", "a\x01@b.com",
		"a..b@c.com", ".a@c.com", "a.@c.com", "a@-b.com", "a@b-.com", "a@b..com",
		"a@.b.com", "a@b.com.", "a@b.c_m", "a(b)@c.com", "a,b@c.com", "a<b>@c.com",
		"a@b.123", local65, too_long, label64, nul,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct selo_err e;
		err_clear(&e);
		int r = mime_addr_check(bad[i], "to", &e);
		if (r != -1)
			fprintf(stderr, "  accepted [%s]\n", bad[i]);
		CHECK(r == -1);
		CHECK(e.status == 422);
		CHECK_STR(e.type, "validation-failed");
		CHECK(e.nfields == 1);
		CHECK_STR(e.fields[0].field, "to");
	}
	CHECK(mime_addr_check(NULL, "to", NULL) == -1);
}

TEST(addr_messages_say_why)
{
	struct selo_err e;
	err_clear(&e);
	mime_addr_check("\"x\"@example.com", "to", &e);
	CHECK(strstr(e.fields[0].msg, "quoted local parts") != NULL);
	err_clear(&e);
	mime_addr_check("jos\xC3\xA9@example.com", "to", &e);
	CHECK(strstr(e.fields[0].msg, "SMTPUTF8") != NULL);
	err_clear(&e);
	mime_addr_check("a@[192.0.2.1]", "to", &e);
	CHECK(strstr(e.fields[0].msg, "IP") != NULL);
}

/* ---- Header text and UTF-8. */

TEST(utf8)
{
	CHECK(utf8_valid("", 0));
	CHECK(utf8_valid("S\xC3\xA3o \xE2\x80\x94 \xF0\x9F\x98\x80", 13));
	CHECK(!utf8_valid("\xC0\x80", 2));          /* overlong NUL */
	CHECK(!utf8_valid("\xC1\xBF", 2));          /* overlong */
	CHECK(!utf8_valid("\xE0\x80\x80", 3));      /* overlong */
	CHECK(!utf8_valid("\xF0\x80\x80\x80", 4));  /* overlong */
	CHECK(!utf8_valid("\xED\xA0\x80", 3));      /* surrogate */
	CHECK(!utf8_valid("\xF4\x90\x80\x80", 4));  /* > U+10FFFF */
	CHECK(!utf8_valid("\xF5\x80\x80\x80", 4));
	CHECK(!utf8_valid("\xC3", 1));              /* truncated */
	CHECK(!utf8_valid("\xE2\x80", 2));
	CHECK(!utf8_valid("\x80", 1));
	CHECK(!utf8_valid("\xFF", 1));
	CHECK(utf8_valid("\xF4\x8F\xBF\xBF", 4));   /* U+10FFFF */
	CHECK(utf8_valid("\xED\x9F\xBF", 3));       /* U+D7FF */
}

TEST(header_text_check)
{
	struct selo_err e;
	err_clear(&e);
	CHECK(mime_header_text_check("Notifica\xC3\xA7\xC3\xA3o", 100, "subject", &e) == 0);
	CHECK(mime_header_text_check("a\r\nBcc: x@y.com", 100, "subject", &e) == -1);
	CHECK(e.status == 422 && e.nfields == 1);
	CHECK_STR(e.fields[0].field, "subject");
	CHECK(mime_header_text_check("a\tb", 100, "subject", NULL) == -1);
	CHECK(mime_header_text_check("a\x7F", 100, "subject", NULL) == -1);
	CHECK(mime_header_text_check("a\x1B[31m", 100, "subject", NULL) == -1);
	CHECK(mime_header_text_check("\xC3\x28", 100, "subject", NULL) == -1);
	CHECK(mime_header_text_check("abcdef", 5, "subject", NULL) == -1);
	CHECK(mime_header_text_check("abcde", 5, "subject", NULL) == 0);
	CHECK(mime_header_text_check(NULL, 5, "subject", NULL) == -1);
}

/* Issue 17: C1 controls, the Unicode line and paragraph separators and the
 * bidi embeddings, overrides and isolates are refused with the code point
 * and its byte offset named; the implicit marks and ordinary non-ASCII
 * text are not. */
TEST(header_text_refuses_c1_separators_and_bidi_controls)
{
	static const struct {
		const char *s, *says;
	} refused[] = {
		{"Maria\xC2\x85Souza", "U+0085 (a control character) at byte 5"},
		{"\xC2\x80", "U+0080 (a control character) at byte 0"},
		{"x\xC2\x9F", "U+009F (a control character) at byte 1"},
		{"Maria\xE2\x80\xA8" "Bcc", "U+2028 (LINE SEPARATOR) at byte 5"},
		{"a\xE2\x80\xA9", "U+2029 (PARAGRAPH SEPARATOR)"},
		{"\xE2\x80\xAA", "U+202A (LEFT-TO-RIGHT EMBEDDING)"},
		{"\xE2\x80\xAB", "U+202B (RIGHT-TO-LEFT EMBEDDING)"},
		{"\xE2\x80\xAC", "U+202C (POP DIRECTIONAL FORMATTING)"},
		{"\xE2\x80\xAD", "U+202D (LEFT-TO-RIGHT OVERRIDE)"},
		{"fatura\xE2\x80\xAE" "fdp.exe", "U+202E (RIGHT-TO-LEFT OVERRIDE) at byte 6"},
		{"\xE2\x81\xA6", "U+2066 (LEFT-TO-RIGHT ISOLATE)"},
		{"\xE2\x81\xA7", "U+2067 (RIGHT-TO-LEFT ISOLATE)"},
		{"\xE2\x81\xA8", "U+2068 (FIRST STRONG ISOLATE)"},
		{"\xE2\x81\xA9", "U+2069 (POP DIRECTIONAL ISOLATE)"},
		{"a\nb", "U+000A (a control character) at byte 1"},
		{"a\x7F", "U+007F (a control character)"},
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		struct selo_err e;
		err_clear(&e);
		CHECK(mime_header_text_check(refused[i].s, 100, "to_name", &e) == -1);
		CHECK(e.status == 422 && e.nfields == 1);
		CHECK_STR(e.fields[0].field, "to_name");
		if (!strstr(e.fields[0].msg, refused[i].says))
			fprintf(stderr, "  %zu: %s\n", i, e.fields[0].msg);
		CHECK(strstr(e.fields[0].msg, refused[i].says) != NULL);
		CHECK(strstr(e.fields[0].msg, "U+202A-U+202E, U+2066-U+2069") != NULL);
		struct buf out = BUF_INIT; /* the writers refuse what the check refuses */
		CHECK(mime_write_header(&out, "Subject", refused[i].s) == -1);
		CHECK(mime_write_address(&out, "To", refused[i].s, "a@b.example") == -1);
		buf_free(&out);
	}
	static const char *const fine[] = {
		"Jo\xC3\xA3o da Silva",           /* U+00E3 */
		"\xC2\xA0nbsp",                    /* U+00A0, the first after C1 */
		"\xD7\xA9\xD7\xA8\xD7\x94 \xE2\x80\x8F(1)", /* Hebrew and U+200F RLM */
		"\xE2\x80\x8E\xD8\x9C",           /* U+200E LRM, U+061C ALM */
		"\xE2\x80\xA7\xE2\x80\xAF",      /* U+2027, U+202F: next to the refused */
		"\xE2\x81\xA5\xE2\x81\xAA",      /* U+2065, U+206A */
		"\xF0\x9F\x98\x80",               /* U+1F600 */
	};
	for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
		CHECK(mime_header_text_check(fine[i], 100, "subject", NULL) == 0);
}

TEST(content_type_check)
{
	CHECK(mime_content_type_check("application/pdf", "ct", NULL) == 0);
	CHECK(mime_content_type_check("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "ct", NULL) == 0);
	CHECK(mime_content_type_check("image/svg+xml", "ct", NULL) == 0);
	CHECK(mime_content_type_check("application", "ct", NULL) == -1);
	CHECK(mime_content_type_check("/pdf", "ct", NULL) == -1);
	CHECK(mime_content_type_check("application/", "ct", NULL) == -1);
	CHECK(mime_content_type_check("text/html; charset=utf-8", "ct", NULL) == -1);
	CHECK(mime_content_type_check("application/pdf\r\nBcc: x@y.com", "ct", NULL) == -1);
	CHECK(mime_content_type_check("a/b/c", "ct", NULL) == -1);
	CHECK(mime_content_type_check("", "ct", NULL) == -1);
}

/* ---- Headers through Python. */

static const char PY_SUBJECT[] =
	"import sys, email, email.policy, email.header\n"
	"raw = open(sys.argv[1], 'rb').read()\n"
	"m = email.message_from_bytes(raw + b'\\r\\n', policy=email.policy.default)\n"
	"a = str(m['Subject'])\n"
	"v = raw.decode('ascii').split(':', 1)[1].replace('\\r\\n', '')\n"
	"b = str(email.header.make_header(email.header.decode_header(v.strip())))\n"
	"if a != b: sys.exit('parsers disagree: %r %r' % (a, b))\n"
	"if m.defects or m['Subject'].defects: sys.exit('defects: %r' % (m['Subject'].defects,))\n"
	"sys.stdout.buffer.write(a.encode('utf-8'))\n";

static void subject_round_trip(const char *value)
{
	struct buf b = BUF_INIT;
	CHECK(mime_write_header(&b, "Subject", value) == 0);
	CHECK(lines_ok(b.data, b.len, 78, 1));
	for (size_t i = 0; i < b.len; i++)
		CHECK((unsigned char)b.data[i] < 0x80);
	write_file("/tmp/selo-t-mime-hdr", b.data, b.len);
	char *got = py(PY_SUBJECT, "/tmp/selo-t-mime-hdr", NULL);
	CHECK(got != NULL);
	if (got && strcmp(got, value) != 0)
		fprintf(stderr, "  header:\n%s  decoded: [%s]\n  wanted:  [%s]\n", b.data, got, value);
	CHECK(got && strcmp(got, value) == 0);
	free(got);
	buf_free(&b);
	unlink("/tmp/selo-t-mime-hdr");
}

TEST(header_ascii_plain)
{
	struct buf b = BUF_INIT;
	CHECK(mime_write_header(&b, "Subject", "Aviso de vencimento") == 0);
	CHECK_STR(buf_str(&b), "Subject: Aviso de vencimento\r\n");
	buf_free(&b);
	subject_round_trip("Aviso de vencimento");
}

TEST(header_round_trips)
{
	subject_round_trip("Notifica\xC3\xA7\xC3\xA3o de cobran\xC3\xA7" "a \xE2\x80\x94 S\xC3\xA3o Paulo");
	subject_round_trip("Lembrete: sua fatura vence amanh\xC3\xA3 \xF0\x9F\x93\x85\xF0\x9F\x92\xB0");
	subject_round_trip("\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
			   "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
			   "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80");
	subject_round_trip("Looks like =?UTF-8?B?SGk=?= an encoded word");
	subject_round_trip(" leading and trailing space ");
	subject_round_trip("double  space and a \"quote\" and a \\ backslash?");
	subject_round_trip("_underscores_ and =equals= and ?question?");
	subject_round_trip("x");
	/* long ASCII, folded at spaces */
	char longa[600];
	longa[0] = '\0';
	while (strlen(longa) < 500)
		strcat(longa, "Notificacao extrajudicial de cobranca ");
	longa[500] = '\0';
	if (longa[499] == ' ')
		longa[499] = 'x';
	subject_round_trip(longa);
	/* ASCII without spaces longer than a line: must be encoded words */
	char word[200];
	memset(word, 'w', 150);
	word[150] = '\0';
	subject_round_trip(word);
	/* 500 characters of Portuguese with accents */
	char pt[2000];
	pt[0] = '\0';
	while (strlen(pt) < 500)
		strcat(pt, "Cobran\xC3\xA7" "a n\xC2\xBA 42 \xE2\x80\x94 S\xC3\xA3o Jo\xC3\xA3o ");
	subject_round_trip(pt);
	/* 500 emoji in a row (4 bytes each): words never split a character */
	char emo[2100];
	for (int i = 0; i < 500; i++)
		memcpy(emo + 4 * i, "\xF0\x9F\x93\xA8", 4);
	emo[2000] = '\0';
	subject_round_trip(emo);
	/* every 2-byte character mixed with ASCII at all offsets */
	char mix[800];
	mix[0] = '\0';
	for (int i = 0; i < 60; i++)
		strcat(mix, i % 3 ? "a\xC3\xA9" : "\xC3\xA7 ");
	subject_round_trip(mix);
}

TEST(header_refuses_injection)
{
	struct buf b = BUF_INIT;
	CHECK(mime_write_header(&b, "Subject", "Oi\r\nBcc: victim@example.com") == -1);
	CHECK(mime_write_header(&b, "Subject", "Oi\nBcc: victim@example.com") == -1);
	CHECK(mime_write_header(&b, "Subject", "Oi\rBcc: victim@example.com") == -1);
	CHECK(mime_write_header(&b, "Subject", "bad \xC3\x28 utf-8") == -1);
	CHECK(mime_write_header(&b, "Subject", NULL) == -1);
	CHECK(mime_write_header(&b, "Sub ject", "x") == -1);
	CHECK(mime_write_header(&b, "Subject:", "x") == -1);
	CHECK(mime_write_header(&b, "X\r\nBcc", "x") == -1);
	buf_free(&b);
}

/* Prints the display name as Python's modern parser reads it, then as an
 * RFC 2047 decoder reads it (the legacy decode_header, which drops the
 * space between adjacent encoded words as §6.2 says; the modern parser
 * keeps it inside display names, a Python bug), then the address. */
static const char PY_ADDR[] =
	"import sys, email, email.policy, email.header\n"
	"raw = open(sys.argv[1], 'rb').read()\n"
	"m = email.message_from_bytes(raw + b'\\r\\n', policy=email.policy.default)\n"
	"h = m['To']\n"
	"if len(h.addresses) != 1 or h.defects: sys.exit('addresses: %r %r' % (h.addresses, h.defects))\n"
	"a = h.addresses[0]\n"
	"v = raw.decode('ascii').split(':', 1)[1].replace('\\r\\n', '')\n"
	"ph = v[:v.rindex('<')].strip() if '<' in v else ''\n"
	"legacy = str(email.header.make_header(email.header.decode_header(ph)))\n"
	"sys.stdout.buffer.write((a.display_name + '\\n' + legacy + '\\n' + a.addr_spec).encode('utf-8'))\n";

/* strict: the modern parser must agree too (names that need no split
 * encoded words) */
static void address_round_trip_x(const char *display, const char *addr, int strict)
{
	struct buf b = BUF_INIT;
	CHECK(mime_write_address(&b, "To", display, addr) == 0);
	CHECK(lines_ok(b.data, b.len, 78, 1));
	write_file("/tmp/selo-t-mime-addr", b.data, b.len);
	char *got = py(PY_ADDR, "/tmp/selo-t-mime-addr", NULL);
	CHECK(got != NULL);
	char *l1 = got, *l2 = got ? strchr(got, '\n') : NULL, *l3 = l2 ? strchr(l2 + 1, '\n') : NULL;
	if (l2 && l3) {
		*l2++ = '\0';
		*l3++ = '\0';
		const char *want = display ? display : "";
		int modern = strcmp(l1, want) == 0, legacy = strcmp(l2, want) == 0;
		int quoted = l2[0] == '"'; /* legacy decode_header leaves quotes */
		if (!(modern && (legacy || quoted || !display)) && !(legacy && !strict))
			fprintf(stderr, "  header:\n%s  modern [%s] legacy [%s]\n", b.data, l1, l2);
		CHECK((modern && (legacy || quoted || !display)) || (legacy && !strict));
		CHECK_STR(l3, addr);
	}
	free(got);
	buf_free(&b);
	unlink("/tmp/selo-t-mime-addr");
}

static void address_round_trip(const char *display, const char *addr)
{
	address_round_trip_x(display, addr, 1);
}

TEST(address_round_trips)
{
	struct buf b = BUF_INIT;
	CHECK(mime_write_address(&b, "To", "Maria Silva", "maria@example.com") == 0);
	CHECK_STR(buf_str(&b), "To: \"Maria Silva\" <maria@example.com>\r\n");
	buf_reset(&b);
	CHECK(mime_write_address(&b, "To", NULL, "maria@example.com") == 0);
	CHECK_STR(buf_str(&b), "To: maria@example.com\r\n");
	buf_free(&b);
	address_round_trip("Maria Silva", "maria@example.com");
	address_round_trip("Silva, Maria", "maria@example.com");
	address_round_trip("Fulano \"Apelido\" de Tal \\ Jr.", "fulano@example.com");
	address_round_trip("Jo\xC3\xA3o da Concei\xC3\xA7\xC3\xA3o", "joao@example.com.br");
	address_round_trip("Empresa \xE2\x80\x94 Cobran\xC3\xA7" "a Amig\xC3\xA1vel \xF0\x9F\x98\x80 Departamento Jur\xC3\xAD" "dico Regional Sudeste",
			   "cobranca.departamento.juridico@empresa-muito-longa.example.com.br");
	/* a run of non-ASCII words longer than one encoded word */
	address_round_trip_x("\xC3\x81\xC3\xA9 \xC3\x8D\xC3\xB3 \xC3\x9A\xC3\xA7 \xC3\x81\xC3\xA9 \xC3\x8D\xC3\xB3 \xC3\x9A\xC3\xA7 "
			     "\xC3\x81\xC3\xA9 \xC3\x8D\xC3\xB3 \xC3\x9A\xC3\xA7 \xC3\x81\xC3\xA9 \xC3\x8D\xC3\xB3 \xC3\x9A\xC3\xA7",
			     "a@example.com", 0);
	address_round_trip_x("  spaced   name  ", "a@example.com", 0);
	address_round_trip("Looks =?UTF-8?B?SGk=?= encoded", "a@example.com");
	address_round_trip("A very long ASCII display name that does not fit on one line with the address",
			   "someone@example.com");
	address_round_trip(NULL, "maria@example.com");
}

TEST(address_refuses_injection)
{
	struct buf b = BUF_INIT;
	CHECK(mime_write_address(&b, "To", "Maria\r\nBcc: x@y.com", "maria@example.com") == -1);
	CHECK(mime_write_address(&b, "To", "Maria", "maria@example.com\r\nBcc: x@y.com") == -1);
	CHECK(mime_write_address(&b, "To", "Maria", "maria@example.com>, x@y.com") == -1);
	CHECK(mime_write_address(&b, "To", "Maria", "\"q\"@example.com") == -1);
	CHECK(mime_write_address(&b, "To", "Maria", NULL) == -1);
	buf_free(&b);
}

/* ---- Quoted-printable through Python's quopri. */

static const char PY_QP[] =
	"import sys, quopri\n"
	"enc = open(sys.argv[1], 'rb').read()\n"
	"want = open(sys.argv[2], 'rb').read()\n"
	"for line in enc.split(b'\\r\\n'):\n"
	"    if len(line) > 76: sys.exit('long line %r' % line)\n"
	"    if line[-1:] in (b' ', b'\\t'): sys.exit('trailing space %r' % line)\n"
	"    if line.startswith(b'.') or line.startswith(b'From '): sys.exit('unsafe start %r' % line)\n"
	"    if any(c > 126 or (c < 32 and c != 9) for c in line): sys.exit('bad byte %r' % line)\n"
	"got = quopri.decodestring(enc)\n"
	"if got != want: sys.exit('mismatch %r != %r' % (got, want))\n"
	"print('ok')\n";

/* want: text with every LF as CRLF (the canonical form the part carries). */
static void qp_round_trip(const char *text)
{
	struct buf enc = BUF_INIT, want = BUF_INIT;
	size_t n = strlen(text);
	mime_qp_encode(&enc, text, n);
	for (size_t i = 0; i < n; i++) {
		if (text[i] == '\n' && !(i > 0 && text[i - 1] == '\r'))
			buf_putc(&want, '\r');
		buf_putc(&want, text[i]);
	}
	CHECK(strstr(buf_str(&enc), "=_") == NULL); /* boundaries start with "=_" */
	write_file("/tmp/selo-t-mime-qp", buf_str(&enc), enc.len);
	write_file("/tmp/selo-t-mime-qpw", buf_str(&want), want.len);
	char *got = py(PY_QP, "/tmp/selo-t-mime-qp", "/tmp/selo-t-mime-qpw");
	if (!got)
		fprintf(stderr, "  QP of [%s]:\n%s\n", text, buf_str(&enc));
	CHECK(got && strcmp(got, "ok\n") == 0);
	free(got);
	buf_free(&enc);
	buf_free(&want);
	unlink("/tmp/selo-t-mime-qp");
	unlink("/tmp/selo-t-mime-qpw");
}

TEST(qp_round_trips)
{
	qp_round_trip("");
	qp_round_trip("Ol\xC3\xA1, Maria!\nSua fatura de R$ 1.234,56 vence em 01/12/2026.\n");
	qp_round_trip("trailing spaces   \nand tabs\t\t\nend with space ");
	qp_round_trip("equals = signs == and =3D literal and =\n=");
	qp_round_trip(".\n.hidden line\n..two dots\nFrom here on\nFrom\nFromage\n From x\n");
	qp_round_trip("mixed\r\nline\nends\r\n\r\n\n");
	qp_round_trip("a lone \r carriage return");
	qp_round_trip("_=_selo_ looks like a boundary");
	char buf[4000];
	/* long lines: plain, with a '.' or "From " landing at a soft break,
	 * with '=' and multibyte characters straddling column 76 */
	for (int off = 70; off < 80; off++) {
		memset(buf, 'x', (size_t)off);
		strcpy(buf + off, ".From here on, =, \xC3\xA9\xC3\xA9\xC3\xA9 and more text to wrap");
		qp_round_trip(buf);
		memset(buf, 'y', (size_t)off);
		strcpy(buf + off, "From the start of a soft line");
		qp_round_trip(buf);
		memset(buf, ' ', (size_t)off);
		strcpy(buf + off, "   \n");
		qp_round_trip(buf);
	}
	memset(buf, 'z', 3000);
	buf[3000] = '\0';
	qp_round_trip(buf);
	for (int i = 0; i < 3000; i++)
		buf[i] = (char)(i % 3 == 0 ? '=' : i % 3 == 1 ? ' ' : '.');
	buf[3000] = '\0';
	qp_round_trip(buf);
	memset(buf, 0, sizeof(buf));
	for (int i = 0; i < 500; i++)
		strcat(buf, "\xE2\x80\x94");
	qp_round_trip(buf);
}

TEST(text_part_headers)
{
	struct buf b = BUF_INIT;
	mime_write_text_part(&b, "html", "<p>Ol\xC3\xA1</p>\n", 12);
	CHECK_STR(buf_str(&b), "Content-Type: text/html; charset=utf-8\r\n"
			       "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
			       "<p>Ol=C3=A1</p>\r\n");
	buf_free(&b);
}

/* ---- Boundaries and attachments. */

TEST(boundary)
{
	char a[48], b[48];
	mime_boundary(a);
	mime_boundary(b);
	CHECK(strlen(a) == 40);
	CHECK(strncmp(a, "=_selo_", 7) == 0);
	CHECK(strcmp(a, b) != 0);
	for (int i = 7; i < 40; i++)
		CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", a[i]) != NULL);
}

static const char PY_ATT[] =
	"import sys, email, email.policy\n"
	"raw = open(sys.argv[1], 'rb').read()\n"
	"data = open(sys.argv[2], 'rb').read()\n"
	"for line in raw.split(b'\\r\\n'):\n"
	"    if len(line) > 998: sys.exit('line > 998')\n"
	"m = email.message_from_bytes(raw, policy=email.policy.default)\n"
	"if m.get_payload(decode=True) != data: sys.exit('content differs')\n"
	"if m.get_content_disposition() != 'attachment': sys.exit('disposition')\n"
	"if m.get_param('name') is None: sys.exit('no name')\n"
	"sys.stdout.buffer.write((m.get_content_type() + '\\n' + m.get_filename()).encode('utf-8'))\n";

static void attachment_round_trip(const char *ct, const char *fn, size_t n)
{
	uint8_t *data = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7 + i / 13);
	struct buf b = BUF_INIT, want = BUF_INIT;
	buf_puts(&b, "MIME-Version: 1.0\r\n");
	CHECK(mime_write_attachment(&b, ct, fn, data, n) == 0);
	buf_puts(&b, "\r\n");
	CHECK(lines_ok(b.data, b.len, 998, 0));
	write_file("/tmp/selo-t-mime-att", b.data, b.len);
	write_file("/tmp/selo-t-mime-attd", data, n);
	char *got = py(PY_ATT, "/tmp/selo-t-mime-att", "/tmp/selo-t-mime-attd");
	buf_printf(&want, "%s\n%s", ct, fn);
	if (!got || strcmp(got, buf_str(&want)) != 0)
		fprintf(stderr, "  part:\n%.1500s\n  got: [%s]\n", b.data, got ? got : "(failed)");
	CHECK(got && strcmp(got, buf_str(&want)) == 0);
	free(got);
	free(data);
	buf_free(&b);
	buf_free(&want);
	unlink("/tmp/selo-t-mime-att");
	unlink("/tmp/selo-t-mime-attd");
}

TEST(attachment_round_trips)
{
	attachment_round_trip("application/pdf", "boleto.pdf", 10000);
	attachment_round_trip("application/pdf", "Boleto de cobran\xC3\xA7" "a n\xC2\xBA 123 \xE2\x80\x94 S\xC3\xA3o Paulo.pdf", 3);
	attachment_round_trip("text/plain", "quote \" and backslash \\ .txt", 0);
	attachment_round_trip("application/octet-stream", "=?UTF-8?B?SGk=?=.bin", 77);
	char longname[300];
	longname[0] = '\0';
	while (strlen(longname) < 225)
		strcat(longname, "Notifica\xC3\xA7\xC3\xA3o ");
	strcat(longname, ".pdf");
	attachment_round_trip("application/pdf", longname, 1);
	memset(longname, 'n', 251);
	strcpy(longname + 251, ".pdf");
	attachment_round_trip("application/pdf", longname, 57);
}

TEST(attachment_base64_lines)
{
	uint8_t data[200];
	memset(data, 0xAB, sizeof(data));
	struct buf b = BUF_INIT;
	CHECK(mime_write_attachment(&b, "application/pdf", "a.pdf", data, sizeof(data)) == 0);
	const char *body = strstr(buf_str(&b), "\r\n\r\n") + 4;
	CHECK(strlen(body) == 3 * (76 + 2) + 40); /* 268 base64 characters */
	CHECK(body[76] == '\r' && body[154] == '\r' && body[232] == '\r');
	buf_free(&b);
}

TEST(attachment_refuses)
{
	struct buf b = BUF_INIT;
	uint8_t d[1] = {0};
	CHECK(mime_write_attachment(&b, "application/pdf", "a\r\nBcc: x@y.com", d, 1) == -1);
	CHECK(mime_write_attachment(&b, "application/pdf", "a\"\r\nContent-Type: text/html", d, 1) == -1);
	CHECK(mime_write_attachment(&b, "application/pdf\r\nBcc: x@y.com", "a.pdf", d, 1) == -1);
	CHECK(mime_write_attachment(&b, "application/pdf; name=x", "a.pdf", d, 1) == -1);
	CHECK(mime_write_attachment(&b, "application/pdf", "", d, 1) == -1);
	CHECK(mime_write_attachment(&b, "application/pdf", NULL, d, 1) == -1);
	CHECK(mime_write_attachment(&b, "application/pdf", "\xC3\x28.pdf", d, 1) == -1);
	char big[300];
	memset(big, 'a', 256);
	big[256] = '\0';
	CHECK(mime_write_attachment(&b, "application/pdf", big, d, 1) == -1);
	buf_free(&b);
}
