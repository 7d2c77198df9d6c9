/* test_queue.c - the durable spool on a real file system: queue IDs, the writer (commit,
 * abort, failures leave nothing behind, including ENOSPC on a tiny tmpfs when we may mount
 * one), tmp/ cleanup, the queue manager's scan / load / save_state / remove, and group
 * commit: queue_commit_round's pipeline (renamed only after the sync, reported durable one
 * round later) and the committer thread (commit.c) reporting on the event loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "commit.h"
#include "queue.h"
#include "util.h"

static char base[256];  /* per-test temporary directory */
static char spool[300];

static int setup(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/tern-queue-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    str_copy(base, sizeof base, tmpl);
    snprintf(spool, sizeof spool, "%s/spool", base);
    assert_int_equal(queue_init(spool), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s/small", base);
    umount2(cmd, MNT_DETACH); /* left mounted if test_enospc failed half-way */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    return system(cmd) == 0 ? 0 : -1;
}

static int count_files(const char *sub)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", spool, sub);
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *buf = xmalloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void make_env(struct envelope *env)
{
    envelope_init(env);
    envelope_set(&env->sender, "sender@example.org");
    env->arrival = 1700000000;
    envelope_set(&env->client_addr, "127.0.0.1");
    envelope_set(&env->client_helo, "client");
    envelope_set(&env->protocol, "ESMTP");
    envelope_add_rcpt(env, "a@example.test", 0, "");
    envelope_add_rcpt(env, "b@example.test", NOTIFY_FAILURE, "rfc822;b@example.test");
}

/* Queue one message with the given content; returns the qid in out. */
static void queue_message(const char *content, size_t len, char out[QUEUE_ID_MAX])
{
    struct envelope env;
    make_env(&env);
    struct queue_writer *w = queue_writer_open(spool, &env);
    assert_non_null(w);
    assert_int_equal(queue_writer_write(w, content, len), 0);
    assert_int_equal(queue_writer_commit(w), 0);
    str_copy(out, QUEUE_ID_MAX, env.qid);
    envelope_free(&env);
}

static void test_queue_ids(void **state)
{
    (void)state;
    char prev[QUEUE_ID_MAX] = "";
    for (int i = 0; i < 5000; i++) {
        char id[QUEUE_ID_MAX];
        queue_new_id(id);
        assert_int_equal(strlen(id), 16);
        for (size_t k = 0; k < 16; k++)
            assert_true((id[k] >= '0' && id[k] <= '9') || (id[k] >= 'A' && id[k] <= 'Z'));
        /* Strictly increasing within a process: unique, and sorted by arrival. */
        if (strcmp(prev, id) >= 0)
            fail_msg("id %s after %s", id, prev);
        strcpy(prev, id);
    }
}

/* Files a named reception leaves in tmp/ (none when receptions are unnamed O_TMPFILE files).
 * The tests that look at tmp/ run in both modes (setup_named, setup_unnamed). */
static bool unnamed_mode;

static size_t named_files(size_t n)
{
    return unnamed_mode ? 0 : n;
}

static void test_commit(void **state)
{
    (void)state;
    struct envelope env;
    make_env(&env);
    struct queue_writer *w = queue_writer_open(spool, &env);
    assert_non_null(w);
    assert_int_equal(strlen(env.qid), 16);
    assert_int_equal(count_files("tmp"), named_files(1)); /* unnamed: no entry anywhere */
    assert_int_equal(count_files("queue"), 0); /* nothing visible before commit */
    /* Small pieces, then one larger than the writer's buffer. */
    size_t big = 200000;
    char *content = xmalloc(big + 256);
    size_t clen = 0;
    for (int i = 0; i < 10; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "Line %d\r\n", i);
        assert_int_equal(queue_writer_write(w, line, (size_t)n), 0);
        memcpy(content + clen, line, (size_t)n);
        clen += (size_t)n;
    }
    for (size_t i = 0; i < big; i++)
        content[clen + i] = (char)('a' + i % 26);
    assert_int_equal(queue_writer_write(w, content + clen, big), 0);
    clen += big;
    assert_int_equal(queue_writer_write(w, "end\r\n", 5), 0);
    memcpy(content + clen, "end\r\n", 5);
    clen += 5;
    assert_int_equal(queue_writer_commit(w), 0);
    assert_int_equal(count_files("tmp"), 0);
    assert_int_equal(count_files("queue"), 1);

    char path[400];
    snprintf(path, sizeof path, "%s/queue/%s", spool, env.qid);
    size_t flen;
    char *file = slurp(path, &flen);
    size_t elen;
    char *etext = envelope_format(&env, &elen);
    assert_int_equal(flen, elen + clen);
    assert_memory_equal(file, etext, elen);
    assert_memory_equal(file + elen, content, clen);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* queue_load gives back the envelope and where the content starts. */
    struct envelope loaded;
    envelope_init(&loaded);
    int fd;
    off_t off;
    assert_int_equal(queue_load(spool, env.qid, &loaded, &fd, &off), 0);
    assert_int_equal(off, (off_t)elen);
    assert_string_equal(loaded.qid, env.qid);
    assert_string_equal(loaded.sender, "sender@example.org");
    assert_int_equal(loaded.nrcpts, 2);
    assert_string_equal(loaded.rcpts[1].orcpt, "rfc822;b@example.test");
    char head[10];
    assert_int_equal(pread(fd, head, sizeof head, off), (ssize_t)sizeof head);
    assert_memory_equal(head, content, sizeof head);
    close(fd);
    envelope_free(&loaded);
    free(etext);
    free(file);
    free(content);
    envelope_free(&env);
}

static void test_abort(void **state)
{
    (void)state;
    struct envelope env;
    make_env(&env);
    struct queue_writer *w = queue_writer_open(spool, &env);
    assert_non_null(w);
    assert_int_equal(queue_writer_write(w, "x\r\n", 3), 0);
    queue_writer_abort(w);
    queue_writer_abort(NULL);
    assert_int_equal(count_files("tmp"), 0);
    assert_int_equal(count_files("queue"), 0);
    envelope_free(&env);
}

/* A commit that cannot rename (queue/ vanished) fails and leaves no temporary file. */
static void test_commit_failure(void **state)
{
    (void)state;
    struct envelope env;
    make_env(&env);
    struct queue_writer *w = queue_writer_open(spool, &env);
    assert_non_null(w);
    assert_int_equal(queue_writer_write(w, "x\r\n", 3), 0);
    char path[400];
    snprintf(path, sizeof path, "%s/queue", spool);
    assert_int_equal(rmdir(path), 0);
    errno = 0;
    assert_int_equal(queue_writer_commit(w), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(count_files("tmp"), 0);
    envelope_free(&env);
}

/* The spool path is not a directory: open fails cleanly with errno set. */
static void test_open_failure(void **state)
{
    (void)state;
    char file[400];
    snprintf(file, sizeof file, "%s/plainfile", base);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    struct envelope env;
    make_env(&env);
    errno = 0;
    assert_null(queue_writer_open(file, &env));
    assert_int_equal(errno, ENOTDIR);
    assert_int_equal(queue_init(file), -1);
    envelope_free(&env);
}

/* A spool that was never initialised is created on first use. */
static void test_open_creates_spool(void **state)
{
    (void)state;
    char other[400];
    snprintf(other, sizeof other, "%s/fresh/spool", base);
    struct envelope env;
    make_env(&env);
    struct queue_writer *w = queue_writer_open(other, &env);
    assert_non_null(w);
    assert_int_equal(queue_writer_commit(w), 0);
    char path[500];
    snprintf(path, sizeof path, "%s/queue/%s", other, env.qid);
    assert_int_equal(access(path, F_OK), 0);
    envelope_free(&env);
}

/* ENOSPC on a 64 KiB tmpfs: the writer reports it (errno preserved) and leaves nothing. */
static void test_enospc(void **state)
{
    (void)state;
    char mnt[400];
    snprintf(mnt, sizeof mnt, "%s/small", base);
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k") < 0)
        skip();
    char small[500];
    snprintf(small, sizeof small, "%s/spool", mnt);
    assert_int_equal(queue_init(small), 0);
    struct envelope env;
    make_env(&env);
    struct queue_writer *w = queue_writer_open(small, &env);
    assert_non_null(w);
    char chunk[4096];
    memset(chunk, 'x', sizeof chunk);
    int rc = 0;
    for (int i = 0; i < 64 && rc == 0; i++) /* 256 KiB: more than fits */
        rc = queue_writer_write(w, chunk, sizeof chunk);
    if (rc == 0) {
        rc = queue_writer_commit(w);
    } else {
        assert_int_equal(errno, ENOSPC);
        /* Later writes and the commit keep failing the same way. */
        assert_int_equal(queue_writer_write(w, "x", 1), -1);
        rc = queue_writer_commit(w);
    }
    int e = errno;
    assert_int_equal(rc, -1);
    assert_int_equal(e, ENOSPC);
    char path[600];
    snprintf(path, sizeof path, "%s/tmp", small);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        assert_true(de->d_name[0] == '.');
    closedir(d);
    snprintf(path, sizeof path, "%s/queue/%s", small, env.qid);
    assert_int_equal(access(path, F_OK), -1);
    envelope_free(&env);
    assert_int_equal(umount2(mnt, MNT_DETACH), 0);
}

static void touch(const char *sub, const char *name)
{
    char path[500];
    snprintf(path, sizeof path, "%s/%s/%s", spool, sub, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
}

static void test_clean_tmp(void **state)
{
    (void)state;
    touch("tmp", "0000000000000001.123");
    touch("tmp", "0000000000000002.4123");
    touch("tmp", "0000000000000003.state.123");
    touch("tmp", "0000000000000004.1234");
    touch("queue", "0000000000000005");
    assert_int_equal(queue_clean_tmp(spool, 123), 2);
    assert_int_equal(count_files("tmp"), 2);
    assert_int_equal(queue_clean_tmp(spool, 123), 0);
    assert_int_equal(queue_clean_tmp(spool, 0), 2);
    assert_int_equal(count_files("tmp"), 0);
    assert_int_equal(count_files("queue"), 1); /* committed mail is never touched */
    /* A writer's temporary name carries its pid. */
    struct envelope env;
    make_env(&env);
    struct queue_writer *w = queue_writer_open(spool, &env);
    assert_non_null(w);
    assert_int_equal(queue_clean_tmp(spool, getpid() + 1), 0);
    assert_int_equal(queue_clean_tmp(spool, getpid()), named_files(1));
    queue_writer_abort(w); /* its file is already gone: still fine */
    envelope_free(&env);
}

static void collect(const char *qid, void *arg)
{
    char *list = arg;
    strcat(list, qid);
    strcat(list, " ");
}

static void test_scan_state_remove(void **state)
{
    (void)state;
    char ids[3][QUEUE_ID_MAX];
    for (int i = 0; i < 3; i++)
        queue_message("Subject: t\r\n\r\nhi\r\n", 18, ids[i]);
    touch("queue", "not-a-qid");
    char list[200] = "", want[200];
    assert_int_equal(queue_scan(spool, collect, list), 3);
    snprintf(want, sizeof want, "%s %s %s ", ids[0], ids[1], ids[2]); /* oldest first */
    assert_string_equal(list, want);

    /* Record a result and see it come back. */
    struct envelope env;
    envelope_init(&env);
    int fd;
    off_t off;
    assert_int_equal(queue_load(spool, ids[1], &env, &fd, &off), 0);
    close(fd);
    assert_int_equal(env.rcpts[0].status, RCPT_PENDING);
    env.rcpts[0].status = RCPT_DELIVERED;
    env.rcpts[1].attempts = 2;
    env.rcpts[1].next_try = 1700000600;
    envelope_set(&env.rcpts[1].last_reply, "4.3.0 disk full");
    assert_int_equal(queue_save_state(spool, &env), 0);
    assert_int_equal(count_files("state"), 1);
    assert_int_equal(count_files("tmp"), 0);
    envelope_free(&env);

    envelope_init(&env);
    assert_int_equal(queue_load(spool, ids[1], &env, &fd, &off), 0);
    close(fd);
    assert_int_equal(env.rcpts[0].status, RCPT_DELIVERED);
    assert_int_equal(env.rcpts[1].status, RCPT_PENDING);
    assert_int_equal(env.rcpts[1].attempts, 2);
    assert_int_equal(env.rcpts[1].next_try, 1700000600);
    assert_string_equal(env.rcpts[1].last_reply, "4.3.0 disk full");
    assert_int_equal(envelope_pending(&env), 1);
    /* Saving again replaces the state. */
    env.rcpts[1].status = RCPT_FAILED;
    assert_int_equal(queue_save_state(spool, &env), 0);
    envelope_free(&env);
    envelope_init(&env);
    assert_int_equal(queue_load(spool, ids[1], &env, &fd, &off), 0);
    close(fd);
    assert_int_equal(envelope_pending(&env), 0);
    envelope_free(&env);

    assert_int_equal(queue_remove(spool, ids[1]), 0);
    assert_int_equal(count_files("state"), 0);
    list[0] = '\0';
    assert_int_equal(queue_scan(spool, collect, list), 2);
    snprintf(want, sizeof want, "%s %s ", ids[0], ids[2]);
    assert_string_equal(list, want);
    envelope_init(&env);
    errno = 0;
    assert_int_equal(queue_load(spool, ids[1], &env, &fd, &off), -1);
    assert_int_equal(errno, ENOENT);
    envelope_free(&env);
    assert_int_equal(queue_remove(spool, ids[1]), 0); /* already gone is fine */
    assert_int_equal(queue_remove(spool, "../../etc"), -1);
}

/* Hold and release: the file moves between queue/ and hold/, never replaces one, and a held
 * message keeps its state through queue_clean_state. */
static void test_hold(void **state)
{
    (void)state;
    char id[QUEUE_ID_MAX], list[200] = "";
    queue_message("Subject: h\r\n\r\nhi\r\n", 18, id);
    struct envelope env;
    envelope_init(&env);
    int fd;
    off_t off;
    assert_int_equal(queue_load(spool, id, &env, &fd, &off), 0);
    close(fd);
    env.rcpts[0].status = RCPT_DELIVERED;
    assert_int_equal(queue_save_state(spool, &env), 0);
    envelope_free(&env);

    assert_int_equal(queue_move(spool, id, QUEUE_ACTIVE, QUEUE_HOLD), 0);
    assert_int_equal(queue_scan(spool, collect, list), 0);
    assert_int_equal(queue_scan_in(spool, QUEUE_HOLD, collect, list), 1);
    assert_int_equal(queue_clean_state(spool), 0); /* the held message's state stays */
    envelope_init(&env);
    assert_int_equal(queue_load_in(spool, QUEUE_HOLD, id, &env, &fd, &off), 0);
    close(fd);
    assert_int_equal(envelope_pending(&env), 1); /* with its state */
    envelope_free(&env);
    errno = 0;
    assert_int_equal(queue_move(spool, id, QUEUE_ACTIVE, QUEUE_HOLD), -1);
    assert_int_equal(errno, ENOENT);
    /* A file of the same name where it should go is never replaced. */
    touch("queue", id);
    errno = 0;
    assert_int_equal(queue_move(spool, id, QUEUE_HOLD, QUEUE_ACTIVE), -1);
    assert_int_equal(errno, EEXIST);
    char path[500];
    snprintf(path, sizeof path, "%s/queue/%s", spool, id);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(queue_move(spool, id, QUEUE_HOLD, QUEUE_ACTIVE), 0);
    assert_int_equal(count_files("hold"), 0);
    assert_int_equal(queue_move(spool, "../x", QUEUE_HOLD, QUEUE_ACTIVE), -1);
    assert_int_equal(queue_move(spool, id, QUEUE_ACTIVE, QUEUE_HOLD), 0);
    assert_int_equal(queue_remove_in(spool, QUEUE_HOLD, id), 0);
    assert_int_equal(count_files("hold"), 0);
    assert_int_equal(count_files("state"), 0);
}

/* Damaged or foreign state files are ignored; damaged queue files are reported. */
static void test_bad_files(void **state)
{
    (void)state;
    char id[QUEUE_ID_MAX], other[QUEUE_ID_MAX], path[500];
    queue_message("hello\r\n", 7, id);
    queue_message("hello\r\n", 7, other);

    /* Garbage state. */
    snprintf(path, sizeof path, "%s/state/%s", spool, id);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("tern-envelope 1\ngarbage\n\n", f);
    fclose(f);
    struct envelope env;
    envelope_init(&env);
    int fd;
    off_t off;
    assert_int_equal(queue_load(spool, id, &env, &fd, &off), 0);
    close(fd);
    assert_int_equal(envelope_pending(&env), 2);
    /* A valid state of a different message (e.g. a reused ID) is ignored too. */
    struct envelope o;
    envelope_init(&o);
    assert_int_equal(queue_load(spool, other, &o, &fd, &off), 0);
    close(fd);
    o.rcpts[0].status = RCPT_DELIVERED;
    str_copy(o.qid, sizeof o.qid, id);
    o.arrival = env.arrival + 1;
    assert_int_equal(queue_save_state(spool, &o), 0);
    envelope_free(&env);
    envelope_init(&env);
    assert_int_equal(queue_load(spool, id, &env, &fd, &off), 0);
    close(fd);
    assert_int_equal(envelope_pending(&env), 2);
    envelope_free(&env);
    envelope_free(&o);

    /* A damaged queue file cannot be loaded (and nothing crashes). */
    snprintf(path, sizeof path, "%s/queue/%s", spool, other);
    f = fopen(path, "r+");
    assert_non_null(f);
    fputs("tern-envelope 9", f);
    fclose(f);
    envelope_init(&env);
    errno = 0;
    assert_int_equal(queue_load(spool, other, &env, &fd, &off), -1);
    assert_int_equal(errno, EBADMSG);
    envelope_free(&env);
    /* A queue file without an end of envelope. */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("tern-envelope 1\nqid X", f);
    fclose(f);
    envelope_init(&env);
    assert_int_equal(queue_load(spool, other, &env, &fd, &off), -1);
    envelope_free(&env);
    /* A valid envelope under the wrong name. */
    char renamed[500], src[500];
    snprintf(src, sizeof src, "%s/queue/%s", spool, id);
    snprintf(renamed, sizeof renamed, "%s/queue/ZZZZ", spool);
    assert_int_equal(rename(src, renamed), 0);
    envelope_init(&env);
    assert_int_equal(queue_load(spool, "ZZZZ", &env, &fd, &off), -1);
    envelope_free(&env);
}

static void test_clean_state(void **state)
{
    (void)state;
    char id[QUEUE_ID_MAX];
    queue_message("hello\r\n", 7, id);
    struct envelope env;
    envelope_init(&env);
    int fd;
    off_t off;
    assert_int_equal(queue_load(spool, id, &env, &fd, &off), 0);
    close(fd);
    assert_int_equal(queue_save_state(spool, &env), 0);
    envelope_free(&env);
    touch("state", "00000000000ORPHN");
    assert_int_equal(queue_clean_state(spool), 1);
    assert_int_equal(count_files("state"), 1); /* the one with a queue file stays */
}

/* ---- group commit (queue_commit_round, and the committer thread of commit.h) ---------- */

/* A writer with one recipient and body "message N"; its qid goes to qid. */
static struct queue_writer *open_message(int n, char qid[QUEUE_ID_MAX])
{
    struct envelope env;
    make_env(&env);
    struct queue_writer *w = queue_writer_open(spool, &env);
    assert_non_null(w);
    char body[64];
    int len = snprintf(body, sizeof body, "message %d\r\n", n);
    assert_int_equal(queue_writer_write(w, body, (size_t)len), 0);
    str_copy(qid, QUEUE_ID_MAX, env.qid);
    envelope_free(&env);
    return w;
}

/* The committed file of qid holds body "message N". */
static void assert_queued(const char *qid, int n)
{
    struct envelope env;
    envelope_init(&env);
    int fd;
    off_t off;
    assert_int_equal(queue_load(spool, qid, &env, &fd, &off), 0);
    char buf[64], want[64];
    ssize_t r = pread(fd, buf, sizeof buf - 1, off);
    assert_true(r > 0);
    buf[r] = '\0';
    snprintf(want, sizeof want, "message %d\r\n", n);
    assert_string_equal(buf, want);
    close(fd);
    envelope_free(&env);
}

static void test_round_pipeline(void **state)
{
    (void)state;
    struct queue_writer *w[3], *none = NULL;
    char qid[3][QUEUE_ID_MAX];
    int errs[3], unused = 0;
    for (int i = 0; i < 3; i++)
        w[i] = open_message(i, qid[i]);
    assert_int_equal(count_files("tmp"), named_files(3));
    /* Round 1: synced and renamed, not reported yet; the writers live on. */
    queue_commit_round(w, 3, errs, &none, 0, &unused);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(errs[i], 0);
        assert_non_null(w[i]);
    }
    assert_int_equal(count_files("tmp"), 0);
    assert_int_equal(count_files("queue"), 3);
    /* Round 2: their renames made durable; freed (ASan checks). A fresh one joins. */
    struct queue_writer *fresh[1];
    char qid4[QUEUE_ID_MAX];
    int ferr[1];
    fresh[0] = open_message(4, qid4);
    queue_commit_round(fresh, 1, ferr, w, 3, errs);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(errs[i], 0);
        assert_null(w[i]);
        assert_queued(qid[i], i);
    }
    assert_int_equal(ferr[0], 0);
    queue_commit_round(&none, 0, &unused, fresh, 1, ferr);
    assert_int_equal(ferr[0], 0);
    assert_queued(qid4, 4);
    assert_int_equal(count_files("queue"), 4);
}

/* A rename that fails (queue/ is gone): that message fails at once, nothing is left in
 * tmp/, and the other message of the round is unaffected. */
static void test_round_failure(void **state)
{
    (void)state;
    char qid[2][QUEUE_ID_MAX], path[400];
    struct queue_writer *w[2] = {open_message(0, qid[0]), open_message(1, qid[1])};
    int errs[2], unused = 0;
    struct queue_writer *none = NULL;
    snprintf(path, sizeof path, "%s/queue", spool);
    assert_int_equal(rmdir(path), 0);
    queue_commit_round(w, 2, errs, &none, 0, &unused);
    assert_int_equal(errs[0], ENOENT);
    assert_int_equal(errs[1], ENOENT);
    assert_null(w[0]);
    assert_null(w[1]);
    assert_int_equal(count_files("tmp"), 0);
}

/* A round bigger than the parallel-fsync limit takes the syncfs path: every message of it
 * ends up in queue/, complete, and the next round reports them all durable. */
static void test_round_big(void **state)
{
    (void)state;
    enum { N = 40 };
    struct queue_writer *w[N], *none = NULL;
    char qid[N][QUEUE_ID_MAX];
    int errs[N], unused = 0;
    for (int i = 0; i < N; i++)
        w[i] = open_message(i, qid[i]);
    queue_commit_round(w, N, errs, &none, 0, &unused);
    for (int i = 0; i < N; i++)
        assert_int_equal(errs[i], 0);
    assert_int_equal(count_files("queue"), N);
    queue_commit_round(&none, 0, &unused, w, N, errs);
    for (int i = 0; i < N; i++) {
        assert_int_equal(errs[i], 0);
        assert_null(w[i]);
        assert_queued(qid[i], i);
    }
}

struct tally {
    struct event_base *base;
    int done, failed, expect;
};

static void on_done(void *arg, int err)
{
    struct tally *t = arg;
    t->done++;
    if (err)
        t->failed++;
    if (t->done == t->expect)
        event_base_loopbreak(t->base);
}

static void on_cancelled(void *arg, int err)
{
    (void)arg, (void)err;
    fail_msg("a cancelled request was reported");
}

static void test_committer(void **state)
{
    (void)state;
    struct tally t = {.base = event_base_new(), .expect = 20};
    assert_non_null(t.base);
    struct committer *c = committer_new(t.base);
    assert_non_null(c);
    char qid[21][QUEUE_ID_MAX];
    for (int i = 0; i < 20; i++)
        committer_submit(c, open_message(i, qid[i]), on_done, &t);
    committer_cancel(committer_submit(c, open_message(20, qid[20]), on_cancelled, NULL));
    struct timeval limit = {60, 0}; /* a hang fails the test instead of blocking the run */
    event_base_loopexit(t.base, &limit);
    assert_int_equal(event_base_dispatch(t.base), 0);
    assert_int_equal(t.done, 20);
    assert_int_equal(t.failed, 0);
    for (int i = 0; i < 20; i++)
        assert_queued(qid[i], i);
    committer_free(c); /* finishes the cancelled one too: committed, just not reported */
    assert_queued(qid[20], 20);
    assert_int_equal(count_files("queue"), 21);
    assert_int_equal(count_files("tmp"), 0);
    event_base_free(t.base);
}

static int setup_named(void **state)
{
    unnamed_mode = false;
    queue_allow_unnamed(false);
    return setup(state);
}

/* Unnamed where this kernel and file system allow it (O_TMPFILE and /proc/self/fd). */
static int setup_unnamed(void **state)
{
    unnamed_mode = true;
    queue_allow_unnamed(true);
    int rc = setup(state);
    int fd = open(spool, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        print_message("no O_TMPFILE here (%s): testing the named path twice\n", strerror(errno));
        unnamed_mode = false;
        queue_allow_unnamed(false);
    } else {
        close(fd);
    }
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_ids),
        cmocka_unit_test_setup_teardown(test_commit, setup_named, teardown),
        cmocka_unit_test_setup_teardown(test_commit, setup_unnamed, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup_named, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup_unnamed, teardown),
        cmocka_unit_test_setup_teardown(test_commit_failure, setup_named, teardown),
        cmocka_unit_test_setup_teardown(test_commit_failure, setup_unnamed, teardown),
        cmocka_unit_test_setup_teardown(test_open_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_creates_spool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enospc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_tmp, setup_named, teardown),
        cmocka_unit_test_setup_teardown(test_clean_tmp, setup_unnamed, teardown),
        cmocka_unit_test_setup_teardown(test_scan_state_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_pipeline, setup_named, teardown),
        cmocka_unit_test_setup_teardown(test_round_pipeline, setup_unnamed, teardown),
        cmocka_unit_test_setup_teardown(test_round_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_committer, setup_named, teardown),
        cmocka_unit_test_setup_teardown(test_committer, setup_unnamed, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
