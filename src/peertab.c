/* peertab.c - per-address connection counts and rates shared by the SMTP workers (see
 * peertab.h). Open addressing with linear probing; a slot whose address has no open
 * connection and whose rate window is over may be taken by another address. */
#include "peertab.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "shmlock.h"
#include "util.h"

#define ADDR_MAX 64
#define RATE_WINDOW 60

struct slot {
    char addr[ADDR_MAX];   /* "" = never used */
    time_t rate_start;     /* start of the current one-minute window */
    unsigned rate_count;   /* connections accepted in it */
    unsigned open[];       /* per worker: connections open now (atomic) */
};

struct shared {
    pthread_mutex_t lock;
};

struct peertab {
    size_t nworkers;       /* the creator's copies: never read back from shared memory */
    size_t slot_size;
    size_t map_len;
    struct shared *sh;
    unsigned char *slots;
};

static struct slot *slot_at(const struct peertab *t, size_t i)
{
    return (struct slot *)(void *)(t->slots + i * t->slot_size);
}

struct peertab *peertab_new(size_t nworkers)
{
    if (nworkers == 0)
        nworkers = 1;
    struct peertab *t = xcalloc(1, sizeof *t);
    t->nworkers = nworkers;
    /* Keep every slot aligned for its time_t and counters. */
    size_t sz = sizeof(struct slot) + nworkers * sizeof(unsigned);
    t->slot_size = (sz + _Alignof(struct slot) - 1) / _Alignof(struct slot) * _Alignof(struct slot);
    size_t head = (sizeof(struct shared) + 63) / 64 * 64;
    t->map_len = head + PEERTAB_SLOTS * t->slot_size;
    void *m = mmap(NULL, t->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        free(t);
        errno = e;
        return NULL;
    }
    t->sh = m;
    t->slots = (unsigned char *)m + head;
    int rc = shmlock_init(&t->sh->lock);
    if (rc != 0) {
        munmap(m, t->map_len);
        free(t);
        errno = rc;
        return NULL;
    }
    return t;
}

void peertab_free(struct peertab *t)
{
    if (!t)
        return;
    munmap(t->sh, t->map_len);
    free(t);
}

static bool lock(struct peertab *t)
{
    return shmlock_lock(&t->sh->lock);
}

static unsigned open_total(const struct peertab *t, const struct slot *s)
{
    unsigned n = 0;
    for (size_t w = 0; w < t->nworkers; w++)
        n += __atomic_load_n(&s->open[w], __ATOMIC_RELAXED);
    return n;
}

static bool slot_is(const struct slot *s, const char *addr)
{
    return strncmp(s->addr, addr, ADDR_MAX) == 0;
}

static size_t hash_addr(const char *s)
{
    size_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; s[i] && i < ADDR_MAX; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h % PEERTAB_SLOTS;
}

/* The slot of addr, or a free one claimed for it, or NULL when the table is full. */
static struct slot *find(struct peertab *t, const char *addr, time_t now, size_t *idx)
{
    size_t start = hash_addr(addr), reuse = PEERTAB_NONE;
    for (size_t k = 0; k < PEERTAB_SLOTS; k++) {
        size_t i = (start + k) % PEERTAB_SLOTS;
        struct slot *s = slot_at(t, i);
        if (s->addr[0] == '\0') {
            if (reuse == PEERTAB_NONE)
                reuse = i;
            break; /* the end of the probe chain: addr is not in the table */
        }
        if (slot_is(s, addr)) {
            *idx = i;
            return s;
        }
        if (reuse == PEERTAB_NONE && open_total(t, s) == 0 && now - s->rate_start >= RATE_WINDOW)
            reuse = i;
    }
    if (reuse == PEERTAB_NONE)
        return NULL;
    struct slot *s = slot_at(t, reuse);
    memset(s, 0, t->slot_size);
    str_copy(s->addr, ADDR_MAX, addr);
    *idx = reuse;
    return s;
}

enum peer_verdict peertab_open(struct peertab *t, size_t w, const char *addr, time_t now,
                               size_t max_open, size_t max_rate, size_t *slot, unsigned *open)
{
    *slot = PEERTAB_NONE;
    *open = 0;
    if (w >= t->nworkers || !lock(t))
        return PEER_OK; /* cannot count: do not refuse for our own trouble */
    size_t i;
    enum peer_verdict v = PEER_OK;
    struct slot *s = find(t, addr, now, &i);
    if (s) {
        *open = open_total(t, s);
        if (now - s->rate_start >= RATE_WINDOW || now < s->rate_start) {
            s->rate_start = now;
            s->rate_count = 0;
        }
        if (*open >= max_open)
            v = PEER_TOO_MANY;
        else if (max_rate > 0 && s->rate_count >= max_rate)
            v = PEER_TOO_FAST;
        if (v == PEER_OK || v == PEER_TOO_FAST) /* every attempt counts towards the rate */
            s->rate_count += s->rate_count < ~0u;
        if (v == PEER_OK) {
            __atomic_add_fetch(&s->open[w], 1, __ATOMIC_RELAXED);
            *slot = i;
        }
    }
    pthread_mutex_unlock(&t->sh->lock);
    return v;
}

void peertab_close(struct peertab *t, size_t w, size_t slot)
{
    if (slot >= PEERTAB_SLOTS || w >= t->nworkers)
        return;
    unsigned *n = &slot_at(t, slot)->open[w];
    if (__atomic_load_n(n, __ATOMIC_RELAXED) > 0)
        __atomic_sub_fetch(n, 1, __ATOMIC_RELAXED);
}

void peertab_forget_worker(struct peertab *t, size_t w)
{
    if (!t || w >= t->nworkers)
        return;
    for (size_t i = 0; i < PEERTAB_SLOTS; i++)
        __atomic_store_n(&slot_at(t, i)->open[w], 0, __ATOMIC_RELAXED);
}
