/* session.h - one SMTP server session as a state machine, free of network I/O.
 *
 * The I/O layer (server.c) hands it complete command lines (CRLF removed) or raw DATA/BDAT
 * bytes, as session_mode() asks, and sends whatever the session writes through io->write.
 * This keeps RFC 5321 logic testable with plain function calls and byte strings. */
#ifndef TERN_SESSION_H
#define TERN_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

enum session_mode {
    MODE_LINE,   /* expecting a command line */
    MODE_DATA,   /* inside DATA: dot-stuffed text until <CRLF>.<CRLF> */
    MODE_CHUNK,  /* inside BDAT: session_chunk_remaining() raw octets */
    MODE_STARTTLS, /* 220 sent to STARTTLS: drop buffered input, start the TLS handshake */
    MODE_WAIT,   /* waiting for the queue manager (ETRN, ATRN), the external SASL server
                    (Dovecot) or a password check: keep input until session_control_done /
                    session_atrn_result / the SASL answer / session_password_checked */
    MODE_CLOSE,  /* the session is over: flush output and close */
    MODE_RELAY,  /* after "250" to ATRN the roles turned (RFC 2645): the connection now carries
                    the queue manager's SMTP client; relay bytes, the session is done */
    MODE_COMMIT, /* end of data: waiting for session_commit_done; read nothing meanwhile */
};

struct queue_writer;

struct session_io {
    void (*write)(void *ctx, const char *buf, size_t len);
    void *ctx;
    /* Optional (NULL: no delay). Hold back the output written so far and stop reading input
     * for ms milliseconds: the growing delay after a failed AUTH (RFC 4954 15). */
    void (*pause)(void *ctx, unsigned ms);
    /* Optional (NULL: ETRN answers 458). Send one request line to the queue manager's control
     * socket (control.h) and call session_control_done with the result, later or at once. */
    void (*control)(void *ctx, const char *request);
    /* Optional (NULL: ATRN answers 451). Ask the queue manager for the held mail of these
     * domains (comma-separated, RFC 2645); the I/O layer answers with session_atrn_result. */
    void (*atrn)(void *ctx, const char *domains);
    /* Optional (NULL: queue_writer_commit, blocking, then 250). Make the finished message
     * durable in the background (group commit, commit.h) and call session_commit_done when
     * it is; the 250 is written only then. Takes over qw. */
    void (*commit)(void *ctx, struct queue_writer *qw);
    /* Optional (NULL: crypt on the caller's thread). Check password against a crypt(3) hash
     * (AUTH PLAIN, LOGIN) off the event loop and call session_password_checked with the
     * result, later, never from inside this call. Both strings are only valid during the call.
     * Meanwhile session_mode() is MODE_WAIT. */
    void (*check_password)(void *ctx, const char *hash, const char *password);
};

struct users;

struct session;

struct session *session_new(const struct config *cfg, const struct listen_cfg *listener,
                            const char *peer_addr, const struct session_io *io);
void session_free(struct session *s);
/* The users table for SMTP AUTH (RFC 4954; users.h), owned by the caller and outliving the
 * session. NULL (the default): AUTH is not offered and answers 502. With a table, submission
 * and smtps listeners require AUTH before MAIL (530 5.7.0). */
void session_set_users(struct session *s, const struct users *users);
/* The longest input line the I/O layer should accept now, including CRLF: SMTP_CMDLINE_MAX,
 * or AUTH_LINE_MAX while AUTH may be sent or an AUTH exchange is in progress (RFC 4954 4). */
#define AUTH_LINE_MAX 12288
size_t session_max_line(const struct session *s);
struct authlock;
/* The worker's table of failed AUTH attempts per address (authlock.h); NULL: none (then only
 * the per-connection delay applies). */
void session_set_authlock(struct session *s, struct authlock *t);
/* An external SASL server that AUTH exchanges are relayed to (auth_backend dovecot,
 * dovecot_auth.h) instead of the users table. The session keeps the policy (which mechanisms
 * may be used now, TLS, lockout, delays, sender rules); the I/O layer carries the base64
 * messages and hands the server's answer to session_sasl_answer(). ctx is io.ctx. */
struct dovecot_mechs;
struct dovecot_line;
struct session_sasl {
    /* The mechanisms the server announced; NULL while not known (then PLAIN and LOGIN). */
    const struct dovecot_mechs *(*mechs)(void *ctx);
    /* Start an exchange. resp: the client's initial response, canonical base64 (NULL: none,
     * "": an empty one). secured: TLS, or a client tern's policy allows clear-text passwords
     * (auth_plaintext_loopback). false: the server cannot be asked now (454 4.7.0). While it
     * is asked, session_mode() is MODE_WAIT. */
    bool (*start)(void *ctx, const char *mech, const char *resp, bool secured);
    /* The client's next response (canonical base64). false: the server is gone. */
    bool (*cont)(void *ctx, const char *resp);
    /* Forget the exchange in progress (the client cancelled or left). */
    void (*cancel)(void *ctx);
};
/* With sasl set, AUTH is offered like with a users table (and required on submission). */
void session_set_sasl(struct session *s, const struct session_sasl *sasl);
/* The server's answer to start/cont: CONT (another 334), OK (user= is the authenticated
 * name) or FAIL; NULL when it could not be asked or did not answer in time (454 4.7.0). */
void session_sasl_answer(struct session *s, const struct dovecot_line *answer);
/* The answer to io->check_password: does the password match? */
void session_password_checked(struct session *s, bool ok);
/* The user name after a successful AUTH, or NULL. */
const char *session_auth_user(const struct session *s);

/* The queue manager's answer to io->atrn: messages waiting (>0: 250 and the roles turn,
 * MODE_RELAY; 0: 453), or -1 with why (451). */
void session_atrn_result(struct session *s, long messages, const char *why);

/* Send the greeting. */
void session_start(struct session *s);
/* The TLS handshake finished (after STARTTLS, or before the greeting on an implicit-TLS
 * listener). desc is tls_describe()'s text. Forgets all earlier state (RFC 3207 4.2). */
void session_tls_started(struct session *s, const char *desc);
/* A command line without its CRLF. */
void session_line(struct session *s, const char *line, size_t len);
/* The I/O layer discarded a command line longer than SMTP_CMDLINE_MAX. */
void session_line_too_long(struct session *s);
/* DATA or BDAT octets. Returns how many were consumed; the rest (after end of data, or after
 * the chunk) is for session_line again. */
size_t session_data(struct session *s, const char *buf, size_t len);
/* The answer to io->control: n from "OK <n>", or -1 and why. */
void session_control_done(struct session *s, long n, const char *err);
/* The io->commit of the message finished: err 0 (durable: 250) or an errno (451/452). */
void session_commit_done(struct session *s, int err);
/* The client was idle too long (421 4.4.2), or the server is stopping (421 4.3.2). */
void session_timeout(struct session *s);
void session_shutdown(struct session *s);
/* The connection was lost: abort any message in progress. */
void session_abort(struct session *s);

enum session_mode session_mode(const struct session *s);
unsigned long long session_chunk_remaining(const struct session *s);
/* Seconds to wait for client input in the current state (RFC 5321 4.5.3.2). */
int session_timeout_seconds(const struct session *s);

#endif
