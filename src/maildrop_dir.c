/* maildrop_dir.c - the maildrop directory on disk (see maildrop_dir.h, docs/queue.md and
 * docs/security.md for the permission design, which is Postfix's maildrop without its
 * setgid postdrop helper). */
#include "maildrop_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* mkdir if missing, then make sure it is a real directory (no symlink) with this mode. */
static int make_private_dir(const char *path, mode_t mode)
{
    if (mkdir(path, mode & 0777) < 0 && errno != EEXIST)
        return -1;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fchmod(fd, mode);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int maildrop_init(const char *spool_dir)
{
    char path[PATH_MAX];
    /* Traversable so local users reach maildrop/; not listable, and queue/, tmp/, state/,
     * hold/ stay 0700. */
    if (chmod(spool_dir, 0711) < 0)
        return -1;
    if (snprintf(path, sizeof path, "%s/" MAILDROP_DIR, spool_dir) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (make_private_dir(path, 01733) < 0)
        return -1;
    if (snprintf(path, sizeof path, "%s/" MAILDROP_DIR "/" MAILDROP_CORRUPT, spool_dir) >=
        (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return make_private_dir(path, 0700);
}

int maildrop_write(const char *spool_dir, const struct maildrop_msg *m, char *name,
                   size_t namecap, char *err, size_t errlen)
{
    char dir[PATH_MAX], tmp[128];
    size_t hlen;
    char *head = maildrop_format_head(m, &hlen);
    if (!head)
        return errorf(err, errlen, "the envelope cannot be written to the maildrop"), -1;
    /* 128 random bits: others cannot list the directory, so the name is what keeps the
     * content private (the file must be readable by the mail user, which the writer is not). */
    unsigned char rnd[16];
    char hex[33];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        free(head);
        return errorf(err, errlen, "getrandom: %s", strerror(errno)), -1;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    snprintf(tmp, sizeof tmp, MAILDROP_TMP_PREFIX "%s", hex);
    snprintf(name, namecap, "%010lld.%s", (long long)time(NULL), hex);
    if (snprintf(dir, sizeof dir, "%s/" MAILDROP_DIR, spool_dir) >= (int)sizeof dir) {
        free(head);
        return errorf(err, errlen, "spool path too long"), -1;
    }
    int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        free(head);
        return errorf(err, errlen, "%s: %s", dir, strerror(errno)), -1;
    }
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        errorf(err, errlen, "cannot create a file in %s: %s", dir, strerror(errno));
        free(head);
        close(dfd);
        return -1;
    }
    /* Readable by the mail user (the pickup), whatever our umask. */
    bool ok = fchmod(fd, 0644) == 0 && write_all(fd, head, hlen) == 0 &&
              write_all(fd, m->data, m->len) == 0 && fsync(fd) == 0;
    free(head);
    ok = ok && renameat2(dfd, tmp, dfd, name, RENAME_NOREPLACE) == 0;
    if (ok) {
        /* The new name must be durable too. Only the directory's owner may open it for
         * fsync (others have no read permission): everybody else syncs the file system. */
        int dd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ok = dd >= 0 ? fsync(dd) == 0 : syncfs(fd) == 0;
        if (dd >= 0)
            close(dd);
        if (!ok) {
            errorf(err, errlen, "cannot sync %s: %s", dir, strerror(errno));
            unlinkat(dfd, name, 0);
        }
    } else {
        errorf(err, errlen, "cannot write %s/%s: %s", dir, tmp, strerror(errno));
        unlinkat(dfd, tmp, 0);
    }
    if (close(fd) < 0 && ok) {
        ok = false;
        errorf(err, errlen, "cannot write %s/%s: %s", dir, name, strerror(errno));
        unlinkat(dfd, name, 0);
    }
    close(dfd);
    return ok ? 0 : -1;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

long maildrop_scan(const char *spool_dir, void (*fn)(const char *name, void *arg), void *arg)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/" MAILDROP_DIR, spool_dir) >= (int)sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, MAILDROP_CORRUPT) == 0)
            continue;
        names = xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        fn(names[i], arg);
        free(names[i]);
    }
    free(names);
    return (long)n;
}
