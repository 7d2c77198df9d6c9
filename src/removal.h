/* removal.h - the queue manager's helper thread for removing delivered messages.
 *
 * The queue manager unlinks queue/<qid> itself (so no rescan can find the message again) and
 * hands over the file's open descriptor. The helper then does the slow part off the event
 * loop: the last close() of an unlinked file frees its blocks (milliseconds on a busy
 * journal), one fsync of queue/ makes a whole batch of removals durable, and only after it
 * the state files and delay markers go (queue_remove's order). Nothing waits for the result:
 * after the unlink the message is gone for the queue manager. */
#ifndef TERN_REMOVAL_H
#define TERN_REMOVAL_H

struct removal;

/* Start the helper for spool_dir (kept by reference). NULL with errno on failure. */
struct removal *removal_new(const char *spool_dir);
/* queue/<qid> is unlinked; fd (its descriptor, or -1) is closed by the helper. */
void removal_add(struct removal *r, const char *qid, int fd);
/* Finish what is pending, stop the helper, free r. */
void removal_free(struct removal *r);

#endif
