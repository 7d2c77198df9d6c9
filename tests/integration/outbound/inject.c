/* inject.c - put a message straight into tern's queue with the queue writer API, as the SMTP
 * server would after end of data: for outbound delivery tests, which need mail to remote
 * domains that the server (rightly) refuses to relay for an unauthenticated client.
 *
 *   outbound_inject -s SPOOL -f SENDER [-R full|hdrs] [-E ENVID-XTEXT]
 *                   [-B 7bit|8bitmime|binarymime] [-U] [-A SECONDS]
 *                   -t RCPT [-n NOTIFY] [-o ORCPT] [-t RCPT ...] < MESSAGE
 *
 * -A backdates the arrival time by SECONDS (to test the queue lifetime).
 * -n (NEVER or a comma list of SUCCESS,FAILURE,DELAY) and -o ("rfc822;xtext") apply to the
 * -t before them. The message is read from standard input; bare LF line ends become CRLF
 * (the queue holds what SMTP carried). Prints the queue ID. Run as root, it first takes the
 * owner of SPOOL (the user tern runs as), so the queue manager can read and remove the file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "queue.h"
#include "smtp_parse.h"

static unsigned parse_notify(const char *s)
{
    if (strcmp(s, "NEVER") == 0)
        return NOTIFY_NEVER;
    unsigned v = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "SUCCESS") == 0)
            v |= NOTIFY_SUCCESS;
        else if (strcmp(t, "FAILURE") == 0)
            v |= NOTIFY_FAILURE;
        else if (strcmp(t, "DELAY") == 0)
            v |= NOTIFY_DELAY;
        else {
            fprintf(stderr, "outbound_inject: bad NOTIFY %s\n", s);
            exit(2);
        }
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *spool = NULL;
    struct envelope env;
    envelope_init(&env);
    envelope_set(&env.sender, "");
    envelope_set(&env.envid, "");
    envelope_set(&env.client_addr, "127.0.0.1");
    envelope_set(&env.client_helo, "inject.test");
    envelope_set(&env.protocol, "ESMTP");
    env.arrival = time(NULL);
    int opt;
    while ((opt = getopt(argc, argv, "s:f:R:E:B:UA:t:n:o:")) != -1) {
        switch (opt) {
        case 's':
            spool = optarg;
            break;
        case 'f':
            envelope_set(&env.sender, optarg);
            break;
        case 'R':
            env.ret = strcmp(optarg, "full") == 0 ? RET_FULL : RET_HDRS;
            break;
        case 'E':
            envelope_set(&env.envid, optarg);
            break;
        case 'B':
            env.body = strcmp(optarg, "7bit") == 0       ? BODY_7BIT
                       : strcmp(optarg, "8bitmime") == 0 ? BODY_8BITMIME
                                                         : BODY_BINARYMIME;
            break;
        case 'A':
            env.arrival -= (time_t)atol(optarg);
            break;
        case 'U':
            env.smtputf8 = true;
            envelope_set(&env.protocol, "UTF8SMTP");
            break;
        case 't':
            envelope_add_rcpt(&env, optarg, 0, "");
            break;
        case 'n':
        case 'o':
            if (env.nrcpts == 0) {
                fprintf(stderr, "outbound_inject: -%c before any -t\n", opt);
                return 2;
            }
            if (opt == 'n')
                env.rcpts[env.nrcpts - 1].notify = parse_notify(optarg);
            else
                envelope_set(&env.rcpts[env.nrcpts - 1].orcpt, optarg);
            break;
        default:
            fprintf(stderr, "usage: outbound_inject -s SPOOL -f SENDER [-R full|hdrs] "
                            "[-E ENVID] [-B body] [-U] [-A SECONDS] -t RCPT [-n NOTIFY] "
                            "[-o ORCPT]... < MESSAGE\n");
            return 2;
        }
    }
    if (!spool || env.nrcpts == 0) {
        fprintf(stderr, "outbound_inject: -s and at least one -t are required\n");
        return 2;
    }
    struct stat st;
    if (geteuid() == 0 && stat(spool, &st) == 0 && st.st_uid != 0) {
        if (setgid(st.st_gid) < 0 || setuid(st.st_uid) < 0) {
            perror("outbound_inject: cannot take the spool owner's identity");
            return 1;
        }
    }
    struct queue_writer *w = queue_writer_open(spool, &env);
    if (!w) {
        perror("outbound_inject: queue_writer_open");
        return 1;
    }
    char in[8192], out[2 * sizeof in];
    size_t n;
    int prev = 0;
    while ((n = fread(in, 1, sizeof in, stdin)) > 0) {
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            if (in[i] == '\n' && prev != '\r')
                out[o++] = '\r';
            out[o++] = in[i];
            prev = (unsigned char)in[i];
        }
        if (queue_writer_write(w, out, o) < 0) {
            perror("outbound_inject: write");
            queue_writer_abort(w);
            return 1;
        }
    }
    if (queue_writer_commit(w) < 0) {
        perror("outbound_inject: commit");
        return 1;
    }
    printf("%s\n", env.qid);
    envelope_free(&env);
    return 0;
}
