/* sendmail.h - `tern sendmail`, also installed as `sendmail`: the /usr/sbin/sendmail interface
 * (Postfix's flags) for programs such as cron and PHP's mail(), submitting to the running
 * server, or to its maildrop while it is down. See docs/queue.md. */
#ifndef TERN_SENDMAIL_H
#define TERN_SENDMAIL_H

/* argv[0] is "sendmail". Exit status: 0 queued (or left in the maildrop), else a sysexits.h code (64 usage, 75 server
 * unreachable or temporary refusal, 67 recipient refused, ...) with the reason on stderr. */
int sendmail_main(int argc, char **argv);

#endif
