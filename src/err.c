/* err.c: filling struct selo_err (see err.h). Messages are truncated, never
 * overflowed; OpenSSL's queue is drained so one failure is reported once. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include "selo/err.h"

void err_clear(struct selo_err *e)
{
	if (e)
		memset(e, 0, sizeof(*e));
}

int err_set(struct selo_err *e, int status, const char *type, const char *fmt, ...)
{
	if (!e)
		return -1;
	e->status = status;
	snprintf(e->type, sizeof(e->type), "%s", type ? type : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int err_field(struct selo_err *e, const char *field, const char *fmt, ...)
{
	if (!e || e->nfields >= SELO_ERR_FIELDS)
		return -1;
	struct selo_err_field *f = &e->fields[e->nfields++];
	snprintf(f->field, sizeof(f->field), "%s", field);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
	return -1;
}

void err_add_openssl(struct selo_err *e)
{
	unsigned long code;
	char line[256];
	while ((code = ERR_get_error()) != 0) {
		if (!e)
			continue;
		ERR_error_string_n(code, line, sizeof(line));
		size_t len = strlen(e->msg);
		if (len + 3 < sizeof(e->msg))
			snprintf(e->msg + len, sizeof(e->msg) - len, ": %s", line);
	}
}
