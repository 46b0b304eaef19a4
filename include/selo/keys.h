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

#endif
