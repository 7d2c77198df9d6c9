/* envelope.c - a queued message's envelope and per-recipient delivery state, and the text
 * form stored at the head of every queue file and in state/<qid>.
 *
 * Carries the RFC 5321 reverse-path and the RFC 3461 (DSN) parameters (RET, ENVID, NOTIFY,
 * ORCPT) so bounces and DSNs can be built later. Format, version 1:
 *
 *   tern-envelope 1
 *   qid 0F3K9Z12AB34CD5E
 *   sender a@example.org             (values are xtext, RFC 3461 4; empty value: "key" alone)
 *   body 8bitmime                    (unspec | 7bit | 8bitmime | binarymime)
 *   smtputf8 0
 *   ret unspec                       (unspec | full | hdrs)
 *   envid
 *   arrival 1700000000
 *   hold_until 1700003600            (optional, only when set: RFC 4865 future release)
 *   client_addr 127.0.0.1
 *   client_helo client.example.org
 *   protocol ESMTP
 *   rcpt addr=b@example.org notify=0 orcpt= status=pending attempts=0 next_try=0 last_reply=
 *   <empty line>
 *
 * The parser is pure and strict (it is fuzzed: a damaged queue file is input like any
 * other): every top-level key exactly once (hold_until at most once), recipient fields in this order, numbers in
 * canonical decimal, values valid xtext without NUL octets. */
#include "envelope.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "util.h"

#define ENVELOPE_MAGIC "tern-envelope 1\n"

void envelope_init(struct envelope *env)
{
    memset(env, 0, sizeof *env);
    /* Strings are never NULL, so callers can print and compare them without checks. */
    env->sender = xstrdup("");
    env->envid = xstrdup("");
    env->client_addr = xstrdup("");
    env->client_helo = xstrdup("");
    env->protocol = xstrdup("");
}

static void rcpt_free(struct envelope_rcpt *r)
{
    free(r->addr);
    free(r->orcpt);
    free(r->last_reply);
}

void envelope_free(struct envelope *env)
{
    free(env->sender);
    free(env->envid);
    free(env->client_addr);
    free(env->client_helo);
    free(env->protocol);
    for (size_t i = 0; i < env->nrcpts; i++)
        rcpt_free(&env->rcpts[i]);
    free(env->rcpts);
    memset(env, 0, sizeof *env); /* a second envelope_free is harmless */
}

void envelope_set(char **member, const char *value)
{
    char *copy = xstrdup(value ? value : "");
    free(*member);
    *member = copy;
}

/* Append a recipient slot (all strings ""), growing the array geometrically. */
static struct envelope_rcpt *rcpt_append(struct envelope *env)
{
    if (env->nrcpts == env->cap_rcpts) {
        size_t cap = env->cap_rcpts ? env->cap_rcpts * 2 : 4;
        if (cap > SIZE_MAX / sizeof *env->rcpts)
            cap = env->cap_rcpts + 1; /* cannot happen before memory runs out */
        env->rcpts = xrealloc(env->rcpts, cap * sizeof *env->rcpts);
        env->cap_rcpts = cap;
    }
    struct envelope_rcpt *r = &env->rcpts[env->nrcpts++];
    memset(r, 0, sizeof *r);
    r->status = RCPT_PENDING;
    return r;
}

void envelope_add_rcpt(struct envelope *env, const char *addr, unsigned notify, const char *orcpt)
{
    struct envelope_rcpt *r = rcpt_append(env);
    r->addr = xstrdup(addr ? addr : "");
    r->notify = notify;
    r->orcpt = xstrdup(orcpt ? orcpt : "");
    r->last_reply = xstrdup("");
}

size_t envelope_pending(const struct envelope *env)
{
    size_t n = 0;
    for (size_t i = 0; i < env->nrcpts; i++)
        if (env->rcpts[i].status == RCPT_PENDING)
            n++;
    return n;
}

/* ---- formatting ------------------------------------------------------------------------- */

static const char *const body_names[] = {"unspec", "7bit", "8bitmime", "binarymime"};
static const char *const ret_names[] = {"unspec", "full", "hdrs"};
static const char *const status_names[] = {"pending", "delivered", "failed"};


static void sb_num(struct strbuf *b, long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", v);
    strbuf_add(b, tmp, (size_t)n);
}

/* Append s as xtext. Every octet becomes at most 3 characters. */
static void sb_xtext(struct strbuf *b, const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len == 0)
        return;
    strbuf_reserve(b, 3 * len + 1);
    if (!xtext_encode(s, len, b->p + b->len, b->cap - b->len))
        abort(); /* the buffer is large enough by construction */
    b->len += strlen(b->p + b->len);
}

/* "key value\n", or "key\n" when the value is empty. */
static void sb_kv(struct strbuf *b, const char *key, const char *value)
{
    strbuf_str(b, key);
    if (value && *value) {
        strbuf_add(b, " ", 1);
        sb_xtext(b, value);
    }
    strbuf_add(b, "\n", 1);
}

static const char *enum_name(const char *const *names, size_t n, unsigned v)
{
    return v < n ? names[v] : names[0];
}

char *envelope_format(const struct envelope *env, size_t *len)
{
    struct strbuf b = {0};
    strbuf_str(&b, ENVELOPE_MAGIC);
    strbuf_str(&b, "qid ");
    strbuf_str(&b, env->qid);
    strbuf_str(&b, "\n");
    sb_kv(&b, "sender", env->sender);
    strbuf_str(&b, "body ");
    strbuf_str(&b, enum_name(body_names, ARRAY_LEN(body_names), (unsigned)env->body));
    strbuf_str(&b, env->smtputf8 ? "\nsmtputf8 1\nret " : "\nsmtputf8 0\nret ");
    strbuf_str(&b, enum_name(ret_names, ARRAY_LEN(ret_names), (unsigned)env->ret));
    strbuf_str(&b, "\n");
    sb_kv(&b, "envid", env->envid);
    strbuf_str(&b, "arrival ");
    sb_num(&b, (long long)env->arrival);
    strbuf_str(&b, "\n");
    if (env->hold_until > 0) { /* absent otherwise: files stay as readable as before it existed */
        strbuf_str(&b, "hold_until ");
        sb_num(&b, (long long)env->hold_until);
        strbuf_str(&b, "\n");
    }
    sb_kv(&b, "client_addr", env->client_addr);
    sb_kv(&b, "client_helo", env->client_helo);
    sb_kv(&b, "protocol", env->protocol);
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct envelope_rcpt *r = &env->rcpts[i];
        strbuf_str(&b, "rcpt addr=");
        sb_xtext(&b, r->addr);
        strbuf_str(&b, " notify=");
        sb_num(&b, (long long)r->notify);
        strbuf_str(&b, " orcpt=");
        sb_xtext(&b, r->orcpt);
        strbuf_str(&b, " status=");
        strbuf_str(&b, enum_name(status_names, ARRAY_LEN(status_names), (unsigned)r->status));
        strbuf_str(&b, " attempts=");
        sb_num(&b, (long long)r->attempts);
        strbuf_str(&b, " next_try=");
        sb_num(&b, (long long)r->next_try);
        strbuf_str(&b, " last_reply=");
        sb_xtext(&b, r->last_reply);
        strbuf_str(&b, "\n");
    }
    strbuf_str(&b, "\n");
    if (len)
        *len = b.len;
    return b.p;
}

/* ---- parsing ---------------------------------------------------------------------------- */

/* A slice of the input; never NUL-terminated. */
struct slice {
    const char *p;
    size_t n;
};

static bool slice_eq(struct slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* Split s at the first occurrence of c: head before, *rest after. False if c is absent. */
static bool slice_split(struct slice s, char c, struct slice *head, struct slice *rest)
{
    const char *q = memchr(s.p, c, s.n);
    if (!q)
        return false;
    head->p = s.p;
    head->n = (size_t)(q - s.p);
    rest->p = q + 1;
    rest->n = s.n - head->n - 1;
    return true;
}

/* Decode an xtext value into a new string. Rejects invalid xtext and encoded NUL octets
 * (which a C string could not carry, so the round trip would not be exact). */
static bool decode_value(struct slice s, char **out)
{
    char *buf = xmalloc(s.n + 1);
    if (s.n == 0) {
        buf[0] = '\0';
    } else {
        size_t escapes = 0;
        for (size_t i = 0; i < s.n; i++)
            if (s.p[i] == '+')
                escapes++;
        if (escapes * 3 > s.n || !xtext_decode(s.p, s.n, buf, s.n + 1) ||
            strlen(buf) != s.n - 2 * escapes) {
            free(buf);
            return false;
        }
    }
    free(*out);
    *out = buf;
    return true;
}

/* Canonical non-negative decimal (no sign, no leading zeros) not above max. */
static bool parse_num(struct slice s, long long max, long long *out)
{
    if (s.n == 0 || s.n > 18 || (s.n > 1 && s.p[0] == '0'))
        return false;
    long long v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
        v = v * 10 + (s.p[i] - '0'); /* at most 18 digits: no overflow */
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_time(struct slice s, time_t *out)
{
    long long v;
    /* Refuse what time_t cannot hold (32-bit time_t platforms). */
    if (!parse_num(s, 999999999999999999LL, &v) || (long long)(time_t)v != v)
        return false;
    *out = (time_t)v;
    return true;
}

static bool parse_enum(struct slice s, const char *const *names, size_t n, unsigned *out)
{
    for (size_t i = 0; i < n; i++)
        if (slice_eq(s, names[i])) {
            *out = (unsigned)i;
            return true;
        }
    return false;
}

static bool valid_qid(struct slice s)
{
    if (s.n == 0 || s.n >= QUEUE_ID_MAX)
        return false;
    for (size_t i = 0; i < s.n; i++)
        if (!((s.p[i] >= '0' && s.p[i] <= '9') || (s.p[i] >= 'A' && s.p[i] <= 'Z')))
            return false;
    return true;
}

/* "name=value" where name must be the expected one; value runs to the next space (or the
 * end of the line for the last field). */
static bool rcpt_field(struct slice *line, const char *name, bool last, struct slice *value)
{
    struct slice key, rest;
    if (!slice_split(*line, '=', &key, &rest) || !slice_eq(key, name))
        return false;
    if (last) {
        *value = rest;
        line->n = 0;
        return memchr(rest.p, ' ', rest.n) == NULL;
    }
    struct slice after;
    if (!slice_split(rest, ' ', value, &after))
        return false;
    *line = after;
    return true;
}

static bool parse_rcpt(struct envelope *env, struct slice line)
{
    struct slice addr, notify, orcpt, status, attempts, next_try, last_reply;
    if (!rcpt_field(&line, "addr", false, &addr) ||
        !rcpt_field(&line, "notify", false, &notify) ||
        !rcpt_field(&line, "orcpt", false, &orcpt) ||
        !rcpt_field(&line, "status", false, &status) ||
        !rcpt_field(&line, "attempts", false, &attempts) ||
        !rcpt_field(&line, "next_try", false, &next_try) ||
        !rcpt_field(&line, "last_reply", true, &last_reply))
        return false;
    struct envelope_rcpt *r = rcpt_append(env);
    /* Strings stay NULL until decoded; envelope_free copes with a partial recipient. */
    long long v;
    unsigned st;
    if (addr.n == 0 || !decode_value(addr, &r->addr) || !decode_value(orcpt, &r->orcpt) ||
        !decode_value(last_reply, &r->last_reply))
        return false;
    if (!parse_num(notify, NOTIFY_NEVER | NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY, &v))
        return false;
    r->notify = (unsigned)v;
    if (!parse_enum(status, status_names, ARRAY_LEN(status_names), &st))
        return false;
    r->status = (enum rcpt_status)st;
    if (!parse_num(attempts, INT_MAX, &v))
        return false;
    r->attempts = (int)v;
    return parse_time(next_try, &r->next_try);
}

enum {
    K_QID = 1 << 0,
    K_SENDER = 1 << 1,
    K_BODY = 1 << 2,
    K_SMTPUTF8 = 1 << 3,
    K_RET = 1 << 4,
    K_ENVID = 1 << 5,
    K_ARRIVAL = 1 << 6,
    K_CLIENT_ADDR = 1 << 7,
    K_CLIENT_HELO = 1 << 8,
    K_PROTOCOL = 1 << 9,
    K_ALL = (1 << 10) - 1,    /* the keys every envelope has */
    K_HOLD_UNTIL = 1 << 10,   /* optional */
};

static const struct {
    const char *name;
    unsigned bit;
} keys[] = {
    {"qid", K_QID},           {"sender", K_SENDER},
    {"body", K_BODY},         {"smtputf8", K_SMTPUTF8},
    {"ret", K_RET},           {"envid", K_ENVID},
    {"arrival", K_ARRIVAL},   {"client_addr", K_CLIENT_ADDR},
    {"client_helo", K_CLIENT_HELO}, {"protocol", K_PROTOCOL},
    {"hold_until", K_HOLD_UNTIL},
};

/* One "key[ value]" line; *seen tracks the keys so each occurs exactly once. */
static bool parse_line(struct envelope *env, struct slice line, unsigned *seen)
{
    struct slice key, value = {line.p + line.n, 0};
    if (!slice_split(line, ' ', &key, &value)) {
        key = line;
    } else if (value.n == 0) {
        return false; /* "key " with a trailing space is not canonical */
    }
    if (slice_eq(key, "rcpt"))
        return parse_rcpt(env, value);
    unsigned bit = 0;
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (slice_eq(key, keys[i].name))
            bit = keys[i].bit;
    if (bit == 0 || (*seen & bit))
        return false;
    *seen |= bit;
    unsigned e;
    switch (bit) {
    case K_QID:
        if (!valid_qid(value))
            return false;
        memcpy(env->qid, value.p, value.n);
        env->qid[value.n] = '\0';
        return true;
    case K_SENDER:
        return decode_value(value, &env->sender);
    case K_BODY:
        if (!parse_enum(value, body_names, ARRAY_LEN(body_names), &e))
            return false;
        env->body = (enum body_type)e;
        return true;
    case K_SMTPUTF8:
        if (!slice_eq(value, "0") && !slice_eq(value, "1"))
            return false;
        env->smtputf8 = value.p[0] == '1';
        return true;
    case K_RET:
        if (!parse_enum(value, ret_names, ARRAY_LEN(ret_names), &e))
            return false;
        env->ret = (enum dsn_ret)e;
        return true;
    case K_ENVID:
        return decode_value(value, &env->envid);
    case K_ARRIVAL:
        return parse_time(value, &env->arrival);
    case K_HOLD_UNTIL:
        return parse_time(value, &env->hold_until) && env->hold_until > 0;
    case K_CLIENT_ADDR:
        return decode_value(value, &env->client_addr);
    case K_CLIENT_HELO:
        return decode_value(value, &env->client_helo);
    case K_PROTOCOL:
        return decode_value(value, &env->protocol);
    default:
        return false;
    }
}

size_t envelope_parse(struct envelope *env, const char *buf, size_t len)
{
    size_t magic = strlen(ENVELOPE_MAGIC);
    if (len < magic || memcmp(buf, ENVELOPE_MAGIC, magic) != 0)
        return 0;
    /* Parse into a scratch envelope so env is untouched unless the whole input is good. */
    struct envelope tmp;
    envelope_init(&tmp);
    unsigned seen = 0;
    size_t pos = magic;
    for (;;) {
        const char *nl = pos < len ? memchr(buf + pos, '\n', len - pos) : NULL;
        if (!nl)
            break; /* truncated: no terminating empty line */
        struct slice line = {buf + pos, (size_t)(nl - (buf + pos))};
        pos += line.n + 1;
        if (line.n == 0) {
            if ((seen & K_ALL) != K_ALL)
                break;
            envelope_free(env);
            *env = tmp;
            return pos;
        }
        if (!parse_line(&tmp, line, &seen))
            break;
    }
    envelope_free(&tmp);
    return 0;
}
