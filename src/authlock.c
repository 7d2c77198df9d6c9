/* authlock.c - per-address failed-AUTH counts and lockouts (see authlock.h). A fixed array
 * with linear search: entries exist only for addresses that failed recently, and expired
 * ones are dropped as new failures come in. A shared table is updated under its robust
 * process-shared lock; a private one needs none. */
#include "authlock.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "shmlock.h"
#include "util.h"

struct authlock_table {
    pthread_mutex_t lock; /* used only when shared */
    size_t n;             /* never above AUTHLOCK_MAX_ENTRIES: checked on every read */
    struct authlock_entry v[AUTHLOCK_MAX_ENTRIES];
};

int authlock_init(struct authlock *t, unsigned max_failures, int lockout, bool shared)
{
    memset(t, 0, sizeof *t);
    t->max_failures = max_failures;
    t->lockout = lockout;
    if (!shared) {
        t->tab = xcalloc(1, sizeof *t->tab);
        return 0;
    }
    void *m = mmap(NULL, sizeof *t->tab, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (m == MAP_FAILED)
        return -1;
    int rc = shmlock_init(&((struct authlock_table *)m)->lock);
    if (rc != 0) {
        munmap(m, sizeof *t->tab);
        errno = rc;
        return -1;
    }
    t->tab = m;
    t->shared = true;
    return 0;
}

void authlock_free(struct authlock *t)
{
    if (!t->tab)
        return;
    if (t->shared)
        munmap(t->tab, sizeof *t->tab);
    else
        free(t->tab);
    t->tab = NULL;
}

/* The table, locked when shared; NULL if the lock cannot be had (then nothing is counted,
 * as with no table: AUTH still works, only unthrottled). */
static struct authlock_table *enter(struct authlock *t)
{
    if (!t->tab || (t->shared && !shmlock_lock(&t->tab->lock)))
        return NULL;
    if (t->tab->n > AUTHLOCK_MAX_ENTRIES) /* shared memory: never trust it blindly */
        t->tab->n = AUTHLOCK_MAX_ENTRIES;
    return t->tab;
}

static void leave(struct authlock *t)
{
    if (t->shared)
        pthread_mutex_unlock(&t->tab->lock);
}

static struct authlock_entry *find(struct authlock_table *tab, const char *addr)
{
    for (size_t i = 0; i < tab->n; i++)
        if (strncmp(tab->v[i].addr, addr, sizeof tab->v[i].addr) == 0)
            return &tab->v[i];
    return NULL;
}

static bool expired(const struct authlock *t, const struct authlock_entry *e, time_t now)
{
    if (e->locked_until)
        return now >= e->locked_until;
    return now - e->first >= t->lockout;
}

static void prune(const struct authlock *t, struct authlock_table *tab, time_t now)
{
    size_t k = 0;
    for (size_t i = 0; i < tab->n; i++)
        if (!expired(t, &tab->v[i], now))
            tab->v[k++] = tab->v[i];
    tab->n = k;
}

bool authlock_locked(struct authlock *t, const char *addr, time_t now, time_t *until)
{
    struct authlock_table *tab = enter(t);
    if (!tab)
        return false;
    const struct authlock_entry *e = find(tab, addr);
    bool locked = e && e->locked_until && now < e->locked_until;
    if (locked && until)
        *until = e->locked_until;
    leave(t);
    return locked;
}

unsigned authlock_fail(struct authlock *t, const char *addr, time_t now, bool *locked)
{
    *locked = false;
    struct authlock_table *tab = enter(t);
    if (!tab)
        return 1;
    struct authlock_entry *e = find(tab, addr);
    if (e && expired(t, e, now)) {
        memset(e, 0, sizeof *e);
        str_copy(e->addr, sizeof e->addr, addr);
    }
    if (!e) {
        prune(t, tab, now);
        if (tab->n >= AUTHLOCK_MAX_ENTRIES) { /* full of live entries: forget the oldest */
            size_t oldest = 0;
            for (size_t i = 1; i < tab->n; i++)
                if (tab->v[i].first < tab->v[oldest].first)
                    oldest = i;
            tab->v[oldest] = tab->v[--tab->n];
        }
        e = &tab->v[tab->n++];
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
    unsigned n = e->failures;
    leave(t);
    return n;
}

void authlock_success(struct authlock *t, const char *addr)
{
    struct authlock_table *tab = enter(t);
    if (!tab)
        return;
    struct authlock_entry *e = find(tab, addr);
    if (e)
        *e = tab->v[--tab->n];
    leave(t);
}
