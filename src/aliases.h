/* aliases.h - alias maps: the /etc/aliases format, per-domain virtual aliases, the relocated
 * map, and the recursive expansion of a recipient through them (docs/aliases.md).
 *
 * Everything here is pure (text in, structures out; no file I/O), so it is unit-tested and
 * fuzzed. aliases_load.c reads the files, follows :include: and fills a struct alias_db. */
#ifndef TERN_ALIASES_H
#define TERN_ALIASES_H

#include <stdbool.h>
#include <stddef.h>

struct config;

#define ALIAS_MAX_DEPTH 20       /* nesting of aliases (and :include:) before we give up */
#define ALIAS_MAX_RESULTS 10000  /* final addresses one expansion may produce */

enum alias_format {
    ALIAS_FMT_LOCAL,     /* /etc/aliases: "name: target, target" */
    ALIAS_FMT_VIRTUAL,   /* "user@domain target, target" or "@domain target" (catch-all) */
    ALIAS_FMT_RELOCATED, /* "user@domain new@address" or "@domain new@address|@newdomain" */
    ALIAS_FMT_INCLUDE,   /* an :include: file: targets only */
};

enum alias_target_kind {
    AT_ADDRESS,  /* local@domain (domain lower-cased) */
    AT_NAME,     /* a bare local part: same domain as the alias being expanded */
    AT_PIPE,     /* "|command" (value: the command) */
    AT_FILE,     /* "/path" */
    AT_INCLUDE,  /* ":include:/path" (value: the path) */
};

struct alias_target {
    enum alias_target_kind kind;
    bool noexpand;  /* "\name": deliver to the mailbox, do not look it up again */
    char *value;
};

struct alias_entry {
    char *key;      /* lower-cased: "name" (local), "user@domain" or "@domain" */
    struct alias_target *t;
    size_t n;
    const char *file; /* points into the db's file names */
    size_t line;
};

struct alias_map {
    struct alias_entry *v;
    size_t n, cap;
    bool sorted;
};

struct alias_db {
    struct alias_map local, virt, relocated;
    struct alias_map include;  /* key: the :include: path */
    char **files;              /* every file name read, for messages */
    size_t nfiles;
    bool allow_include;        /* ":include:" is refused by the parser when false */
    bool allow_pipe;           /* "|command" targets of the aliases file are delivered */
};

/* Parse text (len bytes) in format fmt from file path and add its entries to map. For
 * ALIAS_FMT_INCLUDE all targets go into one entry whose key is path. Returns 0, or -1 with
 * "path:line: message" in err. Entries stay unsorted until aliases_finish. */
int aliases_parse(struct alias_db *db, struct alias_map *map, enum alias_format fmt,
                  const char *path, const char *text, size_t len, char *err, size_t errlen);
/* Sort the maps for lookups and refuse duplicate keys ("path:line: duplicate ..."). */
int aliases_finish(struct alias_db *db, char *err, size_t errlen);
void aliases_free(struct alias_db *db);

/* Lookup by exact (lower-cased) key; NULL if none. */
const struct alias_entry *aliases_find(const struct alias_map *map, const char *key);

enum alias_status {
    ALIAS_NOT_FOUND,     /* no map knows the address: the usual mailbox/relay rules apply */
    ALIAS_EXPANDED,      /* ex->addrs holds the final recipients */
    ALIAS_RELOCATED,     /* ex->detail holds the new address (RFC 5321 3.4: 551) */
    ALIAS_NO_SUCH_USER,  /* a virtual alias domain, but nothing matches the address */
    ALIAS_LOOP,          /* ex->detail: the chain "a -> b -> a" */
    ALIAS_TOO_DEEP,      /* more than ALIAS_MAX_DEPTH levels */
    ALIAS_REFUSED,       /* a file target, or a command not allowed (ex->detail) */
    ALIAS_TOO_MANY,      /* more than ALIAS_MAX_RESULTS addresses */
};

struct alias_expansion {
    char **addrs;           /* final addresses, no duplicates (case-insensitive); with
                               allow_pipe, "|command" for a command of the aliases file */
    size_t n, cap;
    char detail[512];
};

/* Expand addr ("local@domain", domain lower case) for cfg's local domains and mailboxes.
 * Order: relocated (exact, then @domain), virtual (exact), local aliases (local domains
 * only), virtual catch-all (only when no mailbox has that address). db may be NULL. The
 * caller frees ex with alias_expansion_free whatever the result. */
enum alias_status aliases_expand(const struct alias_db *db, const struct config *cfg,
                                 const char *addr, struct alias_expansion *ex);
void alias_expansion_free(struct alias_expansion *ex);

/* Is "|cmd" a command the queue manager may run: allow_pipe is on and cmd is a command
 * target of the aliases file itself (not of an :include: file or the virtual map)? */
bool aliases_pipe_allowed(const struct alias_db *db, const char *cmd);

/* Does some virtual alias (or catch-all) have this domain? Then we accept mail for it. */
bool aliases_virtual_domain(const struct alias_db *db, const char *domain);

#endif
