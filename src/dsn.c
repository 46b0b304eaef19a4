/* dsn.c: VERP bounce addresses and the delivery status notification parser
 * (see dsn.h). The parser is the one place `selo bounce` reads untrusted
 * bytes: it works on spans of the input (no copies of the message), checks
 * every length against a limit before using it, and refuses with a message
 * rather than guessing. What it does not need it does not read: the human
 * part of a report, and anything of a returned message beyond its headers. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "selo/buf.h"
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/dsn.h"
#include "selo/mime.h"

/* ---- VERP */

#define VERP_MAC_LEN 10
#define VERP_RAW_LEN (SELO_ID_BYTES + VERP_MAC_LEN)

/* Crockford's base32 in lower case: no i, l, o, u, so no two digits look
 * alike, and the same alphabet as notice ids. */
static const char B32[] = "0123456789abcdefghjkmnpqrstvwxyz";

static void verp_mac(const uint8_t key[DSN_KEY_LEN], const uint8_t id[SELO_ID_BYTES],
		     uint8_t mac[32])
{
	/* A label of its own, and a length no tracking token body has (20
	 * bytes), so a MAC made here can never stand in for a token's. */
	static const char label[] = "selo-verp-v1";
	uint8_t in[sizeof(label) - 1 + SELO_ID_BYTES];
	memcpy(in, label, sizeof(label) - 1);
	memcpy(in + sizeof(label) - 1, id, SELO_ID_BYTES);
	hmac_sha256(key, DSN_KEY_LEN, in, sizeof(in), mac);
}

static void b32_encode(const uint8_t raw[VERP_RAW_LEN], char out[DSN_VERP_TOKEN_LEN + 1])
{
	unsigned acc = 0;
	int bits = 0;
	size_t k = 0;
	for (size_t i = 0; i < VERP_RAW_LEN; i++) {
		acc = (acc << 8 | raw[i]) & 0x1FFF; /* fewer than 5 bits stay from before */
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[k++] = B32[acc >> bits & 31];
		}
	}
	if (bits)
		out[k++] = B32[acc << (5 - bits) & 31];
	out[k] = '\0';
}

static int b32_value(char c)
{
	const char *p = c ? strchr(B32, tolower((unsigned char)c)) : NULL;
	return p ? (int)(p - B32) : -1;
}

/* Strict: exactly DSN_VERP_TOKEN_LEN digits of the alphabet in any case,
 * and zero padding bits, so each token has one spelling up to case. */
static int b32_decode(const char *s, uint8_t raw[VERP_RAW_LEN])
{
	unsigned acc = 0;
	int bits = 0;
	size_t k = 0;
	for (size_t i = 0; i < DSN_VERP_TOKEN_LEN; i++) {
		int v = b32_value(s[i]);
		if (v < 0)
			return -1;
		acc = (acc << 5 | (unsigned)v) & 0xFFF;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			raw[k++] = (uint8_t)(acc >> bits);
		}
	}
	return k == VERP_RAW_LEN && (acc & ((1u << bits) - 1)) == 0 ? 0 : -1;
}

int dsn_verp_check(const char *return_path, struct selo_err *err)
{
	struct selo_err e;
	err_clear(&e);
	if (mime_addr_check(return_path, "mail.return_path", &e) != 0)
		return err_set(err, 500, "config", "%s", e.msg);
	size_t local = (size_t)(strchr(return_path, '@') - return_path);
	if (local > DSN_RETURN_LOCAL_MAX)
		return err_set(err, 500, "config",
			       "mail.return_path: the part before '@' has %zu characters; bounce "
			       "addresses add '+' and a %d-character token to it and may have %d, so "
			       "it may have at most %d",
			       local, DSN_VERP_TOKEN_LEN, DSN_LOCAL_MAX, DSN_RETURN_LOCAL_MAX);
	size_t total = strlen(return_path) + 1 + DSN_VERP_TOKEN_LEN;
	if (total > DSN_ADDR_MAX)
		return err_set(err, 500, "config",
			       "mail.return_path: bounce addresses made from it would have %zu "
			       "characters, more than the %d an address may have; use a shorter domain",
			       total, DSN_ADDR_MAX);
	return 0;
}

int dsn_verp_make(const uint8_t key[DSN_KEY_LEN], const char *return_path, const char *notice_id,
		  char out[DSN_ADDR_MAX + 1], struct selo_err *err)
{
	out[0] = '\0';
	uint8_t raw[VERP_RAW_LEN], mac[32];
	if (id_from_text(notice_id, raw) != 0)
		return err_set(err, 400, "invalid-request", "dsn: '%.40s' is not a notice id",
			       notice_id ? notice_id : "");
	if (dsn_verp_check(return_path, err) != 0)
		return -1;
	verp_mac(key, raw, mac);
	memcpy(raw + SELO_ID_BYTES, mac, VERP_MAC_LEN);
	char token[DSN_VERP_TOKEN_LEN + 1];
	b32_encode(raw, token);
	const char *at = strchr(return_path, '@');
	snprintf(out, DSN_ADDR_MAX + 1, "%.*s+%s%s", (int)(at - return_path), return_path, token, at);
	return 0;
}

int dsn_verp_parse(const uint8_t key[DSN_KEY_LEN], const char *addr, size_t len,
		   char notice_id[SELO_ID_TEXT + 1])
{
	notice_id[0] = '\0';
	if (!addr)
		return -1;
	if (len >= 2 && addr[0] == '<' && addr[len - 1] == '>') {
		addr++;
		len -= 2;
	}
	if (len == 0 || len > DSN_ADDR_MAX)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (addr[i] <= ' ' || addr[i] >= 127 || strchr("<>()[],;:\\\"", addr[i]))
			return -1; /* no address we make has these */
	const char *at = memrchr(addr, '@', len);
	if (!at || at == addr + len - 1)
		return -1;
	size_t local = (size_t)(at - addr);
	const char *plus = local <= DSN_LOCAL_MAX ? memrchr(addr, '+', local) : NULL;
	if (!plus || plus == addr || (size_t)(at - plus - 1) != DSN_VERP_TOKEN_LEN)
		return -1;
	uint8_t raw[VERP_RAW_LEN], mac[32];
	if (b32_decode(plus + 1, raw) != 0)
		return -1;
	verp_mac(key, raw, mac);
	if (!ct_equal(mac, raw + SELO_ID_BYTES, VERP_MAC_LEN))
		return -1;
	id_to_text(raw, notice_id);
	return 0;
}

/* ---- Spans, lines and header fields */

struct span {
	const char *p;
	size_t n;
};

/* The next line of s from *off, without its line end (LF or CRLF). 0 at the
 * end of s. */
static int line_next(struct span s, size_t *off, struct span *line)
{
	if (*off >= s.n)
		return 0;
	const char *p = s.p + *off;
	size_t rest = s.n - *off;
	const char *nl = memchr(p, '\n', rest);
	size_t len = nl ? (size_t)(nl - p) : rest;
	*off += nl ? len + 1 : len;
	if (nl && len && p[len - 1] == '\r')
		len--;
	*line = (struct span){p, len};
	return 1;
}

/* An entity: its header section and its body (after the empty line). */
struct entity {
	struct span head, body;
};

/* Splits s at its first empty line; a line longer than DSN_LINE_MAX in the
 * header section is refused (-1). No empty line: all header, no body. */
static int entity_split(struct span s, struct entity *e, const char *what, struct selo_err *err)
{
	size_t off = 0, start;
	struct span line;
	for (start = off; line_next(s, &off, &line); start = off) {
		if (line.n == 0) {
			e->head = (struct span){s.p, start};
			e->body = (struct span){s.p + off, s.n - off};
			return 0;
		}
		if (line.n > DSN_LINE_MAX)
			return err_set(err, 422, "not-a-dsn", "%s has a header line longer than %d bytes",
				       what, DSN_LINE_MAX);
	}
	e->head = s;
	e->body = (struct span){s.p + s.n, 0};
	return 0;
}

struct field {
	struct span name, value; /* value: after the colon, folding line ends included */
};

static int is_ftext(unsigned char c)
{
	return c > 32 && c < 127 && c != ':';
}

/* The next header field of a header section: 1 and *f, 0 at the end, -1 on
 * a line that is neither a field nor a continuation. A leading mbox
 * "From " line (some MTAs' pipes add one) is skipped. */
static int field_next(struct span head, size_t *off, struct field *f)
{
	struct span line;
	for (;;) {
		size_t start = *off;
		if (!line_next(head, off, &line))
			return 0;
		if (start == 0 && line.n >= 5 && !memcmp(line.p, "From ", 5))
			continue;
		size_t k = 0;
		while (k < line.n && is_ftext((unsigned char)line.p[k]))
			k++;
		size_t name_end = k;
		while (k < line.n && (line.p[k] == ' ' || line.p[k] == '\t'))
			k++; /* obsolete syntax: white space before the colon */
		if (name_end == 0 || k >= line.n || line.p[k] != ':')
			return -1;
		f->name = (struct span){line.p, name_end};
		const char *v = line.p + k + 1;
		const char *end = line.p + line.n;
		size_t peek = *off;
		struct span next;
		while (line_next(head, &peek, &next) && next.n && (next.p[0] == ' ' || next.p[0] == '\t')) {
			end = next.p + next.n;
			*off = peek;
		}
		f->value = (struct span){v, (size_t)(end - v)};
		return 1;
	}
}

static int name_is(struct span name, const char *want)
{
	return strlen(want) == name.n && !strncasecmp(name.p, want, name.n);
}

/* Copies a field value into out (cap bytes): folding undone (CR and LF
 * dropped), tabs as spaces, bytes outside printable ASCII as \xHH, and with
 * collapse, runs of spaces as one and no space at either end. A value that
 * does not fit ends in "...". */
static void value_copy(struct span v, char *out, size_t cap, int collapse)
{
	size_t k = 0;
	int cut = 0;
	for (size_t i = 0; i < v.n && !cut; i++) {
		unsigned char c = (unsigned char)v.p[i];
		char esc[5];
		size_t n = 1;
		if (c == '\r' || c == '\n')
			continue;
		if (c == '\t')
			c = ' ';
		if (c == ' ' && collapse && (k == 0 || out[k - 1] == ' '))
			continue;
		if (c >= 32 && c < 127)
			esc[0] = (char)c;
		else
			n = (size_t)snprintf(esc, sizeof(esc), "\\x%02X", c);
		if (k + n + 1 > cap) {
			cut = 1;
			break;
		}
		memcpy(out + k, esc, n);
		k += n;
	}
	if (collapse && k && out[k - 1] == ' ')
		k--;
	if (cut && cap > 4) {
		k = k < cap - 4 ? k : cap - 4;
		memcpy(out + k, "...", 3);
		k += 3;
	}
	out[k] = '\0';
}

/* ---- Content-Type */

struct ctype {
	char type[64], subtype[64];  /* lower case */
	char boundary[128];          /* "" when absent */
	char report_type[64];        /* lower case, "" when absent */
};

static const char *skip_cfws(const char *p)
{
	int depth = 0;
	for (; *p; p++) {
		if (*p == '(')
			depth++;
		else if (*p == ')' && depth)
			depth--;
		else if (*p == '\\' && depth && p[1])
			p++;
		else if (*p != ' ' && !depth)
			break;
	}
	return p;
}

static int is_token_char(unsigned char c)
{
	return c > 32 && c < 127 && !strchr("()<>@,;:\\\"/[]?=", c);
}

/* A token into out (lower case when lower), cut at cap; returns the end. */
static const char *dsn_token_copy(const char *p, char *out, size_t cap, int lower)
{
	size_t k = 0;
	for (; is_token_char((unsigned char)*p); p++)
		if (k + 1 < cap)
			out[k++] = lower ? (char)tolower((unsigned char)*p) : *p;
	out[k] = '\0';
	return p;
}

/* A parameter value: a quoted string (escapes undone) or a token. */
static const char *param_value(const char *p, char *out, size_t cap)
{
	if (*p != '"')
		return dsn_token_copy(p, out, cap, 0);
	size_t k = 0;
	for (p++; *p && *p != '"'; p++) {
		if (*p == '\\' && p[1])
			p++;
		if (k + 1 < cap)
			out[k++] = *p;
	}
	out[k] = '\0';
	return *p == '"' ? p + 1 : p;
}

/* type/subtype; params. Missing or unreadable: text/plain (RFC 2045 §5.2). */
static void ctype_parse(const char *v, struct ctype *ct)
{
	memset(ct, 0, sizeof(*ct));
	const char *p = dsn_token_copy(skip_cfws(v), ct->type, sizeof(ct->type), 1);
	p = skip_cfws(p);
	if (*p == '/')
		p = dsn_token_copy(skip_cfws(p + 1), ct->subtype, sizeof(ct->subtype), 1);
	if (!ct->type[0] || !ct->subtype[0]) {
		strcpy(ct->type, "text");
		strcpy(ct->subtype, "plain");
		return;
	}
	for (p = skip_cfws(p); *p == ';'; p = skip_cfws(p)) {
		char name[32], value[128];
		p = dsn_token_copy(skip_cfws(p + 1), name, sizeof(name), 1);
		p = skip_cfws(p);
		if (*p != '=')
			return;
		p = param_value(skip_cfws(p + 1), value, sizeof(value));
		if (!strcmp(name, "boundary") && !ct->boundary[0])
			snprintf(ct->boundary, sizeof(ct->boundary), "%s", value);
		else if (!strcmp(name, "report-type") && !ct->report_type[0])
			dsn_token_copy(value, ct->report_type, sizeof(ct->report_type), 1);
	}
}

static int ctype_is(const struct ctype *ct, const char *type, const char *subtype)
{
	return !strcmp(ct->type, type) && !strcmp(ct->subtype, subtype);
}

/* The header section's Content-Type and Content-Transfer-Encoding (lower
 * case, "" when absent). -1 on a malformed header line. */
static int entity_types(struct span head, struct ctype *ct, char cte[32])
{
	char v[DSN_LINE_MAX + 1];
	int have_ct = 0;
	size_t off = 0;
	struct field f;
	int r;
	cte[0] = '\0';
	ctype_parse("", ct);
	while ((r = field_next(head, &off, &f)) == 1) {
		if (name_is(f.name, "Content-Type") && !have_ct) {
			value_copy(f.value, v, sizeof(v), 0);
			ctype_parse(v, ct);
			have_ct = 1;
		} else if (name_is(f.name, "Content-Transfer-Encoding") && !cte[0]) {
			value_copy(f.value, v, sizeof(v), 1);
			dsn_token_copy(skip_cfws(v), cte, 32, 1);
		}
	}
	return r;
}

/* ---- multipart/report */

/* A delimiter line: "--" boundary, then "--" for the last one, then only
 * white space (RFC 2046 §5.1.1). 1 delimiter, 2 close delimiter, 0 not. */
static int delimiter_kind(struct span line, const char *boundary, size_t blen)
{
	if (line.n < 2 + blen || memcmp(line.p, "--", 2) || memcmp(line.p + 2, boundary, blen))
		return 0;
	size_t k = 2 + blen;
	int close = line.n >= k + 2 && !memcmp(line.p + k, "--", 2);
	for (k += close ? 2 : 0; k < line.n; k++)
		if (line.p[k] != ' ' && line.p[k] != '\t')
			return 0;
	return close ? 2 : 1;
}

/* The body parts between the boundaries. A report whose close delimiter is
 * missing (an MTA cut the returned message) ends at the end of the input. */
static int multipart_split(struct span body, const char *boundary, struct span *parts,
			   size_t *nparts, struct selo_err *err)
{
	size_t blen = strlen(boundary), off = 0, start = 0, part_start = 0;
	int inside = 0;
	struct span line;
	*nparts = 0;
	for (; line_next(body, &off, &line); start = off) {
		int kind = delimiter_kind(line, boundary, blen);
		if (!kind)
			continue;
		if (inside) {
			/* the line end before a delimiter belongs to the delimiter */
			size_t end = start;
			if (end > part_start && body.p[end - 1] == '\n')
				end--;
			if (end > part_start && body.p[end - 1] == '\r')
				end--;
			if (*nparts == DSN_MAX_PARTS)
				return err_set(err, 422, "not-a-dsn",
					       "the multipart/report has more than %d parts", DSN_MAX_PARTS);
			parts[(*nparts)++] = (struct span){body.p + part_start, end - part_start};
		}
		if (kind == 2) {
			inside = 0;
			break;
		}
		inside = 1;
		part_start = off;
	}
	if (inside) {
		if (*nparts == DSN_MAX_PARTS)
			return err_set(err, 422, "not-a-dsn", "the multipart/report has more than %d parts",
				       DSN_MAX_PARTS);
		parts[(*nparts)++] = (struct span){body.p + part_start, body.n - part_start};
	}
	if (*nparts == 0)
		return err_set(err, 422, "not-a-dsn",
			       "the multipart/report has no part delimited by its boundary");
	return 0;
}

/* A part's body as its sender meant it. The decoded bytes live in out;
 * *res points into out or into the input. */
static int body_decode(struct span body, const char *cte, struct buf *out, struct span *res,
		       const char *what, struct selo_err *err)
{
	if (!cte[0] || !strcmp(cte, "7bit") || !strcmp(cte, "8bit") || !strcmp(cte, "binary")) {
		*res = body;
		return 0;
	}
	if (!strcmp(cte, "quoted-printable")) {
		qp_decode(body.p, body.n, out);
	} else if (!strcmp(cte, "base64")) {
		buf_reserve(out, base64_decoded_max(body.n) + 1);
		ssize_t n = base64_decode_mime(body.p, body.n, (uint8_t *)out->data, out->cap - 1);
		if (n < 0)
			return err_set(err, 422, "not-a-dsn", "the %s part is not valid base64", what);
		out->len = (size_t)n;
		out->data[n] = '\0';
	} else {
		return err_set(err, 422, "not-a-dsn",
			       "the %s part has an unknown Content-Transfer-Encoding '%s'", what, cte);
	}
	*res = (struct span){buf_str(out), out->len};
	return 0;
}

/* ---- The delivery-status part (RFC 3464 §2) */

static void status_field(struct field *f, struct dsn *d, struct dsn_rcpt *r)
{
	static const struct {
		const char *name;
		size_t msg_off, rcpt_off, cap; /* one of the offsets is (size_t)-1 */
	} map[] = {
#define M(n, f) {n, offsetof(struct dsn, f), (size_t)-1, sizeof(((struct dsn *)0)->f)}
#define R(n, f) {n, (size_t)-1, offsetof(struct dsn_rcpt, f), sizeof(((struct dsn_rcpt *)0)->f)}
		M("Reporting-MTA", reporting_mta), M("Original-Envelope-Id", original_envelope_id),
		M("Arrival-Date", arrival_date), R("Final-Recipient", final_recipient),
		R("Original-Recipient", original_recipient), R("Remote-MTA", remote_mta),
		R("Diagnostic-Code", diagnostic), R("Last-Attempt-Date", last_attempt),
#undef M
#undef R
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (!name_is(f->name, map[i].name))
			continue;
		char *dst = r && map[i].rcpt_off != (size_t)-1 ? (char *)r + map[i].rcpt_off
			    : !r && map[i].msg_off != (size_t)-1 ? (char *)d + map[i].msg_off
								   : NULL;
		if (dst && !dst[0])
			value_copy(f->value, dst, map[i].cap, 1);
		return;
	}
	char v[64];
	if (r && name_is(f->name, "Action") && !r->action[0]) {
		value_copy(f->value, v, sizeof(v), 1);
		dsn_token_copy(skip_cfws(v), r->action, sizeof(r->action), 1);
	} else if (r && name_is(f->name, "Status") && !r->status[0]) {
		value_copy(f->value, v, sizeof(v), 1);
		size_t n = strspn(v, "0123456789.");
		if (n < sizeof(r->status))
			snprintf(r->status, sizeof(r->status), "%.*s", (int)n, v);
	}
}

/* class.subject.detail: class 2, 4 or 5, each number 1 to 3 digits. */
static int status_valid(const char *s)
{
	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return 0;
	for (int part = 0; part < 3; part++) {
		size_t n = strspn(s, "0123456789");
		if (n == 0 || n > 3)
			return 0;
		s += n;
		if (part < 2 && *s++ != '.')
			return 0;
	}
	return *s == '\0';
}

static int action_valid(const char *a)
{
	static const char *const known[] = {"failed", "delayed", "delivered", "relayed", "expanded"};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(a, known[i]))
			return 1;
	return 0;
}

static int rcpt_check(const struct dsn_rcpt *r, size_t i, struct selo_err *err)
{
	if (!r->final_recipient[0])
		return err_set(err, 422, "not-a-dsn", "recipient block %zu has no Final-Recipient", i + 1);
	if (!r->action[0] || !action_valid(r->action))
		return err_set(err, 422, "not-a-dsn",
			       "recipient block %zu has no Action of failed, delayed, delivered, "
			       "relayed or expanded", i + 1);
	if (!status_valid(r->status))
		return err_set(err, 422, "not-a-dsn",
			       "recipient block %zu has no Status of the form 5.1.1", i + 1);
	return 0;
}

/* One group of fields (lines up to an empty line): the per-message fields
 * first, then one per recipient. A first group with a Final-Recipient is
 * taken as a recipient's (some MTAs leave the per-message fields out). */
static int status_group(struct span g, struct dsn *d, int first, struct selo_err *err)
{
	struct field f;
	size_t off = 0;
	int r, is_rcpt = !first;
	while (first && (r = field_next(g, &off, &f)) == 1)
		if (name_is(f.name, "Final-Recipient"))
			is_rcpt = 1;
	struct dsn_rcpt *rc = NULL;
	if (is_rcpt) {
		if (d->nrcpt == DSN_MAX_RCPTS)
			return err_set(err, 422, "not-a-dsn", "the report has more than %d recipient blocks",
				       DSN_MAX_RCPTS);
		rc = &d->rcpt[d->nrcpt++];
	}
	for (off = 0; (r = field_next(g, &off, &f)) == 1;)
		status_field(&f, d, rc);
	if (r < 0)
		return err_set(err, 422, "not-a-dsn",
			       "the delivery-status part has a line that is not a field");
	return rc ? rcpt_check(rc, d->nrcpt - 1, err) : 0;
}

static int span_blank(struct span s)
{
	for (size_t i = 0; i < s.n; i++)
		if (s.p[i] != ' ' && s.p[i] != '\t' && s.p[i] != '\r')
			return 0;
	return 1;
}

static int status_parse(struct span s, struct dsn *d, struct selo_err *err)
{
	size_t off = 0, start = 0, group_start = 0;
	int in_group = 0, first = 1;
	struct span line;
	for (;;) {
		int more = line_next(s, &off, &line);
		if (more && line.n > DSN_LINE_MAX)
			return err_set(err, 422, "not-a-dsn",
				       "the delivery-status part has a line longer than %d bytes",
				       DSN_LINE_MAX);
		int blank = !more || span_blank(line);
		if (blank && in_group) {
			struct span g = {s.p + group_start, start - group_start};
			if (status_group(g, d, first, err) != 0)
				return -1;
			first = 0;
			in_group = 0;
		} else if (!blank && !in_group) {
			in_group = 1;
			group_start = start;
		}
		if (!more)
			break;
		start = off;
	}
	if (d->nrcpt == 0)
		return err_set(err, 422, "not-a-dsn", "the delivery-status part has no recipient block");
	return 0;
}

/* ---- The returned message's headers */

/* The msg-id inside angle brackets, else the whole value if it is one
 * word; "" when there is none. */
static void message_id_copy(struct span v, char *out, size_t cap)
{
	char tmp[DSN_LINE_MAX + 1];
	value_copy(v, tmp, sizeof(tmp), 1);
	char *lt = strchr(tmp, '<');
	char *gt = lt ? strchr(lt, '>') : NULL;
	char *id = tmp;
	if (lt && gt) {
		*gt = '\0';
		id = lt + 1;
	}
	size_t n = strlen(id);
	if (!n || n >= cap || strchr(id, ' ') || strchr(id, '<') || strchr(id, '>'))
		n = 0; /* none, or too long to be one we made */
	memcpy(out, id, n);
	out[n] = '\0';
}

/* Only the header section counts; a header section cut short (MTAs cut
 * returned messages) is read up to its first unreadable line. */
static void returned_headers(struct span body, struct dsn *d)
{
	struct entity e;
	d->headers_returned = 1;
	if (entity_split(body, &e, "the returned message", NULL) != 0)
		return;
	size_t off = 0;
	struct field f;
	while (field_next(e.head, &off, &f) == 1) {
		if (name_is(f.name, "Message-ID")) {
			message_id_copy(f.value, d->message_id, sizeof(d->message_id));
			return;
		}
	}
}

static int is_status_type(const struct ctype *ct)
{
	return ctype_is(ct, "message", "delivery-status") ||
	       ctype_is(ct, "message", "global-delivery-status");
}

static int is_returned_type(const struct ctype *ct)
{
	return ctype_is(ct, "text", "rfc822-headers") || ctype_is(ct, "message", "rfc822") ||
	       ctype_is(ct, "message", "global") || ctype_is(ct, "message", "global-headers");
}

/* Reads the status part and the returned headers from the report's parts. */
static int report_parts(const struct span *parts, size_t n, struct dsn *d, struct selo_err *err)
{
	int have_status = 0;
	struct buf dec = BUF_INIT;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct entity e;
		struct ctype ct;
		char cte[32];
		struct span body;
		if (entity_split(parts[i], &e, "a part of the report", err) != 0) {
			rc = -1;
			break;
		}
		/* a part we cannot read is not one we need: the human text, say */
		if (entity_types(e.head, &ct, cte) < 0)
			continue;
		int status = is_status_type(&ct) && !have_status;
		int returned = is_returned_type(&ct) && !d->headers_returned;
		if (!status && !returned)
			continue;
		buf_reset(&dec);
		rc = body_decode(e.body, cte, &dec, &body, status ? "delivery-status" : "returned", err);
		if (rc == 0 && status) {
			have_status = 1;
			rc = status_parse(body, d, err);
		} else if (rc == 0) {
			returned_headers(body, d);
		}
	}
	buf_free(&dec);
	if (rc == 0 && !have_status)
		return err_set(err, 422, "not-a-dsn",
			       "not a delivery status notification: the report has no "
			       "message/delivery-status part");
	return rc;
}

int dsn_parse(const char *msg, size_t len, struct dsn *out, struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	if (!msg || len == 0)
		return err_set(err, 422, "not-a-dsn", "the message is empty");
	if (len > DSN_MAX_BYTES)
		return err_set(err, 422, "not-a-dsn",
			       "the message has %zu bytes, more than the %d a bounce may have", len,
			       DSN_MAX_BYTES);
	struct entity top;
	struct ctype ct;
	char cte[32];
	if (entity_split((struct span){msg, len}, &top, "the message", err) != 0)
		return -1;
	if (entity_types(top.head, &ct, cte) < 0)
		return err_set(err, 422, "not-a-dsn",
			       "not an Internet message: a header line is not a field");
	if (!ctype_is(&ct, "multipart", "report"))
		return err_set(err, 422, "not-a-dsn",
			       "not a delivery status notification: its Content-Type is %s/%s, not "
			       "multipart/report",
			       ct.type, ct.subtype);
	if (strcmp(ct.report_type, "delivery-status") != 0 &&
	    strcmp(ct.report_type, "global-delivery-status") != 0)
		return err_set(err, 422, "not-a-dsn",
			       "not a delivery status notification: a multipart/report of "
			       "report-type=%s, not delivery-status",
			       ct.report_type[0] ? ct.report_type : "(none)");
	if (!ct.boundary[0])
		return err_set(err, 422, "not-a-dsn", "the multipart/report has no boundary parameter");
	struct span parts[DSN_MAX_PARTS];
	size_t n;
	if (multipart_split(top.body, ct.boundary, parts, &n, err) != 0)
		return -1;
	int r = report_parts(parts, n, out, err);
	if (r != 0)
		memset(out, 0, sizeof(*out));
	return r;
}

int dsn_failure(const struct dsn *d, struct selo_err *err)
{
	for (size_t i = 0; i < d->nrcpt; i++) {
		const struct dsn_rcpt *r = &d->rcpt[i];
		if (strcmp(r->action, "failed") != 0)
			continue;
		if (r->status[0] == '2')
			return err_set(err, 422, "not-a-failure",
				       "Action: failed with Status %s is contradictory; nothing recorded",
				       r->status);
		return (int)i;
	}
	return err_set(err, 422, "not-a-failure", "not a failure DSN (Action: %s)",
		       d->nrcpt ? d->rcpt[0].action : "none");
}

/* ---- Finding our address in the message's headers */

/* Tries every word of an address list that has an '@': display names,
 * comments and brackets fall away, and only an address with a genuine MAC
 * can match, so reading generously is safe. */
static int verp_in_value(const uint8_t key[DSN_KEY_LEN], const char *v, char id[SELO_ID_TEXT + 1],
			 char addr[DSN_ADDR_MAX + 1])
{
	static const char seps[] = " ,<>\"();:[]";
	for (const char *p = v; *p;) {
		p += strspn(p, seps);
		size_t n = strcspn(p, seps);
		if (n && memchr(p, '@', n) && dsn_verp_parse(key, p, n, id) == 0) {
			if (addr)
				snprintf(addr, DSN_ADDR_MAX + 1, "%.*s", (int)n, p);
			return 0;
		}
		p += n;
	}
	return -1;
}

int dsn_find_verp(const uint8_t key[DSN_KEY_LEN], const char *msg, size_t len,
		  char notice_id[SELO_ID_TEXT + 1], char addr[DSN_ADDR_MAX + 1],
		  struct selo_err *err)
{
	static const char *const names[] = {"Delivered-To", "X-Original-To", "Envelope-To", "To"};
	notice_id[0] = '\0';
	if (addr)
		addr[0] = '\0';
	struct entity top;
	if (!msg || len > DSN_MAX_BYTES ||
	    entity_split((struct span){msg, len}, &top, "the message", err) != 0)
		return err_set(err, 422, "not-ours", "the message cannot be read (empty, too large, or "
			       "a header line longer than %d bytes)", DSN_LINE_MAX);
	char v[DSN_LINE_MAX + 1];
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		size_t off = 0;
		struct field f;
		while (field_next(top.head, &off, &f) == 1) {
			if (!name_is(f.name, names[k]))
				continue;
			value_copy(f.value, v, sizeof(v), 1);
			if (verp_in_value(key, v, notice_id, addr) == 0)
				return 0;
		}
	}
	return err_set(err, 422, "not-ours",
		       "none of the Delivered-To, X-Original-To, Envelope-To or To addresses is a "
		       "bounce address of ours");
}
