/* fuzz_queue_file.c - libFuzzer target for queue_load (queue.c): a queue file and its state
 * file are read back from disk by the queue manager, and a damaged disk, a stray edit or a
 * crash half-way must not crash it. The input is "QUEUE FILE" optionally followed by
 * "\n=====\n" and "STATE FILE"; both are written into a private spool under /dev/shm (or
 * /tmp) as queue/<qid> and state/<qid> (qid taken from the input's "qid" line when it is a
 * valid one). Whatever loads must serialise, save its state and load again with the same
 * per-recipient state (queue_save_state / queue_load round trip). */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope.h"
#include "log.h"
#include "queue.h"
#include "util.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

static char spool[200];

static void write_file(const char *sub, const char *qid, const char *buf, size_t len)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s/%s", spool, sub, qid);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(write_all(fd, buf, len) == 0);
    REQUIRE(close(fd) == 0);
}

static void remove_file(const char *sub, const char *qid)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s/%s", spool, sub, qid);
    unlink(path);
}

static void cleanup(void)
{
    static const char *const subs[] = {"queue", "tmp", "state"};
    for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", spool, subs[i]);
        rmdir(path);
    }
    rmdir(spool);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    log_init("fuzz", LOG_TO_STDERR, LOG_EMERG);
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(spool, sizeof spool, "%s/tern-fuzz-queue-%ld", base, (long)getpid());
    REQUIRE(queue_init(spool) == 0);
    atexit(cleanup);
    return 0;
}

/* The value of the first "qid " line, if it is a valid queue ID. */
static void pick_qid(const char *in, size_t len, char qid[QUEUE_ID_MAX])
{
    str_copy(qid, QUEUE_ID_MAX, "FUZZ000000000001");
    for (size_t i = 0; i + 4 < len; i++) {
        if ((i == 0 || in[i - 1] == '\n') && memcmp(in + i, "qid ", 4) == 0) {
            size_t e = i + 4;
            while (e < len && in[e] != '\n')
                e++;
            char cand[QUEUE_ID_MAX];
            if (e - i - 4 < sizeof cand) {
                memcpy(cand, in + i + 4, e - i - 4);
                cand[e - i - 4] = '\0';
                if (queue_id_valid(cand))
                    str_copy(qid, QUEUE_ID_MAX, cand);
            }
            return;
        }
    }
}

static const char sep[] = "\n=====\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *s = memmem(in, size, sep, sizeof sep - 1);
    size_t qlen = s ? (size_t)(s - in) : size;
    char qid[QUEUE_ID_MAX];
    pick_qid(in, qlen, qid);
    write_file("queue", qid, in, qlen);
    if (s)
        write_file("state", qid, s + sizeof sep - 1, size - qlen - (sizeof sep - 1));

    struct envelope env;
    envelope_init(&env);
    int fd = -1;
    off_t off = -1;
    if (queue_load(spool, qid, &env, &fd, &off) == 0) {
        REQUIRE(fd >= 0 && off > 0 && (size_t)off <= qlen);
        REQUIRE(strcmp(env.qid, qid) == 0);
        char c;
        REQUIRE(pread(fd, &c, 1, off) == (qlen > (size_t)off ? 1 : 0));
        close(fd);
        size_t flen;
        char *text = envelope_format(&env, &flen);
        free(text);
        REQUIRE(queue_save_state(spool, &env) == 0);
        struct envelope again;
        envelope_init(&again);
        REQUIRE(queue_load(spool, qid, &again, &fd, &off) == 0);
        close(fd);
        REQUIRE(again.nrcpts == env.nrcpts);
        for (size_t i = 0; i < env.nrcpts; i++) {
            REQUIRE(again.rcpts[i].status == env.rcpts[i].status);
            REQUIRE(again.rcpts[i].attempts == env.rcpts[i].attempts);
            REQUIRE(again.rcpts[i].next_try == env.rcpts[i].next_try);
            REQUIRE(strcmp(again.rcpts[i].last_reply, env.rcpts[i].last_reply) == 0);
        }
        envelope_free(&again);
        REQUIRE(queue_remove(spool, qid) == 0);
    }
    envelope_free(&env);
    remove_file("queue", qid);
    remove_file("state", qid);
    return 0;
}
