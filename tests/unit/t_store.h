/* t_store.h: a fresh store in its own temporary directory, for the unit
 * tests that write through store.h (or beside it with sqlite3). Include
 * after t.h. */
#ifndef SELO_T_STORE_H
#define SELO_T_STORE_H
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "selo/store.h"

struct store_fx {
	char dir[64];
	char path[128];
	struct store *s;
};

/* Makes /tmp/selo-<name>-XXXXXX and opens DIR/selo.db in it: 0, or -1 with
 * why on stderr. */
static inline int store_fx_open(struct store_fx *f, const char *name)
{
	snprintf(f->dir, sizeof(f->dir), "/tmp/selo-%.20s-XXXXXX", name);
	f->s = NULL;
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/selo.db", f->dir);
	struct selo_err e;
	err_clear(&e);
	if (store_open(f->path, &f->s, &e) != 0) {
		fprintf(stderr, "  store_open: %s\n", e.msg);
		return -1;
	}
	return 0;
}

/* Removes the database, its WAL and journal files, and the directory. */
static inline void store_fx_remove(struct store_fx *f)
{
	char p[160];
	static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
		unlink(p);
	}
	rmdir(f->dir);
}

static inline void store_fx_close(struct store_fx *f)
{
	store_close(f->s);
	f->s = NULL;
	store_fx_remove(f);
}

#endif
