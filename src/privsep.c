/* privsep.c - looking up tern's unprivileged user, dropping to it permanently and checking
 * the drop, and giving directories to it without following symlinks. See privsep.h. */
#include "privsep.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

int privsep_resolve(const char *name, struct run_user *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    u->uid = geteuid();
    u->gid = getegid();
    if (u->uid != 0) {
        /* Not root: nobody to switch to; report the real name for the logs. */
        struct passwd *me = getpwuid(u->uid);
        if (!me || !str_copy(u->name, sizeof u->name, me->pw_name))
            snprintf(u->name, sizeof u->name, "uid %ld", (long)u->uid);
        return 0;
    }
    if (!str_copy(u->name, sizeof u->name, name)) {
        snprintf(err, errlen, "user name '%.40s...' is too long", name);
        return -1;
    }
    errno = 0;
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        if (errno != 0 && errno != ENOENT && errno != ESRCH)
            snprintf(err, errlen, "cannot look up user '%s': %s", name, strerror(errno));
        else
            snprintf(err, errlen,
                     "user '%s' does not exist: tern runs its workers as this unprivileged user "
                     "when started as root. Create it, e.g. `useradd --system --home-dir "
                     "/nonexistent --shell /usr/sbin/nologin %s`, or name another one with "
                     "'user' in the configuration", name, name);
        return -1;
    }
    if (pw->pw_uid == 0) {
        snprintf(err, errlen, "user '%s' has uid 0: the workers must not run as root; "
                 "name an unprivileged user with 'user' in the configuration", name);
        return -1;
    }
    u->drop = true;
    u->uid = pw->pw_uid;
    u->gid = pw->pw_gid;
    return 0;
}

int privsep_drop(const struct run_user *u)
{
    if (!u->drop)
        return 0;
    /* Groups first: once the uid is gone we could no longer change them. */
    if (setgroups(1, &u->gid) < 0 || setresgid(u->gid, u->gid, u->gid) < 0) {
        log_err("cannot switch to group %ld of user %s: %s", (long)u->gid, u->name,
                strerror(errno));
        return -1;
    }
    if (setresuid(u->uid, u->uid, u->uid) < 0) {
        log_err("cannot switch to user %s (uid %ld): %s", u->name, (long)u->uid, strerror(errno));
        return -1;
    }
    /* Trust but verify: every id changed and root cannot be taken back. */
    uid_t ru, eu, su;
    gid_t rg, eg, sg, groups[2];
    int ngroups = getgroups(2, groups);
    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != u->uid ||
        eu != u->uid || su != u->uid || rg != u->gid || eg != u->gid || sg != u->gid ||
        ngroups != 1 || groups[0] != u->gid || setuid(0) == 0 || seteuid(0) == 0 ||
        setgid(0) == 0) {
        log_err("dropping privileges to user %s did not work: refusing to run", u->name);
        return -1;
    }
    return 0;
}

int privsep_chown_fd(int fd, const struct run_user *u)
{
    if (!u->drop)
        return 0;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    if (st.st_uid == u->uid && st.st_gid == u->gid)
        return 0;
    return fchown(fd, u->uid, u->gid);
}

int privsep_chown_dir(int dirfd, const char *name, const struct run_user *u)
{
    if (!u->drop)
        return 0;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = privsep_chown_fd(fd, u);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}
