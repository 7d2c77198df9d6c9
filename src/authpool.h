/* authpool.h - password checks off the event loop: a worker's few helper threads that run
 * crypt(3) for AUTH PLAIN and LOGIN (RFC 4954, RFC 4616) against the users file's hashes.
 *
 * A yescrypt check costs tens of milliseconds of CPU on purpose; run on the loop it would stall
 * every other session of the worker for that long, so a client guessing passwords would slow
 * everybody down. The loop hands a check over (authpool_check) and keeps serving; the answer
 * comes back as a callback on the loop, where the session finishes its AUTH. The threads see
 * only their own copies of the hash and password: never a session, a socket or a log of who
 * asked. */
#ifndef TERN_AUTHPOOL_H
#define TERN_AUTHPOOL_H

#include <stdbool.h>

#include <event2/event.h>

struct authpool;
struct authpool_req;

/* Called on the event loop with the result: does the password match the hash? */
typedef void authpool_done_fn(void *arg, bool ok);

/* Start threads (at least one) that report back on base. NULL with errno when no thread or
 * wakeup descriptor could be made. */
struct authpool *authpool_new(struct event_base *base, unsigned threads);
/* Check password against a crypt(3) hash in the background (both are copied; the copy of the
 * password is wiped after use). done(arg, ok) runs later on the loop, never from inside this
 * call. The handle is valid for authpool_cancel until done runs. */
struct authpool_req *authpool_check(struct authpool *p, const char *hash, const char *password,
                                    authpool_done_fn *done, void *arg);
/* The requester is gone: done will not run (and a check not started yet is skipped). NULL is
 * fine. */
void authpool_cancel(struct authpool_req *r);
/* Stop the threads (a check in progress finishes first) and free everything; callbacks of
 * requests not reported yet do not run. NULL is fine. */
void authpool_free(struct authpool *p);

#endif
