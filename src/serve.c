/* serve.c - the supervisor behind `tern serve` (see serve.h and docs/architecture.md).
 *
 * A "generation" is one loaded configuration with its TLS contexts, its user, its share of
 * the listening sockets and its children: N SMTP workers and one queue manager. SIGHUP builds
 * a new generation beside the running one and retires the old (SIGTERM: its workers stop
 * accepting and finish their sessions); listening sockets whose address stays are handed
 * over, so no connection is refused during a reload. Signals arrive through a signalfd read
 * by a small poll loop whose timeout is the next timer (restart back-off, SIGKILL deadline).
 *
 * Started as root, the supervisor keeps root only to bind, to hand directories to the
 * unprivileged user and to restart children; it parses no network input. Whatever touches
 * the spool's contents runs as the unprivileged user (children, or a short-lived helper). */
#include "serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aliases_load.h"
#include "authlock.h"
#include "config.h"
#include "log.h"
#include "outbound.h"
#include "peertab.h"
#include "privsep.h"
#include "qmgr.h"
#include "queue.h"
#include "server.h"
#include "users.h"
#include "tls.h"
#include "util.h"

#define LISTEN_BACKLOG 1024
#define QUICK_CRASH_MS 10000 /* a child dying sooner than this after its start is backed off */
#define BACKOFF_MAX 30       /* seconds; the back-off starts at 1 s and doubles */
#define KILL_EXTRA 5         /* seconds after shutdown_grace before SIGKILL */

enum child_kind { CHILD_WORKER, CHILD_QMGR };

struct child {
    enum child_kind kind;
    int num;            /* worker number from 1, for the log */
    pid_t pid;          /* 0: not running */
    int64_t started;    /* monotonic ms */
    int backoff;        /* seconds waited before the last restart (0: none) */
    bool pending;       /* start it at restart_at */
    int64_t restart_at; /* monotonic ms */
};

struct generation {
    unsigned id;
    struct config cfg;
    struct run_user user;
    struct tls_server *tls;     /* NULL: no certificate configured */
    struct users users;         /* SMTP AUTH users (users_file), read as root */
    bool have_users;
    int spool_fd;               /* the spool directory, locked (-1 until prepare_dirs) */
    struct listener_fd *fds;    /* one per cfg.listen[], pointing into it */
    size_t nfds;
    struct peertab *peers;      /* connections per client address, shared by the workers */
    struct authlock authlock;   /* failed AUTH attempts per client address, shared too */
    struct child *children;     /* the workers, then the queue manager */
    size_t nchildren;
    bool retiring;
    int64_t kill_at;            /* retiring: SIGKILL what is left at this time (0: done) */
    struct generation *next;    /* the list of retiring generations */
};

/* A listening socket of the supervisor. Kept across reloads while its address is listed. */
struct sock {
    int fd;
    char addr[64];
    unsigned short port;
};

static struct {
    const char *config_path;    /* NULL: the embedded default */
    pid_t pid;
    int sigfd;
    struct sock socks[2 * CONFIG_MAX_LISTEN]; /* during a reload: old and new addresses */
    size_t nsocks;
    struct generation *cur;
    struct generation *retired;
    unsigned ngen;
    bool stopping;
    int64_t kill_at;            /* stopping: SIGKILL what is left at this time (0: done) */
} sv = {.sigfd = -1};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *kind_name(enum listen_kind k)
{
    switch (k) {
    case LISTEN_SMTP: return "smtp";
    case LISTEN_SUBMISSION: return "submission";
    case LISTEN_SMTPS: return "smtps";
    case LISTEN_ODMR: return "odmr";
    }
    return "?";
}

static void addr_name(const char *addr, unsigned port, char *out, size_t cap)
{
    snprintf(out, cap, strchr(addr, ':') ? "[%s]:%u" : "%s:%u", addr, port);
}

/* Before fork(): a child must not inherit, and flush again, output still in our buffers. */
static void flush_stdio(void)
{
    fflush(stdout);
    fflush(stderr);
}

/* Fatal errors at startup go to stderr even when the log goes to syslog: whoever started
 * tern in a terminal must see why it did not start. */
static void startup_error(const struct generation *g, const char *msg)
{
    fprintf(stderr, "%s\n", msg);
    if (g && g->cfg.log_target == LOG_TO_SYSLOG)
        log_err("%s", msg);
}

/* ---- unprivileged helpers --------------------------------------------------------------- */

struct spool_job {
    const char *spool;
    bool recover;   /* startup: drop every unfinished reception */
    pid_t deadpid;  /* > 0: drop the unfinished files of this dead child */
};

static int spool_job_run(const struct spool_job *j)
{
    if (j->deadpid > 0)
        return queue_clean_tmp(j->spool, j->deadpid) < 0 ? -1 : 0;
    if (queue_init(j->spool) < 0) {
        log_err("cannot create the spool directories under %s: %s", j->spool, strerror(errno));
        return -1;
    }
    if (j->recover) {
        int n = queue_clean_tmp(j->spool, 0);
        if (n < 0) {
            log_err("cannot clean %s/tmp: %s", j->spool, strerror(errno));
            return -1;
        }
        if (n > 0)
            log_info("recovery: removed %d unfinished receptions from %s/tmp", n, j->spool);
    }
    return 0;
}

/* Run a spool job as the unprivileged user: as root, in a short-lived child that drops
 * privileges first, so a symlink the children may have planted in the spool never makes
 * root delete or create anything. 0 on success, -1 (the reason is logged). */
static int spool_job(const struct run_user *u, const struct spool_job *j)
{
    if (!u->drop)
        return spool_job_run(j);
    flush_stdio();
    pid_t pid = fork();
    if (pid < 0) {
        log_err("cannot fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* _exit: nothing of the supervisor's to flush or free here. */
        if (privsep_drop(u) < 0)
            _exit(1);
        _exit(spool_job_run(j) < 0 ? 1 : 0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            log_err("waitpid: %s", strerror(errno));
            return -1;
        }
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* ---- directories ------------------------------------------------------------------------- */

/* The fixed part of the Maildir pattern (its directories before the first '%'), and whether
 * the component after it is exactly "%d" (one directory per domain: "var/mail/%d/%u"). */
static bool maildir_base(const char *pattern, char *base, size_t cap, bool *per_domain)
{
    const char *pct = strchr(pattern, '%');
    const char *end = pct ? pct : pattern + strlen(pattern);
    const char *slash = NULL;
    for (const char *p = pattern; p < end; p++)
        if (*p == '/')
            slash = p;
    *per_domain = pct && (pct == pattern || pct[-1] == '/') && strncmp(pct, "%d/", 3) == 0;
    if (!slash)
        return str_copy(base, cap, ".");
    if (slash == pattern)
        return str_copy(base, cap, "/");
    size_t n = (size_t)(slash - pattern);
    if (n >= cap)
        return false;
    memcpy(base, pattern, n);
    base[n] = '\0';
    return true;
}

/* mkdir -p, with mode only for the last component: the ones above must stay traversable
 * by the unprivileged user when root creates them ("var" of "var/spool"). */
static int make_dir(const char *path, unsigned mode)
{
    char parent[4096];
    if (!str_copy(parent, sizeof parent, path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *slash = strrchr(parent, '/');
    while (slash && slash > parent && slash[1] == '\0') { /* trailing slashes */
        *slash = '\0';
        slash = strrchr(parent, '/');
    }
    if (slash && slash > parent) {
        *slash = '\0';
        if (mkdir_p(parent, 0755) < 0)
            return -1;
    }
    return mkdir_p(path, mode);
}

/* Every generation: for (g = sv.cur; g; g = gen_next(g)). */
static struct generation *gen_next(const struct generation *g)
{
    return g == sv.cur ? sv.retired : g->next;
}

/* Open the spool directory, locked against a second tern: two queue managers would deliver
 * a message twice, and one's recovery would delete the other's receptions. The lock
 * belongs to the open file description, which the children inherit: it lasts until the
 * last process that may write the spool has exited. A generation of ours already holding
 * it shares its description. Returns the descriptor or -1 with err set. */
static int spool_lock(const char *spool, char *err, size_t errlen)
{
    int fd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st, held;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot open the spool %s: %s", spool, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    for (struct generation *g = sv.cur; g; g = gen_next(g)) {
        if (g->spool_fd >= 0 && fstat(g->spool_fd, &held) == 0 && held.st_dev == st.st_dev &&
            held.st_ino == st.st_ino) {
            close(fd);
            fd = fcntl(g->spool_fd, F_DUPFD_CLOEXEC, 0);
            if (fd < 0)
                snprintf(err, errlen, "cannot duplicate a descriptor: %s", strerror(errno));
            return fd;
        }
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            snprintf(err, errlen, "the spool %s is in use by another tern serve: two must never "
                     "share a spool", spool);
        else
            snprintf(err, errlen, "cannot lock the spool %s: %s", spool, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* The spool and the top of the Maildir tree: create them, and as root give them to the
 * user (the spool is tern's own; so is a Maildir tree we create, and each per-domain
 * directory, which only root may be able to create: /var/mail is root's on Debian).
 * recover: also drop unfinished receptions (startup only: at a reload, running workers
 * are still writing theirs). */
static int prepare_dirs(struct generation *g, bool recover, char *err, size_t errlen)
{
    const struct config *cfg = &g->cfg;
    const struct run_user *u = &g->user;
    if (make_dir(cfg->spool_dir, 0700) < 0) {
        snprintf(err, errlen, "cannot create the spool %s: %s", cfg->spool_dir, strerror(errno));
        return -1;
    }
    if ((g->spool_fd = spool_lock(cfg->spool_dir, err, errlen)) < 0)
        return -1;
    if (u->drop) {
        if (privsep_chown_fd(g->spool_fd, u) < 0) {
            snprintf(err, errlen, "cannot give the spool %s to user %s: %s", cfg->spool_dir,
                     u->name, strerror(errno));
            return -1;
        }
        /* Subdirectories left by a run as another user. */
        static const char *const subdirs[] = {"tmp", "queue", "state", "hold"};
        for (size_t i = 0; i < ARRAY_LEN(subdirs); i++) {
            if (privsep_chown_dir(g->spool_fd, subdirs[i], u) < 0 && errno != ENOENT) {
                snprintf(err, errlen, "cannot give %s/%s to user %s: %s", cfg->spool_dir,
                         subdirs[i], u->name, strerror(errno));
                return -1;
            }
        }
    }
    struct spool_job job = {.spool = cfg->spool_dir, .recover = recover};
    if (spool_job(u, &job) < 0) {
        snprintf(err, errlen, "cannot prepare the spool %s as user %s (see the messages above)",
                 cfg->spool_dir, u->name);
        return -1;
    }

    char base[1100]; /* config.c limits the pattern to 1024 characters */
    bool per_domain;
    if (!maildir_base(cfg->maildir, base, sizeof base, &per_domain)) {
        snprintf(err, errlen, "maildir %s: path too long", cfg->maildir);
        return -1;
    }
    struct stat st;
    bool created = false;
    if (stat(base, &st) < 0) {
        if (errno != ENOENT || mkdir_p(base, 0755) < 0) {
            snprintf(err, errlen, "cannot create the Maildir tree %s: %s", base, strerror(errno));
            return -1;
        }
        created = true;
    }
    if (!u->drop)
        return 0; /* the queue manager creates whatever else it needs as this same user */
    if (created && privsep_chown_dir(AT_FDCWD, base, u) < 0) {
        snprintf(err, errlen, "cannot give %s to user %s: %s", base, u->name, strerror(errno));
        return -1;
    }
    if (!per_domain)
        return 0;
    int bfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (bfd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", base, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < cfg->nlocal_domains; i++) {
        const char *d = cfg->local_domains[i];
        if (d[0] == '.' || strchr(d, '/'))
            continue; /* never a path: config_maildir_path refuses it as well */
        if ((mkdirat(bfd, d, 0700) < 0 && errno != EEXIST) || privsep_chown_dir(bfd, d, u) < 0) {
            snprintf(err, errlen, "cannot create %s/%s for user %s: %s", base, d, u->name,
                     strerror(errno));
            close(bfd);
            return -1;
        }
    }
    close(bfd);
    return 0;
}

/* ---- listening sockets ------------------------------------------------------------------- */

/* The socket address of a listen line (config.c guarantees a numeric address). */
static socklen_t listen_sockaddr(const struct listen_cfg *l, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (strchr(l->addr, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(l->port);
        return inet_pton(AF_INET6, l->addr, &s6->sin6_addr) == 1 ? sizeof *s6 : 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(l->port);
    return inet_pton(AF_INET, l->addr, &s4->sin_addr) == 1 ? sizeof *s4 : 0;
}

static int sock_bind(const struct listen_cfg *l, char *err, size_t errlen)
{
    char name[96];
    addr_name(l->addr, l->port, name, sizeof name);
    struct sockaddr_storage ss;
    socklen_t len = listen_sockaddr(l, &ss);
    if (len == 0) {
        snprintf(err, errlen, "cannot listen on %s: not a numeric address", name);
        return -1;
    }
    /* Non-blocking: every worker accepts on it, and libevent accepts until EAGAIN. Close on
     * exec is harmless: children are forked, never executed. TCP_NODELAY, since replies are
     * small and a client waits for each: Linux gives it to every accepted socket, which saves
     * a setsockopt per connection. */
    int one = 1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
        (ss.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
        bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "cannot listen on %s: %s%s", name, strerror(e),
                 e == EACCES && l->port < 1024 && geteuid() != 0
                     ? " (ports below 1024 need root)" : "");
        return -1;
    }
    return fd;
}

static struct sock *sock_find(const char *addr, unsigned short port)
{
    for (size_t i = 0; i < sv.nsocks; i++)
        if (sv.socks[i].port == port && strcmp(sv.socks[i].addr, addr) == 0)
            return &sv.socks[i];
    return NULL;
}

/* Give g a socket for every listen line: the one already open for the address, or a new
 * one. On failure the sockets opened here are closed again and the old set is intact. */
static int gen_bind(struct generation *g, char *err, size_t errlen)
{
    size_t first_new = sv.nsocks;
    g->fds = xcalloc(g->cfg.nlisten, sizeof *g->fds);
    g->nfds = g->cfg.nlisten;
    for (size_t i = 0; i < g->cfg.nlisten; i++) {
        const struct listen_cfg *l = &g->cfg.listen[i];
        struct sock *s = sock_find(l->addr, l->port);
        if (!s) {
            int fd = sv.nsocks < ARRAY_LEN(sv.socks) ? sock_bind(l, err, errlen) : -1;
            if (fd < 0) {
                if (sv.nsocks >= ARRAY_LEN(sv.socks))
                    snprintf(err, errlen, "cannot listen on %s port %u: too many sockets",
                             l->addr, l->port);
                while (sv.nsocks > first_new)
                    close(sv.socks[--sv.nsocks].fd);
                return -1;
            }
            s = &sv.socks[sv.nsocks++];
            s->fd = fd;
            s->port = l->port;
            str_copy(s->addr, sizeof s->addr, l->addr);
        }
        g->fds[i].fd = s->fd;
        g->fds[i].cfg = l;
    }
    for (size_t i = 0; i < g->nfds; i++) {
        char name[96];
        addr_name(g->fds[i].cfg->addr, g->fds[i].cfg->port, name, sizeof name);
        log_info("listening on %s (%s)", name, kind_name(g->fds[i].cfg->kind));
    }
    return 0;
}

static bool gen_has_fd(const struct generation *g, int fd)
{
    for (size_t i = 0; i < g->nfds; i++)
        if (g->fds[i].fd == fd)
            return true;
    return false;
}

/* After a reload: close the sockets the current configuration no longer lists (the old
 * workers hold their own copies until they exit). */
static void socks_prune(void)
{
    size_t n = 0;
    for (size_t i = 0; i < sv.nsocks; i++) {
        struct sock *s = &sv.socks[i];
        if (gen_has_fd(sv.cur, s->fd)) {
            sv.socks[n++] = *s;
            continue;
        }
        char name[96];
        addr_name(s->addr, s->port, name, sizeof name);
        log_info("no longer listening on %s", name);
        close(s->fd);
    }
    sv.nsocks = n;
}

/* ---- generations -------------------------------------------------------------------------- */

static void gen_free(struct generation *g)
{
    if (!g)
        return;
    if (g->spool_fd >= 0)
        close(g->spool_fd);
    config_free(&g->cfg);
    tls_server_free(g->tls);
    users_free(&g->users);
    peertab_free(g->peers);
    authlock_free(&g->authlock);
    free(g->fds);
    free(g->children);
    free(g);
}

/* Load the configuration and everything that can fail before a child starts: the user and
 * the TLS contexts (read here, possibly as root, and inherited by the workers). */
static struct generation *gen_new(char *err, size_t errlen)
{
    struct generation *g = xcalloc(1, sizeof *g);
    g->spool_fd = -1;
    if (config_load(&g->cfg, sv.config_path, err, errlen) < 0 ||
        privsep_resolve(g->cfg.user, &g->user, err, errlen) < 0)
        goto fail;
    g->tls = tls_server_new(&g->cfg, err, errlen);
    if (!g->tls && err[0])
        goto fail;
    /* The users file may be readable by root only: read it here, before the drop, like the
     * TLS keys; a reload (SIGHUP) reads it again with the new generation. */
    if (g->cfg.users_file) {
        if (users_load(&g->users, g->cfg.users_file, false, err, errlen) < 0)
            goto fail;
        g->have_users = true;
        log_info("loaded %zu AUTH users from %s", g->users.n, g->cfg.users_file);
    }
    /* The alias files (and :include: files) are read here too, before the drop. */
    if (aliases_load(&g->cfg, err, errlen) < 0)
        goto fail;
    /* The queue manager reads the CAs for outbound "verify" itself, as the user; a wrong
     * file is better reported now. */
    if (outbound_check_config(&g->cfg, err, errlen) < 0)
        goto fail;
    /* workers 0: one per two cores. A worker keeps two threads busy (its event loop and its
     * commit thread, which does the file system's share of every message), and the kernel's
     * network work needs a core too: on two cores one worker took a quarter to a third less
     * CPU per message than two, and accepted up to 30 % more messages per second (the same
     * within the noise for 100 sessions of 64 KiB; docs/performance.md). */
    long n = g->cfg.workers;
    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN) / 2;
    if (n <= 0)
        n = 1;
    g->nchildren = (size_t)n + 1;
    g->peers = peertab_new((size_t)n);
    if (!g->peers) {
        snprintf(err, errlen, "cannot create the table of client addresses: %s", strerror(errno));
        goto fail;
    }
    if (authlock_init(&g->authlock, (unsigned)g->cfg.auth_max_failures, g->cfg.auth_lockout,
                      true) < 0) {
        snprintf(err, errlen, "cannot create the table of failed AUTH attempts: %s",
                 strerror(errno));
        goto fail;
    }
    g->children = xcalloc(g->nchildren, sizeof *g->children);
    for (size_t i = 0; i < g->nchildren; i++) {
        g->children[i].kind = i + 1 < g->nchildren ? CHILD_WORKER : CHILD_QMGR;
        g->children[i].num = (int)i + 1;
    }
    return g;
fail:
    gen_free(g);
    return NULL;
}

static size_t gen_alive(const struct generation *g)
{
    size_t n = 0;
    for (size_t i = 0; i < g->nchildren; i++)
        n += g->children[i].pid != 0;
    return n;
}

static size_t all_alive(void)
{
    size_t n = 0;
    for (const struct generation *g = sv.cur; g; g = gen_next(g))
        n += gen_alive(g);
    return n;
}

/* The queue manager is single: two would deliver the same message twice. */
static bool qmgr_alive(void)
{
    for (const struct generation *g = sv.cur; g; g = gen_next(g))
        if (g->children[g->nchildren - 1].pid)
            return true;
    return false;
}

static void gen_signal(struct generation *g, int sig)
{
    for (size_t i = 0; i < g->nchildren; i++) {
        struct child *c = &g->children[i];
        c->pending = false;
        if (c->pid && kill(c->pid, sig) < 0 && errno != ESRCH)
            log_warn("cannot send signal %d to pid %ld: %s", sig, (long)c->pid, strerror(errno));
    }
}

static void child_name(const struct child *c, char *buf, size_t cap)
{
    if (c->kind == CHILD_QMGR)
        str_copy(buf, cap, "queue manager");
    else
        snprintf(buf, cap, "worker %d", c->num);
}

/* ---- children ------------------------------------------------------------------------------ */

/* In the new child: shed what belongs to the supervisor, drop privileges, run. */
static _Noreturn void child_main(struct generation *g, const struct child *c)
{
    log_set_ident(c->kind == CHILD_WORKER ? "tern/smtp" : "tern/qmgr");
    close(sv.sigfd);
    for (size_t i = 0; i < sv.nsocks; i++)
        if (c->kind == CHILD_QMGR || !gen_has_fd(g, sv.socks[i].fd))
            close(sv.socks[i].fd);
    /* Keep only our own spool lock: another generation's must go when that one is done. */
    for (struct generation *o = sv.cur; o; o = gen_next(o))
        if (o != g && o->spool_fd >= 0)
            close(o->spool_fd);
    /* The supervisor blocks the signals it reads from its signalfd: unblock them here.
     * SIGHUP is the supervisor's business (a terminal hangup reaches the whole group). */
    signal(SIGHUP, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* The queue manager needs neither the TLS keys nor the password hashes: let them go. */
    if (c->kind == CHILD_QMGR) {
        tls_server_free(g->tls);
        g->tls = NULL;
        users_free(&g->users);
        g->have_users = false;
        peertab_free(g->peers);
        g->peers = NULL;
        authlock_free(&g->authlock);
    }
    /* Named for ps/top/perf and for tests (/proc/PID/comm): "tern-smtp" or "tern-qmgr". */
    (void)prctl(PR_SET_NAME, c->kind == CHILD_WORKER ? "tern-smtp" : "tern-qmgr", 0, 0, 0);
    if (privsep_drop(&g->user) < 0)
        exit(1);
    /* Not dumpable: no core file with the keys, and no other process of the unprivileged
     * user (another worker taken over by an attacker) may ptrace us to read them. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        log_warn("cannot clear the dumpable flag: %s", strerror(errno));
    /* After the drop: changing credentials clears the parent-death signal. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0)
        log_warn("cannot set the parent-death signal: %s", strerror(errno));
    if (getppid() != sv.pid)
        exit(0); /* the supervisor died before prctl: nobody would stop us */
    int rc = c->kind == CHILD_WORKER ? smtp_worker_run(&g->cfg, g->fds, g->nfds, g->tls,
                                                       g->have_users ? &g->users : NULL,
                                                       g->peers, &g->authlock,
                                                       (size_t)(c->num - 1))
                                     : qmgr_run(&g->cfg);
    exit(rc);
}

/* One more quick failure: wait 1 s, then twice as long each time, at most BACKOFF_MAX. */
static void backoff_grow(struct child *c)
{
    c->backoff = c->backoff == 0 ? 1 : c->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : c->backoff * 2;
}

static void spawn(struct generation *g, struct child *c, int64_t now)
{
    char name[32];
    child_name(c, name, sizeof name);
    flush_stdio();
    pid_t pid = fork();
    if (pid < 0) {
        backoff_grow(c);
        log_err("cannot fork the %s: %s; trying again in %d s", name, strerror(errno), c->backoff);
        c->restart_at = now + c->backoff * 1000;
        return;
    }
    if (pid == 0)
        child_main(g, c);
    c->pid = pid;
    c->started = now;
    c->pending = false;
    log_info("%s started pid=%ld generation=%u", name, (long)pid, g->id);
}

/* Start every child of the current generation whose time has come. */
static void start_due(int64_t now)
{
    if (sv.stopping || !sv.cur)
        return;
    for (size_t i = 0; i < sv.cur->nchildren; i++) {
        struct child *c = &sv.cur->children[i];
        if (c->pid || !c->pending || c->restart_at > now)
            continue;
        if (c->kind == CHILD_QMGR && qmgr_alive())
            continue; /* started when the old one has exited */
        spawn(sv.cur, c, now);
    }
}

static void earliest(int64_t *next, int64_t t)
{
    if (t > 0 && (*next < 0 || t < *next))
        *next = t;
}

/* The next time something must happen, or -1. */
static int64_t next_deadline(void)
{
    int64_t next = -1;
    if (sv.stopping)
        earliest(&next, sv.kill_at);
    else if (sv.cur)
        for (size_t i = 0; i < sv.cur->nchildren; i++) {
            const struct child *c = &sv.cur->children[i];
            if (!c->pid && c->pending && !(c->kind == CHILD_QMGR && qmgr_alive()))
                earliest(&next, c->restart_at > 0 ? c->restart_at : 1);
        }
    for (const struct generation *g = sv.retired; g; g = g->next)
        earliest(&next, g->kill_at);
    return next;
}

static void describe_status(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, cap, "status 0x%x", (unsigned)status);
}

static void retired_drop_finished(void)
{
    for (struct generation **pp = &sv.retired; *pp;) {
        struct generation *g = *pp;
        if (gen_alive(g)) {
            pp = &g->next;
            continue;
        }
        *pp = g->next;
        log_info("generation %u has finished", g->id);
        gen_free(g);
    }
}

static struct child *gen_find(struct generation *g, pid_t pid)
{
    for (size_t i = 0; i < g->nchildren; i++)
        if (g->children[i].pid == pid)
            return &g->children[i];
    return NULL;
}

static void on_child_exit(pid_t pid, int status, int64_t now)
{
    struct generation *g;
    struct child *c = NULL;
    for (g = sv.cur; g && !(c = gen_find(g, pid)); g = gen_next(g))
        continue;
    if (!c) {
        log_debug("reaped pid=%ld, not one of ours", (long)pid);
        return;
    }
    c->pid = 0;
    if (c->kind == CHILD_WORKER) /* its connections died with it */
        peertab_forget_worker(g->peers, (size_t)(c->num - 1));
    char name[32], how[96];
    child_name(c, name, sizeof name);
    describe_status(status, how, sizeof how);
    /* Its partial receptions (and state rewrites) can never be committed now. */
    struct spool_job job = {.spool = g->cfg.spool_dir, .deadpid = pid};
    spool_job(&g->user, &job);
    if (sv.stopping || g->retiring) {
        log_info("%s pid=%ld generation=%u exited (%s)", name, (long)pid, g->id, how);
        retired_drop_finished();
        return;
    }
    bool crashed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    int64_t ran = now - c->started;
    if (ran < QUICK_CRASH_MS)
        backoff_grow(c);
    else
        c->backoff = 0;
    char when[32] = "now";
    if (c->backoff)
        snprintf(when, sizeof when, "in %d s", c->backoff);
    if (crashed)
        log_err("%s pid=%ld crashed (%s) after %lld.%03lld s; restarting %s", name, (long)pid,
                how, (long long)(ran / 1000), (long long)(ran % 1000), when);
    else
        log_warn("%s pid=%ld exited unexpectedly (%s); restarting %s", name, (long)pid, how, when);
    c->pending = true;
    c->restart_at = now + c->backoff * 1000;
}

static void reap(int64_t now)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        on_child_exit(pid, status, now);
    if (pid < 0 && errno != ECHILD)
        log_err("waitpid: %s", strerror(errno));
}

static int max_grace(void)
{
    int grace = 0;
    for (const struct generation *g = sv.cur; g; g = gen_next(g))
        if (g->cfg.shutdown_grace > grace)
            grace = g->cfg.shutdown_grace;
    return grace;
}

static void begin_stop(int sig, int64_t now)
{
    if (sv.stopping) {
        log_info("signal %d: already stopping", sig);
        return;
    }
    sv.stopping = true;
    size_t n = all_alive();
    log_info("stopping on signal %d: sending SIGTERM to %zu processes", sig, n);
    for (struct generation *g = sv.cur; g; g = gen_next(g))
        gen_signal(g, SIGTERM);
    sv.kill_at = now + (int64_t)(max_grace() + KILL_EXTRA) * 1000;
}

static void kill_overdue(int64_t now)
{
    if (sv.stopping && sv.kill_at && now >= sv.kill_at) {
        log_warn("%zu processes still running %d s after SIGTERM: sending SIGKILL", all_alive(),
                 max_grace() + KILL_EXTRA);
        sv.kill_at = 0;
        for (struct generation *g = sv.cur; g; g = gen_next(g))
            gen_signal(g, SIGKILL);
    }
    for (struct generation *g = sv.retired; g; g = g->next) {
        if (g->kill_at && now >= g->kill_at) {
            log_warn("generation %u: %zu processes still running %d s after SIGTERM: sending "
                     "SIGKILL", g->id, gen_alive(g), g->cfg.shutdown_grace + KILL_EXTRA);
            g->kill_at = 0;
            gen_signal(g, SIGKILL);
        }
    }
}

static void start_generation(struct generation *g, int64_t now)
{
    g->id = ++sv.ngen;
    sv.cur = g;
    for (size_t i = 0; i < g->nchildren; i++) {
        g->children[i].pending = true;
        g->children[i].restart_at = now;
    }
    start_due(now);
}

static void reload(int64_t now)
{
    if (sv.stopping)
        return;
    log_info("reloading the configuration from %s", sv.config_path ? sv.config_path : "(embedded)");
    char err[2048];
    struct generation *g = gen_new(err, sizeof err);
    if (!g || prepare_dirs(g, false, err, sizeof err) < 0 || gen_bind(g, err, sizeof err) < 0) {
        log_err("reload failed, keeping the running configuration: %s", err);
        gen_free(g);
        return;
    }
    log_init("tern/master", g->cfg.log_target, g->cfg.log_level);
    /* New workers first, so someone is always accepting; the old queue manager goes before
     * the new one starts. */
    struct generation *old = sv.cur;
    old->retiring = true;
    old->next = sv.retired;
    sv.retired = old;
    start_generation(g, now);
    gen_signal(old, SIGTERM);
    old->kill_at = now + (int64_t)(old->cfg.shutdown_grace + KILL_EXTRA) * 1000;
    retired_drop_finished();
    socks_prune();
    log_info("reloaded configuration: generation %u, %zu workers, user %s", g->id,
             g->nchildren - 1, g->user.name);
}

/* ---- main loop ---------------------------------------------------------------------------- */

static int serve_loop(void)
{
    while (!(sv.stopping && all_alive() == 0)) {
        int64_t next = next_deadline(), now = now_ms();
        int timeout = -1;
        if (next >= 0)
            timeout = next <= now ? 0 : (next - now > 60000 ? 60000 : (int)(next - now));
        struct pollfd pfd = {.fd = sv.sigfd, .events = POLLIN};
        if (poll(&pfd, 1, timeout) < 0 && errno != EINTR) {
            log_err("poll: %s", strerror(errno));
            return 1;
        }
        bool hup = false;
        int stop_sig = 0;
        struct signalfd_siginfo si;
        ssize_t n;
        while ((n = read(sv.sigfd, &si, sizeof si)) == (ssize_t)sizeof si) {
            if (si.ssi_signo == SIGHUP)
                hup = true;
            else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
                stop_sig = (int)si.ssi_signo;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            log_err("reading signals: %s", strerror(errno));
            return 1;
        }
        now = now_ms();
        reap(now);
        if (stop_sig)
            begin_stop(stop_sig, now);
        else if (hup)
            reload(now);
        kill_overdue(now);
        start_due(now);
    }
    return 0;
}

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: tern serve [-c FILE] [-f] [--check]\n"
               "  -c, --config FILE  read FILE instead of the built-in default configuration\n"
               "  -f, --foreground   run in the foreground (the only mode: tern never\n"
               "                     daemonizes; let systemd or a terminal keep it running)\n"
               "      --check        check the configuration, print the errors or\n"
               "                     \"configuration OK\", and exit 0 (OK) or 1\n");
}

/* Every connection is a descriptor, and one worker may hold max_connections of them: take
 * the whole hard limit (a soft limit of 1024 is common) rather than answer clients 421 at
 * EMFILE. Returns the new soft limit, 0 if it stayed, -1 with errno if it could not rise. */
static long long raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur >= rl.rlim_max)
        return 0;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    return rl.rlim_cur == RLIM_INFINITY ? LLONG_MAX : (long long)rl.rlim_cur;
}

int serve_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"foreground", no_argument, NULL, 'f'},
        {"check", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool check = false;
    int opt;
    /* Every message allocates and frees the same few buffers (a 76 KiB queue writer, 64 and
     * 128 KiB relay buffers). With glibc's defaults the 128 KiB one is an mmap/munmap pair
     * and freeing at the top of the heap gives memory back with brk, so each message paid
     * page faults and TLB flushes (half the queue manager's CPU when relaying; perf, see
     * docs/performance.md). Keep up to 4 MiB of freed memory per process and take blocks
     * below 1 MiB from the heap. And one arena for every thread: a helper thread's first
     * malloc creates its own arena (64 MiB of address space), and when that fails under a
     * memory limit glibc fails the malloc even though the main arena has memory to spare
     * (test_resources: memory-limit-452-421-no-crash). Children inherit the settings. */
    if (!mallopt(M_MMAP_THRESHOLD, 1024 * 1024) || !mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024) ||
        !mallopt(M_ARENA_MAX, 1))
        fprintf(stderr, "tern: mallopt failed: the defaults of malloc stay in force\n");
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:fh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': sv.config_path = optarg; break;
        case 'f': break;
        case 'C': check = true; break;
        case 'h': serve_usage(stdout); return 0;
        default: serve_usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "tern serve: unexpected argument '%s'\n", argv[optind]);
        serve_usage(stderr);
        return 2;
    }

    char err[2048];
    if (check) {
        struct generation *g = gen_new(err, sizeof err);
        if (!g) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        gen_free(g);
        printf("configuration OK\n");
        return 0;
    }

    /* Signals are read from a signalfd; block them first so none is lost or acts before. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
        (sv.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        fprintf(stderr, "tern serve: cannot set up signal handling: %s\n", strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN); /* a closed stderr must not kill the supervisor */
    sv.pid = getpid();

    int rc = 1;
    struct generation *g = gen_new(err, sizeof err);
    if (!g) {
        startup_error(NULL, err);
        goto out;
    }
    log_init("tern/master", g->cfg.log_target, g->cfg.log_level);
    log_info("starting tern %s: configuration %s, %zu workers, user %s", TERN_VERSION,
             g->cfg.path, g->nchildren - 1, g->user.name);
    long long fds = raise_fd_limit();
    if (fds < 0)
        log_warn("cannot raise the limit of open files: %s", strerror(errno));
    else if (fds > 0)
        log_info("limit of open files raised to %lld", fds);
    /* Recovery before any child starts: receptions a previous run never finished go. */
    if (prepare_dirs(g, true, err, sizeof err) < 0 || gen_bind(g, err, sizeof err) < 0) {
        startup_error(g, err);
        gen_free(g);
        goto out;
    }
    start_generation(g, now_ms());
    rc = serve_loop();
    if (rc == 0)
        log_info("stopped");
out:
    for (size_t i = 0; i < sv.nsocks; i++)
        close(sv.socks[i].fd);
    sv.nsocks = 0;
    gen_free(sv.cur);
    sv.cur = NULL;
    while (sv.retired) {
        struct generation *next = sv.retired->next;
        gen_free(sv.retired);
        sv.retired = next;
    }
    close(sv.sigfd);
    sv.sigfd = -1;
    return rc;
}
