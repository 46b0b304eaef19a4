/* export.c: receipts as files (see export.h). The PDF's signature is made
 * with the operator's document key and timestamped by the ledger's TSA, so
 * a PDF receipt carries the same trust anchors as the log it proves. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/export.h"
#include "selo/receipt_pdf.h"
#include "selo/smime.h"
#include "selo/tsa.h"

struct exporter {
	struct ledger *ledger;
	struct smime_signer *signer;
	char verify_url[320];
};

/* A configured path (relative ones are under the data directory), or
 * the fallback (under the data directory) when the key is unset. */
static int key_file(const struct selo_config *cfg, const char *set, const char *fallback,
		    char *out, size_t n, struct selo_err *err)
{
	const char *name = set[0] ? set : fallback;
	if (config_file(cfg, name, out, n) != 0)
		return err_set(err, 500, "config", "[receipt] key path too long: %s", name);
	return 0;
}

int exporter_open(const struct selo_config *cfg, struct ledger *l, struct exporter **out,
		  struct selo_err *err)
{
	*out = NULL;
	char key[1100], cert[1100], chain[1100];
	if (key_file(cfg, cfg->receipt_sign_key, "keys/smime.pem", key, sizeof(key), err) < 0 ||
	    key_file(cfg, cfg->receipt_sign_cert, "keys/smime.crt", cert, sizeof(cert), err) < 0 ||
	    key_file(cfg, cfg->receipt_sign_chain, "keys/smime-chain.pem", chain, sizeof(chain),
		     err) < 0)
		return -1;
	/* The default chain file is optional (a development key has none); a
	 * configured one must exist. */
	const char *ch = cfg->receipt_sign_chain[0] || access(chain, R_OK) == 0 ? chain : NULL;
	struct exporter *x = xcalloc(1, sizeof(*x));
	x->ledger = l;
	snprintf(x->verify_url, sizeof(x->verify_url), "%s/verify?checkpoint", cfg->track_base_url);
	if (smime_signer_load_document(key, cert, ch, &x->signer, err) < 0) {
		free(x);
		return -1;
	}
	*out = x;
	return 0;
}

void exporter_close(struct exporter *x)
{
	if (!x)
		return;
	smime_signer_free(x->signer);
	free(x);
}

const char *export_lang(const char *lang)
{
	if (!lang || !strcmp(lang, "pt-BR") || !strcmp(lang, "pt") || !strcmp(lang, "pt-br"))
		return "pt-BR";
	if (!strcmp(lang, "en"))
		return "en";
	return NULL;
}

int export_receipt_json(struct ledger *l, const char *id, int short_form, struct buf *out,
			struct selo_err *err)
{
	json_t *r = NULL;
	if (ledger_receipt(l, id, short_form, &r, err) != 0)
		return -1;
	char *text = json_dumps(r, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(r);
	if (!text)
		return err_set(err, 500, "internal", "cannot write the receipt");
	buf_puts(out, text);
	buf_putc(out, '\n');
	free(text);
	return 0;
}

/* smime_tst_fn over the ledger's TSA: the PDF signature's timestamp. */
static int export_pdf_tst(void *arg, const uint8_t digest[32], uint8_t **der, size_t *len,
		   struct selo_err *err)
{
	int64_t t;
	return tsa_timestamp(ledger_tsa(arg), digest, der, len, &t, err);
}

int export_receipt_pdf(struct exporter *x, const char *id, int short_form, const char *lang,
		       const struct buf *json, struct buf *out, struct selo_err *err)
{
	const char *canon = export_lang(lang);
	if (!canon)
		return err_set(err, 400, "invalid-lang", "lang must be pt-BR or en, not \"%.40s\"",
			       lang);
	struct buf own = BUF_INIT;
	if (!json) {
		if (export_receipt_json(x->ledger, id, short_form, &own, err) != 0) {
			buf_free(&own);
			return -1;
		}
		json = &own;
	}
	int64_t now = clock_now_ms();
	struct receipt_pdf_opts o = {canon, x->verify_url, now};
	struct pdf_sign_opts s = {x->signer, export_pdf_tst, x->ledger, "Selo",
				  canon[0] == 'e' ? "Receipt of an electronic notice"
						  : "Recibo de notificação eletrônica",
				  NULL, now};
	int rc = receipt_pdf(json->data, json->len, &o, &s, out, err);
	buf_free(&own);
	return rc;
}
