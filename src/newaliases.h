/* newaliases.h - `tern newaliases`: validate the alias files, make the server reload them. */
#ifndef TERN_NEWALIASES_H
#define TERN_NEWALIASES_H

/* argv[0] is "newaliases". Returns 0 (files valid; server signalled or not running), 1 on
 * an error in the files or when signalling failed, 2 on a usage error. */
int newaliases_main(int argc, char **argv);

#endif
