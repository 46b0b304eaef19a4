/* fuzz_receipt.c: libFuzzer target for receipt_verify, which reads receipts
 * anyone may hand in: any bytes must give a verdict, a report of at most
 * RECEIPT_MAX_CHECKS lines of printable text, and VALID only when no line
 * failed, without reading out of bounds or leaking. The first byte picks
 * whether a (wrong) verifier key and CA are given, to reach both paths. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "selo/receipt.h"

static const char VKEY[] = "example.com/selo-log+350c6e71+AYyGFe8+CwkcfwXPYD6C3Ef8/EjwcjSlmreEBcwt/9NE";
static const char CA[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

static void check_line(const struct receipt_check *k)
{
	if (!memchr(k->name, '\0', sizeof(k->name)) || !memchr(k->detail, '\0', sizeof(k->detail)) ||
	    !k->name[0] || k->ok < -1 || k->ok > 1)
		abort();
	for (const char *p = k->detail; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int pinned = size > 0 && (data[0] & 1);
	static struct receipt_report rep;
	enum receipt_verdict v = receipt_verify((const char *)data, size, pinned ? VKEY : NULL,
						pinned ? CA : NULL, sizeof(CA) - 1, &rep);
	if (v != rep.verdict || rep.n < 1 || rep.n > RECEIPT_MAX_CHECKS)
		abort();
	int failed = 0;
	for (int i = 0; i < rep.n; i++) {
		check_line(&rep.checks[i]);
		failed |= rep.checks[i].ok == 0;
	}
	if ((v == RECEIPT_VALID) == failed)
		abort();
	return 0;
}
