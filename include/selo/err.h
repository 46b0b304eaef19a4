/* err.h: errors a person can act on. Functions return 0 on success and -1 on
 * failure after filling a struct selo_err: an HTTP-like status (4xx for the
 * caller's mistakes, 5xx for ours), a short problem type slug (used in RFC 9457
 * "type" URIs), a message, and up to SELO_ERR_FIELDS per-field errors. */
#ifndef SELO_ERR_H
#define SELO_ERR_H

#define SELO_ERR_FIELDS 16

struct selo_err_field {
	char field[96]; /* JSON pointer-ish path, e.g. "vars.valor", "attachments[0].filename" */
	char msg[224];
};

struct selo_err {
	int status;        /* 0 when unset; 400..499 caller error, 500.. ours */
	char type[48];     /* slug: "invalid-request", "validation-failed", ... */
	char msg[512];     /* what went wrong and what to do, for a person */
	int nfields;
	struct selo_err_field fields[SELO_ERR_FIELDS];
};

/* Clears e (status 0, empty strings). */
void err_clear(struct selo_err *e);

/* Sets status, type and a printf-style message; returns -1 so callers can
 * write `return err_set(e, ...)`. e may be NULL. Keeps existing field errors. */
int err_set(struct selo_err *e, int status, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Adds a per-field error (silently drops beyond SELO_ERR_FIELDS); returns -1. */
int err_field(struct selo_err *e, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Appends OpenSSL's error queue (then clears it) to e->msg after ": ". */
void err_add_openssl(struct selo_err *e);

#endif
