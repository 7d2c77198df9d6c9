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

/* The double bounce: a message from "<>" (a DSN, usually) failed. RFC 5321 6.1 forbids a
 * report to its null sender, so the failure report goes to the postmaster (to, e.g. from
 * notify_double_bounce_rcpt) and carries the failed message whole (up to NOTIFY_FULL_MAX).
 * The notice is queued from "<>" with a marked envelope (notify_is_double_bounce): the
 * caller never reports the failure of a marked message, so there is never a loop. Returns
 * as notify_queue. */
#define NOTIFY_DOUBLE_BOUNCE_PROTOCOL "double-bounce"
int notify_queue_double_bounce(const struct config *cfg, const struct envelope *env, int fd,
                               off_t off, off_t size, const struct dsn_rcpt *r, size_t n,
                               time_t now, const char *to, char dsn_qid[QUEUE_ID_MAX]);
/* Whether env is a double-bounce notice (never reported again). */
bool notify_is_double_bounce(const struct envelope *env);
/* Who gets double bounces: double_bounce_recipient, or postmaster@ the first local_domain
 * (written into buf); NULL when no one does ("none", or no local domain). */
const char *notify_double_bounce_rcpt(const struct config *cfg, char *buf, size_t cap);

/* The delay-warning marker. */
bool notify_delay_sent(const char *spool_dir, const char *qid);
void notify_mark_delay(const char *spool_dir, const char *qid);
void notify_forget(const char *spool_dir, const char *qid);
/* Remove markers whose message is gone (after a crash inside removal). Returns the count. */
int notify_clean(const char *spool_dir);

#endif
