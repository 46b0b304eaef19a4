/* test_transport.c: the maildir and relay transports against real peers.
 * Relay tests start tests/integration/smtpserver.py (Debian's /usr/bin/python3
 * with aiosmtpd) on 127.0.0.1, read its "PORT n" line, and kill it by pid at
 * the end of every test, pass or fail. Temporary directories live under /tmp
 * and are removed at the end of each test. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "selo/fileio.h"
#include "selo/transport.h"
#include "t.h"

#define SERVER_PY "tests/integration/smtpserver.py"
#define PYTHON "/usr/bin/python3"

/* ---- helpers: temp dirs, the server, messages ---------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void rm_rf(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_tmpdir(char *out, size_t n)
{
	snprintf(out, n, "/tmp/selo-test-transport-XXXXXX");
	if (!mkdtemp(out)) {
		perror("mkdtemp");
		out[0] = '\0';
	}
}

struct server {
	pid_t pid;
	int port;
	char dir[256];     /* the server's --maildir */
};

/* Starts smtpserver.py with extra arguments (NULL-terminated); 0 on success. */
static int server_start(struct server *s, const char *const *extra)
{
	memset(s, 0, sizeof(*s));
	make_tmpdir(s->dir, sizeof(s->dir));
	const char *argv[40];
	int a = 0;
	argv[a++] = PYTHON;
	argv[a++] = SERVER_PY;
	argv[a++] = "--host";
	argv[a++] = "127.0.0.1";
	argv[a++] = "--port";
	argv[a++] = "0";
	argv[a++] = "--maildir";
	argv[a++] = s->dir;
	for (int i = 0; extra && extra[i] && a < 38; i++)
		argv[a++] = extra[i];
	argv[a] = NULL;

	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv(PYTHON, (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	s->pid = pid;
	char line[64] = {0};
	size_t got = 0;
	struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
	while (got < sizeof(line) - 1 && !strchr(line, '\n')) {
		if (poll(&pfd, 1, 15000) <= 0)
			break;
		ssize_t r = read(fds[0], line + got, sizeof(line) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fds[0]);
	if (sscanf(line, "PORT %d", &s->port) != 1) {
		fprintf(stderr, "  smtpserver.py did not start (read \"%s\")\n", line);
		return -1;
	}
	return 0;
}

static void server_stop(struct server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		int st;
		for (int i = 0; i < 100; i++) {
			if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
				s->pid = 0;
				break;
			}
			usleep(50000);
		}
		if (s->pid > 0) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &st, 0);
		}
	}
	s->pid = 0;
	rm_rf(s->dir);
}

static void relay_config(struct selo_config *c, int port)
{
	memset(c, 0, sizeof(*c));
	c->smtp_mode = SMTP_RELAY;
	snprintf(c->smtp_relay, sizeof(c->smtp_relay), "127.0.0.1:%d", port);
	c->starttls = STARTTLS_NO;
	c->smtp_timeout_ms = 10000;
	snprintf(c->smtp_helo, sizeof(c->smtp_helo), "selo.test");
}

/* A message as the composer would make it: every header libesmtp would
 * otherwise add is present, CRLF lines, a line starting with a dot. */
static char *make_message(int n, size_t *len)
{
	struct buf b = BUF_INIT;
	buf_printf(&b,
		   "Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n"
		   "From: Selo <notificacoes@selo.test>\r\n"
		   "To: Devedor %d <devedor%d@example.test>\r\n"
		   "Subject: Aviso de vencimento %d\r\n"
		   "Message-ID: <msg-%d@selo.test>\r\n"
		   "MIME-Version: 1.0\r\n"
		   "Content-Type: text/plain; charset=utf-8\r\n"
		   "Content-Transfer-Encoding: 7bit\r\n"
		   "\r\n"
		   "Prezado devedor %d,\r\n"
		   ".linha que comeca com ponto\r\n"
		   "..e outra com dois\r\n"
		   "\r\n"
		   "Atenciosamente.\r\n",
		   n, n, n, n, n);
	return buf_steal(&b, len);
}

struct batch {
	struct transport_msg m[8];
	char *data[8];
	char id[8][32];
	char rcpt[8][64];
	size_t n;
};

static void batch_make(struct batch *b, size_t n)
{
	memset(b, 0, sizeof(*b));
	b->n = n;
	for (size_t i = 0; i < n; i++) {
		snprintf(b->id[i], sizeof(b->id[i]), "ntc_%zu_abc", i + 1);
		snprintf(b->rcpt[i], sizeof(b->rcpt[i]), "devedor%zu@example.test", i + 1);
		b->data[i] = make_message((int)i + 1, &b->m[i].len);
		b->m[i].notice_id = b->id[i];
		b->m[i].mail_from = "bounce@selo.test";
		b->m[i].rcpt = b->rcpt[i];
		b->m[i].data = b->data[i];
	}
}

static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		transport_msg_free(&b->m[i]);
		free(b->data[i]);
	}
}

/* Opens a transport for cfg, sends the batch, closes. */
static int send_batch(const struct selo_config *cfg, struct batch *b)
{
	struct transport *t;
	struct selo_err err;
	err_clear(&err);
	if (transport_open(cfg, &t, &err) != 0) {
		fprintf(stderr, "  transport_open: %s\n", err.msg);
		return -1;
	}
	int r = transport_send(t, b->m, b->n);
	transport_close(t);
	return r;
}

static int file_equals(const char *path, const char *data, size_t len)
{
	struct buf got = BUF_INIT;
	struct selo_err err;
	int ok = file_read(path, 1 << 24, &got, &err) == 0 && got.len == len &&
		 memcmp(got.data, data, len) == 0;
	buf_free(&got);
	return ok;
}

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static int count_substr(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void dump_on_failure(const struct transport_msg *m)
{
	if (!t_failed_now)
		return;
	fprintf(stderr, "  outcome=%d code=%d enhanced=%s error=%s\n  reply=%s\n  transcript:\n%s\n",
		(int)m->outcome, m->code, m->enhanced, m->error, buf_str(&m->reply),
		buf_str(&m->transcript));
}

/* Message i's transcript: the session's preamble (greeting, EHLO), its own
 * transaction and the session's closing, in that order, and no trace of the
 * batch's other recipients (a transcript is evidence in i's receipt). */
static void check_own_transcript(const struct batch *b, size_t i)
{
	const char *tr = buf_str(&b->m[i].transcript);
	char want[128];
	snprintf(want, sizeof(want), "C: RCPT TO:<%s>", b->rcpt[i]);
	CHECK(count_substr(tr, want) == 1);
	CHECK(count_substr(tr, "C: MAIL FROM:") == 1);
	CHECK(count_substr(tr, "S: 220 ") == 1);
	CHECK(count_substr(tr, "C: EHLO selo.test") == 1);
	CHECK(count_substr(tr, "C: QUIT") == 1);
	CHECK(strstr(tr, "S: 221 ") != NULL);
	const char *ehlo = strstr(tr, "C: EHLO"), *mail = strstr(tr, "C: MAIL FROM:");
	const char *quit = strstr(tr, "C: QUIT");
	CHECK(ehlo && mail && quit && ehlo < mail && mail < quit);
	for (size_t j = 0; j < b->n; j++)
		if (j != i)
			CHECK(strstr(tr, b->rcpt[j]) == NULL);
}

/* Three recipients at three domains. */
static void batch_abc(struct batch *b)
{
	static const char *const rcpt[3] = {"a@x.example", "b@y.example", "c@z.example"};
	batch_make(b, 3);
	for (size_t i = 0; i < 3; i++)
		snprintf(b->rcpt[i], sizeof(b->rcpt[i]), "%s", rcpt[i]);
}

/* A self-signed certificate for 127.0.0.1 (libesmtp matches the relay host
 * against DNS names only, so 127.0.0.1 is listed as one). */
static int make_cert(const char *dir, char *cert, char *key, size_t n)
{
	snprintf(cert, n, "%s/cert.pem", dir);
	snprintf(key, n, "%s/key.pem", dir);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-keyout %s -out %s -days 2 -subj /CN=localhost "
		 "-addext subjectAltName=DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1 2>/dev/null",
		 key, cert);
	return system(cmd) == 0 ? 0 : -1;
}

static int unused_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &l);
	close(fd);
	return ntohs(a.sin_port);
}

static void b64(const char *in, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
}

/* ---- a scripted SMTP peer in a thread -------------------------------------
 * For what smtpserver.py does not do: refuse one recipient (RCPT TO that
 * address gets 550), quote addresses in replies as sendmail and Postfix do
 * ("250 2.1.5 <a@x.example> Ok", "550 5.1.1 <b@y.example>: ..."), and, when
 * pipelining, hold its replies until the client has been quiet for 50 ms as a
 * server batching replies does, so that the reply to a RSET leaves together
 * with the reply to the next message's MAIL FROM. One connection. */
struct fake_smtp {
	int lfd;
	int port;
	int pipelining;
	const char *reject;       /* RCPT TO:<reject> gets 550 */
	pthread_t th;
	int quit_seen;
	int rset_with_mail;       /* a RSET's reply went out with a MAIL FROM's */
};

struct fake_conn {
	struct buf out;
	char rcpt[128];
	int in_data, have_rcpt, queued, quit;
	int batch_rset, batch_mail;
};

static void fake_command(struct fake_smtp *f, struct fake_conn *c, const char *line)
{
	if (c->in_data) {
		if (strcmp(line, ".") == 0) {
			c->in_data = 0;
			buf_printf(&c->out, "250 2.0.0 Ok: queued as Q%d for <%s>\r\n", ++c->queued, c->rcpt);
		}
		return;
	}
	if (strncasecmp(line, "EHLO ", 5) == 0) {
		buf_printf(&c->out, "250-fake.test\r\n%s250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n",
			   f->pipelining ? "250-PIPELINING\r\n" : "");
	} else if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
		c->have_rcpt = 0;
		c->batch_mail = 1;
		buf_puts(&c->out, "250 2.1.0 Ok\r\n");
	} else if (strncasecmp(line, "RCPT TO:<", 9) == 0) {
		char addr[128];
		snprintf(addr, sizeof(addr), "%.*s", (int)strcspn(line + 9, ">"), line + 9);
		if (f->reject && strcmp(addr, f->reject) == 0) {
			buf_printf(&c->out, "550 5.1.1 <%s>: Recipient address rejected: User unknown\r\n", addr);
		} else {
			snprintf(c->rcpt, sizeof(c->rcpt), "%s", addr);
			c->have_rcpt = 1;
			buf_printf(&c->out, "250 2.1.5 <%s> Ok\r\n", addr);
		}
	} else if (strcasecmp(line, "DATA") == 0) {
		if (c->have_rcpt) {
			c->in_data = 1;
			buf_puts(&c->out, "354 End data with <CR><LF>.<CR><LF>\r\n");
		} else {
			buf_puts(&c->out, "554 5.5.1 Error: no valid recipients\r\n");
		}
	} else if (strcasecmp(line, "RSET") == 0) {
		c->have_rcpt = 0;
		c->batch_rset = 1;
		buf_puts(&c->out, "250 2.0.0 Reset state\r\n");
	} else if (strcasecmp(line, "QUIT") == 0) {
		c->quit = 1;
		f->quit_seen = 1;
		buf_puts(&c->out, "221 2.0.0 Bye\r\n");
	} else {
		buf_puts(&c->out, "502 5.5.2 Error: command not recognized\r\n");
	}
}

static int fake_read(int fd, char *in, size_t *inlen, size_t cap, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, timeout_ms) <= 0)
		return 0;
	ssize_t r = read(fd, in + *inlen, cap - *inlen);
	if (r <= 0)
		return -1;
	*inlen += (size_t)r;
	return 1;
}

static void fake_lines(struct fake_smtp *f, struct fake_conn *c, char *in, size_t *inlen, size_t cap)
{
	char *nl;
	while ((nl = memchr(in, '\n', *inlen)) != NULL) {
		size_t len = (size_t)(nl - in) + 1, ll = len - 1;
		if (ll && in[ll - 1] == '\r')
			ll--;
		char line[1024];
		snprintf(line, sizeof(line), "%.*s", (int)(ll < sizeof(line) ? ll : sizeof(line) - 1), in);
		memmove(in, in + len, *inlen - len);
		*inlen -= len;
		fake_command(f, c, line);
	}
	if (*inlen == cap)
		*inlen = 0; /* an overlong line: dropped */
}

static void *fake_run(void *arg)
{
	struct fake_smtp *f = arg;
	struct pollfd pl = {.fd = f->lfd, .events = POLLIN};
	if (poll(&pl, 1, 15000) <= 0)
		return NULL;
	int fd = accept(f->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	struct fake_conn c = {.out = BUF_INIT};
	char in[8192];
	size_t inlen = 0;
	buf_puts(&c.out, "220 fake.test ESMTP\r\n");
	for (;;) {
		if (c.out.len) {
			if (c.batch_rset && c.batch_mail)
				f->rset_with_mail = 1;
			c.batch_rset = c.batch_mail = 0;
			if (write(fd, c.out.data, c.out.len) != (ssize_t)c.out.len)
				break;
			buf_reset(&c.out);
		}
		if (c.quit || fake_read(fd, in, &inlen, sizeof(in), 15000) <= 0)
			break;
		int more;
		do {
			fake_lines(f, &c, in, &inlen, sizeof(in));
			/* Pipelining: keep reading while the client keeps writing. */
			more = f->pipelining && !c.quit ? fake_read(fd, in, &inlen, sizeof(in), 50) : 0;
		} while (more > 0);
		if (more < 0)
			break;
	}
	close(fd);
	buf_free(&c.out);
	return NULL;
}

static int fake_start(struct fake_smtp *f, int pipelining, const char *reject)
{
	memset(f, 0, sizeof(*f));
	f->pipelining = pipelining;
	f->reject = reject;
	f->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(f->lfd, 1) != 0 ||
	    getsockname(f->lfd, (struct sockaddr *)&a, &l) != 0) {
		if (f->lfd >= 0)
			close(f->lfd);
		return -1;
	}
	f->port = ntohs(a.sin_port);
	if (pthread_create(&f->th, NULL, fake_run, f) != 0) {
		close(f->lfd);
		return -1;
	}
	return 0;
}

static void fake_stop(struct fake_smtp *f)
{
	pthread_join(f->th, NULL);
	close(f->lfd);
}

/* ---- maildir ---------------------------------------------------------- */

TEST(maildir_writes_durable_files_with_exact_bytes)
{
	char dir[256], path[512];
	make_tmpdir(dir, sizeof(dir));
	struct selo_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);
	cfg.smtp_mode = SMTP_MAILDIR;

	struct transport *t;
	struct selo_err err;
	CHECK(transport_open(&cfg, &t, &err) == 0);
	CHECK_STR(transport_name(t), "maildir");
	CHECK_STR(transport_accept_event(t), "relay_accepted");
	const char *sub[] = {"tmp", "new", "cur"};
	for (int i = 0; i < 3; i++) {
		struct stat st;
		snprintf(path, sizeof(path), "%s/outbox/%s", dir, sub[i]);
		CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
	}

	struct batch b;
	batch_make(&b, 2);
	CHECK(transport_send(t, b.m, b.n) == 0);
	for (size_t i = 0; i < b.n; i++) {
		struct transport_msg *m = &b.m[i];
		snprintf(path, sizeof(path), "%s/outbox/new/%s.eml", dir, b.id[i]);
		CHECK(m->outcome == TRANSPORT_ACCEPTED);
		CHECK(m->code == 250);
		CHECK_STR(buf_str(&m->reply), "written to maildir");
		CHECK_STR(m->peer, path);
		CHECK(strstr(buf_str(&m->transcript), path) != NULL);
		CHECK(file_equals(path, b.data[i], m->len));
		struct stat st;
		CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
		snprintf(path, sizeof(path), "%s/outbox/tmp/%s.eml", dir, b.id[i]);
		CHECK(!file_exists(path));
		dump_on_failure(m);
	}
	/* A resend replaces the file with the same bytes. */
	CHECK(transport_send(t, b.m, 1) == 0);
	CHECK(b.m[0].outcome == TRANSPORT_ACCEPTED);
	snprintf(path, sizeof(path), "%s/outbox/new/%s.eml", dir, b.id[0]);
	CHECK(file_equals(path, b.data[0], b.m[0].len));

	transport_close(t);
	batch_free(&b);
	rm_rf(dir);
}

TEST(maildir_write_failure_is_tempfail)
{
	char dir[256], path[512];
	make_tmpdir(dir, sizeof(dir));
	struct selo_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);
	cfg.smtp_mode = SMTP_MAILDIR;
	struct transport *t;
	struct selo_err err;
	CHECK(transport_open(&cfg, &t, &err) == 0);

	struct batch b;
	batch_make(&b, 2);
	/* A directory where the message should go: rename fails even as root. */
	snprintf(path, sizeof(path), "%s/outbox/new/%s.eml", dir, b.id[0]);
	CHECK(mkdir(path, 0700) == 0);
	snprintf(path, sizeof(path), "%s/outbox/new/%s.eml/x", dir, b.id[0]);
	CHECK(mkdir(path, 0700) == 0);
	b.m[1].notice_id = "../escape";
	CHECK(transport_send(t, b.m, b.n) == 0);
	CHECK(b.m[0].outcome == TRANSPORT_TEMPFAIL);
	CHECK(strstr(b.m[0].error, "cannot rename") != NULL);
	CHECK(b.m[1].outcome == TRANSPORT_TEMPFAIL);
	CHECK(strstr(b.m[1].error, "file name") != NULL);
	dump_on_failure(&b.m[0]);

	/* Misuse: a message without data. */
	b.m[1].data = NULL;
	CHECK(transport_send(t, b.m, b.n) == -1);
	CHECK(strstr(b.m[1].error, "data") != NULL);

	transport_close(t);
	batch_free(&b);
	rm_rf(dir);
}

TEST(open_refuses_bad_mx_and_relay_settings)
{
	struct selo_config cfg;
	struct transport *t;
	struct selo_err err;
	config_defaults(&cfg, "/nonexistent");
	cfg.smtp_mode = SMTP_MX;
	static const char *const bad_override[] = {"destino.example", "=127.0.0.1:25",
						   "destino.example=127.0.0.1",
						   "destino.example=127.0.0.1:0", "a=b:25,c"};
	for (size_t i = 0; i < sizeof(bad_override) / sizeof(bad_override[0]); i++) {
		snprintf(cfg.smtp_mx_override, sizeof(cfg.smtp_mx_override), "%s", bad_override[i]);
		err_clear(&err);
		CHECK(transport_open(&cfg, &t, &err) == -1);
		CHECK(strstr(err.msg, "smtp.mx_override") != NULL);
	}
	snprintf(cfg.smtp_mx_override, sizeof(cfg.smtp_mx_override), "a.example=127.0.0.1:2525");
	static const char *const bad_resolver[] = {"127.0.0.1", "localhost:53", "127.0.0.1:0"};
	for (size_t i = 0; i < sizeof(bad_resolver) / sizeof(bad_resolver[0]); i++) {
		snprintf(cfg.smtp_resolver, sizeof(cfg.smtp_resolver), "%s", bad_resolver[i]);
		err_clear(&err);
		CHECK(transport_open(&cfg, &t, &err) == -1);
		CHECK(strstr(err.msg, "smtp.resolver") != NULL);
	}
	snprintf(cfg.smtp_resolver, sizeof(cfg.smtp_resolver), "127.0.0.1:5353");
	err_clear(&err);
	CHECK(transport_open(&cfg, &t, &err) == 0);
	CHECK_STR(transport_name(t), "mx");
	CHECK_STR(transport_accept_event(t), "delivery_accepted");
	transport_close(t);

	memset(&cfg, 0, sizeof(cfg));
	relay_config(&cfg, 25);
	cfg.smtp_relay[0] = '\0';
	CHECK(transport_open(&cfg, &t, &err) == -1);
	CHECK(strstr(err.msg, "smtp.relay") != NULL);
	snprintf(cfg.smtp_relay, sizeof(cfg.smtp_relay), "::1:25"); /* [::1]:25 is the way */
	CHECK(transport_open(&cfg, &t, &err) == -1);
	CHECK(strstr(err.msg, "IPv6") != NULL);
	snprintf(cfg.smtp_relay, sizeof(cfg.smtp_relay), "[::1]");
	CHECK(transport_open(&cfg, &t, &err) == -1);
	snprintf(cfg.smtp_relay, sizeof(cfg.smtp_relay), "[not-v6]:25");
	CHECK(transport_open(&cfg, &t, &err) == -1);
	snprintf(cfg.smtp_relay, sizeof(cfg.smtp_relay), "127.0.0.1:99999");
	CHECK(transport_open(&cfg, &t, &err) == -1);
	snprintf(cfg.smtp_relay, sizeof(cfg.smtp_relay), "127.0.0.1:25");
	snprintf(cfg.smtp_cafile, sizeof(cfg.smtp_cafile), "/nonexistent/ca.pem");
	CHECK(transport_open(&cfg, &t, &err) == -1);
	CHECK(strstr(err.msg, "/nonexistent/ca.pem") != NULL);
	cfg.smtp_cafile[0] = '\0';
	CHECK(transport_open(&cfg, &t, &err) == 0);
	CHECK_STR(transport_name(t), "relay");
	CHECK_STR(transport_accept_event(t), "relay_accepted");
	transport_close(t);
}

/* ---- relay: outcomes ------------------------------------------------------ */

TEST(relay_three_messages_in_one_session)
{
	struct server srv;
	const char *args[] = {"--pipelining", NULL};
	CHECK(server_start(&srv, args) == 0);
	struct selo_config cfg;
	relay_config(&cfg, srv.port);
	struct batch b;
	batch_make(&b, 3);
	CHECK(send_batch(&cfg, &b) == 0);

	char peer[64], path[512];
	snprintf(peer, sizeof(peer), "127.0.0.1:%d", srv.port);
	for (size_t i = 0; i < 3; i++) {
		struct transport_msg *m = &b.m[i];
		CHECK(m->outcome == TRANSPORT_ACCEPTED);
		CHECK(m->code == 250);
		CHECK_STR(m->enhanced, "2.0.0");
		CHECK(strstr(buf_str(&m->reply), "queued") != NULL);
		CHECK_STR(m->peer, peer);
		CHECK_STR(m->tls, "");
		CHECK_STR(m->error, "");
		const char *tr = buf_str(&m->transcript);
		/* One session: the greeting, the EHLO and its own transaction. */
		check_own_transcript(&b, i);
		CHECK(count_substr(tr, "C: MAIL FROM:<bounce@selo.test>") == 1);
		CHECK(count_substr(tr, "S: 250 2.0.0 OK: queued") == 1);
		CHECK(strstr(tr, "C: <message data, ") != NULL);
		CHECK(strstr(tr, "Prezado") == NULL); /* the body never */
		snprintf(path, sizeof(path), "%s/%zu.eml", srv.dir, i + 1);
		CHECK(file_equals(path, b.data[i], m->len));
		dump_on_failure(m);
	}
	snprintf(path, sizeof(path), "%s/2.json", srv.dir);
	struct buf js = BUF_INIT;
	struct selo_err err;
	CHECK(file_read(path, 65536, &js, &err) == 0);
	CHECK(strstr(buf_str(&js), "\"devedor2@example.test\"") != NULL);
	buf_free(&js);
	batch_free(&b);
	server_stop(&srv);
}

/* A batch to three recipients: each message's transcript has its own
 * transaction and reply, the shared preamble and closing, and nothing of
 * the other two (pipelined or not). */
static void abc_case(int pipelining)
{
	struct server srv;
	const char *args[] = {pipelining ? "--pipelining" : NULL, NULL};
	CHECK(server_start(&srv, args) == 0);
	struct selo_config cfg;
	relay_config(&cfg, srv.port);
	struct batch b;
	batch_abc(&b);
	CHECK(send_batch(&cfg, &b) == 0);
	for (size_t i = 0; i < 3; i++) {
		struct transport_msg *m = &b.m[i];
		const char *tr = buf_str(&m->transcript);
		CHECK(m->outcome == TRANSPORT_ACCEPTED);
		CHECK(m->code == 250);
		CHECK(strstr(buf_str(&m->reply), "queued") != NULL);
		check_own_transcript(&b, i);
		CHECK(count_substr(tr, "C: <message data, ") == 1);
		CHECK(count_substr(tr, "S: 250 2.0.0 OK: queued") == 1);
		CHECK(strstr(tr, "C: .\nS: 250 2.0.0 OK: queued\n") != NULL); /* its own DATA reply */
		CHECK((strstr(tr, "250-PIPELINING") != NULL) == pipelining);
		dump_on_failure(m);
	}
	/* The same preamble and closing for all: equal lengths but for the
	 * addresses' (all 11 bytes). */
	CHECK(b.m[0].transcript.len == b.m[1].transcript.len);
	CHECK(b.m[0].transcript.len == b.m[2].transcript.len);
	for (size_t i = 0; i < 3; i++) {
		char path[512];
		struct buf js = BUF_INIT;
		struct selo_err err;
		snprintf(path, sizeof(path), "%s/%zu.json", srv.dir, i + 1);
		CHECK(file_read(path, 65536, &js, &err) == 0);
		CHECK(strstr(buf_str(&js), b.rcpt[i]) != NULL);
		buf_free(&js);
	}
	batch_free(&b);
	server_stop(&srv);
}

TEST(relay_batch_transcripts_are_per_message_pipelining)
{
	abc_case(1);
}

TEST(relay_batch_transcripts_are_per_message_no_pipelining)
{
	abc_case(0);
}

/* The second of three recipients is refused at RCPT; the server quotes the
 * addresses in its replies and, pipelining, answers the RSET that follows
 * the refusal only after the third message's MAIL FROM was written. */
static void rcpt_refused_case(int pipelining)
{
	struct fake_smtp f;
	CHECK(fake_start(&f, pipelining, "b@y.example") == 0);
	if (t_failed_now)
		return;
	struct selo_config cfg;
	relay_config(&cfg, f.port);
	struct batch b;
	batch_abc(&b);
	CHECK(send_batch(&cfg, &b) == 0);
	fake_stop(&f);
	CHECK(f.quit_seen);
	CHECK(f.rset_with_mail == pipelining); /* the case this test is about */

	for (size_t i = 0; i < 3; i++)
		check_own_transcript(&b, i);
	const char *tr0 = buf_str(&b.m[0].transcript), *tr1 = buf_str(&b.m[1].transcript),
		   *tr2 = buf_str(&b.m[2].transcript);

	CHECK(b.m[0].outcome == TRANSPORT_ACCEPTED && b.m[0].code == 250);
	CHECK_STR(buf_str(&b.m[0].reply), "Ok: queued as Q1 for <a@x.example>");
	CHECK(strstr(tr0, "S: 250 2.1.5 <a@x.example> Ok\n") != NULL);
	CHECK(strstr(tr0, "C: .\nS: 250 2.0.0 Ok: queued as Q1 for <a@x.example>\n") != NULL);
	CHECK(strstr(tr0, "Reset") == NULL && strstr(tr0, "554") == NULL);

	CHECK(b.m[1].outcome == TRANSPORT_PERMFAIL);
	CHECK(b.m[1].code == 550);
	CHECK_STR(b.m[1].enhanced, "5.1.1");
	CHECK_STR(buf_str(&b.m[1].reply), "<b@y.example>: Recipient address rejected: User unknown");
	CHECK(strstr(tr1, "S: 550 5.1.1 <b@y.example>: Recipient address rejected") != NULL);
	CHECK(strstr(tr1, "C: DATA") != NULL);
	CHECK(strstr(tr1, "S: 554 5.5.1 Error: no valid recipients") != NULL);
	CHECK(strstr(tr1, "C: RSET\n") != NULL);
	CHECK(strstr(tr1, "S: 250 2.0.0 Reset state\n") != NULL);
	CHECK(strstr(tr1, "queued") == NULL && strstr(tr1, "message data") == NULL);

	CHECK(b.m[2].outcome == TRANSPORT_ACCEPTED && b.m[2].code == 250);
	CHECK_STR(buf_str(&b.m[2].reply), "Ok: queued as Q2 for <c@z.example>");
	CHECK(strstr(tr2, "S: 250 2.1.0 Ok\n") != NULL);
	CHECK(strstr(tr2, "S: 250 2.1.5 <c@z.example> Ok\n") != NULL);
	CHECK(strstr(tr2, "C: .\nS: 250 2.0.0 Ok: queued as Q2 for <c@z.example>\n") != NULL);
	CHECK(strstr(tr2, "Reset") == NULL && strstr(tr2, "554") == NULL);
	for (size_t i = 0; i < 3; i++)
		dump_on_failure(&b.m[i]);
	batch_free(&b);
}

TEST(relay_batch_rcpt_refused_pipelining)
{
	rcpt_refused_case(1);
}

TEST(relay_batch_rcpt_refused_no_pipelining)
{
	rcpt_refused_case(0);
}

/* Eight messages: each transcript holds one transaction, so storage grows
 * with the batch, not with its square. */
TEST(relay_batch_transcript_size_is_per_message)
{
	struct server srv;
	const char *args[] = {"--pipelining", NULL};
	CHECK(server_start(&srv, args) == 0);
	struct selo_config cfg;
	relay_config(&cfg, srv.port);
	struct batch b;
	batch_make(&b, 8);
	CHECK(send_batch(&cfg, &b) == 0);
	for (size_t i = 0; i < b.n; i++) {
		CHECK(b.m[i].outcome == TRANSPORT_ACCEPTED);
		check_own_transcript(&b, i);
		CHECK(b.m[i].transcript.len == b.m[0].transcript.len);
		CHECK(b.m[i].transcript.len < 1024);
		dump_on_failure(&b.m[i]);
	}
	batch_free(&b);
	server_stop(&srv);
}

static void expect_reply(const char *opt, const char *val, enum transport_outcome want,
			 int code, const char *enhanced)
{
	struct server srv;
	const char *args[] = {opt, val, NULL};
	CHECK(server_start(&srv, args) == 0);
	struct selo_config cfg;
	relay_config(&cfg, srv.port);
	struct batch b;
	batch_make(&b, 1);
	CHECK(send_batch(&cfg, &b) == 0);
	CHECK(b.m[0].outcome == want);
	CHECK(b.m[0].code == code);
	CHECK_STR(b.m[0].enhanced, enhanced);
	CHECK(b.m[0].reply.len > 0);
	CHECK(strstr(buf_str(&b.m[0].transcript), "MAIL FROM:") != NULL);
	dump_on_failure(&b.m[0]);
	batch_free(&b);
	server_stop(&srv);
}

TEST(relay_450_is_tempfail)
{
	expect_reply("--reply", "450", TRANSPORT_TEMPFAIL, 450, "4.2.0");
}

TEST(relay_550_is_permfail)
{
	expect_reply("--reply", "550", TRANSPORT_PERMFAIL, 550, "5.7.1");
}

TEST(relay_rcpt_550_is_permfail)
{
	expect_reply("--rcpt-reply", "550:5.1.1 no such user", TRANSPORT_PERMFAIL, 550, "5.1.1");
}

TEST(relay_connection_refused_is_tempfail)
{
	struct selo_config cfg;
	relay_config(&cfg, unused_port());
	struct batch b;
	batch_make(&b, 2);
	CHECK(send_batch(&cfg, &b) == 0);
	for (size_t i = 0; i < b.n; i++) {
		CHECK(b.m[i].outcome == TRANSPORT_TEMPFAIL);
		CHECK(b.m[i].code == 0);
		CHECK(strstr(b.m[i].error, "connection refused by 127.0.0.1:") != NULL);
		dump_on_failure(&b.m[i]);
	}
	batch_free(&b);
}

TEST(relay_stall_past_timeout_is_tempfail)
{
	struct server srv;
	const char *args[] = {"--stall", "5", NULL};
	CHECK(server_start(&srv, args) == 0);
	struct selo_config cfg;
	relay_config(&cfg, srv.port);
	cfg.smtp_timeout_ms = 1000;
	struct batch b;
	batch_make(&b, 1);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(send_batch(&cfg, &b) == 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(t1.tv_sec - t0.tv_sec < 4); /* the 1000 ms timeout, not the 5 s stall */
	CHECK(b.m[0].outcome == TRANSPORT_TEMPFAIL);
	CHECK(b.m[0].code == 0);
	CHECK(strstr(b.m[0].error, "timeout") != NULL);
	dump_on_failure(&b.m[0]);
	batch_free(&b);
	server_stop(&srv);
}

TEST(relay_drop_in_data_is_tempfail)
{
	struct server srv;
	const char *args[] = {"--drop-in-data", NULL};
	CHECK(server_start(&srv, args) == 0);
	struct selo_config cfg;
	relay_config(&cfg, srv.port);
	struct batch b;
	batch_make(&b, 1);
	CHECK(send_batch(&cfg, &b) == 0);
	CHECK(b.m[0].outcome == TRANSPORT_TEMPFAIL);
	CHECK(b.m[0].code == 0);
	CHECK(strstr(b.m[0].error, "closed the connection") != NULL);
	dump_on_failure(&b.m[0]);
	batch_free(&b);
	server_stop(&srv);
}

TEST(relay_drop_mid_session_keeps_earlier_and_retries_rest)
{
	struct server srv;
	const char *args[] = {"--drop-in-data", "1", "--pipelining", NULL};
	CHECK(server_start(&srv, args) == 0);
	struct selo_config cfg;
	relay_config(&cfg, srv.port);
	struct batch b;
	batch_make(&b, 3);
	CHECK(send_batch(&cfg, &b) == 0);
	CHECK(b.m[0].outcome == TRANSPORT_ACCEPTED && b.m[0].code == 250);
	CHECK(b.m[1].outcome == TRANSPORT_TEMPFAIL && b.m[1].code == 0);
	CHECK(b.m[2].outcome == TRANSPORT_TEMPFAIL && b.m[2].code == 0);
	CHECK(b.m[2].error[0] != '\0');
	/* Each transcript: its own transaction only; the third, never reached,
	 * the preamble and why the session ended. */
	for (size_t i = 0; i < b.n; i++) {
		const char *tr = buf_str(&b.m[i].transcript);
		CHECK(count_substr(tr, "C: EHLO selo.test") == 1);
		CHECK(count_substr(tr, "C: MAIL FROM:") == (i < 2 ? 1 : 0));
		CHECK(strstr(tr, "-- session ended: ") != NULL);
		CHECK(strstr(tr, "closed the connection") != NULL);
		for (size_t j = 0; j < b.n; j++)
			if (j != i)
				CHECK(strstr(tr, b.rcpt[j]) == NULL);
		dump_on_failure(&b.m[i]);
	}
	CHECK(strstr(buf_str(&b.m[1].transcript), "C: <message data, ") != NULL);
	batch_free(&b);
	server_stop(&srv);
}

TEST(relay_refuses_messages_smtp_cannot_carry)
{
	struct server srv;
	CHECK(server_start(&srv, NULL) == 0);
	struct selo_config cfg;
	relay_config(&cfg, srv.port);
	struct batch b;
	batch_make(&b, 3);
	b.m[0].data = "Subject: x\r\n\r\nbare\nLF\r\n";
	b.m[0].len = strlen(b.m[0].data);
	b.m[1].rcpt = "a@b>\r\nRCPT TO:<evil@x";
	CHECK(send_batch(&cfg, &b) == 0);
	CHECK(b.m[0].outcome == TRANSPORT_PERMFAIL && strstr(b.m[0].error, "bare LF") != NULL);
	CHECK(b.m[1].outcome == TRANSPORT_PERMFAIL && strstr(b.m[1].error, "envelope") != NULL);
	CHECK(b.m[2].outcome == TRANSPORT_ACCEPTED);
	char path[512];
	snprintf(path, sizeof(path), "%s/2.eml", srv.dir);
	CHECK(!file_exists(path)); /* only one message reached the server */
	dump_on_failure(&b.m[2]);
	batch_free(&b);
	server_stop(&srv);
}

TEST(relay_null_sender_and_8bit_body)
{
	struct server srv;
	CHECK(server_start(&srv, NULL) == 0);
	struct selo_config cfg;
	relay_config(&cfg, srv.port);
	struct batch b;
	batch_make(&b, 1);
	const char *utf8 = "Subject: =?UTF-8?Q?Notifica=C3=A7=C3=A3o?=\r\nMessage-ID: <u@x>\r\n"
			   "Date: Mon, 23 Nov 2026 18:00:00 +0000\r\nFrom: a@selo.test\r\n"
			   "To: b@example.test\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
			   "Notifica\xC3\xA7\xC3\xA3o extrajudicial\r\n";
	b.m[0].data = utf8;
	b.m[0].len = strlen(utf8);
	b.m[0].mail_from = "";
	CHECK(send_batch(&cfg, &b) == 0);
	CHECK(b.m[0].outcome == TRANSPORT_ACCEPTED);
	CHECK(strstr(buf_str(&b.m[0].transcript), "C: MAIL FROM:<> ") != NULL);
	CHECK(strstr(buf_str(&b.m[0].transcript), "BODY=8BITMIME") != NULL);
	char path[512];
	snprintf(path, sizeof(path), "%s/1.eml", srv.dir);
	CHECK(file_equals(path, utf8, strlen(utf8)));
	dump_on_failure(&b.m[0]);
	batch_free(&b);
	server_stop(&srv);
}

/* ---- relay: STARTTLS ---------------------------------------------------- */

TEST(relay_starttls_require_against_tls_server)
{
	char certdir[256], cert[512], key[512];
	make_tmpdir(certdir, sizeof(certdir));
	CHECK(make_cert(certdir, cert, key, sizeof(cert)) == 0);
	struct server srv;
	const char *args[] = {"--tls", cert, key, "--require-tls", "--pipelining", NULL};
	CHECK(server_start(&srv, args) == 0);
	struct selo_config cfg;
	relay_config(&cfg, srv.port);
	cfg.starttls = STARTTLS_REQUIRE;

	struct transport *t;
	struct selo_err err;
	CHECK(transport_open(&cfg, &t, &err) == 0);
	/* Twice on one transport: libesmtp 1.1.0 breaks on the second
	 * session unless the application owns the SSL_CTX. */
	for (int round = 0; round < 2; round++) {
		struct batch b;
		batch_make(&b, 2);
		CHECK(transport_send(t, b.m, b.n) == 0);
		for (size_t i = 0; i < b.n; i++) {
			struct transport_msg *m = &b.m[i];
			CHECK(m->outcome == TRANSPORT_ACCEPTED);
			CHECK(strncmp(m->tls, "TLSv1.", 6) == 0);
			CHECK(strstr(buf_str(&m->transcript), "C: STARTTLS") != NULL);
			CHECK(strstr(buf_str(&m->transcript), "-- TLS established: TLSv1.") != NULL);
			CHECK(strstr(buf_str(&m->transcript), "not trusted") != NULL); /* self-signed, noted */
			dump_on_failure(m);
		}
		batch_free(&b);
	}
	transport_close(t);
	char path[512];
	snprintf(path, sizeof(path), "%s/4.json", srv.dir);
	struct buf js = BUF_INIT;
	CHECK(file_read(path, 65536, &js, &err) == 0);
	CHECK(strstr(buf_str(&js), "\"tls\": true") != NULL);
	buf_free(&js);
	server_stop(&srv);
	rm_rf(certdir);
}

TEST(relay_starttls_require_without_server_tls_sends_nothing)
{
	struct server srv;
	CHECK(server_start(&srv, NULL) == 0);
	struct selo_config cfg;
	relay_config(&cfg, srv.port);
	cfg.starttls = STARTTLS_REQUIRE;
	struct batch b;
	batch_make(&b, 2);
	CHECK(send_batch(&cfg, &b) == 0);
	for (size_t i = 0; i < b.n; i++) {
		CHECK(b.m[i].outcome == TRANSPORT_TEMPFAIL);
		CHECK(b.m[i].code == 0);
		CHECK(strstr(b.m[i].error, "STARTTLS") != NULL);
		CHECK(strstr(buf_str(&b.m[i].transcript), "MAIL FROM") == NULL);
		CHECK_STR(b.m[i].tls, "");
		dump_on_failure(&b.m[i]);
	}
	char path[512];
	snprintf(path, sizeof(path), "%s/1.eml", srv.dir);
	CHECK(!file_exists(path));
	batch_free(&b);
	server_stop(&srv);
}

TEST(relay_tls_verify_uses_our_ca_file)
{
	char certdir[256], cert[512], key[512];
	make_tmpdir(certdir, sizeof(certdir));
	CHECK(make_cert(certdir, cert, key, sizeof(cert)) == 0);
	struct server srv;
	const char *args[] = {"--tls", cert, key, NULL};
	CHECK(server_start(&srv, args) == 0);
	struct selo_config cfg;
	relay_config(&cfg, srv.port);
	cfg.starttls = STARTTLS_TRY;
	cfg.smtp_tls_verify = 1;

	/* The system CAs do not know our self-signed certificate. */
	struct batch b;
	batch_make(&b, 1);
	CHECK(send_batch(&cfg, &b) == 0);
	CHECK(b.m[0].outcome == TRANSPORT_TEMPFAIL);
	CHECK(strstr(b.m[0].error, "not trusted") != NULL);
	dump_on_failure(&b.m[0]);
	batch_free(&b);

	/* With it as smtp.cafile the same server is trusted. */
	snprintf(cfg.smtp_cafile, sizeof(cfg.smtp_cafile), "%s", cert);
	batch_make(&b, 1);
	CHECK(send_batch(&cfg, &b) == 0);
	CHECK(b.m[0].outcome == TRANSPORT_ACCEPTED);
	CHECK(b.m[0].tls[0] != '\0');
	CHECK(strstr(buf_str(&b.m[0].transcript), "not trusted") == NULL);
	dump_on_failure(&b.m[0]);
	batch_free(&b);

	/* starttls = no ignores the offer. */
	cfg.starttls = STARTTLS_NO;
	batch_make(&b, 1);
	CHECK(send_batch(&cfg, &b) == 0);
	CHECK(b.m[0].outcome == TRANSPORT_ACCEPTED);
	CHECK_STR(b.m[0].tls, "");
	batch_free(&b);
	server_stop(&srv);
	rm_rf(certdir);
}

/* ---- relay: AUTH ---------------------------------------------------------- */

static void check_no_secret(const char *tr, const char *user, const char *pass)
{
	char plain[256], enc[512];
	size_t ul = strlen(user), pl = strlen(pass);
	plain[0] = '\0';
	memcpy(plain + 1, user, ul);
	plain[1 + ul] = '\0';
	memcpy(plain + 2 + ul, pass, pl);
	b64(plain, ul + pl + 2, enc);
	CHECK(strstr(tr, enc) == NULL);
	b64(pass, pl, enc);
	CHECK(strstr(tr, enc) == NULL);
	b64(user, ul, enc);
	CHECK(strstr(tr, enc) == NULL);
	CHECK(strstr(tr, pass) == NULL);
}

static void auth_case(const char *mech, const char *expect_mech)
{
	const char *user = "selo-user", *pass = "s3cret-Pass";
	struct server srv;
	const char *args[] = {"--auth", "selo-user:s3cret-Pass", mech ? "--auth-mech" : NULL, mech, NULL};
	CHECK(server_start(&srv, args) == 0);
	struct selo_config cfg;
	relay_config(&cfg, srv.port);
	snprintf(cfg.smtp_auth_user, sizeof(cfg.smtp_auth_user), "%s", user);
	snprintf(cfg.smtp_auth_password, sizeof(cfg.smtp_auth_password), "%s", pass);
	struct batch b;
	batch_make(&b, 2);
	CHECK(send_batch(&cfg, &b) == 0);
	for (size_t i = 0; i < b.n; i++) {
		const char *tr = buf_str(&b.m[i].transcript);
		char want[64];
		snprintf(want, sizeof(want), "C: AUTH %s [redacted]", expect_mech);
		CHECK(b.m[i].outcome == TRANSPORT_ACCEPTED);
		CHECK(strstr(tr, want) != NULL);
		CHECK(strstr(tr, "S: 235 ") != NULL);
		CHECK(strstr(tr, "MAIL FROM:") != NULL);
		check_no_secret(tr, user, pass);
		dump_on_failure(&b.m[i]);
	}
	char path[512];
	snprintf(path, sizeof(path), "%s/1.json", srv.dir);
	struct buf js = BUF_INIT;
	struct selo_err err;
	CHECK(file_read(path, 65536, &js, &err) == 0);
	CHECK(strstr(buf_str(&js), "\"auth\": \"selo-user\"") != NULL);
	buf_free(&js);
	batch_free(&b);
	server_stop(&srv);
}

TEST(relay_auth_login_is_redacted)
{
	auth_case(NULL, "LOGIN"); /* aiosmtpd offers LOGIN first */
}

TEST(relay_auth_plain_is_redacted)
{
	auth_case("PLAIN", "PLAIN");
}

TEST(relay_auth_wrong_password_is_tempfail)
{
	struct server srv;
	const char *args[] = {"--auth", "selo-user:right", NULL};
	CHECK(server_start(&srv, args) == 0);
	struct selo_config cfg;
	relay_config(&cfg, srv.port);
	snprintf(cfg.smtp_auth_user, sizeof(cfg.smtp_auth_user), "selo-user");
	snprintf(cfg.smtp_auth_password, sizeof(cfg.smtp_auth_password), "wrong-pw");
	struct batch b;
	batch_make(&b, 1);
	CHECK(send_batch(&cfg, &b) == 0);
	CHECK(b.m[0].outcome == TRANSPORT_TEMPFAIL);
	CHECK(strstr(b.m[0].error, "AUTH") != NULL);
	check_no_secret(buf_str(&b.m[0].transcript), "selo-user", "wrong-pw");
	dump_on_failure(&b.m[0]);
	batch_free(&b);

	/* No credentials at all: the relay's 530 is our configuration, not a bounce. */
	cfg.smtp_auth_user[0] = '\0';
	batch_make(&b, 1);
	CHECK(send_batch(&cfg, &b) == 0);
	CHECK(b.m[0].outcome == TRANSPORT_TEMPFAIL);
	CHECK(b.m[0].code == 530);
	CHECK(strstr(b.m[0].error, "requires AUTH") != NULL);
	dump_on_failure(&b.m[0]);
	batch_free(&b);
	server_stop(&srv);
}

/* ---- relay: several instances in several threads -------------------------- */

struct thread_job {
	struct selo_config cfg;
	int ok;
};

static void *thread_send(void *arg)
{
	struct thread_job *j = arg;
	struct transport *t;
	struct selo_err err;
	j->ok = 0;
	if (transport_open(&j->cfg, &t, &err) != 0)
		return NULL;
	int good = 1;
	for (int round = 0; round < 2; round++) {
		struct batch b;
		batch_make(&b, 2);
		good &= transport_send(t, b.m, b.n) == 0;
		for (size_t i = 0; i < b.n; i++)
			good &= b.m[i].outcome == TRANSPORT_ACCEPTED && b.m[i].tls[0] != '\0';
		batch_free(&b);
	}
	transport_close(t);
	j->ok = good;
	return NULL;
}

TEST(relay_instances_in_parallel_threads)
{
	char certdir[256], cert[512], key[512];
	make_tmpdir(certdir, sizeof(certdir));
	CHECK(make_cert(certdir, cert, key, sizeof(cert)) == 0);
	struct server srv;
	const char *args[] = {"--tls", cert, key, "--pipelining", NULL};
	CHECK(server_start(&srv, args) == 0);
	struct thread_job jobs[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		relay_config(&jobs[i].cfg, srv.port);
		jobs[i].cfg.starttls = STARTTLS_TRY;
		CHECK(pthread_create(&th[i], NULL, thread_send, &jobs[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK(jobs[i].ok);
	}
	char path[512];
	snprintf(path, sizeof(path), "%s/16.eml", srv.dir);
	CHECK(file_exists(path));
	server_stop(&srv);
	rm_rf(certdir);
}
