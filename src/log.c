/* log.c - one line per event to stderr (timestamped, for make run and tests) or syslog (mail facility). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static char log_ident[32] = "tern";
static enum log_target log_target = LOG_TO_STDERR;
static int log_min = LOG_INFO;

void log_init(const char *ident, enum log_target target, int min_priority)
{
    log_target = target;
    log_min = min_priority;
    log_set_ident(ident);
}

void log_set_ident(const char *ident)
{
    snprintf(log_ident, sizeof log_ident, "%s", ident);
    if (log_target == LOG_TO_SYSLOG) {
        closelog();
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
    }
}

void log_msg(int priority, const char *fmt, ...)
{
    if (priority > log_min)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    /* Never let client-supplied text break the one-line-per-event rule. */
    for (char *p = line; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (log_target == LOG_TO_SYSLOG) {
        syslog(priority, "%s", line);
        return;
    }
    struct timespec ts;
    struct tm tm;
    char stamp[32] = "";
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && gmtime_r(&ts.tv_sec, &tm))
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    /* One fprintf per line so concurrent processes do not interleave within a line. */
    fprintf(stderr, "%s.%03ldZ %s[%ld]: %s\n", stamp, ts.tv_nsec / 1000000L, log_ident,
            self_pid(), line);
}
