/* qmgr.h - the queue manager process: schedules and performs delivery of queued messages.
 *
 * It watches queue/ (inotify, plus a periodic scan as a safety net), routes each pending
 * recipient to local Maildir delivery or to the SMTP client (remote MX, transport override
 * or smarthost), records the result in state/<qid>, retries temporary failures with growing
 * delays (retry_schedule, or retry_min doubling up to retry_max), bounces after
 * queue_lifetime, sends DSNs (failure, delay warning, success; RFC 3461/3464) and removes a
 * message when every recipient is done. On start it picks up everything already committed
 * (recovery). See docs/delivery.md. */
#ifndef TERN_QMGR_H
#define TERN_QMGR_H

#include "config.h"

/* Run until SIGTERM. Returns the process exit status. Runs unprivileged. */
int qmgr_run(const struct config *cfg);

#endif
