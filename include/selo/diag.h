/* diag.h: diagnostics for operators, on stderr, one line each:
 * "2026-11-23T18:00:00.123Z selo[pid] LEVEL where: message". Never pass
 * secrets (keys, passwords, tokens, message bodies) to these functions. */
#ifndef SELO_DIAG_H
#define SELO_DIAG_H

enum diag_level { DIAG_DEBUG, DIAG_INFO, DIAG_WARN, DIAG_ERROR };

void diag_set_level(enum diag_level min);
void diag(enum diag_level lvl, const char *where, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define diag_info(...) diag(DIAG_INFO, __func__, __VA_ARGS__)
#define diag_warn(...) diag(DIAG_WARN, __func__, __VA_ARGS__)
#define diag_error(...) diag(DIAG_ERROR, __func__, __VA_ARGS__)
#define diag_debug(...) diag(DIAG_DEBUG, __func__, __VA_ARGS__)

#endif
