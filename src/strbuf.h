/* strbuf.h - a growing NUL-terminated string, for the modules that compose text (bounces,
 * envelope files, MIME messages). Allocation failure exits through xrealloc, as elsewhere. */
#ifndef TERN_STRBUF_H
#define TERN_STRBUF_H

#include <stddef.h>

struct strbuf {
    char *p; /* NULL until the first byte; then always NUL-terminated */
    size_t len, cap;
};

/* Room for more bytes plus the NUL. */
void strbuf_reserve(struct strbuf *b, size_t more);
void strbuf_add(struct strbuf *b, const char *s, size_t n);
void strbuf_str(struct strbuf *b, const char *s);
void strbuf_fmt(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
