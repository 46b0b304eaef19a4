/* template.c: notice templates (see template.h). Loading reads each
 * template's four files from the embedded table or from a directory, parses
 * template.ini with inih and compiles subject, text and HTML into segments
 * (literal text, placeholders, conditional sections). Any problem fails the
 * whole load with the template, the file, the line and the problem named, so
 * a bad template stops `selo serve` at start instead of a notice at send
 * time. template_check reports every bad variable as a field error (422
 * validation-failed); template_render checks again first, so it never emits a
 * value that the check would refuse. A loaded set is immutable and may be
 * shared by threads. Allocation failure aborts, as in buf.c. */
#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "selo/codec.h"
#include "selo/fileio.h"
#include "selo/template.h"

#define TEMPLATE_FILE_MAX ((size_t)256 * 1024) /* a notice, not a book */
#define TEMPLATE_COUNT_MAX 256
#define TEMPLATE_NAME_MAX 64
#define VAR_NAME_MAX 64
#define SECTION_DEPTH_MAX 8
#define DECIMAL_EXP_MAX 40 /* reals beyond 1e40 keep their exponent form */

enum file_id { F_INI, F_SUBJECT, F_TEXT, F_HTML, F_COUNT };
static const char *const file_names[F_COUNT] = {"template.ini", "subject.txt", "body.txt",
						"body.html"};

enum filter { FILTER_NONE, FILTER_BRL, FILTER_DATA, FILTER_URL, FILTER_COUNT };
static const char *const filter_names[FILTER_COUNT] = {"", "brl", "data", "url"};

enum seg_kind { SEG_TEXT, SEG_VAR, SEG_IF, SEG_UNLESS, SEG_END };

struct segment {
	enum seg_kind kind;
	size_t off, len;    /* SEG_TEXT: a slice of the part's source */
	size_t var;         /* every other kind: index into template.vars */
	enum filter filter; /* SEG_VAR */
	size_t end;         /* SEG_IF, SEG_UNLESS: index of the matching SEG_END */
};

/* One compiled file: its source text (segments point into it). */
struct part {
	char *src;
	size_t len;
	struct segment *segs;
	size_t nsegs, cap;
};

struct variable {
	char *name;
	int required;
	unsigned filters; /* bit (1u << filter) for each filter it is used with */
	int used;
};

struct template {
	char *name, *language, *description;
	struct variable *vars; /* required ones first, each in template.ini order */
	size_t nvars, nrequired;
	const char **var_names; /* the same order, for template_vars() */
	struct part parts[3];   /* subject, text, html: file id - 1 */
};

struct template_set {
	struct template *t; /* sorted by name */
	size_t n;
	const char **names;
};

/* ------------------------------------------------------------ text checks */

/* Offset of the first byte that is not valid UTF-8, or n when all is. */
static size_t utf8_invalid_at(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	uint32_t cp;
	while (i < n) {
		size_t l = utf8_decode(u + i, n - i, &cp);
		if (!l)
			return i;
		i += l;
	}
	return n;
}

/* Control characters are C0 (below 0x20), DEL and C1 (U+0080..U+009F): in a
 * value they could break a header line or hide text. s must be valid UTF-8.
 * Returns the offset of the first, or n; *cp gets its code point. */
static size_t control_at(const char *s, size_t n, uint32_t *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		size_t l = utf8_decode(u + i, n - i, cp);
		if (!l)
			l = 1, *cp = u[i];
		if (*cp < 0x20 || (*cp >= 0x7F && *cp <= 0x9F))
			return i;
		i += l;
	}
	return n;
}

static void control_name(uint32_t cp, char *out, size_t cap)
{
	static const struct { uint32_t cp; const char *name; } names[] = {
		{0x00, "NUL"}, {0x09, "TAB"}, {0x0A, "LF"}, {0x0D, "CR"}, {0x7F, "DEL"},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (names[i].cp == cp) {
			snprintf(out, cap, "%s", names[i].name);
			return;
		}
	}
	snprintf(out, cap, "U+%04X", (unsigned)cp);
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_name_char(char c)
{
	return is_name_start(c) || is_digit(c);
}

/* Variable names are identifiers, so they read the same in JSON, in
 * template.ini and inside {{ }}. */
static int var_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > VAR_NAME_MAX || !is_name_start(s[0]))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!is_name_char(s[i]))
			return 0;
	return 1;
}

/* Template names travel in API requests and file paths: keep them plain. */
static int template_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > TEMPLATE_NAME_MAX)
		return 0;
	if (!((s[0] >= 'a' && s[0] <= 'z') || is_digit(s[0])))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || is_digit(s[i]) || s[i] == '-' || s[i] == '_'))
			return 0;
	return 1;
}

static size_t line_of(const char *src, size_t off)
{
	size_t line = 1;
	for (size_t i = 0; i < off; i++)
		if (src[i] == '\n')
			line++;
	return line;
}

/* ---------------------------------------------------------------- filters */

int filter_brl(const char *value, struct buf *out)
{
	const char *s = value;
	int neg = 0;
	if (*s == '-')
		neg = 1, s++;
	const char *ip = s;
	while (is_digit(*s))
		s++;
	size_t ilen = (size_t)(s - ip);
	const char *fp = "";
	size_t flen = 0;
	if (*s == '.') {
		fp = ++s;
		while (is_digit(*s))
			s++;
		flen = (size_t)(s - fp);
		if (flen < 1 || flen > 2)
			return -1;
	}
	if (ilen == 0 || *s != '\0')
		return -1;
	while (ilen > 1 && *ip == '0') /* "007.5" is 7,50 */
		ip++, ilen--;
	char frac[3] = {flen > 0 ? fp[0] : '0', flen > 1 ? fp[1] : '0', '\0'};
	int zero = ilen == 1 && ip[0] == '0' && frac[0] == '0' && frac[1] == '0';
	if (neg && !zero) /* "-0.00" is no debt, and no credit either */
		buf_putc(out, '-');
	buf_puts(out, "R$ ");
	for (size_t i = 0; i < ilen; i++) {
		if (i > 0 && (ilen - i) % 3 == 0)
			buf_putc(out, '.');
		buf_putc(out, ip[i]);
	}
	buf_putc(out, ',');
	buf_puts(out, frac);
	return 0;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

int filter_data(const char *value, struct buf *out)
{
	const char *s = value;
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !is_digit(s[i]))
			return -1;
	int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	int m = (s[5] - '0') * 10 + (s[6] - '0');
	int d = (s[8] - '0') * 10 + (s[9] - '0');
	if (y < 1 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
		return -1;
	buf_printf(out, "%.2s/%.2s/%.4s", s + 8, s + 5, s);
	return 0;
}

int filter_url(const char *value, struct buf *out)
{
	const char *s = value;
	size_t skip;
	if (strncasecmp(s, "https://", 8) == 0)
		skip = 8;
	else if (strncasecmp(s, "http://", 7) == 0)
		skip = 7;
	else
		return -1;
	const char *host = s + skip;
	if (*host == '\0' || *host == '/' || *host == '?' || *host == '#')
		return -1;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		/* ASCII only (IRIs must be percent-encoded), nothing that ends
		 * an attribute or a URL in plain text. */
		if (*p <= 0x20 || *p >= 0x7F || strchr("\"<>\\`", *p))
			return -1;
	}
	buf_puts(out, s);
	return 0;
}

void html_escape(struct buf *out, const char *s, size_t n)
{
	size_t run = 0; /* bytes copied in one append, not one by one */
	for (size_t i = 0; i < n; i++) {
		const char *rep = NULL;
		switch (s[i]) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default: continue;
		}
		buf_append(out, s + run, i - run);
		buf_puts(out, rep);
		run = i + 1;
	}
	buf_append(out, s + run, n - run);
}

/* ---------------------------------------------------------- number text */

/* The shortest %g form that reads back as d: what a person wrote, 1234.56,
 * not the 17-digit 1234.5599999999999. */
static void real_shortest(double d, char *out, size_t cap)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, cap, "%.*g", prec, d);
		if (strtod(out, NULL) == d)
			break;
	}
	for (char *p = out; *p; p++) /* a locale may have written ',' */
		if (*p == ',')
			*p = '.';
}

/* Writes a %g number ("-1.5e+05", "0.001") as plain decimal text ("-150000",
 * "0.001"). Returns -1 when the exponent is beyond DECIMAL_EXP_MAX. */
static int decimal_expand(const char *s, struct buf *out)
{
	int neg = 0;
	if (*s == '-')
		neg = 1, s++;
	char digits[32];
	size_t nd = 0;
	long point = -1;
	for (; is_digit(*s) || *s == '.'; s++) {
		if (*s == '.')
			point = (long)nd;
		else if (nd < sizeof(digits))
			digits[nd++] = *s;
	}
	if (point < 0)
		point = (long)nd;
	if (*s == 'e' || *s == 'E') {
		long e = strtol(s + 1, NULL, 10);
		if (e > DECIMAL_EXP_MAX || e < -DECIMAL_EXP_MAX)
			return -1;
		point += e;
	}
	size_t lead = 0;
	while (lead < nd && digits[lead] == '0')
		lead++, point--;
	while (nd > lead && digits[nd - 1] == '0')
		nd--;
	const char *d = digits + lead;
	size_t n = nd - lead;
	if (n == 0) {
		buf_putc(out, '0');
		return 0;
	}
	if (neg)
		buf_putc(out, '-');
	if (point <= 0) {
		buf_puts(out, "0.");
		for (long i = point; i < 0; i++)
			buf_putc(out, '0');
		buf_append(out, d, n);
	} else if ((size_t)point >= n) {
		buf_append(out, d, n);
		for (size_t i = n; i < (size_t)point; i++)
			buf_putc(out, '0');
	} else {
		buf_append(out, d, (size_t)point);
		buf_putc(out, '.');
		buf_append(out, d + point, n - (size_t)point);
	}
	return 0;
}

static void real_text(double d, struct buf *out)
{
	char s[40];
	real_shortest(d, s, sizeof(s));
	if (decimal_expand(s, out) < 0)
		buf_puts(out, s);
}

/* Rounds plain decimal text to 2 decimals, half away from zero (0.125 ->
 * 0.13, -0.125 -> -0.13), on the digits, so no binary surprise. */
static void decimal_round2(const char *s, struct buf *out)
{
	const char *dot = strchr(s, '.');
	if (!dot || strlen(dot + 1) <= 2) {
		buf_puts(out, s);
		return;
	}
	int neg = s[0] == '-';
	const char *ip = s + neg;
	struct buf kept = BUF_INIT; /* integer digits and 2 decimals, no point */
	buf_append(&kept, ip, (size_t)(dot - ip));
	buf_append(&kept, dot + 1, 2);
	int carry = dot[3] >= '5';
	for (size_t i = kept.len; carry && i > 0; i--) {
		carry = kept.data[i - 1] == '9';
		kept.data[i - 1] = carry ? '0' : (char)(kept.data[i - 1] + 1);
	}
	if (neg)
		buf_putc(out, '-');
	if (carry) /* 9.995 -> 10.00 */
		buf_putc(out, '1');
	buf_append(out, kept.data, kept.len - 2);
	buf_putc(out, '.');
	buf_append(out, kept.data + kept.len - 2, 2);
	buf_free(&kept);
}

/* A JSON real as an amount: its shortest text rounded to centavos. */
static int real_amount(double d, struct buf *out)
{
	if (d > -0.001 && d < 0.001) { /* below half a centavo: also 1e-50 */
		buf_putc(out, '0');
		return 0;
	}
	char s[40];
	struct buf plain = BUF_INIT;
	real_shortest(d, s, sizeof(s));
	if (decimal_expand(s, &plain) < 0) {
		buf_free(&plain);
		return -1;
	}
	decimal_round2(buf_str(&plain), out);
	buf_free(&plain);
	return 0;
}

/* -------------------------------------------------------------- values */

/* A value that counts as not given: absent, null, "" or only spaces. */
static int value_blank(const json_t *v)
{
	if (json_is_number(v))
		return 0;
	if (!json_is_string(v))
		return 1;
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ')
			return 0;
	return 1;
}

/* The text a value stands for: a string as is, a number in plain decimal. */
static int value_text(const json_t *v, struct buf *out)
{
	if (json_is_string(v))
		buf_append(out, json_string_value(v), json_string_length(v));
	else if (json_is_integer(v))
		buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		real_text(json_real_value(v), out);
	else
		return -1;
	return 0;
}

/* Formats v for one placeholder. An absent or blank value renders as "",
 * whatever the filter (check has already refused a blank required one). */
static int value_format(const json_t *v, enum filter f, struct buf *out)
{
	if (!v || (f != FILTER_NONE && value_blank(v)))
		return 0;
	if (f == FILTER_NONE)
		return value_text(v, out);
	if (!json_is_string(v) && !(f == FILTER_BRL && json_is_number(v)))
		return -1;
	struct buf txt = BUF_INIT;
	int rc = -1;
	if (json_is_real(v))
		rc = real_amount(json_real_value(v), &txt);
	else
		rc = value_text(v, &txt);
	if (rc == 0) {
		switch (f) {
		case FILTER_BRL: rc = filter_brl(buf_str(&txt), out); break;
		case FILTER_DATA: rc = filter_data(buf_str(&txt), out); break;
		case FILTER_URL: rc = filter_url(buf_str(&txt), out); break;
		default: rc = -1; break;
		}
	}
	buf_free(&txt);
	return rc;
}

/* ------------------------------------------------------------ loading */

struct source {
	char *name;
	struct buf files[F_COUNT];
	int have[F_COUNT];
};

struct sources {
	struct source *v;
	size_t n, cap;
};

static void sources_free(struct sources *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].name);
		for (int f = 0; f < F_COUNT; f++)
			buf_free(&s->v[i].files[f]);
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static struct source *sources_get(struct sources *s, const char *name, size_t nlen)
{
	for (size_t i = 0; i < s->n; i++)
		if (strlen(s->v[i].name) == nlen && memcmp(s->v[i].name, name, nlen) == 0)
			return &s->v[i];
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		s->v = xreallocarray(s->v, s->cap, sizeof(*s->v));
	}
	struct source *src = &s->v[s->n++];
	memset(src, 0, sizeof(*src));
	src->name = xstrndup(name, nlen);
	return src;
}

static int file_id_of(const char *file)
{
	for (int f = 0; f < F_COUNT; f++)
		if (strcmp(file, file_names[f]) == 0)
			return f;
	return -1;
}

static int sources_from_embedded(struct sources *s, struct selo_err *err)
{
	for (const struct embedded_file *e = selo_embedded_templates; e->path; e++) {
		const char *slash = strchr(e->path, '/');
		if (!slash)
			continue;
		int f = file_id_of(slash + 1);
		if (f < 0) /* a README or an editor's backup: not ours */
			continue;
		struct source *src = sources_get(s, e->path, (size_t)(slash - e->path));
		if (src->files[f].len > 0 || e->len > TEMPLATE_FILE_MAX)
			return err_set(err, 500, "template-invalid",
				       "embedded template file %s is duplicated or too large", e->path);
		buf_append(&src->files[f], e->data, e->len);
		src->have[f] = 1;
		if (s->n > TEMPLATE_COUNT_MAX)
			return err_set(err, 500, "template-invalid",
				       "more than %d embedded templates", TEMPLATE_COUNT_MAX);
	}
	return 0;
}

static int source_read_dir(struct source *src, const char *path, struct selo_err *err)
{
	struct buf fpath = BUF_INIT;
	int rc = 0;
	for (int f = 0; f < F_COUNT && rc == 0; f++) {
		buf_reset(&fpath);
		buf_printf(&fpath, "%s/%s", path, file_names[f]);
		struct stat st;
		if (stat(fpath.data, &st) != 0 && errno == ENOENT)
			continue; /* reported as missing, with the others, later */
		rc = file_read(fpath.data, TEMPLATE_FILE_MAX, &src->files[f], err);
		if (rc == 0)
			src->have[f] = 1;
	}
	buf_free(&fpath);
	return rc;
}

static int sources_from_dir(const char *dir, struct sources *s, struct selo_err *err)
{
	DIR *d = opendir(dir);
	if (!d)
		return err_set(err, 500, "template-invalid", "cannot open template directory %s: %s",
			       dir, strerror(errno));
	struct buf path = BUF_INIT;
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		buf_reset(&path);
		buf_printf(&path, "%s/%s", dir, de->d_name);
		struct stat st;
		if (stat(path.data, &st) != 0 || !S_ISDIR(st.st_mode))
			continue; /* a README beside the templates is fine */
		if (s->n >= TEMPLATE_COUNT_MAX) {
			rc = err_set(err, 500, "template-invalid", "more than %d templates in %s",
				     TEMPLATE_COUNT_MAX, dir);
			break;
		}
		struct source *src = sources_get(s, de->d_name, strlen(de->d_name));
		rc = source_read_dir(src, path.data, err);
	}
	closedir(d);
	buf_free(&path);
	return rc;
}

/* -------------------------------------------------------- load errors */

static int load_error(struct selo_err *err, const char *tname, const char *file,
		      const char *src, size_t off, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static int load_error(struct selo_err *err, const char *tname, const char *file,
		      const char *src, size_t off, const char *fmt, ...)
{
	char what[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (file && src)
		return err_set(err, 500, "template-invalid", "template %s, %s line %zu: %s", tname,
			       file, line_of(src, off), what);
	if (file)
		return err_set(err, 500, "template-invalid", "template %s, %s: %s", tname, file,
			       what);
	return err_set(err, 500, "template-invalid", "template %s: %s", tname, what);
}

/* ------------------------------------------------------- template.ini */

struct ini_state {
	struct buf language, description, required, optional;
	char bad[160]; /* the first problem the handler found */
};

static void append_spaced(struct buf *b, const char *value, const char *sep)
{
	if (b->len)
		buf_puts(b, sep);
	buf_puts(b, value);
}

/* inih calls this once per value, and again for each continuation line. */
static int ini_on_value(void *user, const char *section, const char *name, const char *value)
{
	struct ini_state *st = user;
	if (strcmp(section, "template") != 0) {
		snprintf(st->bad, sizeof(st->bad), "%s outside the [template] section", name);
		return 0;
	}
	if (strcmp(name, "required") == 0)
		append_spaced(&st->required, value, ",");
	else if (strcmp(name, "optional") == 0)
		append_spaced(&st->optional, value, ",");
	else if (strcmp(name, "language") == 0)
		append_spaced(&st->language, value, " ");
	else if (strcmp(name, "description") == 0)
		append_spaced(&st->description, value, " ");
	else {
		snprintf(st->bad, sizeof(st->bad),
			 "unknown key \"%.40s\" (known: language, description, required, optional)",
			 name);
		return 0;
	}
	return 1;
}

static int var_find(const struct template *t, const char *name, size_t n)
{
	for (size_t i = 0; i < t->nvars; i++)
		if (strlen(t->vars[i].name) == n && memcmp(t->vars[i].name, name, n) == 0)
			return (int)i;
	return -1;
}

/* Adds each name of a comma-separated list as a variable. */
static int vars_add_list(struct template *t, const char *list, int required, struct selo_err *err)
{
	const char *p = list;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *start = p;
		while (*p && *p != ',')
			p++;
		const char *end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		size_t n = (size_t)(end - start);
		if (n == 0)
			continue;
		if (!var_name_ok(start, n))
			return load_error(err, t->name, "template.ini", NULL, 0,
					  "\"%.*s\" is not a variable name (letters, digits and _, "
					  "at most %d)",
					  (int)(n > 64 ? 64 : n), start, VAR_NAME_MAX);
		if (var_find(t, start, n) >= 0)
			return load_error(err, t->name, "template.ini", NULL, 0,
					  "variable %.*s is listed twice", (int)n, start);
		t->vars = xreallocarray(t->vars, t->nvars + 1, sizeof(*t->vars));
		t->vars[t->nvars++] = (struct variable){.name = xstrndup(start, n), .required = required};
	}
	return 0;
}

static int ini_load(struct template *t, const struct buf *ini, struct selo_err *err)
{
	struct ini_state st = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, ""};
	int line = ini_parse_string(buf_str(ini), ini_on_value, &st);
	int rc = 0;
	if (line != 0)
		rc = err_set(err, 500, "template-invalid", "template %s, template.ini line %d: %s",
			     t->name, line,
			     st.bad[0] ? st.bad
				       : "not \"name = value\" (or a line longer than 197 bytes)");
	if (rc == 0)
		rc = vars_add_list(t, buf_str(&st.required), 1, err);
	t->nrequired = t->nvars;
	if (rc == 0)
		rc = vars_add_list(t, buf_str(&st.optional), 0, err);
	if (rc == 0) {
		t->language = xstrndup(st.language.len ? buf_str(&st.language) : "pt-BR",
				       st.language.len ? st.language.len : 5);
		t->description = xstrndup(buf_str(&st.description), st.description.len);
	}
	buf_free(&st.language);
	buf_free(&st.description);
	buf_free(&st.required);
	buf_free(&st.optional);
	return rc;
}

/* ----------------------------------------------------------- compiling */

static struct segment *seg_add(struct part *p, enum seg_kind kind)
{
	if (p->nsegs == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->segs = xreallocarray(p->segs, p->cap, sizeof(*p->segs));
	}
	struct segment *s = &p->segs[p->nsegs++];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	return s;
}

static void seg_text(struct part *p, size_t off, size_t end)
{
	if (end <= off)
		return;
	struct segment *s = seg_add(p, SEG_TEXT);
	s->off = off;
	s->len = end - off;
}

/* A section tag alone on its line takes the whole line with it, so that
 *     {{#contato}}
 *     Contato: {{contato}}
 *     {{/contato}}
 * leaves no blank line whether contato is given or not. */
static int tag_standalone(const char *src, size_t len, size_t start, size_t end,
			  size_t *line_start, size_t *next)
{
	size_t a = start;
	while (a > 0 && (src[a - 1] == ' ' || src[a - 1] == '\t'))
		a--;
	if (a > 0 && src[a - 1] != '\n')
		return 0;
	size_t b = end;
	while (b < len && (src[b] == ' ' || src[b] == '\t'))
		b++;
	if (b + 1 < len && src[b] == '\r' && src[b + 1] == '\n')
		b += 2;
	else if (b < len && src[b] == '\n')
		b++;
	else if (b < len)
		return 0;
	*line_start = a;
	*next = b;
	return 1;
}

static const char *skip_blank(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* What one {{ ... }} says: an optional sigil (# ^ /), a name, a filter. */
struct tag {
	char sigil; /* 0, '#', '^' or '/' */
	const char *name;
	size_t nlen;
	enum filter filter;
};

static int tag_parse(const struct template *t, const char *file, const char *src, size_t off,
		     const char *in, const char *end, struct tag *tag, struct selo_err *err)
{
	const char *p = skip_blank(in, end);
	tag->sigil = 0;
	tag->filter = FILTER_NONE;
	if (p < end && (*p == '#' || *p == '^' || *p == '/'))
		tag->sigil = *p++;
	p = skip_blank(p, end);
	tag->name = p;
	while (p < end && is_name_char(*p))
		p++;
	tag->nlen = (size_t)(p - tag->name);
	if (!var_name_ok(tag->name, tag->nlen))
		return load_error(err, t->name, file, src, off,
				  "\"{{%.*s}}\" does not name a variable (letters, digits and _)",
				  (int)(end - in > 64 ? 64 : end - in), in);
	p = skip_blank(p, end);
	if (p < end && *p == '|') {
		p = skip_blank(p + 1, end);
		const char *f = p;
		while (p < end && is_name_char(*p))
			p++;
		size_t flen = (size_t)(p - f);
		for (int i = 1; i < FILTER_COUNT; i++)
			if (strlen(filter_names[i]) == flen && memcmp(filter_names[i], f, flen) == 0)
				tag->filter = (enum filter)i;
		if (tag->filter == FILTER_NONE)
			return load_error(err, t->name, file, src, off,
					  "unknown filter \"%.*s\" (known: brl, data, url)",
					  (int)(flen > 32 ? 32 : flen), f);
		if (tag->sigil)
			return load_error(err, t->name, file, src, off,
					  "a section tag {{%c%.*s}} takes no filter", tag->sigil,
					  (int)tag->nlen, tag->name);
		p = skip_blank(p, end);
	}
	if (p < end)
		return load_error(err, t->name, file, src, off,
				  "unexpected \"%c\" in a placeholder (write {{name}} or "
				  "{{name|filter}})",
				  *p);
	return 0;
}

/* Compiles the source of one part into segments, checking every tag. */
static int part_compile(struct template *t, enum file_id fid, struct selo_err *err)
{
	struct part *p = &t->parts[fid - 1];
	const char *file = file_names[fid], *src = p->src;
	size_t len = p->len, pos = 0;
	size_t open[SECTION_DEPTH_MAX], depth = 0;
	while (pos < len) {
		const char *o = strstr(src + pos, "{{");
		if (!o) {
			seg_text(p, pos, len);
			break;
		}
		size_t start = (size_t)(o - src);
		const char *c = o + 2;
		while (*c && *c != '\n' && !(c[0] == '}' && c[1] == '}') &&
		       !(c[0] == '{' && c[1] == '{'))
			c++;
		if (c[0] != '}')
			return load_error(err, t->name, file, src, start,
					  "\"{{\" is not closed by \"}}\" on the same line");
		size_t end = (size_t)(c - src) + 2;
		struct tag tag;
		if (tag_parse(t, file, src, start, o + 2, c, &tag, err) < 0)
			return -1;
		int v = var_find(t, tag.name, tag.nlen);
		if (v < 0)
			return load_error(err, t->name, file, src, start,
					  "variable %.*s is not listed as required or optional in "
					  "template.ini",
					  (int)tag.nlen, tag.name);
		t->vars[v].used = 1;
		size_t text_end = start;
		if (tag.sigil)
			tag_standalone(src, len, start, end, &text_end, &end);
		seg_text(p, pos, text_end);
		pos = end;
		if (!tag.sigil) {
			struct segment *s = seg_add(p, SEG_VAR);
			s->var = (size_t)v;
			s->filter = tag.filter;
			t->vars[v].filters |= 1u << tag.filter;
			continue;
		}
		if (tag.sigil != '/') {
			if (depth == SECTION_DEPTH_MAX)
				return load_error(err, t->name, file, src, start,
						  "sections nested deeper than %d", SECTION_DEPTH_MAX);
			open[depth++] = p->nsegs;
			seg_add(p, tag.sigil == '#' ? SEG_IF : SEG_UNLESS)->var = (size_t)v;
			continue;
		}
		if (depth == 0 || p->segs[open[depth - 1]].var != (size_t)v)
			return load_error(err, t->name, file, src, start,
					  "{{/%s}} closes no open {{#%s}} or {{^%s}}",
					  t->vars[v].name, t->vars[v].name, t->vars[v].name);
		p->segs[open[--depth]].end = p->nsegs;
		seg_add(p, SEG_END)->var = (size_t)v;
	}
	if (depth > 0) {
		const char *name = t->vars[p->segs[open[depth - 1]].var].name;
		return load_error(err, t->name, file, NULL, 0, "section %s is opened but never closed",
				  name);
	}
	return 0;
}

/* Takes the text of one file out of src: UTF-8 without NUL, BOM dropped. */
static int part_take(struct template *t, struct source *src, enum file_id fid,
		     struct selo_err *err)
{
	struct buf *b = &src->files[fid];
	const char *file = file_names[fid];
	size_t bad = utf8_invalid_at(buf_str(b), b->len);
	if (bad < b->len)
		return load_error(err, t->name, file, buf_str(b), bad, "not valid UTF-8");
	if (memchr(buf_str(b), '\0', b->len))
		return load_error(err, t->name, file, NULL, 0, "contains a NUL byte");
	struct part *p = &t->parts[fid - 1];
	size_t skip = b->len >= 3 && memcmp(b->data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
	p->len = b->len - skip;
	p->src = xstrndup(buf_str(b) + skip, p->len);
	if (fid == F_SUBJECT) { /* one line; the file may end with a newline */
		if (p->len && p->src[p->len - 1] == '\n')
			p->src[--p->len] = '\0';
		if (p->len && p->src[p->len - 1] == '\r')
			p->src[--p->len] = '\0';
		if (strpbrk(p->src, "\r\n"))
			return load_error(err, t->name, file, NULL, 0, "must be a single line");
		if (p->len == 0)
			return load_error(err, t->name, file, NULL, 0, "is empty");
	}
	if (fid == F_HTML && !strcasestr(p->src, "</body>"))
		return load_error(err, t->name, file, NULL, 0,
				  "has no </body> (the receipt link and pixel go before it)");
	return 0;
}

static void template_clear(struct template *t)
{
	free(t->name);
	free(t->language);
	free(t->description);
	for (size_t i = 0; i < t->nvars; i++)
		free(t->vars[i].name);
	free(t->vars);
	free(t->var_names);
	for (int i = 0; i < 3; i++) {
		free(t->parts[i].src);
		free(t->parts[i].segs);
	}
	memset(t, 0, sizeof(*t));
}

static int template_build(struct source *src, struct template *t, struct selo_err *err)
{
	t->name = xstrdup(src->name);
	if (!template_name_ok(t->name))
		return load_error(err, t->name, NULL, NULL, 0,
				  "the name must be 1 to %d lowercase letters, digits, '-' or '_', "
				  "starting with a letter or digit",
				  TEMPLATE_NAME_MAX);
	for (int f = 0; f < F_COUNT; f++)
		if (!src->have[f])
			return load_error(err, t->name, NULL, NULL, 0, "missing %s", file_names[f]);
	size_t bad = utf8_invalid_at(buf_str(&src->files[F_INI]), src->files[F_INI].len);
	if (bad < src->files[F_INI].len)
		return load_error(err, t->name, "template.ini", buf_str(&src->files[F_INI]), bad,
				  "not valid UTF-8");
	if (ini_load(t, &src->files[F_INI], err) < 0)
		return -1;
	for (int f = F_SUBJECT; f < F_COUNT; f++)
		if (part_take(t, src, (enum file_id)f, err) < 0 ||
		    part_compile(t, (enum file_id)f, err) < 0)
			return -1;
	t->var_names = xcalloc(t->nvars + 1, sizeof(*t->var_names));
	for (size_t i = 0; i < t->nvars; i++) {
		if (!t->vars[i].used) /* a typo in template.ini, or in a file */
			return load_error(err, t->name, "template.ini", NULL, 0,
					  "variable %s is declared but used in no file",
					  t->vars[i].name);
		t->var_names[i] = t->vars[i].name;
	}
	return 0;
}

static int source_cmp(const void *a, const void *b)
{
	return strcmp(((const struct source *)a)->name, ((const struct source *)b)->name);
}

void template_set_free(struct template_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		template_clear(&set->t[i]);
	free(set->t);
	free(set->names);
	free(set);
}

int template_set_load(const char *dir, struct template_set **out, struct selo_err *err)
{
	*out = NULL;
	int from_dir = dir && *dir;
	struct sources src = {0};
	int rc = from_dir ? sources_from_dir(dir, &src, err) : sources_from_embedded(&src, err);
	if (rc == 0 && src.n == 0)
		rc = err_set(err, 500, "template-invalid", "no templates found in %s",
			     from_dir ? dir : "the binary (templates/ was empty at build time)");
	if (rc < 0) {
		sources_free(&src);
		return -1;
	}
	/* sorted, so template_names() and bsearch need nothing more */
	if (src.n > 1)
		qsort(src.v, src.n, sizeof(*src.v), source_cmp);
	struct template_set *set = xcalloc(1, sizeof(*set));
	set->t = xcalloc(src.n, sizeof(*set->t));
	set->names = xcalloc(src.n + 1, sizeof(*set->names));
	for (size_t i = 0; i < src.n && rc == 0; i++) {
		set->n = i + 1;
		rc = template_build(&src.v[i], &set->t[i], err);
		set->names[i] = set->t[i].name;
	}
	sources_free(&src);
	if (rc < 0) {
		template_set_free(set);
		return -1;
	}
	*out = set;
	return 0;
}

static int template_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct template *)elem)->name);
}

const struct template *template_find(const struct template_set *set, const char *name)
{
	if (!set || !name)
		return NULL;
	return bsearch(name, set->t, set->n, sizeof(*set->t), template_key_cmp);
}

size_t template_names(const struct template_set *set, const char ***names)
{
	*names = set->names;
	return set->n;
}

const char *template_name(const struct template *t)
{
	return t->name;
}

const char *template_language(const struct template *t)
{
	return t->language;
}

const char *template_description(const struct template *t)
{
	return t->description;
}

size_t template_vars(const struct template *t, const char *const **names, size_t *nrequired)
{
	*names = t->var_names;
	if (nrequired)
		*nrequired = t->nrequired;
	return t->nvars;
}

json_t *template_json(const struct template *t)
{
	json_t *req = json_array(), *opt = json_array(), *filters = json_object();
	for (size_t i = 0; i < t->nvars; i++) {
		const struct variable *v = &t->vars[i];
		json_array_append_new(v->required ? req : opt, json_string(v->name));
		json_t *used = json_array();
		for (int f = FILTER_NONE + 1; f < FILTER_COUNT; f++)
			if (v->filters & (1u << f))
				json_array_append_new(used, json_string(filter_names[f]));
		if (json_array_size(used))
			json_object_set_new(filters, v->name, used);
		else
			json_decref(used);
	}
	return json_pack("{s:s,s:s,s:s,s:o,s:o,s:o}", "name", t->name, "description",
			 t->description ? t->description : "", "language", t->language, "required",
			 req, "optional", opt, "filters", filters);
}

/* ------------------------------------------------------------- checking */

/* "vars." + name, cut on a character boundary to fit the field, with any
 * byte that could not be shown replaced by '?' (the name came from JSON,
 * and the field goes back out in JSON). */
static void field_name(char *out, size_t cap, const char *name)
{
	size_t o = (size_t)snprintf(out, cap, "vars.");
	const unsigned char *s = (const unsigned char *)name;
	while (*s) {
		uint32_t cp;
		size_t l = utf8_decode(s, strnlen((const char *)s, 4), &cp);
		int ok = l > 0 && cp >= 0x20 && !(cp >= 0x7F && cp <= 0x9F);
		if (!ok)
			l = 1;
		if (o + (ok ? l : 1) + 1 > cap)
			break;
		if (ok)
			memcpy(out + o, s, l), o += l;
		else
			out[o++] = '?';
		s += l;
	}
	out[o] = '\0';
}

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	default: return "a value of another kind";
	}
}

static const char *filter_problem(enum filter f)
{
	switch (f) {
	case FILTER_BRL:
		return "must be an amount for the brl filter: a JSON number, or a string like "
		       "1234.56 (digits, optional '-', '.' before at most 2 decimals)";
	case FILTER_DATA: return "must be a date YYYY-MM-DD for the data filter";
	case FILTER_URL:
		return "must be an absolute http:// or https:// URL (ASCII, no spaces) for the "
		       "url filter";
	default: return "is not valid";
	}
}

/* Checks one present value; adds at most one field error. 0 if fine. */
static int value_check(const struct variable *var, const json_t *v, size_t limit,
		       struct selo_err *err)
{
	char field[sizeof(err->fields[0].field)];
	field_name(field, sizeof(field), var->name);
	if (!json_is_string(v) && !json_is_number(v))
		return err_field(err, field, "must be a string or a number, not %s",
				 json_type_name(v));
	struct buf txt = BUF_INIT;
	value_text(v, &txt);
	const char *s = buf_str(&txt);
	size_t n = txt.len, bad;
	uint32_t cp;
	char cname[16];
	int rc = 0;
	if ((bad = utf8_invalid_at(s, n)) < n) {
		rc = err_field(err, field, "is not valid UTF-8 (byte %zu)", bad);
	} else if ((bad = control_at(s, n, &cp)) < n) {
		control_name(cp, cname, sizeof(cname));
		rc = err_field(err, field,
			       "contains control characters (%s at byte %zu): line breaks, tabs "
			       "and other control characters are not allowed",
			       cname, bad);
	} else if (limit && n > limit) {
		rc = err_field(err, field, "is too long: %zu bytes, the limit is %zu", n, limit);
	} else if (var->required && value_blank(v)) {
		rc = err_field(err, field, "required variable is empty");
	}
	buf_free(&txt);
	if (rc < 0)
		return -1;
	struct buf scratch = BUF_INIT;
	for (int f = 1; f < FILTER_COUNT && rc == 0; f++) {
		buf_reset(&scratch);
		if ((var->filters & (1u << f)) && value_format(v, (enum filter)f, &scratch) < 0)
			rc = err_field(err, field, "%s", filter_problem((enum filter)f));
	}
	buf_free(&scratch);
	return rc;
}

int template_check(const struct template *t, const json_t *vars, size_t limit,
		   struct selo_err *err)
{
	if (vars && !json_is_object(vars)) {
		err_field(err, "vars", "must be a JSON object of variable names to strings or "
				       "numbers");
		return err_set(err, 422, "validation-failed",
			       "vars must be a JSON object for template %s", t->name);
	}
	int problems = 0;
	for (size_t i = 0; i < t->nvars; i++) {
		const struct variable *var = &t->vars[i];
		const json_t *v = json_object_get(vars, var->name);
		if (v) {
			problems += value_check(var, v, limit, err) < 0;
		} else if (var->required) {
			char field[sizeof(err->fields[0].field)];
			field_name(field, sizeof(field), var->name);
			err_field(err, field, "required variable is missing");
			problems++;
		}
	}
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)vars, key, v) {
		if (var_find(t, key, strlen(key)) >= 0)
			continue;
		char field[sizeof(err->fields[0].field)];
		field_name(field, sizeof(field), key);
		err_field(err, field, "unknown variable: not used by template %s", t->name);
		problems++;
	}
	if (!problems)
		return 0;
	return err_set(err, 422, "validation-failed",
		       "%d variable%s do%s not fit template %s; see errors", problems,
		       problems == 1 ? "" : "s", problems == 1 ? "es" : "", t->name);
}

/* ------------------------------------------------------------ rendering */

static void render_part(const struct template *t, const struct part *p, const json_t *vars,
			int html, struct buf *out)
{
	struct buf val = BUF_INIT;
	for (size_t i = 0; i < p->nsegs; i++) {
		const struct segment *s = &p->segs[i];
		if (s->kind == SEG_TEXT) {
			buf_append(out, p->src + s->off, s->len);
			continue;
		}
		const json_t *v = json_object_get(vars, t->vars[s->var].name);
		switch (s->kind) {
		case SEG_VAR:
			buf_reset(&val);
			value_format(v, s->filter, &val); /* checked before */
			if (html)
				html_escape(out, buf_str(&val), val.len);
			else
				buf_append(out, buf_str(&val), val.len);
			break;
		case SEG_IF:
			if (value_blank(v))
				i = s->end;
			break;
		case SEG_UNLESS:
			if (!value_blank(v))
				i = s->end;
			break;
		default: break;
		}
	}
	buf_free(&val);
}

int template_render(const struct template *t, const json_t *vars, struct rendered *out,
		    struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	if (template_check(t, vars, 0, err) < 0)
		return -1;
	struct buf b[3] = {BUF_INIT, BUF_INIT, BUF_INIT};
	for (int i = 0; i < 3; i++)
		render_part(t, &t->parts[i], vars, i == F_HTML - 1, &b[i]);
	out->subject = buf_steal(&b[0], NULL);
	out->text = buf_steal(&b[1], NULL);
	out->html = buf_steal(&b[2], NULL);
	return 0;
}

void rendered_free(struct rendered *r)
{
	if (!r)
		return;
	free(r->subject);
	free(r->text);
	free(r->html);
	memset(r, 0, sizeof(*r));
}
