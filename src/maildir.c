/* maildir.c - delivery into a Maildir (qmail's maildir(5), as Dovecot reads it).
 *
 * The message is written to tmp/<unique>, fsync'd, hard-linked into new/<unique>,S=<size>
 * and new/ is fsync'd: a reader never sees a partial message, and once we report success a
 * crash cannot lose it. S= is the stored size (after CRLF -> LF), which Dovecot trusts for
 * quota, so it is only known after writing, hence the final name is chosen at link time. */
#include "maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "util.h"

#define MAILDIR_BUF 65536

/* Only a path that can never work fails permanently. A file or a symlink loop where a
 * directory should be is an administrator's mistake that can be mended while the message
 * waits, as can ENOSPC, EDQUOT, EIO, EACCES after a chmod mistake, EROFS, EMFILE...: those are
 * retried (Postfix defers these too, 4.2.0 / 4.3.0). */
static enum maildir_result classify(int e)
{
    switch (e) {
    case ENAMETOOLONG:
    case EINVAL:
        return MAILDIR_PERMFAIL;
    default:
        return MAILDIR_TEMPFAIL;
    }
}

static enum maildir_result fail(int e, char *err, size_t errlen, const char *what,
                                const char *path)
{
    if (err && errlen > 0)
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
    return classify(e);
}

/* Make sure dir/tmp, dir/new and dir/cur exist (three stats when they do). */
static int ensure_dirs(const char *dir, char *failed, size_t cap)
{
    static const char *const subs[] = {"tmp", "new", "cur"};
    for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
        int n = snprintf(failed, cap, "%s/%s", dir, subs[i]);
        if (n < 0 || (size_t)n >= cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        struct stat st;
        if (stat(failed, &st) == 0 && S_ISDIR(st.st_mode))
            continue;
        if (mkdir_p(failed, 0700) < 0)
            return -1;
    }
    return 0;
}

/* maildir(5): '/' and ':' in the host part are written as \057 and \072; ',' too, as it
 * separates the S= field. */
static void safe_host(const char *host, char *out, size_t cap)
{
    size_t n = 0;
    if (!host || !*host)
        host = "localhost";
    for (; *host && n + 5 < cap; host++) {
        unsigned char c = (unsigned char)*host;
        if (c == '/' || c == ':' || c == ',' || c == '\\' || c < 0x21 || c > 0x7e) {
            n += (size_t)snprintf(out + n, cap - n, "\\%03o", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
}

/* CRLF -> LF conversion with a buffered writer. A CR at the end of one input piece is held
 * back until we see whether an LF follows. */
struct out {
    int fd;
    bool cr;            /* a CR is pending */
    size_t used;
    unsigned long long size;
    char buf[MAILDIR_BUF];
};

static int out_flush(struct out *o)
{
    if (o->used > 0 && write_all(o->fd, o->buf, o->used) < 0)
        return -1;
    o->used = 0;
    return 0;
}

static int out_byte(struct out *o, char c)
{
    if (o->used == sizeof o->buf && out_flush(o) < 0)
        return -1;
    o->buf[o->used++] = c;
    o->size++;
    return 0;
}

static int out_convert(struct out *o, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (o->cr) {
            o->cr = false;
            if (c == '\n') {
                if (out_byte(o, '\n') < 0)
                    return -1;
                continue;
            }
            if (out_byte(o, '\r') < 0) /* a bare CR is kept as it is */
                return -1;
        }
        if (c == '\r')
            o->cr = true;
        else if (out_byte(o, c) < 0)
            return -1;
    }
    return 0;
}

static int out_finish(struct out *o)
{
    if (o->cr) {
        o->cr = false;
        if (out_byte(o, '\r') < 0)
            return -1;
    }
    return out_flush(o);
}

/* Copy header + content[off..EOF] into the open tmp file. Sets *reading when the error is
 * on the queue file rather than the Maildir. */
static int copy_message(struct out *o, const char *header, int fd, off_t off, char *in,
                        bool *reading)
{
    *reading = false;
    if (header && out_convert(o, header, strlen(header)) < 0)
        return -1;
    for (;;) {
        ssize_t r = pread(fd, in, MAILDIR_BUF, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *reading = true;
            return -1;
        }
        if (r == 0)
            break;
        off += r;
        if (out_convert(o, in, (size_t)r) < 0)
            return -1;
    }
    return out_finish(o);
}

/* link() into new/, or a no-replace rename where the file system has no hard links. */
static int publish(const char *from, const char *to, bool *linked)
{
    *linked = true;
    if (link(from, to) == 0)
        return 0;
    if (errno != EPERM && errno != ENOSYS && errno != ENOTSUP && errno != EXDEV)
        return -1;
    *linked = false;
    return renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
}

int maildir_copy_lf(int out_fd, const char *header, int fd, off_t off,
                    unsigned long long *size, bool *reading)
{
    *reading = false;
    struct out *o = malloc(sizeof *o);
    char *in = malloc(MAILDIR_BUF);
    if (!o || !in) {
        free(o);
        free(in);
        errno = ENOMEM;
        return -1;
    }
    o->fd = out_fd;
    o->cr = false;
    o->used = 0;
    o->size = 0;
    int rc = copy_message(o, header, fd, off, in, reading);
    int e = errno;
    *size = o->size;
    free(in);
    free(o);
    errno = e;
    return rc;
}

enum maildir_result maildir_deliver(const char *dir, const char *hostname, const char *header,
                                    int fd, off_t off, char *err, size_t errlen)
{
    static unsigned counter;
    char tmp_path[PATH_MAX], new_path[PATH_MAX], new_dir[PATH_MAX], host[256], base[512];
    if (err && errlen > 0)
        err[0] = '\0';
    if (!dir || !*dir)
        return fail(EINVAL, err, errlen, "maildir", "(empty path)");
    if (ensure_dirs(dir, tmp_path, sizeof tmp_path) < 0)
        return fail(errno, err, errlen, "cannot create", tmp_path);
    safe_host(hostname, host, sizeof host);

    int out_fd = -1;
    for (int attempt = 0; out_fd < 0; attempt++) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        snprintf(base, sizeof base, "%lld.M%ldP%ldQ%u.%s", (long long)tv.tv_sec,
                 (long)tv.tv_usec, self_pid(), ++counter, host);
        int n = snprintf(tmp_path, sizeof tmp_path, "%s/tmp/%s", dir, base);
        if (n < 0 || (size_t)n >= sizeof tmp_path)
            return fail(ENAMETOOLONG, err, errlen, "maildir path too long:", dir);
        out_fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (out_fd < 0 && (errno != EEXIST || attempt >= 10))
            return fail(errno, err, errlen, "cannot create", tmp_path);
    }

    bool reading;
    unsigned long long size;
    int rc = maildir_copy_lf(out_fd, header, fd, off, &size, &reading);
    if (rc < 0) {
        int e = errno;
        close(out_fd);
        unlink(tmp_path);
        if (reading) { /* the queue file is unreadable: retry later, whatever the errno */
            (void)fail(e, err, errlen, "cannot read queue file for", dir);
            return MAILDIR_TEMPFAIL;
        }
        return fail(e, err, errlen, "cannot write", tmp_path);
    }
    if (fsync(out_fd) < 0) {
        int e = errno;
        close(out_fd);
        unlink(tmp_path);
        return fail(e, err, errlen, "cannot fsync", tmp_path);
    }
    if (close(out_fd) < 0 && errno != EINTR) {
        int e = errno;
        unlink(tmp_path);
        return fail(e, err, errlen, "cannot close", tmp_path);
    }

    int n = snprintf(new_dir, sizeof new_dir, "%s/new", dir);
    int m = snprintf(new_path, sizeof new_path, "%s/%s,S=%llu", new_dir, base, size);
    if (n < 0 || (size_t)n >= sizeof new_dir || m < 0 || (size_t)m >= sizeof new_path) {
        unlink(tmp_path);
        return fail(ENAMETOOLONG, err, errlen, "maildir path too long:", dir);
    }
    bool linked;
    if (publish(tmp_path, new_path, &linked) < 0) {
        int e = errno;
        unlink(tmp_path);
        /* EEXIST would mean our unique name is not unique: a transient oddity. */
        enum maildir_result r = fail(e, err, errlen, "cannot link into", new_dir);
        return e == EEXIST ? MAILDIR_TEMPFAIL : r;
    }
    if (fsync_dir(new_dir) < 0) {
        /* Not durable, so not delivered: take it back rather than report a success that a
         * crash could undo, or leave a copy that the retry would duplicate. */
        int e = errno;
        unlink(new_path);
        if (linked)
            unlink(tmp_path);
        (void)fail(e, err, errlen, "cannot fsync", new_dir);
        return MAILDIR_TEMPFAIL;
    }
    if (linked)
        unlink(tmp_path); /* failure leaves a stray tmp/ file; readers expire those */
    return MAILDIR_OK;
}
