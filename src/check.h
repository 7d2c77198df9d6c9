/* check.h - `tern check DOMAIN`: a deliverability report for a mail domain (MX, STARTTLS and
 * certificates, SPF, DMARC, DKIM, MTA-STS, TLS-RPT, reverse DNS). See docs/send.md. */
#ifndef TERN_CHECK_H
#define TERN_CHECK_H

/* argv[0] is the subcommand's name ("check"); options and the domain follow. Exit status:
 * 0 no FAIL finding, 1 at least one FAIL, 64 usage error. */
int check_main(int argc, char **argv);

#endif
