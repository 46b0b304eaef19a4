/* test_pdf.c: the pdf module checked by tools Selo did not write. A PDF
 * drawn here with cairo, finished by pdf_finish with two attachments
 * (signed with the S/MIME key keys_init makes, timestamped by the built-in
 * TSA), is written to tests/out/pdf/ and must: verify with pdfsig
 * ("Signature is Valid.", the whole document signed) and stop verifying
 * after one byte of either signed range changes; pass qpdf --check with no
 * warning; list both files with pdfdetach and give back their exact bytes;
 * have a /Contents that `openssl cms -verify` accepts over the two byte
 * ranges, with signingCertificateV2 and a timeStampToken and no
 * signingTime; a CMS too large for its room is refused, nothing written.
 * pdf_embedded_file reads both files back, also from a hand-made
 * PDF (FlateDecode, indirect /Length, a name tree with /Kids, redefinitions
 * in an update) and after qpdf rewrites the file; on garbage, every
 * truncation and hostile inputs (huge /Length, reference and /Kids loops,
 * missing objects, deep nesting, a deflate bomb) it answers 404 or 422 and
 * never more. Keys live in a mkdtemp directory under /tmp, removed after. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cairo.h>
#include <cairo-pdf.h>
#include <dlfcn.h>
#include <zlib.h>
#include "selo/buf.h"
#include "selo/config.h"
#include "selo/fileio.h"
#include "selo/keys.h"
#include "selo/pdf.h"
#include "selo/smime.h"
#include "selo/tsa.h"
#include "t.h"
#include "t_run.h"

#define OUT_DIR "tests/out/pdf"

static const char JSON[] = "{\"format\":\"selo-receipt/v1\",\"notice\":\"01JDEMO0000000000000000000\","
			   "\"entries\":[\"a\",\"b\"],\"note\":\"endstream endobj 3 0 obj\"}\n";

/* Text that looks like PDF syntax must not confuse a reader. */
static const char EML[] =
	"From: notificacoes@example.com\r\nTo: maria@example.org\r\n"
	"Subject: =?UTF-8?Q?Notifica=C3=A7=C3=A3o?=\r\nMIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n\r\n"
	"Prezada Maria,\r\n"
	"trailer\r\n<< /Root 99 0 R >>\r\n1 0 obj << /Type /Catalog >> endobj\r\n"
	"endstream\r\nstartxref\r\n0\r\n%%EOF\r\n";

struct fixture {
	char root[64];
	char keys[128];
	struct selo_config cfg;
	struct smime_signer *signer;
	struct tsa *tsa;
};

static int stamp(void *arg, const uint8_t digest[32], uint8_t **der, size_t *len,
		 struct selo_err *err)
{
	int64_t t;
	return tsa_timestamp(arg, digest, der, len, &t, err);
}

static int fixture_make(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "/tmp/selo-test-pdf-XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	snprintf(f->keys, sizeof(f->keys), "%s/keys", f->root);
	config_defaults(&f->cfg, f->root);
	struct keys_report rep;
	struct selo_err err = {0};
	char key[256], crt[256];
	snprintf(key, sizeof(key), "%s/smime.pem", f->keys);
	snprintf(crt, sizeof(crt), "%s/smime.crt", f->keys);
	if (keys_init(f->keys, "example.com", "notices@example.com", "example.com/selo", 0, &rep,
		      &err) != 0 ||
	    smime_signer_load(key, crt, NULL, &f->signer, &err) != 0 ||
	    tsa_open(&f->cfg, &f->tsa, &err) != 0 || dir_make(OUT_DIR, 0755, &err) != 0) {
		fprintf(stderr, "  fixture: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static void fixture_free(struct fixture *f)
{
	smime_signer_free(f->signer);
	tsa_close(f->tsa);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	if (strncmp(f->root, "/tmp/selo-test-", 15) == 0 && system(cmd) != 0)
		fprintf(stderr, "  cannot remove %s\n", f->root);
}

/* cairo's font caches and fontconfig's configuration live until exit;
 * released before LeakSanitizer looks (its check is an atexit handler
 * registered before this one, so it runs after it). FcFini is looked up
 * because the build links fontconfig only through cairo. */
static void cairo_release(void)
{
	cairo_debug_reset_static_data();
	void *fini = dlsym(RTLD_DEFAULT, "FcFini");
	if (fini)
		((void (*)(void))fini)();
}

__attribute__((constructor)) static void cairo_release_at_exit(void)
{
	atexit(cairo_release);
}

static cairo_status_t cairo_write(void *closure, const unsigned char *data, unsigned int len)
{
	buf_append(closure, data, len);
	return CAIRO_STATUS_SUCCESS;
}

/* A small A4 document, as receipt_pdf.c will draw one. */
static void cairo_doc(struct buf *out, int pages)
{
	cairo_surface_t *s = cairo_pdf_surface_create_for_stream(cairo_write, out, 595, 842);
	cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE, "Recibo de entrega");
	cairo_t *cr = cairo_create(s);
	for (int i = 1; i <= pages; i++) {
		char line[64];
		snprintf(line, sizeof(line), "Recibo de entrega - p\xc3\xa1gina %d", i);
		cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
				       CAIRO_FONT_WEIGHT_NORMAL);
		cairo_set_font_size(cr, 14);
		cairo_move_to(cr, 60, 80);
		cairo_show_text(cr, line);
		cairo_rectangle(cr, 60, 100, 200, 40);
		cairo_stroke(cr);
		cairo_show_page(cr);
	}
	cairo_destroy(cr);
	cairo_surface_finish(s);
	cairo_surface_destroy(s);
}

static const struct pdf_attachment ATT[2] = {
	{"receipt-01JDEMO0000000000000000000.json", "application/json",
	 "Recibo JSON (selo verify)", "Data", (const uint8_t *)JSON, sizeof(JSON) - 1},
	{"message-01JDEMO0000000000000000000.eml", "message/rfc822",
	 "A mensagem exata enviada", "Source", (const uint8_t *)EML, sizeof(EML) - 1},
};

static int finish(struct fixture *f, const struct buf *in, const struct pdf_attachment *att,
		  size_t n, struct buf *out, struct selo_err *err)
{
	struct pdf_sign_opts so = {f->signer, stamp, f->tsa, "Selo (example.com)",
				   "Recibo de entrega", "example.com", 1733000000123};
	return pdf_finish((const uint8_t *)in->data, in->len, att, n, &so, out, err);
}

static int write_out(const char *name, const void *p, size_t n)
{
	char path[256];
	struct selo_err err;
	snprintf(path, sizeof(path), OUT_DIR "/%s", name);
	return file_write_atomic(path, p, n, 0644, &err);
}

static int read_file(const char *path, struct buf *out)
{
	struct selo_err err;
	buf_reset(out);
	return file_read(path, PDF_MAX_INPUT, out, &err);
}

/* The /ByteRange of the one signature: a, b, c of [0 a b c]. */
static int byte_range(const struct buf *pdf, size_t r[3])
{
	const char *p = memmem(pdf->data, pdf->len, "/ByteRange [0 ", 14);
	return p && sscanf(p + 14, "%zu %zu %zu", &r[0], &r[1], &r[2]) == 3 ? 0 : -1;
}

static int pdfsig_valid(const char *name, struct buf *log)
{
	char cmd[512];
	buf_reset(log);
	snprintf(cmd, sizeof(cmd), "pdfsig -no-ocsp " OUT_DIR "/%s", name);
	run(cmd, log);
	return strstr(buf_str(log), "Signature Validation: Signature is Valid.") != NULL &&
	       strstr(buf_str(log), "Total document signed") != NULL;
}

static int qpdf_clean(const char *name, struct buf *log)
{
	char cmd[512];
	buf_reset(log);
	snprintf(cmd, sizeof(cmd), "qpdf --check " OUT_DIR "/%s", name);
	/* exit 2 for errors, 3 for warnings */
	return run(cmd, log) == 0 && !strstr(buf_str(log), "WARNING") &&
	       strstr(buf_str(log), "No syntax or stream encoding errors found") != NULL;
}

/* ---- pdf_finish ---------------------------------------------------------- */

TEST(finished_pdf_passes_pdfsig_qpdf_and_pdfdetach)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct buf in = BUF_INIT, out = BUF_INIT, log = BUF_INIT, got = BUF_INIT;
	struct selo_err err = {0};
	cairo_doc(&in, 2);
	CHECK(write_out("cairo.pdf", in.data, in.len) == 0);
	int rc = finish(&f, &in, ATT, 2, &out, &err);
	CHECK(rc == 0);
	if (rc != 0)
		fprintf(stderr, "  pdf_finish: %d %s\n", err.status, err.msg);
	/* an incremental update: the input is left as it was */
	CHECK(out.len > in.len && memcmp(out.data, in.data, in.len) == 0);
	CHECK(write_out("receipt.pdf", out.data, out.len) == 0);

	CHECK(pdfsig_valid("receipt.pdf", &log));
	if (!pdfsig_valid("receipt.pdf", &log))
		fprintf(stderr, "%s\n", buf_str(&log));
	CHECK(strstr(buf_str(&log), "ETSI.CAdES.detached") != NULL);
	CHECK(qpdf_clean("receipt.pdf", &log));
	if (!qpdf_clean("receipt.pdf", &log))
		fprintf(stderr, "%s\n", buf_str(&log));

	buf_reset(&log);
	CHECK(run("pdfdetach -list " OUT_DIR "/receipt.pdf", &log) == 0);
	CHECK(strstr(buf_str(&log), "2 embedded files") != NULL);
	CHECK(strstr(buf_str(&log), ATT[0].name) != NULL && strstr(buf_str(&log), ATT[1].name));
	for (int i = 0; i < 2; i++) {
		char cmd[1024], path[64];
		snprintf(path, sizeof(path), OUT_DIR "/detached-%d", i);
		snprintf(cmd, sizeof(cmd), "rm -f %s && pdfdetach -savefile %s -o %s " OUT_DIR
			 "/receipt.pdf", path, ATT[i].name, path);
		CHECK(run(cmd, NULL) == 0);
		CHECK(read_file(path, &got) == 0);
		CHECK(got.len == ATT[i].len && memcmp(got.data, ATT[i].data, got.len) == 0);
	}
	buf_free(&in);
	buf_free(&out);
	buf_free(&log);
	buf_free(&got);
	fixture_free(&f);
}

TEST(changed_byte_in_either_signed_range_breaks_the_signature)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct buf in = BUF_INIT, out = BUF_INIT, log = BUF_INIT;
	struct selo_err err = {0};
	cairo_doc(&in, 1);
	CHECK(finish(&f, &in, ATT, 2, &out, &err) == 0);
	size_t r[3];
	CHECK(byte_range(&out, r) == 0);
	CHECK(r[1] + r[2] == out.len);
	CHECK(write_out("good.pdf", out.data, out.len) == 0);
	CHECK(pdfsig_valid("good.pdf", &log));
	/* our own reader (selo verify's pdf_signature) agrees with pdfsig */
	char signer[256];
	CHECK(pdf_signature_check((const uint8_t *)out.data, out.len, signer, sizeof(signer),
				  &err) == 0);
	CHECK(strstr(signer, "CN=") != NULL);
	/* one byte of the embedded JSON (first range), then one of the
	 * /Reason after /Contents (second range) */
	char *j = memmem(out.data, out.len, "selo-receipt/v1", 15);
	char *why = memmem(out.data + r[1], r[2], "Recibo de entrega", 17);
	CHECK(j && (size_t)(j - out.data) < r[0] && why);
	if (j && why) {
		j[5] = 'X';
		CHECK(write_out("tampered-1.pdf", out.data, out.len) == 0);
		CHECK(!pdfsig_valid("tampered-1.pdf", &log));
		CHECK(strstr(buf_str(&log), "Signature Validation: Digest Mismatch.") != NULL);
		err_clear(&err);
		CHECK(pdf_signature_check((const uint8_t *)out.data, out.len, NULL, 0, &err) == -1);
		CHECK(err.status == 422 && strstr(err.msg, "changed after it was signed"));
		j[5] = 'r';
		why[0] = 'X';
		CHECK(write_out("tampered-2.pdf", out.data, out.len) == 0);
		CHECK(!pdfsig_valid("tampered-2.pdf", &log));
		CHECK(strstr(buf_str(&log), "Signature Validation: Digest Mismatch.") != NULL);
		err_clear(&err);
		CHECK(pdf_signature_check((const uint8_t *)out.data, out.len, NULL, 0, &err) == -1);
		why[0] = 'R';
	}
	/* bytes added after signing (an update someone else appended): the
	 * signature holds over what it covers, the file is not what it signed */
	size_t was = out.len;
	buf_puts(&out, "\n%%EOF\n");
	err_clear(&err);
	CHECK(pdf_signature_check((const uint8_t *)out.data, out.len, NULL, 0, &err) == -1);
	CHECK(err.status == 422 && !strcmp(err.type, "partial-signature"));
	CHECK(strstr(err.msg, "whole file") != NULL && strstr(err.msg, "7 bytes were added"));
	/* appended to a file that was also changed inside: not a valid signature */
	if (j) {
		j[5] = 'X';
		err_clear(&err);
		CHECK(pdf_signature_check((const uint8_t *)out.data, out.len, NULL, 0, &err) == -1);
		CHECK(!strcmp(err.type, "invalid-signature"));
		j[5] = 'r';
	}
	out.len = was;
	/* a /ByteRange that ends past the file, or leaves bytes out before the end */
	char *br = memmem(out.data, out.len, "/ByteRange [0 ", 14);
	CHECK(br != NULL);
	if (br) {
		char *c = br + 14 + strcspn(br + 14, " ") + 1; /* b */
		c += strcspn(c, " ") + 1;                       /* c */
		char keep = c[0];
		c[0] = c[0] == '9' ? '1' : (char)(c[0] + 1);   /* the last range changed */
		err_clear(&err);
		CHECK(pdf_signature_check((const uint8_t *)out.data, out.len, NULL, 0, &err) == -1);
		CHECK(err.status == 422 && strcmp(err.type, "partial-signature") != 0);
		c[0] = keep;
	}
	/* cairo's own file is not signed */
	err_clear(&err);
	CHECK(pdf_signature_check((const uint8_t *)in.data, in.len, NULL, 0, &err) == -1);
	CHECK(err.status == 404);
	buf_free(&in);
	buf_free(&out);
	buf_free(&log);
	fixture_free(&f);
}

/* DER length of the element at p (definite lengths only). */
static size_t der_len(const uint8_t *p, size_t n)
{
	if (n < 2 || p[0] != 0x30)
		return 0;
	if (p[1] < 0x80)
		return 2u + p[1];
	size_t k = p[1] & 0x7f, v = 0;
	if (k > 4 || n < 2 + k)
		return 0;
	for (size_t i = 0; i < k; i++)
		v = v << 8 | p[2 + i];
	return 2 + k + v;
}

TEST(contents_is_a_pades_cms_that_openssl_verifies)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct buf in = BUF_INIT, out = BUF_INIT, log = BUF_INIT, ranges = BUF_INIT;
	struct selo_err err = {0};
	cairo_doc(&in, 1);
	CHECK(finish(&f, &in, ATT, 2, &out, &err) == 0);
	size_t r[3];
	CHECK(byte_range(&out, r) == 0 && out.data[r[0]] == '<' && out.data[r[1] - 1] == '>');
	size_t hexlen = r[1] - r[0] - 2;
	uint8_t *der = malloc(hexlen / 2);
	for (size_t i = 0; der && i < hexlen / 2; i++) {
		unsigned v;
		sscanf(out.data + r[0] + 1 + 2 * i, "%2x", &v);
		der[i] = (uint8_t)v;
	}
	size_t n = der ? der_len(der, hexlen / 2) : 0;
	CHECK(n > 1000 && n <= hexlen / 2);
	char path[256], cmd[1024];
	snprintf(path, sizeof(path), "%s/contents.der", f.root);
	CHECK(file_write_atomic(path, der, n, 0644, &err) == 0);
	buf_append(&ranges, out.data, r[0]);
	buf_append(&ranges, out.data + r[1], r[2]);
	snprintf(path, sizeof(path), "%s/ranges.bin", f.root);
	CHECK(file_write_atomic(path, ranges.data, ranges.len, 0644, &err) == 0);

	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && openssl cms -verify -binary -inform DER -in contents.der -content "
		 "ranges.bin -CAfile keys/ca.crt -purpose any -out /dev/null", f.root);
	CHECK(run(cmd, &log) == 0);
	CHECK(strstr(buf_str(&log), "Verification successful") != NULL);
	/* one byte changed in the content: no longer */
	ranges.data[100] ^= 1;
	CHECK(file_write_atomic(path, ranges.data, ranges.len, 0644, &err) == 0);
	buf_reset(&log);
	CHECK(run(cmd, &log) != 0);

	buf_reset(&log);
	snprintf(cmd, sizeof(cmd), "cd '%s' && openssl cms -cmsout -print -inform DER -in "
		 "contents.der", f.root);
	CHECK(run(cmd, &log) == 0);
	/* the signed attributes, up to the unsigned ones (the TSA's token has
	 * a signingTime of its own, which is not ours) */
	const char *s = buf_str(&log);
	const char *sa = strstr(s, "signedAttrs:"), *ua = strstr(s, "unsignedAttrs:");
	CHECK(sa && ua && ua > sa);
	if (sa && ua && ua > sa) {
		char *mine = strndup(sa, (size_t)(ua - sa));
		CHECK(strstr(mine, "object: contentType") != NULL);
		CHECK(strstr(mine, "object: messageDigest") != NULL);
		CHECK(strstr(mine, "object: id-smime-aa-signingCertificateV2") != NULL);
		CHECK(strstr(mine, "signingTime") == NULL);
		CHECK(strstr(mine, "SMIMECapabilities") == NULL);
		free(mine);
		CHECK(strstr(ua, "object: id-smime-aa-timeStampToken") != NULL);
	}
	CHECK(strstr(s, "subject: O=Selo, CN=notices@example.com") != NULL ||
	      strstr(s, "CN=notices@example.com") != NULL);
	free(der);
	buf_free(&in);
	buf_free(&out);
	buf_free(&log);
	buf_free(&ranges);
	fixture_free(&f);
}

TEST(embedded_files_read_back_exactly)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct buf in = BUF_INIT, out = BUF_INIT, got = BUF_INIT;
	struct selo_err err = {0};
	char name[128];
	cairo_doc(&in, 2);
	CHECK(finish(&f, &in, ATT, 2, &out, &err) == 0);
	const uint8_t *p = (const uint8_t *)out.data;
	CHECK(pdf_embedded_file(p, out.len, ".json", &got, name, sizeof(name), &err) == 0);
	CHECK(got.len == ATT[0].len && memcmp(got.data, ATT[0].data, got.len) == 0);
	CHECK_STR(name, ATT[0].name);
	buf_reset(&got);
	CHECK(pdf_embedded_file(p, out.len, ".eml", &got, name, sizeof(name), &err) == 0);
	CHECK(got.len == ATT[1].len && memcmp(got.data, ATT[1].data, got.len) == 0);
	CHECK_STR(name, ATT[1].name);
	/* a name buffer too small keeps a prefix */
	CHECK(pdf_embedded_file(p, out.len, ".eml", &got, name, 8, &err) == 0);
	CHECK_STR(name, "message");
	buf_reset(&got);
	err_clear(&err);
	CHECK(pdf_embedded_file(p, out.len, ".pdf", &got, name, sizeof(name), &err) == -1);
	CHECK(err.status == 404 && strcmp(err.type, "not-found") == 0 && got.len == 0);
	/* the cairo PDF alone embeds nothing */
	err_clear(&err);
	CHECK(pdf_embedded_file((const uint8_t *)in.data, in.len, ".json", &got, NULL, 0, &err) ==
	      -1);
	CHECK(err.status == 404);

	/* qpdf rewrites the whole file (no incremental update left): still read */
	CHECK(write_out("read-back.pdf", out.data, out.len) == 0);
	CHECK(run("qpdf " OUT_DIR "/read-back.pdf " OUT_DIR "/read-back-qpdf.pdf", NULL) == 0);
	struct buf q = BUF_INIT;
	CHECK(read_file(OUT_DIR "/read-back-qpdf.pdf", &q) == 0);
	buf_reset(&got);
	CHECK(pdf_embedded_file((const uint8_t *)q.data, q.len, ".json", &got, name, sizeof(name),
				&err) == 0);
	CHECK(got.len == ATT[0].len && memcmp(got.data, ATT[0].data, got.len) == 0);
	buf_free(&q);
	buf_free(&in);
	buf_free(&out);
	buf_free(&got);
	fixture_free(&f);
}

TEST(non_ascii_names_and_texts_are_utf16)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct buf in = BUF_INIT, out = BUF_INIT, got = BUF_INIT, log = BUF_INIT;
	struct selo_err err = {0};
	static const char nm[] = "recibo-notifica\xc3\xa7\xc3\xa3o-\xf0\x9f\x93\xa7.json";
	struct pdf_attachment a[2] = {ATT[1], ATT[0]};
	a[1].name = nm;
	a[1].description = "Recibo da notifica\xc3\xa7\xc3\xa3o";
	a[0].relationship = NULL;
	a[0].description = NULL;
	struct pdf_sign_opts so = {f.signer, stamp, f.tsa, "Jo\xc3\xa3o (operador)",
				   "Prova de entrega", "S\xc3\xa3o Paulo", 0};
	cairo_doc(&in, 1);
	CHECK(pdf_finish((const uint8_t *)in.data, in.len, a, 2, &so, &out, &err) == 0);
	CHECK(write_out("utf16.pdf", out.data, out.len) == 0);
	CHECK(pdfsig_valid("utf16.pdf", &log));
	CHECK(qpdf_clean("utf16.pdf", &log));
	/* UTF-16BE with a BOM: João, São Paulo; ASCII stays a literal */
	CHECK(memmem(out.data, out.len, "/Name <FEFF004A006F00E3006F0020", 31) != NULL);
	CHECK(memmem(out.data, out.len, "/Location <FEFF005300E3006F", 27) != NULL);
	CHECK(memmem(out.data, out.len, "/Reason (Prova de entrega)", 26) != NULL);
	buf_reset(&log);
	CHECK(run("pdfdetach -enc UTF-8 -list " OUT_DIR "/utf16.pdf", &log) == 0);
	/* (poppler 22.12 writes the emoji's surrogates one by one: compare the rest) */
	CHECK(strstr(buf_str(&log), "recibo-notifica\xc3\xa7\xc3\xa3o-") != NULL);
	char name[128];
	CHECK(pdf_embedded_file((const uint8_t *)out.data, out.len, ".json", &got, name,
				sizeof(name), &err) == 0);
	CHECK_STR(name, nm);
	CHECK(got.len == ATT[0].len && memcmp(got.data, ATT[0].data, got.len) == 0);
	/* /F is the ASCII fallback */
	CHECK(memmem(out.data, out.len, "/F (recibo-notifica__o-_.json)", 30) != NULL);
	buf_free(&in);
	buf_free(&out);
	buf_free(&got);
	buf_free(&log);
	fixture_free(&f);
}

/* A hand-made classic PDF whose catalog already has /Names, /AF-less, an
 * /AcroForm with one field, a page with a link annotation, an /ID and
 * /Info: each must survive the update. Offsets computed here. */
static void handmade_bin(struct buf *out, const char *const *objs, const size_t *lens, size_t n,
			 const char *trailer)
{
	size_t off[32];
	buf_puts(out, "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n");
	for (size_t i = 0; i < n; i++) {
		off[i] = out->len;
		buf_printf(out, "%zu 0 obj\n", i + 1);
		buf_append(out, objs[i], lens && lens[i] ? lens[i] : strlen(objs[i]));
		buf_puts(out, "\nendobj\n");
	}
	size_t x = out->len;
	buf_printf(out, "xref\n0 %zu\n0000000000 65535 f \n", n + 1);
	for (size_t i = 0; i < n; i++)
		buf_printf(out, "%010zu 00000 n \n", off[i]);
	buf_printf(out, "trailer\n<< /Size %zu %s >>\nstartxref\n%zu\n%%%%EOF\n", n + 1, trailer, x);
}

static void handmade(struct buf *out, const char *const *objs, size_t n, const char *trailer)
{
	handmade_bin(out, objs, NULL, n, trailer);
}

static const char *const RICH[] = {
	"<< /Type /Catalog /Pages 2 0 R /Names << /Dests 6 0 R >> /AcroForm << /Fields [7 0 R] "
	"/DA (/Helv 0 Tf 0 g) >> /PageMode /UseNone >>",
	"<< /Type /Pages /Kids [8 0 R] /Count 2 >>",
	"<< /Type /Page /Parent 8 0 R /MediaBox [0 0 200 200] /Contents 4 0 R "
	"/Annots [5 0 R] % a comment inside\n>>",
	"<< /Length 16 >>\nstream\n0 0 m 10 10 l S\n\nendstream",
	"<< /Type /Annot /Subtype /Link /Rect [0 0 10 10] /Border [0 0 0] "
	"/A << /S /URI /URI (https://example.com/) >> >>",
	"<< /Names [(top) [3 0 R /XYZ 0 200 0]] >>",
	"<< /FT /Tx /T (nome) /Rect [0 0 0 0] /Type /Annot /Subtype /Widget /P 3 0 R >>",
	"<< /Type /Pages /Parent 2 0 R /Kids [3 0 R 9 0 R] /Count 2 >>",
	"<< /Type /Page /Parent 8 0 R /MediaBox [0 0 200 200] >>",
	"<< /Title (Hand made) /Producer (test_pdf.c) >>",
};

TEST(existing_catalog_and_page_entries_survive)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct buf in = BUF_INIT, out = BUF_INIT, log = BUF_INIT, got = BUF_INIT;
	struct selo_err err = {0};
	handmade(&in, RICH, 10, "/Root 1 0 R /Info 10 0 R "
		 "/ID [<00112233445566778899AABBCCDDEEFF> <00112233445566778899AABBCCDDEEFF>]");
	CHECK(write_out("rich-in.pdf", in.data, in.len) == 0);
	CHECK(qpdf_clean("rich-in.pdf", &log));
	CHECK(finish(&f, &in, ATT, 2, &out, &err) == 0);
	if (err.msg[0])
		fprintf(stderr, "  %s\n", err.msg);
	CHECK(write_out("rich.pdf", out.data, out.len) == 0);
	CHECK(pdfsig_valid("rich.pdf", &log));
	CHECK(qpdf_clean("rich.pdf", &log));
	if (!qpdf_clean("rich.pdf", &log))
		fprintf(stderr, "%s\n", buf_str(&log));
	const char *upd = out.data + in.len;
	size_t un = out.len - in.len;
	/* page 1 (object 3, found through the nested /Pages 8) keeps its link */
	CHECK(memmem(upd, un, "/Annots [ 5 0 R 17 0 R ]", 24) != NULL);
	CHECK(memmem(upd, un, "/Names <<\n/Dests 6 0 R /EmbeddedFiles 15 0 R >>", 47) != NULL);
	CHECK(memmem(upd, un, "/Fields [ 7 0 R 17 0 R ]", 24) != NULL);
	CHECK(memmem(upd, un, "/DA (/Helv 0 Tf 0 g)", 20) != NULL);
	CHECK(memmem(upd, un, "/PageMode /UseNone", 18) != NULL);
	CHECK(memmem(upd, un, "/Version /1.7", 13) != NULL);
	CHECK(memmem(upd, un, "/Info 10 0 R", 12) != NULL);
	CHECK(memmem(upd, un, "/ID [<00112233445566778899AABBCCDDEEFF> <", 41) != NULL);
	CHECK(memmem(upd, un, "/Prev ", 6) != NULL);
	/* the new cross-reference section: objects 1 and 3 rewritten, 11..17 new */
	CHECK(memmem(upd, un, "xref\n1 1\n", 9) && memmem(upd, un, "\n3 1\n", 5) &&
	      memmem(upd, un, "\n11 7\n", 6));
	buf_reset(&log);
	CHECK(run("qpdf --show-npages " OUT_DIR "/rich.pdf", &log) == 0 && atoi(log.data) == 2);
	CHECK(pdf_embedded_file((const uint8_t *)out.data, out.len, ".eml", &got, NULL, 0, &err) ==
	      0);
	CHECK(got.len == ATT[1].len && memcmp(got.data, ATT[1].data, got.len) == 0);
	buf_free(&in);
	buf_free(&out);
	buf_free(&log);
	buf_free(&got);
	fixture_free(&f);
}

/* Every new xref entry points at its "N G obj", /Prev at the old table. */
TEST(update_cross_reference_is_exact)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct buf in = BUF_INIT, out = BUF_INIT;
	struct selo_err err = {0};
	cairo_doc(&in, 1);
	CHECK(finish(&f, &in, ATT, 2, &out, &err) == 0);
	const char *sx = NULL;
	for (const char *p = in.data; (p = memmem(p, in.len - (size_t)(p - in.data), "startxref",
						  9)); p += 9)
		sx = p;
	size_t old = sx ? strtoul(sx + 10, NULL, 10) : 0;
	char prev[64];
	snprintf(prev, sizeof(prev), "/Prev %zu\n", old);
	CHECK(memmem(out.data + in.len, out.len - in.len, prev, strlen(prev)) != NULL);
	const char *x = NULL;
	for (const char *p = out.data; (p = memmem(p, out.len - (size_t)(p - out.data), "startxref",
						   9)); p += 9)
		x = p;
	size_t at = x ? strtoul(x + 10, NULL, 10) : 0;
	CHECK(at > in.len && at < out.len && memcmp(out.data + at, "xref\n", 5) == 0);
	const char *p = out.data + at + 5;
	int entries = 0;
	unsigned start, count;
	int used;
	while (sscanf(p, "%u %u\n%n", &start, &count, &used) == 2) {
		p += used;
		for (unsigned i = 0; i < count; i++, p += 20) {
			CHECK(p[18] == ' ' && p[19] == '\n' && p[17] == 'n');
			size_t off = strtoul(p, NULL, 10);
			char head[32];
			int hn = snprintf(head, sizeof(head), "%u 0 obj\n", start + i);
			CHECK(off < out.len && memcmp(out.data + off, head, (size_t)hn) == 0);
			entries++;
		}
	}
	CHECK(entries == 9); /* 2 x (file, filespec), names, sig, widget, page, catalog */
	CHECK(strncmp(p, "trailer\n", 8) == 0);
	CHECK(out.len > 6 && memcmp(out.data + out.len - 6, "%%EOF\n", 6) == 0);
	buf_free(&in);
	buf_free(&out);
	fixture_free(&f);
}

TEST(finish_refuses_what_it_cannot_extend)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct buf in = BUF_INIT, out = BUF_INIT, log = BUF_INIT;
	struct selo_err err = {0};
	struct buf junk = BUF_INIT;
	buf_puts(&junk, "this is not a PDF at all, not even close to one....");
	CHECK(finish(&f, &junk, ATT, 2, &out, &err) == -1);
	CHECK(err.status == 422 && strcmp(err.type, "invalid-pdf") == 0 && out.len == 0);

	cairo_doc(&in, 1);
	struct buf cut = BUF_INIT;
	buf_append(&cut, in.data, in.len - 30);
	err_clear(&err);
	CHECK(finish(&f, &cut, ATT, 2, &out, &err) == -1 && err.status == 422);
	CHECK(strstr(err.msg, "startxref") != NULL);

	/* compressed cross-reference streams (PDF 1.5 object streams) */
	CHECK(write_out("plain.pdf", in.data, in.len) == 0);
	CHECK(run("qpdf --object-streams=generate " OUT_DIR "/plain.pdf " OUT_DIR "/objstm.pdf",
		  &log) == 0);
	struct buf o = BUF_INIT;
	CHECK(read_file(OUT_DIR "/objstm.pdf", &o) == 0);
	err_clear(&err);
	CHECK(finish(&f, &o, ATT, 2, &out, &err) == -1 && err.status == 422);
	CHECK(strstr(err.msg, "cross-reference streams") != NULL);
	/* encrypted */
	CHECK(run("qpdf --encrypt '' owner 128 --use-aes=y -- " OUT_DIR "/plain.pdf " OUT_DIR
		  "/enc.pdf", &log) == 0);
	CHECK(read_file(OUT_DIR "/enc.pdf", &o) == 0);
	err_clear(&err);
	CHECK(finish(&f, &o, ATT, 2, &out, &err) == -1 && err.status == 422);
	CHECK(out.len == 0);

	/* an output buffer that already holds bytes is left as it was */
	buf_puts(&out, "keep");
	err_clear(&err);
	CHECK(finish(&f, &junk, ATT, 2, &out, &err) == -1);
	CHECK(out.len == 4 && strcmp(out.data, "keep") == 0);
	buf_free(&o);
	buf_free(&cut);
	buf_free(&junk);
	buf_free(&in);
	buf_free(&out);
	buf_free(&log);
	fixture_free(&f);
}

static int fail_stamp(void *arg, const uint8_t digest[32], uint8_t **der, size_t *len,
		      struct selo_err *err)
{
	(void)arg, (void)digest, (void)der, (void)len;
	return err_set(err, 503, "tsa-unavailable", "TSA down (test)");
}

TEST(finish_refuses_bad_arguments_and_reports_tsa_failure)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct buf in = BUF_INIT, out = BUF_INIT;
	struct selo_err err = {0};
	cairo_doc(&in, 1);
	struct pdf_sign_opts so = {f.signer, NULL, NULL, NULL, NULL, NULL, 0};
	const uint8_t *p = (const uint8_t *)in.data;
	CHECK(pdf_finish(p, in.len, ATT, 2, &so, &out, &err) == -1 && err.status == 500);
	so.tst = fail_stamp;
	err_clear(&err);
	CHECK(pdf_finish(p, in.len, ATT, 2, &so, &out, &err) == -1 && err.status == 503);
	CHECK(out.len == 0);
	so.tst = stamp;
	so.tst_arg = f.tsa;
	struct pdf_attachment a[2] = {ATT[0], ATT[0]};
	err_clear(&err);
	CHECK(pdf_finish(p, in.len, a, 2, &so, &out, &err) == -1 && strstr(err.msg, "two"));
	a[1] = ATT[1];
	a[1].mime = "not a type";
	err_clear(&err);
	CHECK(pdf_finish(p, in.len, a, 2, &so, &out, &err) == -1 && err.status == 500);
	a[1] = ATT[1];
	a[1].name = "bad\xff.eml";
	err_clear(&err);
	CHECK(pdf_finish(p, in.len, a, 2, &so, &out, &err) == -1 && err.status == 500);
	/* no attachments at all is still a signed PDF */
	err_clear(&err);
	CHECK(pdf_finish(p, in.len, NULL, 0, &so, &out, &err) == 0);
	struct buf log = BUF_INIT;
	CHECK(write_out("no-files.pdf", out.data, out.len) == 0);
	CHECK(pdfsig_valid("no-files.pdf", &log));
	CHECK(qpdf_clean("no-files.pdf", &log));
	buf_free(&log);
	buf_free(&in);
	buf_free(&out);
	fixture_free(&f);
}

/* A chain of 40 more certificates makes the CMS larger than the room
 * /Contents reserves: a clean error, never a cut signature. */
TEST(signature_too_large_for_its_room_is_refused)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	char cmd[1024], key[256], crt[256], chain[256];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && for i in $(seq 1 40); do openssl req -x509 -newkey ec "
		 "-pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k$i.pem -out c$i.pem -days 1 "
		 "-subj \"/CN=Filler certificate number $i of a long chain\" 2>/dev/null && "
		 "cat c$i.pem >> chain.pem || exit 1; done", f.root);
	CHECK(run(cmd, NULL) == 0);
	snprintf(key, sizeof(key), "%s/smime.pem", f.keys);
	snprintf(crt, sizeof(crt), "%s/smime.crt", f.keys);
	snprintf(chain, sizeof(chain), "%s/chain.pem", f.root);
	struct smime_signer *big = NULL;
	struct selo_err err = {0};
	CHECK(smime_signer_load(key, crt, chain, &big, &err) == 0);
	struct buf in = BUF_INIT, out = BUF_INIT;
	cairo_doc(&in, 1);
	struct pdf_sign_opts so = {big, stamp, f.tsa, NULL, NULL, NULL, 0};
	CHECK(big && pdf_finish((const uint8_t *)in.data, in.len, ATT, 2, &so, &out, &err) == -1);
	CHECK(err.status == 500 && strcmp(err.type, "signature-too-large") == 0);
	CHECK(out.len == 0);
	smime_signer_free(big);
	buf_free(&in);
	buf_free(&out);
	fixture_free(&f);
}

/* ---- pdf_embedded_file on PDFs made by others --------------------------- */

static int read_embedded(const struct buf *pdf, const char *suffix, struct buf *got,
			 struct selo_err *err)
{
	buf_reset(got);
	err_clear(err);
	return pdf_embedded_file((const uint8_t *)pdf->data, pdf->len, suffix, got, NULL, 0, err);
}

TEST(reader_follows_flate_kids_and_updates)
{
	struct buf pdf = BUF_INIT, got = BUF_INIT, obj = BUF_INIT;
	struct selo_err err;
	/* a FlateDecode file with an indirect /Length, under a /Kids node */
	uLongf zn = compressBound(sizeof(EML));
	uint8_t *z = malloc(zn);
	CHECK(compress(z, &zn, (const Bytef *)EML, sizeof(EML) - 1) == Z_OK);
	buf_printf(&obj, "<< /Type /EmbeddedFile /Filter [/FlateDecode] /Length 7 0 R >>\nstream\r\n");
	buf_append(&obj, z, zn);
	buf_puts(&obj, "\r\nendstream");
	char len[32];
	snprintf(len, sizeof(len), "%lu", (unsigned long)zn);
	const char *objs[] = {
		"<< /Type /Catalog /Pages 2 0 R /Names 3 0 R >>",
		"<< /Type /Pages /Kids [] /Count 0 >>",
		"<< /EmbeddedFiles << /Kids [4 0 R] >> >>",
		"<< /Limits [(a) (z)] /Names [(a.eml) 5 0 R] >>",
		"<< /Type /Filespec /F (old.txt) /UF <FEFF0061002E0065006D006C> /EF << /F 6 0 R >> >>",
		obj.data,
		len,
	};
	const size_t lens[] = {0, 0, 0, 0, 0, obj.len, 0};
	handmade_bin(&pdf, objs, lens, 7, "/Root 1 0 R");
	CHECK(read_embedded(&pdf, ".eml", &got, &err) == 0);
	CHECK(got.len == sizeof(EML) - 1 && memcmp(got.data, EML, got.len) == 0);
	/* /UF or /F may match; the name given back is the one that did */
	char name[64];
	CHECK(pdf_embedded_file((const uint8_t *)pdf.data, pdf.len, ".txt", &got, name,
				sizeof(name), &err) == 0);
	CHECK_STR(name, "old.txt");
	CHECK(read_embedded(&pdf, ".pdf", &got, &err) == -1 && err.status == 404);

	/* an update that redefines the stream: the newer one is read, through
	 * the cross-reference chain and, once that is broken, by scanning */
	size_t x = 0;
	for (char *p = pdf.data; (p = memmem(p, pdf.len - (size_t)(p - pdf.data), "startxref", 9));
	     p += 9)
		x = strtoul(p + 10, NULL, 10);
	size_t at = pdf.len;
	buf_puts(&pdf, "6 0 obj\n<< /Length 5 >>\nstream\nnewer\nendstream\nendobj\n");
	size_t xr = pdf.len;
	buf_printf(&pdf, "xref\n6 1\n%010zu 00000 n \ntrailer\n<< /Size 8 /Root 1 0 R /Prev %zu >>\n"
		   "startxref\n%zu\n%%%%EOF\n", at, x, xr);
	CHECK(read_embedded(&pdf, ".eml", &got, &err) == 0);
	CHECK(got.len == 5 && memcmp(got.data, "newer", 5) == 0);
	char *sx = memmem(pdf.data + xr, pdf.len - xr, "startxref\n", 10);
	CHECK(sx != NULL);
	if (sx)
		memset(sx + 10, '9', strspn(sx + 10, "0123456789")); /* past the end */
	CHECK(read_embedded(&pdf, ".eml", &got, &err) == 0);
	CHECK(got.len == 5 && memcmp(got.data, "newer", 5) == 0);
	free(z);
	buf_free(&pdf);
	buf_free(&got);
	buf_free(&obj);
}

/* Answers only 0 (with exactly one of want's files), 404 or 422. */
static int sane_answer(const struct buf *pdf, const char *suffix, const char *want, size_t wn)
{
	struct buf got = BUF_INIT;
	struct selo_err err;
	char name[64];
	err_clear(&err);
	int rc = pdf_embedded_file((const uint8_t *)pdf->data, pdf->len, suffix, &got, name,
				   sizeof(name), &err);
	int ok = rc == 0 ? got.len == wn && memcmp(got.data, want, wn) == 0
			 : (err.status == 404 || err.status == 422) && err.msg[0] && got.len == 0;
	buf_free(&got);
	return ok;
}

/* Answers 0, 404 or 422, and nothing in out on an error. */
static int any_answer(const struct buf *pdf, const char *suffix)
{
	struct buf got = BUF_INIT;
	struct selo_err err;
	char name[64];
	err_clear(&err);
	int rc = pdf_embedded_file((const uint8_t *)pdf->data, pdf->len, suffix, &got, name,
				   sizeof(name), &err);
	int ok = rc == 0 ? strlen(name) < sizeof(name)
			 : (err.status == 404 || err.status == 422) && err.msg[0] && got.len == 0;
	buf_free(&got);
	return ok;
}

TEST(reader_survives_every_truncation)
{
	struct fixture f;
	CHECK(fixture_make(&f) == 0);
	struct buf in = BUF_INIT, out = BUF_INIT, cut = BUF_INIT;
	struct selo_err err = {0};
	cairo_doc(&in, 1);
	CHECK(finish(&f, &in, ATT, 2, &out, &err) == 0);
	int bad = 0;
	for (size_t n = 0; n <= out.len;
	     n += n < in.len ? 61 : n < in.len + 3000 || n + 2000 > out.len ? 7 : 401) {
		buf_reset(&cut);
		buf_append(&cut, out.data, n);
		if (!sane_answer(&cut, ".json", JSON, sizeof(JSON) - 1) ||
		    !sane_answer(&cut, ".eml", EML, sizeof(EML) - 1))
			bad++;
	}
	CHECK(bad == 0);
	/* and every single byte overwritten in the update's head */
	for (size_t i = in.len; i < in.len + 1500 && i < out.len; i++) {
		char was = out.data[i];
		out.data[i] = (char)(i * 7);
		if (!any_answer(&out, ".json"))
			bad++;
		out.data[i] = was;
	}
	CHECK(bad == 0);
	buf_free(&in);
	buf_free(&out);
	buf_free(&cut);
	fixture_free(&f);
}

static int status_of(const char *const *objs, size_t n, const char *trailer, const char *suffix,
		     struct selo_err *err)
{
	struct buf pdf = BUF_INIT, got = BUF_INIT;
	handmade(&pdf, objs, n, trailer);
	int rc = read_embedded(&pdf, suffix, &got, err);
	buf_free(&pdf);
	buf_free(&got);
	return rc == 0 ? 200 : err->status;
}

TEST(reader_refuses_hostile_pdfs)
{
	struct selo_err err;
	struct buf got = BUF_INIT, pdf = BUF_INIT;
	static const char *const garbage[] = {"", "%PDF-", "hello world, no pdf here",
					      "%PDF-1.7\n", "%PDF-1.7\n1 0 obj\n<< /Type /Catalog"};
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		err_clear(&err);
		CHECK(pdf_embedded_file((const uint8_t *)garbage[i], strlen(garbage[i]), ".json", &got,
					NULL, 0, &err) == -1);
		CHECK(err.status == 422 && got.len == 0);
	}
	CHECK(pdf_embedded_file(NULL, 0, ".json", &got, NULL, 0, &err) == -1 && err.status == 422);

#define CAT "<< /Type /Catalog /Names << /EmbeddedFiles 2 0 R >> >>"
#define FS(ef) "<< /Type /Filespec /F (x.json) /EF << /F " ef " >> >>"
	/* huge /Length */
	const char *huge[] = {CAT, "<< /Names [(x.json) 3 0 R] >>", FS("4 0 R"),
			      "<< /Length 99999999999 >>\nstream\n{}\nendstream"};
	CHECK(status_of(huge, 4, "/Root 1 0 R", ".json", &err) == 422);
	CHECK(strstr(err.msg, "/Length") != NULL);
	/* a /Length that does not end at endstream */
	const char *shortl[] = {CAT, "<< /Names [(x.json) 3 0 R] >>", FS("4 0 R"),
				"<< /Length 1 >>\nstream\n{}\nendstream"};
	CHECK(status_of(shortl, 4, "/Root 1 0 R", ".json", &err) == 422);
	/* a reference loop where the stream should be, and a /Length loop */
	const char *loop[] = {CAT, "<< /Names [(x.json) 3 0 R] >>", FS("4 0 R"), "4 0 R"};
	CHECK(status_of(loop, 4, "/Root 1 0 R", ".json", &err) == 422);
	const char *lloop[] = {CAT, "<< /Names [(x.json) 3 0 R] >>", FS("4 0 R"),
			       "<< /Length 5 0 R >>\nstream\n{}\nendstream", "4 0 R"};
	CHECK(status_of(lloop, 5, "/Root 1 0 R", ".json", &err) == 422);
	/* /Kids that point back at themselves */
	const char *kids[] = {CAT, "<< /Kids [2 0 R 2 0 R] >>"};
	CHECK(status_of(kids, 2, "/Root 1 0 R", ".json", &err) == 422);
	/* missing objects: the tree, the filespec, the stream */
	const char *none[] = {CAT};
	CHECK(status_of(none, 1, "/Root 1 0 R", ".json", &err) == 404);
	const char *nofs[] = {CAT, "<< /Names [(x.json) 9 0 R] >>"};
	CHECK(status_of(nofs, 2, "/Root 1 0 R", ".json", &err) == 404);
	const char *nost[] = {CAT, "<< /Names [(x.json) 3 0 R] >>", FS("9 0 R")};
	CHECK(status_of(nost, 3, "/Root 1 0 R", ".json", &err) == 422);
	/* a filter Selo does not read, a predictor, a chain of filters */
	const char *dct[] = {CAT, "<< /Names [(x.json) 3 0 R] >>", FS("4 0 R"),
			     "<< /Length 2 /Filter /DCTDecode >>\nstream\n{}\nendstream"};
	CHECK(status_of(dct, 4, "/Root 1 0 R", ".json", &err) == 422);
	const char *pred[] = {CAT, "<< /Names [(x.json) 3 0 R] >>", FS("4 0 R"),
			      "<< /Length 2 /Filter /FlateDecode /DecodeParms << /Predictor 12 >> "
			      ">>\nstream\n{}\nendstream"};
	CHECK(status_of(pred, 4, "/Root 1 0 R", ".json", &err) == 422);
	/* damaged deflate data */
	const char *zbad[] = {CAT, "<< /Names [(x.json) 3 0 R] >>", FS("4 0 R"),
			      "<< /Length 2 /Filter /FlateDecode >>\nstream\n{}\nendstream"};
	CHECK(status_of(zbad, 4, "/Root 1 0 R", ".json", &err) == 422);
	/* a root that is not there, or not a dictionary, and no catalog */
	const char *noroot[] = {"(just a string)"};
	CHECK(status_of(noroot, 1, "/Root 7 0 R", ".json", &err) == 422);
	CHECK(status_of(noroot, 1, "/Root 1 0 R", ".json", &err) == 422);
	CHECK(strstr(err.msg, "catalog") != NULL);
	/* (a wrong /Root is recovered from the catalog object itself) */
	CHECK(status_of(none, 1, "/Root 7 0 R", ".json", &err) == 404);
	/* a string that never closes */
	const char *open[] = {"<< /Type /Catalog /Names << /EmbeddedFiles << /Names [(x.json"};
	CHECK(status_of(open, 1, "/Root 1 0 R", ".json", &err) == 422);

	/* nesting far deeper than any real PDF: refused, not a stack overflow */
	buf_puts(&pdf, "%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Names ");
	for (int i = 0; i < 200000; i++)
		buf_putc(&pdf, '[');
	buf_puts(&pdf, " >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n");
	CHECK(read_embedded(&pdf, ".json", &got, &err) == -1 && err.status == 422);

	/* a deflate bomb: 80 MiB of zeros in a few KiB is cut at the limit */
	size_t big = 80u << 20;
	uint8_t *zeros = calloc(1, big);
	uLongf zn = compressBound(big);
	uint8_t *z = malloc(zn);
	CHECK(zeros && z && compress2(z, &zn, zeros, big, 9) == Z_OK);
	struct buf st = BUF_INIT;
	buf_printf(&st, "<< /Length %lu /Filter /FlateDecode >>\nstream\n", (unsigned long)zn);
	buf_append(&st, z, zn);
	buf_puts(&st, "\nendstream");
	const char *bomb[] = {CAT, "<< /Names [(x.json) 3 0 R] >>", FS("4 0 R"), st.data};
	const size_t lens[] = {0, 0, 0, st.len};
	buf_reset(&pdf);
	handmade_bin(&pdf, bomb, lens, 4, "/Root 1 0 R");
	CHECK(read_embedded(&pdf, ".json", &got, &err) == -1 && err.status == 422);
	CHECK(strstr(err.msg, "inflates to more than") != NULL && got.len == 0);
	free(zeros);
	free(z);
	buf_free(&st);
	buf_free(&pdf);
	buf_free(&got);
#undef CAT
#undef FS
}
