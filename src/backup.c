/* backup.c: `selo backup` and `selo restore` (backup.h, docs/backup.md).
 * A backup is one tar archive (libarchive; zstd, gzip or none) whose first
 * entry is manifest.json, then selo.conf, the keys directory and selo.db:
 * a copy of the database taken with SQLite's online backup API beside a
 * running `selo serve` (store_copy_file). A restore trusts nothing in the
 * archive until it is checked: only the paths Selo writes, only regular
 * files and directories, sizes bounded and equal to the manifest's, every
 * SHA-256 equal, the database sound and its log the manifest's; all of it
 * into a temporary directory beside the target, renamed at the end. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "selo/backup.h"
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/codec.h"
#include "selo/config.h"
#include "selo/crypto.h"
#include "selo/fileio.h"
#include "selo/note.h"
#include "selo/tlog.h"
#include "version.h" /* SELO_VERSION, generated (scripts/version.sh) */

#define MANIFEST "manifest.json"
#define MAX_MANIFEST (1u << 20)        /* bytes of manifest.json */
#define MAX_SMALL_FILE (1u << 20)      /* selo.conf and each key file */
#define MAX_DB_BYTES (1ull << 40)      /* 1 TiB: larger is not a database of ours */
#define MAX_FILES 256                  /* entries in an archive */
#define MAX_DEPTH 4                    /* directory levels under keys/ */
#define CHUNK 65536

/* ---- Paths: only what a backup writes may come out of an archive. */

/* One path component: 1..255 bytes of a plain set, never "." or "..". */
static int name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 255 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    strchr("._+~@=-", c) != NULL;
		if (!plain || c == '\0')
			return 0;
	}
	return 1;
}

/* "keys" or "keys/a/b" (depth <= MAX_DEPTH), each component plain. */
static int backup_keys_path_ok(const char *p)
{
	if (strncmp(p, "keys", 4) != 0 || (p[4] != '\0' && p[4] != '/'))
		return 0;
	int depth = 0;
	for (const char *s = p + 4; *s == '/';) {
		s++;
		size_t n = strcspn(s, "/");
		if (!name_ok(s, n) || ++depth > MAX_DEPTH)
			return 0;
		s += n;
		if (*s && *s != '/')
			return 0;
	}
	return 1;
}

/* A file's path as the manifest may name it. */
static int file_path_ok(const char *p)
{
	if (!strcmp(p, "selo.conf") || !strcmp(p, "selo.db"))
		return 1;
	return strncmp(p, "keys/", 5) == 0 && backup_keys_path_ok(p);
}

/* ---- Hashing. */

struct hasher {
	EVP_MD_CTX *md;
};

static void hasher_start(struct hasher *h)
{
	h->md = EVP_MD_CTX_new();
	if (!h->md || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1)
		abort(); /* out of memory: buf.h's policy */
}

static void hasher_end(struct hasher *h, char hex[65])
{
	uint8_t d[32];
	unsigned int n = 0;
	EVP_DigestFinal_ex(h->md, d, &n);
	EVP_MD_CTX_free(h->md);
	h->md = NULL;
	hex_encode(d, 32, hex);
	hex[64] = '\0';
}

/* The SHA-256 and size of a file, read in chunks (the database may be large). */
static int file_digest(const char *path, char hex[65], uint64_t *size, struct selo_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, 500, "io", "cannot open %s: %s", path, strerror(errno));
	struct hasher h;
	hasher_start(&h);
	static __thread char chunk[CHUNK];
	*size = 0;
	ssize_t r;
	while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			hasher_end(&h, hex);
			return err_set(err, 500, "io", "cannot read %s: %s", path, strerror(e));
		}
		EVP_DigestUpdate(h.md, chunk, (size_t)r);
		*size += (uint64_t)r;
	}
	close(fd);
	hasher_end(&h, hex);
	return 0;
}

/* ---- Small helpers. */

/* Splits path into its directory ("." when none) and base name. */
static int split_path(const char *path, char *dir, size_t dn, char *base, size_t bn)
{
	char tmp[1100];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -1;
	size_t len = strlen(tmp);
	while (len > 1 && tmp[len - 1] == '/')
		tmp[--len] = '\0';
	char *slash = strrchr(tmp, '/');
	const char *b = slash ? slash + 1 : tmp;
	int w1 = slash == tmp ? snprintf(dir, dn, "/")
			      : slash ? snprintf(dir, dn, "%.*s", (int)(slash - tmp), tmp)
				      : snprintf(dir, dn, ".");
	int w2 = snprintf(base, bn, "%s", b);
	return w1 < 0 || (size_t)w1 >= dn || w2 < 0 || (size_t)w2 >= bn || !*b ? -1 : 0;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	remove(p);
	return 0;
}

/* Removes a temporary tree we made (never follows a link out of it). */
static void rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int fsync_path(const char *path, struct selo_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return err_set(err, 500, "io", "cannot sync %s: %s", path, strerror(e));
	}
	close(fd);
	return 0;
}

void backup_summary_free(struct backup_summary *s)
{
	store_copy_info_free(&s->log);
	free(s->manifest);
	s->manifest = NULL;
}

/* ---- Backup. */

/* A file going into the archive: small ones are held in memory (what is
 * hashed is what is written); the database copy is streamed from disk. */
struct bfile {
	char path[600];   /* in the archive */
	char src[1600];   /* on disk */
	mode_t mode;
	struct buf data;  /* small files */
	uint64_t size;
	char sha[65];
};

struct bset {
	struct bfile *f;
	size_t n;
	char dirs[MAX_FILES][600]; /* directories under keys/, parents first */
	size_t ndirs;
};

static struct bfile *bset_add(struct bset *s, struct selo_err *err)
{
	if (s->n >= MAX_FILES) {
		err_set(err, 400, "invalid-request", "more than %d files to back up", MAX_FILES);
		return NULL;
	}
	s->f = xrealloc(s->f, (s->n + 1) * sizeof(*s->f));
	struct bfile *f = &s->f[s->n++];
	memset(f, 0, sizeof(*f));
	return f;
}

static void bset_free(struct bset *s)
{
	for (size_t i = 0; i < s->n; i++)
		buf_free(&s->f[i].data);
	free(s->f);
}

/* A small file: read (bounded), hashed, its mode kept. */
static int add_small(struct bset *s, const char *src, const char *path, struct selo_err *err)
{
	struct stat st;
	if (stat(src, &st) != 0)
		return err_set(err, 400, "invalid-request", "cannot back up %s: %s", src, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return err_set(err, 400, "invalid-request", "cannot back up %s: not a regular file", src);
	struct bfile *f = bset_add(s, err);
	if (!f)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s", path);
	snprintf(f->src, sizeof(f->src), "%s", src);
	f->mode = st.st_mode & 0777;
	if (file_read(src, MAX_SMALL_FILE, &f->data, err) != 0)
		return -1;
	f->size = f->data.len;
	sha256_hex(f->data.data ? f->data.data : "", f->data.len, f->sha);
	return 0;
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* Every file under DIR/keys, in name order, directories before their files. */
static int add_keys(struct bset *s, const char *src_dir, const char *path, int depth,
		    struct selo_err *err)
{
	if (depth > MAX_DEPTH)
		return err_set(err, 400, "invalid-request", "%s: directories nest deeper than %d",
			       src_dir, MAX_DEPTH);
	if (s->ndirs >= MAX_FILES)
		return err_set(err, 400, "invalid-request", "too many directories under keys/");
	snprintf(s->dirs[s->ndirs++], sizeof(s->dirs[0]), "%s", path);
	struct dirent **list = NULL;
	int n = scandir(src_dir, &list, NULL, name_cmp);
	if (n < 0)
		return err_set(err, 400, "invalid-request", "cannot read %s: %s", src_dir,
			       strerror(errno));
	int r = 0;
	for (int i = 0; i < n; i++) {
		const char *nm = list[i]->d_name;
		if (r != 0 || !strcmp(nm, ".") || !strcmp(nm, ".."))
			continue;
		char src[1300], p[600];
		struct stat st;
		snprintf(src, sizeof(src), "%s/%s", src_dir, nm);
		snprintf(p, sizeof(p), "%s/%s", path, nm);
		if (!name_ok(nm, strlen(nm)))
			r = err_set(err, 400, "invalid-request", "cannot back up %s: its name has characters "
				    "a backup does not carry (letters, digits and ._+~@=- only)", src);
		else if (stat(src, &st) != 0)
			r = err_set(err, 400, "invalid-request", "cannot back up %s: %s", src,
				    strerror(errno));
		else if (S_ISDIR(st.st_mode))
			r = add_keys(s, src, p, depth + 1, err);
		else
			r = add_small(s, src, p, err);
	}
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
	return r;
}

/* Refuses an output path the archive cannot be written to, before any work. */
static int check_target(const struct backup_opts *o, char *dir, size_t dn, char *base, size_t bn,
			struct selo_err *err)
{
	if (split_path(o->out_path, dir, dn, base, bn) != 0)
		return err_set(err, 400, "invalid-request", "-o %s: not a file name", o->out_path);
	struct stat st;
	if (stat(dir, &st) != 0)
		return err_set(err, 400, "invalid-request", "cannot write %s: the directory %s: %s",
			       o->out_path, dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(err, 400, "invalid-request", "cannot write %s: %s is not a directory",
			       o->out_path, dir);
	if (access(dir, W_OK | X_OK) != 0)
		return err_set(err, 400, "invalid-request", "cannot write in %s: %s", dir,
			       strerror(errno));
	if (lstat(o->out_path, &st) == 0) {
		if (!S_ISREG(st.st_mode))
			return err_set(err, 400, "invalid-request",
				       "%s exists and is not a regular file; not replaced", o->out_path);
		if (!o->force)
			return err_set(err, 400, "invalid-request",
				       "%s exists; not replaced (--force replaces it)", o->out_path);
	}
	return 0;
}

/* A new, empty temporary file in dir, mode 0600; its name into out. */
static int temp_file(const char *dir, const char *base, const char *tag, char *out, size_t n,
		     struct selo_err *err)
{
	if (snprintf(out, n, "%s/.%s.%s-XXXXXX", dir, base, tag) >= (int)n)
		return err_set(err, 400, "invalid-request", "%s/%s: path too long", dir, base);
	int fd = mkstemp(out);
	if (fd < 0) {
		int e = errno;
		out[0] = '\0';
		return err_set(err, 400, "invalid-request", "cannot write in %s: %s", dir, strerror(e));
	}
	fchmod(fd, 0600);
	return fd;
}

static json_t *manifest_json(const struct bset *s, const struct backup_summary *sum)
{
	json_t *files = json_array();
	for (size_t i = 0; i < s->n; i++) {
		char mode[8];
		snprintf(mode, sizeof(mode), "%04o", (unsigned)s->f[i].mode);
		json_array_append_new(files, json_pack("{s:s, s:I, s:s, s:s}", "path", s->f[i].path,
						       "size", (json_int_t)s->f[i].size, "mode", mode,
						       "sha256", s->f[i].sha));
	}
	struct buf root = BUF_INIT;
	base64_encode(&root, sum->log.root, 32, 0);
	json_t *log = json_pack("{s:I, s:s, s:I, s:I, s:o}", "tree_size",
				(json_int_t)sum->log.tree_size, "root_hash", buf_str(&root),
				"last_seq", (json_int_t)sum->log.last_seq, "checkpoint_size",
				(json_int_t)sum->log.checkpoint_size, "checkpoint",
				sum->log.checkpoint ? json_string(sum->log.checkpoint) : json_null());
	buf_free(&root);
	json_t *version = json_string(SELO_VERSION);
	return json_pack("{s:s, s:s, s:o, s:i, s:o, s:o}", "format", BACKUP_FORMAT, "created",
			 sum->created, "selo_version", version, "schema_version",
			 sum->log.schema_version, "log", log, "files", files);
}

static int ar_fail(struct archive *a, const char *what, struct selo_err *err)
{
	return err_set(err, 500, "io", "writing the archive (%s): %s", what,
		       archive_error_string(a) ? archive_error_string(a) : "unknown error");
}

static int ar_header(struct archive *a, const char *path, mode_t type, mode_t mode, uint64_t size,
		     struct selo_err *err)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, mode);
	archive_entry_set_size(e, type == AE_IFREG ? (la_int64_t)size : 0);
	archive_entry_set_mtime(e, time(NULL), 0);
	int rc = archive_write_header(a, e);
	archive_entry_free(e);
	return rc == ARCHIVE_OK ? 0 : ar_fail(a, path, err);
}

static int ar_data(struct archive *a, const void *p, size_t n, const char *path,
		   struct selo_err *err)
{
	if (n && archive_write_data(a, p, n) != (la_ssize_t)n)
		return ar_fail(a, path, err);
	return 0;
}

/* The database copy, streamed and hashed again on its way in: what is
 * archived must be what the manifest describes. */
static int ar_stream(struct archive *a, const struct bfile *f, struct selo_err *err)
{
	if (ar_header(a, f->path, AE_IFREG, f->mode, f->size, err) != 0)
		return -1;
	int fd = open(f->src, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, 500, "io", "cannot open %s: %s", f->src, strerror(errno));
	struct hasher h;
	hasher_start(&h);
	static __thread char chunk[CHUNK];
	uint64_t total = 0;
	int r = 0;
	ssize_t n;
	while (r == 0 && (n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = err_set(err, 500, "io", "cannot read %s: %s", f->src, strerror(errno));
			break;
		}
		EVP_DigestUpdate(h.md, chunk, (size_t)n);
		total += (uint64_t)n;
		r = ar_data(a, chunk, (size_t)n, f->path, err);
	}
	close(fd);
	char sha[65];
	hasher_end(&h, sha);
	if (r == 0 && (total != f->size || strcmp(sha, f->sha) != 0))
		r = err_set(err, 500, "io", "%s changed while it was archived", f->src);
	return r;
}

static int write_archive(int fd, const struct backup_opts *o, const struct bset *s,
			 const char *manifest, struct selo_err *err)
{
	struct archive *a = archive_write_new();
	int rc = archive_write_set_format_pax_restricted(a);
	if (rc == ARCHIVE_OK && o->compress == BACKUP_ZSTD)
		rc = archive_write_add_filter_zstd(a);
	else if (rc == ARCHIVE_OK && o->compress == BACKUP_GZIP)
		rc = archive_write_add_filter_gzip(a);
	if (rc == ARCHIVE_OK)
		rc = archive_write_open_fd(a, fd);
	int r = rc == ARCHIVE_OK ? 0 : ar_fail(a, "opening", err);
	size_t mlen = strlen(manifest);
	if (r == 0)
		r = ar_header(a, MANIFEST, AE_IFREG, 0600, mlen, err);
	if (r == 0)
		r = ar_data(a, manifest, mlen, MANIFEST, err);
	for (size_t i = 0; r == 0 && i < s->ndirs; i++)
		r = ar_header(a, s->dirs[i], AE_IFDIR, 0700, 0, err);
	for (size_t i = 0; r == 0 && i < s->n; i++) {
		const struct bfile *f = &s->f[i];
		if (strcmp(f->path, "selo.db") == 0)
			r = ar_stream(a, f, err);
		else if ((r = ar_header(a, f->path, AE_IFREG, f->mode, f->size, err)) == 0)
			r = ar_data(a, f->data.data, f->data.len, f->path, err);
	}
	if (r == 0 && archive_write_close(a) != ARCHIVE_OK)
		r = ar_fail(a, "closing", err);
	archive_write_free(a);
	return r;
}

/* The database copy and the small files, hashed, into s. */
static int gather(const struct backup_opts *o, const char *db_tmp, struct bset *s,
		  struct backup_summary *out, struct selo_err *err)
{
	char path[1300];
	snprintf(path, sizeof(path), "%s/selo.db", o->data_dir);
	out->files = 0;
	clock_rfc3339(clock_now_ms(), out->created);
	if (store_copy_file(path, db_tmp, &out->log, err) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/selo.conf", o->data_dir);
	if (add_small(s, path, "selo.conf", err) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/keys", o->data_dir);
	if (add_keys(s, path, "keys", 1, err) != 0)
		return -1;
	struct bfile *db = bset_add(s, err);
	if (!db)
		return -1;
	snprintf(db->path, sizeof(db->path), "selo.db");
	snprintf(db->src, sizeof(db->src), "%s", db_tmp);
	db->mode = 0600;
	if (file_digest(db_tmp, db->sha, &db->size, err) != 0)
		return -1;
	out->db_bytes = db->size;
	out->files = s->n;
	return 0;
}

/* Files selo.conf names outside DIR/keys are not in the archive: said on
 * stderr at each backup, so that they are backed up with the host's files. */
static void warn_outside(const struct selo_config *cfg)
{
	const struct {
		const char *key, *value;
	} named[] = {{"tsa.ca", cfg->tsa_ca},
		     {"receipt.sign_key", cfg->receipt_sign_key},
		     {"receipt.sign_cert", cfg->receipt_sign_cert},
		     {"receipt.sign_chain", cfg->receipt_sign_chain},
		     {"templates.dir", cfg->templates_dir}};
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		const char *v = named[i].value;
		if (v[0] && strncmp(v, "keys/", 5) != 0)
			fprintf(stderr, "selo backup: note: %s = %s is outside DIR/keys and not in the "
				"archive; back it up with the host's files\n", named[i].key, v);
	}
}

/* The data directory must be Selo's: its configuration loads and the
 * database and keys are there. */
static int check_source(const char *data_dir, struct selo_err *err)
{
	struct selo_config cfg;
	if (config_load(data_dir, &cfg, err) != 0)
		return -1;
	warn_outside(&cfg);
	char path[1300];
	struct stat st;
	snprintf(path, sizeof(path), "%s/selo.db", data_dir);
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return err_set(err, 400, "invalid-request", "%s: no database (is %s a Selo data "
			       "directory? `selo init` makes one)", path, data_dir);
	snprintf(path, sizeof(path), "%s/keys", data_dir);
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return err_set(err, 400, "invalid-request", "%s: no keys directory", path);
	return 0;
}

int backup_create(const struct backup_opts *o, struct backup_summary *out, struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	char dir[1100], base[300], db_tmp[1500] = "", ar_tmp[1500] = "";
	if (check_target(o, dir, sizeof(dir), base, sizeof(base), err) != 0 ||
	    check_source(o->data_dir, err) != 0)
		return -1;
	struct bset s = {0};
	int fd = -1, r = -1;
	int dbfd = temp_file(dir, base, "db", db_tmp, sizeof(db_tmp), err);
	if (dbfd < 0)
		goto out;
	close(dbfd);
	if (gather(o, db_tmp, &s, out, err) != 0)
		goto out;
	json_t *m = manifest_json(&s, out);
	out->manifest = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(m);
	if (!out->manifest)
		abort(); /* out of memory: buf.h's policy */
	if ((fd = temp_file(dir, base, "tmp", ar_tmp, sizeof(ar_tmp), err)) < 0 ||
	    write_archive(fd, o, &s, out->manifest, err) != 0)
		goto out;
	struct stat st;
	if (fsync(fd) != 0 || fstat(fd, &st) != 0) {
		err_set(err, 500, "io", "cannot sync %s: %s", ar_tmp, strerror(errno));
		goto out;
	}
	out->archive_bytes = (uint64_t)st.st_size;
	if (rename(ar_tmp, o->out_path) != 0) {
		err_set(err, 500, "io", "cannot rename %s to %s: %s", ar_tmp, o->out_path,
			strerror(errno));
		goto out;
	}
	ar_tmp[0] = '\0';
	r = dir_sync(dir, err);
out:
	if (fd >= 0)
		close(fd);
	if (ar_tmp[0])
		unlink(ar_tmp);
	if (db_tmp[0]) {
		char j[1600];
		unlink(db_tmp);
		snprintf(j, sizeof(j), "%s-journal", db_tmp);
		unlink(j);
	}
	bset_free(&s);
	if (r != 0)
		backup_summary_free(out);
	return r;
}

/* ---- Restore. */

struct mfile {
	char path[600];
	uint64_t size;
	mode_t mode;
	char sha[65];
	int seen;
};

struct manifest {
	struct mfile f[MAX_FILES];
	size_t n;
	uint64_t tree_size, checkpoint_size;
	char root[64];
	char *checkpoint; /* NULL: none */
	char created[32];
};

static int damaged(struct selo_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int damaged(struct selo_err *err, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_set(err, 400, "backup-damaged", "the archive is damaged or not a Selo backup: %s; "
		       "nothing restored", msg);
}

static int manifest_file(struct manifest *m, json_t *it, struct selo_err *err)
{
	const char *path = NULL, *mode = NULL, *sha = NULL;
	json_int_t size = -1;
	if (json_unpack(it, "{s:s, s:I, s:s, s:s}", "path", &path, "size", &size, "mode", &mode,
			"sha256", &sha) != 0)
		return damaged(err, "a file in manifest.json lacks path, size, mode or sha256");
	if (!file_path_ok(path))
		return damaged(err, "manifest.json names an unexpected path '%.200s'", path);
	uint64_t max = !strcmp(path, "selo.db") ? MAX_DB_BYTES : MAX_SMALL_FILE;
	char *end = NULL;
	unsigned long md = strtoul(mode, &end, 8);
	uint8_t d[32];
	if (size < 0 || (uint64_t)size > max || !*mode || !end || *end || md > 0777 ||
	    strlen(sha) != 64 ||
	    hex_decode(sha, 64, d, sizeof(d)) != 32)
		return damaged(err, "manifest.json: a bad size, mode or sha256 for %.200s", path);
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->f[i].path, path))
			return damaged(err, "manifest.json names %.200s twice", path);
	if (m->n >= MAX_FILES)
		return damaged(err, "manifest.json names too many files");
	struct mfile *f = &m->f[m->n++];
	snprintf(f->path, sizeof(f->path), "%s", path);
	f->size = (uint64_t)size;
	f->mode = (mode_t)md;
	snprintf(f->sha, sizeof(f->sha), "%s", sha);
	return 0;
}

static int manifest_parse(struct manifest *m, const char *text, size_t len, struct selo_err *err)
{
	json_error_t je;
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	const char *format = NULL, *created = NULL, *root = NULL;
	json_t *files = NULL, *cp = NULL;
	json_int_t tree = -1, cps = -1;
	if (!j || json_unpack(j, "{s:s, s:s, s:{s:I, s:s, s:I, s:o}, s:o}", "format", &format,
			      "created", &created, "log", "tree_size", &tree, "root_hash", &root,
			      "checkpoint_size", &cps, "checkpoint", &cp, "files", &files) != 0 ||
	    !json_is_array(files) || tree < 0 || cps < 0 || (!json_is_string(cp) && !json_is_null(cp))) {
		json_decref(j);
		return damaged(err, "manifest.json is not a %s manifest", BACKUP_FORMAT);
	}
	if (strcmp(format, BACKUP_FORMAT) != 0) {
		json_decref(j);
		return damaged(err, "manifest.json is format '%.100s', not %s", format, BACKUP_FORMAT);
	}
	m->tree_size = (uint64_t)tree;
	m->checkpoint_size = (uint64_t)cps;
	snprintf(m->root, sizeof(m->root), "%s", root);
	snprintf(m->created, sizeof(m->created), "%s", created);
	if (json_is_string(cp)) {
		struct buf b = BUF_INIT;
		buf_puts(&b, json_string_value(cp));
		buf_putc(&b, '\0');
		m->checkpoint = buf_steal(&b, NULL);
	}
	size_t i;
	json_t *it;
	int r = 0;
	json_array_foreach(files, i, it) {
		if (r == 0)
			r = manifest_file(m, it, err);
	}
	json_decref(j);
	if (r != 0)
		return -1;
	int conf = 0, db = 0;
	for (i = 0; i < m->n; i++) {
		conf |= !strcmp(m->f[i].path, "selo.conf");
		db |= !strcmp(m->f[i].path, "selo.db");
	}
	if (!conf || !db)
		return damaged(err, "manifest.json does not list %s", !db ? "selo.db" : "selo.conf");
	return 0;
}

/* Reads the archive's first entry, which must be manifest.json. */
static int read_manifest(struct archive *a, struct manifest *m, struct selo_err *err)
{
	struct archive_entry *e;
	int rc = archive_read_next_header(a, &e);
	if (rc != ARCHIVE_OK)
		return damaged(err, "cannot read its first entry (%.200s)",
			       archive_error_string(a) ? archive_error_string(a) : "empty");
	if (strcmp(archive_entry_pathname(e), MANIFEST) != 0 ||
	    archive_entry_filetype(e) != AE_IFREG)
		return damaged(err, "its first entry is '%.200s', not manifest.json",
			       archive_entry_pathname(e));
	la_int64_t size = archive_entry_size(e);
	if (!archive_entry_size_is_set(e) || size <= 0 || size > MAX_MANIFEST)
		return damaged(err, "manifest.json has no size or is over 1 MiB");
	struct buf text = BUF_INIT;
	buf_reserve(&text, (size_t)size + 1);
	la_ssize_t n;
	char chunk[16384];
	while ((n = archive_read_data(a, chunk, sizeof(chunk))) > 0 && text.len <= MAX_MANIFEST)
		buf_append(&text, chunk, (size_t)n);
	int r = n < 0 || text.len != (size_t)size
			? damaged(err, "cannot read manifest.json (%.200s)",
				  archive_error_string(a) ? archive_error_string(a) : "short")
			: manifest_parse(m, text.data, text.len, err);
	buf_free(&text);
	return r;
}

/* Makes the directories of rel (a checked path) under root, mode 0700. */
static int make_parents(const char *root, const char *rel, struct selo_err *err)
{
	char p[2200];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	size_t skip = strlen(root) + 1;
	for (char *s = p + skip; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST) {
			int e = errno;
			return err_set(err, 500, "io", "cannot make %s: %s", p, strerror(e));
		}
		*s = '/';
	}
	return 0;
}

/* One regular file's bytes, into a new file under root, checked against its
 * manifest entry as they arrive. */
static int extract_file(struct archive *a, struct archive_entry *e, struct mfile *f,
			const char *root, struct selo_err *err)
{
	if (f->seen)
		return damaged(err, "%.200s appears twice", f->path);
	f->seen = 1;
	if (!archive_entry_size_is_set(e) || (uint64_t)archive_entry_size(e) != f->size)
		return damaged(err, "%.200s: its size differs from the manifest's", f->path);
	if (make_parents(root, f->path, err) != 0)
		return -1;
	char p[2200];
	snprintf(p, sizeof(p), "%s/%s", root, f->path);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(err, 500, "io", "cannot create %s: %s", p, strerror(errno));
	struct hasher h;
	hasher_start(&h);
	static __thread char chunk[CHUNK];
	uint64_t total = 0;
	la_ssize_t n;
	int r = 0;
	while (r == 0 && (n = archive_read_data(a, chunk, sizeof(chunk))) != 0) {
		if (n < 0 || total + (uint64_t)n > f->size) {
			r = damaged(err, "cannot read %.200s (%.200s)", f->path,
				    archive_error_string(a) ? archive_error_string(a) : "too long");
			break;
		}
		EVP_DigestUpdate(h.md, chunk, (size_t)n);
		total += (uint64_t)n;
		for (la_ssize_t off = 0; r == 0 && off < n;) {
			ssize_t w = write(fd, chunk + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				r = err_set(err, 500, "io", "cannot write %s: %s", p, strerror(errno));
			else
				off += w;
		}
	}
	char sha[65];
	hasher_end(&h, sha);
	if (r == 0 && total != f->size)
		r = damaged(err, "%.200s is shorter than the manifest says", f->path);
	if (r == 0 && strcmp(sha, f->sha) != 0)
		r = damaged(err, "%.200s: its SHA-256 differs from the manifest's", f->path);
	if (r == 0 && (fchmod(fd, f->mode) != 0 || fsync(fd) != 0))
		r = err_set(err, 500, "io", "cannot sync %s: %s", p, strerror(errno));
	close(fd);
	return r;
}

/* Every entry after the manifest: a directory under keys/ or a file it lists. */
static int extract_all(struct archive *a, struct manifest *m, const char *root,
		       struct selo_err *err)
{
	struct archive_entry *e;
	int rc, entries = 0;
	while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		if (++entries > 2 * MAX_FILES)
			return damaged(err, "too many entries");
		char path[600];
		const char *name = archive_entry_pathname(e);
		if (!name || snprintf(path, sizeof(path), "%s", name) >= (int)sizeof(path))
			return damaged(err, "an entry's name is missing or too long");
		size_t len = strlen(path);
		mode_t type = archive_entry_filetype(e);
		if (type == AE_IFDIR && len > 1 && path[len - 1] == '/')
			path[--len] = '\0';
		if (archive_entry_hardlink(e) || archive_entry_symlink(e) ||
		    (type != AE_IFREG && type != AE_IFDIR))
			return damaged(err, "'%.200s' is a link or special file", path);
		if (type == AE_IFDIR) {
			if (!backup_keys_path_ok(path))
				return damaged(err, "unexpected directory '%.200s'", path);
			char p[2200];
			snprintf(p, sizeof(p), "%s/%s", root, path);
			if (make_parents(root, path, err) != 0 ||
			    (mkdir(p, 0700) != 0 && errno != EEXIST))
				return err_set(err, 500, "io", "cannot make %s: %s", p, strerror(errno));
			continue;
		}
		struct mfile *f = NULL;
		for (size_t i = 0; i < m->n && !f; i++)
			if (!strcmp(m->f[i].path, path))
				f = &m->f[i];
		if (!f)
			return damaged(err, "unexpected entry '%.200s' (not in the manifest)", path);
		if (extract_file(a, e, f, root, err) != 0)
			return -1;
	}
	if (rc != ARCHIVE_EOF)
		return damaged(err, "cannot read it to its end (%.200s)",
			       archive_error_string(a) ? archive_error_string(a) : "bad entry");
	for (size_t i = 0; i < m->n; i++)
		if (!m->f[i].seen)
			return damaged(err, "%.200s is in the manifest but not in the archive",
				       m->f[i].path);
	return 0;
}

/* ---- Checkpoints seen elsewhere (--seen): a receipt a client holds, a
 * monitor's cached /log/checkpoint. Each must be signed by the restored log
 * key and describe a tree the restored log holds; a larger one, or another
 * root at its size, means the log was published past this backup: a serve
 * on the restore would fork it (docs/backup.md). */

struct seen_tiles {
	struct store *s;
	struct buf b;
};

static int seen_read_tile(void *arg, int level, uint64_t index, unsigned width,
			  const uint8_t **data, struct selo_err *err)
{
	struct seen_tiles *t = arg;
	buf_reset(&t->b);
	int found = store_log_tile(t->s, level, index, &t->b, err);
	if (found < 0)
		return -1;
	if (found == 0 || t->b.len < (size_t)width * TLOG_HASH_LEN)
		return err_set(err, 500, "log-corrupt", "log tile %d/%llu is missing or short", level,
			       (unsigned long long)index);
	*data = (const uint8_t *)t->b.data;
	return 0;
}

/* err's message, prefixed with what was being done (as "what: message"). */
static int rewrap(struct selo_err *err, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int rewrap(struct selo_err *err, int status, const char *fmt, ...)
{
	char msg[sizeof(err->msg)];
	snprintf(msg, sizeof(msg), "%s", err->msg);
	char head[1400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	return err_set(err, status, "invalid-request", "%s: %s", head, msg);
}

/* The signed note in a file: the file itself, or a receipt's log.checkpoint. */
static int seen_note(const char *path, struct buf *note, struct selo_err *err)
{
	struct buf raw = BUF_INIT;
	if (file_read(path, 1u << 26, &raw, err) != 0) {
		buf_free(&raw);
		return rewrap(err, 400, "--seen %s", path);
	}
	const char *p = buf_str(&raw);
	while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
		p++;
	int r = 0;
	if (*p == '{') {
		json_t *j = json_loadb(raw.data, raw.len, 0, NULL);
		const char *cp = NULL;
		if (json_unpack(j, "{s:{s:s}}", "log", "checkpoint", &cp) == 0)
			buf_puts(note, cp);
		else
			r = err_set(err, 400, "invalid-request", "--seen %s: JSON without log.checkpoint "
				    "(a receipt is expected)", path);
		json_decref(j);
	} else {
		buf_append(note, raw.data, raw.len);
	}
	buf_free(&raw);
	return r;
}

/* The root the restored serve will reach at `size`: the copy may hold
 * events the ledger had not integrated yet (it integrates at least once a
 * second); the restored serve appends them in seq order, as the original
 * did, so a checkpoint the original published over them is still this
 * log's. 0 and root, or 1 when the copy holds fewer events than size. */
static int seen_future_root(struct seen_tiles *t, const struct store_copy_info *log,
			    uint64_t size, uint8_t root[32], struct selo_err *err)
{
	struct tlog_edge *e = xmalloc(sizeof(*e));
	int r = tlog_edge_load(e, log->tree_size, seen_read_tile, t, err);
	tlog_edge_root(e, root);
	if (r == 0 && memcmp(root, log->root, 32) != 0)
		r = err_set(err, 500, "log-corrupt", "the restored tiles do not give the log's root");
	int64_t after = log->last_seq;
	while (r == 0 && e->size < size) {
		struct event_rec *ev = NULL;
		size_t n = 0;
		if (store_events_after(t->s, after, 10000, &ev, &n, err) != 0) {
			r = -1;
			break;
		}
		for (size_t i = 0; i < n && e->size < size; i++) {
			uint8_t leaf[32];
			tlog_leaf_hash(ev[i].entry, ev[i].len, leaf);
			tlog_edge_append(e, leaf, NULL, NULL);
		}
		if (n)
			after = ev[n - 1].seq;
		event_recs_free(ev, n);
		if (n == 0)
			break;
	}
	int past = e->size < size;
	tlog_edge_root(e, root);
	free(e);
	return r != 0 ? -1 : past;
}

/* One seen checkpoint against the restored log: 0 it is in it, -1 with err
 * ("log-fork", 409, when the log went past or elsewhere). */
static int seen_check(const char *path, const struct note_verifier *v, struct seen_tiles *t,
		      const struct store_copy_info *log, struct selo_err *err)
{
	struct buf note = BUF_INIT, text = BUF_INIT;
	struct checkpoint c;
	int r = seen_note(path, &note, err);
	if (r == 0 && note_verify(v, 1, buf_str(&note), note.len, &text, err) != 0)
		r = rewrap(err, 400, "--seen %s: not a checkpoint signed by the restored log key",
			   path);
	if (r == 0 && checkpoint_parse(text.data, text.len, &c, err) != 0)
		r = rewrap(err, 400, "--seen %s", path);
	buf_free(&note);
	buf_free(&text);
	if (r != 0)
		return -1;
	uint8_t root[32];
	if (c.size > log->tree_size) {
		int past = seen_future_root(t, log, c.size, root, err);
		if (past < 0)
			return -1;
		if (past)
			return err_set(err, 409, "log-fork", "--seen %s: a checkpoint of tree size %llu "
				       "was published, past the %llu entries this backup holds: a serve "
				       "on this restore would fork the log (docs/backup.md); nothing "
				       "restored", path, (unsigned long long)c.size,
				       (unsigned long long)log->tree_size);
	} else if (tlog_root(c.size, seen_read_tile, t, root, err) != 0) {
		return -1;
	}
	if (memcmp(root, c.root, 32) != 0)
		return err_set(err, 409, "log-fork", "--seen %s: at tree size %llu the restored log "
			       "has another root than this signed checkpoint: the log forked "
			       "(docs/backup.md); nothing restored", path, (unsigned long long)c.size);
	return 0;
}

/* Every seen checkpoint, on the restored database and keys under root. */
static int seen_all(const char *root, const char *const *seen, size_t nseen,
		    struct backup_summary *out, struct selo_err *err)
{
	if (nseen == 0)
		return 0;
	char path[2200];
	struct buf vkey = BUF_INIT;
	snprintf(path, sizeof(path), "%s/keys/log.vkey", root);
	struct note_verifier v;
	if (file_read(path, 4096, &vkey, err) != 0)
		return -1;
	while (vkey.len && (vkey.data[vkey.len - 1] == '\n' || vkey.data[vkey.len - 1] == '\r'))
		vkey.data[--vkey.len] = '\0';
	int r = note_verifier_parse(buf_str(&vkey), &v, err);
	buf_free(&vkey);
	if (r != 0)
		return -1;
	struct seen_tiles t = {NULL, BUF_INIT};
	snprintf(path, sizeof(path), "%s/selo.db", root);
	if (store_open(path, &t.s, err) != 0)
		return -1;
	for (size_t i = 0; r == 0 && i < nseen; i++)
		r = seen_check(seen[i], &v, &t, &out->log, err);
	if (r == 0)
		out->seen_ok = nseen;
	store_close(t.s);
	buf_free(&t.b);
	return r;
}

/* new_dir must not exist, or be an empty directory. */
static int check_new_dir(const char *new_dir, struct selo_err *err)
{
	struct stat st;
	if (lstat(new_dir, &st) != 0)
		return errno == ENOENT ? 0
				       : err_set(err, 400, "invalid-request", "%s: %s", new_dir,
						 strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(err, 400, "invalid-request", "%s exists and is not a directory; nothing "
			       "restored", new_dir);
	DIR *d = opendir(new_dir);
	if (!d)
		return err_set(err, 400, "invalid-request", "cannot read %s: %s", new_dir,
			       strerror(errno));
	struct dirent *de;
	int empty = 1;
	while (empty && (de = readdir(d)) != NULL)
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	closedir(d);
	if (!empty)
		return err_set(err, 400, "invalid-request", "%s is not empty; restore only into a new "
			       "or empty directory (nothing restored)", new_dir);
	return 0;
}

/* The restored database: SQLite's quick_check, then its log against the
 * manifest's (a manifest rewritten to match other files is caught here). */
static int check_db(const char *root, const struct manifest *m, struct backup_summary *out,
		    struct selo_err *err)
{
	char db[1800];
	snprintf(db, sizeof(db), "%s/selo.db", root);
	int bad = store_check_file(db, 0, 5, NULL, NULL, err);
	if (bad != 0)
		return bad < 0 ? -1 : damaged(err, "selo.db fails SQLite's quick_check");
	if (store_describe_file(db, &out->log, err) != 0)
		return -1;
	struct buf root_b64 = BUF_INIT;
	base64_encode(&root_b64, out->log.root, 32, 0);
	int same = out->log.tree_size == m->tree_size && !strcmp(buf_str(&root_b64), m->root) &&
		   out->log.checkpoint_size == m->checkpoint_size &&
		   !out->log.checkpoint == !m->checkpoint &&
		   (!m->checkpoint || !strcmp(out->log.checkpoint, m->checkpoint));
	buf_free(&root_b64);
	if (!same)
		return damaged(err, "selo.db's log differs from the manifest's (tree size, root or "
			       "checkpoint)");
	return 0;
}

static int restore_into(const char *archive_path, const char *tmp, struct manifest *m,
			const char *const *seen, size_t nseen, struct backup_summary *out,
			struct selo_err *err)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_none(a);
	int r;
	/* The file is readable (checked before): failing here is its content. */
	if (archive_read_open_filename(a, archive_path, CHUNK) != ARCHIVE_OK)
		r = damaged(err, "cannot open it as a tar archive (%.200s)",
			    archive_error_string(a) ? archive_error_string(a) : "unknown format");
	else
		r = read_manifest(a, m, err) != 0 || extract_all(a, m, tmp, err) != 0 ? -1 : 0;
	archive_read_free(a);
	if (r != 0)
		return -1;
	if (check_db(tmp, m, out, err) != 0 || seen_all(tmp, seen, nseen, out, err) != 0)
		return -1;
	snprintf(out->created, sizeof(out->created), "%s", m->created);
	out->files = m->n;
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->f[i].path, "selo.db"))
			out->db_bytes = m->f[i].size;
	char keys[1800];
	snprintf(keys, sizeof(keys), "%s/keys", tmp);
	return fsync_path(keys, err) != 0 || fsync_path(tmp, err) != 0 ? -1 : 0;
}

int backup_restore(const char *archive_path, const char *new_dir, const char *const *seen,
		   size_t nseen, struct backup_summary *out, struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	char parent[1100], base[300], tmp[1500];
	if (split_path(new_dir, parent, sizeof(parent), base, sizeof(base)) != 0 ||
	    !strcmp(base, ".") || !strcmp(base, ".."))
		return err_set(err, 400, "invalid-request", "--data %s: name the new directory",
			       new_dir);
	if (check_new_dir(new_dir, err) != 0)
		return -1;
	if (access(archive_path, R_OK) != 0)
		return err_set(err, 400, "invalid-request", "cannot read %s: %s", archive_path,
			       strerror(errno));
	if (snprintf(tmp, sizeof(tmp), "%s/.%s.restore-XXXXXX", parent, base) >= (int)sizeof(tmp))
		return err_set(err, 400, "invalid-request", "%s: path too long", new_dir);
	if (!mkdtemp(tmp))
		return err_set(err, 400, "invalid-request", "cannot make a directory beside %s: %s",
			       new_dir, strerror(errno));
	struct manifest *m = xcalloc(1, sizeof(*m));
	int r = restore_into(archive_path, tmp, m, seen, nseen, out, err);
	/* rename() replaces an empty directory and fails on one that filled up
	 * meanwhile: the check above is not a race. */
	if (r == 0 && rename(tmp, new_dir) != 0)
		r = err_set(err, 400, "invalid-request", "cannot put the restored files at %s: %s",
			    new_dir, strerror(errno));
	if (r == 0)
		r = dir_sync(parent, err);
	else
		rm_tree(tmp);
	free(m->checkpoint);
	free(m);
	if (r != 0)
		backup_summary_free(out);
	return r;
}
