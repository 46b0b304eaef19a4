/* config.h: DIR/selo.conf (INI, read with libinih) on top of embedded
 * defaults. Unknown sections or keys and malformed values are errors naming
 * the line, so a typo never silently falls back to a default. */
#ifndef SELO_CONFIG_H
#define SELO_CONFIG_H
#include <stddef.h>
#include <stdint.h>
#include "selo/err.h"
#include "selo/netlist.h"

enum smtp_mode { SMTP_MAILDIR, SMTP_RELAY, SMTP_MX };
enum starttls_mode { STARTTLS_NO, STARTTLS_TRY, STARTTLS_REQUIRE };

struct selo_config {
	char data_dir[1024];

	/* [api] */
	char api_listen[128];         /* host:port, default 127.0.0.1:8480 */
	size_t api_max_body;          /* bytes of one request body, default 32 MiB */
	int api_threads;              /* listener threads, default 16 (each blocks on its commit) */
	int api_request_timeout_s;    /* a request, body included, must arrive within it; 120 */
	size_t api_large_body;        /* a body over this is large, default 1 MiB */
	int api_large_requests;       /* large requests in flight at once (more: 503), default 4 */
	int api_access_log;           /* 1: one line per request (accesslog.h), default 0 */

	/* [limits] */
	size_t max_attachments;       /* per notice, default 10 */
	size_t max_attachment_bytes;  /* decoded bytes per attachment, default 10 MiB */
	size_t max_message_bytes;     /* whole composed message, default 25 MiB */
	size_t max_batch;             /* notices per batch request, default 1000 */
	size_t max_text_bytes;        /* text/html/subject/vars each, default 256 KiB */

	/* [track] */
	char track_listen[128];       /* default 127.0.0.1:8481 */
	char track_base_url[256];     /* default http://127.0.0.1:8481 (no trailing /) */
	int track_threads;            /* listener threads, default 2 */
	int track_max_connections;    /* default 4096 */
	int track_per_ip_connections; /* default 64 */
	int track_head_timeout_s;     /* a request must arrive within it, default 5 */
	int track_rate_per_ip;        /* recorded hits per second per IP, default 20 */
	int track_rate_burst;         /* bucket size, default 100 */
	int track_after_delivery_s;   /* hits this soon after delivery are a scanner's, default 30 */
	int track_burst_window_ms;    /* distinct links of one notice within it: scanner, default 2000 */
	int track_burst_links;        /* how many distinct links make a burst, default 2 */
	int track_full_hits;          /* hits of one kind and class logged per notice, default 10 */
	int track_summary_window_s;   /* a notice's first fold of further hits, default 3600 */
	struct netlist track_trusted_proxies; /* peers whose X-Forwarded-For names the client
					       * (docs/deploy.md); default empty: never read */
	int track_access_log;         /* 1: one line per request, tokens hidden (accesslog.h), default 0 */

	/* [smtp] */
	enum smtp_mode smtp_mode;     /* maildir (default) | relay | mx */
	char smtp_relay[256];         /* host:port */
	enum starttls_mode starttls;  /* no | try (default) | require */
	char smtp_auth_user[128];     /* empty: no AUTH */
	char smtp_auth_password[128];
	char smtp_cafile[1024];       /* CAs to verify the server with; empty = system */
	int smtp_tls_verify;          /* 1: a bad certificate fails (require), default 0 */
	int smtp_timeout_ms;          /* per SMTP step, default 60000 */
	char smtp_helo[256];          /* EHLO name, default mail.domain */
	char smtp_mx_override[1024];  /* domain=host:port,... (tests) */
	char smtp_resolver[128];      /* host:port of the DNS server; empty = system */
	int smtp_mx_port;             /* port of MX hosts found in DNS: 25 (tests change it) */
	int smtp_per_destination;     /* concurrent sessions per recipient domain (mx), default 4 */

	/* [mail] */
	char mail_domain[256];        /* default from `selo init --domain` */
	char mail_from_address[320];  /* default notificacoes@domain */
	char mail_from_name[256];     /* default "Selo" */
	char mail_return_path[320];   /* envelope sender; default = from address */

	/* [dkim] */
	char dkim_domain[256];        /* d=, default mail.domain */
	char dkim_selector[64];       /* default "selo"; Ed25519 uses "<selector>-ed25519" */

	/* [sender] */
	int sender_workers;           /* default 4: SMTP waits leave room beside the signing */
	int sender_batch;             /* messages per SMTP session, default 50 */
	int retry_base_s;             /* first retry delay, doubles each time; default 60 */
	int retry_max_s;              /* cap of the delay, default 14400 (4 h) */
	int lifetime_s;               /* give up after, default 432000 (5 days) */
	int sender_stop_timeout_s;    /* graceful stop: longest wait for batches in flight, default 30 */

	/* [tsa] */
	char tsa_url[512];            /* empty: built-in TSA */
	char tsa_ca[1024];            /* PEM CA bundle trusted for tsa.url's tokens */
	int tsa_timeout_ms;           /* one TSA request, default 10000 */

	/* [log] */
	char log_origin[256];         /* checkpoint origin, default "<domain>/selo-log" */
	char log_level[8];            /* error | warn | info (default) | debug (diag.h) */
	char log_format[8];           /* text (default) | json: one object per line (diag.h) */

	/* [receipt] */
	char receipt_sign_key[1024];  /* PDF receipts' document-signing key; empty: keys/smime.pem */
	char receipt_sign_cert[1024]; /* its certificate; empty: keys/smime.crt */
	char receipt_sign_chain[1024];/* intermediates (PEM); empty: keys/smime-chain.pem if present */

	/* [templates] */
	char templates_dir[1024];     /* empty: the templates built into the binary */

	/* [webhooks] (docs/api.md "Webhooks") */
	int webhooks_allow_private;   /* 1: loopback/private/link-local targets allowed (tests), default 0 */
	int webhooks_timeout_ms;      /* one delivery, connection to answer, default 10000 */
	int webhooks_workers;         /* deliveries in flight at once, default 8 */
	int webhooks_retry_speedup;   /* tests only: every delay of the schedule divided by it, default 1 */
	int webhooks_keep_days;       /* finished deliveries are kept this long, default 30 */

	/* [store] (docs/scale.md "Configuration") */
	char store_backend[16];       /* sqlite (default: DIR/selo.db) | postgres */
	char store_url[1024];         /* libpq connection string; required with postgres, refused
				       * with sqlite; its password never shows (redacted) */
	int store_timeout_ms;         /* the longest a store call waits for the database, 5000 */
	int store_lease_ms;           /* how long a node's claim on work holds, 30000 */
	int store_pool;               /* connections per node, default 8 */

	/* [node] */
	char node_name[64];           /* unique per node; marks claims and leases; default the
				       * host name */
};

/* Fills c with the embedded defaults for a data directory. */
void config_defaults(struct selo_config *c, const char *data_dir);
/* Defaults, then DIR/selo.conf on top. A missing file is an error (run
 * `selo init`), as is any unknown key or bad value. */
int config_load(const char *data_dir, struct selo_config *c, struct selo_err *err);
/* Writes a commented selo.conf with the given values, mode 0600. */
int config_write_initial(const char *path, const char *domain, const char *selector,
			 const char *origin, struct selo_err *err);
/* 1 when store.backend is postgres. */
int config_store_postgres(const struct selo_config *c);
/* DIR/<rel> into out (size n); returns out. */
char *config_path(const struct selo_config *c, const char *rel, char *out, size_t n);
/* A file named by a configuration value: an absolute path as is, a
 * relative one under the data directory. 0, or -1 when it does not fit n. */
int config_file(const struct selo_config *c, const char *value, char *out, size_t n);

#endif
