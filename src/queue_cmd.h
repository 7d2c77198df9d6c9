/* queue_cmd.h - `tern queue` (also run as `mailq`): list and manage the queue of the running
 * server through its control socket (control.h, docs/queue.md). */
#ifndef TERN_QUEUE_CMD_H
#define TERN_QUEUE_CMD_H

#include "config.h"

/* argv[0] is "queue" (or "mailq"). Exit status: 0 done, 1 failure (server not running,
 * unknown ID...), 2 usage. */
int queue_main(int argc, char **argv);

/* Send one control request and print the answer on stdout (errors on stderr, prefixed with
 * prog). Exit status 0 or 1. Used by `tern sendmail -bp` and `-q` as well. */
int queue_cmd_request(const struct config *cfg, const char *prog, const char *request);

#endif
