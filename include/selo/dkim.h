/* dkim.h: DKIM signing (RFC 6376), relaxed/relaxed, rsa-sha256 with the RSA
 * key at selector S and ed25519-sha256 (RFC 8463) with the Ed25519 key at
 * selector "S-ed25519", over the final message bytes. Signing is Selo's own
 * code on OpenSSL (Debian's libopendkim 2.11.0~beta2 leaks memory on every
 * Ed25519 signature); libopendkim verifies in the tests, with dkimpy. A
 * signer is read-only after loading and may be shared by threads. */
#ifndef SELO_DKIM_H
#define SELO_DKIM_H
#include <stddef.h>
#include "selo/buf.h"
#include "selo/err.h"

struct dkim_signer;

/* Either key path may be NULL (that algorithm is then not used); at least
 * one is needed. */
int dkim_signer_load(const char *domain, const char *selector, const char *rsa_key_path,
		     const char *ed25519_key_path, struct dkim_signer **out, struct selo_err *err);
void dkim_signer_free(struct dkim_signer *s);

/* (Named so as not to clash with libopendkim's own dkim_sign().)
 * msg: the whole message (headers, blank line, body; CRLF). Appends one
 * "DKIM-Signature: ...\r\n" header per key to out, to be placed before the
 * message's first header. Signs From, To, Subject, Date, Message-ID,
 * MIME-Version, Content-Type, and over-signs From, To and Subject so that no
 * copy of them can be added later. */
int dkim_sign_message(struct dkim_signer *s, const char *msg, size_t len, struct buf *out,
		      struct selo_err *err);

/* For tests: verifies every DKIM-Signature of msg against keys in the file
 * keyfile (lines "sel._domainkey.domain v=DKIM1; k=...; p=..."). Returns the
 * number of valid signatures, or -1. */
int dkim_verify_with_keyfile(const char *msg, size_t len, const char *keyfile,
			     struct selo_err *err);

#endif
