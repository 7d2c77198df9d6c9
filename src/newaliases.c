/* newaliases.c - `tern newaliases` (also run when the binary is called "newaliases"): check
 * the alias files of a configuration and make a running server reload them.
 *
 * tern has no alias database file: the server reads the text files at start and on SIGHUP.
 * So this command validates them (every error as file:line), reports what would be refused
 * or is suspicious, and sends SIGHUP to the running `tern serve`. That supervisor is found
 * as the holder of the spool lock (serve.c locks the spool directory with flock; the
 * kernel lists the holder in /proc/locks), so there is no pid file to trust or go stale. */
#include "newaliases.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "aliases.h"
#include "aliases_load.h"
#include "config.h"
#include "util.h"

#define DEFAULT_CONFIG "/etc/tern/tern.conf"

static void usage(FILE *f)
{
    fprintf(f, "usage: tern newaliases [-c FILE] [-n]\n"
               "  -c, --config FILE  the configuration naming the alias files (default "
               DEFAULT_CONFIG " if it exists, else the built-in one)\n"
               "  -n, --check        only check the files; do not signal the server\n"
               "Checks the aliases, virtual_aliases and relocated files and their :include:\n"
               "files, then makes a running tern serve reload them (SIGHUP). There is no\n"
               "database to build: tern reads the text files themselves.\n");
}

/* Is pid a `tern serve` process? Its command line has the argument "serve". */
static bool is_tern_serve(long pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
        if (strcmp(buf + i, "serve") == 0)
            return true;
    return false;
}

/* The pid holding the flock on the spool directory, 0 if none, -1 if we cannot tell. */
static long spool_lock_holder(const char *spool)
{
    struct stat st;
    if (stat(spool, &st) < 0)
        return 0; /* no spool: no server has run with this configuration */
    FILE *f = fopen("/proc/locks", "re");
    if (!f)
        return -1;
    char line[256];
    long found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        /* "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters have "->" first */
        char type[16];
        long pid;
        unsigned maj, min;
        unsigned long ino;
        if (sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%lu", type, &pid, &maj, &min, &ino) == 5 &&
            strcmp(type, "FLOCK") == 0 && ino == (unsigned long)st.st_ino &&
            maj == major(st.st_dev) && min == minor(st.st_dev) && is_tern_serve(pid))
            found = pid;
    }
    fclose(f);
    return found;
}

/* Expand every alias once, as a RCPT would, and warn about what will be refused (loops,
 * commands, files) or bounce (targets that are not mailboxes). These are warnings, not
 * errors: the server loads such files, and refuses only the affected recipients. */
static void check_expansions(const struct config *cfg, const struct alias_db *db, int *warnings)
{
    const struct alias_map *maps[] = {&db->local, &db->virt};
    for (size_t m = 0; m < ARRAY_LEN(maps); m++) {
        for (size_t i = 0; i < maps[m]->n; i++) {
            const struct alias_entry *e = &maps[m]->v[i];
            char addr[600];
            if (e->key[0] == '@')
                continue; /* a catch-all expands per address; its targets are checked too */
            if (m == 0 && cfg->nlocal_domains == 0) {
                printf("%s:%zu: warning: alias \"%s\" but no local_domain is configured\n",
                       e->file, e->line, e->key);
                ++*warnings;
                continue;
            }
            if (m == 0)
                snprintf(addr, sizeof addr, "%s@%s", e->key, cfg->local_domains[0]);
            else
                str_copy(addr, sizeof addr, e->key);
            struct alias_expansion ex;
            enum alias_status st = aliases_expand(db, cfg, addr, &ex);
            if (st == ALIAS_LOOP || st == ALIAS_TOO_DEEP || st == ALIAS_TOO_MANY) {
                printf("%s:%zu: warning: %s: %s (refused with 550 5.4.6)\n", e->file, e->line,
                       e->key, ex.detail);
                ++*warnings;
            } else if (st == ALIAS_REFUSED) {
                printf("%s:%zu: warning: %s: target %s is refused (550 5.7.1): %s\n", e->file,
                       e->line, e->key, ex.detail,
                       ex.detail[0] == '|' ? "commands need allow_pipe_aliases on and must be "
                                             "in the aliases file itself"
                                           : "tern does not deliver to files");
                ++*warnings;
            }
            for (size_t k = 0; st == ALIAS_EXPANDED && k < ex.n; k++) {
                const char *at = strrchr(ex.addrs[k], '@');
                if (ex.addrs[k][0] == '|' || !at)
                    continue; /* a command (allow_pipe_aliases on) */
                char local[600];
                snprintf(local, sizeof local, "%.*s", (int)(at - ex.addrs[k]), ex.addrs[k]);
                if (config_is_local_domain(cfg, at + 1) &&
                    !config_has_mailbox(cfg, local, at + 1)) {
                    printf("%s:%zu: warning: %s: target <%s> is not a mailbox (mail for it "
                           "will bounce)\n", e->file, e->line, e->key, ex.addrs[k]);
                    ++*warnings;
                }
            }
            alias_expansion_free(&ex);
        }
    }
}

int newaliases_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    bool check_only = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:nh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'n': check_only = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!config_path && access(DEFAULT_CONFIG, F_OK) == 0)
        config_path = DEFAULT_CONFIG;

    char err[2048];
    struct config cfg;
    if (config_load(&cfg, config_path, err, sizeof err) < 0) {
        fprintf(stderr, "newaliases: %s\n", err);
        return 1;
    }
    int rc = 1;
    if (aliases_load(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "newaliases: %s\n", err);
        goto out;
    }
    if (!cfg.aliases) {
        fprintf(stderr, "newaliases: %s names no alias file (aliases, virtual_aliases, "
                        "relocated)\n", cfg.path);
        goto out;
    }
    const struct alias_db *db = cfg.aliases;
    int warnings = 0;
    check_expansions(&cfg, db, &warnings);
    printf("newaliases: %s: %zu aliases, %zu virtual aliases, %zu relocated, %zu :include: "
           "files; %d warning%s\n", cfg.path, db->local.n, db->virt.n, db->relocated.n,
           db->include.n, warnings, warnings == 1 ? "" : "s");
    rc = 0;
    if (check_only)
        goto out;
    long pid = spool_lock_holder(cfg.spool_dir);
    if (pid < 0) {
        printf("newaliases: cannot read /proc/locks (%s); reload tern serve by hand (SIGHUP)\n",
               strerror(errno));
    } else if (pid == 0) {
        printf("newaliases: no tern serve is running on spool %s; the files are read when it "
               "starts\n", cfg.spool_dir);
    } else if (kill((pid_t)pid, SIGHUP) < 0) {
        fprintf(stderr, "newaliases: cannot signal tern serve (pid %ld): %s\n", pid,
                strerror(errno));
        rc = 1;
    } else {
        printf("newaliases: tern serve (pid %ld) is reloading its configuration\n", pid);
    }
out:
    config_free(&cfg);
    return rc;
}
