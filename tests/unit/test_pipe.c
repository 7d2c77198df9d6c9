/* test_pipe.c - delivery to a "|command" alias target: the message and environment the
 * command gets, and how its exit status maps to delivered / retry / bounce. Real /bin/sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope.h"
#include "pipe.h"
#include "util.h"

static char dir[64];
static int msg_fd = -1;
static const char prefix[] = "tern-envelope 1\n\n"; /* stands for the queue file's envelope */

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(strcpy(dir, "/tmp/tern-pipe-XXXXXX")));
    char path[128];
    snprintf(path, sizeof path, "%s/queued", dir);
    FILE *f = fopen(path, "w+");
    assert_non_null(f);
    fprintf(f, "%sSubject: hello\r\n\r\nline one\r\nline two\r\n", prefix);
    fflush(f);
    msg_fd = dup(fileno(f));
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close(msg_fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static enum rcpt_status run(const char *cmd, char *reply, size_t cap)
{
    struct envelope env;
    envelope_init(&env);
    envelope_set(&env.sender, "sender@client.test");
    str_copy(env.qid, sizeof env.qid, "QID123");
    envelope_add_rcpt(&env, "|ignored", 0, "rfc822;list@example.test");
    enum rcpt_status st = pipe_deliver(&env, &env.rcpts[0], cmd, msg_fd,
                                       (off_t)strlen(prefix), reply, cap);
    envelope_free(&env);
    return st;
}

static void test_message_and_environment(void **state)
{
    (void)state;
    char cmd[256], reply[256], path[128];
    snprintf(path, sizeof path, "%s/out", dir);
    snprintf(cmd, sizeof cmd, "(echo \"$SENDER $RECIPIENT $QUEUE_ID\"; cat) > %s", path);
    assert_int_equal(run(cmd, reply, sizeof reply), RCPT_DELIVERED);
    assert_string_equal(reply, "2.0.0 delivered to command");
    size_t len;
    char *text = read_text_file(path, 1 << 16, &len, NULL, 0);
    assert_non_null(text);
    assert_string_equal(text, "sender@client.test list@example.test QID123\n"
                              "Return-Path: <sender@client.test>\n"
                              "Delivered-To: list@example.test\n"
                              "Subject: hello\n\nline one\nline two\n");
    free(text);
}

static void test_exit_status(void **state)
{
    (void)state;
    char reply[256];
    assert_int_equal(run("echo 'try again'; exit 75", reply, sizeof reply), RCPT_PENDING);
    assert_string_equal(reply, "4.3.0 command exited with status 75: try again");
    assert_int_equal(run("printf 'bad\\001\\nthing\\n' >&2; exit 67", reply, sizeof reply),
                     RCPT_FAILED);
    assert_string_equal(reply, "5.3.0 command exited with status 67: bad? thing");
    assert_int_equal(run("kill -TERM $$", reply, sizeof reply), RCPT_FAILED);
    assert_string_equal(reply, "5.3.0 command killed by signal 15");
    /* a command that does not read its input is fine */
    assert_int_equal(run("exit 0", reply, sizeof reply), RCPT_DELIVERED);
    assert_int_equal(run("/nonexistent/program", reply, sizeof reply), RCPT_FAILED);
    assert_non_null(strstr(reply, "status 127"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_and_environment),
        cmocka_unit_test(test_exit_status),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
