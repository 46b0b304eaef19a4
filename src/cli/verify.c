/* verify.c: `selo verify FILE.json|FILE.pdf [--key VERIFIER_KEY] [--tsa-ca FILE]`:
 * checks a receipt offline (receipt_verify) and prints one line per check,
 * "ok   name: detail", "FAIL name: detail" or "WARN name: detail", then
 * "verdict: VALID|INVALID|UNREADABLE" on stdout. A PDF's own signature comes
 * first (pdf_signature); when it does not cover the pages, "receipt:" and
 * "pages:" lines say what is proven and what is not before the verdict. Exit 0 valid, 1 invalid,
 * 2 unreadable, unreadable input or usage error. Loud warnings go to stderr
 * when the log key or the TSA's CA was not given, since a receipt that
 * vouches for its own keys proves only that it is consistent. */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "selo/buf.h"
#include "selo/fileio.h"
#include "selo/keys.h"
#include "selo/pdf.h"
#include "selo/receipt.h"

#define MAX_INPUT ((size_t)96 << 20)
#define MAX_SMALL_FILE 65536
#define MAX_CA_FILE ((size_t)4 << 20)

static const char HELP[] =
	"usage: selo verify FILE.json|FILE.pdf [--key VERIFIER_KEY] [--tsa-ca FILE]\n"
	"Checks a selo-receipt/v1 offline: the checkpoint's signature, its RFC 3161\n"
	"timestamp, each event's inclusion proof, that the events belong to the\n"
	"notice and are in order, the message digest and every disclosed value.\n"
	"A PDF receipt is checked through the JSON receipt embedded in it, and its\n"
	"own signature over the whole file (pdf_signature): a PDF whose pages no valid\n"
	"signature covers is INVALID, the embedded receipt's verdict said beside it.\n"
	"FILE - reads standard input.\n"
	"\n"
	"  --key K      the log's verifier key (\"name+id+base64\") or a file holding\n"
	"               it, e.g. DIR/keys/log.vkey; get it from the operator, not\n"
	"               from the receipt\n"
	"  --tsa-ca F   PEM file with the CA certificates trusted for the timestamp\n"
	"               (the built-in TSA's is DIR/keys/ca.crt)\n"
	"\n"
	"Prints \"ok\", \"FAIL\" or \"WARN\" and the check's name for each check, then\n"
	"\"verdict: VALID\", \"INVALID\" or \"UNREADABLE\". Exit 0 valid, 1 invalid,\n"
	"2 unreadable or usage error. docs/receipt.md explains every check.\n";

static int read_input(const char *path, struct buf *out)
{
	struct selo_err err;
	err_clear(&err);
	if (strcmp(path, "-") != 0) {
		if (file_read(path, MAX_INPUT, out, &err) == 0)
			return 0;
		fprintf(stderr, "selo verify: %s\n", err.msg);
		return -1;
	}
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
		if (out->len + n > MAX_INPUT) {
			fprintf(stderr, "selo verify: standard input is larger than %zu bytes\n",
				MAX_INPUT);
			return -1;
		}
		buf_append(out, chunk, n);
	}
	if (ferror(stdin)) {
		fprintf(stderr, "selo verify: cannot read standard input\n");
		return -1;
	}
	return 0;
}

/* --key takes the key itself or a file holding it: a valid key string is a
 * key, anything else must be a readable file with one. */
static int load_key(const char *arg, struct buf *key)
{
	char name[256];
	uint8_t pub[32];
	struct selo_err err;
	err_clear(&err);
	if (note_vkey_parse(arg, name, sizeof(name), pub, &err) == 0) {
		buf_puts(key, arg);
		return 0;
	}
	if (file_read(arg, MAX_SMALL_FILE, key, &err) != 0) {
		fprintf(stderr, "selo verify: --key %s: not a verifier key (name+id+base64) and not "
			"a readable file\n", arg);
		return -1;
	}
	while (key->len && strchr("\r\n \t", key->data[key->len - 1]))
		key->data[--key->len] = '\0';
	if (note_vkey_parse(buf_str(key), name, sizeof(name), pub, &err) != 0) {
		fprintf(stderr, "selo verify: --key %s: the file does not hold a verifier key: %s\n",
			arg, err.msg);
		return -1;
	}
	return 0;
}

static int load_ca(const char *path, struct buf *ca)
{
	struct selo_err err;
	err_clear(&err);
	if (file_read(path, MAX_CA_FILE, ca, &err) != 0) {
		fprintf(stderr, "selo verify: --tsa-ca: %s\n", err.msg);
		return -1;
	}
	if (!strstr(buf_str(ca), "-----BEGIN CERTIFICATE-----")) {
		fprintf(stderr, "selo verify: --tsa-ca %s holds no PEM certificate\n", path);
		return -1;
	}
	return 0;
}

static void warn_unpinned(int key, int ca)
{
	if (!key)
		fputs("selo verify: WARNING: no --key given: the checkpoint signature is checked with\n"
		      "  the key the receipt itself names, which anyone could have made. Get the\n"
		      "  log's verifier key from the operator and pass it with --key.\n",
		      stderr);
	if (!ca)
		fputs("selo verify: WARNING: no --tsa-ca given: the timestamp is checked against a\n"
		      "  CA certificate the receipt itself carries. Pass the TSA's CA with --tsa-ca.\n",
		      stderr);
}

static void print_checks(const struct receipt_report *rep)
{
	for (int i = 0; i < rep->n; i++) {
		const struct receipt_check *k = &rep->checks[i];
		const char *tag = k->ok > 0 ? "ok  " : k->ok == 0 ? "FAIL" : "WARN";
		printf("%s %s: %s\n", tag, k->name, k->detail);
	}
}

static const char *const VERDICT[] = {"VALID", "INVALID", "UNREADABLE"};

/* What a PDF receipt's own signature says of its pages. */
struct pdf_pages {
	int proven;     /* a valid signature covers the whole file */
	char why[96];   /* when not, in a few words */
	char name[256]; /* the embedded receipt's file name */
};

/* A PDF receipt carries the JSON receipt as an embedded file: that is what
 * is verified. The PDF's own signature is checked too (pdf_signature): the
 * receipt inside proves the events whatever the pages around it say, but a
 * person reads the pages, so a PDF whose pages no valid signature covers
 * (unsigned, signature removed or broken, bytes appended after signing) is
 * not VALID as a document. The certificate chain is for a PDF reader with
 * the operator's CA. */
static int from_pdf(const char *file, struct buf *in, struct pdf_pages *pp)
{
	struct selo_err err;
	err_clear(&err);
	struct buf json = BUF_INIT;
	char signer[512] = "";
	if (pdf_embedded_file((const uint8_t *)in->data, in->len, ".json", &json, pp->name,
			      sizeof(pp->name), &err) != 0) {
		if (err.status == 404)
			fprintf(stderr, "selo verify: %s is a PDF with no receipt inside (no embedded "
				".json file): export one with selo receipt ID --pdf FILE.pdf\n", file);
		else
			fprintf(stderr, "selo verify: %s: %s\n", file, err.msg);
		buf_free(&json);
		return -1;
	}
	printf("pdf: %s is a PDF receipt; verifying the receipt embedded in it (%s) and the "
	       "PDF's own signature\n", file, pp->name);
	err_clear(&err);
	int rc = pdf_signature_check((const uint8_t *)in->data, in->len, signer, sizeof(signer),
				     &err);
	pp->proven = rc == 0;
	if (rc == 0)
		printf("ok   pdf_signature: the PDF is signed by %s and unchanged since: its pages "
		       "are the ones signed (the certificate chain is not judged here: open it in a "
		       "PDF reader that trusts the operator's CA)\n", signer);
	else if (err.status == 404)
		printf("FAIL pdf_signature: the PDF is not signed (no signature field of its "
		       "/AcroForm leads to a signature): nothing proves what its pages say\n");
	else
		printf("FAIL pdf_signature: %s\n", err.msg);
	snprintf(pp->why, sizeof(pp->why), "%s",
		 rc == 0 ? "" : err.status == 404 ? "the PDF is not signed"
		 : !strcmp(err.type, "partial-signature") ? "bytes were added to the PDF after it was signed"
		 : "its signature does not hold");
	buf_free(in);
	*in = json;
	return 0;
}

/* Said plainly when the pages are not proven: the receipt inside keeps
 * the verdict its own checks gave it, the PDF as a document does not. */
static void print_pdf_summary(const struct pdf_pages *pp, enum receipt_verdict receipt)
{
	if (receipt == RECEIPT_VALID)
		printf("receipt: VALID: the receipt embedded in the PDF (%s) passed every check after "
		       "pdf_signature: the events it holds are proven\n", pp->name);
	else
		printf("receipt: %s: the receipt embedded in the PDF (%s) did not pass its checks\n",
		       VERDICT[receipt], pp->name);
	printf("pages: NOT PROVEN: %s, so what the PDF's pages say is not proven; only the "
	       "embedded receipt is (take it out with pdfdetach and rely on it alone)\n", pp->why);
}

static int verify(const char *file, const char *key_arg, const char *ca_arg)
{
	struct buf in = BUF_INIT, key = BUF_INIT, ca = BUF_INIT;
	int rc = EXIT_USAGE;
	if ((key_arg && load_key(key_arg, &key) != 0) || (ca_arg && load_ca(ca_arg, &ca) != 0) ||
	    read_input(file, &in) != 0)
		goto out;
	struct pdf_pages pp = {.proven = 1};
	int is_pdf = in.len >= 5 && !memcmp(in.data, "%PDF-", 5);
	if (is_pdf && from_pdf(file, &in, &pp) != 0)
		goto out;
	warn_unpinned(key_arg != NULL, ca_arg != NULL);
	struct receipt_report rep;
	receipt_verify(in.data ? in.data : "", in.len, key_arg ? buf_str(&key) : NULL,
		       ca_arg ? buf_str(&ca) : NULL, ca.len, &rep);
	print_checks(&rep);
	enum receipt_verdict v = rep.verdict;
	if (!pp.proven) {
		print_pdf_summary(&pp, v);
		if (v == RECEIPT_VALID)
			v = RECEIPT_INVALID;
	}
	printf("verdict: %s\n", VERDICT[v]);
	rc = v == RECEIPT_VALID ? EXIT_OK : v == RECEIPT_INVALID ? EXIT_NOTFOUND : EXIT_USAGE;
out:
	buf_free(&in);
	buf_free(&key);
	buf_free(&ca);
	return rc;
}

int cmd_verify(int argc, char **argv)
{
	struct cli_opt opts[] = {{"key", 1, NULL}, {"tsa-ca", 1, NULL}, {NULL, 0, NULL}};
	const char *pos[1];
	int npos, help;
	if (cli_parse(argc, argv, opts, pos, 1, &npos, &help) != 0)
		return EXIT_USAGE;
	if (help) {
		fputs(HELP, stdout);
		return EXIT_OK;
	}
	if (npos != 1) {
		fprintf(stderr, "selo verify: FILE is required\n%s", HELP);
		return EXIT_USAGE;
	}
	return verify(pos[0], cli_get(opts, "key"), cli_get(opts, "tsa-ca"));
}
