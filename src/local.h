/* local.h - the local delivery agent: one recipient of a queued message into its Maildir.
 *
 * The queue manager calls it for recipients whose domain is local (route.h). Mailboxes are
 * the configured ones; the Maildir path comes from the configured pattern. The message gets
 * Return-Path (RFC 5321 4.4) and Delivered-To header fields in front. */
#ifndef TERN_LOCAL_H
#define TERN_LOCAL_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "envelope.h"

/* Deliver the content (fd from off) for r. Returns RCPT_DELIVERED, RCPT_PENDING (temporary
 * failure: retry) or RCPT_FAILED; reply gets "2.0.0 delivered to maildir" or the reason with
 * its enhanced status code first; mailbox gets the Maildir path ("-" if none). */
enum rcpt_status local_deliver(const struct config *cfg, const struct envelope *env,
                               const struct envelope_rcpt *r, int fd, off_t off, char *reply,
                               size_t replycap, char *mailbox, size_t mailboxcap);

#endif
