/* buf.h: a growable byte buffer, always NUL-terminated so text can be used as
 * a C string, and the x* allocators that all of Selo uses instead of malloc,
 * calloc, realloc, strdup and strndup.
 *
 * Memory policy: allocation failure prints "selo: out of memory" and aborts,
 * everywhere. There is no sane recovery in a mail server short of memory, a
 * half-failed allocation in evidence code is worse than a clean abort that
 * systemd restarts, and checking every allocation hides real errors. Nothing
 * accepted is lost: acceptance is a committed transaction. So callers never
 * check an x* result for NULL. Memory handed out by libraries (OpenSSL,
 * jansson, sqlite) keeps its own allocator and free function. */
#ifndef SELO_BUF_H
#define SELO_BUF_H
#include <stddef.h>
#include <stdarg.h>

struct buf {
	char *data; /* NUL-terminated; NULL until the first append */
	size_t len;
	size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void buf_reset(struct buf *b);             /* len = 0, keeps memory */
void buf_free(struct buf *b);              /* frees, back to BUF_INIT */
char *buf_steal(struct buf *b, size_t *len); /* caller owns the data; b is reset */
/* Returns b->data, or "" when nothing was appended yet. */
const char *buf_str(const struct buf *b);

/* malloc, calloc and realloc that abort when memory runs out, as the buffer
 * does; a zero size still gives a pointer to free. xreallocarray also aborts
 * when n * size overflows (xcalloc does through calloc). */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
void *xreallocarray(void *p, size_t n, size_t size);
/* strdup, and strndup (at most n bytes, stopping at a NUL), that abort when
 * memory runs out. */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* One byte; inline because encoders call it once per byte of a message. */
static inline void buf_putc(struct buf *b, char c)
{
	if (b->len + 2 > b->cap)
		buf_reserve(b, 1);
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
}

#endif
