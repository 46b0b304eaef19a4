/* baseurl.h: can recipients reach track.base_url? Every message's links,
 * tracking pixel and "Confirmar recebimento" link, and the QR code of every
 * PDF receipt, are built on track.base_url. When it names this machine or a
 * private network (the default http://127.0.0.1:8481 among them) while
 * smtp.mode sends mail to the outside world, recipients get links that lead
 * nowhere, and no open, click or confirmation is ever recorded. `selo serve`
 * says so, loudly, at start (docs/first-run.md, "track.base_url"). */
#ifndef SELO_BASEURL_H
#define SELO_BASEURL_H
#include <stddef.h>
#include "selo/config.h"

/* What kind of host base_url names, as a short phrase for people ("a
 * loopback address", "a private address", "a link-local address", "a
 * non-public address", "a local name"), or NULL when it may be public (a
 * DNS name other than those, a global address) or base_url has no host.
 * Names are not resolved: localhost, *.localhost, *.local, *.internal,
 * *.home.arpa and single-label names count as local. The host is copied to
 * host (n bytes) when not NULL. */
const char *baseurl_local_kind(const char *base_url, char *host, size_t n);

/* Where cfg's transport hands mail to the outside world, as a phrase for
 * people ("smtp.mode = mx delivers to each recipient's MX"), or NULL when
 * mail stays here: maildir, or a relay on a loopback address or localhost. */
const char *baseurl_mail_leaves(const struct selo_config *cfg, char *why, size_t n);

/* Logs the warning (several WARN lines) when both hold; returns 1 when it
 * warned, else 0. */
int baseurl_warn(const struct selo_config *cfg);

#endif
