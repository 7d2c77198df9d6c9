/* authlock.h - brute-force protection for SMTP AUTH: failed attempts per client address,
 * and a lockout after too many of them (docs/auth.md). The table is private to a process
 * (unit tests) or lives in shared memory made by the supervisor before it forks the workers,
 * so the counts hold per address whichever worker the kernel hands a connection to. Pure
 * apart from that: the caller passes the time, so it is unit-tested without waiting. */
#ifndef TERN_AUTHLOCK_H
#define TERN_AUTHLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define AUTHLOCK_MAX_ENTRIES 10000 /* addresses remembered; the oldest go first */

struct authlock_entry {
    char addr[64];
    unsigned failures;   /* within the current window */
    time_t first;        /* time of the first failure counted */
    time_t locked_until; /* 0: not locked */
};

struct authlock_table; /* the entries (and, when shared, their lock) */

struct authlock {
    unsigned max_failures; /* lock after this many failures; 0: never */
    int lockout;           /* seconds locked, and the window failures are counted in */
    struct authlock_table *tab;
    bool shared;
};

/* A private table, or (shared) one in a MAP_SHARED mapping for the processes forked after.
 * 0, or -1 with errno; t is freeable either way. */
int authlock_init(struct authlock *t, unsigned max_failures, int lockout, bool shared);
void authlock_free(struct authlock *t);
/* Is addr locked out at now? *until (may be NULL) gets the end of the lockout. */
bool authlock_locked(struct authlock *t, const char *addr, time_t now, time_t *until);
/* Count a failure; returns the failures counted for addr in the window (1, 2 ...). Locks
 * the address when it reaches max_failures (*locked set true then). */
unsigned authlock_fail(struct authlock *t, const char *addr, time_t now, bool *locked);
/* A success forgets the address's failures. */
void authlock_success(struct authlock *t, const char *addr);

#endif
