/* pdf.h: what Selo writes into and reads out of a PDF it did not lay out
 * itself (docs/receipt-pdf.md). The page content comes from cairo
 * (receipt_pdf.c); this module appends one PDF incremental update
 * (ISO 32000-1 7.5.6) to those bytes that adds:
 *  - embedded files (7.11.4), PDF/A-3 style associated files: a Filespec
 *    per attachment with /F and /UF, /AFRelationship, an /EmbeddedFile
 *    stream written without a filter (/Params /Size /CheckSum /ModDate),
 *    listed in the catalog's /Names /EmbeddedFiles tree and its /AF array;
 *  - a PAdES baseline signature (ETSI EN 319 142-1): an invisible signature
 *    field on page 1, /AcroForm /SigFlags 3, a /Sig dictionary with
 *    /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached, /ByteRange
 *    over the whole file but /Contents, and /Contents a detached CMS
 *    SignedData (signed attributes content-type, message-digest, ESS
 *    signing-certificate-v2, no signing-time: the time is /M) carrying an
 *    RFC 3161 token over the signature value as the unsigned attribute
 *    id-aa-timeStampToken.
 * A reader (pdfsig, Acrobat, Okular) shows the document as signed and
 * unmodified; changing any byte of the signed ranges breaks it. */
#ifndef SELO_PDF_H
#define SELO_PDF_H
#include <stddef.h>
#include <stdint.h>
#include "selo/buf.h"
#include "selo/err.h"
#include "selo/smime.h"

#define PDF_MAX_INPUT (64u << 20) /* largest PDF read or extended */

struct pdf_attachment {
	const char *name;         /* file name shown by readers, e.g. receipt-ID.json */
	const char *mime;         /* e.g. application/json, message/rfc822 */
	const char *description;  /* /Desc, UTF-8 */
	const char *relationship; /* /AFRelationship: Data, Source, Supplement, ... */
	const uint8_t *data;
	size_t len;
};

struct pdf_sign_opts {
	struct smime_signer *signer; /* the document-signing key and certificate */
	smime_tst_fn tst;            /* the signature timestamp (required) */
	void *tst_arg;
	const char *name;            /* /Name, /Reason, /Location (UTF-8; may be NULL) */
	const char *reason;
	const char *location;
	int64_t when_ms;             /* /M, the claimed signing time */
};

/* Appends to in (a complete PDF with a classic cross-reference table, as
 * cairo writes it) the incremental update described above and appends the
 * whole signed file to out (offsets count from where it starts in out; on
 * error out is left as it was). The input bytes are kept as they are; the
 * update rewrites the catalog and page 1 under their own numbers, keeping
 * their entries (an existing /Names, /AcroForm /Fields, /AF or /Annots is
 * extended, not replaced), and adds /Version /1.7 when the file is older.
 * At most 16 attachments, with unique UTF-8 names; mime a type/subtype;
 * relationship a PDF name (NULL: Unspecified); when_ms 0 means now. The
 * CMS must fit the 16 KiB reserved in /Contents. Errors: 422 "invalid-pdf"
 * when in is not a PDF this module can extend (the reason named: no
 * startxref, a cross-reference stream, encrypted, an object missing, ...),
 * 500 for bad arguments, "signature-too-large", or signing failures, and
 * the tst's own error (e.g. 503) or 502 when its token does not cover the
 * signature. */
int pdf_finish(const uint8_t *in, size_t len, const struct pdf_attachment *att, size_t n_att,
	       const struct pdf_sign_opts *sign, struct buf *out, struct selo_err *err);

/* Reads an untrusted PDF (bounded, never trusting an offset or length it
 * has not checked) and appends the bytes of the first embedded file whose
 * name (/UF or /F, as UTF-8) ends with suffix (e.g. ".json") to out, its
 * name into name (may be NULL; cut at a character boundary to fit; control
 * characters shown as '_'). Files are looked for in the catalog's
 * /Names /EmbeddedFiles tree, then its /AF array; objects are found
 * through the cross-reference chain (the newest definition wins) or, when
 * that is broken or silent, by scanning for "N G obj" (the last one wins).
 * Classic cross-reference tables only: objects inside object streams are
 * not seen. Unfiltered and /FlateDecode streams (no predictor) are read,
 * the latter inflated to at most PDF_MAX_INPUT bytes; a stream's /Length
 * must end at "endstream". On error out is left as it was. Errors: 404
 * "not-found" when the PDF embeds no such file, 422 "invalid-pdf" when the
 * bytes are not a PDF or the file cannot be read (the reason named). */
int pdf_embedded_file(const uint8_t *pdf, size_t len, const char *suffix, struct buf *out,
		      char *name, size_t name_len, struct selo_err *err);

/* The document signature of an untrusted PDF: the first signature field's
 * (of the catalog's /AcroForm) /ByteRange must cover the whole file but its
 * /Contents, and the detached CMS there must verify over those bytes. The
 * signer's certificate chain is not judged here (the operator's CA is a
 * PDF reader's business): its subject (RFC 2253) goes into signer. 0 valid;
 * 404 "not-found" for an unsigned PDF (no /AcroForm, no signature field, or
 * no signature dictionary); 422 "invalid-pdf" or "invalid-signature" with
 * the reason; 422 "partial-signature" when the signature verifies over the
 * bytes it covers but more bytes follow them (an incremental update made
 * after signing, which can change the pages a reader shows). */
int pdf_signature_check(const uint8_t *pdf, size_t len, char *signer, size_t signer_len,
			struct selo_err *err);

#endif
