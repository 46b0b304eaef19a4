/* test_keys.c: keys_init makes every file with the right mode, refuses to
 * overwrite without force, and makes certificates that the openssl CLI
 * accepts; the token and log keys load back; C2SP note key IDs match the
 * spec's example. Works in a mkdtemp directory under /tmp, removed after. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "selo/codec.h"
#include "selo/fileio.h"
#include "selo/keys.h"
#include "t.h"
#include "t_run.h"

static const char *secret_files[] = {"dkim-rsa.pem", "dkim-ed25519.pem", "log.key", "ca.key",
				     "smime.pem", "tsa.pem", "token.key", NULL};
static const char *public_files[] = {"dkim-rsa.txt", "dkim-ed25519.txt", "log.vkey", "ca.crt",
				     "smime.crt", "tsa.crt", NULL};

struct tmp {
	char root[64];
	char keys[128];
};

static int tmp_make(struct tmp *t)
{
	snprintf(t->root, sizeof(t->root), "/tmp/selo-test-keys-XXXXXX");
	if (!mkdtemp(t->root))
		return -1;
	snprintf(t->keys, sizeof(t->keys), "%s/keys", t->root);
	return 0;
}

static void tmp_remove(struct tmp *t)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
	if (strncmp(t->root, "/tmp/selo-test-", 15) == 0 && system(cmd) != 0)
		fprintf(stderr, "  cannot remove %s\n", t->root);
}

/* Runs a shell command; its stdout+stderr go into out. Returns the exit code. */

static int init_default(const struct tmp *t, int force, struct keys_report *rep,
			struct selo_err *err)
{
	return keys_init(t->keys, "example.com", "notices@example.com", "example.com/selo", force,
			 rep, err);
}

static int read_file(const struct tmp *t, const char *name, struct buf *out)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", t->keys, name);
	struct selo_err err;
	return file_read(path, 1 << 20, out, &err);
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

TEST(init_writes_every_file_with_its_mode)
{
	struct tmp t;
	CHECK(tmp_make(&t) == 0);
	struct keys_report rep;
	struct selo_err err = {0};
	int rc = init_default(&t, 0, &rep, &err);
	CHECK(rc == 0);
	if (rc != 0)
		fprintf(stderr, "  %s\n", err.msg);
	CHECK(mode_of(t.keys) == 0700);
	char path[256];
	for (int i = 0; secret_files[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", t.keys, secret_files[i]);
		CHECK(mode_of(path) == 0600);
	}
	for (int i = 0; public_files[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", t.keys, public_files[i]);
		CHECK(mode_of(path) == 0644);
	}
	CHECK(strncmp(rep.dkim_rsa_txt, "v=DKIM1; k=rsa; p=MII", 21) == 0);
	CHECK(strncmp(rep.dkim_ed25519_txt, "v=DKIM1; k=ed25519; p=", 22) == 0);
	CHECK(strlen(rep.dkim_ed25519_txt) == 22 + 44);
	CHECK(strncmp(rep.log_vkey, "example.com/selo+", 17) == 0);
	/* The report is the files' content without the newline. */
	struct buf b = BUF_INIT;
	CHECK(read_file(&t, "dkim-rsa.txt", &b) == 0);
	CHECK(b.len == strlen(rep.dkim_rsa_txt) + 1 && memcmp(b.data, rep.dkim_rsa_txt, b.len - 1) == 0);
	buf_reset(&b);
	CHECK(read_file(&t, "log.vkey", &b) == 0);
	CHECK(b.len == strlen(rep.log_vkey) + 1 && memcmp(b.data, rep.log_vkey, b.len - 1) == 0);
	buf_reset(&b);
	CHECK(read_file(&t, "log.key", &b) == 0);
	CHECK(strncmp(buf_str(&b), "PRIVATE+KEY+example.com/selo+", 29) == 0);
	buf_reset(&b);
	CHECK(read_file(&t, "dkim-rsa.pem", &b) == 0);
	CHECK(strstr(buf_str(&b), "-----BEGIN PRIVATE KEY-----") == b.data); /* PKCS#8 */
	buf_free(&b);
	tmp_remove(&t);
}

/* Every file's bytes, to prove a refused init changed nothing. */
static void snapshot(const struct tmp *t, struct buf *all)
{
	const char **lists[] = {secret_files, public_files};
	for (int l = 0; l < 2; l++)
		for (int i = 0; lists[l][i]; i++) {
			buf_puts(all, lists[l][i]);
			read_file(t, lists[l][i], all);
		}
}

TEST(init_refuses_to_overwrite_without_force)
{
	struct tmp t;
	CHECK(tmp_make(&t) == 0);
	struct keys_report rep;
	struct selo_err err = {0};
	CHECK(init_default(&t, 0, &rep, &err) == 0);
	struct buf before = BUF_INIT, after = BUF_INIT;
	snapshot(&t, &before);
	err_clear(&err);
	CHECK(init_default(&t, 0, &rep, &err) == -1);
	CHECK(err.status == 409);
	CHECK(strstr(err.msg, "already exists") != NULL);
	CHECK(strstr(err.msg, "--force") != NULL);
	snapshot(&t, &after);
	CHECK(before.len == after.len && memcmp(buf_str(&before), buf_str(&after), before.len) == 0);
	/* One stray file is enough to refuse. */
	char path[256];
	snprintf(path, sizeof(path), "%s/ca.key", t.keys);
	CHECK(unlink(path) == 0);
	snprintf(path, sizeof(path), "%s/smime.crt", t.keys);
	CHECK(unlink(path) == 0);
	err_clear(&err);
	CHECK(init_default(&t, 0, &rep, &err) == -1 && err.status == 409);

	err_clear(&err);
	CHECK(init_default(&t, 1, &rep, &err) == 0);
	buf_reset(&after);
	snapshot(&t, &after);
	CHECK(before.len != after.len || memcmp(buf_str(&before), buf_str(&after), before.len) != 0);
	snprintf(path, sizeof(path), "%s/token.key", t.keys);
	CHECK(mode_of(path) == 0600);
	/* No temporary files are left behind. */
	struct buf ls = BUF_INIT;
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", t.keys);
	CHECK(run(cmd, &ls) == 0 && atoi(ls.data) == 13);
	buf_free(&ls);
	buf_free(&before);
	buf_free(&after);
	tmp_remove(&t);
}

TEST(init_rejects_bad_arguments_before_touching_disk)
{
	struct tmp t;
	CHECK(tmp_make(&t) == 0);
	struct keys_report rep;
	struct selo_err err = {0};
	CHECK(keys_init(t.keys, "exa mple.com", "a@example.com", "o", 0, &rep, &err) == -1);
	CHECK(err.status == 400 && strstr(err.msg, "domain") != NULL);
	err_clear(&err);
	CHECK(keys_init(t.keys, "example.com", "not-an-address", "o", 0, &rep, &err) == -1);
	CHECK(err.status == 400 && strstr(err.msg, "from address") != NULL);
	err_clear(&err);
	CHECK(keys_init(t.keys, "example.com", "a@example.com", "bad+origin", 0, &rep, &err) == -1);
	CHECK(err.status == 400 && strstr(err.msg, "origin") != NULL);
	err_clear(&err);
	CHECK(keys_init(t.keys, "example.com", "a@example.com", "", 0, &rep, &err) == -1);
	CHECK(err.status == 400);
	CHECK(mode_of(t.keys) == (mode_t)-1); /* the directory was not even made */
	tmp_remove(&t);
}

TEST(certificates_verify_with_openssl_cli)
{
	struct tmp t;
	CHECK(tmp_make(&t) == 0);
	struct keys_report rep;
	struct selo_err err = {0};
	CHECK(init_default(&t, 0, &rep, &err) == 0);
	char cmd[1024];
	struct buf out = BUF_INIT;
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && openssl verify -CAfile ca.crt -purpose smimesign smime.crt && "
		 "openssl verify -CAfile ca.crt -purpose timestampsign tsa.crt", t.keys);
	CHECK(run(cmd, &out) == 0);
	CHECK(strstr(buf_str(&out), "smime.crt: OK") && strstr(buf_str(&out), "tsa.crt: OK"));
	if (!strstr(buf_str(&out), "tsa.crt: OK"))
		fprintf(stderr, "%s", buf_str(&out));

	buf_reset(&out);
	snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s/tsa.crt' -noout -text", t.keys);
	CHECK(run(cmd, &out) == 0);
	const char *eku = strstr(buf_str(&out), "X509v3 Extended Key Usage: critical");
	CHECK(eku && strstr(eku, "Time Stamping") && strstr(eku, "Time Stamping") - eku < 80);
	CHECK(strstr(buf_str(&out), "Digital Signature, Non Repudiation") != NULL);
	CHECK(strstr(buf_str(&out), "Issuer: CN = Selo development CA (example.com), O = Selo") != NULL);

	buf_reset(&out);
	snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s/smime.crt' -noout -text", t.keys);
	CHECK(run(cmd, &out) == 0);
	CHECK(strstr(buf_str(&out), "email:notices@example.com") != NULL);
	CHECK(strstr(buf_str(&out), "E-mail Protection") != NULL);
	CHECK(strstr(buf_str(&out), "Subject: CN = notices@example.com, O = Selo") != NULL);
	CHECK(strstr(buf_str(&out), "Public-Key: (2048 bit)") != NULL);
	CHECK(strstr(buf_str(&out), "X509v3 Key Usage: critical\n                Digital Signature\n"));

	buf_reset(&out);
	snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s/ca.crt' -noout -text", t.keys);
	CHECK(run(cmd, &out) == 0);
	CHECK(strstr(buf_str(&out), "X509v3 Basic Constraints: critical\n                CA:TRUE"));
	CHECK(strstr(buf_str(&out), "Certificate Sign, CRL Sign") != NULL);
	CHECK(strstr(buf_str(&out), "X509v3 Subject Key Identifier") != NULL);
	CHECK(strstr(buf_str(&out), "X509v3 Authority Key Identifier") != NULL);
	buf_free(&out);
	tmp_remove(&t);
}

/* The DNS records publish the keys in the PEM files, in RFC 6376 (SPKI)
 * and RFC 8463 (raw 32 bytes) form. */
TEST(dkim_txt_records_match_private_keys)
{
	struct tmp t;
	CHECK(tmp_make(&t) == 0);
	struct keys_report rep;
	struct selo_err err = {0};
	CHECK(init_default(&t, 0, &rep, &err) == 0);
	struct buf pem = BUF_INIT, want = BUF_INIT;
	CHECK(read_file(&t, "dkim-rsa.pem", &pem) == 0);
	BIO *b = BIO_new_mem_buf(pem.data, (int)pem.len);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	CHECK(k != NULL);
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(k, &der);
	buf_puts(&want, "v=DKIM1; k=rsa; p=");
	base64_encode(&want, der, (size_t)n, 0);
	CHECK_STR(rep.dkim_rsa_txt, want.data);
	OPENSSL_free(der);
	EVP_PKEY_free(k);

	buf_reset(&pem);
	buf_reset(&want);
	CHECK(read_file(&t, "dkim-ed25519.pem", &pem) == 0);
	b = BIO_new_mem_buf(pem.data, (int)pem.len);
	k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	CHECK(k && EVP_PKEY_is_a(k, "ED25519"));
	uint8_t pub[32];
	size_t pl = 32;
	CHECK(k && EVP_PKEY_get_raw_public_key(k, pub, &pl) == 1);
	buf_puts(&want, "v=DKIM1; k=ed25519; p=");
	base64_encode(&want, pub, 32, 0);
	CHECK_STR(rep.dkim_ed25519_txt, want.data);
	EVP_PKEY_free(k);
	buf_free(&pem);
	buf_free(&want);
	tmp_remove(&t);
}

TEST(token_key_loads_strictly)
{
	struct tmp t;
	CHECK(tmp_make(&t) == 0);
	struct keys_report rep;
	struct selo_err err = {0};
	CHECK(init_default(&t, 0, &rep, &err) == 0);
	uint8_t key[32], zero[32] = {0};
	CHECK(keys_load_token_key(t.keys, key, &err) == 0);
	CHECK(memcmp(key, zero, 32) != 0);
	struct buf b = BUF_INIT;
	CHECK(read_file(&t, "token.key", &b) == 0);
	CHECK(b.len == 65 && b.data[64] == '\n');
	char hex[65];
	hex_encode(key, 32, hex);
	CHECK(memcmp(b.data, hex, 64) == 0);
	buf_free(&b);

	char path[256];
	snprintf(path, sizeof(path), "%s/token.key", t.keys);
	const char *bad[] = {"abcd\n", "", "zz" "00000000000000000000000000000000000000000000000000000000000000\n",
			     "0000000000000000000000000000000000000000000000000000000000000000\n\n",
			     "00000000000000000000000000000000000000000000000000000000000000000\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(file_write_atomic(path, bad[i], strlen(bad[i]), 0600, &err) == 0);
		err_clear(&err);
		CHECK(keys_load_token_key(t.keys, key, &err) == -1);
		CHECK(strstr(err.msg, "token.key") != NULL);
	}
	/* Without the newline is fine too (a hand-made file). */
	const char *ok = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	CHECK(file_write_atomic(path, ok, strlen(ok), 0600, &err) == 0);
	CHECK(keys_load_token_key(t.keys, key, &err) == 0);
	CHECK(key[0] == 0x00 && key[1] == 0x11 && key[31] == 0xff);
	snprintf(path, sizeof(path), "%s/missing", t.root);
	err_clear(&err);
	CHECK(keys_load_token_key(path, key, &err) == -1 && strstr(err.msg, "token.key"));
	tmp_remove(&t);
}

/* The example verifier key of C2SP signed-note. */
TEST(note_vkey_matches_c2sp_example)
{
	const char *vkey = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
	char name[64];
	uint8_t pub[32];
	struct selo_err err = {0};
	CHECK(note_vkey_parse(vkey, name, sizeof(name), pub, &err) == 0);
	CHECK_STR(name, "example.com/foo");
	CHECK(note_key_id("example.com/foo", pub) == 0x530d903au);
	char out[128];
	CHECK(note_vkey_format("example.com/foo", pub, out, sizeof(out)) == 0);
	CHECK_STR(out, vkey);
	CHECK(note_vkey_format("example.com/foo", pub, out, 20) == -1); /* too small */
	CHECK(note_vkey_format("bad name", pub, out, sizeof(out)) == -1);

	/* Any change is caught: key ID, key bytes, type byte, shape. */
	const char *bad[] = {
		"example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
		"example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2l",
		"example.com/fo0+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
		"example.com/foo+530d903a+AukyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
		"example.com/foo+530d903a+ekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
		"example.com/foo+530d903+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
		"+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
		"example.com/foo",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&err);
		CHECK(note_vkey_parse(bad[i], name, sizeof(name), pub, &err) == -1);
		CHECK(err.status == 400);
	}
	CHECK(note_vkey_parse(vkey, name, 8, pub, &err) == -1); /* name does not fit */
}

TEST(log_key_loads_and_matches_vkey)
{
	struct tmp t;
	CHECK(tmp_make(&t) == 0);
	struct keys_report rep;
	struct selo_err err = {0};
	CHECK(init_default(&t, 0, &rep, &err) == 0);
	char name[256], vkey[512];
	uint8_t seed[32], pub[32];
	CHECK(keys_load_note_key(t.keys, name, sizeof(name), seed, pub, &err) == 0);
	CHECK_STR(name, "example.com/selo");
	CHECK(note_vkey_format(name, pub, vkey, sizeof(vkey)) == 0);
	CHECK_STR(vkey, rep.log_vkey);
	/* The seed signs, and the published key verifies. */
	EVP_PKEY *sk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	uint8_t sig[64];
	size_t sl = sizeof(sig);
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	CHECK(EVP_DigestSignInit(m, NULL, NULL, NULL, sk) == 1 &&
	      EVP_DigestSign(m, sig, &sl, (const uint8_t *)"hello", 5) == 1);
	EVP_MD_CTX_free(m);
	m = EVP_MD_CTX_new();
	CHECK(EVP_DigestVerifyInit(m, NULL, NULL, NULL, pk) == 1 &&
	      EVP_DigestVerify(m, sig, sl, (const uint8_t *)"hello", 5) == 1);
	EVP_MD_CTX_free(m);
	EVP_PKEY_free(sk);
	EVP_PKEY_free(pk);
	OPENSSL_cleanse(seed, sizeof(seed));

	/* A damaged log.key is refused with the file named. */
	char path[256];
	snprintf(path, sizeof(path), "%s/log.key", t.keys);
	const char *bad = "PRIVATE+KEY+example.com/selo+00000000+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k\n";
	CHECK(file_write_atomic(path, bad, strlen(bad), 0600, &err) == 0);
	err_clear(&err);
	CHECK(keys_load_note_key(t.keys, name, sizeof(name), seed, pub, &err) == -1);
	CHECK(strstr(err.msg, "log.key") != NULL);
	const char *vk = "example.com/selo+00000000+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k\n";
	CHECK(file_write_atomic(path, vk, strlen(vk), 0600, &err) == 0);
	err_clear(&err);
	CHECK(keys_load_note_key(t.keys, name, sizeof(name), seed, pub, &err) == -1);
	tmp_remove(&t);
}

/* A CN has at most 64 characters; a long domain must not break init. */
TEST(init_accepts_long_names)
{
	struct tmp t;
	CHECK(tmp_make(&t) == 0);
	struct keys_report rep;
	struct selo_err err = {0};
	const char *dom = "a-rather-long-subdomain-name.for-testing.notices.example.com";
	char from[128];
	snprintf(from, sizeof(from), "cobranca.extrajudicial@%s", dom);
	int rc = keys_init(t.keys, dom, from, "x", 0, &rep, &err);
	CHECK(rc == 0);
	if (rc != 0)
		fprintf(stderr, "  %s\n", err.msg);
	char cmd[512];
	struct buf out = BUF_INIT;
	snprintf(cmd, sizeof(cmd), "cd '%s' && openssl verify -CAfile ca.crt smime.crt tsa.crt && "
		 "openssl x509 -in smime.crt -noout -text", t.keys);
	CHECK(run(cmd, &out) == 0);
	CHECK(strstr(buf_str(&out), from) != NULL); /* in the SAN */
	buf_free(&out);
	tmp_remove(&t);
}

/* DKIM selectors (docs/keys.md): pending -> active -> retiring -> retired,
 * one pending at a time, the active one found by keys_dkim_active, private
 * keys 0600 and deleted at retirement, the public values kept. */
TEST(dkim_selector_rotation_states)
{
	struct tmp t;
	CHECK(tmp_make(&t) == 0);
	struct selo_err err = {0};
	CHECK(init_default(&t, 0, NULL, &err) == 0);
	char sel[64], rsa[4096], ed[4096];
	CHECK(keys_dkim_active(t.keys, "selo", sel, rsa, ed, &err) == 0);
	CHECK(!strcmp(sel, "selo") && strstr(rsa, "/dkim-rsa.pem") && strstr(ed, "/dkim-ed25519.pem"));
	struct dkim_selector made, now;
	CHECK(keys_dkim_new(t.keys, "selo", "bad.name", &made, &err) == -1 && err.status == 400);
	CHECK(keys_dkim_new(t.keys, "selo", "selo-ed25519", &made, &err) == -1 && err.status == 409);
	CHECK(keys_dkim_activate(t.keys, "selo", &now, &err) == -1 && err.status == 409);
	CHECK(keys_dkim_new(t.keys, "selo", "s2", &made, &err) == 0);
	CHECK(made.state == DKIM_SEL_PENDING && !strcmp(made.dir, "dkim/s2"));
	CHECK(keys_dkim_new(t.keys, "selo", "s3", &made, &err) == -1 && err.status == 409);
	char path[512];
	snprintf(path, sizeof(path), "%s/dkim/s2/dkim-rsa.pem", t.keys);
	CHECK(mode_of(path) == 0600);
	CHECK(keys_dkim_active(t.keys, "selo", sel, rsa, ed, &err) == 0 && !strcmp(sel, "selo"));
	CHECK(keys_dkim_activate(t.keys, "selo", &now, &err) == 0 && !strcmp(now.name, "s2"));
	CHECK(keys_dkim_active(t.keys, "selo", sel, rsa, ed, &err) == 0 && !strcmp(sel, "s2"));
	CHECK(!strcmp(rsa, path));
	CHECK(keys_dkim_retire(t.keys, "selo", "s2", 0, &err) == -1 && err.status == 409);
	CHECK(keys_dkim_retire(t.keys, "selo", "nope", 0, &err) == -1 && err.status == 404);
	CHECK(keys_dkim_retire(t.keys, "selo", "selo", 3600, &err) == -1 && err.status == 409);
	CHECK(keys_dkim_retire(t.keys, "selo", "selo", 0, &err) == 0);
	snprintf(path, sizeof(path), "%s/dkim-rsa.pem", t.keys);
	CHECK(access(path, F_OK) != 0);
	struct dkim_selector list[DKIM_SEL_MAX];
	size_t n = 0;
	CHECK(keys_dkim_list(t.keys, "ignored-now", list, &n, &err) == 0 && n == 2);
	CHECK(list[0].state == DKIM_SEL_RETIRED && list[1].state == DKIM_SEL_ACTIVE);
	struct buf v = BUF_INIT;
	CHECK(keys_dkim_txt(t.keys, &list[0], "ed25519", &v, &err) == 0);
	CHECK(!strncmp(buf_str(&v), "v=DKIM1; k=ed25519; p=", 22) && !strchr(buf_str(&v), '\n'));
	buf_free(&v);
	/* a damaged state file is an error naming the line, never a guess */
	snprintf(path, sizeof(path), "%s/dkim-selectors", t.keys);
	CHECK(file_write_atomic(path, "selo active x .\n", 16, 0644, &err) == 0);
	CHECK(keys_dkim_active(t.keys, "selo", sel, rsa, ed, &err) == -1 && strstr(err.msg, "line 1"));
	tmp_remove(&t);
}

/* Renewal keeps the subject and address, chains to the same CA, archives
 * the old certificate; refused without the CA key. */
TEST(smime_and_tsa_renewal)
{
	struct tmp t;
	CHECK(tmp_make(&t) == 0);
	struct selo_err err = {0};
	CHECK(init_default(&t, 0, NULL, &err) == 0);
	struct buf before = BUF_INIT, after = BUF_INIT, out = BUF_INIT;
	CHECK(read_file(&t, "smime.crt", &before) == 0);
	char archived[4096];
	CHECK(keys_renew_cert(t.keys, "smime", archived, &err) == 0);
	CHECK(keys_renew_cert(t.keys, "tsa", archived, &err) == 0);
	CHECK(keys_renew_cert(t.keys, "log", archived, &err) == -1 && err.status == 400);
	CHECK(read_file(&t, "smime.crt", &after) == 0);
	CHECK(before.len != after.len || memcmp(before.data, after.data, before.len) != 0);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cd '%s' && openssl verify -CAfile ca.crt smime.crt tsa.crt && "
		 "openssl x509 -in smime.crt -noout -ext subjectAltName && ls archive", t.keys);
	CHECK(run(cmd, &out) == 0);
	CHECK(strstr(buf_str(&out), "notices@example.com") != NULL);
	CHECK(strstr(buf_str(&out), "smime-") && strstr(buf_str(&out), "tsa-"));
	struct buf old = BUF_INIT;
	char rel[100];
	const char *a = strstr(buf_str(&out), "smime-");
	snprintf(rel, sizeof(rel), "archive/%.*s", (int)strcspn(a, "\n"), a);
	CHECK(read_file(&t, rel, &old) == 0 && old.len == before.len &&
	      memcmp(old.data, before.data, before.len) == 0); /* the old one, kept */
	buf_free(&old);
	char path[512];
	snprintf(path, sizeof(path), "%s/smime.pem", t.keys);
	CHECK(mode_of(path) == 0600);
	snprintf(path, sizeof(path), "%s/ca.key", t.keys);
	CHECK(unlink(path) == 0);
	CHECK(keys_renew_cert(t.keys, "smime", archived, &err) == -1 && err.status == 409);
	buf_free(&before);
	buf_free(&after);
	buf_free(&out);
	tmp_remove(&t);
}
