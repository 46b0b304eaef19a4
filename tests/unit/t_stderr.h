/* t_stderr.h: what a function writes on stderr, for the unit tests of the
 * log (diag.c): stderr goes to a temporary file while fn(arg) runs. */
#ifndef SELO_T_STDERR_H
#define SELO_T_STDERR_H
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The bytes written, NUL-terminated (malloc'd), or NULL when stderr could
 * not be redirected. */
static inline char *stderr_of(void (*fn)(void *), void *arg)
{
	char path[] = "/tmp/selo-diag-XXXXXX";
	int fd = mkstemp(path);
	int saved = dup(STDERR_FILENO);
	if (fd < 0 || saved < 0)
		return NULL;
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	fn(arg);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	off_t n = lseek(fd, 0, SEEK_END);
	char *out = calloc((size_t)n + 1, 1);
	if (out && n > 0 && pread(fd, out, (size_t)n, 0) != n)
		out[0] = '\0';
	close(fd);
	unlink(path);
	return out;
}

#endif
