/* fuzz_pdf.c: libFuzzer target for the pdf module. pdf_embedded_file reads
 * PDFs anyone may hand in (`selo verify r.pdf`): any bytes must give 0,
 * 404 or 422 with a message, leave out as it was on an error, and on
 * success name a file that ends with the suffix asked for, as UTF-8
 * without control characters. pdf_finish reads PDFs too (cairo's, but with
 * the same parser): whatever it accepts must come out starting with the
 * input and with the attachment readable back byte for byte. Signing
 * costs milliseconds (an RSA key and the built-in TSA, made by keys_init
 * in a temporary directory at start), so only inputs whose size is a
 * multiple of 4 go through pdf_finish; the reader sees every input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "selo/config.h"
#include "selo/keys.h"
#include "selo/pdf.h"
#include "selo/smime.h"
#include "selo/tsa.h"

static char root[64];
static struct smime_signer *signer;
static struct tsa *tsa;
static struct selo_config cfg;

static const char JSON[] = "{\"format\":\"selo-receipt/v1\",\"fuzz\":true}\n";

static void cleanup(void)
{
	smime_signer_free(signer);
	tsa_close(tsa);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (strncmp(root, "/tmp/selo-fuzz-pdf-", 19) == 0 && system(cmd) != 0)
		fprintf(stderr, "fuzz_pdf: cannot remove %s\n", root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	struct selo_err err = {0};
	struct keys_report rep;
	char keys[128], key[192], crt[192];
	snprintf(root, sizeof(root), "/tmp/selo-fuzz-pdf-XXXXXX");
	if (!mkdtemp(root))
		abort();
	snprintf(keys, sizeof(keys), "%s/keys", root);
	snprintf(key, sizeof(key), "%s/smime.pem", keys);
	snprintf(crt, sizeof(crt), "%s/smime.crt", keys);
	config_defaults(&cfg, root);
	if (keys_init(keys, "example.com", "notices@example.com", "example.com/selo", 0, &rep,
		      &err) != 0 ||
	    smime_signer_load(key, crt, NULL, &signer, &err) != 0 ||
	    tsa_open(&cfg, &tsa, &err) != 0) {
		fprintf(stderr, "fuzz_pdf: %s\n", err.msg);
		abort();
	}
	atexit(cleanup);
	return 0;
}

static int stamp(void *arg, const uint8_t digest[32], uint8_t **der, size_t *len,
		 struct selo_err *err)
{
	int64_t t;
	return tsa_timestamp(arg, digest, der, len, &t, err);
}

static void check_name(const char *name, size_t cap, const char *suffix)
{
	const char *end = memchr(name, '\0', cap);
	if (!end)
		abort();
	size_t n = (size_t)(end - name), m = strlen(suffix);
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			abort();
	/* the whole name fits here, so it must end with the suffix */
	if (n + 8 < cap && (n < m || memcmp(name + n - m, suffix, m) != 0))
		abort();
}

static void read_one(const uint8_t *data, size_t size, const char *suffix)
{
	struct buf out = BUF_INIT;
	struct selo_err err;
	char name[256];
	err_clear(&err);
	buf_puts(&out, "kept");
	int rc = pdf_embedded_file(data, size, suffix, &out, name, sizeof(name), &err);
	if (rc == 0)
		check_name(name, sizeof(name), suffix);
	else if ((err.status != 404 && err.status != 422) || !err.msg[0] || out.len != 4 ||
		 memcmp(out.data, "kept", 4) != 0)
		abort();
	buf_free(&out);
}

static void finish_one(const uint8_t *data, size_t size)
{
	struct pdf_attachment att = {"receipt-FUZZ.json", "application/json", "fuzz", "Data",
				     (const uint8_t *)JSON, sizeof(JSON) - 1};
	struct pdf_sign_opts so = {signer, stamp, tsa, "Selo", NULL, NULL, 1733000000000};
	struct buf out = BUF_INIT, got = BUF_INIT;
	struct selo_err err;
	err_clear(&err);
	if (pdf_finish(data, size, &att, 1, &so, &out, &err) == 0) {
		if (out.len <= size || memcmp(out.data, data, size) != 0)
			abort();
		err_clear(&err);
		if (pdf_embedded_file((const uint8_t *)out.data, out.len, ".json", &got, NULL, 0,
				      &err) != 0) {
			fprintf(stderr, "fuzz_pdf: a finished PDF does not read back: %s\n", err.msg);
			abort();
		}
		if (got.len != sizeof(JSON) - 1 || memcmp(got.data, JSON, got.len) != 0)
			abort();
	} else if (err.status != 422 || out.len != 0) {
		fprintf(stderr, "fuzz_pdf: pdf_finish: %d %s\n", err.status, err.msg);
		abort();
	}
	buf_free(&out);
	buf_free(&got);
}

/* selo verify's pdf_signature: any bytes give 0 or an error with a reason. */
static void signature_one(const uint8_t *data, size_t size)
{
	struct selo_err err;
	char signer[128];
	err_clear(&err);
	if (pdf_signature_check(data, size, signer, sizeof(signer), &err) != 0 &&
	    ((err.status != 404 && err.status != 422) || !err.msg[0]))
		abort();
	if (!memchr(signer, '\0', sizeof(signer)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	signature_one(data, size);
	read_one(data, size, ".json");
	read_one(data, size, ".eml");
	if (size % 4 == 0)
		finish_one(data, size);
	return 0;
}
