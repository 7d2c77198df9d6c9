/* odmr_chan.h - the worker's side of handing an ATRN connection to the queue manager (RFC
 * 2645 On-Demand Mail Relay), over the control socket (control.h).
 *
 * A worker that answered nothing yet to a valid ATRN connects to the control socket, sends
 * one line "ATRN domain[,domain...]\n" with one end of a socketpair attached (SCM_RIGHTS),
 * and reads the answer without blocking its event loop: "OK <n>\n" (n messages will be
 * delivered over the passed descriptor; 0: none, the descriptor is closed) or "ERR <text>\n",
 * then ".\n".
 * The queue manager then speaks SMTP as the client over that descriptor while the worker
 * relays its bytes to and from the customer's connection. This keeps one writer of queue
 * state (the queue manager) and leaves TLS with the worker that terminates it. */
#ifndef TERN_ODMR_CHAN_H
#define TERN_ODMR_CHAN_H

#include <stddef.h>

#include "config.h"

struct event_base;

/* ---- worker side ---- */

/* The answer: messages >= 0, or -1 with a reason in why. Called once, from the event loop. */
typedef void (*odmr_req_cb)(void *arg, long messages, const char *why);
struct odmr_req;
/* Send the request with fd attached (the caller keeps and closes its own copy). NULL with a
 * reason in err if the queue manager cannot be reached. */
struct odmr_req *odmr_chan_request(struct event_base *base, const struct config *cfg,
                                   const char *domains, int fd, odmr_req_cb cb, void *arg,
                                   char *err, size_t errlen);
/* Forget a request whose answer is no longer wanted (the callback will not run). */
void odmr_req_cancel(struct odmr_req *r);

#endif
