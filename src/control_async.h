/* control_async.h - one request to the queue manager's control socket (control.h) without
 * blocking the caller's event loop: ETRN (RFC 1985) in an SMTP worker asks for a FLUSH this
 * way while the worker goes on serving its other sessions. control.h's control_request is the
 * blocking client for the command line; the wire format is the same, and only the status line
 * ("OK <n>" or "ERR <text>") is used here. */
#ifndef TERN_CONTROL_ASYNC_H
#define TERN_CONTROL_ASYNC_H

#include <stddef.h>

#include "config.h"

struct event_base;
struct control_async;

/* The result: n >= 0 from "OK <n>", or -1 with err (the server's ERR text, or why it could
 * not be asked: not running, no answer within the timeout, connection lost). */
typedef void control_async_cb(void *arg, long n, const char *err);

/* Connect, send the request line and wait for the answer on base; cb runs once, from the
 * event loop. NULL with err when the request cannot even start (nobody listens): then cb
 * never runs. */
struct control_async *control_async_start(struct event_base *base, const struct config *cfg,
                                          const char *request, int timeout_s,
                                          control_async_cb *cb, void *arg, char *err,
                                          size_t errlen);
/* Abandon a request in progress: cb will not run. NULL is fine. */
void control_async_cancel(struct control_async *r);

/* Parse the status line of an answer (without its LF): "OK <n>" gives n, "ERR <text>" gives
 * -1 with text in err, anything else -1 with a complaint. Pure. */
long control_async_status(const char *line, size_t len, char *err, size_t errlen);

#endif
