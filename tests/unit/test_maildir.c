/* test_maildir.c - Maildir delivery on a real file system: one complete file in new/ with LF
 * line ends, the header first and a correct S= size; nothing left in new/ or tmp/ on failure
 * (a path through a regular file; ENOSPC and EROFS on small tmpfs mounts when we may mount). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maildir.h"
#include "util.h"

static char base[256];
static char mnt[300];

static int setup(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/tern-maildir-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    str_copy(base, sizeof base, tmpl);
    snprintf(mnt, sizeof mnt, "%s/mnt", base);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    umount2(mnt, MNT_DETACH); /* if a mount test failed half-way */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    return system(cmd) == 0 ? 0 : -1;
}

/* A source file holding junk, then the content at the returned offset (like a queue file). */
static int source(const char *content, size_t len, off_t *off)
{
    char path[400];
    snprintf(path, sizeof path, "%s/src", base);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    static const char junk[] = "tern-envelope 1\nqid X\n\n";
    assert_int_equal(write_all(fd, junk, sizeof junk - 1), 0);
    assert_int_equal(write_all(fd, content, len), 0);
    *off = (off_t)(sizeof junk - 1);
    return fd;
}

/* Names of the entries of dir/sub (not "." / ".."); returns the count, first name in name. */
static int list(const char *dir, const char *sub, char *name, size_t cap)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n++ == 0 && name)
            str_copy(name, cap, de->d_name);
    }
    closedir(d);
    return n;
}

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *buf = xmalloc((size_t)st.st_size + 1);
    assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
    buf[st.st_size] = '\0';
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

/* Deliver and return the stored file's content; checks name, S= and the directory layout. */
static char *deliver_ok(const char *dir, const char *host, const char *header,
                        const char *content, size_t len, size_t *outlen)
{
    off_t off;
    int fd = source(content, len, &off);
    char err[512] = "x";
    assert_int_equal(maildir_deliver(dir, host, header, fd, off, err, sizeof err), MAILDIR_OK);
    assert_string_equal(err, "");
    close(fd);
    char name[512], path[1200];
    assert_int_equal(list(dir, "new", name, sizeof name), 1);
    assert_int_equal(list(dir, "tmp", NULL, 0), 0);
    assert_int_equal(list(dir, "cur", NULL, 0), 0);
    snprintf(path, sizeof path, "%s/new/%s", dir, name);
    char *data = slurp(path, outlen);
    /* <sec>.M<usec>P<pid>Q<n>.<host>,S=<size> */
    long long sec;
    long usec, pid;
    unsigned q;
    int consumed = 0;
    assert_int_equal(sscanf(name, "%lld.M%ldP%ldQ%u.%n", &sec, &usec, &pid, &q, &consumed), 4);
    assert_true(consumed > 0);
    assert_int_equal(pid, (long)getpid());
    assert_true(usec >= 0 && usec < 1000000);
    const char *s = strstr(name, ",S=");
    assert_non_null(s);
    char want[32];
    snprintf(want, sizeof want, ",S=%zu", *outlen);
    assert_string_equal(s, want);
    struct stat st;
    snprintf(path, sizeof path, "%s/new", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    return data;
}

static void test_deliver(void **state)
{
    (void)state;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/mail/example.test/demo", base);
    static const char msg[] = "Subject: hi\r\n\r\nline one\r\nbare\rcr\r\n\r\nlast\r\n";
    size_t len;
    char *data = deliver_ok(dir, "mx.test", "Return-Path: <a@b>\r\nDelivered-To: demo@example.test\r\n",
                            msg, sizeof msg - 1, &len);
    static const char want[] = "Return-Path: <a@b>\nDelivered-To: demo@example.test\n"
                               "Subject: hi\n\nline one\nbare\rcr\n\nlast\n";
    assert_int_equal(len, sizeof want - 1);
    assert_memory_equal(data, want, len);
    free(data);
    char name[512];
    assert_int_equal(list(dir, "new", name, sizeof name), 1);
    assert_non_null(strstr(name, ".mx.test,S="));
}

/* No header; a CRLF split across the copy buffer; a CR as the very last octet. */
static void test_deliver_large(void **state)
{
    (void)state;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/md", base);
    size_t n = 200000;
    char *msg = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        msg[i] = (char)('a' + i % 26);
    for (size_t i = 1000; i + 1 < n; i += 1000) {
        msg[i] = '\r';
        msg[i + 1] = '\n';
    }
    msg[65535] = '\r'; /* straddles the 64 KiB read boundary */
    msg[65536] = '\n';
    msg[n - 1] = '\r';
    size_t crlf = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (msg[i] == '\r' && msg[i + 1] == '\n')
            crlf++;
    size_t len;
    char *data = deliver_ok(dir, "h", NULL, msg, n, &len);
    assert_int_equal(len, n - crlf);
    assert_null(memmem(data, len, "\r\n", 2));
    assert_int_equal(data[len - 1], '\r');
    free(data);
    free(msg);
}

static void test_deliver_empty_and_twice(void **state)
{
    (void)state;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/md", base);
    size_t len;
    char *data = deliver_ok(dir, "h", NULL, "", 0, &len);
    assert_int_equal(len, 0);
    free(data);
    off_t off;
    int fd = source("x\r\n", 3, &off);
    char err[256];
    assert_int_equal(maildir_deliver(dir, "h", "", fd, off, err, sizeof err), MAILDIR_OK);
    assert_int_equal(maildir_deliver(dir, "h", "", fd, off, err, sizeof err), MAILDIR_OK);
    close(fd);
    assert_int_equal(list(dir, "new", NULL, 0), 3); /* distinct names */
}

/* '/' and ':' in the host name cannot split the file name (maildir(5)). */
static void test_hostname_escaped(void **state)
{
    (void)state;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/md", base);
    size_t len;
    char *data = deliver_ok(dir, "a/b:c,d", NULL, "x", 1, &len);
    free(data);
    char name[512];
    assert_int_equal(list(dir, "new", name, sizeof name), 1);
    assert_non_null(strstr(name, ".a\\057b\\072c\\054d,S=1"));
    /* No host name: still a valid name. */
    snprintf(dir, sizeof dir, "%s/md2", base);
    data = deliver_ok(dir, NULL, NULL, "", 0, &len);
    free(data);
    assert_int_equal(list(dir, "new", name, sizeof name), 1);
    assert_non_null(strstr(name, ".localhost,S=0"));
}

static void assert_no_message(const char *dir)
{
    int n = list(dir, "new", NULL, 0);
    assert_true(n <= 0);
    n = list(dir, "tmp", NULL, 0);
    assert_true(n <= 0);
}

/* A path component that is a regular file: an admin mistake to mend, so retried; only an
 * impossible path fails for good. */
static void test_notdir_is_temporary(void **state)
{
    (void)state;
    char file[400], dir[500], err[512];
    snprintf(file, sizeof file, "%s/file", base);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(dir, sizeof dir, "%s/sub/Maildir", file);
    off_t off;
    int fd = source("x\r\n", 3, &off);
    assert_int_equal(maildir_deliver(dir, "h", NULL, fd, off, err, sizeof err), MAILDIR_TEMPFAIL);
    assert_non_null(strstr(err, "Not a directory"));
    /* The Maildir itself is a file. */
    assert_int_equal(maildir_deliver(file, "h", NULL, fd, off, err, sizeof err), MAILDIR_TEMPFAIL);
    /* Maildir exists but new/ is a file: the message must not stay in tmp/. */
    snprintf(dir, sizeof dir, "%s/md", base);
    assert_int_equal(mkdir(dir, 0700), 0);
    char sub[600];
    snprintf(sub, sizeof sub, "%s/new", dir);
    f = fopen(sub, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(maildir_deliver(dir, "h", NULL, fd, off, err, sizeof err), MAILDIR_TEMPFAIL);
    assert_true(list(dir, "tmp", NULL, 0) <= 0);
    assert_int_equal(maildir_deliver("", "h", NULL, fd, off, err, sizeof err), MAILDIR_PERMFAIL);
    close(fd);
}

/* The content cannot be read (here: a write-only descriptor): temporary, nothing stored. */
static void test_tempfail_read(void **state)
{
    (void)state;
    char dir[400], err[512], path[400];
    snprintf(dir, sizeof dir, "%s/md", base);
    snprintf(path, sizeof path, "%s/wo", base);
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(maildir_deliver(dir, "h", "H: x\r\n", fd, 0, err, sizeof err),
                     MAILDIR_TEMPFAIL);
    assert_true(strlen(err) > 0);
    close(fd);
    assert_no_message(dir);
}

/* A full file system: ENOSPC is temporary and leaves no partial file. */
static void test_tempfail_enospc(void **state)
{
    (void)state;
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k") < 0)
        skip();
    char dir[400], err[512];
    snprintf(dir, sizeof dir, "%s/md", mnt);
    size_t n = 300000;
    char *msg = xmalloc(n);
    memset(msg, 'y', n);
    off_t off;
    int fd = source(msg, n, &off);
    assert_int_equal(maildir_deliver(dir, "h", NULL, fd, off, err, sizeof err), MAILDIR_TEMPFAIL);
    assert_non_null(strstr(err, "No space left"));
    assert_int_equal(list(dir, "new", NULL, 0), 0);
    assert_int_equal(list(dir, "tmp", NULL, 0), 0);
    /* Once there is room again, the same delivery works. */
    int fd2 = source("small\r\n", 7, &off);
    assert_int_equal(maildir_deliver(dir, "h", NULL, fd2, off, err, sizeof err), MAILDIR_OK);
    assert_int_equal(list(dir, "new", NULL, 0), 1);
    close(fd);
    close(fd2);
    free(msg);
    assert_int_equal(umount2(mnt, MNT_DETACH), 0);
}

/* A read-only file system (a directory we cannot create in, even as root): temporary. */
static void test_tempfail_readonly(void **state)
{
    (void)state;
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", MS_RDONLY, "size=64k") < 0)
        skip();
    char dir[400], err[512];
    snprintf(dir, sizeof dir, "%s/md", mnt);
    off_t off;
    int fd = source("x\r\n", 3, &off);
    assert_int_equal(maildir_deliver(dir, "h", NULL, fd, off, err, sizeof err), MAILDIR_TEMPFAIL);
    assert_non_null(strstr(err, "Read-only"));
    close(fd);
    assert_int_equal(umount2(mnt, MNT_DETACH), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deliver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver_empty_and_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostname_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notdir_is_temporary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tempfail_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tempfail_enospc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tempfail_readonly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
