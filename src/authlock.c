/* authlock.c - per-address failed-AUTH counts and lockouts (see authlock.h). A plain array
 * with linear search: entries exist only for addresses that failed recently, and expired
 * ones are dropped as new failures come in. */
#include "authlock.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void authlock_init(struct authlock *t, unsigned max_failures, int lockout)
{
    memset(t, 0, sizeof *t);
    t->max_failures = max_failures;
    t->lockout = lockout;
}

void authlock_free(struct authlock *t)
{
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

static struct authlock_entry *find(struct authlock *t, const char *addr)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].addr, addr) == 0)
            return &t->v[i];
    return NULL;
}

static bool expired(const struct authlock *t, const struct authlock_entry *e, time_t now)
{
    if (e->locked_until)
        return now >= e->locked_until;
    return now - e->first >= t->lockout;
}

static void prune(struct authlock *t, time_t now)
{
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++)
        if (!expired(t, &t->v[i], now))
            t->v[k++] = t->v[i];
    t->n = k;
}

bool authlock_locked(struct authlock *t, const char *addr, time_t now, time_t *until)
{
    struct authlock_entry *e = find(t, addr);
    if (!e || !e->locked_until || now >= e->locked_until)
        return false;
    if (until)
        *until = e->locked_until;
    return true;
}

unsigned authlock_fail(struct authlock *t, const char *addr, time_t now, bool *locked)
{
    *locked = false;
    struct authlock_entry *e = find(t, addr);
    if (e && expired(t, e, now)) {
        memset(e, 0, sizeof *e);
        str_copy(e->addr, sizeof e->addr, addr);
    }
    if (!e) {
        prune(t, now);
        if (t->n >= AUTHLOCK_MAX_ENTRIES) { /* full of live entries: forget the oldest */
            size_t oldest = 0;
            for (size_t i = 1; i < t->n; i++)
                if (t->v[i].first < t->v[oldest].first)
                    oldest = i;
            t->v[oldest] = t->v[--t->n];
        }
        t->v = xrealloc(t->v, (t->n + 1) * sizeof *t->v);
        e = &t->v[t->n++];
        memset(e, 0, sizeof *e);
        str_copy(e->addr, sizeof e->addr, addr);
    }
    if (e->failures == 0)
        e->first = now;
    e->failures++;
    if (t->max_failures && e->failures >= t->max_failures && !e->locked_until) {
        e->locked_until = now + t->lockout;
        *locked = true;
    }
    return e->failures;
}

void authlock_success(struct authlock *t, const char *addr)
{
    struct authlock_entry *e = find(t, addr);
    if (e)
        *e = t->v[--t->n];
}
