/* compose.h: from a rendered notice to the exact bytes sent. Builds
 * multipart/alternative (text + HTML) inside multipart/mixed when there are
 * attachments, rewrites the HTML's http(s) links to the tracker
 * (track.base_url/c/{token}), adds the open pixel (/o/{token}.gif) and the
 * "Confirmar recebimento" link (/r/{token}) as asked, S/MIME-signs that
 * entity, writes the top-level headers itself (From, To, Subject, Date,
 * Message-ID, MIME-Version, Content-Type) so that no relay adds any, and
 * DKIM-signs the result. A composer holds the loaded keys; it may be shared
 * by threads. */
#ifndef SELO_COMPOSE_H
#define SELO_COMPOSE_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "selo/buf.h"
#include "selo/config.h"
#include "selo/err.h"
#include "selo/smime.h"
#include "selo/store.h"

struct composer;

/* Loads the S/MIME and DKIM keys and the token key from cfg->data_dir/keys:
 * smime.pem + smime.crt (+ smime-chain.pem when present, for a real
 * certificate's intermediates), dkim-rsa.pem and/or dkim-ed25519.pem (a
 * missing one is skipped), token.key; checks the [mail] and [track]
 * settings it uses. 5xx "config" or the loader's error otherwise. */
int composer_new(const struct selo_config *cfg, struct composer **out, struct selo_err *err);
void composer_free(struct composer *c);
/* Sets the signature-timestamp hook used by every later compose (ledger
 * issue). Call before sharing the composer between threads. When set, a
 * failing hook makes compose_message fail: never a silently untimestamped
 * message. */
void composer_set_tsa(struct composer *c, smime_tst_fn fn, void *arg);

struct compose_in {
	const char *notice_id;      /* text id */
	const char *to;
	const char *to_name;        /* NULL: none */
	const char *subject;        /* rendered, one line */
	const char *text;           /* rendered */
	const char *html;           /* rendered, NULL: text only */
	const struct attachment_rec *att;
	size_t natt;
	int track_opens, track_clicks, track_read;
	int64_t now_ms;             /* Date header and Message-ID time */
};

struct compose_token {
	char token[64];
	char kind[8];               /* open | click | read */
	int link;                   /* click index (1-based), 0 otherwise */
	char *url;                  /* original URL for clicks, NULL otherwise */
};

struct compose_out {
	struct buf eml;             /* the exact message */
	char sha256[65];
	char message_id[128];       /* without angle brackets */
	struct compose_token *tokens;
	size_t ntokens;
	json_t *event_fields;       /* content_sealed fields, in order: sha256, size,
				       message_id, smime{subject,cert_sha256,timestamped},
				       dkim[{d,s,a}], tracking{opens,clicks,read},
				       attachments[{sha256,size,content_type}]; never
				       the recipient, names, subject or file names */
};

/* Longest subject or to_name (bytes) compose_message accepts; check
 * rendered values against it (mime_header_text_check) at submission so a
 * notice never fails at send time. */
#define COMPOSE_HEADER_TEXT_MAX 4096

/* Tokens come out as: clicks (link 1..n, in document order), then open
 * (only with HTML), then read. On failure *out is empty (nothing to free)
 * and err says why: 422 validation-failed with a field error (to, to_name,
 * subject, attachments[i].filename|content_type), 422 message-too-large,
 * or 5xx (signing, TSA hook, keys). */
int compose_message(struct composer *c, const struct compose_in *in, struct compose_out *out,
		    struct selo_err *err);
void compose_out_free(struct compose_out *o);

/* HTML rewriting alone, exposed for tests: replaces href="http(s)://..."
 * (single, double or unquoted, any case) of <a> and <area> tags with the
 * tracker URL of a new click token, appending the tokens to *tokens (url =
 * the URL a browser would follow: entities decoded, spaces trimmed). */
int compose_rewrite_links(struct composer *c, const uint8_t notice[16], const char *html,
			  struct buf *out, struct compose_token **tokens, size_t *ntokens);

#endif
