/* pickup.h - the queue manager's pickup thread: it submits the files `tern sendmail` left
 * in <spool>/maildrop while the server was down (Postfix's pickup daemon). See pickup.c. */
#ifndef TERN_PICKUP_H
#define TERN_PICKUP_H

#include "config.h"

struct pickup;

/* Start the thread (cfg is kept by reference). NULL with errno on failure. */
struct pickup *pickup_new(const struct config *cfg);
/* Stop it after the file in progress, if any, and free p. */
void pickup_free(struct pickup *p);

#endif
