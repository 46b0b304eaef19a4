/* t_run.h: running a command from a unit test, for the tests that check
 * Selo's output with tools it did not write (openssl, python3). Include
 * after selo/buf.h. */
#ifndef SELO_T_RUN_H
#define SELO_T_RUN_H
#include <stdio.h>
#include <sys/wait.h>
#include "selo/buf.h"

/* Runs cmd (a whole shell command line) with stderr joined to stdout; appends the output to out
 * (may be NULL); returns the exit status, or -1 if it could not run. */
static int run(const char *cmd, struct buf *out)
{
	char full[4096];
	snprintf(full, sizeof(full), "( %s ) 2>&1", cmd);
	FILE *p = popen(full, "r");
	if (!p)
		return -1;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		if (out)
			buf_append(out, chunk, n);
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#endif
