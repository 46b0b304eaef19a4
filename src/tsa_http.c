/* tsa_http.c: an external RFC 3161 TSA at tsa.url (RFC 3161 §3.4: HTTP POST
 * of application/timestamp-query, answer application/timestamp-reply).
 * tsa_http_open checks the URL and loads tsa.ca (the PEM bundle the TSA's
 * tokens must chain to) without contacting the server; http_timestamp makes
 * a TimeStampReq (tsa_request_make), POSTs it with libcurl, and hands the
 * answer to tsa_response_accept (status, signature, chain to tsa.ca with the
 * timeStamping EKU, ESS certificate id, imprint, nonce). Only tsa.url is
 * contacted: no redirects, no proxy from the environment, http/https only.
 * The whole exchange is bounded by tsa.timeout_ms and the answer by 64 KiB.
 * Any failure is status 503 "tsa-unavailable" naming what went wrong
 * (unreachable, timeout, HTTP status, content type, refusal with the TSA's
 * status text, a token that does not verify); open fails with 500. Each call
 * has its own curl handle; the last accepted token (for tsa_certs_pem) sits
 * behind a mutex. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include "selo/buf.h"
#include "selo/crypto.h"
#include "selo/fileio.h"
#include "selo/tsa.h"

#define TSA_HTTP_MAX_ANSWER (64 * 1024)
#define TSA_CA_MAX_BYTES (4 << 20)

struct tsa_http {
	char url[512];
	char who[560];        /* "TSA <url>", for messages */
	char anchors[1200];   /* "tsa.ca <path>", for messages */
	long timeout_ms;
	struct buf ca_pem;    /* tsa.ca */
	pthread_mutex_t mu;   /* guards last */
	struct buf last;      /* DER of the last token accepted */
};

static void http_close(void *state)
{
	struct tsa_http *s = state;
	if (!s)
		return;
	pthread_mutex_destroy(&s->mu);
	buf_free(&s->ca_pem);
	buf_free(&s->last);
	free(s);
	curl_global_cleanup();
}

/* ---- the HTTP exchange ------------------------------------------------- */

struct sink {
	struct buf body;
	int too_big;
};

static size_t sink_write(char *p, size_t size, size_t n, void *arg)
{
	struct sink *k = arg;
	size_t len = size * n;
	if (k->body.len + len > TSA_HTTP_MAX_ANSWER) {
		k->too_big = 1;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	buf_append(&k->body, p, len);
	return len;
}

static void curl_setup(CURL *c, const struct tsa_http *s, const uint8_t *req, size_t req_len,
		       struct curl_slist *hdr, struct sink *k, char *errbuf)
{
	curl_easy_setopt(c, CURLOPT_URL, s->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROXY, ""); /* ignore http_proxy & co. */
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, s->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)req);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)req_len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "selo");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, k);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
}

static int curl_failure(const struct tsa_http *s, CURLcode rc, const struct sink *k,
			const char *errbuf, struct selo_err *err)
{
	const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return err_set(err, 503, "tsa-unavailable", "%s did not answer within %ld ms "
			       "(tsa.timeout_ms): %s", s->who, s->timeout_ms, why);
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return err_set(err, 503, "tsa-unavailable", "%s is unreachable: %s (check tsa.url "
			       "and that the server runs)", s->who, why);
	case CURLE_WRITE_ERROR:
		if (k->too_big)
			return err_set(err, 503, "tsa-unavailable", "%s answered more than %d bytes, "
				       "which is no timestamp response", s->who, TSA_HTTP_MAX_ANSWER);
		/* fall through */
	default:
		return err_set(err, 503, "tsa-unavailable", "%s: request failed: %s", s->who, why);
	}
}

/* "application/timestamp-reply", any case, parameters allowed. */
static int is_reply_type(const char *ct)
{
	static const char want[] = "application/timestamp-reply";
	size_t n = sizeof(want) - 1;
	if (!ct || strncasecmp(ct, want, n) != 0)
		return 0;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

static int answer_check(const struct tsa_http *s, CURL *c, struct selo_err *err)
{
	long code = 0;
	char *ct = NULL;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
	if (code != 200)
		return err_set(err, 503, "tsa-unavailable", "%s answered HTTP %ld instead of 200%s",
			       s->who, code, code >= 300 && code < 400 ?
			       " (redirects are not followed: put the final URL in tsa.url)" : "");
	if (!is_reply_type(ct)) {
		char shown[80] = "";
		for (size_t i = 0; ct && ct[i] && i + 1 < sizeof(shown); i++)
			shown[i] = (ct[i] >= 0x20 && ct[i] < 0x7f) ? ct[i] : '?';
		return err_set(err, 503, "tsa-unavailable", "%s answered Content-Type \"%s\" instead "
			       "of application/timestamp-reply (is tsa.url a timestamp server?)",
			       s->who, ct ? shown : "(none)");
	}
	return 0;
}

/* POSTs req and leaves the 200 application/timestamp-reply body in out. */
static int http_post(const struct tsa_http *s, const uint8_t *req, size_t req_len,
		     struct buf *out, struct selo_err *err)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/timestamp-query");
	struct curl_slist *h2 = hdr ? curl_slist_append(hdr, "Accept: application/timestamp-reply")
				    : NULL;
	if (!c || !h2) {
		curl_slist_free_all(hdr);
		curl_easy_cleanup(c);
		return err_set(err, 503, "tsa-unavailable", "%s: cannot set up an HTTP request",
			       s->who);
	}
	hdr = h2;
	struct sink k = {BUF_INIT, 0};
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_setup(c, s, req, req_len, hdr, &k, errbuf);
	CURLcode rc = curl_easy_perform(c);
	int ret = rc != CURLE_OK ? curl_failure(s, rc, &k, errbuf, err) : answer_check(s, c, err);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	if (ret == 0)
		*out = k.body;
	else
		buf_free(&k.body);
	return ret;
}

/* ---- the backend ------------------------------------------------------- */

static void last_remember(struct tsa_http *s, const uint8_t *der, size_t len)
{
	pthread_mutex_lock(&s->mu);
	buf_reset(&s->last);
	buf_append(&s->last, der, len);
	pthread_mutex_unlock(&s->mu);
}

static int http_timestamp(void *state, const uint8_t digest[32], uint8_t **der, size_t *len,
			  int64_t *gen_time_ms, struct selo_err *err)
{
	struct tsa_http *s = state;
	uint8_t *req = NULL;
	size_t req_len = 0;
	struct buf resp = BUF_INIT;
	int rc = -1;
	if (tsa_request_make(digest, &req, &req_len, err) == 0 &&
	    http_post(s, req, req_len, &resp, err) == 0)
		rc = tsa_response_accept(s->who, req, req_len, (const uint8_t *)resp.data, resp.len,
					 s->ca_pem.data, s->ca_pem.len, s->anchors, der, len,
					 gen_time_ms, err);
	if (rc == 0)
		last_remember(s, *der, *len);
	free(req);
	buf_free(&resp);
	return rc;
}

static int http_certs_pem(void *state, struct buf *certs, struct selo_err *err)
{
	struct tsa_http *s = state;
	struct buf tok = BUF_INIT;
	pthread_mutex_lock(&s->mu);
	buf_append(&tok, s->last.data, s->last.len);
	pthread_mutex_unlock(&s->mu);
	if (tok.len == 0) {
		/* No token yet: ask for one to learn who signs. */
		static const char probe[] = "selo: TSA certificate probe";
		uint8_t digest[32], *der = NULL;
		size_t len = 0;
		int64_t when;
		sha256(probe, sizeof(probe) - 1, digest);
		if (http_timestamp(s, digest, &der, &len, &when, err) != 0)
			return -1;
		buf_append(&tok, der, len);
		free(der);
	}
	int n = tsa_token_chain_pem((const uint8_t *)tok.data, tok.len, s->ca_pem.data,
				    s->ca_pem.len, certs, err);
	buf_free(&tok);
	return n;
}

/* ---- opening ----------------------------------------------------------- */

static int ca_load(const struct selo_config *cfg, struct tsa_http *s, struct selo_err *err)
{
	char path[1100];
	if (!cfg->tsa_ca[0])
		return err_set(err, 500, "config", "tsa.url is set but tsa.ca is empty: give the PEM "
			       "CA bundle that %s's tokens chain to", cfg->tsa_url);
	if (config_file(cfg, cfg->tsa_ca, path, sizeof(path)) != 0)
		return err_set(err, 500, "config", "tsa.ca: the path is too long: %s", cfg->tsa_ca);
	if (file_read(path, TSA_CA_MAX_BYTES, &s->ca_pem, err) != 0)
		return err_set(err, 500, "config", "cannot read tsa.ca %s (a PEM CA bundle, at most "
			       "%d bytes; a relative path is taken from the data directory)", path,
			       TSA_CA_MAX_BYTES);
	snprintf(s->anchors, sizeof(s->anchors), "tsa.ca %s", path);
	if (!strstr(buf_str(&s->ca_pem), "-----BEGIN CERTIFICATE-----"))
		return err_set(err, 500, "config", "tsa.ca %s holds no PEM certificate", path);
	return 0;
}

static int url_check(const char *url, struct selo_err *err)
{
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
		return err_set(err, 500, "config", "tsa.url \"%s\" must start with http:// or "
			       "https://", url);
	if (strlen(url) >= sizeof(((struct tsa_http *)0)->url))
		return err_set(err, 500, "config", "tsa.url is too long");
	return 0;
}

int tsa_http_open(const struct selo_config *cfg, void **state, struct selo_err *err)
{
	*state = NULL;
	if (url_check(cfg->tsa_url, err) != 0)
		return -1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return err_set(err, 500, "internal", "libcurl does not initialise");
	struct tsa_http *s = xcalloc(1, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	snprintf(s->url, sizeof(s->url), "%s", cfg->tsa_url);
	snprintf(s->who, sizeof(s->who), "TSA %s", cfg->tsa_url);
	s->timeout_ms = cfg->tsa_timeout_ms > 0 ? cfg->tsa_timeout_ms : 10000;
	if (ca_load(cfg, s, err) != 0) {
		http_close(s);
		return -1;
	}
	*state = s;
	return 0;
}

static const char *http_trust_pem(void *state, size_t *len)
{
	const struct tsa_http *s = state;
	*len = s->ca_pem.len;
	return s->ca_pem.data;
}

const struct tsa_ops tsa_http_ops = {
	.kind = "http",
	.timestamp = http_timestamp,
	.certs_pem = http_certs_pem,
	.close = http_close,
	.trust_pem = http_trust_pem,
};
