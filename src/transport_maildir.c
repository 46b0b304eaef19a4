/* transport_maildir.c: the default transport, no network. Each message is
 * written to DIR/outbox as a Maildir (tmp/, new/, cur/, created 0700 at
 * open): tmp/<notice_id>.eml is written and fsynced, renamed to
 * new/<notice_id>.eml, and new/ is fsynced, so a message is durable before it
 * is reported ACCEPTED. A resend replaces new/<notice_id>.eml atomically.
 * Functions: transport_maildir_open and the ops (send, close).
 * Errors: open fails when the directories cannot be made; a message that
 * cannot be written is TEMPFAIL with the system's error text. One notice is
 * sent by one worker at a time (tmp/<notice_id>.eml is not shared). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "selo/buf.h"
#include "selo/fileio.h"
#include "selo/transport.h"

struct maildir {
	char tmp[4096];
	char new[4096];
};

static int join(char *out, size_t n, const char *a, const char *b)
{
	int w = snprintf(out, n, "%s/%s", a, b);
	return (w < 0 || (size_t)w >= n) ? -1 : 0;
}

int transport_maildir_open(const struct selo_config *cfg, void **state, struct selo_err *err)
{
	*state = NULL;
	char outbox[4096], cur[4096];
	if (join(outbox, sizeof(outbox), cfg->data_dir, "outbox") != 0)
		return err_set(err, 500, "config", "data directory path too long");
	struct maildir *md = xcalloc(1, sizeof(*md));
	if (join(md->tmp, sizeof(md->tmp), outbox, "tmp") != 0 ||
	    join(md->new, sizeof(md->new), outbox, "new") != 0 ||
	    join(cur, sizeof(cur), outbox, "cur") != 0) {
		free(md);
		return err_set(err, 500, "config", "data directory path too long");
	}
	if (dir_make(md->tmp, 0700, err) != 0 || dir_make(md->new, 0700, err) != 0 ||
	    dir_make(cur, 0700, err) != 0) {
		free(md);
		return -1;
	}
	*state = md;
	return 0;
}

/* The id becomes a file name, so only a plain, bounded name is accepted
 * (ids from id.c always are). */
static int maildir_id_is_file_name(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > 200 || id[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
		if (!ok)
			return 0;
	}
	return 1;
}

/* Writes and fsyncs the whole file; on failure fills why and removes it. */
static int write_synced(const char *path, const char *data, size_t len, char *why, size_t whyn)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		transport_textf(why, whyn, "cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			transport_textf(why, whyn, "cannot write %s: %s", path, strerror(errno));
			close(fd);
			unlink(path);
			return -1;
		}
		off += (size_t)w;
	}
	int r = fsync(fd), e = errno;
	if (close(fd) != 0 && r == 0) {
		r = -1;
		e = errno;
	}
	if (r != 0) {
		transport_textf(why, whyn, "cannot sync %s: %s", path, strerror(e));
		unlink(path);
		return -1;
	}
	return 0;
}

/* peer is short; a long path keeps its most telling part, the end. */
static void set_peer(struct transport_msg *m, const char *path)
{
	size_t n = strlen(path);
	if (n < sizeof(m->peer)) {
		memcpy(m->peer, path, n + 1);
		return;
	}
	transport_textf(m->peer, sizeof(m->peer), "...%s", path + n - (sizeof(m->peer) - 4));
}

static void fail(struct transport_msg *m, const char *why)
{
	m->outcome = TRANSPORT_TEMPFAIL;
	transport_textf(m->error, sizeof(m->error), "%s", why);
	buf_printf(&m->transcript, "maildir: not written: %s\n", why);
}

/* Steps 1-2 for one message: tmp file, then rename into new/. Returns 0
 * when the rename is done (durable once new/ is synced). */
static int place_message(struct maildir *md, struct transport_msg *m, char *final, size_t fn)
{
	char tmp[4352], why[sizeof(m->error)];
	if (!maildir_id_is_file_name(m->notice_id)) {
		fail(m, "notice id is not usable as a file name");
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s/%s.eml", md->tmp, m->notice_id);
	snprintf(final, fn, "%s/%s.eml", md->new, m->notice_id);
	if (write_synced(tmp, m->data, m->len, why, sizeof(why)) != 0) {
		fail(m, why);
		return -1;
	}
	if (rename(tmp, final) != 0) {
		transport_textf(why, sizeof(why), "cannot rename %s to %s: %s", tmp, final, strerror(errno));
		unlink(tmp);
		fail(m, why);
		return -1;
	}
	return 0;
}

static int maildir_send(void *state, struct transport_msg *msgs, size_t n)
{
	struct maildir *md = state;
	char (*finals)[4352] = xcalloc(n, sizeof(*finals));
	size_t placed = 0;
	for (size_t i = 0; i < n; i++)
		if (place_message(md, &msgs[i], finals[i], sizeof(finals[i])) == 0)
			placed++;

	/* One directory sync makes every rename above durable. */
	struct selo_err err;
	err_clear(&err);
	int synced = placed == 0 || dir_sync(md->new, &err) == 0;
	for (size_t i = 0; i < n; i++) {
		struct transport_msg *m = &msgs[i];
		if (!finals[i][0] || m->error[0])
			continue;
		if (!synced) {
			fail(m, err.msg);
			continue;
		}
		m->outcome = TRANSPORT_ACCEPTED;
		m->code = 250;
		set_peer(m, finals[i]);
		buf_puts(&m->reply, "written to maildir");
		buf_printf(&m->transcript, "maildir: wrote %zu bytes to %s\n", m->len, finals[i]);
	}
	free(finals);
	return 0;
}

static void maildir_close(void *state)
{
	free(state);
}

const struct transport_ops transport_maildir_ops = {
	.name = "maildir",
	.accept_event = "relay_accepted",
	.send = maildir_send,
	.close = maildir_close,
};
