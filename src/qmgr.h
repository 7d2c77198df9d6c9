/* qmgr.h - the queue manager process: schedules and performs delivery of queued messages.
 *
 * It watches queue/ (inotify, plus a periodic scan as a safety net), delivers each pending
 * recipient (local Maildir for now), records the result in state/<qid>, retries temporary
 * failures with a doubling delay (retry_min .. retry_max) and removes a message when every
 * recipient is done. On start it picks up everything already committed (recovery). */
#ifndef TERN_QMGR_H
#define TERN_QMGR_H

#include "config.h"

/* Run until SIGTERM. Returns the process exit status. Runs unprivileged. */
int qmgr_run(const struct config *cfg);

#endif
