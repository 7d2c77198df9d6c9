/* queue.h - the durable queue (spool): nothing is acknowledged before it is on disk.
 *
 * Layout under the spool directory:
 *   tmp/<qid>.<pid>  being received by process <pid> (deleted on recovery); the queue
 *                    manager's state rewrites use tmp/<qid>.state.<pid>
 *   queue/<qid>   committed: envelope (envelope_format) followed by the message content
 *   state/<qid>   per-recipient delivery state, rewritten atomically by the queue manager
 *   hold/<qid>    a queue file held by hand (tern queue hold): not delivered until released
 * Commit = fsync(tmp file), rename into queue/, fsync(queue/). The 250 reply to end of data
 * is sent only after queue_writer_commit returned 0 (RFC 5321 4.1.1.4, 6.1). */
#ifndef TERN_QUEUE_H
#define TERN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "envelope.h"

/* Create spool subdirectories if missing. 0 on success, -1 with errno. */
int queue_init(const char *spool_dir);
/* Delete leftovers in tmp/ (files of receptions that never committed). With pid > 0, only
 * files written by that process (a worker that died). Returns the number removed. */
int queue_clean_tmp(const char *spool_dir, pid_t pid);

/* A new unique queue ID (16 chars of [0-9A-Z]: time, pid and a counter), into out. */
void queue_new_id(char out[QUEUE_ID_MAX]);
/* Could s be a queue ID (1..QUEUE_ID_MAX-1 chars of [0-9A-Z])? Filters directory listings. */
bool queue_id_valid(const char *s);

struct queue_writer;
/* Start a message: picks env->qid (written into env), creates tmp/<qid> with O_EXCL and
 * writes the envelope. Returns NULL with errno on failure. */
struct queue_writer *queue_writer_open(const char *spool_dir, struct envelope *env);
/* Append content. Buffered; 0 on success, -1 with errno (ENOSPC, EDQUOT...). */
int queue_writer_write(struct queue_writer *w, const void *buf, size_t len);
/* Flush, fsync, rename into queue/ and fsync the directory. Frees w. 0 on success or -1 with
 * errno, in which case the temporary file is removed and nothing was queued. */
int queue_writer_commit(struct queue_writer *w);
/* Group commit as a pipeline (commit.c), one sync per round doing two jobs: it makes the
 * content of the fresh writers durable, and the renames of the writers published in the
 * previous round. Then the fresh ones are renamed into queue/ (a file appears there only
 * complete) and become the next round's pub. So every message still gets fsync(file),
 * rename, fsync(queue/) in that order, as in queue_writer_commit, but the disk sees one
 * journal commit per round for any number of messages.
 *   fresh[i]: ferrs[i] 0 = renamed, now pass it as pub to the next round; else its errno
 *             (nothing queued; the writer is freed and fresh[i] set to NULL).
 *   pub[i]:   perrs[i] 0 = durable in queue/ (the 250 may go out); else its errno (the file
 *             was taken back out of queue/). Every pub writer is freed (pub[i] = NULL).
 * Thread-safe for distinct writers. */
void queue_commit_round(struct queue_writer **fresh, size_t nfresh, int *ferrs,
                        struct queue_writer **pub, size_t npub, int *perrs);
/* Whether new receptions may be unnamed O_TMPFILE files (the default, where the kernel and
 * file system allow it) or are always named in tmp/ (false). For tests of both paths. */
void queue_allow_unnamed(bool allow);
/* Give up on the message; removes the temporary file. Frees w. */
void queue_writer_abort(struct queue_writer *w);

/* Where a committed queue file lives: queue/ (the queue manager delivers it) or hold/. */
enum queue_area { QUEUE_ACTIVE, QUEUE_HOLD };
/* Octets an unprivileged process may still write on the spool's file system (statvfs
 * f_bavail), or -1 with errno if it cannot be asked. */
long long queue_free_space(const char *spool_dir);

/* For the queue manager: */
/* List committed queue IDs; calls fn for each. Returns the count or -1. */
int queue_scan(const char *spool_dir, void (*fn)(const char *qid, void *arg), void *arg);
/* Load envelope (with the latest per-recipient state from state/<qid> when present) and open
 * the content: *fd is an open read-only descriptor positioned nowhere in particular and
 * *content_off the offset where the message content starts. 0 on success, -1 on error
 * (errno ENOENT: gone; EBADMSG: the envelope is damaged). env must be initialised
 * (envelope_init) and is replaced; the caller frees it in either case. A state file that
 * is damaged or belongs to another message is ignored (logged). */
int queue_load(const char *spool_dir, const char *qid, struct envelope *env, int *fd,
               off_t *content_off);
/* Persist per-recipient state atomically (tmp, fsync, rename, fsync dir). */
int queue_save_state(const char *spool_dir, const struct envelope *env);
/* Remove a message whose recipients are all done (queue file first, then state). */
int queue_remove(const char *spool_dir, const char *qid);
/* queue_remove in three steps, so many messages share one directory fsync: queue_unlink
 * each, then one queue_sync_removals, and only after it succeeded queue_drop_state each.
 * All 0 on success, -1 with errno. */
int queue_unlink(const char *spool_dir, const char *qid);
int queue_sync_removals(const char *spool_dir);
int queue_drop_state(const char *spool_dir, const char *qid);
/* Delete state/<qid> files whose queue/<qid> is gone (a crash inside queue_remove). Returns
 * the number removed or -1. Run by the queue manager at start. */
int queue_clean_state(const char *spool_dir);

/* The same for either area (the functions above are QUEUE_ACTIVE). */
int queue_scan_in(const char *spool_dir, enum queue_area area,
                  void (*fn)(const char *qid, void *arg), void *arg);
int queue_load_in(const char *spool_dir, enum queue_area area, const char *qid,
                  struct envelope *env, int *fd, off_t *content_off);
int queue_remove_in(const char *spool_dir, enum queue_area area, const char *qid);
/* Hold or release: rename queue/<qid> <-> hold/<qid> without replacing anything, then fsync
 * both directories. 0, or -1 with errno (ENOENT: not there; EEXIST: already in `to`). */
int queue_move(const char *spool_dir, const char *qid, enum queue_area from, enum queue_area to);

#endif
