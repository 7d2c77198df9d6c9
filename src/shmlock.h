/* shmlock.h - the lock of a table in shared memory that several worker processes update
 * (peertab.c, authlock.c): process-shared and robust, so a worker killed while holding it
 * does not block the others. */
#ifndef TERN_SHMLOCK_H
#define TERN_SHMLOCK_H

#include <pthread.h>
#include <stdbool.h>

/* 0, or an errno value. m must live in a MAP_SHARED mapping made before the fork. */
int shmlock_init(pthread_mutex_t *m);
/* Take it; a dead owner's lock is taken over (the tables stay consistent enough: each
 * update is a few stores). false only on a real error. */
bool shmlock_lock(pthread_mutex_t *m);

#endif
