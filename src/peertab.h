/* peertab.h - connections per client address, shared by all SMTP workers of a generation, so
 * that max_connections_per_ip and max_connection_rate hold per address whichever worker the
 * kernel hands a connection to.
 *
 * The table lives in one shared anonymous mapping made by the supervisor before it forks the
 * workers. Each worker counts its open connections in its own column of a slot, so the
 * supervisor can zero a dead worker's column without a lock (its connections died with it);
 * slots are found and claimed under a process-shared robust mutex (a worker killed while
 * holding it does not block the others). Sizes come from the creator's private copy, never
 * from the shared memory, and every string read from it is bounded. */
#ifndef TERN_PEERTAB_H
#define TERN_PEERTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define PEERTAB_SLOTS 8192   /* addresses tracked at once; beyond that, not limited */
#define PEERTAB_NONE ((size_t)-1)

enum peer_verdict {
    PEER_OK,         /* counted: call peertab_close(slot) when the connection ends */
    PEER_TOO_MANY,   /* max_connections_per_ip open already */
    PEER_TOO_FAST,   /* max_connection_rate reached in this minute */
};

struct peertab;

/* A table for nworkers workers (columns 0..nworkers-1), or NULL (errno) if it cannot be made. */
struct peertab *peertab_new(size_t nworkers);
void peertab_free(struct peertab *t);
/* A new connection from addr on worker w: checks both limits (0 = no rate limit) and counts
 * it. *slot gets the slot to close later (PEERTAB_NONE when the table was full and nothing
 * was counted); *open gets the connections from addr open before this one. */
enum peer_verdict peertab_open(struct peertab *t, size_t w, const char *addr, time_t now,
                               size_t max_open, size_t max_rate, size_t *slot, unsigned *open);
void peertab_close(struct peertab *t, size_t w, size_t slot);
/* Worker w is dead: its connections are gone (supervisor; no lock taken). */
void peertab_forget_worker(struct peertab *t, size_t w);

#endif
