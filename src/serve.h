/* serve.h - `tern serve`: the supervisor process.
 *
 * It reads the configuration, recovers the spool, binds the listening sockets, forks the SMTP
 * workers and the queue manager (dropping them to the unprivileged user when started as
 * root), restarts them when they crash, reloads on SIGHUP and stops on SIGTERM/SIGINT.
 * It never daemonizes: systemd, a terminal or `make run` keeps it in the foreground. */
#ifndef TERN_SERVE_H
#define TERN_SERVE_H

#ifndef TERN_VERSION
#define TERN_VERSION "0.1.0"
#endif

/* `tern serve [-c FILE] [-f] [--check]`; argv[0] is "serve". Returns the exit status:
 * 0 after a clean stop (or a good --check), 1 on a startup error, 2 on a usage error. */
int serve_main(int argc, char **argv);

#endif
