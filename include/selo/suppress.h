/* suppress.h: which failures suppress a recipient, and how a suppressed
 * address is compared (docs/api.md "Suppressions"). Pure functions: the
 * store calls them inside the transaction that records the failure and the
 * one that accepts a notice, so the rule lives in one place. */
#ifndef SELO_SUPPRESS_H
#define SELO_SUPPRESS_H

#include <jansson.h>
#include <stddef.h>

/* 1 when an enhanced status code (RFC 3463 "5.1.1") says the address itself
 * is bad for good: 5.1.x (bad mailbox, address or domain) or 5.2.1 (mailbox
 * disabled). Anything else, including 5.7.x policy refusals, 5.2.2 (mailbox
 * full), 4.x.x and a missing code, is 0: a bare 550 does not suppress. */
int suppress_status_hard(const char *enhanced);

/* For the fields of a delivery_failed event: 1 and *enhanced (borrowed from
 * fields) when it is a hard bounce, that is "reason":"rejected" with a 5xx
 * "code" and a hard "enhanced" (the SMTP reply to our attempt; without a
 * "code", the mx transport's DNS verdict: 5.1.2 no such domain, 5.1.10
 * null MX), or
 * "reason":"bounced" with a hard "status" (a DSN fed to `selo bounce`). Expired, deferred and local failures are 0. */
int suppress_fields_hard(const json_t *fields, const char **enhanced);

/* The address compared: the whole address lowercased (ASCII), so that
 * Ana@Example.com and ana@example.com are one. 0, or -1 when it does not
 * fit n bytes. */
int suppress_address_key(const char *addr, char *out, size_t n);

/* The address shown: as the notice had it, its domain (after the last '@')
 * lowercased. 0, or -1 when it does not fit n bytes. */
int suppress_address_shown(const char *addr, char *out, size_t n);

#define SUPPRESS_ADDR_MAX 512 /* buffer for either form; addresses are shorter */

#endif
