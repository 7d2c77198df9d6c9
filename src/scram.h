/* scram.h - the client side of SCRAM-SHA-256 (RFC 7677, RFC 5802 without channel binding),
 * for SMTP AUTH (RFC 4954). Pure: builds and checks the messages, the caller moves them
 * (base64-encoded) over the connection. Crypto through OpenSSL (PBKDF2, HMAC, SHA-256). */
#ifndef TERN_SCRAM_H
#define TERN_SCRAM_H

#include <stdbool.h>
#include <stddef.h>

struct scram {
    char *client_first_bare; /* "n=user,r=cnonce" */
    char *cnonce;
    char *auth_message;      /* set by scram_client_final */
    unsigned char server_key[32];
    unsigned iterations;     /* from the server-first message */
};

/* The client-first message "n,,n=USER,r=CNONCE" (USER with '=' and ',' escaped, RFC 5802
 * 5.1). cnonce: printable ASCII without ','; NULL for a random one. Caller frees. */
char *scram_client_first(struct scram *s, const char *user, const char *cnonce);
/* From the server-first message ("r=...,s=...,i=..."), the client-final message with the
 * proof. NULL with a reason in err: malformed, a nonce that does not extend ours, a bad salt,
 * fewer than 4096 iterations (RFC 7677 4), or a server error ("e="). Caller frees. */
char *scram_client_final(struct scram *s, const char *password, const char *server_first,
                         char *err, size_t errlen);
/* Check the server-final message "v=SIGNATURE": proves the server knows the password too.
 * False with a reason in err (wrong signature, or "e=" error). */
bool scram_verify_server(const struct scram *s, const char *server_final, char *err,
                         size_t errlen);
void scram_free(struct scram *s);

#endif
