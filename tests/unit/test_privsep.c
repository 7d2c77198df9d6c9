/* test_privsep.c - privilege separation on the real system: looking up the unprivileged user
 * (missing, uid 0, fine), dropping to it for good in a forked child, and handing a directory
 * to it without following a symlink. As root the tests use "nobody"; as another user only
 * the not-root behaviour can be checked and the rest is skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "privsep.h"
#include "util.h"

static bool is_root(void)
{
    return geteuid() == 0;
}

static void resolve_not_root_keeps_user(void **state)
{
    (void)state;
    if (is_root())
        skip();
    struct run_user u;
    char err[512] = "";
    assert_int_equal(privsep_resolve("no-such-user-tern-test", &u, err, sizeof err), 0);
    assert_false(u.drop);
    assert_int_equal(u.uid, geteuid());
}

static void resolve_missing_user_says_how_to_create_it(void **state)
{
    (void)state;
    if (!is_root())
        skip();
    struct run_user u;
    char err[512] = "";
    assert_int_equal(privsep_resolve("no-such-user-tern-test", &u, err, sizeof err), -1);
    assert_non_null(strstr(err, "'no-such-user-tern-test' does not exist"));
    assert_non_null(strstr(err, "useradd --system"));
}

static void resolve_refuses_uid_0(void **state)
{
    (void)state;
    if (!is_root())
        skip();
    struct run_user u;
    char err[512] = "";
    assert_int_equal(privsep_resolve("root", &u, err, sizeof err), -1);
    assert_non_null(strstr(err, "uid 0"));
}

static void resolve_nobody(void **state)
{
    (void)state;
    if (!is_root())
        skip();
    struct passwd *pw = getpwnam("nobody");
    assert_non_null(pw);
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    struct run_user u;
    char err[512] = "";
    assert_int_equal(privsep_resolve("nobody", &u, err, sizeof err), 0);
    assert_true(u.drop);
    assert_int_equal(u.uid, uid);
    assert_int_equal(u.gid, gid);
    assert_string_equal(u.name, "nobody");
}

/* The drop happens in a child (it cannot be undone); the child reports by exit status
 * which check failed. */
static void drop_is_permanent(void **state)
{
    (void)state;
    if (!is_root())
        skip();
    struct run_user u;
    char err[512] = "";
    assert_int_equal(privsep_resolve("nobody", &u, err, sizeof err), 0);
    char secret[] = "/tmp/tern-privsep-secret-XXXXXX"; /* root's, mode 0600 */
    int sfd = mkstemp(secret);
    assert_true(sfd >= 0);
    close(sfd);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (privsep_drop(&u) < 0)
            _exit(10);
        uid_t r, e, s;
        gid_t rg, eg, sg, groups[4];
        if (getresuid(&r, &e, &s) < 0 || r != u.uid || e != u.uid || s != u.uid)
            _exit(11);
        if (getresgid(&rg, &eg, &sg) < 0 || rg != u.gid || eg != u.gid || sg != u.gid)
            _exit(12);
        if (getgroups(4, groups) != 1 || groups[0] != u.gid)
            _exit(13);
        if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0)
            _exit(14);
        /* Root's files are out of reach now. */
        if (open(secret, O_RDONLY) >= 0 || errno != EACCES)
            _exit(15);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    unlink(secret);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void drop_not_root_is_a_no_op(void **state)
{
    (void)state;
    struct run_user u = {.drop = false, .uid = 12345, .gid = 12345};
    uid_t before = geteuid();
    assert_int_equal(privsep_drop(&u), 0);
    assert_int_equal(geteuid(), before);
}

static void chown_dir_never_follows_a_symlink(void **state)
{
    (void)state;
    if (!is_root())
        skip();
    struct run_user u;
    char err[512] = "";
    assert_int_equal(privsep_resolve("nobody", &u, err, sizeof err), 0);
    char dir[] = "/tmp/tern-privsep-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[300], target[300];
    snprintf(path, sizeof path, "%s/sub", dir);
    snprintf(target, sizeof target, "%s/target", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(mkdir(target, 0700), 0);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    assert_int_equal(symlinkat("target", dfd, "link"), 0);

    assert_int_equal(privsep_chown_dir(dfd, "sub", &u), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, u.uid);
    assert_int_equal(st.st_gid, u.gid);
    assert_int_equal(privsep_chown_dir(dfd, "sub", &u), 0); /* already: nothing to do */

    /* A symlink planted where a directory should be: refused, its target untouched. */
    assert_int_equal(privsep_chown_dir(dfd, "link", &u), -1);
    assert_true(errno == ELOOP || errno == ENOTDIR);
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_uid, 0);
    assert_int_equal(privsep_chown_dir(dfd, "missing", &u), -1);
    assert_int_equal(errno, ENOENT);

    assert_int_equal(unlinkat(dfd, "link", 0), 0);
    assert_int_equal(rmdir(path), 0);
    assert_int_equal(rmdir(target), 0);
    close(dfd);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resolve_not_root_keeps_user),
        cmocka_unit_test(resolve_missing_user_says_how_to_create_it),
        cmocka_unit_test(resolve_refuses_uid_0),
        cmocka_unit_test(resolve_nobody),
        cmocka_unit_test(drop_is_permanent),
        cmocka_unit_test(drop_not_root_is_a_no_op),
        cmocka_unit_test(chown_dir_never_follows_a_symlink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
