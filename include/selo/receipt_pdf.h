/* receipt_pdf.h: the PDF receipt a person reads (docs/receipt-pdf.md): A4
 * pages laid out with cairo and pango from a selo-receipt/v1 JSON document
 * (receipt.h), in pt-BR or English: the notice, a timeline of every event
 * (UTC and America/Sao_Paulo, each row naming its ETSI EN 319 522-1
 * evidence and saying what it proves and what it does not), the evidence
 * block (log origin, checkpoint size and root, the checkpoint's RFC 3161
 * time and TSA, the verifier key, how to verify), a QR code to the
 * verification page, the message's text as the recipient saw it (full form
 * only) and a closing "what this receipt proves" box.
 * receipt_pdf_layout writes only the pages; receipt_pdf adds the embedded
 * receipt and .eml and signs the result (pdf.h). */
#ifndef SELO_RECEIPT_PDF_H
#define SELO_RECEIPT_PDF_H
#include <stddef.h>
#include <stdint.h>
#include "selo/buf.h"
#include "selo/err.h"
#include "selo/pdf.h"

struct receipt_pdf_opts {
	const char *lang;       /* "pt-BR" (default when NULL) or "en" */
	const char *verify_url; /* the QR code's target: track.base_url + "/verify?checkpoint" */
	int64_t now_ms;         /* when the PDF is made (shown, and the signature's /M) */
};

/* The pages only: an unsigned PDF from cairo. json is the receipt exactly
 * as `selo receipt -o` writes it; a receipt without message.eml_base64 is
 * the short form and shows no content. Errors: 422 when json is not a
 * selo-receipt/v1 document, 500 when drawing fails. */
int receipt_pdf_layout(const char *json, size_t len, const struct receipt_pdf_opts *o,
		       struct buf *out, struct selo_err *err);

/* The whole receipt: the pages, then the JSON (as receipt-ID.json,
 * AFRelationship Data) and, in the full form, the exact .eml (as
 * message-ID.eml, Source) embedded, then signed per sign. */
int receipt_pdf(const char *json, size_t len, const struct receipt_pdf_opts *o,
		const struct pdf_sign_opts *sign, struct buf *out, struct selo_err *err);

#endif
