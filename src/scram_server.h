/* scram_server.h - the server side of SCRAM-SHA-256 (RFC 7677, RFC 5802 5 and 9, without
 * channel binding) for SMTP AUTH (RFC 4954), checking proofs against the StoredKey and
 * ServerKey of the users file (users.h): the password is never needed. Pure: messages in,
 * messages out; the session moves them (base64) over the connection. */
#ifndef TERN_SCRAM_SERVER_H
#define TERN_SCRAM_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "users.h"

struct scram_server {
    char *gs2_header;          /* "n,," as the client sent it */
    char *client_first_bare;   /* "n=user,r=cnonce" */
    char *server_first;        /* "r=cnonce+snonce,s=salt,i=iter" */
    char *nonce;               /* cnonce + snonce */
    char user[USERS_NAME_MAX + 1];
    bool known;                /* the user exists and has SCRAM keys */
    unsigned char stored_key[32];
    unsigned char server_key[32];
};

/* From the client-first message (decoded), the server-first message to send. Unknown users
 * (and users without SCRAM keys) get a made-up salt and fail at the end, so the exchange does
 * not reveal which names exist. NULL with a reason in err: malformed, channel binding
 * requested ("p="), an authzid other than the user, or no random numbers. */
char *scram_server_first(struct scram_server *ss, const struct users *u, const char *msg,
                         size_t len, char *err, size_t errlen);
/* Check the client-final message. 1: proof right, *server_final is "v=SIGNATURE" (caller
 * frees); 0: wrong proof or unknown user; -1: malformed (reason in err). */
int scram_server_final(struct scram_server *ss, const char *msg, size_t len, char **server_final,
                       char *err, size_t errlen);
void scram_server_free(struct scram_server *ss);

#endif
