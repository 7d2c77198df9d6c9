/* commit.h - group commit: a worker's helper thread that makes queue files durable in batches.
 *
 * The event loop hands over finished messages (committer_submit) and keeps serving other
 * sessions; the thread commits everything submitted since its last round together
 * (queue_commit_round: one journal commit per round), then the loop runs each message's
 * callback, which is where the 250 reply is sent. So 250 still means "on disk" (RFC 5321
 * 4.1.1.4, 6.1), but concurrent messages share the cost of a journal commit. The thread does
 * nothing else: sessions and all network I/O stay on the event loop. */
#ifndef TERN_COMMIT_H
#define TERN_COMMIT_H

#include <event2/event.h>

#include "queue.h"

struct committer;
struct commit_req;

/* Called on the event loop: err is 0 when the message is durable in queue/, else an errno
 * (nothing was queued). */
typedef void commit_done_fn(void *arg, int err);

/* Start the helper thread, reporting back on base. NULL with errno on failure. */
struct committer *committer_new(struct event_base *base);
/* Commit w (taken over) in the background; done(arg, err) runs later on the loop, never from
 * inside this call. Returns a handle for committer_cancel, valid until done runs. */
struct commit_req *committer_submit(struct committer *c, struct queue_writer *w,
                                    commit_done_fn *done, void *arg);
/* The requester is gone (connection closed): the commit still completes, the callback
 * does not run. */
void committer_cancel(struct commit_req *r);
/* Finish the commits in progress (the files become durable or are removed), stop the thread
 * and free everything; callbacks of requests not reported yet do not run. */
void committer_free(struct committer *c);

#endif
