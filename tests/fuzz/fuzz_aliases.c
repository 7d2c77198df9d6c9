/* fuzz_aliases.c - libFuzzer target for the alias map parsers and the expansion: arbitrary
 * text (the first byte picks the format) must parse or fail with a "f:line: " message; every
 * entry of a parsed map must then expand without crashing, loop or leak, to addresses that
 * each contain '@' (or are "|command" with commands allowed) and appear once. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aliases.h"
#include "config.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config cfg;
static bool ready;

static void check_expansion(const struct alias_db *db, const char *addr)
{
    struct alias_expansion ex;
    enum alias_status st = aliases_expand(db, &cfg, addr, &ex);
    if (st == ALIAS_EXPANDED) {
        for (size_t i = 0; i < ex.n; i++) {
            /* an address, or a command only when commands are allowed ("|x"@y is an
             * address: its canonical form |x@y keeps the '@') */
            if (!strchr(ex.addrs[i], '@') && !(ex.addrs[i][0] == '|' && db->allow_pipe))
                abort();
            for (size_t j = 0; j < i; j++)
                if (str_ieq(ex.addrs[i], ex.addrs[j]))
                    abort();
        }
    }
    alias_expansion_free(&ex);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        const char *text = "listen 127.0.0.1:2525\nlocal_domain example.test\n"
                           "mailbox a@example.test b@example.test\n";
        char e[128];
        if (config_parse(&cfg, "c", text, strlen(text), e, sizeof e) < 0)
            abort();
        ready = true;
    }
    if (size == 0)
        return 0;
    struct alias_db db = {.allow_include = data[0] & 4, .allow_pipe = data[0] & 8};
    enum alias_format fmt = (enum alias_format)(data[0] % 4);
    struct alias_map *maps[] = {&db.local, &db.virt, &db.relocated, &db.include};
    char err[256];
    int rc = aliases_parse(&db, maps[fmt], fmt, "f", (const char *)data + 1, size - 1, err,
                           sizeof err);
    if (rc == 0)
        rc = aliases_finish(&db, err, sizeof err);
    if (rc < 0) {
        if (strncmp(err, "f:", 2) != 0)
            abort();
        aliases_free(&db);
        return 0;
    }
    for (size_t i = 0; i < maps[fmt]->n && i < 64; i++) {
        const char *key = maps[fmt]->v[i].key;
        char addr[600];
        if (fmt == ALIAS_FMT_LOCAL)
            snprintf(addr, sizeof addr, "%s@example.test", key);
        else if (key[0] == '@')
            snprintf(addr, sizeof addr, "x%s", key);
        else
            str_copy(addr, sizeof addr, key);
        check_expansion(&db, addr);
    }
    aliases_free(&db);
    return 0;
}
