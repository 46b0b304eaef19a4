/* receipt.h: selo-receipt/v1, the proof for one notice (docs/receipt.md):
 *
 * {"format":"selo-receipt/v1","notice":ID,"issued_at":RFC3339,
 *  "log":{"verifier_key":VKEY,"checkpoint":SIGNED_NOTE,
 *         "timestamp":BASE64_DER_TST over SHA-256(checkpoint bytes),
 *         "tsa_certs":[PEM (the TSA's certificate first), ...]},
 *  "events":[{"index":N,"entry":EXACT_ENTRY_TEXT,"proof":[BASE64_HASH,...]},...],
 *  "message":{"sha256":HEX,"eml_base64":BASE64},      (no eml_base64 in the short form)
 *  "disclosure":{"salt":HEX,"values":{COMMITMENT:VALUE,...}}}
 *
 * Events are in log order; each proof is the RFC 9162 inclusion proof of
 * the entry (leaf hash of its UTF-8 bytes) at `index` in the tree of the
 * checkpoint's size. receipt_build lives with the ledger (ledger.h);
 * receipt_verify is offline and needs nothing but the receipt and, for a
 * pinned verdict, the log's verifier key and the TSA's CA. */
#ifndef SELO_RECEIPT_H
#define SELO_RECEIPT_H
#include <stddef.h>
#include "selo/err.h"

#define RECEIPT_FORMAT "selo-receipt/v1"
#define RECEIPT_MAX_CHECKS 96

enum receipt_verdict { RECEIPT_VALID = 0, RECEIPT_INVALID = 1, RECEIPT_UNREADABLE = 2 };

struct receipt_check {
	char name[48];      /* stable identifiers, shared with the verification page:
			       format, notice, checkpoint_signature, checkpoint_origin,
			       checkpoint_timestamp, inclusion, entries_notice, time_order,
			       entries_before_timestamp, message_digest, disclosures,
			       key_pinned, tsa_pinned */
	int ok;             /* 1 passed, 0 failed, -1 warning (passed, with a caveat) */
	char detail[400];   /* what was checked, or what is wrong, for a person */
};

struct receipt_report {
	struct receipt_check checks[RECEIPT_MAX_CHECKS];
	int n;
	char notice[32];
	enum receipt_verdict verdict;
};

/* Verifies a receipt. vkey: the log's verifier key string, or NULL to use
 * the one inside (a warning: not pinned). tsa_ca_pem: trusted CA
 * certificates (PEM) for the timestamp, or NULL to trust the last
 * certificate inside (a warning). Fills rep with one entry per check in the
 * order run and returns the verdict: VALID only when every check passed;
 * UNREADABLE when the input is not a selo-receipt/v1 JSON document. */
enum receipt_verdict receipt_verify(const char *json, size_t len, const char *vkey,
				    const char *tsa_ca_pem, size_t ca_len,
				    struct receipt_report *rep);

#endif
