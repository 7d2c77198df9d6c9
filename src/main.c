/* main.c - the `tern` binary: one table of subcommands, each a function and a line of help.
 * `tern serve` (serve.c) is the mail server; `tern send` (send.c) and `tern check` (check.c)
 * are the diagnostic client; later subcommands (queue, user, sendmail) join the table. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "queue_cmd.h"
#include "newaliases.h"
#include "send.h"
#include "sendmail.h"
#include "serve.h"
#include "user_cmd.h"
#include "util.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
    const char *help;
};

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const struct command commands[] = {
    {"serve", serve_main, "run the mail server in the foreground (-c FILE, --check)"},
    {"send", send_main, "walk one SMTP session and explain every reply (--to ADDR ...)"},
    {"check", check_main, "deliverability report for a mail domain (MX, TLS, SPF, DMARC, ...)"},
    {"user", user_main, "manage the SMTP AUTH users file (add, passwd, del, list)"},
    {"queue", queue_main, "list and manage the queue (list, show, flush, delete, hold, release, requeue)"},
    {"sendmail", sendmail_main, "sendmail-compatible submission (-t, -i, -f, -bs, -bp, -q ...)"},
    {"newaliases", newaliases_main, "check the alias files and make the server reload them"},
    {"version", cmd_version, "print tern's version"},
    {"help", cmd_help, "list the commands"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: tern COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`tern COMMAND --help` describes a command's options.\n");
}

static int cmd_version(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: tern version\n");
        return 2;
    }
    printf("tern %s\n", TERN_VERSION);
    return 0;
}

static int cmd_help(int argc, char **argv)
{
    (void)argc, (void)argv;
    usage(stdout);
    return 0;
}

/* Installed as links named mailq and sendmail (make install), tern is those programs. */
static const char *invoked_as(const char *argv0)
{
    const char *slash = strrchr(argv0, '/');
    return slash ? slash + 1 : argv0;
}

int main(int argc, char **argv)
{
    const char *self = argc > 0 ? invoked_as(argv[0]) : "tern";
    if (strcmp(self, "mailq") == 0) {
        argv[0] = "mailq";
        return queue_main(argc, argv);
    }
    if (strcmp(self, "sendmail") == 0) {
        argv[0] = "sendmail";
        return sendmail_main(argc, argv);
    }
    if (strcmp(self, "newaliases") == 0)
        return newaliases_main(argc, argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0)
        name = "help";
    else if (strcmp(name, "-V") == 0 || strcmp(name, "--version") == 0)
        name = "version";
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        if (strcmp(commands[i].name, name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tern: unknown command '%s'\n\n", name);
    usage(stderr);
    return 2;
}
