/* fileio.h: whole-file reads and durable, atomic writes (temp file, fsync,
 * rename, fsync of the directory), with explicit modes so private keys are
 * created 0600 from the first byte. */
#ifndef SELO_FILEIO_H
#define SELO_FILEIO_H
#include <stddef.h>
#include <sys/types.h>
#include "selo/buf.h"
#include "selo/err.h"

/* Appends the file to out; refuses files larger than max bytes. */
int file_read(const char *path, size_t max, struct buf *out, struct selo_err *err);
/* Writes data to path atomically with the given mode. */
int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
		      struct selo_err *err);
/* mkdir -p with mode for the directories it creates. */
int dir_make(const char *path, mode_t mode, struct selo_err *err);
/* fsync of a directory (after creating or renaming entries in it). */
int dir_sync(const char *path, struct selo_err *err);

#endif
