/* compose.c: from a rendered notice to the exact bytes sent (see compose.h).
 *   composer_new / composer_free / composer_set_tsa   keys and settings
 *   compose_rewrite_links    <a href="http(s)://..."> -> BASE/c/{token}
 *   compose_message          tracking, MIME entity, S/MIME, top-level
 *                            headers, DKIM, digest and event fields
 * A composer is read-only after composer_set_tsa, so threads share it.
 * Errors: 422 for what the notice's author can fix (bad address, header
 * text, attachment name or type, message too large), 500 for keys and
 * signing; compose_message leaves *out empty on failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/codec.h"
#include "selo/compose.h"
#include "selo/crypto.h"
#include "selo/dkim.h"
#include "selo/id.h"
#include "selo/keys.h"
#include "selo/mime.h"
#include "selo/token.h"

#define URL_MAX 8192          /* longer links are left as they are, untracked */
#define LINKS_MAX 65535       /* the token's link index is 16 bits */

struct composer {
	struct smime_signer *smime;
	struct dkim_signer *dkim;
	uint8_t token_key[TOKEN_KEY_LEN];
	char base_url[256];
	char from_address[320];
	char from_name[256];
	char mail_domain[256];
	size_t max_message_bytes;
	smime_tst_fn tst;
	void *tst_arg;
};

/* ---- Setup. */

static int key_path(const struct selo_config *cfg, const char *name, char *out, size_t n,
		    struct selo_err *err)
{
	int w = snprintf(out, n, "%s/keys/%s", cfg->data_dir, name);
	if (w < 0 || (size_t)w >= n)
		return err_set(err, 500, "config", "data directory path too long: %s", cfg->data_dir);
	return 0;
}

/* Checks the configured sender identity once, so a bad config fails at
 * start and not on every message. */
static int composer_settings(struct composer *c, const struct selo_config *cfg,
			     struct selo_err *err)
{
	snprintf(c->base_url, sizeof(c->base_url), "%s", cfg->track_base_url);
	size_t bl = strlen(c->base_url);
	while (bl && c->base_url[bl - 1] == '/')
		c->base_url[--bl] = '\0'; /* BASE + "/c/..." must not give "//c/" */
	snprintf(c->from_address, sizeof(c->from_address), "%s", cfg->mail_from_address);
	snprintf(c->from_name, sizeof(c->from_name), "%s", cfg->mail_from_name);
	const char *dom = cfg->mail_domain[0] ? cfg->mail_domain : strchr(c->from_address, '@');
	if (dom && *dom == '@')
		dom++;
	snprintf(c->mail_domain, sizeof(c->mail_domain), "%s", dom ? dom : "");
	c->max_message_bytes = cfg->max_message_bytes ? cfg->max_message_bytes : (size_t)25 << 20;

	struct selo_err e;
	err_clear(&e);
	if (mime_addr_check(c->from_address, "mail.from_address", &e) < 0)
		return err_set(err, 500, "config", "[mail] from_address: %s", e.fields[0].msg);
	if (mime_header_text_check(c->from_name, sizeof(c->from_name), "mail.from_name", &e) < 0)
		return err_set(err, 500, "config", "[mail] from_name: %s", e.fields[0].msg);
	char probe[300];
	snprintf(probe, sizeof(probe), "x@%s", c->mail_domain);
	if (mime_addr_check(probe, "mail.domain", &e) < 0)
		return err_set(err, 500, "config", "[mail] domain \"%s\": %s", c->mail_domain, e.fields[0].msg);
	if (strncasecmp(c->base_url, "http://", 7) && strncasecmp(c->base_url, "https://", 8))
		return err_set(err, 500, "config", "[track] base_url must start with http:// or https://");
	if (mime_header_text_check(c->base_url, sizeof(c->base_url), "track.base_url", &e) < 0 ||
	    strpbrk(c->base_url, " \"'<>"))
		return err_set(err, 500, "config", "[track] base_url has characters not allowed in a URL");
	return 0;
}

static int composer_load_keys(struct composer *c, const struct selo_config *cfg,
			      struct selo_err *err)
{
	char kdir[1100], k1[1100], k2[1100], k3[1100];
	if (key_path(cfg, "", kdir, sizeof(kdir), err) < 0 ||
	    key_path(cfg, "smime.pem", k1, sizeof(k1), err) < 0 ||
	    key_path(cfg, "smime.crt", k2, sizeof(k2), err) < 0 ||
	    key_path(cfg, "smime-chain.pem", k3, sizeof(k3), err) < 0)
		return -1;
	/* a real certificate (e.g. ICP-Brasil) comes with intermediates */
	const char *chain = access(k3, R_OK) == 0 ? k3 : NULL;
	if (smime_signer_load(k1, k2, chain, &c->smime, err) < 0)
		return -1;
	/* the active selector (docs/keys.md); an operator may publish only
	 * one of the two DKIM keys */
	char sel[64], rsa[4096], ed[4096];
	if (keys_dkim_active(kdir, cfg->dkim_selector[0] ? cfg->dkim_selector : "selo", sel, rsa,
			     ed, err) < 0)
		return -1;
	const char *dom = cfg->dkim_domain[0] ? cfg->dkim_domain : c->mail_domain;
	if (dkim_signer_load(dom, sel, rsa[0] ? rsa : NULL, ed[0] ? ed : NULL, &c->dkim, err) < 0)
		return -1;
	return keys_load_token_key(kdir, c->token_key, err);
}

int composer_new(const struct selo_config *cfg, struct composer **out, struct selo_err *err)
{
	*out = NULL;
	struct composer *c = xcalloc(1, sizeof(*c));
	if (composer_settings(c, cfg, err) < 0 || composer_load_keys(c, cfg, err) < 0) {
		composer_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

void composer_free(struct composer *c)
{
	if (!c)
		return;
	smime_signer_free(c->smime);
	dkim_signer_free(c->dkim);
	OPENSSL_cleanse(c->token_key, sizeof(c->token_key));
	free(c);
}

void composer_set_tsa(struct composer *c, smime_tst_fn fn, void *arg)
{
	c->tst = fn;
	c->tst_arg = arg;
}

/* ---- Tokens. */

static struct compose_token *compose_token_push(const struct composer *c, const uint8_t notice[16],
					enum token_kind kind, int link, char *url,
					struct compose_token **tokens, size_t *ntokens)
{
	struct compose_token *t = xreallocarray(*tokens, *ntokens + 1, sizeof(**tokens));
	*tokens = t;
	t += (*ntokens)++;
	memset(t, 0, sizeof(*t));
	struct token tk = {kind, (uint16_t)link, {0}};
	memcpy(tk.notice, notice, SELO_ID_BYTES);
	token_make(c->token_key, &tk, t->token);
	snprintf(t->kind, sizeof(t->kind), "%s", token_kind_name(kind));
	t->link = link;
	t->url = url;
	return t;
}

/* Writes s with the characters that matter inside a "..." attribute escaped. */
static void put_attr(struct buf *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': buf_puts(out, "&amp;"); break;
		case '"': buf_puts(out, "&quot;"); break;
		case '<': buf_puts(out, "&lt;"); break;
		case '>': buf_puts(out, "&gt;"); break;
		default: buf_putc(out, *s);
		}
	}
}

/* ---- HTML links. */

/* One character reference at s (n bytes, s[0] == '&'): its length, and its
 * text appended to out; 0 when it is not one we decode (then '&' is
 * literal, as browsers treat unknown references). */
static size_t entity_decode(const char *s, size_t n, struct buf *out)
{
	static const struct { const char *name; const char *text; } named[] = {
		{"amp;", "&"}, {"lt;", "<"}, {"gt;", ">"}, {"quot;", "\""}, {"apos;", "'"},
		{"nbsp;", "\xC2\xA0"}, {"sol;", "/"}, {"quest;", "?"}, {"equals;", "="},
		{"num;", "#"}, {"percnt;", "%"}, {"colon;", ":"},
	};
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		size_t k = strlen(named[i].name);
		if (n > k && strncasecmp(s + 1, named[i].name, k) == 0) {
			buf_puts(out, named[i].text);
			return 1 + k;
		}
	}
	if (n < 4 || s[1] != '#')
		return 0;
	int hex = s[2] == 'x' || s[2] == 'X';
	size_t i = hex ? 3 : 2, d0 = i;
	unsigned long cp = 0;
	for (; i < n && i - d0 < 8; i++) {
		int v = -1;
		char ch = s[i];
		if (ch >= '0' && ch <= '9')
			v = ch - '0';
		else if (hex && ch >= 'a' && ch <= 'f')
			v = ch - 'a' + 10;
		else if (hex && ch >= 'A' && ch <= 'F')
			v = ch - 'A' + 10;
		if (v < 0)
			break;
		cp = cp * (hex ? 16 : 10) + (unsigned long)v;
	}
	if (i == d0 || i >= n || s[i] != ';')
		return 0;
	if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		cp = 0xFFFD; /* as the HTML parser does */
	utf8_put(out, (uint32_t)cp);
	return i + 1;
}

static int url_space(unsigned char c)
{
	return c <= 0x20; /* WHATWG URL: C0 control or space, stripped at the ends */
}

/* The URL a browser would follow for this attribute value, if it is an
 * http(s) URL we can track: entities decoded, surrounding spaces stripped,
 * tabs and line breaks removed (as the URL parser does), other unsafe
 * bytes percent-encoded after the host. NULL when not tracked. */
static char *link_url(const char *v, size_t n)
{
	static const char HEX[] = "0123456789ABCDEF";
	if (n > URL_MAX)
		return NULL;
	struct buf dec = BUF_INIT, url = BUF_INIT;
	for (size_t i = 0; i < n;) {
		size_t k = v[i] == '&' ? entity_decode(v + i, n - i, &dec) : 0;
		if (!k)
			buf_putc(&dec, v[i]), k = 1;
		i += k;
	}
	const char *s = buf_str(&dec);
	size_t a = 0, b = dec.len;
	while (a < b && url_space((unsigned char)s[a]))
		a++;
	while (b > a && url_space((unsigned char)s[b - 1]))
		b--;
	for (size_t i = a; i < b; i++)
		if (s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			buf_putc(&url, s[i]);
	buf_free(&dec);
	const char *u = buf_str(&url);
	size_t skip = strncasecmp(u, "http://", 7) == 0 ? 7 : strncasecmp(u, "https://", 8) == 0 ? 8 : 0;
	size_t host_end = skip ? skip + strcspn(u + skip, "/?#") : 0;
	int ok = skip && host_end > skip;
	for (size_t i = skip; ok && i < host_end; i++)
		if ((unsigned char)u[i] <= 0x20 || (unsigned char)u[i] >= 0x7F || u[i] == '\\')
			ok = 0; /* an internationalised or odd host: leave the link alone */
	if (!ok) {
		buf_free(&url);
		return NULL;
	}
	struct buf fin = BUF_INIT;
	buf_append(&fin, u, host_end);
	for (size_t i = host_end; i < url.len; i++) {
		unsigned char ch = (unsigned char)u[i];
		if (ch > 0x20 && ch < 0x7F) {
			buf_putc(&fin, (char)ch);
			continue;
		}
		char e[3] = {'%', HEX[ch >> 4], HEX[ch & 15]};
		buf_append(&fin, e, 3);
	}
	buf_free(&url);
	return buf_steal(&fin, NULL);
}

struct html_scan {
	const char *s;
	size_t n, i;        /* input and position */
	size_t copied;      /* input before this is already in out */
	struct buf *out;
};

static int is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f';
}

static int is_alpha(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* Position of needle (ASCII, case-insensitive) in s[from, n), or n. Every
 * needle starts with a byte that has no case ('<', '-'), so memchr finds
 * the candidates: this runs over every byte of every HTML part. */
static size_t find_ci(const char *s, size_t n, size_t from, const char *needle)
{
	size_t k = strlen(needle);
	if (k == 0 || n < k)
		return n;
	for (size_t i = from; i + k <= n; i++) {
		const char *p = memchr(s + i, needle[0], n - k + 1 - i);
		if (!p)
			return n;
		i = (size_t)(p - s);
		if (strncasecmp(p + 1, needle + 1, k - 1) == 0)
			return i;
	}
	return n;
}

/* Skips to just after the next '>' (or the end). */
static void skip_past_gt(struct html_scan *h)
{
	while (h->i < h->n && h->s[h->i] != '>')
		h->i++;
	if (h->i < h->n)
		h->i++;
}

struct link_ctx {
	const struct composer *c;
	const uint8_t *notice;
	struct compose_token **tokens;
	size_t *ntokens;
	int links;
};

/* Replaces the value [vs, ve) (quotes included) by a tracker URL when it
 * is an http(s) link. */
static void rewrite_href(struct html_scan *h, struct link_ctx *lc, size_t vs, size_t ve,
			 size_t ts, size_t te)
{
	if (lc->links >= LINKS_MAX)
		return;
	char *url = link_url(h->s + ts, te - ts);
	if (!url)
		return;
	lc->links++;
	struct compose_token *t = compose_token_push(lc->c, lc->notice, TOKEN_CLICK, lc->links, url,
					     lc->tokens, lc->ntokens);
	buf_append(h->out, h->s + h->copied, vs - h->copied);
	buf_putc(h->out, '"');
	put_attr(h->out, lc->c->base_url);
	buf_printf(h->out, "/c/%s\"", t->token);
	h->copied = ve;
}

/* Reads the attributes of a start tag (h->i just after its name) up to and
 * including '>', rewriting the first href when the tag is a link. */
static void scan_attributes(struct html_scan *h, struct link_ctx *lc, int is_link)
{
	int seen_href = 0;
	while (h->i < h->n) {
		while (h->i < h->n && (is_space(h->s[h->i]) || h->s[h->i] == '/'))
			h->i++;
		if (h->i >= h->n)
			return;
		if (h->s[h->i] == '>') {
			h->i++;
			return;
		}
		size_t ns = h->i;
		h->i++; /* a name may start with any character but those above */
		while (h->i < h->n && !is_space(h->s[h->i]) && !strchr("/>=", h->s[h->i]))
			h->i++;
		size_t ne = h->i;
		while (h->i < h->n && is_space(h->s[h->i]))
			h->i++;
		if (h->i >= h->n || h->s[h->i] != '=')
			continue; /* attribute without a value */
		h->i++;
		while (h->i < h->n && is_space(h->s[h->i]))
			h->i++;
		size_t vs = h->i, ts, te;
		if (h->i < h->n && (h->s[h->i] == '"' || h->s[h->i] == '\'')) {
			char q = h->s[h->i++];
			ts = h->i;
			while (h->i < h->n && h->s[h->i] != q)
				h->i++;
			te = h->i;
			if (h->i < h->n)
				h->i++;
			else
				return; /* unterminated: leave the rest as it is */
		} else {
			ts = h->i;
			while (h->i < h->n && !is_space(h->s[h->i]) && h->s[h->i] != '>')
				h->i++;
			te = h->i;
		}
		int href = ne - ns == 4 && strncasecmp(h->s + ns, "href", 4) == 0;
		if (href && is_link && !seen_href)
			rewrite_href(h, lc, vs, h->i, ts, te);
		seen_href |= href; /* browsers use the first of duplicate attributes */
	}
}

/* A tag at h->i ('<'). Only <a> and <area> are links a person clicks;
 * <link href> (stylesheets) and <base href> must keep working untouched.
 * The contents of <script> and <style> are not HTML and are skipped. */
static void scan_tag(struct html_scan *h, struct link_ctx *lc)
{
	const char *s = h->s;
	if (h->i + 4 <= h->n && memcmp(s + h->i, "<!--", 4) == 0) {
		size_t e = find_ci(s, h->n, h->i + 4, "-->");
		h->i = e < h->n ? e + 3 : h->n;
		return;
	}
	if (h->i + 1 >= h->n || !is_alpha(s[h->i + 1])) {
		if (h->i + 1 < h->n && (s[h->i + 1] == '/' || s[h->i + 1] == '!' || s[h->i + 1] == '?'))
			skip_past_gt(h);
		else
			h->i++; /* a lone '<' in text */
		return;
	}
	size_t ns = ++h->i;
	while (h->i < h->n && !is_space(s[h->i]) && s[h->i] != '/' && s[h->i] != '>')
		h->i++;
	size_t nl = h->i - ns;
	int is_link = (nl == 1 && strncasecmp(s + ns, "a", 1) == 0) ||
		      (nl == 4 && strncasecmp(s + ns, "area", 4) == 0);
	scan_attributes(h, lc, is_link);
	const char *raw = nl == 6 && strncasecmp(s + ns, "script", 6) == 0 ? "</script"
			  : nl == 5 && strncasecmp(s + ns, "style", 5) == 0 ? "</style" : NULL;
	if (raw)
		h->i = find_ci(s, h->n, h->i, raw);
}

static void rewrite_links_n(struct link_ctx *lc, const char *html, size_t n, struct buf *out)
{
	struct html_scan h = {html, n, 0, 0, out};
	while (h.i < n) {
		const char *lt = memchr(html + h.i, '<', n - h.i);
		if (!lt)
			break;
		h.i = (size_t)(lt - html);
		scan_tag(&h, lc);
	}
	buf_append(out, html + h.copied, n - h.copied);
}

int compose_rewrite_links(struct composer *c, const uint8_t notice[16], const char *html,
			  struct buf *out, struct compose_token **tokens, size_t *ntokens)
{
	if (!c || !html || !out || !tokens || !ntokens)
		return -1;
	size_t before = *ntokens;
	struct link_ctx lc = {c, notice, tokens, ntokens, 0};
	for (size_t i = 0; i < before; i++)
		if ((*tokens)[i].link > lc.links)
			lc.links = (*tokens)[i].link; /* link indexes keep counting */
	rewrite_links_n(&lc, html, strlen(html), out);
	return 0;
}

/* ---- Message parts. */

/* Inserts the read-confirmation paragraph and the pixel before the last
 * </body> (or at the end). */
static void html_finish(const struct composer *c, const char *html, size_t n,
			const char *open_tok, const char *read_tok, struct buf *out)
{
	size_t at = n;
	for (size_t i = find_ci(html, n, 0, "</body"); i < n; i = find_ci(html, n, i + 1, "</body"))
		at = i;
	buf_append(out, html, at);
	if (read_tok) {
		buf_puts(out, "<p style=\"margin:24px 0 8px;font-family:Arial,sans-serif;font-size:14px\">"
			      "Por favor, confirme que recebeu esta notifica&ccedil;&atilde;o: <a href=\"");
		put_attr(out, c->base_url);
		buf_printf(out, "/r/%s\">Confirmar recebimento</a></p>\r\n", read_tok);
	}
	if (open_tok) {
		buf_puts(out, "<img src=\"");
		put_attr(out, c->base_url);
		buf_printf(out, "/o/%s.gif\" width=\"1\" height=\"1\" alt=\"\" "
				"style=\"display:block;border:0\">", open_tok);
	}
	buf_append(out, html + at, n - at);
}

static void multipart_begin(struct buf *out, const char *subtype, char bnd[48])
{
	mime_boundary(bnd);
	buf_printf(out, "Content-Type: multipart/%s;\r\n boundary=\"%s\"\r\n\r\n", subtype, bnd);
}

static void multipart_next(struct buf *out, const char *bnd, int first)
{
	buf_printf(out, "%s--%s\r\n", first ? "" : "\r\n", bnd);
}

static void multipart_end(struct buf *out, const char *bnd)
{
	buf_printf(out, "\r\n--%s--\r\n", bnd);
}

static void write_body_parts(struct buf *out, const char *text, size_t tn, const char *html,
			     size_t hn)
{
	if (!html) {
		mime_write_text_part(out, "plain", text, tn);
		return;
	}
	char bnd[48];
	multipart_begin(out, "alternative", bnd);
	multipart_next(out, bnd, 1);
	mime_write_text_part(out, "plain", text, tn);
	multipart_next(out, bnd, 0);
	mime_write_text_part(out, "html", html, hn);
	multipart_end(out, bnd);
}

static int write_entity(const struct compose_in *in, const struct buf *text,
			const struct buf *html, struct buf *out, struct selo_err *err)
{
	const char *h = in->html ? buf_str(html) : NULL;
	if (in->natt == 0) {
		write_body_parts(out, buf_str(text), text->len, h, html->len);
		return 0;
	}
	char bnd[48];
	multipart_begin(out, "mixed", bnd);
	multipart_next(out, bnd, 1);
	write_body_parts(out, buf_str(text), text->len, h, html->len);
	for (size_t i = 0; i < in->natt; i++) {
		const struct attachment_rec *a = &in->att[i];
		multipart_next(out, bnd, 0);
		if (mime_write_attachment(out, a->content_type, a->filename, a->data, a->len) < 0)
			return err_set(err, 500, "internal", "attachment %zu could not be written", i);
	}
	multipart_end(out, bnd);
	return 0;
}

/* ---- Checks of the input (what a person could get wrong). */

static int check_input(const struct composer *c, const struct compose_in *in, uint8_t notice[16],
		       struct selo_err *err)
{
	char f[64];
	if (!in->notice_id || id_from_text(in->notice_id, notice) < 0)
		return err_set(err, 500, "internal", "compose: bad notice id");
	if (mime_addr_check(in->to, "to", err) < 0)
		return -1;
	if (in->to_name && mime_header_text_check(in->to_name, COMPOSE_HEADER_TEXT_MAX, "to_name", err) < 0)
		return -1;
	if (mime_header_text_check(in->subject, COMPOSE_HEADER_TEXT_MAX, "subject", err) < 0)
		return -1;
	size_t total = 0;
	for (size_t i = 0; i < in->natt; i++) {
		snprintf(f, sizeof(f), "attachments[%zu].filename", i);
		if (mime_header_text_check(in->att[i].filename, 255, f, err) < 0)
			return -1;
		if (!in->att[i].filename[0]) {
			err_field(err, f, "a file name is required");
			return err_set(err, 422, "validation-failed", "%s: a file name is required", f);
		}
		snprintf(f, sizeof(f), "attachments[%zu].content_type", i);
		if (mime_content_type_check(in->att[i].content_type, f, err) < 0)
			return -1;
		total += in->att[i].len;
	}
	/* base64 makes attachments 4/3 (plus line breaks) larger: fail before
	 * signing anything when they alone cannot fit */
	if (total / 3 * 4 > c->max_message_bytes)
		return err_set(err, 422, "message-too-large",
			       "the attachments (%zu bytes, %zu once encoded) exceed the message limit of %zu bytes",
			       total, total / 3 * 4, c->max_message_bytes);
	return 0;
}

/* ---- Top-level headers and event fields. */

static int write_top_headers(const struct composer *c, const struct compose_in *in,
			     const struct smime_signed *sm, const char *msgid, struct buf *out,
			     struct selo_err *err)
{
	char date[40];
	clock_rfc5322(in->now_ms, date);
	buf_printf(out, "Date: %s\r\n", date);
	if (mime_write_address(out, "From", c->from_name[0] ? c->from_name : NULL, c->from_address) < 0)
		return err_set(err, 500, "config", "the configured From address cannot be written");
	if (mime_write_address(out, "To", in->to_name && *in->to_name ? in->to_name : NULL, in->to) < 0)
		return err_set(err, 422, "validation-failed", "to: the recipient cannot be written");
	if (mime_write_header(out, "Subject", in->subject) < 0)
		return err_set(err, 422, "validation-failed", "subject: cannot be written");
	buf_printf(out, "Message-ID: <%s>\r\n", msgid);
	buf_puts(out, "MIME-Version: 1.0\r\n");
	buf_printf(out, "Content-Type: %s\r\n\r\n", buf_str(&sm->content_type));
	return 0;
}

/* <NOTICEID.random@domain>: unique, and names the notice so that a bounce
 * or a reply can be matched without a lookup table. */
static int make_message_id(const struct composer *c, const char *notice_id, char *out, size_t n)
{
	uint8_t rnd[8];
	char hex[17], id[512];
	random_bytes(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), hex);
	int w = snprintf(id, sizeof(id), "%.26s.%s@%s", notice_id, hex, c->mail_domain);
	if (w < 0 || (size_t)w >= n)
		return -1;
	memcpy(out, id, (size_t)w + 1);
	return 0;
}

/* The value of tag (e.g. "d") in one unfolded DKIM-Signature value. */
static json_t *compose_dkim_tag(const char *v, const char *tag)
{
	size_t tl = strlen(tag);
	const char *p = v;
	while (p && *p) {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		if (strncmp(p, tag, tl) == 0) {
			const char *q = p + tl;
			while (*q == ' ' || *q == '\t')
				q++;
			if (*q == '=') {
				q++;
				struct buf val = BUF_INIT;
				for (; *q && *q != ';'; q++)
					if (*q != ' ' && *q != '\t')
						buf_putc(&val, *q);
				json_t *j = json_string(buf_str(&val));
				buf_free(&val);
				return j;
			}
		}
		p = strchr(p, ';');
	}
	return json_string("");
}

/* [{"d","s","a"}] from the DKIM-Signature headers dkim_sign wrote. */
static json_t *compose_dkim_fields(const struct buf *sigs)
{
	json_t *arr = json_array();
	const char *s = buf_str(sigs), *end = s + sigs->len;
	while (s < end) {
		const char *e = s; /* end of this header: a CRLF not followed by WSP */
		while (e < end && !(e + 1 < end && e[0] == '\r' && e[1] == '\n' &&
				    (e + 2 == end || (e[2] != ' ' && e[2] != '\t'))))
			e++;
		const char *colon = memchr(s, ':', (size_t)(e - s));
		if (colon) {
			struct buf v = BUF_INIT;
			for (const char *p = colon + 1; p < e; p++)
				if (*p != '\r' && *p != '\n')
					buf_putc(&v, *p);
			json_t *o = json_object();
			json_object_set_new(o, "d", compose_dkim_tag(buf_str(&v), "d"));
			json_object_set_new(o, "s", compose_dkim_tag(buf_str(&v), "s"));
			json_object_set_new(o, "a", compose_dkim_tag(buf_str(&v), "a"));
			json_array_append_new(arr, o);
			buf_free(&v);
		}
		s = e + 2;
	}
	return arr;
}

static json_t *event_fields(const struct composer *c, const struct compose_in *in,
			    const struct compose_out *o, const struct smime_signed *sm,
			    const struct buf *sigs, int nlinks)
{
	json_t *ev = json_object();
	json_object_set_new(ev, "sha256", json_string(o->sha256));
	json_object_set_new(ev, "size", json_integer((json_int_t)o->eml.len));
	json_object_set_new(ev, "message_id", json_string(o->message_id));
	json_t *smj = json_object();
	json_object_set_new(smj, "subject", json_string(smime_signer_subject(c->smime)));
	json_object_set_new(smj, "cert_sha256", json_string(smime_signer_cert_sha256(c->smime)));
	json_object_set_new(smj, "timestamped", json_boolean(sm->timestamped));
	json_object_set_new(ev, "smime", smj);
	json_object_set_new(ev, "dkim", compose_dkim_fields(sigs));
	json_t *tr = json_object();
	json_object_set_new(tr, "opens", json_boolean(in->track_opens && in->html));
	json_object_set_new(tr, "clicks", json_integer(nlinks));
	json_object_set_new(tr, "read", json_boolean(in->track_read));
	json_object_set_new(ev, "tracking", tr);
	json_t *atts = json_array();
	for (size_t i = 0; i < in->natt; i++) {
		char h[65];
		sha256_hex(in->att[i].data, in->att[i].len, h);
		json_t *a = json_object();
		json_object_set_new(a, "sha256", json_string(h));
		json_object_set_new(a, "size", json_integer((json_int_t)in->att[i].len));
		json_object_set_new(a, "content_type", json_string(in->att[i].content_type));
		json_array_append_new(atts, a);
	}
	json_object_set_new(ev, "attachments", atts);
	return ev;
}

/* ---- The message. */

/* Tracking: click tokens from the HTML, then the open and read tokens. */
static void build_bodies(const struct composer *c, const struct compose_in *in,
			 const uint8_t notice[16], struct compose_out *out, struct buf *text,
			 struct buf *html, int *nlinks)
{
	const char *open_tok = NULL, *read_tok = NULL;
	struct buf linked = BUF_INIT;
	struct link_ctx lc = {c, notice, &out->tokens, &out->ntokens, 0};
	if (in->html && in->track_clicks)
		rewrite_links_n(&lc, in->html, strlen(in->html), &linked);
	else if (in->html)
		buf_puts(&linked, in->html);
	*nlinks = lc.links;
	size_t io = 0, ir = 0;
	if (in->track_opens && in->html) {
		io = out->ntokens;
		compose_token_push(c, notice, TOKEN_OPEN, 0, NULL, &out->tokens, &out->ntokens);
	}
	if (in->track_read) {
		ir = out->ntokens;
		compose_token_push(c, notice, TOKEN_READ, 0, NULL, &out->tokens, &out->ntokens);
	}
	/* pointers into out->tokens only now that it no longer moves */
	if (in->track_opens && in->html)
		open_tok = out->tokens[io].token;
	if (in->track_read)
		read_tok = out->tokens[ir].token;
	if (in->html)
		html_finish(c, buf_str(&linked), linked.len, open_tok, read_tok, html);
	buf_free(&linked);
	buf_puts(text, in->text ? in->text : "");
	if (read_tok)
		buf_printf(text, "\n\nConfirmar recebimento: %s/r/%s\n", c->base_url, read_tok);
}

static int sign_and_assemble(const struct composer *c, const struct compose_in *in,
			     const struct buf *entity, struct compose_out *out,
			     struct smime_signed *sm, struct buf *sigs, struct selo_err *err)
{
	if (smime_sign(c->smime, entity->data, entity->len, c->tst, c->tst_arg, sm, err) < 0)
		return -1;
	struct buf msg = BUF_INIT;
	buf_reserve(&msg, sm->body.len + 4096); /* the headers: one allocation, no regrowth */
	if (write_top_headers(c, in, sm, out->message_id, &msg, err) < 0) {
		buf_free(&msg);
		return -1;
	}
	buf_append(&msg, sm->body.data, sm->body.len);
	if (dkim_sign_message(c->dkim, msg.data, msg.len, sigs, err) < 0) {
		buf_free(&msg);
		return -1;
	}
	buf_reserve(&out->eml, sigs->len + msg.len);
	buf_append(&out->eml, sigs->data, sigs->len);
	buf_append(&out->eml, msg.data, msg.len);
	buf_free(&msg);
	return 0;
}

int compose_message(struct composer *c, const struct compose_in *in, struct compose_out *out,
		    struct selo_err *err)
{
	uint8_t notice[16];
	memset(out, 0, sizeof(*out));
	if (check_input(c, in, notice, err) < 0)
		return -1;
	if (make_message_id(c, in->notice_id, out->message_id, sizeof(out->message_id)) < 0)
		return err_set(err, 500, "config", "[mail] domain too long for a Message-ID");

	struct buf text = BUF_INIT, html = BUF_INIT, entity = BUF_INIT, sigs = BUF_INIT;
	struct smime_signed sm;
	memset(&sm, 0, sizeof(sm));
	int nlinks = 0, rc = -1;
	build_bodies(c, in, notice, out, &text, &html, &nlinks);
	if (write_entity(in, &text, &html, &entity, err) < 0)
		goto done;
	if (entity.len > c->max_message_bytes) {
		err_set(err, 422, "message-too-large", "the message (%zu bytes) exceeds the limit of %zu bytes",
			entity.len, c->max_message_bytes);
		goto done;
	}
	if (sign_and_assemble(c, in, &entity, out, &sm, &sigs, err) < 0)
		goto done;
	if (out->eml.len > c->max_message_bytes) {
		err_set(err, 422, "message-too-large", "the signed message (%zu bytes) exceeds the limit of %zu bytes",
			out->eml.len, c->max_message_bytes);
		goto done;
	}
	sha256_hex(out->eml.data, out->eml.len, out->sha256);
	out->event_fields = event_fields(c, in, out, &sm, &sigs, nlinks);
	rc = 0;
done:
	buf_free(&text);
	buf_free(&html);
	buf_free(&entity);
	buf_free(&sigs);
	smime_signed_free(&sm);
	if (rc < 0)
		compose_out_free(out);
	return rc;
}

void compose_out_free(struct compose_out *o)
{
	if (!o)
		return;
	buf_free(&o->eml);
	for (size_t i = 0; i < o->ntokens; i++)
		free(o->tokens[i].url);
	free(o->tokens);
	if (o->event_fields)
		json_decref(o->event_fields);
	memset(o, 0, sizeof(*o));
}
