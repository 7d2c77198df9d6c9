/* fuzz_users.c - libFuzzer target for the users file parser (users.c; docs/auth.md): the
 * file is read by the server at start and by `tern user`, and may have been edited by hand.
 * Arbitrary text must parse or fail with "line N: ..."; what parses must format into lines
 * that parse again into the same entries, and every name must be found. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "users.h"
#include "fuzz.h"

static bool same_entry(const struct user_entry *a, const struct user_entry *b)
{
    return strcmp(a->name, b->name) == 0 && strcmp(a->crypt_hash, b->crypt_hash) == 0 &&
           a->has_scram == b->has_scram &&
           (!a->has_scram ||
            (a->scram_iter == b->scram_iter && a->scram_salt_len == b->scram_salt_len &&
             memcmp(a->scram_salt, b->scram_salt, a->scram_salt_len) == 0 &&
             memcmp(a->stored_key, b->stored_key, 32) == 0 &&
             memcmp(a->server_key, b->server_key, 32) == 0)) &&
           a->has_cram == b->has_cram && (!a->has_cram || memcmp(a->cram, b->cram, 32) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size heap copy: ASan sees any read past the end */
    char *text = malloc(size ? size : 1);
    REQUIRE(text);
    memcpy(text, data, size);
    struct users u;
    char err[256];
    err[0] = '\0';
    if (users_parse(&u, text, size, err, sizeof err) < 0) {
        REQUIRE(strncmp(err, "line ", 5) == 0);
        REQUIRE(u.n == 0);
        free(text);
        users_free(&u);
        return 0;
    }
    free(text);
    /* format every entry, parse the result as a file */
    size_t cap = 1, len = 0;
    char *all = malloc(cap);
    REQUIRE(all);
    for (size_t i = 0; i < u.n; i++) {
        REQUIRE(users_name_valid(u.v[i].name));
        REQUIRE(users_find(&u, u.v[i].name) == &u.v[i]);
        char *line = users_format(&u.v[i]);
        size_t l = strlen(line);
        all = realloc(all, cap = len + l + 2);
        REQUIRE(all);
        memcpy(all + len, line, l);
        len += l;
        all[len++] = '\n';
        free(line);
    }
    struct users again;
    REQUIRE(users_parse(&again, all, len, err, sizeof err) == 0);
    REQUIRE(again.n == u.n);
    for (size_t i = 0; i < u.n; i++)
        REQUIRE(same_entry(&u.v[i], &again.v[i]));
    if (u.n > 0) {
        char *name = strdup(u.v[0].name);
        REQUIRE(name && users_remove(&again, name) && !users_find(&again, name));
        free(name);
    }
    users_free(&again);
    users_free(&u);
    free(all);
    return 0;
}
