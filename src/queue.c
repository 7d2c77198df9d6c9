/* queue.c - the durable spool. Nothing is acknowledged before it is on disk: the 250 reply
 * to end of data (RFC 5321 4.1.1.4; 6.1 "MUST NOT lose the message") is sent only after
 * queue_writer_commit has fsync'd the file, renamed it into queue/ and fsync'd queue/.
 *
 *   tmp/<qid>.<pid>          a reception in progress by process <pid>
 *   tmp/<qid>.state.<pid>    a state file being rewritten by the queue manager <pid>
 *   queue/<qid>              committed: envelope text, then the message content
 *   state/<qid>              per-recipient state (an envelope_format), replaced atomically
 *   hold/<qid>               a queue file put on hold by hand (`tern queue hold`): the queue
 *                            manager does not look here; its state/<qid> stays where it is
 *
 * Every temporary name ends in ".<pid>" so the supervisor can remove a dead child's files.
 *
 * Where the kernel allows it, a reception has no name at all until it is durable: the file
 * is opened with O_TMPFILE in queue/ and linked there by its queue ID after its fsync
 * (linkat, which like the rename never replaces a name). That saves the entry in tmp/, its
 * removal and the cross-directory rename (which takes the file system's rename lock), and a
 * reception that is abandoned or killed leaves nothing behind. tmp/<qid>.<pid> is the
 * fallback where O_TMPFILE or /proc/self/fd is not available. */
#include "queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"
#include "syncmany.h"
#include "util.h"

#define QUEUE_BUF_SIZE 65536
#define QUEUE_ID_LEN 16
/* Queue IDs count seconds from 2020-01-01T00:00:00Z: six base-36 digits last until 2089. */
#define QUEUE_EPOCH 1577836800LL
/* An envelope larger than this is garbage, not a message (1000 recipients fit in ~2 MiB). */
#define ENVELOPE_MAX (32u * 1024 * 1024)

static const char b36[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/* Write v as exactly width base-36 digits (most significant first), modulo 36^width. */
static void put_b36(char *out, unsigned long long v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = b36[v % 36];
        v /= 36;
    }
}

void queue_new_id(char out[QUEUE_ID_MAX])
{
    /* Layout: 6 digits seconds since QUEUE_EPOCH, 4 microseconds, 5 pid, 1 counter. Fixed
     * width, so IDs sort by arrival time. The pid (Linux pid_max <= 2^22 < 36^5) keeps
     * concurrent processes apart; the counter and the monotonic bump below keep one process's
     * IDs apart. O_EXCL and a no-replace rename catch whatever is left (clock steps). */
    static unsigned counter;
    static long long last_sec, last_usec;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long sec = (long long)tv.tv_sec - QUEUE_EPOCH, usec = tv.tv_usec;
    if (sec < 0)
        sec = 0;
    if (sec < last_sec || (sec == last_sec && usec <= last_usec)) {
        sec = last_sec; /* never repeat (sec, usec) within a process, even if the clock steps */
        usec = last_usec + 1;
        if (usec >= 1000000) {
            sec++;
            usec = 0;
        }
    }
    last_sec = sec;
    last_usec = usec;
    put_b36(out, (unsigned long long)sec, 6);
    put_b36(out + 6, (unsigned long long)usec, 4);
    put_b36(out + 10, (unsigned long long)self_pid(), 5);
    put_b36(out + 15, counter++, 1);
    out[QUEUE_ID_LEN] = '\0';
}

bool queue_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= QUEUE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
            return false;
    return true;
}

/* snprintf into a PATH_MAX buffer; false (errno ENAMETOOLONG) if it does not fit. */
static bool path_fmt(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool path_fmt(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return false;
    }
    return true;
}

/* Close, keeping the first error: close() can report a delayed write error (NFS, quota). */
static int close_checked(int fd)
{
    return close(fd) < 0 && errno != EINTR ? -1 : 0;
}

int queue_init(const char *spool_dir)
{
    static const char *const subdirs[] = {"tmp", "queue", "state", "hold"};
    char path[PATH_MAX];
    for (size_t i = 0; i < ARRAY_LEN(subdirs); i++) {
        if (!path_fmt(path, sizeof path, "%s/%s", spool_dir, subdirs[i]) || mkdir_p(path, 0700) < 0)
            return -1;
    }
    return 0;
}

int queue_clean_tmp(const char *spool_dir, pid_t pid)
{
    char dirpath[PATH_MAX], path[PATH_MAX], suffix[32];
    if (!path_fmt(dirpath, sizeof dirpath, "%s/tmp", spool_dir))
        return -1;
    DIR *d = opendir(dirpath);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    int slen = snprintf(suffix, sizeof suffix, ".%ld", (long)pid);
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.')
            continue; /* ".", ".." and nothing we create */
        size_t n = strlen(name);
        if (pid > 0 && (n <= (size_t)slen || strcmp(name + n - (size_t)slen, suffix) != 0))
            continue;
        if (!path_fmt(path, sizeof path, "%s/%s", dirpath, name))
            continue;
        if (unlink(path) == 0) {
            removed++;
            log_info("removed unfinished queue file %s", path);
        } else if (errno != ENOENT) {
            log_warn("cannot remove %s: %s", path, strerror(errno));
        }
    }
    closedir(d);
    return removed;
}

int queue_clean_state(const char *spool_dir)
{
    char dirpath[PATH_MAX], path[PATH_MAX];
    if (!path_fmt(dirpath, sizeof dirpath, "%s/state", spool_dir))
        return -1;
    DIR *d = opendir(dirpath);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!queue_id_valid(de->d_name))
            continue;
        struct stat st;
        if (!path_fmt(path, sizeof path, "%s/queue/%s", spool_dir, de->d_name) ||
            stat(path, &st) == 0 || errno != ENOENT)
            continue;
        if (!path_fmt(path, sizeof path, "%s/hold/%s", spool_dir, de->d_name) ||
            stat(path, &st) == 0 || errno != ENOENT)
            continue; /* a held message keeps its state */
        if (!path_fmt(path, sizeof path, "%s/%s", dirpath, de->d_name))
            continue;
        if (unlink(path) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

/* ---- writing a message ------------------------------------------------------------------ */

struct queue_writer {
    int fd;
    int err;                  /* first write error (errno), sticky: commit then fails */
    size_t used;              /* bytes in buf */
    bool unnamed;             /* O_TMPFILE: no tmp_path, linked into queue/ at commit */
    char tmp_path[PATH_MAX];
    char queue_path[PATH_MAX];
    char queue_dir[PATH_MAX];
    char buf[QUEUE_BUF_SIZE];
};

/* Remove the temporary file and free w, preserving errno for the caller. */
static void writer_discard(struct queue_writer *w)
{
    int saved = errno;
    if (w->fd >= 0)
        close(w->fd);
    if (!w->unnamed && unlink(w->tmp_path) < 0 && errno != ENOENT)
        log_warn("cannot remove %s: %s", w->tmp_path, strerror(errno));
    free(w);
    errno = saved;
}

static int writer_flush(struct queue_writer *w)
{
    if (w->err) {
        errno = w->err;
        return -1;
    }
    if (w->used > 0 && write_all(w->fd, w->buf, w->used) < 0) {
        w->err = errno ? errno : EIO;
        return -1;
    }
    w->used = 0;
    return 0;
}

/* Give the unnamed file fd the name path (never replacing one). Without CAP_DAC_READ_SEARCH
 * AT_EMPTY_PATH is refused, and /proc/self/fd/N names the open file instead. */
static int link_unnamed(int fd, const char *path)
{
    if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0)
        return 0;
    if (errno != ENOENT && errno != EPERM)
        return -1;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
}

/* Can this process publish unnamed files in queue_dir? Tried once with a file of its own
 * (linked as tmp/.probe.<pid>, then removed): some file systems lack O_TMPFILE, and a
 * process without /proc cannot link one. 0 unknown, 1 yes, -1 no; threads may race to
 * probe, harmlessly. */
static atomic_int unnamed_ok;

void queue_allow_unnamed(bool allow)
{
    atomic_store(&unnamed_ok, allow ? 0 : -1); /* allowed: probed again at the next open */
}

static bool unnamed_usable(const char *spool_dir, const char *queue_dir)
{
    int ok = atomic_load(&unnamed_ok);
    if (ok)
        return ok > 0;
    char probe[PATH_MAX];
    int fd = open(queue_dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT)
        return false; /* no spool yet (the caller creates it): ask again next time */
    ok = -1;
    if (fd >= 0 && path_fmt(probe, sizeof probe, "%s/tmp/.probe.%ld", spool_dir, self_pid())) {
        (void)unlink(probe); /* left by a killed process with our pid */
        if (link_unnamed(fd, probe) == 0) {
            ok = 1;
            (void)unlink(probe);
        }
    }
    if (fd >= 0)
        close(fd);
    if (ok < 0)
        log_info("queue: receptions are named in tmp/ (no O_TMPFILE or /proc/self/fd here)");
    atomic_store(&unnamed_ok, ok);
    return ok > 0;
}

struct queue_writer *queue_writer_open(const char *spool_dir, struct envelope *env)
{
    struct queue_writer *w = malloc(sizeof *w);
    if (!w)
        return NULL;
    w->err = 0;
    w->used = 0;
    w->fd = -1;
    if (!path_fmt(w->queue_dir, sizeof w->queue_dir, "%s/queue", spool_dir)) {
        free(w);
        return NULL;
    }
    bool initialised = false;
    for (int attempt = 0; w->fd < 0; attempt++) {
        queue_new_id(env->qid);
        if (!path_fmt(w->tmp_path, sizeof w->tmp_path, "%s/tmp/%s.%ld", spool_dir, env->qid,
                      self_pid()) ||
            !path_fmt(w->queue_path, sizeof w->queue_path, "%s/%s", w->queue_dir, env->qid)) {
            free(w);
            return NULL;
        }
        /* An ID already committed (clock stepped back) must not be reused. */
        struct stat st;
        if (lstat(w->queue_path, &st) == 0 && attempt < 100)
            continue;
        w->unnamed = unnamed_usable(spool_dir, w->queue_dir);
        if (w->unnamed)
            w->fd = open(w->queue_dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
        else
            w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (w->fd >= 0)
            break;
        if (errno == EEXIST && attempt < 100)
            continue;
        if (errno == ENOENT && !initialised) {
            /* The spool was never set up (or was removed under us): create it once. */
            initialised = true;
            if (queue_init(spool_dir) == 0)
                continue;
        }
        int saved = errno;
        free(w);
        errno = saved;
        return NULL;
    }
    size_t len;
    char *text = envelope_format(env, &len);
    int rc = queue_writer_write(w, text, len);
    free(text);
    if (rc < 0) {
        writer_discard(w);
        return NULL;
    }
    return w;
}

int queue_writer_write(struct queue_writer *w, const void *buf, size_t len)
{
    if (w->err) {
        errno = w->err;
        return -1;
    }
    if (len > sizeof w->buf - w->used) {
        if (writer_flush(w) < 0)
            return -1;
        if (len >= sizeof w->buf) { /* large block: straight through, no copy */
            if (write_all(w->fd, buf, len) < 0) {
                w->err = errno ? errno : EIO;
                return -1;
            }
            return 0;
        }
    }
    memcpy(w->buf + w->used, buf, len);
    w->used += len;
    return 0;
}

/* rename() that refuses to replace an existing queue file: an ID collision must fail the
 * transaction, never overwrite a message somebody already got a 250 for. Falls back to
 * link()+unlink() where renameat2 is unsupported. */
static int rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return -1;
    if (link(from, to) < 0)
        return -1;
    if (unlink(from) < 0)
        log_warn("cannot remove %s: %s", from, strerror(errno)); /* a harmless extra link */
    return 0;
}

/* A round that needs a single sync (one new file and nothing to publish, or only the
 * directory of the previous round's renames) fsyncs it; any other round uses one syncfs,
 * which writes the files, their inodes (sixteen to a block) and the directory in one pass
 * with one cache flush, where an fsync each costs three requests per file. Measured on a
 * quiet machine (docs/performance.md), syncfs for every round of two or more syncs took 18 %
 * less CPU per message than parallel fsyncs for rounds of up to three, and lowered the
 * latency (median 4.4 -> 3.8 ms, p99 10-12 -> 7 ms); on the loaded machine the two were
 * within the noise. */
#define ROUND_FSYNC_MAX 1

/* The sync of a round (see queue_commit_round). A round of a single sync: that fsync. Any
 * other: one syncfs() of the spool's filesystem writes back and commits every file and
 * rename of the round at once. syncfs reports writeback errors of the filesystem (Linux
 * 5.8+); if it fails, or the writers are not all in one spool, each fresh file and each
 * directory of the previous round's renames is fsync'd (in parallel: sync_many) so an error
 * lands on the right message. */
static void round_sync(struct queue_writer **fresh, size_t nfresh, int *ferrs,
                       struct queue_writer **pub, size_t npub, int *perrs)
{
    const struct queue_writer *first = NULL;
    size_t live = 0;
    bool one_spool = true;
    for (size_t i = 0; i < nfresh; i++) {
        if (ferrs[i])
            continue;
        if (!first)
            first = fresh[i];
        one_spool = one_spool && strcmp(first->queue_dir, fresh[i]->queue_dir) == 0;
        live++;
    }
    for (size_t i = 0; i < npub && first; i++)
        one_spool = one_spool && strcmp(first->queue_dir, pub[i]->queue_dir) == 0;
    /* One job per live fresh file, one per distinct directory of pub. */
    struct sync_job *jobs = xcalloc(nfresh + npub + 1, sizeof *jobs);
    size_t *pub_job = xcalloc(npub + 1, sizeof *pub_job);
    size_t n = 0;
    for (size_t i = 0; i < nfresh; i++)
        if (!ferrs[i])
            jobs[n++] = (struct sync_job){.fd = fresh[i]->fd};
    size_t nfiles = n;
    for (size_t i = 0; i < npub; i++) {
        size_t j = nfiles;
        while (j < n && strcmp(jobs[j].dir, pub[i]->queue_dir) != 0)
            j++;
        if (j == n)
            jobs[n++] = (struct sync_job){.fd = -1, .dir = pub[i]->queue_dir};
        pub_job[i] = j;
    }
    if (!(live > 0 && n > ROUND_FSYNC_MAX && one_spool && syncfs(first->fd) == 0)) {
        sync_many(jobs, n);
        size_t j = 0;
        for (size_t i = 0; i < nfresh; i++)
            if (!ferrs[i])
                ferrs[i] = jobs[j++].err;
        for (size_t i = 0; i < npub; i++)
            perrs[i] = jobs[pub_job[i]].err;
    }
    free(pub_job);
    free(jobs);
}

void queue_commit_round(struct queue_writer **fresh, size_t nfresh, int *ferrs,
                        struct queue_writer **pub, size_t npub, int *perrs)
{
    for (size_t i = 0; i < nfresh; i++)
        ferrs[i] = writer_flush(fresh[i]) < 0 ? (errno ? errno : EIO) : 0;
    for (size_t i = 0; i < npub; i++)
        perrs[i] = 0;
    round_sync(fresh, nfresh, ferrs, pub, npub, perrs);
    for (size_t i = 0; i < npub; i++) {
        struct queue_writer *w = pub[i];
        if (perrs[i]) {
            /* The rename may not survive a crash, so we must not answer 250. Take the file
             * back (best effort; if the queue manager already delivered it, the client's
             * retry gives a duplicate, which is the lesser evil). */
            if (unlink(w->queue_path) < 0 && errno != ENOENT)
                log_warn("cannot remove %s: %s", w->queue_path, strerror(errno));
        }
        free(w);
        pub[i] = NULL;
    }
    /* Durable content first, then the name: a file appears in queue/ only complete. */
    for (size_t i = 0; i < nfresh; i++) {
        struct queue_writer *w = fresh[i];
        bool linked = false; /* before the close: the link needs the descriptor */
        if (w->unnamed && !ferrs[i]) {
            if (link_unnamed(w->fd, w->queue_path) < 0)
                ferrs[i] = errno ? errno : EIO;
            else
                linked = true;
        }
        int fd = w->fd;
        w->fd = -1;
        if (close_checked(fd) < 0 && !ferrs[i]) {
            ferrs[i] = errno ? errno : EIO;
            if (linked && unlink(w->queue_path) < 0) /* no 250 for it: take the name back */
                log_warn("cannot remove %s: %s", w->queue_path, strerror(errno));
        }
        if (!ferrs[i] && !w->unnamed && rename_noreplace(w->tmp_path, w->queue_path) < 0)
            ferrs[i] = errno ? errno : EIO;
        if (ferrs[i]) {
            errno = ferrs[i];
            writer_discard(w); /* removes the temporary file */
            fresh[i] = NULL;
        }
    }
}

int queue_writer_commit(struct queue_writer *w)
{
    int err, unused;
    queue_commit_round(&w, 1, &err, NULL, 0, &unused); /* fsync, rename */
    if (!err)
        queue_commit_round(NULL, 0, &unused, &w, 1, &err); /* fsync queue/ */
    errno = err;
    return err ? -1 : 0;
}

void queue_writer_abort(struct queue_writer *w)
{
    if (w)
        writer_discard(w);
}

/* ---- the queue manager's side ----------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *area_dir(enum queue_area area)
{
    return area == QUEUE_HOLD ? "hold" : "queue";
}

int queue_scan(const char *spool_dir, void (*fn)(const char *qid, void *arg), void *arg)
{
    return queue_scan_in(spool_dir, QUEUE_ACTIVE, fn, arg);
}

int queue_scan_in(const char *spool_dir, enum queue_area area,
                  void (*fn)(const char *qid, void *arg), void *arg)
{
    char dirpath[PATH_MAX];
    if (!path_fmt(dirpath, sizeof dirpath, "%s/%s", spool_dir, area_dir(area)))
        return -1;
    DIR *d = opendir(dirpath);
    if (!d)
        return -1;
    /* Collect first: fn may remove files, and sorted IDs mean oldest first. */
    char **ids = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (!queue_id_valid(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            ids = xrealloc(ids, cap * sizeof *ids);
        }
        ids[n++] = xstrdup(de->d_name);
        errno = 0;
    }
    int err = errno;
    closedir(d);
    if (n > 0)
        qsort(ids, n, sizeof *ids, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (!err)
            fn(ids[i], arg);
        free(ids[i]);
    }
    free(ids);
    if (err) {
        errno = err;
        return -1;
    }
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* Read the envelope at the head of fd: up to and including the first empty line. */
static int read_envelope(int fd, struct envelope *env, off_t *consumed)
{
    size_t cap = 8192, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap >= ENVELOPE_MAX)
                break;
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = pread(fd, buf + len, cap - len, (off_t)len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int saved = errno;
            free(buf);
            errno = saved;
            return -1;
        }
        if (r == 0)
            break;
        size_t from = len > 0 ? len - 1 : 0;
        len += (size_t)r;
        /* The envelope ends at the first "\n\n" (values are xtext: no newlines inside). */
        for (size_t i = from; i + 1 < len; i++)
            if (buf[i] == '\n' && buf[i + 1] == '\n') {
                size_t used = envelope_parse(env, buf, i + 2);
                free(buf);
                if (used != i + 2) {
                    errno = EBADMSG;
                    return -1;
                }
                *consumed = (off_t)used;
                return 0;
            }
    }
    free(buf);
    errno = EBADMSG;
    return -1;
}

/* Read a whole small file into a malloc'd buffer. */
static char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    size_t cap = 8192, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap >= ENVELOPE_MAX) {
                errno = EFBIG;
                break;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        if (r == 0) {
            close(fd);
            *len = n;
            return buf;
        }
        n += (size_t)r;
    }
    int saved = errno;
    close(fd);
    free(buf);
    errno = saved;
    return NULL;
}

/* Take per-recipient state from state/<qid> if it describes the same message. A state file
 * that is damaged or belongs to another message (an ID reused after a crash left it behind)
 * is ignored: at worst a recipient is attempted again. */
static void merge_state(const char *spool_dir, struct envelope *env)
{
    char path[PATH_MAX];
    size_t len;
    if (!path_fmt(path, sizeof path, "%s/state/%s", spool_dir, env->qid))
        return;
    char *text = read_file(path, &len);
    if (!text) {
        if (errno != ENOENT)
            log_warn("cannot read %s: %s", path, strerror(errno));
        return;
    }
    struct envelope st;
    envelope_init(&st);
    bool ok = envelope_parse(&st, text, len) == len && strcmp(st.qid, env->qid) == 0 &&
              st.arrival == env->arrival && st.nrcpts == env->nrcpts;
    for (size_t i = 0; ok && i < env->nrcpts; i++)
        ok = strcmp(st.rcpts[i].addr, env->rcpts[i].addr) == 0;
    if (ok) {
        for (size_t i = 0; i < env->nrcpts; i++) {
            struct envelope_rcpt *d = &env->rcpts[i], *s = &st.rcpts[i];
            d->status = s->status;
            d->attempts = s->attempts;
            d->next_try = s->next_try;
            char *t = d->last_reply;
            d->last_reply = s->last_reply;
            s->last_reply = t;
        }
    } else {
        log_warn("ignoring damaged or stale state file %s", path);
    }
    envelope_free(&st);
    free(text);
}

int queue_load(const char *spool_dir, const char *qid, struct envelope *env, int *fd,
               off_t *content_off)
{
    return queue_load_in(spool_dir, QUEUE_ACTIVE, qid, env, fd, content_off);
}

int queue_load_in(const char *spool_dir, enum queue_area area, const char *qid,
                  struct envelope *env, int *fd, off_t *content_off)
{
    char path[PATH_MAX];
    if (!queue_id_valid(qid)) {
        errno = EINVAL;
        return -1;
    }
    if (!path_fmt(path, sizeof path, "%s/%s/%s", spool_dir, area_dir(area), qid))
        return -1;
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (f < 0)
        return -1;
    off_t off;
    if (read_envelope(f, env, &off) < 0) {
        int saved = errno;
        close(f);
        errno = saved;
        return -1;
    }
    if (strcmp(env->qid, qid) != 0) { /* a file renamed by hand, or damaged */
        close(f);
        errno = EBADMSG;
        return -1;
    }
    merge_state(spool_dir, env);
    *fd = f;
    *content_off = off;
    return 0;
}

int queue_save_state(const char *spool_dir, const struct envelope *env)
{
    char tmp[PATH_MAX], dst[PATH_MAX], dir[PATH_MAX];
    if (!queue_id_valid(env->qid)) {
        errno = EINVAL;
        return -1;
    }
    if (!path_fmt(tmp, sizeof tmp, "%s/tmp/%s.state.%ld", spool_dir, env->qid, self_pid()) ||
        !path_fmt(dir, sizeof dir, "%s/state", spool_dir) ||
        !path_fmt(dst, sizeof dst, "%s/%s", dir, env->qid))
        return -1;
    size_t len;
    char *text = envelope_format(env, &len);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    int rc = -1;
    if (fd >= 0) {
        rc = write_all(fd, text, len) == 0 && fsync(fd) == 0 ? 0 : -1;
        int saved = errno;
        if (close_checked(fd) < 0 && rc == 0) {
            saved = errno;
            rc = -1;
        }
        errno = saved;
        if (rc == 0)
            rc = rename(tmp, dst) == 0 && fsync_dir(dir) == 0 ? 0 : -1;
        if (rc < 0) {
            saved = errno;
            unlink(tmp);
            errno = saved;
        }
    }
    int saved = errno;
    free(text);
    errno = saved;
    return rc;
}

/* <area>/<qid> and state/<qid> paths of a valid ID, and the area's directory (buffers of
 * PATH_MAX); false (errno) otherwise. */
static bool message_paths(const char *spool_dir, enum queue_area area, const char *qid,
                          char *dir, char *queue_path, char *state_path)
{
    if (!queue_id_valid(qid)) {
        errno = EINVAL;
        return false;
    }
    return path_fmt(dir, PATH_MAX, "%s/%s", spool_dir, area_dir(area)) &&
           path_fmt(queue_path, PATH_MAX, "%s/%s", dir, qid) &&
           path_fmt(state_path, PATH_MAX, "%s/state/%s", spool_dir, qid);
}

int queue_unlink(const char *spool_dir, const char *qid)
{
    char dir[PATH_MAX], path[PATH_MAX], state[PATH_MAX];
    if (!message_paths(spool_dir, QUEUE_ACTIVE, qid, dir, path, state))
        return -1;
    return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int queue_sync_removals(const char *spool_dir)
{
    char dir[PATH_MAX];
    return path_fmt(dir, sizeof dir, "%s/queue", spool_dir) ? fsync_dir(dir) : -1;
}

int queue_drop_state(const char *spool_dir, const char *qid)
{
    char dir[PATH_MAX], path[PATH_MAX], state[PATH_MAX];
    if (!message_paths(spool_dir, QUEUE_ACTIVE, qid, dir, path, state))
        return -1;
    return unlink(state) < 0 && errno != ENOENT ? -1 : 0;
}

int queue_remove(const char *spool_dir, const char *qid)
{
    return queue_remove_in(spool_dir, QUEUE_ACTIVE, qid);
}

int queue_remove_in(const char *spool_dir, enum queue_area area, const char *qid)
{
    char dir[PATH_MAX], path[PATH_MAX], state[PATH_MAX];
    if (!message_paths(spool_dir, area, qid, dir, path, state))
        return -1;
    if (unlink(path) < 0 && errno != ENOENT)
        return -1;
    /* Make the removal durable before dropping the state: a queue file must never come
     * back after a crash without the state that says its recipients are done. */
    if (fsync_dir(dir) < 0)
        return -1;
    return unlink(state) < 0 && errno != ENOENT ? -1 : 0;
}

int queue_move(const char *spool_dir, const char *qid, enum queue_area from, enum queue_area to)
{
    char src[PATH_MAX], dst[PATH_MAX], srcdir[PATH_MAX], dstdir[PATH_MAX];
    if (!queue_id_valid(qid)) {
        errno = EINVAL;
        return -1;
    }
    if (!path_fmt(srcdir, sizeof srcdir, "%s/%s", spool_dir, area_dir(from)) ||
        !path_fmt(dstdir, sizeof dstdir, "%s/%s", spool_dir, area_dir(to)) ||
        !path_fmt(src, sizeof src, "%s/%s", srcdir, qid) ||
        !path_fmt(dst, sizeof dst, "%s/%s", dstdir, qid))
        return -1;
    if (rename_noreplace(src, dst) < 0)
        return -1;
    /* The new name first: after a crash the file is in one place or the other (or, with the
     * link() fallback, briefly in both, which the old name's fsync settles), never lost. */
    if (fsync_dir(dstdir) < 0 || fsync_dir(srcdir) < 0)
        return -1;
    return 0;
}

long long queue_free_space(const char *spool_dir)
{
    struct statvfs sv;
    if (statvfs(spool_dir, &sv) < 0)
        return -1;
    unsigned long long bytes = (unsigned long long)sv.f_bavail * sv.f_frsize;
    return bytes > (unsigned long long)LLONG_MAX ? LLONG_MAX : (long long)bytes;
}
