/* pipe.c - delivery to a "|command" alias target (allow_pipe_aliases on; docs/aliases.md).
 *
 * The queue manager runs the command with /bin/sh -c, as its own (unprivileged) user, in a
 * process group of its own, with the message (Return-Path and Delivered-To first, LF line
 * ends) on standard input and a minimal environment. Input and output are memory files, so
 * a command that writes before reading, or never reads, cannot deadlock us; a command that
 * runs longer than PIPE_TIMEOUT seconds is killed. Exit status per sysexits.h: 0 delivered,
 * 75 (EX_TEMPFAIL) retried, anything else (or a signal) a permanent failure. */
#include "pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "maildir.h"
#include "smtp_parse.h"
#include "util.h"

#define EX_TEMPFAIL 75

/* The original recipient (the alias the client named) from ORCPT "rfc822;xtext". */
static void original_rcpt(const struct envelope_rcpt *r, char *out, size_t cap)
{
    out[0] = '\0';
    const char *semi = r->orcpt ? strchr(r->orcpt, ';') : NULL;
    if (!semi || !xtext_decode(semi + 1, strlen(semi + 1), out, cap))
        out[0] = '\0';
    for (char *p = out; *p; p++) /* for a header field and the environment: one line */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

static _Noreturn void child(const char *cmd, int in, int out, const struct envelope *env,
                            const char *orig)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setpgid(0, 0);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 || chdir("/") < 0)
        _exit(EX_TEMPFAIL);
    closefrom(3);
    const struct passwd *pw = getpwuid(getuid());
    clearenv();
    setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 1);
    setenv("SHELL", "/bin/sh", 1);
    setenv("HOME", pw && pw->pw_dir ? pw->pw_dir : "/", 1);
    if (pw) {
        setenv("LOGNAME", pw->pw_name, 1);
        setenv("USER", pw->pw_name, 1);
    }
    setenv("SENDER", env->sender ? env->sender : "", 1);
    setenv("RECIPIENT", orig, 1);
    setenv("QUEUE_ID", env->qid, 1);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(EX_TEMPFAIL);
}

/* Wait for pid for at most seconds (killing its process group after that), then reap it.
 * The group is killed before the reap, while the pid cannot have been reused: whatever the
 * command left running goes with it. Returns the wait status, or -1. */
static int wait_child(pid_t pid, int seconds, bool *timed_out)
{
    *timed_out = false;
    int pfd = pidfd_open(pid, 0);
    if (pfd >= 0) {
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        int rc;
        while ((rc = poll(&p, 1, seconds * 1000)) < 0 && errno == EINTR)
            ;
        *timed_out = rc == 0;
        kill(-pid, SIGKILL);
        close(pfd);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return status;
}

/* The command's output as one printable line (for the reply, the log and a bounce). */
static void output_line(int fd, char *out, size_t cap)
{
    char buf[400];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    size_t o = 0;
    for (ssize_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
        out[o++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

enum rcpt_status pipe_deliver(const struct envelope *env, const struct envelope_rcpt *r,
                              const char *cmd, int fd, off_t off, char *reply, size_t replycap)
{
    char orig[SMTP_PATH_MAX + 1], hdr[2 * SMTP_PATH_MAX + 64], sender[SMTP_PATH_MAX + 1];
    original_rcpt(r, orig, sizeof orig);
    str_copy(sender, sizeof sender, env->sender ? env->sender : "");
    for (char *p = sender; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    snprintf(hdr, sizeof hdr, "Return-Path: <%s>\r\n%s%s%s", sender,
             orig[0] ? "Delivered-To: " : "", orig, orig[0] ? "\r\n" : "");
    int in = memfd_create("tern-pipe-in", MFD_CLOEXEC);
    int out = memfd_create("tern-pipe-out", MFD_CLOEXEC);
    unsigned long long size;
    bool reading;
    if (in < 0 || out < 0 || maildir_copy_lf(in, hdr, fd, off, &size, &reading) < 0 ||
        lseek(in, 0, SEEK_SET) < 0) {
        snprintf(reply, replycap, "4.3.0 cannot prepare the message for the command: %s",
                 strerror(errno));
        goto tempfail;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(reply, replycap, "4.3.0 cannot start the command: %s", strerror(errno));
        goto tempfail;
    }
    if (pid == 0)
        child(cmd, in, out, env, orig);
    bool timed_out;
    int status = wait_child(pid, PIPE_TIMEOUT, &timed_out);
    char output[256];
    output_line(out, output, sizeof output);
    close(in);
    close(out);
    const char *sep = output[0] ? ": " : "";
    if (timed_out) {
        snprintf(reply, replycap, "4.3.0 command killed after %d seconds%s%s", PIPE_TIMEOUT, sep,
                 output);
        return RCPT_PENDING;
    }
    if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        str_copy(reply, replycap, "2.0.0 delivered to command");
        return RCPT_DELIVERED;
    }
    if (status >= 0 && WIFEXITED(status)) {
        int code = WEXITSTATUS(status);
        snprintf(reply, replycap, "%s command exited with status %d%s%s",
                 code == EX_TEMPFAIL ? "4.3.0" : "5.3.0", code, sep, output);
        return code == EX_TEMPFAIL ? RCPT_PENDING : RCPT_FAILED;
    }
    if (status >= 0 && WIFSIGNALED(status)) {
        snprintf(reply, replycap, "5.3.0 command killed by signal %d%s%s", WTERMSIG(status), sep,
                 output);
        return RCPT_FAILED;
    }
    snprintf(reply, replycap, "4.3.0 cannot wait for the command: %s", strerror(errno));
    return RCPT_PENDING;
tempfail:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return RCPT_PENDING;
}
