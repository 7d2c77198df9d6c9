/* send.h - `tern send`: walk one SMTP session with a server the way a person debugging mail
 * would type it by hand, print the transcript, and explain every reply. See docs/send.md. */
#ifndef TERN_SEND_H
#define TERN_SEND_H

/* argv[0] is the subcommand's name ("send"); options follow. Exit status: 0 the message was
 * accepted (or --quit-after reached with only positive replies), 1 refused (a 5xx, or the
 * domain takes no mail), 2 temporary failure (4xx), connection, TLS or DNS problems, 64
 * usage error. */
int send_main(int argc, char **argv);

#endif
