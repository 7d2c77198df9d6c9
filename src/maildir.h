/* maildir.h - delivery into a Maildir (the format of qmail's maildir(5), read by Dovecot).
 *
 * A message is written to tmp/<unique>, fsync'd, then linked into new/ and the directory
 * fsync'd: a reader never sees a partial message and a crash never loses a delivered one.
 * Names follow "<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>" (Dovecot uses S= for quota). */
#ifndef TERN_MAILDIR_H
#define TERN_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum maildir_result { MAILDIR_OK = 0, MAILDIR_TEMPFAIL = -1, MAILDIR_PERMFAIL = -2 };

/* Deliver: create dir/{tmp,new,cur} if missing (mode 0700), write header (may be NULL;
 * e.g. "Return-Path: <a@b>\r\nDelivered-To: c@d\r\n") then the content read from fd at
 * offset off to EOF. CRLF line ends are converted to LF, as Maildir files are usually
 * stored. On failure writes a reason into err. TEMPFAIL: worth retrying (ENOSPC, EDQUOT,
 * EIO, EROFS, EACCES, ENOTDIR, ELOOP, the queue file unreadable...); PERMFAIL: the path can
 * never work (ENAMETOOLONG, empty). Nothing is left in new/ or tmp/ on failure. */
enum maildir_result maildir_deliver(const char *dir, const char *hostname, const char *header,
                                    int fd, off_t off, char *err, size_t errlen);

/* Write header (may be NULL) and the content of fd from off to EOF into out_fd, CRLF -> LF;
 * *size gets the octets written. 0, or -1 with errno (*reading: the error was on fd). Also
 * used to feed a message to an alias command (pipe.c). */
int maildir_copy_lf(int out_fd, const char *header, int fd, off_t off,
                    unsigned long long *size, bool *reading);

#endif
