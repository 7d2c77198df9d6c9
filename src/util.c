/* util.c - checked allocation, bounded strings, and the careful file operations (write_all,
 * fsync_dir, mkdir_p) that the queue and Maildir code rely on for durability. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static void out_of_memory(size_t n)
{
    log_err("out of memory allocating %zu bytes; exiting", n);
    exit(71); /* EX_OSERR: the supervisor restarts the process */
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        out_of_memory(n);
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        out_of_memory(count * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        out_of_memory(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

bool str_copy(char *dst, size_t cap, const char *src)
{
    size_t len = strlen(src);
    if (len >= cap) {
        memcpy(dst, src, cap - 1);
        dst[cap - 1] = '\0';
        return false;
    }
    memcpy(dst, src, len + 1);
    return true;
}

static int ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

bool str_ieq(const char *a, const char *b)
{
    while (*a && ascii_lower((unsigned char)*a) == ascii_lower((unsigned char)*b)) {
        a++;
        b++;
    }
    return *a == '\0' && *b == '\0';
}

bool str_nieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
            return false;
        if (a[i] == '\0')
            return true;
    }
    return true;
}

void str_lower(char *s)
{
    for (; *s; s++)
        *s = (char)ascii_lower((unsigned char)*s);
}

bool errorf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (errlen > 0)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return false;
}

int verrorf_at(char *err, size_t errlen, const char *file, size_t line, const char *fmt,
               va_list ap)
{
    if (errlen == 0)
        return -1;
    int n = snprintf(err, errlen, "%s:%zu: ", file, line);
    if (n >= 0 && (size_t)n < errlen)
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    return -1;
}

int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fsync_dir(const char *dirpath)
{
    int fd = open(dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    if (close(fd) < 0 && rc == 0)
        return -1;
    errno = saved;
    return rc;
}

int mkdir_p(const char *path, unsigned mode)
{
    char buf[4096];
    if (!str_copy(buf, sizeof buf, path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -1;
            struct stat st;
            if (stat(buf, &st) < 0)
                return -1;
            if (!S_ISDIR(st.st_mode)) {
                errno = ENOTDIR;
                return -1;
            }
            *p = saved;
            if (saved == '\0')
                return 0;
        }
    }
}

char *read_text_file(const char *path, size_t max, size_t *lenp, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        errorf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || (unsigned long long)st.st_size > max) {
        errorf(err, errlen, "%s: not a regular file of at most %zu bytes", path, max);
        close(fd);
        return NULL;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) { /* the file grew while we read it */
            if (cap > max) {
                errorf(err, errlen, "%s: larger than %zu bytes", path, max);
                goto fail;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            errorf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *lenp = len;
    return buf;
fail:
    close(fd);
    free(buf);
    return NULL;
}

long long wall_now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
        return (long long)ts.tv_sec;
    return (long long)time(NULL);
}

static pid_t cached_pid; /* 0: ask the kernel each time (the fork handler was not registered) */
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void take_pid(void)
{
    cached_pid = getpid();
}

static void pid_setup(void)
{
    if (pthread_atfork(NULL, NULL, take_pid) == 0)
        take_pid();
}

long self_pid(void)
{
    (void)pthread_once(&pid_once, pid_setup);
    return (long)(cached_pid ? cached_pid : getpid());
}
