/* control.h - the queue manager's control socket: `tern queue` (and `mailq`, `sendmail -bp/-q`)
 * talk to the running queue manager through it.
 *
 * A Unix stream socket, by default <spool>/control (keyword control_socket), mode 0660 and
 * owned by the mail user; the server also checks the peer's uid (root or the mail user).
 * Wire format: the client sends one line "VERB [ARG]\n"; the server answers "OK <n>\n" or
 * "ERR <text>\n", then data lines (a line starting with '.' gets a second '.'), then ".\n",
 * and closes. Verbs (docs/queue.md): LIST, SHOW <qid>, FLUSH [<qid>|@<domain>|@.<domain>],
 * DELETE <qid>|ALL, HOLD <qid>, RELEASE <qid>, REQUEUE, and ATRN <domain,...> from an SMTP
 * worker with a descriptor attached (odmr_chan.h). New verbs are one line in the table in
 * control.c. */
#ifndef TERN_CONTROL_H
#define TERN_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "config.h"
#include "envelope.h"

#define CONTROL_LINE_MAX 1024 /* a request line, without its LF */

/* ---- client ---- */

/* The socket's path: control_socket, or <spool>/control. false if it does not fit. */
bool control_socket_path(const struct config *cfg, char *out, size_t cap);

/* Send one request line to the running queue manager; on success *reply is the malloc'd reply
 * text (all lines after the status line, each ending in "\n") and the return value is the
 * number the server put in "OK <n>". -1 on failure with a message in err: "tern is not
 * running (no control socket at PATH)" when nobody listens, or the server's "ERR <text>". */
long control_request(const struct config *cfg, const char *request, char **reply, char *err,
                     size_t errlen);

/* The configuration a command-line client uses: path if given, else $TERN_CONFIG, else
 * /etc/tern/tern.conf when it exists, else the embedded default. 0, or -1 with err. */
int control_config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* ---- server (inside the queue manager) ---- */

/* What to do with a message once the delivery pass running over it ends. */
enum control_after { CONTROL_AFTER_NONE = 0, CONTROL_AFTER_DELETE, CONTROL_AFTER_HOLD };

/* What the queue manager offers the control server; qid is always valid. */
struct control_hooks {
    void *arg;
    bool (*busy)(void *arg, const char *qid);      /* a delivery pass over it is running */
    void (*retry_now)(void *arg, const char *qid); /* drop its not-before time, schedule it */
    void (*forget)(void *arg, const char *qid);    /* its file left queue/ */
    void (*after_pass)(void *arg, const char *qid, enum control_after what);
    void (*rescan)(void *arg);                     /* drop cached times, rescan queue/ */
    /* ATRN (RFC 2645, docs/odmr.md): deliver the mail held for domains ("a,b") over fd, the
     * customer's connection passed with the request (SCM_RIGHTS), which the hook owns.
     * Messages that will go, or -1 with err. NULL: ATRN is refused. */
    long (*atrn)(void *arg, const char *domains, int fd, char *err, size_t errlen);
};

struct event_base;
struct control_server;

/* Listen on the control socket (a stale socket file is replaced). NULL with err. */
struct control_server *control_server_new(const struct config *cfg, struct event_base *base,
                                          const struct control_hooks *hooks, char *err,
                                          size_t errlen);
/* Close connections and the socket, and remove the socket file. NULL is fine. */
void control_server_free(struct control_server *s);
/* Carry out a delete or hold requested while the message was being delivered; the queue
 * manager calls it when that pass ends with recipients left. 0 when the message has left
 * queue/, -1 (logged) otherwise. */
int control_after_pass(const struct config *cfg, const char *qid, enum control_after what);

/* ---- pure parts (unit-tested) ---- */

/* What a request's argument names. */
enum control_target {
    CONTROL_TARGET_NONE,       /* no argument */
    CONTROL_TARGET_QID,        /* a queue ID */
    CONTROL_TARGET_ALL,        /* "ALL" */
    CONTROL_TARGET_DOMAIN,     /* "@example.org" */
    CONTROL_TARGET_SUBDOMAINS, /* "@.example.org": the domain and below */
    CONTROL_TARGET_BAD,
};

/* Split a request line into verb (upper-cased into verb, cap vcap) and *arg (points into line,
 * "" if none). false if the line is empty, too long or has more than one argument. */
bool control_split(const char *line, char *verb, size_t vcap, const char **arg);
/* Classify an argument; for the domain forms *domain points at the domain (after "@" or "@."). */
enum control_target control_target_of(const char *arg, const char **domain);
/* Does the recipient address match a FLUSH target (DOMAIN: exactly; SUBDOMAINS: it or below)?
 * Case-insensitive. */
bool control_domain_match(const char *addr, enum control_target t, const char *domain);
/* "45s", "3m", "2h5m", "1d3h". */
void control_format_age(long long secs, char *out, size_t cap);
/* One message of a LIST: a line with ID, size, age and sender (and HELD), then a line per
 * recipient with its state and, when deferred, attempts, next try and last error. */
void control_format_entry(FILE *out, const struct envelope *env, long long size, time_t now,
                          bool held);
/* Write text as data lines: '\n' ends a line ("\r\n" too), a leading '.' is doubled, and a
 * last line without '\n' gets one. */
void control_write_data(FILE *out, const char *text, size_t len);

#endif
