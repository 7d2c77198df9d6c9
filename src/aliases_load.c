/* aliases_load.c - reading the alias files named in the configuration (aliases,
 * virtual_aliases, relocated) and every :include: file they name, into one struct alias_db.
 * The supervisor calls it at start and on SIGHUP, before dropping privileges; `tern
 * newaliases` calls it to validate. Parsing itself is aliases.c's (pure). */
#include "aliases_load.h"

#include <stdlib.h>
#include <string.h>

#include "aliases.h"
#include "config.h"
#include "util.h"

#define ALIAS_FILE_MAX (64u << 20)

static int load_file(struct alias_db *db, struct alias_map *map, enum alias_format fmt,
                     const char *path, char *err, size_t errlen)
{
    size_t len;
    char *text = read_text_file(path, ALIAS_FILE_MAX, &len, err, errlen);
    if (!text)
        return -1;
    int rc = aliases_parse(db, map, fmt, path, text, len, err, errlen);
    free(text);
    return rc;
}

static bool include_loaded(const struct alias_db *db, const char *path)
{
    for (size_t i = 0; i < db->include.n; i++)
        if (strcmp(db->include.v[i].key, path) == 0)
            return true;
    return false;
}

/* Read the :include: files the entries of map name (not yet read). */
static int load_includes(struct alias_db *db, const struct alias_map *map, size_t from,
                         char *err, size_t errlen)
{
    for (size_t i = from; i < map->n; i++) {
        for (size_t j = 0; j < map->v[i].n; j++) {
            const struct alias_target *t = &map->v[i].t[j];
            if (t->kind != AT_INCLUDE || include_loaded(db, t->value))
                continue;
            /* Copy what we need: reading may move map->v when map is db->include. */
            char *path = xstrdup(t->value), *file = xstrdup(map->v[i].file);
            size_t line = map->v[i].line;
            char why[512];
            int rc = load_file(db, &db->include, ALIAS_FMT_INCLUDE, path, why, sizeof why);
            if (rc < 0)
                errorf(err, errlen, "%s:%zu: :include:%s: %s", file, line, path, why);
            free(path);
            free(file);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

int aliases_load(struct config *cfg, char *err, size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    if (!cfg->aliases_file && !cfg->virtual_aliases_file && !cfg->relocated_file)
        return 0;
    struct alias_db *db = xcalloc(1, sizeof *db);
    db->allow_include = cfg->allow_include;
    db->allow_pipe = cfg->allow_pipe_aliases;
    if ((cfg->aliases_file &&
         load_file(db, &db->local, ALIAS_FMT_LOCAL, cfg->aliases_file, err, errlen) < 0) ||
        (cfg->virtual_aliases_file && load_file(db, &db->virt, ALIAS_FMT_VIRTUAL,
                                                cfg->virtual_aliases_file, err, errlen) < 0) ||
        (cfg->relocated_file && load_file(db, &db->relocated, ALIAS_FMT_RELOCATED,
                                          cfg->relocated_file, err, errlen) < 0) ||
        load_includes(db, &db->local, 0, err, errlen) < 0 ||
        load_includes(db, &db->virt, 0, err, errlen) < 0 ||
        load_includes(db, &db->include, 0, err, errlen) < 0 || /* nested, as it grows */
        aliases_finish(db, err, errlen) < 0) {
        aliases_free(db);
        free(db);
        return -1;
    }
    aliases_free(cfg->aliases);
    free(cfg->aliases);
    cfg->aliases = db;
    return 0;
}
