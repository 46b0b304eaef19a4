/* export.h: receipts as files for people and programs, one path for the CLI
 * (`selo receipt`) and the API (GET /v1/notices/{id}/receipt): the JSON text
 * exactly as both write it, and the signed PDF (receipt_pdf.h) with its
 * document-signing key loaded once. docs/receipt-pdf.md. */
#ifndef SELO_EXPORT_H
#define SELO_EXPORT_H
#include "selo/buf.h"
#include "selo/config.h"
#include "selo/err.h"
#include "selo/ledger.h"

struct exporter;

/* Loads the document-signing key and certificate ([receipt] sign_key,
 * sign_cert, sign_chain; by default the S/MIME ones in DIR/keys) and takes
 * the ledger's TSA for the signature timestamp. l must outlive x. */
int exporter_open(const struct selo_config *cfg, struct ledger *l, struct exporter **out,
		  struct selo_err *err);
void exporter_close(struct exporter *x);

/* A language name as given by a user ("pt-BR", "pt", "en"; NULL: pt-BR)
 * made canonical ("pt-BR" or "en"), or NULL when it is not one we write. */
const char *export_lang(const char *lang);

/* The receipt (ledger_receipt) as the JSON text every export writes:
 * indented, keys in order, a final LF. Errors as ledger_receipt. */
int export_receipt_json(struct ledger *l, const char *id, int short_form, struct buf *out,
			struct selo_err *err);

/* The signed PDF for that same JSON text (json may be NULL: it is made). */
int export_receipt_pdf(struct exporter *x, const char *id, int short_form, const char *lang,
		       const struct buf *json, struct buf *out, struct selo_err *err);

#endif
