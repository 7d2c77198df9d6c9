/* notify.h - queue delivery status notifications (RFC 3464 DSNs built by bounce.c) as new
 * messages from the null reverse-path, with the queue writer: they are then delivered like
 * any other message, locally or remotely.
 *
 * Also keeps the one piece of per-message DSN state the envelope has no field for: whether
 * the delay warning was sent (a marker file state/<qid>.delay; losing it costs at most a
 * second warning). */
#ifndef TERN_NOTIFY_H
#define TERN_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "bounce.h"
#include "config.h"
#include "envelope.h"

/* RET=FULL returns the whole message up to this size; a larger one gets its header only. */
#define NOTIFY_FULL_MAX (10u * 1024 * 1024)
/* At most this much of the header section is returned. */
#define NOTIFY_HEADER_MAX (1u * 1024 * 1024)

/* Queue one DSN of the given kind about env for the recipients r (n > 0). The original
 * content is read from fd (offset off, size octets). env->sender must not be "". On success
 * returns 0 and the new message's queue ID in dsn_qid; -1 with errno on failure. */
int notify_queue(const struct config *cfg, const struct envelope *env, int fd, off_t off,
                 off_t size, enum dsn_action kind, const struct dsn_rcpt *r, size_t n,
                 time_t now, time_t retry_until, char dsn_qid[QUEUE_ID_MAX]);

/* The delay-warning marker. */
bool notify_delay_sent(const char *spool_dir, const char *qid);
void notify_mark_delay(const char *spool_dir, const char *qid);
void notify_forget(const char *spool_dir, const char *qid);
/* Remove markers whose message is gone (after a crash inside removal). Returns the count. */
int notify_clean(const char *spool_dir);

#endif
