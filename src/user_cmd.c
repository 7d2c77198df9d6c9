/* user_cmd.c - `tern user add|passwd|del|list`: the command-line editor of the users file
 * that SMTP AUTH (RFC 4954) checks. Passwords come from a no-echo prompt on the terminal or
 * from --password-stdin; --password exists for tests only (it shows in `ps`). The file is
 * rewritten atomically by users_save. See docs/auth.md. */
#include "user_cmd.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "config.h"
#include "users.h"
#include "util.h"

#define PASSWORD_MAX 1024

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tern user (-f USERS_FILE | -c CONFIG) COMMAND [options]\n"
            "  add NAME [--cram] [--password-stdin]   add a user (prompts for the password)\n"
            "  passwd NAME [--cram] [--password-stdin] change a user's password\n"
            "  del NAME                               remove a user\n"
            "  list                                   list users and their mechanisms\n"
            "options:\n"
            "  -f, --file PATH      the users file (default: users_file of -c CONFIG)\n"
            "  -c, --config PATH    read users_file from this configuration\n"
            "  --cram               also store a CRAM-MD5 secret (plaintext-equivalent!)\n"
            "  --iterations N       SCRAM-SHA-256 PBKDF2 iterations (default %d, min 4096)\n"
            "  --password-stdin     read the password from the first line of stdin\n"
            "  --password PW        the password itself; for tests only (visible in ps)\n",
            USERS_SCRAM_ITER_DEFAULT);
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

static int read_line_stdin(char *buf, size_t cap)
{
    if (!fgets(buf, (int)cap, stdin))
        return -1;
    if (!strchr(buf, '\n') && !feof(stdin))
        return -1; /* too long */
    chomp(buf);
    return 0;
}

/* Prompt on the terminal without echo. */
static int prompt(const char *what, char *buf, size_t cap)
{
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty)
        return -1;
    struct termios old, quiet;
    int fd = fileno(tty);
    if (tcgetattr(fd, &old) < 0) {
        fclose(tty);
        return -1;
    }
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    fprintf(tty, "%s", what);
    fflush(tty);
    int rc = -1;
    if (tcsetattr(fd, TCSAFLUSH, &quiet) == 0) {
        if (fgets(buf, (int)cap, tty)) {
            chomp(buf);
            rc = 0;
        }
        (void)tcsetattr(fd, TCSAFLUSH, &old);
    }
    fprintf(tty, "\n");
    fclose(tty);
    return rc;
}

static int get_password(bool from_stdin, const char *given, char *buf, size_t cap)
{
    if (given) {
        if (!str_copy(buf, cap, given)) {
            fprintf(stderr, "tern user: password too long\n");
            return -1;
        }
    } else if (from_stdin) {
        if (read_line_stdin(buf, cap) < 0) {
            fprintf(stderr, "tern user: no password (or longer than %zu) on stdin\n", cap - 2);
            return -1;
        }
    } else {
        char again[PASSWORD_MAX];
        if (prompt("Password: ", buf, cap) < 0 || prompt("Again: ", again, sizeof again) < 0) {
            fprintf(stderr, "tern user: cannot prompt for a password (no terminal); "
                            "use --password-stdin\n");
            return -1;
        }
        bool same = strcmp(buf, again) == 0;
        OPENSSL_cleanse(again, sizeof again);
        if (!same) {
            fprintf(stderr, "tern user: the passwords differ\n");
            return -1;
        }
    }
    if (buf[0] == '\0') {
        fprintf(stderr, "tern user: empty password\n");
        return -1;
    }
    return 0;
}

int user_main(int argc, char **argv)
{
    enum { OPT_CRAM = 256, OPT_STDIN, OPT_PASSWORD, OPT_ITER };
    static const struct option opts[] = {
        {"file", required_argument, NULL, 'f'},
        {"config", required_argument, NULL, 'c'},
        {"cram", no_argument, NULL, OPT_CRAM},
        {"password-stdin", no_argument, NULL, OPT_STDIN},
        {"password", required_argument, NULL, OPT_PASSWORD},
        {"iterations", required_argument, NULL, OPT_ITER},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = NULL, *config_path = NULL, *given = NULL;
    bool cram = false, from_stdin = false;
    unsigned iter = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': file = optarg; break;
        case 'c': config_path = optarg; break;
        case OPT_CRAM: cram = true; break;
        case OPT_STDIN: from_stdin = true; break;
        case OPT_PASSWORD: given = optarg; break;
        case OPT_ITER: {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || *end || v < 4096 || v > 10000000) {
                fprintf(stderr, "tern user: --iterations: 4096 to 10000000\n");
                return 2;
            }
            iter = (unsigned)v;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    /* GNU getopt permutes: options may also follow the subcommand ("tern user add bob --cram") */
    const char *cmd = optind < argc ? argv[optind++] : NULL;
    const char *name = optind < argc ? argv[optind++] : NULL;
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (!cmd) {
        usage(stderr);
        return 2;
    }
    bool needs_name = strcmp(cmd, "list") != 0;
    if (strcmp(cmd, "add") && strcmp(cmd, "passwd") && strcmp(cmd, "del") &&
        strcmp(cmd, "list")) {
        fprintf(stderr, "tern user: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    if (needs_name != (name != NULL)) {
        usage(stderr);
        return 2;
    }

    char err[512];
    struct config cfg = {0};
    if (!file && config_path) {
        if (config_load(&cfg, config_path, err, sizeof err) < 0) {
            fprintf(stderr, "tern user: %s\n", err);
            return 1;
        }
        file = cfg.users_file;
    }
    if (!file) {
        fprintf(stderr, "tern user: which users file? give -f PATH, or -c CONFIG with "
                        "users_file\n");
        config_free(&cfg);
        return 2;
    }

    struct users u;
    int rc = 1;
    bool creating = strcmp(cmd, "add") == 0;
    if (users_load(&u, file, creating, err, sizeof err) < 0) {
        fprintf(stderr, "tern user: %s\n", err);
        config_free(&cfg);
        return 1;
    }
    if (strcmp(cmd, "list") == 0) {
        for (size_t i = 0; i < u.n; i++)
            printf("%s\tPLAIN LOGIN%s%s\n", u.v[i].name, u.v[i].has_scram ? " SCRAM-SHA-256" : "",
                   u.v[i].has_cram ? " CRAM-MD5" : "");
        rc = 0;
    } else if (strcmp(cmd, "del") == 0) {
        if (!users_remove(&u, name))
            fprintf(stderr, "tern user: no user '%s'\n", name);
        else if (users_save(&u, file, err, sizeof err) < 0)
            fprintf(stderr, "tern user: %s\n", err);
        else
            rc = 0;
    } else {
        bool exists = users_find(&u, name) != NULL;
        char pw[PASSWORD_MAX];
        struct user_entry e;
        if (creating && exists)
            fprintf(stderr, "tern user: user '%s' exists (use passwd)\n", name);
        else if (!creating && !exists)
            fprintf(stderr, "tern user: no user '%s'\n", name);
        else if (!users_name_valid(name))
            fprintf(stderr, "tern user: invalid user name '%s'\n", name);
        else if (get_password(from_stdin, given, pw, sizeof pw) == 0) {
            if (users_make_entry(&e, name, pw, cram, iter, err, sizeof err) < 0)
                fprintf(stderr, "tern user: %s\n", err);
            else {
                users_put(&u, &e, true);
                if (users_save(&u, file, err, sizeof err) < 0)
                    fprintf(stderr, "tern user: %s\n", err);
                else
                    rc = 0;
            }
        }
        OPENSSL_cleanse(pw, sizeof pw);
    }
    users_free(&u);
    config_free(&cfg);
    return rc;
}
