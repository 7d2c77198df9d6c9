/* notify.c - queue DSNs (RFC 3464, built by bounce.c) from "<>" to the original sender
 * through the queue writer, and the delay-warning marker. RFC 3461 4.3: RET=FULL returns
 * the whole message, otherwise (RET=HDRS or nothing) the header section; delay and success
 * reports return the header section only. RFC 5321 6.1: a report is never sent about a
 * message from "<>" (the caller checks), so reports cannot loop.
 *
 * The one exception is the double bounce (Postfix's name): a message from "<>" that failed is
 * reported to the postmaster, not to its (null) sender. That notice is marked in its
 * envelope (protocol "double-bounce", which no SMTP client can set), and the caller never
 * reports a marked message, so a notice that fails in turn is only logged. */
#include "notify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "queue.h"
#include "util.h"

/* Read up to max octets of the content into a malloc'd buffer. */
static char *read_content(int fd, off_t off, off_t size, size_t max, size_t *len)
{
    size_t want = size < 0 ? 0 : (size_t)size < max ? (size_t)size : max;
    char *buf = xmalloc(want + 1);
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(fd, buf + got, want - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            return NULL;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

static bool non_ascii(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

/* Build a report about env and queue it from "<>" to one recipient: the sender, or the
 * postmaster for a double bounce (then the failed bounce comes back whole, up to the
 * limit: it is small, and the postmaster needs all of it). */
static int queue_report(const struct config *cfg, const struct envelope *env, int fd,
                        off_t off, off_t size, enum dsn_action kind, const struct dsn_rcpt *r,
                        size_t n, time_t now, time_t retry_until, const char *to,
                        bool double_bounce, char dsn_qid[QUEUE_ID_MAX])
{
    static unsigned counter;
    bool full = kind == DSN_ACTION_FAILED && (env->ret == RET_FULL || double_bounce) &&
                env->body != BODY_BINARYMIME && size <= (off_t)NOTIFY_FULL_MAX;
    size_t len = 0;
    char *content = read_content(fd, off, size, full ? NOTIFY_FULL_MAX : NOTIFY_HEADER_MAX, &len);
    if (!content)
        return -1;
    if (!full)
        len = dsn_header_len(content, len);
    char unique[32];
    snprintf(unique, sizeof unique, "%ld.%u", self_pid(), counter++);
    struct dsn_msg m = {
        .kind = kind,
        .reporting_mta = cfg->hostname,
        .qid = env->qid,
        .sender = to,
        .envid = env->envid,
        .arrival = env->arrival,
        .now = now,
        .retry_until = retry_until,
        .unique = unique,
        .content = content,
        .content_len = len,
        .full = full,
        .utf8 = env->smtputf8,
        .double_bounce = double_bounce,
    };
    size_t dlen;
    char *dsn = dsn_build(&m, r, n, &dlen);
    free(content);

    struct envelope de;
    envelope_init(&de);
    envelope_set(&de.sender, "");
    de.body = dsn_has_8bit(dsn, dlen) ? BODY_8BITMIME : BODY_UNSPEC;
    de.smtputf8 = env->smtputf8 && (non_ascii(to) || de.body == BODY_8BITMIME);
    de.ret = RET_UNSPEC;
    envelope_set(&de.envid, "");
    de.arrival = now;
    envelope_set(&de.client_addr, "");
    envelope_set(&de.client_helo, cfg->hostname);
    envelope_set(&de.protocol, double_bounce ? NOTIFY_DOUBLE_BOUNCE_PROTOCOL : "local");
    envelope_add_rcpt(&de, to, 0, "");
    int rc = -1;
    struct queue_writer *w = queue_writer_open(cfg->spool_dir, &de);
    if (w) {
        if (queue_writer_write(w, dsn, dlen) < 0) {
            int e = errno;
            queue_writer_abort(w);
            errno = e;
        } else if (queue_writer_commit(w) == 0) {
            rc = 0;
            str_copy(dsn_qid, QUEUE_ID_MAX, de.qid);
        }
    }
    int e = errno;
    free(dsn);
    envelope_free(&de);
    errno = e;
    return rc;
}

int notify_queue(const struct config *cfg, const struct envelope *env, int fd, off_t off,
                 off_t size, enum dsn_action kind, const struct dsn_rcpt *r, size_t n,
                 time_t now, time_t retry_until, char dsn_qid[QUEUE_ID_MAX])
{
    return queue_report(cfg, env, fd, off, size, kind, r, n, now, retry_until, env->sender,
                        false, dsn_qid);
}

int notify_queue_double_bounce(const struct config *cfg, const struct envelope *env, int fd,
                               off_t off, off_t size, const struct dsn_rcpt *r, size_t n,
                               time_t now, const char *to, char dsn_qid[QUEUE_ID_MAX])
{
    return queue_report(cfg, env, fd, off, size, DSN_ACTION_FAILED, r, n, now, 0, to, true,
                        dsn_qid);
}

bool notify_is_double_bounce(const struct envelope *env)
{
    return env->protocol && strcmp(env->protocol, NOTIFY_DOUBLE_BOUNCE_PROTOCOL) == 0;
}

const char *notify_double_bounce_rcpt(const struct config *cfg, char *buf, size_t cap)
{
    if (cfg->double_bounce_recipient)
        return cfg->double_bounce_recipient[0] ? cfg->double_bounce_recipient : NULL;
    if (cfg->nlocal_domains == 0)
        return NULL;
    int k = snprintf(buf, cap, "postmaster@%s", cfg->local_domains[0]);
    return k > 0 && (size_t)k < cap ? buf : NULL;
}

static bool marker_path(char *out, size_t cap, const char *spool_dir, const char *qid)
{
    int n = snprintf(out, cap, "%s/state/%s.delay", spool_dir, qid);
    return n > 0 && (size_t)n < cap;
}

bool notify_delay_sent(const char *spool_dir, const char *qid)
{
    char path[PATH_MAX];
    struct stat st;
    return marker_path(path, sizeof path, spool_dir, qid) && stat(path, &st) == 0;
}

void notify_mark_delay(const char *spool_dir, const char *qid)
{
    char path[PATH_MAX];
    if (!marker_path(path, sizeof path, spool_dir, qid))
        return;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        log_warn("cannot create %s: %s", path, strerror(errno));
        return;
    }
    /* A marker lost in a crash means one more warning, not lost mail: no fsync needed. */
    close(fd);
}

void notify_forget(const char *spool_dir, const char *qid)
{
    char path[PATH_MAX];
    if (marker_path(path, sizeof path, spool_dir, qid) && unlink(path) < 0 && errno != ENOENT)
        log_warn("cannot remove %s: %s", path, strerror(errno));
}

int notify_clean(const char *spool_dir)
{
    char dir[PATH_MAX], path[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s/state", spool_dir);
    if (n < 0 || (size_t)n >= sizeof dir)
        return -1;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *dot = strchr(de->d_name, '.');
        if (!dot || strcmp(dot, ".delay") != 0 || dot == de->d_name ||
            (size_t)(dot - de->d_name) >= QUEUE_ID_MAX)
            continue;
        char qid[QUEUE_ID_MAX];
        memcpy(qid, de->d_name, (size_t)(dot - de->d_name));
        qid[dot - de->d_name] = '\0';
        struct stat st;
        n = snprintf(path, sizeof path, "%s/queue/%s", spool_dir, qid);
        if (n < 0 || (size_t)n >= sizeof path || stat(path, &st) == 0 || errno != ENOENT)
            continue;
        n = snprintf(path, sizeof path, "%s/hold/%s", spool_dir, qid); /* tern queue hold */
        if (n < 0 || (size_t)n >= sizeof path || stat(path, &st) == 0 || errno != ENOENT)
            continue;
        notify_forget(spool_dir, qid);
        removed++;
    }
    closedir(d);
    return removed;
}
