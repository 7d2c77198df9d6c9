/* pipe.h - delivery of a message to a "|command" alias target (docs/aliases.md). */
#ifndef TERN_PIPE_H
#define TERN_PIPE_H

#include <stddef.h>
#include <sys/types.h>

#include "envelope.h"

#define PIPE_TIMEOUT 300 /* seconds a command may run before it is killed (and retried) */

/* Run cmd (without its '|') for recipient r with the content of fd from off on its standard
 * input. Returns RCPT_DELIVERED, RCPT_PENDING (exit 75, killed after PIPE_TIMEOUT, or a local
 * problem) or RCPT_FAILED; reply gets the result with its enhanced status code first and the
 * start of the command's output. Blocks the caller until the command ends. */
enum rcpt_status pipe_deliver(const struct envelope *env, const struct envelope_rcpt *r,
                              const char *cmd, int fd, off_t off, char *reply, size_t replycap);

#endif
