/* queue_cmd.c - `tern queue [list|show ID|flush [ID|@DOMAIN|@.DOMAIN]|delete ID|ALL|hold ID|
 * release ID|requeue]`, also run as `mailq` (a link named mailq lists the queue). Every
 * command is one request on the queue manager's control socket (control.c); the answers are
 * written for people. Nothing here reads the spool: with the server stopped, the commands say
 * so and exit 1. See docs/queue.md. */
#include "queue_cmd.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "util.h"

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [-c CONFIG] [COMMAND]\n"
            "  list                    the queued messages, held ones and deferred recipients\n"
            "                          with their last error (the default command)\n"
            "  show ID                 one message: envelope, recipients' state and content\n"
            "  flush [ID|@DOMAIN|@.DOMAIN]\n"
            "                          retry now (everything, one message, the recipients at\n"
            "                          DOMAIN, or at DOMAIN and its subdomains)\n"
            "  delete ID|ALL           remove messages from the queue (no bounce is sent)\n"
            "  hold ID                 keep a message from being delivered\n"
            "  release ID              deliver a held message again, now\n"
            "  requeue                 re-read the queue from disk and route everything again now\n"
            "options:\n"
            "  -c, --config PATH       the configuration of the running server (default:\n"
            "                          $TERN_CONFIG, /etc/tern/tern.conf, or the built-in one)\n",
            prog);
}

int queue_cmd_request(const struct config *cfg, const char *prog, const char *request)
{
    char err[600], *reply = NULL;
    long n = control_request(cfg, request, &reply, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    fputs(reply, stdout);
    free(reply);
    /* A short confirmation for the commands that change something. */
    char verb[16];
    size_t vl = strcspn(request, " ");
    str_copy(verb, vl + 1 < sizeof verb ? vl + 1 : sizeof verb, request);
    const char *arg = request[vl] ? request + vl + 1 : "";
    if (strcmp(verb, "FLUSH") == 0)
        printf("%ld message%s scheduled for delivery now\n", n, n == 1 ? "" : "s");
    else if (strcmp(verb, "DELETE") == 0)
        printf("%ld message%s deleted\n", n, n == 1 ? "" : "s");
    else if (strcmp(verb, "HOLD") == 0)
        printf("%s: held\n", arg);
    else if (strcmp(verb, "RELEASE") == 0)
        printf("%s: released, delivery starts now\n", arg);
    else if (strcmp(verb, "REQUEUE") == 0)
        printf("queue re-read: %ld message%s routed again now\n", n, n == 1 ? "" : "s");
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: cannot write the answer\n", prog);
        return 1;
    }
    return 0;
}

/* The request for a command and its arguments; NULL (and a message) on a usage error. */
static const char *build_request(const char *prog, int argc, char **argv, char *buf, size_t cap)
{
    static const struct {
        const char *cmd, *verb;
        int min, max; /* number of arguments */
    } cmds[] = {
        {"list", "LIST", 0, 0},   {"show", "SHOW", 1, 1},       {"flush", "FLUSH", 0, 1},
        {"delete", "DELETE", 1, 1}, {"hold", "HOLD", 1, 1},     {"release", "RELEASE", 1, 1},
        {"requeue", "REQUEUE", 0, 0},
    };
    const char *cmd = argc > 0 ? argv[0] : "list";
    for (size_t i = 0; i < ARRAY_LEN(cmds); i++) {
        if (strcmp(cmds[i].cmd, cmd) != 0)
            continue;
        int nargs = argc > 0 ? argc - 1 : 0;
        if (nargs < cmds[i].min || nargs > cmds[i].max) {
            fprintf(stderr, "%s: %s takes %s\n", prog, cmd,
                    cmds[i].max == 0   ? "no argument"
                    : cmds[i].min == 0 ? "at most one argument"
                                       : "one argument");
            return NULL;
        }
        const char *arg = nargs ? argv[1] : "";
        if (str_ieq(arg, "all") && strcmp(cmds[i].verb, "DELETE") == 0)
            arg = "ALL";
        if (strchr(arg, '\n') || strchr(arg, ' ') || strlen(arg) > 512) {
            fprintf(stderr, "%s: invalid argument\n", prog);
            return NULL;
        }
        snprintf(buf, cap, "%s%s%s", cmds[i].verb, nargs ? " " : "", arg);
        return buf;
    }
    fprintf(stderr, "%s: unknown command '%s'\n", prog, cmd);
    return NULL;
}

int queue_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *prog = strcmp(argv[0], "mailq") == 0 ? "mailq" : "tern queue";
    signal(SIGPIPE, SIG_IGN); /* a peer gone away is an error to report, not a kill */
    const char *config_path = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'h': usage(stdout, prog); return 0;
        default: usage(stderr, prog); return 2;
        }
    }
    char req[600];
    if (!build_request(prog, argc - optind, argv + optind, req, sizeof req)) {
        usage(stderr, prog);
        return 2;
    }
    struct config cfg = {0};
    char err[512];
    if (control_config_load(&cfg, config_path, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    int rc = queue_cmd_request(&cfg, prog, req);
    config_free(&cfg);
    return rc;
}
