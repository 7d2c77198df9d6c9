/* aliases.c - the alias map parsers (the aliases(5) format of /etc/aliases, Postfix-style
 * virtual and relocated tables, :include: lists) and the recursive expansion of a
 * recipient through them, with loop detection, a depth limit and duplicate elimination.
 * Addresses are checked with the RFC 5321 4.1.2 path syntax (smtp_parse.c). Pure: no I/O. */
#include "aliases.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "smtp_parse.h"
#include "util.h"

#define TARGET_MAX 4096  /* one target: a command may be long, an address is at most 256 */

struct aparser {
    struct alias_db *db;
    struct alias_map *map;
    enum alias_format fmt;
    const char *file;     /* the db's copy of the file name */
    size_t line;          /* first physical line of the logical line being parsed */
    char *err;
    size_t errlen;
};

static int aerr(struct aparser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int aerr(struct aparser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verrorf_at(p->err, p->errlen, p->file, p->line, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- syntax ------------------------------------------------------------------------------ */

/* Check an address with the SMTP path parser and write its canonical form (domain lower
 * case) into out. A bare local part is checked against a placeholder domain. */
static bool canonical_address(const char *s, bool bare, char *out, size_t cap)
{
    char arg[TARGET_MAX + 32];
    int n = snprintf(arg, sizeof arg, "TO:<%s%s>", s, bare ? "@example.invalid" : "");
    if (n < 0 || (size_t)n >= sizeof arg)
        return false;
    struct smtp_path path;
    const char *params;
    size_t plen;
    if (smtp_parse_path_arg(arg, (size_t)n, "TO:", false, false, true, &path, &params, &plen) !=
            PARSE_OK || plen != 0 || path.null || path.postmaster)
        return false;
    char *at = strrchr(path.addr, '@');
    if (!at)
        return false;
    if (bare)
        *at = '\0';
    else
        str_lower(at + 1);
    return str_copy(out, cap, path.addr);
}

/* The next target from *sp: separated by commas and blanks outside double quotes. Returns
 * its length (0 at the end of the line) or -1 for an unterminated quote. */
static long next_token(const char **sp, const char **tok)
{
    const char *s = *sp;
    while (*s == ',' || *s == ' ' || *s == '\t')
        s++;
    *tok = s;
    bool quoted = false;
    while (*s && (quoted || (*s != ',' && *s != ' ' && *s != '\t'))) {
        if (quoted && *s == '\\' && s[1]) {
            s += 2;
            continue;
        }
        if (*s == '"')
            quoted = !quoted;
        s++;
    }
    if (quoted)
        return -1;
    *sp = s;
    return (long)(s - *tok);
}

/* If the whole token is one quoted string, unquote it into out and return true. */
static bool unquote_whole(const char *tok, size_t len, char *out)
{
    if (len < 2 || tok[0] != '"' || tok[len - 1] != '"')
        return false;
    size_t o = 0;
    for (size_t i = 1; i < len - 1; i++) {
        if (tok[i] == '\\' && i + 1 < len - 1)
            i++;
        else if (tok[i] == '"')
            return false; /* "a"@"b": quotes inside, not one string */
        out[o++] = tok[i];
    }
    out[o] = '\0';
    return true;
}

static int parse_target(struct aparser *p, const char *tok, size_t len, struct alias_target *t)
{
    char buf[TARGET_MAX + 1], addr[SMTP_PATH_MAX + 1];
    if (len > TARGET_MAX)
        return aerr(p, "target longer than %d characters", TARGET_MAX);
    if (!unquote_whole(tok, len, buf)) {
        memcpy(buf, tok, len);
        buf[len] = '\0';
    }
    char *v = buf;
    memset(t, 0, sizeof *t);
    if (v[0] == '|') {
        if (!v[1])
            return aerr(p, "empty command after '|'");
        t->kind = AT_PIPE;
        t->value = xstrdup(v + 1);
        return 0;
    }
    if (v[0] == '/') {
        t->kind = AT_FILE;
        t->value = xstrdup(v);
        return 0;
    }
    if (str_nieq(v, ":include:", 9)) {
        v += 9;
        while (*v == ' ' || *v == '\t')
            v++;
        if (v[0] != '/')
            return aerr(p, ":include: needs an absolute path");
        if (!p->db->allow_include)
            return aerr(p, ":include:%s: :include: files are disabled (allow_include no)", v);
        t->kind = AT_INCLUDE;
        t->value = xstrdup(v);
        return 0;
    }
    if (v[0] == '\\') { /* "\user": the mailbox itself, as in aliases(5) */
        t->noexpand = true;
        v++;
    }
    size_t vl = strlen(v);
    if (vl >= 2 && v[0] == '<' && v[vl - 1] == '>') {
        v[vl - 1] = '\0';
        v++;
    }
    bool bare = strchr(v, '@') == NULL;
    if (!canonical_address(v, bare, addr, sizeof addr))
        return aerr(p, "invalid %s \"%s\"", bare ? "local name" : "address", v);
    t->kind = bare ? AT_NAME : AT_ADDRESS;
    if (bare)
        str_lower(addr);
    t->value = xstrdup(addr);
    return 0;
}

static void target_free(struct alias_target *t)
{
    free(t->value);
}

static struct alias_entry *new_entry(struct aparser *p, const char *key)
{
    struct alias_map *m = p->map;
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 16;
        m->v = xrealloc(m->v, m->cap * sizeof *m->v);
    }
    struct alias_entry *e = &m->v[m->n++];
    memset(e, 0, sizeof *e);
    e->key = xstrdup(key);
    e->file = p->file;
    e->line = p->line;
    m->sorted = false;
    return e;
}

static void entry_add(struct alias_entry *e, const struct alias_target *t)
{
    e->t = xrealloc(e->t, (e->n + 1) * sizeof *e->t);
    e->t[e->n++] = *t;
}

/* Parse the targets in s into e. */
static int parse_targets(struct aparser *p, const char *s, struct alias_entry *e)
{
    const char *tok;
    long n;
    while ((n = next_token(&s, &tok)) > 0) {
        struct alias_target t;
        if (parse_target(p, tok, (size_t)n, &t) < 0)
            return -1;
        entry_add(e, &t);
    }
    return n < 0 ? aerr(p, "unterminated quoted string") : 0;
}

/* The key of a virtual or relocated entry: "user@domain" or "@domain". */
static int table_key(struct aparser *p, const char *tok, size_t len, char *out, size_t cap)
{
    char buf[SMTP_PATH_MAX + 1];
    if (len == 0 || len >= sizeof buf)
        return aerr(p, "missing or too long key");
    memcpy(buf, tok, len);
    buf[len] = '\0';
    if (buf[0] == '@') {
        str_lower(buf);
        if (!smtp_valid_domain(buf + 1, len - 1, true))
            return aerr(p, "invalid domain in \"%s\"", buf);
        return str_copy(out, cap, buf) ? 0 : aerr(p, "key too long");
    }
    if (!strchr(buf, '@') || !canonical_address(buf, false, out, cap))
        return aerr(p, "key \"%s\" must be user@domain or @domain", buf);
    str_lower(out);
    return 0;
}

static int parse_relocated(struct aparser *p, const char *rest, struct alias_entry *e)
{
    const char *tok;
    long n = next_token(&rest, &tok);
    char buf[SMTP_PATH_MAX + 1];
    struct alias_target t = {.kind = AT_ADDRESS};
    if (n <= 0)
        return aerr(p, "missing new address");
    if (tok[0] == '@') {
        if (table_key(p, tok, (size_t)n, buf, sizeof buf) < 0)
            return -1;
    } else {
        if ((size_t)n >= sizeof buf)
            return aerr(p, "new address too long");
        memcpy(buf, tok, (size_t)n);
        buf[n] = '\0';
        char addr[SMTP_PATH_MAX + 1];
        if (!strchr(buf, '@') || !canonical_address(buf, false, addr, sizeof addr))
            return aerr(p, "invalid new address \"%s\"", buf);
        str_copy(buf, sizeof buf, addr);
    }
    if (next_token(&rest, &tok) != 0)
        return aerr(p, "a relocated entry takes one address");
    t.value = xstrdup(buf);
    entry_add(e, &t);
    return 0;
}

/* One logical line (continuations joined), not a comment. */
static int parse_entry(struct aparser *p, char *line)
{
    if (p->fmt == ALIAS_FMT_INCLUDE) {
        struct alias_map *m = p->map;
        struct alias_entry *e = &m->v[m->n - 1];
        return parse_targets(p, line, e);
    }
    char key[SMTP_PATH_MAX + 1];
    const char *rest;
    if (p->fmt == ALIAS_FMT_LOCAL) {
        char *colon = strchr(line, ':');
        if (!colon)
            return aerr(p, "missing ':' after the alias name");
        char *end = colon;
        while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        *end = '\0';
        if (!line[0] || !canonical_address(line, true, key, sizeof key))
            return aerr(p, "invalid alias name \"%s\"", line);
        str_lower(key);
        rest = colon + 1;
    } else {
        const char *s = line, *tok;
        long n = next_token(&s, &tok);
        if (n < 0)
            return aerr(p, "unterminated quoted string");
        if (table_key(p, tok, (size_t)n, key, sizeof key) < 0)
            return -1;
        rest = s;
    }
    struct alias_entry *e = new_entry(p, key);
    if (p->fmt == ALIAS_FMT_RELOCATED)
        return parse_relocated(p, rest, e);
    if (parse_targets(p, rest, e) < 0)
        return -1;
    return e->n ? 0 : aerr(p, "\"%s\" has no targets", key);
}

int aliases_parse(struct alias_db *db, struct alias_map *map, enum alias_format fmt,
                  const char *path, const char *text, size_t len, char *err, size_t errlen)
{
    db->files = xrealloc(db->files, (db->nfiles + 1) * sizeof *db->files);
    db->files[db->nfiles] = xstrdup(path);
    struct aparser p = {.db = db, .map = map, .fmt = fmt, .file = db->files[db->nfiles++],
                        .err = err, .errlen = errlen};
    if (errlen)
        err[0] = '\0';
    if (fmt == ALIAS_FMT_INCLUDE)
        new_entry(&p, path);
    char *logical = NULL;  /* the entry being assembled */
    size_t llen = 0, physical = 0;
    int rc = 0;
    for (size_t pos = 0; pos < len && rc == 0;) {
        physical++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len, n = end - pos;
        const char *s = text + pos;
        pos = end + 1;
        if (n > 0 && s[n - 1] == '\r')
            n--;
        if (memchr(s, '\0', n)) {
            p.line = physical;
            rc = aerr(&p, "NUL byte in line");
            break;
        }
        size_t i = 0;
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i == n || s[i] == '#')
            continue; /* blank lines and comments do not end an entry */
        bool continuation = i > 0 && fmt != ALIAS_FMT_INCLUDE;
        if (continuation && !logical) {
            p.line = physical;
            rc = aerr(&p, "continuation line without an entry before it");
            break;
        }
        if (!continuation && logical) {
            rc = parse_entry(&p, logical);
            free(logical);
            logical = NULL;
            if (rc < 0)
                break;
        }
        if (!logical) {
            p.line = physical;
            logical = xstrndup(s, n);
            llen = n;
        } else {
            logical = xrealloc(logical, llen + n + 2);
            logical[llen++] = ' ';
            memcpy(logical + llen, s, n);
            llen += n;
            logical[llen] = '\0';
        }
    }
    if (rc == 0 && logical)
        rc = parse_entry(&p, logical);
    free(logical);
    return rc;
}

/* ---- maps -------------------------------------------------------------------------------- */

static int cmp_entry(const void *a, const void *b)
{
    const struct alias_entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

static int map_finish(struct alias_map *m, char *err, size_t errlen)
{
    if (m->n > 1)
        qsort(m->v, m->n, sizeof *m->v, cmp_entry);
    m->sorted = true;
    for (size_t i = 1; i < m->n; i++) {
        const struct alias_entry *a = &m->v[i - 1], *b = &m->v[i];
        if (strcmp(a->key, b->key) == 0) {
            errorf(err, errlen, "%s:%zu: duplicate entry \"%s\" (first at %s:%zu)", b->file,
                   b->line, b->key, a->file, a->line);
            return -1;
        }
    }
    return 0;
}

int aliases_finish(struct alias_db *db, char *err, size_t errlen)
{
    if (map_finish(&db->local, err, errlen) < 0 || map_finish(&db->virt, err, errlen) < 0 ||
        map_finish(&db->relocated, err, errlen) < 0 || map_finish(&db->include, err, errlen) < 0)
        return -1;
    return 0;
}

static void map_free(struct alias_map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        for (size_t j = 0; j < m->v[i].n; j++)
            target_free(&m->v[i].t[j]);
        free(m->v[i].t);
        free(m->v[i].key);
    }
    free(m->v);
    memset(m, 0, sizeof *m);
}

void aliases_free(struct alias_db *db)
{
    if (!db)
        return;
    map_free(&db->local);
    map_free(&db->virt);
    map_free(&db->relocated);
    map_free(&db->include);
    for (size_t i = 0; i < db->nfiles; i++)
        free(db->files[i]);
    free(db->files);
    db->files = NULL;
    db->nfiles = 0;
}

const struct alias_entry *aliases_find(const struct alias_map *map, const char *key)
{
    if (map->sorted) {
        size_t lo = 0, hi = map->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = strcmp(key, map->v[mid].key);
            if (c == 0)
                return &map->v[mid];
            if (c < 0)
                hi = mid;
            else
                lo = mid + 1;
        }
        return NULL;
    }
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(key, map->v[i].key) == 0)
            return &map->v[i];
    return NULL;
}

bool aliases_virtual_domain(const struct alias_db *db, const char *domain)
{
    if (!db)
        return false;
    for (size_t i = 0; i < db->virt.n; i++) {
        const char *at = strrchr(db->virt.v[i].key, '@');
        if (at && str_ieq(at + 1, domain))
            return true;
    }
    return false;
}

bool aliases_pipe_allowed(const struct alias_db *db, const char *cmd)
{
    if (!db || !db->allow_pipe)
        return false;
    for (size_t i = 0; i < db->local.n; i++) {
        const struct alias_entry *e = &db->local.v[i];
        for (size_t j = 0; j < e->n; j++)
            if (e->t[j].kind == AT_PIPE && strcmp(e->t[j].value, cmd) == 0)
                return true;
    }
    return false;
}

/* ---- expansion --------------------------------------------------------------------------- */

struct xstate {
    const struct alias_db *db;
    const struct config *cfg;
    struct alias_expansion *ex;
    const char *chain[ALIAS_MAX_DEPTH + 1]; /* the aliases (and include files) being expanded */
    size_t depth;
};

static enum alias_status add_final(struct xstate *x, const char *addr)
{
    struct alias_expansion *ex = x->ex;
    for (size_t i = 0; i < ex->n; i++)
        if (str_ieq(ex->addrs[i], addr))
            return ALIAS_EXPANDED;
    if (ex->n >= ALIAS_MAX_RESULTS) {
        snprintf(ex->detail, sizeof ex->detail, "more than %d addresses", ALIAS_MAX_RESULTS);
        return ALIAS_TOO_MANY;
    }
    if (ex->n == ex->cap) {
        ex->cap = ex->cap ? 2 * ex->cap : 8;
        ex->addrs = xrealloc(ex->addrs, ex->cap * sizeof *ex->addrs);
    }
    ex->addrs[ex->n++] = xstrdup(addr);
    return ALIAS_EXPANDED;
}

/* The entry that expands local@domain (lower-cased), or NULL. */
static const struct alias_entry *lookup(const struct xstate *x, const char *addr)
{
    char key[SMTP_PATH_MAX + 2];
    if (!str_copy(key, sizeof key, addr))
        return NULL;
    str_lower(key);
    char *at = strrchr(key, '@');
    if (!at)
        return NULL;
    const struct alias_entry *e = aliases_find(&x->db->virt, key);
    if (e)
        return e;
    *at = '\0';
    const char *domain = at + 1;
    if (config_is_local_domain(x->cfg, domain) && (e = aliases_find(&x->db->local, key)))
        return e;
    if (config_has_mailbox(x->cfg, key, domain))
        return NULL;
    *at = '@';
    return aliases_find(&x->db->virt, at);
}

static enum alias_status expand_addr(struct xstate *x, const char *addr);

/* Commands run only from the aliases file itself, which root writes: not from :include:
 * files (anyone may own those) nor from the virtual map (per-domain, often delegated). */
static bool from_aliases_file(const struct alias_db *db, const struct alias_entry *e)
{
    return db->local.n > 0 && e >= db->local.v && e < db->local.v + db->local.n;
}

static enum alias_status expand_targets(struct xstate *x, const struct alias_entry *e,
                                        const char *self, const char *domain)
{
    for (size_t i = 0; i < e->n; i++) {
        const struct alias_target *t = &e->t[i];
        char addr[SMTP_PATH_MAX + SMTP_DOMAIN_MAX + 2];
        enum alias_status st;
        switch (t->kind) {
        case AT_PIPE:
            if (x->db->allow_pipe && from_aliases_file(x->db, e)) {
                char *cmd = xmalloc(strlen(t->value) + 2);
                cmd[0] = '|';
                strcpy(cmd + 1, t->value);
                st = add_final(x, cmd);
                free(cmd);
                if (st != ALIAS_EXPANDED)
                    return st;
                continue;
            }
            snprintf(x->ex->detail, sizeof x->ex->detail, "|%s", t->value);
            return ALIAS_REFUSED;
        case AT_FILE:
            str_copy(x->ex->detail, sizeof x->ex->detail, t->value);
            return ALIAS_REFUSED;
        case AT_INCLUDE: {
            const struct alias_entry *inc = aliases_find(&x->db->include, t->value);
            if (!inc) {
                snprintf(x->ex->detail, sizeof x->ex->detail, ":include:%s (not loaded)",
                         t->value);
                return ALIAS_REFUSED;
            }
            if (x->depth >= ALIAS_MAX_DEPTH)
                return ALIAS_TOO_DEEP;
            for (size_t j = 0; j < x->depth; j++) {
                if (strcmp(x->chain[j], t->value) == 0) {
                    snprintf(x->ex->detail, sizeof x->ex->detail, ":include:%s includes itself",
                             t->value);
                    return ALIAS_LOOP;
                }
            }
            x->chain[x->depth++] = t->value;
            st = expand_targets(x, inc, self, domain);
            x->depth--;
            if (st != ALIAS_EXPANDED)
                return st;
            continue;
        }
        case AT_NAME: {
            /* A bare name is a user of the alias's own domain; in a virtual domain (not
             * local) it is a user of the first local domain, as aliases(5) intends. */
            const char *d = domain;
            if (!config_is_local_domain(x->cfg, d) && x->cfg->nlocal_domains > 0)
                d = x->cfg->local_domains[0];
            snprintf(addr, sizeof addr, "%s@%s", t->value, d);
            break;
        }
        case AT_ADDRESS:
            str_copy(addr, sizeof addr, t->value);
            break;
        }
        if (t->noexpand || str_ieq(addr, self))
            st = add_final(x, addr); /* "root: root, other": root's own mailbox */
        else
            st = expand_addr(x, addr);
        if (st != ALIAS_EXPANDED)
            return st;
    }
    return ALIAS_EXPANDED;
}

static void loop_detail(struct xstate *x, const char *addr)
{
    char *d = x->ex->detail;
    size_t cap = sizeof x->ex->detail, len = 0;
    d[0] = '\0';
    for (size_t i = 0; i <= x->depth && len < cap; i++) {
        const char *a = i < x->depth ? x->chain[i] : addr;
        int n = snprintf(d + len, cap - len, "%s%s", i ? " -> " : "", a);
        if (n < 0)
            break;
        len += (size_t)n;
    }
}

static enum alias_status expand_addr(struct xstate *x, const char *addr)
{
    const struct alias_entry *e = lookup(x, addr);
    if (!e)
        return add_final(x, addr);
    for (size_t i = 0; i < x->depth; i++) {
        if (str_ieq(x->chain[i], addr)) {
            loop_detail(x, addr);
            return ALIAS_LOOP;
        }
    }
    if (x->depth >= ALIAS_MAX_DEPTH) {
        snprintf(x->ex->detail, sizeof x->ex->detail, "more than %d levels of aliases",
                 ALIAS_MAX_DEPTH);
        return ALIAS_TOO_DEEP;
    }
    x->chain[x->depth++] = addr;
    enum alias_status st = expand_targets(x, e, addr, strrchr(addr, '@') + 1);
    x->depth--;
    return st;
}

static bool relocated(const struct alias_db *db, const char *addr, char *out, size_t cap)
{
    char key[SMTP_PATH_MAX + 2];
    if (!str_copy(key, sizeof key, addr))
        return false;
    str_lower(key);
    char *at = strrchr(key, '@');
    if (!at)
        return false;
    const struct alias_entry *e = aliases_find(&db->relocated, key);
    if (!e)
        e = aliases_find(&db->relocated, at);
    if (!e || e->n != 1)
        return false;
    const char *v = e->t[0].value;
    if (v[0] == '@') /* "@old.example @new.example": same user, new domain */
        snprintf(out, cap, "%.*s%s", (int)(strrchr(addr, '@') - addr), addr, v);
    else
        str_copy(out, cap, v);
    return true;
}

enum alias_status aliases_expand(const struct alias_db *db, const struct config *cfg,
                                 const char *addr, struct alias_expansion *ex)
{
    memset(ex, 0, sizeof *ex);
    const char *at = strrchr(addr, '@');
    if (!db || !at)
        return ALIAS_NOT_FOUND;
    if (relocated(db, addr, ex->detail, sizeof ex->detail))
        return ALIAS_RELOCATED;
    struct xstate x = {.db = db, .cfg = cfg, .ex = ex};
    if (!lookup(&x, addr)) {
        if (!config_is_local_domain(cfg, at + 1) && aliases_virtual_domain(db, at + 1))
            return ALIAS_NO_SUCH_USER;
        return ALIAS_NOT_FOUND;
    }
    return expand_addr(&x, addr);
}

void alias_expansion_free(struct alias_expansion *ex)
{
    for (size_t i = 0; i < ex->n; i++)
        free(ex->addrs[i]);
    free(ex->addrs);
    ex->addrs = NULL;
    ex->n = ex->cap = 0;
}
