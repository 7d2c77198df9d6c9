/* user_cmd.h - `tern user add|passwd|del|list`: manage the SMTP AUTH users file (users.h,
 * docs/auth.md). */
#ifndef TERN_USER_CMD_H
#define TERN_USER_CMD_H

/* argv[0] is "user". Exit status: 0 done, 1 failure, 2 usage. */
int user_main(int argc, char **argv);

#endif
