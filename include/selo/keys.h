/* keys.h: the key material `selo init` makes under DIR/keys/ and loads at
 * start. All private keys are written 0600 from their first byte, in a 0700
 * directory. Files (DESIGN "Commands"):
 *   dkim-rsa.pem, dkim-ed25519.pem   private DKIM keys (PKCS#8 PEM)
 *   dkim-rsa.txt, dkim-ed25519.txt   DNS TXT values "v=DKIM1; k=...; p=..."
 *   log.key    C2SP note signer key: "PRIVATE+KEY+<origin>+<keyid hex>+<base64(0x01||seed)>"
 *   log.vkey   C2SP verifier key:    "<origin>+<keyid hex>+<base64(0x01||pubkey)>"
 *   ca.key (0600) + ca.crt           development CA (self-signed, 10 years)
 *   smime.pem + smime.crt            RSA-2048 S/MIME key; cert issued by the CA,
 *                                    EKU emailProtection, SAN rfc822Name = from address
 *   tsa.pem + tsa.crt                built-in TSA key; cert with the critical
 *                                    extendedKeyUsage timeStamping
 *   token.key                        32 random bytes as 64 hex characters
 * The same certificates can be made with certs/make-dev-certs.sh, or
 * replaced by real ones (certs/README.md). */
#ifndef SELO_KEYS_H
#define SELO_KEYS_H
#include <stddef.h>
#include <stdint.h>
#include "selo/buf.h"
#include "selo/err.h"

struct keys_report {
	char dkim_rsa_txt[1024];     /* "v=DKIM1; k=rsa; p=..." */
	char dkim_ed25519_txt[128];  /* "v=DKIM1; k=ed25519; p=..." */
	char log_vkey[512];
};

/* Creates every file above in keys_dir (created 0700). Refuses (-1, status
 * 409) when any of them exists unless force. origin names the log key;
 * domain and from_address go into the certificates. */
int keys_init(const char *keys_dir, const char *domain, const char *from_address,
	      const char *origin, int force, struct keys_report *rep, struct selo_err *err);

/* Reads keys_dir/token.key. */
int keys_load_token_key(const char *keys_dir, uint8_t key[32], struct selo_err *err);
/* A 32-byte secret kept as 64 hex digits and a newline in keys_dir/name
 * (token.key, webhook.key): read it (hint ends the error message, e.g. how
 * to restore it), or make a fresh random one (mode 0600). */
int keys_load_secret(const char *keys_dir, const char *name, const char *hint, uint8_t key[32],
		     struct selo_err *err);
int keys_make_secret(const char *keys_dir, const char *name, uint8_t key[32],
		     struct selo_err *err);

/* C2SP helpers for Ed25519 note keys (type 0x01):
 * key ID = SHA-256(name || 0x0A || 0x01 || pub)[:4]. */
uint32_t note_key_id(const char *name, const uint8_t pub[32]);
/* "<name>+<8 hex>+<base64(0x01||pub)>" into out (n bytes). */
int note_vkey_format(const char *name, const uint8_t pub[32], char *out, size_t n);
/* Parses a verifier key as note_vkey_format writes it: the name (into name,
 * namecap bytes) and the public key, after checking the type byte 0x01 and
 * that the key ID matches the name and key. Status 400 when malformed. */
int note_vkey_parse(const char *vkey, char *name, size_t namecap, uint8_t pub[32],
		    struct selo_err *err);
/* Reads keys_dir/log.key (one trailing newline allowed): the key name, the
 * 32-byte Ed25519 seed and the public key derived from it, after checking
 * the key ID. The caller should OPENSSL_cleanse the seed when done. */
int keys_load_note_key(const char *keys_dir, char *name, size_t namecap, uint8_t seed[32],
		       uint8_t pub[32], struct selo_err *err);

/* ---- DKIM selectors and their rotation (docs/keys.md) ---------------
 * Without keys_dir/dkim-selectors there is one selector, the configured
 * [dkim] selector, active, with its keys at keys_dir/dkim-*.pem. The first
 * `selo keys rotate dkim` writes that file, which is from then on the
 * authority: one line per selector, "NAME STATE SINCE DIR", SINCE in Unix
 * seconds (when it entered STATE), DIR the folder of its dkim-rsa.pem,
 * dkim-ed25519.pem, dkim-rsa.txt and dkim-ed25519.txt relative to keys_dir
 * ("." for the keys `selo init` made, "dkim/NAME" for later ones). The
 * Ed25519 key of selector NAME is published at NAME-ed25519. */
enum dkim_sel_state {
	DKIM_SEL_PENDING,  /* made; publish its records, then activate */
	DKIM_SEL_ACTIVE,   /* signs every message (exactly one) */
	DKIM_SEL_RETIRING, /* signs nothing; its records stay published */
	DKIM_SEL_RETIRED,  /* private keys deleted; records printable, may go */
};
#define DKIM_SEL_MAX 32
struct dkim_selector {
	char name[64];
	enum dkim_sel_state state;
	int64_t since; /* Unix seconds */
	char dir[80];  /* relative to keys_dir */
};
const char *dkim_sel_state_name(enum dkim_sel_state s);
/* Every selector, in the file's order (oldest first). */
int keys_dkim_list(const char *keys_dir, const char *config_selector, struct dkim_selector *out,
		   size_t *n, struct selo_err *err);
/* The selector that signs now and its private key paths (each set to ""
 * when that file is absent, as an operator may publish only one
 * algorithm). */
int keys_dkim_active(const char *keys_dir, const char *config_selector, char sel[64],
		     char rsa_path[4096], char ed_path[4096], struct selo_err *err);
/* A new pending selector (RSA-2048 and Ed25519) under keys_dir/dkim/NAME.
 * 409 when a selector is already pending or the name exists. */
int keys_dkim_new(const char *keys_dir, const char *config_selector, const char *name,
		  struct dkim_selector *made, struct selo_err *err);
/* The pending selector becomes active, the active one retiring. 409 when
 * none is pending. */
int keys_dkim_activate(const char *keys_dir, const char *config_selector,
		       struct dkim_selector *now_active, struct selo_err *err);
/* A retiring selector's private keys are deleted and it is marked retired;
 * refused (409) before min_age_s seconds of retiring (unless 0), or for
 * the active or pending one. 404 for an unknown name. */
int keys_dkim_retire(const char *keys_dir, const char *config_selector, const char *name,
		     int64_t min_age_s, struct selo_err *err);
/* The DNS TXT value of one algorithm ("rsa" or "ed25519") of a selector,
 * without newline, into out. */
int keys_dkim_txt(const char *keys_dir, const struct dkim_selector *s, const char *alg,
		  struct buf *out, struct selo_err *err);

/* ---- S/MIME and TSA certificate renewal ----------------------------- */
/* Makes a new key and certificate for "smime" or "tsa", issued by
 * keys_dir/ca.key + ca.crt (409 when the CA key is not there: a real CA's
 * certificate is renewed at that CA), moves the old certificate to
 * keys_dir/archive/<what>-<UTC stamp>.crt, deletes the old private key,
 * and writes the new pair. The S/MIME certificate keeps the old one's
 * subject and e-mail address; the TSA one its subject. archived gets the
 * archive path. */
int keys_renew_cert(const char *keys_dir, const char *what, char archived[4096],
		    struct selo_err *err);

#endif
