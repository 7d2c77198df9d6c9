/* log.h - one line per event, to stderr (with a timestamp) or syslog.
 * Lines are "key=value" pairs after a short event word, e.g.
 *   tern[1234]: queued qid=7C3F9A2B1D0E from=<a@b> size=1234 nrcpt=2 client=[127.0.0.1]
 * so they can be grepped by queue ID. */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <syslog.h>

enum log_target { LOG_TO_STDERR, LOG_TO_SYSLOG };

/* ident: process role shown in each line ("tern", "tern/smtp", "tern/qmgr"). */
void log_init(const char *ident, enum log_target target, int min_priority);
void log_set_ident(const char *ident);
void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
