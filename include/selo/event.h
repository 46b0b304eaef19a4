/* event.h: log entries. Every fact about a notice is one event: one line of
 * UTF-8 JSON, compact, keys in a fixed order starting
 * {"v":1,"type":..,"notice":..,"time":..} then the event's own fields in the
 * order given. These bytes are what the Merkle log hashes, so they are built
 * once, stored exactly, and never re-serialised. Personal data appears only
 * as commitments (see crypto.h commitment()). */
#ifndef SELO_EVENT_H
#define SELO_EVENT_H
#include <jansson.h>
#include <stdint.h>
#include "selo/buf.h"

#define EV_SUBMISSION_ACCEPTED "submission_accepted"
#define EV_CONTENT_SEALED "content_sealed"
#define EV_RELAY_ACCEPTED "relay_accepted"
#define EV_DELIVERY_ACCEPTED "delivery_accepted"
#define EV_DELIVERY_DEFERRED "delivery_deferred"
#define EV_DELIVERY_FAILED "delivery_failed"
#define EV_OPENED "opened"
#define EV_CLICKED "clicked"
#define EV_READ_CONFIRMED "read_confirmed"
#define EV_CANCELED "canceled"
#define EV_TRACKING_SUMMARY "tracking_summary" /* hits past the first ones, counted */

/* Appends the entry bytes (no trailing newline) to out. fields is an object
 * whose keys keep insertion order (jansson preserves it with
 * JSON_PRESERVE_ORDER); it may be NULL. Returns 0, or -1 if fields holds a
 * reserved key (v, type, notice, time) or cannot be encoded. */
int event_entry_encode(struct buf *out, const char *type, const char *notice_id,
		       int64_t time_ms, const json_t *fields);

/* Fields written straight as text, for the hot path that cannot afford a
 * jansson object per event (the tracker's hits): each call appends one
 * member, `"key":value`, with a comma before it when fields is not empty.
 * The bytes are those json_dump_callback(JSON_COMPACT | JSON_PRESERVE_ORDER)
 * writes for an object built with the same calls in the same order:
 * strings escaped as jansson escapes them (\" \\ \b \f \n \r \t, other
 * control bytes \u00XX), non-ASCII kept as UTF-8. Keys must be plain
 * ([A-Za-z0-9_-]) and not reserved (v, type, notice, time). Returns 0, or -1
 * (nothing appended) for such a key or a value that is not valid UTF-8. */
int event_field_str(struct buf *fields, const char *key, const char *value);
int event_field_int(struct buf *fields, const char *key, long long value);

/* event_entry_encode with the fields as made by event_field_*() (len bytes,
 * may be 0). Returns 0, or -1 when type or notice_id is not a plain token. */
int event_entry_encode_text(struct buf *out, const char *type, const char *notice_id,
			    int64_t time_ms, const char *fields, size_t len);



/* Disclosures: every personal or content value an event commits to is kept
 * (outside the log) with its commitment, so a receipt can disclose it and
 * erasing the notice's salt and disclosures erases the person. */
struct disclosure {
	char commitment[72];  /* "sha256:<hex>" */
	char *value;          /* malloc'd, NUL-terminated (values are UTF-8 text) */
	size_t len;
};
struct disclosures {
	struct disclosure *v;
	size_t n, cap;
};
#define DISCLOSURES_INIT {NULL, 0, 0}
/* Computes the commitment of value under salt, remembers the pair, and
 * returns the commitment text (valid until the next disclose() on d). */
const char *disclose(struct disclosures *d, const uint8_t salt[32], const char *value, size_t len);
void disclosures_free(struct disclosures *d);
#endif
