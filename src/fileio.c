/* fileio.c: whole-file read, atomic durable write, mkdir -p (see fileio.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "selo/fileio.h"

int file_read(const char *path, size_t max, struct buf *out, struct selo_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, 500, "io", "cannot open %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) == 0 && (size_t)st.st_size > max) {
		close(fd);
		return err_set(err, 500, "io", "%s is larger than %zu bytes", path, max);
	}
	char chunk[65536];
	size_t total = 0;
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return err_set(err, 500, "io", "cannot read %s: %s", path, strerror(e));
		}
		if (r == 0)
			break;
		total += (size_t)r;
		if (total > max) {
			close(fd);
			return err_set(err, 500, "io", "%s is larger than %zu bytes", path, max);
		}
		buf_append(out, chunk, (size_t)r);
	}
	close(fd);
	if (!out->data)
		buf_reserve(out, 0);
	return 0;
}

static void dirname_of(const char *path, char *out, size_t n)
{
	snprintf(out, n, "%s", path);
	char *slash = strrchr(out, '/');
	if (!slash)
		snprintf(out, n, ".");
	else if (slash == out)
		out[1] = '\0';
	else
		*slash = '\0';
}

int dir_sync(const char *path, struct selo_err *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, 500, "io", "cannot open directory %s: %s", path, strerror(errno));
	int r = fsync(fd);
	int e = errno;
	close(fd);
	if (r != 0)
		return err_set(err, 500, "io", "cannot sync directory %s: %s", path, strerror(e));
	return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
		      struct selo_err *err)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return err_set(err, 500, "io", "path too long: %s", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return err_set(err, 500, "io", "cannot create %s: %s", tmp, strerror(errno));
	fchmod(fd, mode); /* umask must not widen or narrow what we asked for */
	const char *p = data;
	size_t left = len;
	while (left) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = errno;
			close(fd);
			unlink(tmp);
			return err_set(err, 500, "io", "cannot write %s: %s", tmp, strerror(e));
		}
		p += w;
		left -= (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		int e = errno;
		unlink(tmp);
		return err_set(err, 500, "io", "cannot sync %s: %s", tmp, strerror(e));
	}
	if (rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return err_set(err, 500, "io", "cannot rename %s to %s: %s", tmp, path, strerror(e));
	}
	char dir[4096];
	dirname_of(path, dir, sizeof(dir));
	return dir_sync(dir, err);
}

int dir_make(const char *path, mode_t mode, struct selo_err *err)
{
	char p[4096];
	if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
		return err_set(err, 500, "io", "path too long: %s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) != 0 && errno != EEXIST)
			return err_set(err, 500, "io", "cannot create directory %s: %s", p, strerror(errno));
		*s = '/';
	}
	if (mkdir(p, mode) != 0 && errno != EEXIST)
		return err_set(err, 500, "io", "cannot create directory %s: %s", p, strerror(errno));
	return 0;
}
