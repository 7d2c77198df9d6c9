/* dns_wait.c - run one dns.h lookup to completion on a private event loop and copy its
 * answer (see dns_wait.h). */
#include "dns_wait.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "util.h"

enum kind { K_MX, K_ADDR, K_TXT, K_PTR };

struct waiter {
    enum kind kind;
    bool done;
    struct dns_answer *out;
};

static void on_result(const struct dns_result *res, void *arg)
{
    struct waiter *w = arg;
    struct dns_answer *a = w->out;
    w->done = true;
    a->status = res->status;
    a->partial = res->partial;
    str_copy(a->detail, sizeof a->detail, res->detail ? res->detail : "");
    bool has = res->status == DNS_OK || (w->kind == K_MX && res->status == DNS_NULL_MX);
    if (!has)
        return;
    a->count = res->count;
    size_t n = res->count ? res->count : 1;
    switch (w->kind) {
    case K_MX:
        a->mx = xcalloc(n, sizeof *a->mx);
        for (size_t i = 0; i < res->count; i++) {
            a->mx[i] = res->mx[i];
            a->mx[i].host = xstrdup(res->mx[i].host ? res->mx[i].host : "");
        }
        break;
    case K_ADDR:
        a->addr = xcalloc(n, sizeof *a->addr);
        if (res->count)
            memcpy(a->addr, res->addr, res->count * sizeof *a->addr);
        break;
    case K_TXT:
        a->txt = xcalloc(n, sizeof *a->txt);
        a->txtlen = xcalloc(n, sizeof *a->txtlen);
        for (size_t i = 0; i < res->count; i++) {
            a->txt[i] = xstrndup(res->txt[i].data, res->txt[i].len);
            a->txtlen[i] = res->txt[i].len;
        }
        break;
    case K_PTR:
        a->names = xcalloc(n, sizeof *a->names);
        for (size_t i = 0; i < res->count; i++)
            a->names[i] = xstrdup(res->names[i]);
        break;
    }
}

static void run(struct event_base *base, struct dns_query *q, struct waiter *w)
{
    if (!q) {
        w->out->status = DNS_TEMPFAIL;
        str_copy(w->out->detail, sizeof w->out->detail, "resolver unavailable");
        return;
    }
    while (!w->done) {
        if (event_base_loop(base, EVLOOP_ONCE) < 0) {
            dns_cancel(q);
            w->out->status = DNS_TEMPFAIL;
            str_copy(w->out->detail, sizeof w->out->detail, "event loop failed");
            return;
        }
    }
}

static struct waiter start(enum kind k, struct dns_answer *out)
{
    memset(out, 0, sizeof *out);
    return (struct waiter){.kind = k, .out = out};
}

void dns_wait_mx(struct event_base *base, struct dns_resolver *r, const char *domain,
                 struct dns_answer *out)
{
    struct waiter w = start(K_MX, out);
    run(base, dns_lookup_mx(r, domain, on_result, &w), &w);
}

void dns_wait_addr(struct event_base *base, struct dns_resolver *r, const char *host, int want,
                   struct dns_answer *out)
{
    struct waiter w = start(K_ADDR, out);
    run(base, dns_lookup_addr(r, host, want, on_result, &w), &w);
}

void dns_wait_txt(struct event_base *base, struct dns_resolver *r, const char *name,
                  struct dns_answer *out)
{
    struct waiter w = start(K_TXT, out);
    run(base, dns_lookup_txt(r, name, on_result, &w), &w);
}

void dns_wait_ptr(struct event_base *base, struct dns_resolver *r, const char *addr,
                  struct dns_answer *out)
{
    struct waiter w = start(K_PTR, out);
    run(base, dns_lookup_ptr(r, addr, on_result, &w), &w);
}

void dns_answer_free(struct dns_answer *a)
{
    for (size_t i = 0; a->mx && i < a->count; i++)
        free(a->mx[i].host);
    for (size_t i = 0; a->txt && i < a->count; i++)
        free(a->txt[i]);
    for (size_t i = 0; a->names && i < a->count; i++)
        free(a->names[i]);
    free(a->mx);
    free(a->addr);
    free(a->txt);
    free(a->txtlen);
    free(a->names);
    memset(a, 0, sizeof *a);
}
