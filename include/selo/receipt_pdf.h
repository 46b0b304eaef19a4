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
 * receipt and .eml and signs the result (pdf.h). docs/receipt-pdf-layout.md
 * has the pages section by section, the ETSI mapping and the time zone.
 * Any thread may lay out receipts at once. */
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
	int64_t now_ms;         /* when the PDF is made (shown, and its CreationDate); 0: now */
};

/* The pages only: an unsigned PDF from cairo (classic cross-reference
 * table), appended to out. json is the receipt exactly as `selo receipt -o`
 * writes it; a receipt without message.eml_base64 is the short form and
 * shows no content (no subject, variables, attachment names or text). The
 * receipt is shown, not verified (receipt_verify does that), except its
 * checkpoint timestamp, shown as verified only when it verifies against
 * the receipt's own TSA certificates. Errors: 400 "invalid-lang" for a
 * language other than pt-BR or en, 422 "invalid-receipt" when json is not
 * a selo-receipt/v1 document, 500 when drawing fails. */
int receipt_pdf_layout(const char *json, size_t len, const struct receipt_pdf_opts *o,
		       struct buf *out, struct selo_err *err);

/* The whole receipt: the pages, then embedded by pdf_finish the JSON
 * exactly as given (receipt-ID.json, application/json, AFRelationship
 * Data) and, in the full form, the exact .eml (message-ID.eml,
 * message/rfc822, Source), each described in the PDF's language, then
 * signed per sign. Errors: receipt_pdf_layout's, then pdf_finish's. */
int receipt_pdf(const char *json, size_t len, const struct receipt_pdf_opts *o,
		const struct pdf_sign_opts *sign, struct buf *out, struct selo_err *err);

/* America/Sao_Paulo's offset from UTC (seconds, e.g. -10800) at the
 * instant ms, from the IANA tz database (GLib's GTimeZone: no TZ variable,
 * safe in any thread); the timeline shows it next to each UTC time. -1
 * when the system has no such zone. */
int receipt_pdf_local_offset(int64_t ms, int *offset_s);

/* Layouts keep fonts in the calling thread's pango font map, so that only
 * a thread's first receipt pays for loading them; a thread that exits
 * frees its map. This frees the calling thread's map now (the main thread
 * at exit, so LeakSanitizer sees nothing left); a later layout in the
 * thread loads the fonts again. */
void receipt_pdf_fonts_release(void);

#endif
