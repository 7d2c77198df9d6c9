/* privsep.h - privilege separation: the unprivileged user tern's children run as when the
 * supervisor is started as root, dropping to it for good, and handing it directories.
 *
 * Only the supervisor keeps root (to bind ports below 1024 and to restart children); every
 * process that reads network input or writes the spool and Maildirs runs as this user. */
#ifndef TERN_PRIVSEP_H
#define TERN_PRIVSEP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct run_user {
    bool drop;        /* true when started as root: children switch to uid/gid */
    uid_t uid;
    gid_t gid;
    char name[64];
};

/* Decide who the children run as. Not root: drop = false (stay the current user, the
 * configured name is ignored). Root: look up name; a missing user or one with uid 0 is an
 * error that tells the administrator what to do. 0 on success, -1 with err set. */
int privsep_resolve(const char *name, struct run_user *u, char *err, size_t errlen);

/* Switch this process to u for good (supplementary groups, real/effective/saved gid and
 * uid), then verify that root cannot be regained. Nothing to do when !u->drop.
 * 0 on success, -1 (logged): the caller must not go on. */
int privsep_drop(const struct run_user *u);

/* Give the open file fd to u (fchown, only if not already u's). 0 or -1 with errno. */
int privsep_chown_fd(int fd, const struct run_user *u);

/* Give the directory `name` (relative to dirfd, or a path with AT_FDCWD) to u, without
 * following a symbolic link in its last component: the children could have put one there.
 * 0 on success (or nothing to do), -1 with errno (ELOOP/ENOTDIR for a symlink or file). */
int privsep_chown_dir(int dirfd, const char *name, const struct run_user *u);

#endif
