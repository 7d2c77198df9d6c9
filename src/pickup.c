/* pickup.c - submitting maildrop files (see pickup.h; docs/queue.md, docs/security.md).
 *
 * A helper thread of the queue manager, so there is exactly one pickup (the queue manager is
 * single across reloads) and its blocking SMTP client never stalls the delivery loop. It
 * scans maildrop/ at start, then on inotify events and every PICKUP_RESCAN_S seconds. Each
 * file is submitted like `tern sendmail` submits a message (submit.c: loopback SMTP to the
 * running server, so aliases, relay policy and the fsync before 250 are the usual ones), and
 * unlinked only after that 250. A kill between the 250 and the unlink submits the file again
 * at the next scan: the message is then queued twice (at-least-once, as reception is).
 *
 * The submitter is the file's owner uid, never something the file says. Like Postfix, the
 * envelope sender of the file (sendmail -f) is kept; the uid is recorded in a Received:
 * header, and when a user other than root, the mail user and trusted_users set a sender that
 * is not their own login address, an X-Authentication-Warning: header says so (sendmail's
 * convention). */
#include "pickup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loopthread.h"
#include "maildrop_dir.h"
#include "received.h"
#include "submit.h"
#include "util.h"

#define PICKUP_RESCAN_S 30          /* retry files the server deferred; inotify misses */
#define PICKUP_TIMEOUT_MS 60000     /* per SMTP read or write */
#define PICKUP_TMP_MAX_AGE (24 * 3600) /* a .tmp. file this old is an abandoned write */

struct pickup {
    const struct config *cfg;
    pthread_t thread;
    int stopfd;                     /* eventfd: pickup_free wakes the thread */
    int inotify_fd;                 /* -1: periodic scans only */
    int dirfd;
    atomic_bool stop;               /* set by pickup_free */
};

/* Move a file the pickup will never submit to maildrop/corrupt/, keeping it for the
 * administrator, and log why. */
static void set_aside(struct pickup *p, const char *name, const char *why)
{
    char dest[300];
    snprintf(dest, sizeof dest, MAILDROP_CORRUPT "/%s", name);
    if (renameat(p->dirfd, name, p->dirfd, dest) < 0) {
        log_err("pickup: %s: %s; cannot move it to %s/" MAILDROP_DIR "/%s: %s", name, why,
                p->cfg->spool_dir, dest, strerror(errno));
        return;
    }
    if (fsync(p->dirfd) < 0)
        log_warn("pickup: cannot sync %s/" MAILDROP_DIR ": %s", p->cfg->spool_dir,
                 strerror(errno));
    log_err("pickup: %s: %s; moved to %s/" MAILDROP_DIR "/%s", name, why, p->cfg->spool_dir,
            dest);
}

static bool drop_file(struct pickup *p, const char *name)
{
    if (unlinkat(p->dirfd, name, 0) < 0) {
        log_err("pickup: cannot remove %s/" MAILDROP_DIR "/%s after queueing it: %s",
                p->cfg->spool_dir, name, strerror(errno));
        return false;
    }
    if (fsync(p->dirfd) < 0)
        log_warn("pickup: cannot sync %s/" MAILDROP_DIR ": %s", p->cfg->spool_dir,
                 strerror(errno));
    return true;
}

/* A permanent refusal: tell the sender with a short notice from <> (a loopback submission
 * like any other). true if the notice was queued. */
static bool notify_sender(struct pickup *p, const struct maildrop_msg *m, const char *why)
{
    if (!m->sender[0])
        return false;
    const char *host = p->cfg->hostname ? p->cfg->hostname : "localhost";
    char date[64];
    rfc5322_date_now(date, sizeof date);
    size_t cap = m->len + 1024 + strlen(host) + strlen(m->sender) + sizeof date + strlen(why),
           n = 0;
    char *t = xmalloc(cap);
    n += (size_t)snprintf(t, cap,
                          "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
                          "To: <%s>\r\nSubject: Undelivered Mail Returned to Sender\r\n"
                          "Date: %s\r\nAuto-Submitted: auto-replied\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                          "Your message, left for later by sendmail while the mail server was "
                          "not running, was refused when the server picked it up:\r\n\r\n"
                          "    %s\r\n\r\nNothing was sent. The message follows.\r\n\r\n",
                          host, m->sender, date, why);
    memcpy(t + n, m->data, m->len);
    n += m->len;
    char *const rcpt[] = {m->sender};
    struct submit_req q = {.sender = "", .rcpts = rcpt, .nrcpts = 1, .data = t, .len = n,
                           .eightbit = m->eightbit, .timeout_ms = PICKUP_TIMEOUT_MS};
    char final[600], err[1024];
    bool refused;
    int rc = submit_message(p->cfg, &q, final, sizeof final, &refused, err, sizeof err);
    free(t);
    if (rc != 0)
        log_warn("pickup: the notice to <%s> was not queued: %s", m->sender, err);
    return rc == 0;
}

/* Read a whole regular file with one link, at most max octets. NULL with why set. */
static char *read_drop(struct pickup *p, const char *name, size_t max, struct stat *st,
                       size_t *len, const char **why, bool *gone)
{
    *gone = false;
    int fd = openat(p->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        *gone = errno == ENOENT;
        *why = errno == ELOOP ? "a symbolic link" : "cannot be opened";
        return NULL;
    }
    char *buf = NULL;
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        *why = "not a regular file";
    } else if (st->st_nlink != 1) {
        *why = "a file with several links"; /* a link to somebody else's file */
    } else if ((size_t)st->st_size > max) {
        *why = "larger than max_message_size";
    } else {
        size_t cap = (size_t)st->st_size + 1;
        buf = xmalloc(cap);
        *len = 0;
        for (;;) {
            ssize_t r = read(fd, buf + *len, cap - *len);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0 || (*len += (size_t)r) == cap) { /* grown meanwhile: refused */
                if (r != 0) {
                    *why = r < 0 ? "cannot be read" : "larger than its size";
                    free(buf);
                    buf = NULL;
                }
                break;
            }
        }
    }
    close(fd);
    return buf;
}

/* Submit one file. false when it must be tried again later (the server deferred it). */
static bool pick(struct pickup *p, const char *name)
{
    const struct config *cfg = p->cfg;
    size_t max = (cfg->max_message_size ? cfg->max_message_size : (size_t)64 << 20) + (1 << 20);
    struct stat st;
    size_t len = 0;
    const char *why = NULL;
    bool gone;
    char *buf = read_drop(p, name, max, &st, &len, &why, &gone);
    if (!buf) {
        if (!gone)
            set_aside(p, name, why);
        return true;
    }
    struct maildrop_msg m;
    char err[1024];
    if (maildrop_parse(buf, len, &m, err, sizeof err) < 0) {
        char w[1100];
        snprintf(w, sizeof w, "malformed (%s)", err);
        set_aside(p, name, w);
        free(buf);
        return true;
    }
    /* Who submitted it: the owner, which the sticky directory lets nobody else choose. */
    struct passwd pw, *pwp = NULL;
    char pwbuf[4096];
    if (getpwuid_r(st.st_uid, &pw, pwbuf, sizeof pwbuf, &pwp) != 0 || !pwp) {
        char w[100];
        snprintf(w, sizeof w, "owner uid %u is not a known user", (unsigned)st.st_uid);
        set_aside(p, name, w);
        maildrop_msg_free(&m);
        free(buf);
        return true;
    }
    const char *host = cfg->hostname ? cfg->hostname : "localhost";
    const char *dom = cfg->nlocal_domains > 0 ? cfg->local_domains[0] : host;
    char own[600], date[64];
    snprintf(own, sizeof own, "%s@%s", pw.pw_name, dom);
    rfc5322_date_now(date, sizeof date);
    bool trusted = st.st_uid == 0 || st.st_uid == geteuid();
    for (size_t i = 0; i < cfg->ntrusted_users && !trusted; i++)
        trusted = strcmp(cfg->trusted_users[i], pw.pw_name) == 0;
    size_t cap = m.len + 256 + 2 * strlen(host) + strlen(pw.pw_name) + strlen(m.sender) +
                 sizeof date, n = 0;
    char *data = xmalloc(cap);
    /* Trace fields first (RFC 5322 3.6.7), like Postfix's "from userid N". */
    n += (size_t)snprintf(data, cap, "Received: by %s (tern pickup, from userid %u);\r\n\t%s\r\n",
                          host, (unsigned)st.st_uid, date);
    if (!trusted && !str_ieq(m.sender, own))
        n += (size_t)snprintf(data + n, cap - n,
                              "X-Authentication-Warning: %s: %s set sender to <%s> using -f\r\n",
                              host, pw.pw_name, m.sender);
    memcpy(data + n, m.data, m.len);
    n += m.len;
    struct submit_req q = {.sender = m.sender, .rcpts = m.rcpts, .nrcpts = m.nrcpts,
                           .data = data, .len = n, .eightbit = m.eightbit, .notify = m.notify,
                           .ret = m.ret, .envid = m.envid, .timeout_ms = PICKUP_TIMEOUT_MS};
    char final[600];
    bool refused;
    int rc = submit_message(cfg, &q, final, sizeof final, &refused, err, sizeof err);
    bool done = true;
    if (rc == 0) {
        log_info("pickup: %s uid=%u from=<%s> nrcpt=%zu: %s", name, (unsigned)st.st_uid,
                 m.sender, m.nrcpts, final);
        drop_file(p, name);
    } else if (rc == EX_TEMPFAIL) {
        log_warn("pickup: %s uid=%u from=<%s>: %s; trying again later", name,
                 (unsigned)st.st_uid, m.sender, err);
        done = false;
    } else {
        log_warn("pickup: %s uid=%u from=<%s> refused: %s", name, (unsigned)st.st_uid,
                 m.sender, err);
        if (notify_sender(p, &m, err)) {
            log_info("pickup: %s: the sender <%s> was told", name, m.sender);
            drop_file(p, name);
        } else {
            set_aside(p, name, "refused, and the sender could not be told");
        }
    }
    free(data);
    maildrop_msg_free(&m);
    free(buf);
    return done;
}

struct scan_ctx {
    struct pickup *p;
    bool all_done;
};

static void scan_one(const char *name, void *arg)
{
    struct scan_ctx *c = arg;
    if (c->p->stop || !c->all_done)
        return; /* the server deferred one: the rest waits for the next scan too */
    c->all_done = pick(c->p, name);
}

/* Abandoned writes: sendmail killed between creating and renaming its file. */
static void clean_tmp(struct pickup *p)
{
    int fd = dup(p->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (strncmp(de->d_name, MAILDROP_TMP_PREFIX, strlen(MAILDROP_TMP_PREFIX)) == 0 &&
            fstatat(p->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            st.st_mtime + PICKUP_TMP_MAX_AGE < now && unlinkat(p->dirfd, de->d_name, 0) == 0)
            log_info("pickup: removed the abandoned %s/" MAILDROP_DIR "/%s", p->cfg->spool_dir,
                     de->d_name);
    }
    closedir(d);
}

static void *pickup_thread(void *arg)
{
    struct pickup *p = arg;
    time_t last_clean = 0;
    while (!p->stop) {
        if (time(NULL) - last_clean > 3600) {
            clean_tmp(p);
            last_clean = time(NULL);
        }
        struct scan_ctx c = {p, true};
        if (maildrop_scan(p->cfg->spool_dir, scan_one, &c) < 0)
            log_err("pickup: cannot read %s/" MAILDROP_DIR ": %s", p->cfg->spool_dir,
                    strerror(errno));
        struct pollfd pf[2] = {{.fd = p->stopfd, .events = POLLIN},
                               {.fd = p->inotify_fd, .events = POLLIN}};
        int r = poll(pf, p->inotify_fd >= 0 ? 2 : 1, PICKUP_RESCAN_S * 1000);
        if (r > 0 && (pf[1].revents & POLLIN)) {
            char ev[4096];
            while (read(p->inotify_fd, ev, sizeof ev) > 0)
                ; /* which file does not matter: the scan takes them all */
        }
    }
    return NULL;
}

struct pickup *pickup_new(const struct config *cfg)
{
    if (maildrop_init(cfg->spool_dir) < 0)
        return NULL;
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s/" MAILDROP_DIR, cfg->spool_dir) >= (int)sizeof dir) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    struct pickup *p = xcalloc(1, sizeof *p);
    int e;
    p->cfg = cfg;
    atomic_init(&p->stop, false);
    p->inotify_fd = -1;
    p->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    p->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->dirfd < 0 || p->stopfd < 0)
        goto fail;
    /* A finished file arrives by rename (IN_MOVED_TO). */
    p->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (p->inotify_fd >= 0 && inotify_add_watch(p->inotify_fd, dir, IN_MOVED_TO) < 0) {
        log_warn("pickup: no inotify on %s (%s); scanning every %d s", dir, strerror(errno),
                 PICKUP_RESCAN_S);
        close(p->inotify_fd);
        p->inotify_fd = -1;
    }
    /* Signals are the queue manager's event loop's business, not this thread's. */
    e = loopthread_start(&p->thread, pickup_thread, p);
    if (e != 0) {
        errno = e;
        goto fail;
    }
    return p;
fail:
    e = errno;
    if (p->dirfd >= 0)
        close(p->dirfd);
    if (p->stopfd >= 0)
        close(p->stopfd);
    if (p->inotify_fd >= 0)
        close(p->inotify_fd);
    free(p);
    errno = e;
    return NULL;
}

void pickup_free(struct pickup *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, true);
    uint64_t one = 1;
    if (write(p->stopfd, &one, sizeof one) < 0)
        log_warn("pickup: cannot wake the thread: %s", strerror(errno));
    pthread_join(p->thread, NULL);
    close(p->dirfd);
    close(p->stopfd);
    if (p->inotify_fd >= 0)
        close(p->inotify_fd);
    free(p);
}
