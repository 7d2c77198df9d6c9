/* config.c - tern's configuration: defaults, the line-based parser, and the lookups every
 * module uses (local domains, mailboxes, Maildir paths).
 *
 * The format ("keyword value..." per line, '#' comments) is documented keyword by keyword
 * in docs/configuration.md. The parser is pure: text in, struct out, every error reported
 * as "path:line: message". Mailbox syntax follows RFC 5321 4.1.2 (Dot-string local part,
 * Domain) and its 4.5.3.1 size limits; max_recipients enforces RFC 5321 4.5.3.1.8. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aliases.h"
#include "dns.h"
#include "util.h"

#define LOCAL_MAX 64     /* RFC 5321 4.5.3.1.1 */
#define DOMAIN_MAX 255   /* RFC 5321 4.5.3.1.2 */
#define LABEL_MAX 63     /* RFC 1035 2.3.4 */
#define PATH_VALUE_MAX 1024  /* spool/maildir: leaves room for the file names appended later */
#define USER_MAX 32
#define KEYWORDS_MAX 96  /* size of the per-keyword table in the parser */
#define MAX_TOKENS 64    /* values on one line; more is surely a mistake */
#define CONFIG_FILE_MAX (16u << 20)  /* refuse to slurp something that is not a config file */

/* ---- parser state ---------------------------------------------------------------- */

struct keyword;

struct parser {
    struct config *cfg;
    const char *path;
    size_t line;                  /* current line number, 1-based */
    char *err;
    size_t errlen;
    size_t *mailbox_lines;        /* line of each cfg->mailboxes[i], for the final checks */
    size_t *domain_lines;         /* line of each cfg->local_domains[i] */
    size_t first_line[KEYWORDS_MAX]; /* per keyword: line it was first seen on, 0 = not yet */
};

typedef int (*kw_handler)(struct parser *p, const struct keyword *kw, char **argv, size_t argc);

struct keyword {
    const char *name;
    kw_handler handler;
    size_t offset;                /* field in struct config, for the generic handlers */
    unsigned long long min, max;  /* numeric range, in the field's unit */
    bool repeatable;
};

static int perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Every error goes through here so each one reads "path:line: message". */
static int perr(struct parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verrorf_at(p->err, p->errlen, p->path, p->line, fmt, ap);
    va_end(ap);
    return -1;
}

static void *field(struct parser *p, const struct keyword *kw)
{
    return (char *)p->cfg + kw->offset;
}

/* ---- value syntax ------------------------------------------------------------------ */

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* A domain name as RFC 5321 4.1.2 "Domain": dot-separated labels of letters, digits and
 * hyphens, no hyphen at either end of a label. No address literals: local domains are names. */
static bool valid_domain(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > DOMAIN_MAX)
        return false;
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        int c = (unsigned char)s[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!is_alpha(c) && !is_digit(c) && c != '-')
            return false;
        if (label == 0 && c == '-')
            return false;
        if (++label > LABEL_MAX)
            return false;
    }
    return true;
}

/* RFC 5322 atext: what an unquoted local part may contain besides dots. */
static bool is_atext(int c)
{
    return is_alpha(c) || is_digit(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* RFC 5321 Dot-string: atoms separated by single dots. '/' is legal atext but would make a
 * Maildir path escape its directory, so it is refused here (and again in config_maildir_path). */
static bool valid_local(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > LOCAL_MAX || s[0] == '.' || s[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '.') {
            if (s[i + 1] == '.')
                return false;
        } else if (!is_atext(c) || c == '/') {
            return false;
        }
    }
    return true;
}

/* Unsigned decimal with overflow check; the whole string must be digits. */
static bool parse_ull(const char *s, size_t n, unsigned long long *out)
{
    if (n == 0)
        return false;
    unsigned long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

enum unit_kind { UNIT_NONE, UNIT_SIZE, UNIT_DURATION };

/* A number with an optional one-letter unit suffix. Sizes: k, M, G (binary multiples, either
 * case). Durations: s, m, h, d (lower-case only, so "5M" is not mistaken for months).
 * Returns 0, or -1 for bad syntax, -2 for overflow. */
static int parse_quantity(const char *s, enum unit_kind unit, unsigned long long *out)
{
    size_t n = strlen(s);
    unsigned long long mult = 1;
    if (n > 0 && !is_digit((unsigned char)s[n - 1])) {
        char c = s[n - 1];
        if (unit == UNIT_SIZE && (c == 'k' || c == 'K'))
            mult = 1ULL << 10;
        else if (unit == UNIT_SIZE && (c == 'm' || c == 'M'))
            mult = 1ULL << 20;
        else if (unit == UNIT_SIZE && (c == 'g' || c == 'G'))
            mult = 1ULL << 30;
        else if (unit == UNIT_DURATION && c == 's')
            mult = 1;
        else if (unit == UNIT_DURATION && c == 'm')
            mult = 60;
        else if (unit == UNIT_DURATION && c == 'h')
            mult = 3600;
        else if (unit == UNIT_DURATION && c == 'd')
            mult = 86400;
        else
            return -1;
        n--;
    }
    unsigned long long v;
    if (n == 0 || !is_digit((unsigned char)s[0]))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)s[i]))
            return -1;
    if (!parse_ull(s, n, &v))
        return -2;
    if (v > ULLONG_MAX / mult)
        return -2;
    *out = v * mult;
    return 0;
}

/* ---- keyword handlers ---------------------------------------------------------------- */

static int want_one(struct parser *p, const struct keyword *kw, size_t argc)
{
    if (argc == 0)
        return perr(p, "%s: missing value", kw->name);
    if (argc > 1)
        return perr(p, "%s: expected one value, got %zu", kw->name, argc);
    return 0;
}

static void set_string(char **slot, const char *value)
{
    free(*slot);
    *slot = xstrdup(value);
}

static int kw_hostname(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    if (want_one(p, kw, argc) < 0)
        return -1;
    if (!valid_domain(argv[0]))
        return perr(p, "%s: '%s' is not a valid host name (letters, digits, '-' and '.')",
                    kw->name, argv[0]);
    set_string(field(p, kw), argv[0]);
    return 0;
}

static int kw_user(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    if (want_one(p, kw, argc) < 0)
        return -1;
    /* POSIX portable user names: no leading '-', at most 32 characters. */
    const char *s = argv[0];
    size_t len = strlen(s);
    bool ok = len > 0 && len <= USER_MAX && s[0] != '-';
    for (size_t i = 0; ok && i < len; i++) {
        int c = (unsigned char)s[i];
        ok = is_alpha(c) || is_digit(c) || c == '_' || c == '-' || c == '.';
    }
    if (!ok)
        return perr(p, "%s: '%s' is not a valid user name", kw->name, s);
    set_string(field(p, kw), s);
    return 0;
}

static int kw_path(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    if (want_one(p, kw, argc) < 0)
        return -1;
    if (strlen(argv[0]) > PATH_VALUE_MAX)
        return perr(p, "%s: path is longer than %d characters", kw->name, PATH_VALUE_MAX);
    set_string(field(p, kw), argv[0]);
    return 0;
}

/* Does the Maildir pattern use escape %c? ("%%d" is a literal "%d", not an escape.) */
static bool pattern_has(const char *s, char c)
{
    for (; *s; s++) {
        if (*s != '%' || s[1] == '\0')
            continue;
        if (*++s == c)
            return true;
    }
    return false;
}

static int kw_maildir(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    if (want_one(p, kw, argc) < 0)
        return -1;
    const char *s = argv[0];
    if (strlen(s) > PATH_VALUE_MAX)
        return perr(p, "%s: path is longer than %d characters", kw->name, PATH_VALUE_MAX);
    for (const char *c = s; *c; c++) {
        if (*c != '%')
            continue;
        c++;
        if (*c == '\0')
            return perr(p, "%s: pattern ends with a lone '%%' (write %%%% for a literal one)",
                        kw->name);
        if (*c != 'd' && *c != 'u' && *c != '%')
            return perr(p, "%s: unknown escape '%%%c' (expected %%d, %%u or %%%%)", kw->name, *c);
    }
    /* Without %u every mailbox would share one Maildir. */
    if (!pattern_has(s, 'u'))
        return perr(p, "%s: pattern must contain %%u (the local part)", kw->name);
    set_string(field(p, kw), s);
    return 0;
}

/* Generic numeric keyword: sizes and plain counts into size_t, durations into int. */
static int numeric(struct parser *p, const struct keyword *kw, char **argv, size_t argc,
                   enum unit_kind unit, unsigned long long *out)
{
    if (want_one(p, kw, argc) < 0)
        return -1;
    static const char *const expect[] = {
        [UNIT_NONE] = "a number",
        [UNIT_SIZE] = "a size (a number, optionally followed by k, M or G)",
        [UNIT_DURATION] = "a duration (a number of seconds, or with s, m, h or d)",
    };
    unsigned long long v;
    int rc = parse_quantity(argv[0], unit, &v);
    if (rc == -1)
        return perr(p, "%s: expected %s, got '%s'", kw->name, expect[unit], argv[0]);
    if (rc == -2 || v < kw->min || v > kw->max)
        return perr(p, "%s: '%s' is out of range (%llu to %llu%s)", kw->name, argv[0], kw->min,
                    kw->max, unit == UNIT_DURATION ? " seconds" : "");
    *out = v;
    return 0;
}

static int kw_count(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    unsigned long long v;
    if (numeric(p, kw, argv, argc, UNIT_NONE, &v) < 0)
        return -1;
    *(size_t *)field(p, kw) = (size_t)v;
    return 0;
}

static int kw_int(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    unsigned long long v;
    if (numeric(p, kw, argv, argc, UNIT_NONE, &v) < 0)
        return -1;
    *(int *)field(p, kw) = (int)v;
    return 0;
}

static int kw_size(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    unsigned long long v;
    if (numeric(p, kw, argv, argc, UNIT_SIZE, &v) < 0)
        return -1;
    *(size_t *)field(p, kw) = (size_t)v;
    return 0;
}

static int kw_duration(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    unsigned long long v;
    if (numeric(p, kw, argv, argc, UNIT_DURATION, &v) < 0)
        return -1;
    *(int *)field(p, kw) = (int)v;
    return 0;
}

static int kw_vrfy(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    if (want_one(p, kw, argc) < 0)
        return -1;
    if (strcmp(argv[0], "on") == 0)
        p->cfg->vrfy_enabled = true;
    else if (strcmp(argv[0], "off") == 0)
        p->cfg->vrfy_enabled = false;
    else
        return perr(p, "%s: expected 'on' or 'off', got '%s'", kw->name, argv[0]);
    return 0;
}

/* A generic "on|off" switch stored in a bool field. */
static int kw_bool(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    if (want_one(p, kw, argc) < 0)
        return -1;
    if (strcmp(argv[0], "on") == 0)
        *(bool *)field(p, kw) = true;
    else if (strcmp(argv[0], "off") == 0)
        *(bool *)field(p, kw) = false;
    else
        return perr(p, "%s: expected 'on' or 'off', got '%s'", kw->name, argv[0]);
    return 0;
}

/* sender_login USER ADDR|@DOMAIN... */
static int kw_sender_login(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    struct config *cfg = p->cfg;
    if (argc < 2)
        return perr(p, "%s: expected a user and one or more addresses", kw->name);
    for (size_t a = 1; a < argc; a++) {
        const char *at = strchr(argv[a], '@');
        if (!at || strchr(at + 1, '@') || !valid_domain(at + 1))
            return perr(p, "%s: '%s' is not an address or @domain", kw->name, argv[a]);
        cfg->sender_logins = xrealloc(cfg->sender_logins,
                                      (cfg->nsender_logins + 1) * sizeof *cfg->sender_logins);
        struct sender_login_cfg *sl = &cfg->sender_logins[cfg->nsender_logins++];
        sl->user = xstrdup(argv[0]);
        sl->addr = xstrdup(argv[a]);
        str_lower(sl->addr);
    }
    return 0;
}

/* Login names, as getpwuid() gives them: no space (split), no ':' or '/', not too long. */
static int kw_trusted_users(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    struct config *cfg = p->cfg;
    if (argc == 0)
        return perr(p, "%s: missing value (expected one or more user names)", kw->name);
    for (size_t a = 0; a < argc; a++) {
        if (strlen(argv[a]) > 64 || strpbrk(argv[a], ":/@"))
            return perr(p, "%s: '%s' is not a user name", kw->name, argv[a]);
        cfg->trusted_users = xrealloc(cfg->trusted_users,
                                      (cfg->ntrusted_users + 1) * sizeof *cfg->trusted_users);
        cfg->trusted_users[cfg->ntrusted_users++] = xstrdup(argv[a]);
    }
    return 0;
}

static int kw_log(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    if (want_one(p, kw, argc) < 0)
        return -1;
    if (strcmp(argv[0], "stderr") == 0)
        p->cfg->log_target = LOG_TO_STDERR;
    else if (strcmp(argv[0], "syslog") == 0)
        p->cfg->log_target = LOG_TO_SYSLOG;
    else
        return perr(p, "%s: expected 'stderr' or 'syslog', got '%s'", kw->name, argv[0]);
    return 0;
}

static int kw_log_level(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {
        {"debug", LOG_DEBUG}, {"info", LOG_INFO}, {"notice", LOG_NOTICE},
        {"warning", LOG_WARNING}, {"err", LOG_ERR},
    };
    if (want_one(p, kw, argc) < 0)
        return -1;
    for (size_t i = 0; i < ARRAY_LEN(levels); i++) {
        if (strcmp(argv[0], levels[i].name) == 0) {
            p->cfg->log_level = levels[i].level;
            return 0;
        }
    }
    return perr(p, "%s: expected debug, info, notice, warning or err, got '%s'", kw->name,
                argv[0]);
}

/* "ADDR:PORT" or "[IPV6]:PORT", then an optional kind. */
static int kw_listen(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    struct config *cfg = p->cfg;
    if (argc == 0)
        return perr(p, "%s: missing value (expected ADDR:PORT [smtp|submission|smtps|odmr] "
                       "[options])", kw->name);
    struct listen_cfg l = {.kind = LISTEN_SMTP, .starttls_opt = -1, .require_tls_opt = -1};
    for (size_t i = 2; i < argc; i++) {
        if (strcmp(argv[i], "starttls") == 0 || strcmp(argv[i], "no-starttls") == 0)
            l.starttls_opt = argv[i][0] != 'n';
        else if (strcmp(argv[i], "require-tls") == 0 || strcmp(argv[i], "no-require-tls") == 0)
            l.require_tls_opt = argv[i][0] != 'n';
        else
            return perr(p, "%s: unknown option '%s' (expected starttls, no-starttls, "
                           "require-tls or no-require-tls)", kw->name, argv[i]);
    }
    const char *s = argv[0], *addr, *port;
    size_t addrlen;
    bool v6 = s[0] == '[';
    if (v6) {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return perr(p, "%s: bad address '%s' (expected [IPV6]:PORT, e.g. [::1]:2525)",
                        kw->name, s);
        addr = s + 1;
        addrlen = (size_t)(close - addr);
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon)
            return perr(p, "%s: bad address '%s' (expected ADDR:PORT, e.g. 127.0.0.1:2525)",
                        kw->name, s);
        addr = s;
        addrlen = (size_t)(colon - s);
        port = colon + 1;
    }
    unsigned char buf[sizeof(struct in6_addr)];
    if (addrlen == 0 || addrlen >= sizeof l.addr)
        return perr(p, "%s: bad address '%s' (expected a numeric IP address)", kw->name, s);
    memcpy(l.addr, addr, addrlen);
    l.addr[addrlen] = '\0';
    if (inet_pton(v6 ? AF_INET6 : AF_INET, l.addr, buf) != 1)
        return perr(p, "%s: bad address '%s' (expected a numeric %s address%s)", kw->name, s,
                    v6 ? "IPv6" : "IPv4", v6 ? "" : "; IPv6 goes in brackets: [::1]:2525");
    unsigned long long pn;
    if (!parse_ull(port, strlen(port), &pn) || pn < 1 || pn > 65535)
        return perr(p, "%s: bad port in '%s' (expected 1 to 65535)", kw->name, s);
    l.port = (unsigned short)pn;
    if (argc >= 2) {
        if (strcmp(argv[1], "smtp") == 0)
            l.kind = LISTEN_SMTP;
        else if (strcmp(argv[1], "submission") == 0)
            l.kind = LISTEN_SUBMISSION;
        else if (strcmp(argv[1], "smtps") == 0)
            l.kind = LISTEN_SMTPS;
        else if (strcmp(argv[1], "odmr") == 0)
            l.kind = LISTEN_ODMR;
        else
            return perr(p, "%s: unknown kind '%s' (expected smtp, submission, smtps or odmr)",
                        kw->name, argv[1]);
    }
    /* Store the canonical form, so "::0001" and "::1" are recognised as the same socket. */
    if (!inet_ntop(v6 ? AF_INET6 : AF_INET, buf, l.addr, sizeof l.addr))
        return perr(p, "%s: bad address '%s'", kw->name, s);
    for (size_t i = 0; i < cfg->nlisten; i++)
        if (cfg->listen[i].port == l.port && strcmp(cfg->listen[i].addr, l.addr) == 0)
            return perr(p, "%s: '%s' is already listed", kw->name, s);
    if (cfg->nlisten >= CONFIG_MAX_LISTEN)
        return perr(p, "%s: too many listen directives (at most %d)", kw->name, CONFIG_MAX_LISTEN);
    cfg->listen[cfg->nlisten++] = l;
    return 0;
}

/* tls_certificate CERT-CHAIN-FILE KEY-FILE: only the paths; tls.c loads them at start. */
static int kw_tls_certificate(struct parser *p, const struct keyword *kw, char **argv,
                              size_t argc)
{
    struct config *cfg = p->cfg;
    if (argc != 2)
        return perr(p, "%s: expected CERTIFICATE-FILE KEY-FILE, got %zu values", kw->name, argc);
    if (cfg->ntls_certs >= CONFIG_MAX_CERTS)
        return perr(p, "%s: too many certificates (at most %d)", kw->name, CONFIG_MAX_CERTS);
    for (size_t i = 0; i < 2; i++)
        if (strlen(argv[i]) > PATH_VALUE_MAX)
            return perr(p, "%s: path too long (at most %d characters)", kw->name,
                        PATH_VALUE_MAX);
    cfg->tls_certs[cfg->ntls_certs].cert = xstrdup(argv[0]);
    cfg->tls_certs[cfg->ntls_certs].key = xstrdup(argv[1]);
    cfg->ntls_certs++;
    return 0;
}

/* tls_ocsp_response FILE: belongs to the tls_certificate line just above it; tls.c reads,
 * checks and staples it (a bad file is logged, never fatal: see docs/tls.md). */
static int kw_tls_ocsp_response(struct parser *p, const struct keyword *kw, char **argv,
                                size_t argc)
{
    struct config *cfg = p->cfg;
    if (argc != 1)
        return perr(p, "%s: expected one file (a DER OCSP response)", kw->name);
    if (cfg->ntls_certs == 0)
        return perr(p, "%s: must follow the tls_certificate it belongs to", kw->name);
    struct tls_cert_cfg *c = &cfg->tls_certs[cfg->ntls_certs - 1];
    if (c->ocsp)
        return perr(p, "%s: certificate %s already has one", kw->name, c->cert);
    if (strlen(argv[0]) > PATH_VALUE_MAX)
        return perr(p, "%s: path too long (at most %d characters)", kw->name, PATH_VALUE_MAX);
    c->ocsp = xstrdup(argv[0]);
    return 0;
}

static int kw_tls_ciphers(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    if (argc != 1)
        return perr(p, "%s: expected one OpenSSL cipher list, e.g. ECDHE+AESGCM", kw->name);
    free(p->cfg->tls_ciphers);
    p->cfg->tls_ciphers = xstrdup(argv[0]);
    return 0;
}

static int kw_local_domain(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    struct config *cfg = p->cfg;
    if (argc == 0)
        return perr(p, "%s: missing value (expected one or more domain names)", kw->name);
    for (size_t a = 0; a < argc; a++) {
        if (!valid_domain(argv[a]))
            return perr(p, "%s: '%s' is not a valid domain name", kw->name, argv[a]);
        for (size_t i = 0; i < cfg->nlocal_domains; i++)
            if (str_ieq(cfg->local_domains[i], argv[a]))
                return perr(p, "%s: '%s' is already listed on line %zu", kw->name, argv[a],
                            p->domain_lines[i]);
        size_t n = cfg->nlocal_domains;
        cfg->local_domains = xrealloc(cfg->local_domains, (n + 1) * sizeof *cfg->local_domains);
        p->domain_lines = xrealloc(p->domain_lines, (n + 1) * sizeof *p->domain_lines);
        cfg->local_domains[n] = xstrdup(argv[a]);
        str_lower(cfg->local_domains[n]);
        p->domain_lines[n] = p->line;
        cfg->nlocal_domains = n + 1;
    }
    return 0;
}

/* Mailboxes are only syntax-checked here; whether the domain is local and whether the
 * mailbox is listed twice is checked once the whole file is read (config_finish), so the
 * order of directives does not matter. */
static int kw_mailbox(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    struct config *cfg = p->cfg;
    if (argc == 0)
        return perr(p, "%s: missing value (expected one or more addresses local@domain)",
                    kw->name);
    for (size_t a = 0; a < argc; a++) {
        char *at = strrchr(argv[a], '@');
        if (!at)
            return perr(p, "%s: bad address '%s' (expected local@domain)", kw->name, argv[a]);
        *at = '\0';
        bool ok = valid_local(argv[a]) && valid_domain(at + 1);
        *at = '@';
        if (!ok)
            return perr(p, "%s: bad address '%s' (expected local@domain, local part letters, "
                           "digits, dots and !#$%%&'*+-=?^_`{|}~)",
                        kw->name, argv[a]);
        size_t n = cfg->nmailboxes;
        cfg->mailboxes = xrealloc(cfg->mailboxes, (n + 1) * sizeof *cfg->mailboxes);
        p->mailbox_lines = xrealloc(p->mailbox_lines, (n + 1) * sizeof *p->mailbox_lines);
        cfg->mailboxes[n].local = xstrndup(argv[a], (size_t)(at - argv[a]));
        cfg->mailboxes[n].domain = xstrdup(at + 1);
        str_lower(cfg->mailboxes[n].local);
        str_lower(cfg->mailboxes[n].domain);
        p->mailbox_lines[n] = p->line;
        cfg->nmailboxes = n + 1;
    }
    return 0;
}

/* odmr_domain DOMAIN USER... (RFC 2645): the domain's mail waits for an ATRN by one of the
 * users. Whether it collides with a local_domain is checked at the end (config_finish). */
static int kw_odmr_domain(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    struct config *cfg = p->cfg;
    if (argc < 2)
        return perr(p, "%s: expected a domain and the users entitled to it", kw->name);
    if (!valid_domain(argv[0]))
        return perr(p, "%s: '%s' is not a valid domain name", kw->name, argv[0]);
    if (config_is_odmr_domain(cfg, argv[0]))
        return perr(p, "%s: '%s' is already listed", kw->name, argv[0]);
    cfg->odmr_domains = xrealloc(cfg->odmr_domains,
                                 (cfg->nodmr_domains + 1) * sizeof *cfg->odmr_domains);
    struct odmr_domain_cfg *od = &cfg->odmr_domains[cfg->nodmr_domains++];
    od->domain = xstrdup(argv[0]);
    str_lower(od->domain);
    od->users = xcalloc(argc - 1, sizeof *od->users);
    od->nusers = argc - 1;
    for (size_t a = 1; a < argc; a++)
        od->users[a - 1] = xstrdup(argv[a]);
    return 0;
}

/* ---- outbound delivery keywords (docs/delivery.md) ------------------------------------- */

/* "HOST", "HOST:PORT", "[IPV6]" or "[IPV6]:PORT"; HOST a domain name or an IPv4 address. */
static int parse_hostport(struct parser *p, const struct keyword *kw, const char *s,
                          char **host, unsigned short *port)
{
    char buf[DOMAIN_MAX + 1];
    const char *h = s, *portstr = NULL;
    size_t hl;
    bool v6 = false;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || (close[1] != '\0' && close[1] != ':'))
            return perr(p, "%s: bad host '%s' (expected [IPV6] or [IPV6]:PORT)", kw->name, s);
        h = s + 1;
        hl = (size_t)(close - h);
        portstr = close[1] == ':' ? close + 2 : NULL;
        v6 = true;
    } else {
        const char *colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':'))
            return perr(p, "%s: bad host '%s' (IPv6 addresses go in brackets: [::1]:25)",
                        kw->name, s);
        hl = colon ? (size_t)(colon - s) : strlen(s);
        portstr = colon ? colon + 1 : NULL;
    }
    if (hl == 0 || hl >= sizeof buf)
        return perr(p, "%s: bad host '%s'", kw->name, s);
    memcpy(buf, h, hl);
    buf[hl] = '\0';
    unsigned char addr[sizeof(struct in6_addr)];
    if (v6 ? inet_pton(AF_INET6, buf, addr) != 1
           : inet_pton(AF_INET, buf, addr) != 1 && !valid_domain(buf))
        return perr(p, "%s: bad host '%s' (expected a host name or an IP address)", kw->name, s);
    unsigned long long pn = 25;
    if (portstr && (!parse_ull(portstr, strlen(portstr), &pn) || pn < 1 || pn > 65535))
        return perr(p, "%s: bad port in '%s' (expected 1 to 65535)", kw->name, s);
    *host = xstrdup(buf);
    str_lower(*host);
    *port = (unsigned short)pn;
    return 0;
}

static void dest_free(struct outbound_dest_cfg *d)
{
    free(d->domain);
    free(d->host);
    free(d->auth_user);
    free(d->auth_passfile);
    memset(d, 0, sizeof *d);
}

enum tls_policy config_tls_policy(const char *name)
{
    static const struct {
        const char *name;
        enum tls_policy policy;
    } names[] = {
        {"none", TLS_POLICY_NONE},       {"may", TLS_POLICY_OPPORTUNISTIC},
        {"encrypt", TLS_POLICY_REQUIRED}, {"verify", TLS_POLICY_VERIFY},
        /* tern's first names, still accepted */
        {"opportunistic", TLS_POLICY_OPPORTUNISTIC}, {"required", TLS_POLICY_REQUIRED},
    };
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (strcmp(name, names[i].name) == 0)
            return names[i].policy;
    return TLS_POLICY_DEFAULT;
}

const char *config_tls_policy_name(enum tls_policy policy)
{
    switch (policy) {
    case TLS_POLICY_NONE:
        return "none";
    case TLS_POLICY_REQUIRED:
        return "encrypt";
    case TLS_POLICY_VERIFY:
        return "verify";
    case TLS_POLICY_DEFAULT:
    case TLS_POLICY_OPPORTUNISTIC:
        break;
    }
    return "may";
}

/* The options after HOST[:PORT]: starttls=none|may|encrypt|verify, auth=USER:PASSFILE. */
static int parse_dest_opts(struct parser *p, const struct keyword *kw, char **argv, size_t argc,
                           struct outbound_dest_cfg *d)
{
    for (size_t i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "starttls=", 9) == 0) {
            d->tls = config_tls_policy(a + 9);
            if (d->tls == TLS_POLICY_DEFAULT)
                return perr(p, "%s: bad option '%s' (expected starttls=none, starttls=may, "
                               "starttls=encrypt or starttls=verify)", kw->name, a);
        } else if (strncmp(a, "auth=", 5) == 0) {
            const char *colon = strchr(a + 5, ':');
            if (!colon || colon == a + 5 || colon[1] == '\0')
                return perr(p, "%s: bad option '%s' (expected auth=USER:PASSWORD-FILE)",
                            kw->name, a);
            if (strlen(colon + 1) > PATH_VALUE_MAX)
                return perr(p, "%s: path is longer than %d characters", kw->name,
                            PATH_VALUE_MAX);
            free(d->auth_user);
            free(d->auth_passfile);
            d->auth_user = xstrndup(a + 5, (size_t)(colon - (a + 5)));
            d->auth_passfile = xstrdup(colon + 1);
        } else {
            return perr(p, "%s: unknown option '%s' (expected starttls=... or auth=...)",
                        kw->name, a);
        }
    }
    if (d->auth_user && d->tls == TLS_POLICY_NONE)
        return perr(p, "%s: auth= needs TLS: tern never sends a password in clear text",
                    kw->name);
    return 0;
}

/* smarthost HOST[:PORT] [starttls=...] [auth=USER:PASSFILE] */
static int kw_smarthost(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    if (argc == 0)
        return perr(p, "%s: missing value (expected HOST[:PORT] [starttls=...] "
                       "[auth=USER:PASSWORD-FILE])", kw->name);
    struct outbound_dest_cfg d = {0};
    if (parse_hostport(p, kw, argv[0], &d.host, &d.port) < 0 ||
        parse_dest_opts(p, kw, argv + 1, argc - 1, &d) < 0) {
        dest_free(&d);
        return -1;
    }
    p->cfg->smarthost = d;
    return 0;
}

/* transport DOMAIN HOST[:PORT] [starttls=...] [auth=USER:PASSFILE]; ".DOMAIN" = subdomains */
static int kw_transport(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    struct config *cfg = p->cfg;
    if (argc < 2)
        return perr(p, "%s: expected DOMAIN HOST[:PORT] [starttls=...] "
                       "[auth=USER:PASSWORD-FILE]", kw->name);
    const char *dom = argv[0];
    if (!valid_domain(dom[0] == '.' ? dom + 1 : dom))
        return perr(p, "%s: '%s' is not a valid domain (or .domain for its subdomains)",
                    kw->name, dom);
    for (size_t i = 0; i < cfg->ntransports; i++)
        if (str_ieq(cfg->transports[i].domain, dom))
            return perr(p, "%s: '%s' is already listed", kw->name, dom);
    struct outbound_dest_cfg d = {0};
    if (parse_hostport(p, kw, argv[1], &d.host, &d.port) < 0 ||
        parse_dest_opts(p, kw, argv + 2, argc - 2, &d) < 0) {
        dest_free(&d);
        return -1;
    }
    d.domain = xstrdup(dom);
    str_lower(d.domain);
    cfg->transports = xrealloc(cfg->transports, (cfg->ntransports + 1) * sizeof *cfg->transports);
    cfg->transports[cfg->ntransports++] = d;
    return 0;
}

/* A list of networks (relay_networks, etrn_networks): "127.0.0.0/8", "::1/128", or an address
 * alone (a /32 or /128), appended to *v. */
static int add_networks(struct parser *p, const struct keyword *kw, char **argv, size_t argc,
                        struct cidr_cfg **v, size_t *n)
{
    if (argc == 0)
        return perr(p, "%s: missing value (expected networks such as 192.0.2.0/24 ::1/128)",
                    kw->name);
    for (size_t a = 0; a < argc; a++) {
        char buf[64];
        const char *slash = strchr(argv[a], '/');
        size_t al = slash ? (size_t)(slash - argv[a]) : strlen(argv[a]);
        struct cidr_cfg c = {0};
        if (al == 0 || al >= sizeof buf)
            return perr(p, "%s: bad network '%s'", kw->name, argv[a]);
        memcpy(buf, argv[a], al);
        buf[al] = '\0';
        if (inet_pton(AF_INET, buf, c.addr) == 1)
            c.family = AF_INET;
        else if (inet_pton(AF_INET6, buf, c.addr) == 1)
            c.family = AF_INET6;
        else
            return perr(p, "%s: bad network '%s' (expected ADDRESS[/PREFIX])", kw->name, argv[a]);
        unsigned max = c.family == AF_INET ? 32 : 128;
        unsigned long long pl = max;
        if (slash && (!parse_ull(slash + 1, strlen(slash + 1), &pl) || pl > max))
            return perr(p, "%s: bad prefix length in '%s' (0 to %u)", kw->name, argv[a], max);
        c.prefix = (unsigned)pl;
        for (unsigned bit = c.prefix; bit < max; bit++) /* host bits are not part of it */
            c.addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
        *v = xrealloc(*v, (*n + 1) * sizeof **v);
        (*v)[(*n)++] = c;
    }
    return 0;
}

static int kw_relay_networks(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    return add_networks(p, kw, argv, argc, &p->cfg->relay_networks, &p->cfg->nrelay_networks);
}

/* etrn_networks CIDR...: clients that may use ETRN without AUTH (RFC 1985). */
static int kw_etrn_networks(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    return add_networks(p, kw, argv, argc, &p->cfg->etrn_networks, &p->cfg->netrn_networks);
}

/* resolver IP[:PORT] */
static int kw_resolver(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    if (want_one(p, kw, argc) < 0)
        return -1;
    int family;
    unsigned char addr[16];
    unsigned port;
    char why[128];
    if (!dns_parse_nameserver(argv[0], &family, addr, &port, why, sizeof why))
        return perr(p, "%s: bad name server '%s': %s", kw->name, argv[0], why);
    set_string(field(p, kw), argv[0]);
    return 0;
}

/* retry_schedule DURATION...: the delay after the first attempt, the second... */
static int kw_retry_schedule(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    struct config *cfg = p->cfg;
    if (argc == 0)
        return perr(p, "%s: missing value (expected delays such as 5m 15m 1h 4h)", kw->name);
    int *v = xcalloc(argc, sizeof *v);
    for (size_t i = 0; i < argc; i++) {
        unsigned long long d;
        int rc = parse_quantity(argv[i], UNIT_DURATION, &d);
        if (rc < 0 || d < 1 || d > 30 * 86400ULL) {
            free(v);
            return perr(p, "%s: '%s' is not a duration from 1s to 30d", kw->name, argv[i]);
        }
        if (i > 0 && (int)d < v[i - 1]) {
            int prev = v[i - 1];
            free(v);
            return perr(p, "%s: delays must not shrink ('%s' after %d s)", kw->name, argv[i],
                        prev);
        }
        v[i] = (int)d;
    }
    free(cfg->retry_schedule);
    cfg->retry_schedule = v;
    cfg->nretry_schedule = argc;
    return 0;
}

static int kw_outbound_tls(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    if (want_one(p, kw, argc) < 0)
        return -1;
    p->cfg->outbound_tls = config_tls_policy(argv[0]);
    if (p->cfg->outbound_tls == TLS_POLICY_DEFAULT)
        return perr(p, "%s: expected none, may, encrypt or verify, got '%s'", kw->name,
                    argv[0]);
    return 0;
}

/* double_bounce_recipient ADDR|none: "none" (or "") keeps no one informed. */
static int kw_double_bounce(struct parser *p, const struct keyword *kw, char **argv,
                            size_t argc)
{
    if (want_one(p, kw, argc) < 0)
        return -1;
    const char *a = argv[0];
    bool none = strcmp(a, "none") == 0 || strcmp(a, "\"\"") == 0;
    const char *at = strrchr(a, '@');
    if (!none && (!at || at == a || !valid_domain(at + 1) || strlen(a) > 254))
        return perr(p, "%s: '%s' is not an address local@domain (or none)", kw->name, a);
    set_string(&p->cfg->double_bounce_recipient, none ? "" : a);
    return 0;
}

static int kw_auth_backend(struct parser *p, const struct keyword *kw, char **argv, size_t argc)
{
    if (want_one(p, kw, argc) < 0)
        return -1;
    if (strcmp(argv[0], "users") == 0)
        p->cfg->auth_backend = AUTH_BACKEND_USERS;
    else if (strcmp(argv[0], "dovecot") == 0)
        p->cfg->auth_backend = AUTH_BACKEND_DOVECOT;
    else
        return perr(p, "%s: expected users or dovecot, got '%s'", kw->name, argv[0]);
    return 0;
}

#define F(member) offsetof(struct config, member)
#define DAY 86400ULL
/* 1 TiB, or what size_t holds on a 32-bit system. */
#define MESSAGE_SIZE_MAX (SIZE_MAX < (1ULL << 40) ? (unsigned long long)SIZE_MAX : (1ULL << 40))

/* One entry per keyword; docs/configuration.md describes each. Ranges are deliberately
 * generous: they catch typos (an extra zero, a missing unit), not unusual choices. */
static const struct keyword keywords[] = {
    {"hostname", kw_hostname, F(hostname), 0, 0, false},
    {"user", kw_user, F(user), 0, 0, false},
    {"spool", kw_path, F(spool_dir), 0, 0, false},
    {"maildir", kw_maildir, F(maildir), 0, 0, false},
    {"workers", kw_int, F(workers), 0, 256, false},
    {"listen", kw_listen, 0, 0, 0, true},
    {"local_domain", kw_local_domain, 0, 0, 0, true},
    {"mailbox", kw_mailbox, 0, 0, 0, true},
    {"max_message_size", kw_size, F(max_message_size), 1, MESSAGE_SIZE_MAX, false},
    {"max_recipients", kw_count, F(max_recipients), 100, 100000, false},
    {"max_connections", kw_count, F(max_connections), 1, 1000000, false},
    {"max_connections_per_ip", kw_count, F(max_connections_per_ip), 1, 1000000, false},
    {"max_errors", kw_count, F(max_errors), 1, 1000, false},
    {"timeout_command", kw_duration, F(timeout_command), 1, DAY, false},
    {"timeout_data_block", kw_duration, F(timeout_data_block), 1, DAY, false},
    {"timeout_data_end", kw_duration, F(timeout_data_end), 1, DAY, false},
    {"shutdown_grace", kw_duration, F(shutdown_grace), 0, 3600, false},
    {"vrfy", kw_vrfy, 0, 0, 0, false},
    {"retry_min", kw_duration, F(retry_min), 1, DAY, false},
    {"retry_max", kw_duration, F(retry_max), 1, 30 * DAY, false},
    {"queue_lifetime", kw_duration, F(queue_lifetime), 1, 365 * DAY, false},
    {"tls_certificate", kw_tls_certificate, 0, 0, 0, true},
    {"tls_ciphers", kw_tls_ciphers, 0, 0, 0, false},
    {"tls_ocsp_response", kw_tls_ocsp_response, 0, 0, 0, true},
    {"log", kw_log, 0, 0, 0, false},
    {"log_level", kw_log_level, 0, 0, 0, false},
    {"smarthost", kw_smarthost, 0, 0, 0, false},
    {"transport", kw_transport, 0, 0, 0, true},
    {"relay_networks", kw_relay_networks, 0, 0, 0, true},
    {"resolver", kw_resolver, F(resolver), 0, 0, false},
    {"delay_warning", kw_duration, F(delay_warning), 0, 30 * DAY, false},
    {"retry_schedule", kw_retry_schedule, 0, 0, 0, false},
    {"outbound_tls", kw_outbound_tls, 0, 0, 0, false},
    {"outbound_tls_ca_file", kw_path, F(outbound_tls_ca_file), 0, 0, false},
    {"double_bounce_recipient", kw_double_bounce, 0, 0, 0, false},
    {"outbound_concurrency", kw_count, F(outbound_concurrency), 1, 1000, false},
    {"outbound_max_connections", kw_count, F(outbound_max_connections), 1, 100000, false},
    {"outbound_max_rcpts", kw_count, F(outbound_max_rcpts), 1, 100000, false},
    {"outbound_timeout_connect", kw_duration, F(outbound_timeout_connect), 1, DAY, false},
    {"outbound_timeout_command", kw_duration, F(outbound_timeout_command), 1, DAY, false},
    {"outbound_timeout_data_init", kw_duration, F(outbound_timeout_data_init), 1, DAY, false},
    {"outbound_timeout_data_block", kw_duration, F(outbound_timeout_data_block), 1, DAY, false},
    {"outbound_timeout_data_end", kw_duration, F(outbound_timeout_data_end), 1, DAY, false},
    {"outbound_idle", kw_duration, F(outbound_idle), 1, 3600, false},
    {"users_file", kw_path, F(users_file), 0, 0, false},
    {"auth_plaintext_loopback", kw_bool, F(auth_plaintext_loopback), 0, 0, false},
    {"sender_login_match", kw_bool, F(sender_login_match), 0, 0, false},
    {"received_auth_user", kw_bool, F(received_auth_user), 0, 0, false},
    {"sender_login", kw_sender_login, 0, 0, 0, true},
    {"auth_max_failures", kw_count, F(auth_max_failures), 0, 1000, false},
    {"auth_lockout", kw_duration, F(auth_lockout), 1, DAY, false},
    {"future_release_max", kw_duration, F(future_release_max), 0, 365 * DAY, false},
    {"etrn_networks", kw_etrn_networks, 0, 0, 0, true},
    {"odmr_domain", kw_odmr_domain, 0, 0, 0, true},
    {"control_socket", kw_path, F(control_socket), 0, 0, false},
    {"aliases", kw_path, F(aliases_file), 0, 0, false},
    {"virtual_aliases", kw_path, F(virtual_aliases_file), 0, 0, false},
    {"relocated", kw_path, F(relocated_file), 0, 0, false},
    {"allow_include", kw_bool, F(allow_include), 0, 0, false},
    {"allow_pipe_aliases", kw_bool, F(allow_pipe_aliases), 0, 0, false},
    {"auth_backend", kw_auth_backend, 0, 0, 0, false},
    {"dovecot_auth_socket", kw_path, F(dovecot_auth_socket), 0, 0, false},
    {"dovecot_auth_timeout", kw_duration, F(dovecot_auth_timeout), 1, 3600, false},
    {"max_connection_rate", kw_count, F(max_connection_rate), 0, 1000000, false},
    {"min_free_space", kw_size, F(min_free_space), 0, MESSAGE_SIZE_MAX, false},
    {"max_header_size", kw_size, F(max_header_size), 1024, MESSAGE_SIZE_MAX, false},
    {"max_header_count", kw_count, F(max_header_count), 10, 1000000, false},
    {"trusted_users", kw_trusted_users, 0, 0, 0, true},
};

_Static_assert(ARRAY_LEN(keywords) <= ARRAY_LEN(((struct parser *)0)->first_line),
               "first_line must have a slot per keyword");

static const struct keyword *find_keyword(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(keywords); i++)
        if (strcmp(keywords[i].name, name) == 0)
            return &keywords[i];
    return NULL;
}

/* ---- lines ---------------------------------------------------------------------------- */

static bool is_space(int c)
{
    return c == ' ' || c == '\t';
}

/* Split one line (NUL-terminated, modified in place) into words, dropping a comment that
 * starts at the line's beginning or after whitespace. */
static int split_line(struct parser *p, char *s, char **argv, size_t *argc)
{
    size_t n = 0;
    for (;;) {
        while (is_space((unsigned char)*s))
            s++;
        if (*s == '\0' || *s == '#')
            break;
        if (n == MAX_TOKENS)
            return perr(p, "too many values on one line (at most %d)", MAX_TOKENS - 1);
        argv[n++] = s;
        while (*s && !is_space((unsigned char)*s))
            s++;
        if (*s)
            *s++ = '\0';
    }
    *argc = n;
    return 0;
}

static int parse_line(struct parser *p, char *s)
{
    char *argv[MAX_TOKENS];
    size_t argc = 0;
    for (const char *c = s; *c; c++) {
        unsigned char u = (unsigned char)*c;
        if ((u < 0x20 && u != '\t') || u == 0x7f)
            return perr(p, "control character 0x%02x in line", (unsigned)u);
    }
    if (split_line(p, s, argv, &argc) < 0)
        return -1;
    if (argc == 0)
        return 0;
    const struct keyword *kw = find_keyword(argv[0]);
    if (!kw)
        return perr(p, "unknown keyword '%s'", argv[0]);
    size_t idx = (size_t)(kw - keywords);
    if (!kw->repeatable && p->first_line[idx] != 0)
        return perr(p, "%s: duplicate (already set on line %zu)", kw->name, p->first_line[idx]);
    if (p->first_line[idx] == 0)
        p->first_line[idx] = p->line;
    return kw->handler(p, kw, argv + 1, argc - 1);
}

/* ---- whole-file checks ------------------------------------------------------------------ */

static size_t kw_line(const struct parser *p, const char *name)
{
    return p->first_line[find_keyword(name) - keywords];
}

struct mailbox_ref {
    const struct mailbox_cfg *mb;
    size_t line;
};

static int mailbox_cmp(const struct mailbox_cfg *a, const struct mailbox_cfg *b)
{
    int c = strcmp(a->domain, b->domain);
    return c ? c : strcmp(a->local, b->local);
}

static int mailbox_ref_cmp(const void *a, const void *b)
{
    const struct mailbox_ref *x = a, *y = b;
    int c = mailbox_cmp(x->mb, y->mb);
    if (c)
        return c;
    return (x->line > y->line) - (x->line < y->line);
}

static int mailbox_sort_cmp(const void *a, const void *b)
{
    return mailbox_cmp(a, b);
}

/* TLS options of each listener: STARTTLS is offered wherever a certificate exists (except on
 * smtps, which is TLS from the first byte), and submission requires it before MAIL. */
static int resolve_listen_tls(struct parser *p)
{
    struct config *cfg = p->cfg;
    bool certs = cfg->ntls_certs > 0;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        struct listen_cfg *l = &cfg->listen[i];
        if (l->kind == LISTEN_SMTPS && !certs)
            return perr(p, "listen %s:%u smtps: implicit TLS needs a tls_certificate", l->addr,
                        l->port);
        if (l->kind == LISTEN_SMTPS && l->starttls_opt == 1)
            return perr(p, "listen %s:%u smtps: starttls makes no sense on implicit TLS",
                        l->addr, l->port);
        if (!certs && (l->starttls_opt == 1 || l->require_tls_opt == 1))
            return perr(p, "listen %s:%u: %s needs a tls_certificate", l->addr, l->port,
                        l->starttls_opt == 1 ? "starttls" : "require-tls");
        l->starttls = l->kind != LISTEN_SMTPS && certs && l->starttls_opt != 0;
        l->require_tls = l->require_tls_opt == -1 ? (l->kind == LISTEN_SUBMISSION && certs)
                                                  : l->require_tls_opt == 1;
        if (l->require_tls && !l->starttls && l->kind != LISTEN_SMTPS)
            return perr(p, "listen %s:%u: require-tls with no-starttls would refuse all mail",
                        l->addr, l->port);
    }
    return 0;
}

static int config_finish(struct parser *p, size_t last_line)
{
    struct config *cfg = p->cfg;
    /* Errors about something missing point at the end of the file. */
    p->line = last_line;
    if (cfg->nlisten == 0)
        return perr(p, "no listen directive (add e.g. 'listen 127.0.0.1:2525 smtp')");
    if (cfg->nlocal_domains == 0)
        return perr(p, "no local_domain directive (add e.g. 'local_domain example.org')");
    if (resolve_listen_tls(p) < 0)
        return -1;

    for (size_t i = 0; i < cfg->nmailboxes; i++) {
        if (!config_is_local_domain(cfg, cfg->mailboxes[i].domain)) {
            p->line = p->mailbox_lines[i];
            return perr(p, "mailbox: '%s@%s': '%s' is not a local_domain", cfg->mailboxes[i].local,
                        cfg->mailboxes[i].domain, cfg->mailboxes[i].domain);
        }
    }

    /* Sort (for bsearch in config_has_mailbox) and report the earliest repeated line. */
    if (cfg->nmailboxes > 1) {
        struct mailbox_ref *refs = xcalloc(cfg->nmailboxes, sizeof *refs);
        for (size_t i = 0; i < cfg->nmailboxes; i++)
            refs[i] = (struct mailbox_ref){&cfg->mailboxes[i], p->mailbox_lines[i]};
        qsort(refs, cfg->nmailboxes, sizeof *refs, mailbox_ref_cmp);
        size_t dup = 0;
        const struct mailbox_ref *first = NULL;
        for (size_t i = 1; i < cfg->nmailboxes; i++) {
            if (mailbox_cmp(refs[i - 1].mb, refs[i].mb) == 0 && (dup == 0 || refs[i].line < dup)) {
                dup = refs[i].line;
                first = &refs[i - 1];
                while (first > refs && mailbox_cmp((first - 1)->mb, refs[i].mb) == 0)
                    first--;
            }
        }
        if (dup) {
            p->line = dup;
            perr(p, "mailbox: '%s@%s' is already listed on line %zu", first->mb->local,
                 first->mb->domain, first->line);
            free(refs);
            return -1;
        }
        free(refs);
        qsort(cfg->mailboxes, cfg->nmailboxes, sizeof *cfg->mailboxes, mailbox_sort_cmp);
    }

    for (size_t i = 0; i < cfg->nodmr_domains; i++) {
        if (config_is_local_domain(cfg, cfg->odmr_domains[i].domain)) {
            p->line = kw_line(p, "odmr_domain");
            return perr(p, "odmr_domain: '%s' is a local_domain; mail held for ODMR is for "
                           "another host", cfg->odmr_domains[i].domain);
        }
    }

    /* Two sources of users would make "who is alice?" ambiguous. */
    if (cfg->auth_backend == AUTH_BACKEND_DOVECOT && cfg->users_file) {
        size_t l = kw_line(p, "users_file");
        p->line = l ? l : kw_line(p, "auth_backend");
        return perr(p, "users_file is not used with auth_backend dovecot (Dovecot checks the "
                       "passwords): remove one of them");
    }
    if (cfg->retry_min > cfg->retry_max) {
        size_t l = kw_line(p, "retry_max");
        p->line = l ? l : kw_line(p, "retry_min");
        return perr(p, "retry_max (%d s) is less than retry_min (%d s)", cfg->retry_max,
                    cfg->retry_min);
    }
    /* With several domains, a pattern without %d would merge a@x and a@y into one Maildir. */
    if (cfg->nlocal_domains > 1 && !pattern_has(cfg->maildir, 'd')) {
        size_t l = kw_line(p, "maildir");
        p->line = l ? l : p->domain_lines[1];
        return perr(p, "maildir: pattern '%s' has no %%d but there are %zu local domains",
                    cfg->maildir, cfg->nlocal_domains);
    }
    return 0;
}

/* ---- public API --------------------------------------------------------------------------- */

static void set_defaults(struct config *cfg)
{
    char host[256];
    memset(cfg, 0, sizeof *cfg);
    /* gethostname need not NUL-terminate a truncated name. */
    if (gethostname(host, sizeof host) == 0) {
        host[sizeof host - 1] = '\0';
        str_lower(host);
    } else {
        host[0] = '\0';
    }
    cfg->hostname = xstrdup(valid_domain(host) ? host : "localhost");
    cfg->user = xstrdup("tern");
    cfg->spool_dir = xstrdup("var/spool");
    cfg->maildir = xstrdup("var/mail/%d/%u");
    cfg->workers = 0;
    cfg->max_message_size = 35u << 20;
    cfg->max_recipients = 1000;
    cfg->max_connections = 1000;
    cfg->max_connections_per_ip = 20;
    cfg->max_errors = 20;
    cfg->timeout_command = 300;
    cfg->timeout_data_block = 180;
    cfg->timeout_data_end = 600;
    cfg->shutdown_grace = 10;
    cfg->vrfy_enabled = false;
    cfg->retry_min = 60;
    cfg->retry_max = 3600;
    cfg->queue_lifetime = 5 * 86400;
    cfg->log_target = LOG_TO_STDERR;
    cfg->log_level = LOG_INFO;
    cfg->delay_warning = 4 * 3600;
    cfg->outbound_tls = TLS_POLICY_OPPORTUNISTIC;
    cfg->outbound_concurrency = 5;
    cfg->outbound_max_connections = 100;
    cfg->outbound_max_rcpts = 100;
    cfg->outbound_timeout_connect = 30;
    cfg->outbound_timeout_command = 300;
    cfg->outbound_timeout_data_init = 120;
    cfg->outbound_timeout_data_block = 180;
    cfg->outbound_timeout_data_end = 600;
    cfg->outbound_idle = 5;
    cfg->auth_max_failures = 10;
    cfg->auth_lockout = 900;
    cfg->future_release_max = 7 * 86400;
    cfg->allow_include = true;
    cfg->dovecot_auth_socket = xstrdup("/run/dovecot/auth-client");
    cfg->dovecot_auth_timeout = 30;
    cfg->min_free_space = 16u << 20;
    cfg->max_header_size = 256u << 10;
    cfg->max_header_count = 1000;
}

int config_parse(struct config *cfg, const char *path, const char *text, size_t len,
                 char *err, size_t errlen)
{
    set_defaults(cfg);
    cfg->path = xstrdup(path);
    if (errlen > 0)
        err[0] = '\0';
    struct parser p = {.cfg = cfg, .path = path, .err = err, .errlen = errlen};
    char *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    size_t pos = 0;
    while (pos < len) {
        p.line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t n = end - pos;
        if (n > 0 && text[pos + n - 1] == '\r')  /* tolerate files written with CRLF */
            n--;
        if (memchr(text + pos, '\0', n)) {
            rc = perr(&p, "NUL byte in line");
            break;
        }
        if (n + 1 > cap) {
            cap = n + 1;
            buf = xrealloc(buf, cap);
        }
        memcpy(buf, text + pos, n);
        buf[n] = '\0';
        if ((rc = parse_line(&p, buf)) < 0)
            break;
        pos = end + 1;
    }
    free(buf);
    if (rc == 0)
        rc = config_finish(&p, p.line > 0 ? p.line : 1);
    free(p.mailbox_lines);
    free(p.domain_lines);
    if (rc < 0)
        config_free(cfg);
    return rc;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
    if (!path)
        return config_parse(cfg, "(embedded)", config_embedded, strlen(config_embedded), err,
                            errlen);
    memset(cfg, 0, sizeof *cfg);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 8192, len = 0;
    char *text = xmalloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap >= CONFIG_FILE_MAX) {
                snprintf(err, errlen, "%s: file is larger than %u bytes", path, CONFIG_FILE_MAX);
                goto fail;
            }
            cap *= 2;
            text = xrealloc(text, cap);
        }
        ssize_t n = read(fd, text + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    int rc = config_parse(cfg, path, text, len, err, errlen);
    free(text);
    return rc;
fail:
    close(fd);
    free(text);
    return -1;
}

void config_free(struct config *cfg)
{
    free(cfg->path);
    free(cfg->hostname);
    free(cfg->user);
    free(cfg->spool_dir);
    free(cfg->maildir);
    for (size_t i = 0; i < cfg->nlocal_domains; i++)
        free(cfg->local_domains[i]);
    free(cfg->local_domains);
    for (size_t i = 0; i < cfg->ntrusted_users; i++)
        free(cfg->trusted_users[i]);
    free(cfg->trusted_users);
    for (size_t i = 0; i < cfg->nmailboxes; i++) {
        free(cfg->mailboxes[i].local);
        free(cfg->mailboxes[i].domain);
    }
    free(cfg->mailboxes);
    for (size_t i = 0; i < cfg->ntls_certs; i++) {
        free(cfg->tls_certs[i].cert);
        free(cfg->tls_certs[i].key);
        free(cfg->tls_certs[i].ocsp);
    }
    free(cfg->tls_ciphers);
    dest_free(&cfg->smarthost);
    for (size_t i = 0; i < cfg->ntransports; i++)
        dest_free(&cfg->transports[i]);
    free(cfg->transports);
    free(cfg->relay_networks);
    free(cfg->etrn_networks);
    free(cfg->resolver);
    free(cfg->outbound_tls_ca_file);
    free(cfg->double_bounce_recipient);
    free(cfg->retry_schedule);
    free(cfg->users_file);
    free(cfg->control_socket);
    free(cfg->dovecot_auth_socket);
    for (size_t i = 0; i < cfg->nsender_logins; i++) {
        free(cfg->sender_logins[i].user);
        free(cfg->sender_logins[i].addr);
    }
    free(cfg->sender_logins);
    for (size_t i = 0; i < cfg->nodmr_domains; i++) {
        for (size_t u = 0; u < cfg->odmr_domains[i].nusers; u++)
            free(cfg->odmr_domains[i].users[u]);
        free(cfg->odmr_domains[i].users);
        free(cfg->odmr_domains[i].domain);
    }
    free(cfg->odmr_domains);
    free(cfg->aliases_file);
    free(cfg->virtual_aliases_file);
    free(cfg->relocated_file);
    aliases_free(cfg->aliases);
    free(cfg->aliases);
    /* Leave a zeroed struct so a second config_free (or one after a failed parse) is safe. */
    memset(cfg, 0, sizeof *cfg);
}

/* Locale-independent ASCII case-insensitive strcmp, consistent with the lower-cased,
 * strcmp-sorted mailbox table. */
static int ascii_icmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'A' && x <= 'Z')
            x += 'a' - 'A';
        if (y >= 'A' && y <= 'Z')
            y += 'a' - 'A';
        if (x != y || x == 0)
            return x - y;
    }
}

bool config_is_local_domain(const struct config *cfg, const char *domain)
{
    for (size_t i = 0; i < cfg->nlocal_domains; i++)
        if (str_ieq(cfg->local_domains[i], domain))
            return true;
    return false;
}

static const struct odmr_domain_cfg *find_odmr(const struct config *cfg, const char *domain)
{
    for (size_t i = 0; domain && i < cfg->nodmr_domains; i++)
        if (str_ieq(cfg->odmr_domains[i].domain, domain))
            return &cfg->odmr_domains[i];
    return NULL;
}

bool config_is_odmr_domain(const struct config *cfg, const char *domain)
{
    return find_odmr(cfg, domain) != NULL;
}

bool config_odmr_entitled(const struct config *cfg, const char *user, const char *domain)
{
    const struct odmr_domain_cfg *od = find_odmr(cfg, domain);
    for (size_t u = 0; od && user && u < od->nusers; u++)
        if (strcmp(od->users[u], user) == 0)
            return true;
    return false;
}

bool config_has_mailbox(const struct config *cfg, const char *local, const char *domain)
{
    size_t lo = 0, hi = cfg->nmailboxes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct mailbox_cfg *mb = &cfg->mailboxes[mid];
        int c = ascii_icmp(domain, mb->domain);
        if (c == 0)
            c = ascii_icmp(local, mb->local);
        if (c == 0)
            return true;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return false;
}

/* A component that goes into a path: never empty, never "." or "..", never a '/'. */
static bool safe_component(const char *s)
{
    if (s[0] == '\0' || s[0] == '.')
        return false;
    for (; *s; s++)
        if (*s == '/' || (unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

bool config_maildir_path(const struct config *cfg, const char *local, const char *domain,
                         char *out, size_t outlen)
{
    if (outlen == 0)
        return false;
    out[0] = '\0';
    if (!safe_component(local) || !safe_component(domain))
        return false;
    size_t n = 0;
    for (const char *s = cfg->maildir; *s; s++) {
        const char *insert;
        char one[2] = {*s, '\0'};
        if (*s == '%' && (s[1] == 'd' || s[1] == 'u' || s[1] == '%')) {
            s++;
            insert = *s == 'd' ? domain : *s == 'u' ? local : "%";
        } else {
            insert = one;
        }
        bool lower = insert == domain || insert == local;
        for (; *insert; insert++) {
            if (n + 1 >= outlen) {
                out[0] = '\0';
                return false;
            }
            char c = *insert;
            if (lower && c >= 'A' && c <= 'Z')
                c = (char)(c + ('a' - 'A'));
            out[n++] = c;
        }
    }
    out[n] = '\0';
    return true;
}

/* Is the client address (numeric text) inside one of the n networks? */
static bool in_networks(const struct cidr_cfg *nets, size_t n, const char *addr)
{
    unsigned char a[16];
    int family;
    if (!addr)
        return false;
    if (inet_pton(AF_INET, addr, a) == 1) {
        family = AF_INET;
    } else if (inet_pton(AF_INET6, addr, a) == 1) {
        family = AF_INET6;
        /* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is that IPv4 address. */
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, sizeof mapped) == 0) {
            memmove(a, a + 12, 4);
            family = AF_INET;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const struct cidr_cfg *c = &nets[i];
        if (c->family != family)
            continue;
        unsigned full = c->prefix / 8, rest = c->prefix % 8;
        if (memcmp(a, c->addr, full) != 0)
            continue;
        if (rest && ((a[full] ^ c->addr[full]) & (unsigned char)(0xff00u >> rest)))
            continue;
        return true;
    }
    return false;
}

bool config_relay_allowed(const struct config *cfg, const char *addr)
{
    return in_networks(cfg->relay_networks, cfg->nrelay_networks, addr);
}

bool config_etrn_allowed(const struct config *cfg, const char *addr)
{
    return in_networks(cfg->etrn_networks, cfg->netrn_networks, addr) ||
           in_networks(cfg->relay_networks, cfg->nrelay_networks, addr);
}

bool config_sender_owned(const struct config *cfg, const char *user, const char *sender)
{
    const char *at = strrchr(sender, '@');
    if (!at || !sender[0])
        return false; /* <> and bare names belong to nobody */
    if (strchr(user, '@')) {
        if (ascii_icmp(user, sender) == 0)
            return true;
    } else {
        size_t ul = strlen(user);
        if ((size_t)(at - sender) == ul && str_nieq(sender, user, ul) &&
            config_is_local_domain(cfg, at + 1))
            return true;
    }
    for (size_t i = 0; i < cfg->nsender_logins; i++) {
        const struct sender_login_cfg *sl = &cfg->sender_logins[i];
        if (strcmp(sl->user, user) != 0)
            continue;
        if (sl->addr[0] == '@' ? ascii_icmp(sl->addr + 1, at + 1) == 0
                               : ascii_icmp(sl->addr, sender) == 0)
            return true;
    }
    return false;
}
