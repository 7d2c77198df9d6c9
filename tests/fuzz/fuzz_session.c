/* fuzz_session.c - libFuzzer target for the SMTP session state machine as a whole
 * (session.c, RFC 5321/1870/2920/3030/3207/4954...): arbitrary client bytes are framed the
 * way server.c frames them (command lines at CRLF, with the session's line limit; DATA/BDAT
 * octets handed over in pieces) and fed to one session. Replies go to a sink that checks
 * their shape (RFC 5321 4.2: "ddd" then SP or "-", CRLF-terminated, a final line last);
 * queue files go to a private spool under /dev/shm (or /tmp), emptied now and then.
 *
 * Input: byte 0 picks the listener (smtp/submission/smtps, STARTTLS offered or not) and
 * whether a users table (and a table of failed AUTH attempts) is set; byte 1 the DATA piece
 * size (0: all at once); the rest is the client's byte stream. A STARTTLS the session
 * accepts is completed at once, and the rest of the input follows the handshake. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <crypt.h>

#include "authlock.h"
#include "config.h"
#include "log.h"
#include "queue.h"
#include "session.h"
#include "users.h"
#include "util.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct config cfg;
static struct users users;
static char spool[200];
static unsigned runs;

/* The reply sink: replies arrive whole or line by line; check each complete line. */
static char pending[8192];
static size_t npending;
static bool last_was_final = true;

static void check_line(const char *l, size_t len)
{
    REQUIRE(len >= 3);
    for (int i = 0; i < 3; i++)
        REQUIRE(l[i] >= '0' && l[i] <= '9');
    REQUIRE(l[0] >= '2' && l[0] <= '5');
    REQUIRE(len == 3 || l[3] == ' ' || l[3] == '-');
    REQUIRE(len <= 512 - 2); /* RFC 5321 4.5.3.1.5 */
    for (size_t i = 0; i < len; i++)
        REQUIRE(l[i] != '\r' && l[i] != '\n' && l[i] != '\0');
    last_was_final = len == 3 || l[3] == ' ';
}

static void sink(void *ctx, const char *buf, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        REQUIRE(npending < sizeof pending);
        pending[npending++] = buf[i];
        if (npending >= 2 && pending[npending - 2] == '\r' && pending[npending - 1] == '\n') {
            check_line(pending, npending - 2);
            npending = 0;
        }
    }
}

/* AUTH failures ask for a delay (RFC 4954 15); the I/O layer would hold replies back. */
static unsigned pauses;
static void pause_cb(void *ctx, unsigned ms)
{
    (void)ctx;
    REQUIRE(ms > 0 && ms <= 60000);
    pauses++;
}

static void empty_dir(const char *sub)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", spool, sub);
    DIR *d = opendir(path);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char f[600];
        snprintf(f, sizeof f, "%s/%s", path, e->d_name);
        unlink(f);
    }
    closedir(d);
}

/* A user with every mechanism; the crypt hash is MD5-crypt so that PLAIN/LOGIN checks stay
 * cheap (the production yescrypt would cost milliseconds per guess). */
static void make_users(void)
{
    struct user_entry e;
    char err[256];
    REQUIRE(users_make_entry(&e, "ann", "secret", true, 4096, err, sizeof err) == 0);
    struct crypt_data cd;
    memset(&cd, 0, sizeof cd);
    const char *h = crypt_r("secret", "$1$fuzzsalt$", &cd);
    REQUIRE(h && h[0] == '$');
    free(e.crypt_hash);
    e.crypt_hash = xstrdup(h);
    REQUIRE(users_put(&users, &e, false) == 0);
}

static void cleanup(void)
{
    static const char *const subs[] = {"queue", "tmp", "state"};
    for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
        empty_dir(subs[i]);
        char path[300];
        snprintf(path, sizeof path, "%s/%s", spool, subs[i]);
        rmdir(path);
    }
    rmdir(spool);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    log_init("fuzz", LOG_TO_STDERR, LOG_EMERG); /* quiet: the log is not what is tested */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(spool, sizeof spool, "%s/tern-fuzz-session-%ld", base, (long)getpid());
    char text[1024], err[256];
    snprintf(text, sizeof text,
             "hostname mx.test\nlisten 127.0.0.1:2525\nlocal_domain example.test\n"
             "mailbox demo@example.test postmaster@example.test ann@example.test\n"
             "spool %s\nmaildir %s/mail/%%d/%%u\nmax_message_size 5000\nmax_errors 8\n",
             spool, spool);
    REQUIRE(config_parse(&cfg, "fuzz", text, strlen(text), err, sizeof err) == 0);
    REQUIRE(queue_init(spool) == 0);
    atexit(cleanup);
    make_users();
    return 0;
}

/* Frame the input like server.c's process_input. */
static void drive(struct session *s, const char *in, size_t len, size_t piece)
{
    size_t pos = 0;
    while (pos < len) {
        enum session_mode mode = session_mode(s);
        if (mode == MODE_CLOSE)
            return;
        if (mode == MODE_STARTTLS) {
            /* server.c drops buffered input and does the handshake; the rest of the input
             * is taken as what the client sends over TLS afterwards. */
            session_tls_started(s, "TLSv1.3 with cipher FUZZ (256/256 bits)");
            continue;
        }
        if (mode == MODE_DATA || mode == MODE_CHUNK) {
            size_t n = len - pos;
            if (piece && n > piece)
                n = piece;
            size_t used = session_data(s, in + pos, n);
            REQUIRE(used <= n);
            if (used == 0 && session_mode(s) == mode)
                REQUIRE(n == 0);
            pos += used;
            continue;
        }
        size_t max = session_max_line(s);
        const char *crlf = NULL;
        for (size_t i = pos; i + 1 < len; i++)
            if (in[i] == '\r' && in[i + 1] == '\n') {
                crlf = in + i;
                break;
            }
        if (!crlf)
            return; /* an unfinished line: server.c would wait for more */
        size_t l = (size_t)(crlf - (in + pos));
        if (l + 2 > max)
            session_line_too_long(s);
        else
            session_line(s, in + pos, l);
        pos += l + 2;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t flags = data[0];
    size_t piece = data[1];
    struct listen_cfg l = cfg.listen[0];
    l.kind = (enum listen_kind)((flags & 3) % 3);
    l.starttls = (flags & 4) && l.kind != LISTEN_SMTPS;
    l.require_tls = (flags & 8) && l.starttls;

    npending = 0;
    last_was_final = true;
    struct session_io io = {.write = sink, .ctx = NULL, .pause = pause_cb};
    struct session *s = session_new(&cfg, &l, (flags & 16) ? "127.0.0.1" : "192.0.2.1", &io);
    REQUIRE(s);
    struct authlock lock;
    if (authlock_init(&lock, 3, 600, false) < 0)
        abort();
    if (flags & 32) {
        session_set_users(s, &users);
        session_set_authlock(s, &lock);
    }
    if (l.kind == LISTEN_SMTPS)
        session_tls_started(s, "TLSv1.3 with cipher FUZZ (256/256 bits)");
    session_start(s);
    drive(s, (const char *)data + 2, size - 2, piece);
    if (flags & 64)
        session_timeout(s);
    else if (flags & 128)
        session_shutdown(s);
    else
        session_abort(s);
    (void)session_timeout_seconds(s);
    (void)session_chunk_remaining(s);
    (void)session_auth_user(s);
    session_free(s);
    authlock_free(&lock);
    REQUIRE(npending == 0 && last_was_final);
    if (++runs % 256 == 0) {
        empty_dir("queue");
        empty_dir("tmp");
    }
    return 0;
}
