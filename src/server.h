/* server.h - an SMTP worker process: one libevent loop serving many sessions.
 *
 * Accepts on the listening sockets it inherited from the supervisor, frames input into
 * command lines (CRLF only, RFC 5321 2.3.8) or DATA/BDAT bytes, applies per-state timeouts
 * (RFC 5321 4.5.3.2) and connection limits, and passes everything to session.c. */
#ifndef TERN_SERVER_H
#define TERN_SERVER_H

#include <stddef.h>

#include "config.h"
#include "tls.h"

struct listener_fd {
    int fd;
    const struct listen_cfg *cfg;
};

struct users;
struct peertab;
struct authlock;

/* peers is the table of connections per client address shared by all workers (peertab.h)
 * and index this worker's column in it; NULL: each worker counts alone. authlock is the
 * failed-AUTH table shared by all workers (authlock.h); NULL: no brute-force throttling. */
/* Serve until SIGTERM (then stop accepting, give sessions cfg->shutdown_grace seconds, send
 * 421 to the rest and return). tls is NULL when no certificate is configured (then no
 * listener offers TLS: config.c guarantees it). users is the SMTP AUTH table the supervisor
 * loaded (NULL: no users_file, no AUTH). Returns the process exit status. */
int smtp_worker_run(const struct config *cfg, const struct listener_fd *fds, size_t nfds,
                    struct tls_server *tls, const struct users *users, struct peertab *peers,
                    struct authlock *authlock, size_t index);

#endif
