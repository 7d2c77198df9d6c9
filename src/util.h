/* util.h - small helpers shared by every module: checked allocation and bounded strings.
 *
 * Allocation failure policy: the x* functions log and exit(71) (EX_OSERR). In a worker that
 * means the supervisor restarts it; nothing acknowledged is lost because 250 is only sent
 * after the queue file is fsync'd. Code that can answer an error instead (a reply code)
 * uses plain malloc and checks it. */
#ifndef TERN_UTIL_H
#define TERN_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Copy src into dst (capacity cap, cap > 0), always NUL-terminated. Returns false if truncated. */
bool str_copy(char *dst, size_t cap, const char *src);
/* ASCII case-insensitive comparison helpers that do not depend on the locale. */
bool str_ieq(const char *a, const char *b);
bool str_nieq(const char *a, const char *b, size_t n);
/* Lower-case ASCII letters in place. */
void str_lower(char *s);

/* Format a reason into err (nothing if errlen is 0) and return false, so a parser can say
 * "return errorf(err, errlen, ...)" where it refuses its input. */
bool errorf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same for a line-oriented file parser: "file:line: reason" into err; returns -1. */
int verrorf_at(char *err, size_t errlen, const char *file, size_t line, const char *fmt,
               va_list ap) __attribute__((format(printf, 5, 0)));

/* Write all of buf to fd, retrying on EINTR and short writes. 0 on success, -1 with errno. */
int write_all(int fd, const void *buf, size_t len);
/* fsync the directory that holds path (or the directory path itself when is_dir). */
int fsync_dir(const char *dirpath);
/* mkdir -p with mode; 0 on success or if it exists as a directory. */
int mkdir_p(const char *path, unsigned mode);
/* Read a regular file of at most max bytes into a NUL-terminated malloc'd buffer (*len
 * excludes the NUL). NULL with "path: reason" in err on failure. */
char *read_text_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);

/* The current time in whole seconds, read from the precise clock. time() reads the kernel's
 * coarse clock, which lags a tick behind: a client's "+3 s" asked for just after a second
 * began was counted from the second before. Times a client sees or sets use this one. */
long long wall_now(void);

/* getpid() without the system call (glibc stopped caching it in 2.25, and the hot paths name
 * files and log lines with it): kept per process, taken afresh in every child of fork(). */
long self_pid(void);

#endif
