/* sendmail.c - `tern sendmail` (also run as `sendmail`): the command-line interface programs
 * expect of /usr/sbin/sendmail (cron, PHP's mail(), scripts), in Postfix's dialect.
 *
 * A message is submitted to the RUNNING server over SMTP, on a loopback listener of the
 * configuration (RFC 5321; the server fsyncs it before its 250, so "exit 0" means queued).
 * The server decides as it does for any client at 127.0.0.1 / ::1: local recipients are
 * accepted, others only when relay_networks includes loopback (docs/queue.md). When no server
 * answers, the message is left in the spool's maildrop (maildrop_dir.c) for the server's
 * pickup, and the exit status is 0. On any other failure nothing is queued (all or nothing:
 * one refused recipient aborts the transaction), the exit status is non-zero with the reason
 * on stderr, and the message is appended to ~/dead.letter, so it is never lost silently.
 *
 * Modes: deliver (default, -bm), -bs (an SMTP session on stdin/stdout, relayed to the local
 * listener), -bp (list the queue), -q (flush). Message preparation is in sendmail_msg.c. */
#include "sendmail.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "maildrop_dir.h"
#include "netclient.h"
#include "queue_cmd.h"
#include "received.h"
#include "sendmail_msg.h"
#include "submit.h"
#include "util.h"

#define SM_TIMEOUT_MS 300000 /* per read or write: end of data may wait for fsyncs */

enum sm_mode { MODE_DELIVER, MODE_SMTP, MODE_LIST, MODE_FLUSH };

struct sm_args {
    enum sm_mode mode;
    bool extract, ignore_dots, verbose;
    const char *sender;      /* -f / -r */
    const char *full_name;   /* -F */
    const char *config;      /* -C */
    const char *notify;      /* -N */
    const char *ret;         /* -R */
    const char *envid;       /* -V */
    const char *flush_arg;   /* -qI / -qR */
    char **rcpts;            /* command-line recipients */
    int nrcpts;
};

static const char *prog = "sendmail";

static void usage(void)
{
    fprintf(stderr,
            "usage: %s [options] [--] [recipient...] < message\n"
            "  -t             recipients from To:, Cc: and Bcc: too (Bcc: is removed)\n"
            "  -i, -oi        a line with a single \".\" does not end the message\n"
            "  -f SENDER      envelope sender (-f '<>' for none); also -r\n"
            "  -F NAME        full name for the From: header added when there is none\n"
            "  -N DSN         NOTIFY: never, or success,delay,failure;  -R full|hdrs: RET;\n"
            "  -V ENVID       DSN envelope ID (RFC 3461)\n"
            "  -bm            deliver (the default);  -bs  SMTP session on stdin/stdout\n"
            "  -bp            list the queue (as `tern queue`)\n"
            "  -q, -qIID, -qRDOMAIN   flush the queue (everything, one message, a domain)\n"
            "  -C CONFIG      the configuration of the running server\n"
            "  -v             print the server's final reply\n"
            "ignored, as Postfix does: -o... (but -oi), -od..., -e..., -B..., -h N, -L LABEL,\n"
            "  -m, -n, -U, -G, -X FILE, -O OPT=VALUE, -A...\n",
            prog);
}

/* Parse sendmail's flags: letters with an attached or separate value, stopping at "--" or the
 * first argument that is not a flag. -1 on a usage error (message printed). */
static int parse_args(int argc, char **argv, struct sm_args *a)
{
    int i = 1;
    for (; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--") == 0) {
            i++;
            break;
        }
        if (s[0] != '-' || s[1] == '\0')
            break;
        char f = s[1];
        const char *val = s + 2;
        /* Flags whose value may be the next argument. */
        if (strchr("fFrCNRVhLXOBp", f) && *val == '\0') {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: -%c needs a value\n", prog, f);
                return -1;
            }
            val = argv[++i];
        }
        switch (f) {
        case 't': a->extract = true; break;
        case 'i': a->ignore_dots = true; break;
        case 'v': a->verbose = true; break;
        case 'f': case 'r': a->sender = val; break;
        case 'F': a->full_name = val; break;
        case 'C': a->config = val; break;
        case 'N': a->notify = val; break;
        case 'R': a->ret = val; break;
        case 'V': a->envid = val; break;
        case 'o':
            if (strcmp(val, "i") == 0)
                a->ignore_dots = true;
            break; /* -oem, -odb, -odi, -oQ..., -o7/-o8: ignored */
        case 'b':
            if (strcmp(val, "m") == 0)
                a->mode = MODE_DELIVER;
            else if (strcmp(val, "s") == 0)
                a->mode = MODE_SMTP;
            else if (strcmp(val, "p") == 0)
                a->mode = MODE_LIST;
            else if (strcmp(val, "i") == 0) {
                fprintf(stderr, "%s: -bi: rebuilding the aliases database is `tern newaliases`\n",
                        prog);
                return -1;
            } else {
                fprintf(stderr, "%s: -b%s is not supported (use `tern serve` for a daemon)\n",
                        prog, val);
                return -1;
            }
            break;
        case 'q':
            a->mode = MODE_FLUSH;
            if (val[0] == 'I' && val[1]) {
                a->flush_arg = val + 1;
            } else if (val[0] == 'R' && val[1]) {
                static char dom[300];
                snprintf(dom, sizeof dom, "@%s", val + 1);
                a->flush_arg = dom;
            }
            break; /* -q30m (a daemon's interval): flush once now */
        case 'e': case 'm': case 'n': case 'U': case 'G': case 'A': case 'd': case 'h':
        case 'L': case 'X': case 'O': case 'B': case 'p': case '8':
            break; /* accepted and ignored, as Postfix does */
        default:
            fprintf(stderr, "%s: unknown option -%c\n", prog, f);
            return -1;
        }
    }
    a->rcpts = argv + i;
    a->nrcpts = argc - i;
    return 0;
}

/* The domain for names without one: the first local domain, else the host name. */
static const char *default_domain(const struct config *cfg)
{
    return cfg->nlocal_domains > 0 ? cfg->local_domains[0] : cfg->hostname;
}

static char *qualify(const struct config *cfg, const char *addr)
{
    if (strchr(addr, '@'))
        return xstrdup(addr);
    size_t n = strlen(addr) + strlen(default_domain(cfg)) + 2;
    char *s = xmalloc(n);
    snprintf(s, n, "%s@%s", addr, default_domain(cfg));
    return s;
}


/* ---- -bs: an SMTP session on stdin/stdout ------------------------------------------------ */

static int smtp_stdio(const struct config *cfg)
{
    struct netclient nc;
    char err[512];
    bool refused;
    if (submit_connect(cfg, &nc, SM_TIMEOUT_MS, &refused, err, sizeof err) < 0) {
        /* Speak SMTP to the client even now (RFC 5321 3.8). */
        printf("421 4.3.0 %s\r\n", err);
        fflush(stdout);
        fprintf(stderr, "%s: %s\n", prog, err);
        return EX_TEMPFAIL;
    }
    struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = nc.fd, .events = POLLIN}};
    char buf[16384];
    bool in_open = true;
    for (;;) {
        p[0].fd = in_open ? 0 : -1;
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = read(0, buf, sizeof buf);
            if (r <= 0) {
                in_open = false;
                shutdown(nc.fd, SHUT_WR);
            } else if (write_all(nc.fd, buf, (size_t)r) < 0) {
                break;
            }
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = read(nc.fd, buf, sizeof buf);
            if (r <= 0 || write_all(1, buf, (size_t)r) < 0)
                break;
        }
    }
    nc_close(&nc);
    return 0;
}

/* ---- delivery mode ---------------------------------------------------------------------- */

/* RFC 3461 4.1: NOTIFY is NEVER, or a list of SUCCESS, FAILURE, DELAY. */
static bool notify_ok(const char *v)
{
    char buf[64];
    if (!str_copy(buf, sizeof buf, v) || !buf[0])
        return false;
    if (str_ieq(buf, "never"))
        return true;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (!str_ieq(t, "success") && !str_ieq(t, "failure") && !str_ieq(t, "delay"))
            return false;
    return v[strlen(v) - 1] != ',';
}

/* ENVID as xtext (RFC 3461 4): '+', '=' and octets outside 33..126 become "+XX". false if
 * the result would be longer than the 100 characters the server accepts. */
static bool xtext(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if (n + 4 > cap)
            return false;
        if (*p < 33 || *p > 126 || *p == '+' || *p == '=')
            n += (size_t)snprintf(out + n, cap - n, "+%02X", *p);
        else
            out[n++] = (char)*p;
    }
    out[n] = '\0';
    return n <= 100;
}

/* Keep a message that could not be submitted: append it to ~/dead.letter (mbox format). */
static void dead_letter(const char *sender, const char *data, size_t len)
{
    const char *home = getenv("HOME");
    struct passwd *pw = getpwuid(getuid());
    if ((!home || !*home) && pw)
        home = pw->pw_dir;
    char path[4096];
    if (!home || snprintf(path, sizeof path, "%s/dead.letter", home) >= (int)sizeof path)
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot save the message in %s: %s\n", prog, path, strerror(errno));
        return;
    }
    time_t now = time(NULL);
    char head[600], when[64];
    struct tm tm;
    if (!localtime_r(&now, &tm) || strftime(when, sizeof when, "%a %b %e %H:%M:%S %Y", &tm) == 0)
        str_copy(when, sizeof when, "Thu Jan  1 00:00:00 1970");
    int hn = snprintf(head, sizeof head, "From %s %s\n", sender[0] ? sender : "MAILER-DAEMON",
                      when);
    bool ok = write_all(fd, head, (size_t)hn) == 0;
    /* LF line ends; a body line starting with "From " is quoted (mboxrd). */
    size_t i = 0;
    while (ok && i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t stop = end > i && data[end - 1] == '\r' ? end - 1 : end;
        const char *l = data + i;
        size_t k = 0;
        while (k < stop - i && l[k] == '>')
            k++;
        if (stop - i >= k + 5 && memcmp(l + k, "From ", 5) == 0)
            ok = write_all(fd, ">", 1) == 0;
        ok = ok && write_all(fd, l, stop - i) == 0 && write_all(fd, "\n", 1) == 0;
        i = nl ? end + 1 : len;
    }
    ok = ok && write_all(fd, "\n", 1) == 0 && fsync(fd) == 0;
    if (close(fd) < 0)
        ok = false;
    if (ok)
        fprintf(stderr, "%s: the message was saved in %s\n", prog, path);
    else
        fprintf(stderr, "%s: cannot save the message in %s: %s\n", prog, path, strerror(errno));
}

/* Queue q in the maildrop (the server is down: err says so). 0 with a notice on stderr, or
 * -1 with the reason added to err. */
static int to_maildrop(const struct config *cfg, const struct submit_req *q, char *down,
                       size_t downlen)
{
    struct maildrop_msg md = {.sender = (char *)q->sender, .rcpts = (char **)q->rcpts,
                              .nrcpts = q->nrcpts, .notify = (char *)q->notify,
                              .ret = (char *)q->ret, .envid = (char *)q->envid,
                              .eightbit = q->eightbit, .data = q->data, .len = q->len};
    char name[128], err[600];
    if (maildrop_write(cfg->spool_dir, &md, name, sizeof name, err, sizeof err) < 0) {
        size_t n = strlen(down);
        snprintf(down + n, downlen - n, "; cannot leave the message in the maildrop either: %s",
                 err);
        return -1;
    }
    fprintf(stderr, "%s: the tern server is not running; the message was left in %s/"
            MAILDROP_DIR "/%s and will be sent when it starts\n", prog, cfg->spool_dir, name);
    return 0;
}

static void add_addr(const char *addr, void *arg)
{
    struct sm_msg *list = arg; /* only rcpts/nrcpts are used */
    list->rcpts = xrealloc(list->rcpts, (list->nrcpts + 1) * sizeof *list->rcpts);
    list->rcpts[list->nrcpts++] = xstrdup(addr);
}

static int deliver(const struct config *cfg, const struct sm_args *a)
{
    /* The envelope sender. */
    struct passwd *pw = getpwuid(getuid());
    const char *login = pw ? pw->pw_name : "nobody";
    char *sender;
    if (a->sender) {
        const char *s = a->sender;
        size_t n = strlen(s);
        if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
            sender = xstrndup(s + 1, n - 2);
        else
            sender = xstrdup(s);
        if (sender[0]) {
            char *q = qualify(cfg, sender);
            free(sender);
            sender = q;
        }
    } else {
        sender = qualify(cfg, login);
    }
    if (!maildrop_addr_ok(sender)) {
        fprintf(stderr, "%s: invalid sender address '%s'\n", prog, sender);
        free(sender);
        return EX_USAGE;
    }

    /* The message: all of stdin (also after a lone "." without -i, so the writer never gets
     * SIGPIPE), bounded by the server's size limit. */
    size_t limit = cfg->max_message_size ? cfg->max_message_size + 65536 : (size_t)64 << 20;
    size_t cap = 65536, len = 0;
    char *in = xmalloc(cap);
    bool too_big = false;
    for (;;) {
        if (len == cap) {
            if (cap >= limit) {
                too_big = true;
                len = 0; /* keep reading, drop the data */
            } else {
                cap *= 2;
                in = xrealloc(in, cap);
            }
        }
        ssize_t r = read(0, in + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "%s: cannot read the message: %s\n", prog, strerror(errno));
            free(in);
            free(sender);
            return EX_IOERR;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (too_big) {
        fprintf(stderr, "%s: the message is larger than the server accepts (max_message_size "
                        "%zu octets); nothing was sent\n", prog, cfg->max_message_size);
        free(in);
        free(sender);
        return EX_DATAERR;
    }
    if (!a->ignore_dots)
        len = sm_dot_end(in, len);

    /* Headers to add: From (with -F), Date, Message-ID. */
    char date[64], msgid[300];
    time_t now = time(NULL);
    rfc5322_date_now(date, sizeof date);
    unsigned long long rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd = (unsigned long long)now ^ ((unsigned long long)getpid() << 32);
    snprintf(msgid, sizeof msgid, "<%lld.%ld.%016llx@%s>", (long long)now, (long)getpid(), rnd,
             cfg->hostname ? cfg->hostname : "localhost");
    char *from_addr = sender[0] ? xstrdup(sender) : qualify(cfg, login);
    struct sm_opts o = {.extract = a->extract, .from = from_addr, .full_name = a->full_name,
                        .date = date, .message_id = msgid};
    struct sm_msg m;
    sm_prepare(in, len, &o, &m);
    free(in);

    /* Recipients: the command line (each argument may be a list), then -t's. */
    struct sm_msg list = {0};
    for (int i = 0; i < a->nrcpts; i++)
        sm_addresses(a->rcpts[i], strlen(a->rcpts[i]), add_addr, &list);
    for (size_t i = 0; i < m.nrcpts; i++)
        add_addr(m.rcpts[i], &list);
    int rc = 0;
    char err[1024] = "";
    for (size_t i = 0; i < list.nrcpts; i++) {
        char *q = qualify(cfg, list.rcpts[i]);
        free(list.rcpts[i]);
        list.rcpts[i] = q;
        if (!maildrop_addr_ok(q)) {
            snprintf(err, sizeof err, "invalid recipient address '%s'", q);
            rc = EX_USAGE;
        }
    }
    if (rc == 0 && list.nrcpts == 0) {
        snprintf(err, sizeof err, "no recipients: give them as arguments, or use -t with To:, "
                                  "Cc: or Bcc: headers");
        rc = EX_USAGE;
    }
    bool refused = false;
    if (rc == 0) {
        char envid[128], final[600];
        struct submit_req q = {.sender = sender, .rcpts = list.rcpts, .nrcpts = list.nrcpts,
                               .data = m.data, .len = m.len, .eightbit = m.eightbit,
                               .notify = a->notify, .ret = a->ret, .timeout_ms = SM_TIMEOUT_MS};
        if (a->envid && xtext(a->envid, envid, sizeof envid))
            q.envid = envid;
        rc = submit_message(cfg, &q, final, sizeof final, &refused, err, sizeof err);
        if (rc == 0 && a->verbose)
            fprintf(stderr, "%s: %s\n", prog, final);
        /* The server is not running: leave the message in the maildrop for its pickup. */
        if (rc != 0 && refused && to_maildrop(cfg, &q, err, sizeof err) == 0)
            rc = 0;
    }
    if (rc != 0) {
        fprintf(stderr, "%s: %s%s\n", prog, err,
                strstr(err, "may or may not") ? "" : "; the message was NOT sent");
        if (m.len > 0)
            dead_letter(sender, m.data, m.len);
    }
    sm_msg_free(&list);
    sm_msg_free(&m);
    free(from_addr);
    free(sender);
    return rc;
}

int sendmail_main(int argc, char **argv)
{
    struct sm_args a = {0};
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        usage();
        return 0;
    }
    signal(SIGPIPE, SIG_IGN); /* a peer gone away is an error to report, not a kill */
    if (parse_args(argc, argv, &a) < 0) {
        usage();
        return EX_USAGE;
    }
    char envid[128];
    if ((a.notify && !notify_ok(a.notify)) || (a.ret && !str_ieq(a.ret, "full") &&
                                                !str_ieq(a.ret, "hdrs")) ||
        (a.envid && !xtext(a.envid, envid, sizeof envid))) {
        fprintf(stderr, "%s: -N takes never or success,delay,failure; -R full or hdrs; -V at "
                        "most 100 characters\n", prog);
        return EX_USAGE;
    }
    struct config cfg = {0};
    char err[512];
    if (control_config_load(&cfg, a.config, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return EX_CONFIG;
    }
    int rc;
    switch (a.mode) {
    case MODE_LIST:
        rc = queue_cmd_request(&cfg, prog, "LIST") == 0 ? 0 : EX_UNAVAILABLE;
        break;
    case MODE_FLUSH: {
        char req[400];
        snprintf(req, sizeof req, "FLUSH%s%s", a.flush_arg ? " " : "",
                 a.flush_arg ? a.flush_arg : "");
        rc = queue_cmd_request(&cfg, prog, req) == 0 ? 0 : EX_UNAVAILABLE;
        break;
    }
    case MODE_SMTP:
        rc = smtp_stdio(&cfg);
        break;
    default:
        rc = deliver(&cfg, &a);
        break;
    }
    config_free(&cfg);
    return rc;
}
