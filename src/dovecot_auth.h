/* dovecot_auth.h - the asynchronous client of a running Dovecot's auth-client socket, on the
 * worker's libevent loop (auth_backend dovecot; docs/auth.md).
 *
 * One connection per worker, opened lazily and again after Dovecot went away, carrying
 * many AUTH requests at once (each with its own id). Lines are parsed and formatted by
 * dovecot_proto.c. Nothing here blocks: connecting to a Unix socket either succeeds or fails
 * at once, and answers arrive through callbacks. */
#ifndef TERN_DOVECOT_AUTH_H
#define TERN_DOVECOT_AUTH_H

#include <stdbool.h>

#include <event2/event.h>

#include "dovecot_proto.h"

struct dovecot_auth;
struct dovecot_req;

/* answer: an OK, CONT or FAIL line from Dovecot; NULL when Dovecot could not be reached,
 * went away or did not answer within the timeout. After anything but CONT the request is
 * finished and already freed: the caller must forget its pointer. */
typedef void dovecot_auth_cb(void *arg, const struct dovecot_line *answer);

/* path: the auth-client socket; timeout: seconds to wait for the handshake or an answer. */
struct dovecot_auth *dovecot_auth_new(struct event_base *base, const char *path, int timeout);
/* Closes the connection; requests still open are dropped without their callbacks. */
void dovecot_auth_free(struct dovecot_auth *d);

/* The mechanisms of the last completed handshake, or NULL if there was none yet. Starts a
 * connection attempt when there is none, so a Dovecot that came back is noticed. */
const struct dovecot_mechs *dovecot_auth_mechs(struct dovecot_auth *d);

/* Send an AUTH (p->id is assigned here). NULL if Dovecot cannot be reached now (the socket
 * does not exist, refuses, or the request does not fit a line). */
struct dovecot_req *dovecot_auth_start(struct dovecot_auth *d, const struct dovecot_auth_params *p,
                                       dovecot_auth_cb *cb, void *arg);
/* The client's next response (base64) after a CONT. false: the connection is gone (the
 * request stays until cancelled). */
bool dovecot_auth_continue(struct dovecot_req *r, const char *resp);
/* Forget a request (tells Dovecot with CANCEL); its callback will not be called. */
void dovecot_auth_cancel(struct dovecot_req *r);

#endif
