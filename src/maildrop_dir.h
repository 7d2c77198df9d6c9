/* maildrop_dir.h - the maildrop directory <spool>/maildrop on disk: creating it with its
 * permissions, writing a file into it durably (`tern sendmail` while the server is down),
 * and listing it (the pickup, `tern queue`). The file format is maildrop.h's. */
#ifndef TERN_MAILDROP_DIR_H
#define TERN_MAILDROP_DIR_H

#include <stddef.h>
#include <sys/stat.h>

#include "maildrop.h"

#define MAILDROP_DIR "maildrop"
#define MAILDROP_CORRUPT "corrupt"   /* maildrop/corrupt/: files set aside, mode 0700 */
#define MAILDROP_TMP_PREFIX ".tmp."  /* a file being written; never picked up */

/* As the spool's owner: make the spool traversable (0711), create maildrop/ (mode 1733:
 * anyone may create a file, nobody else may list, read by name only, or remove it) and
 * maildrop/corrupt/ (0700). 0, or -1 with errno. */
int maildrop_init(const char *spool_dir);
/* Write m (its data included) as a new file: a temporary name, fsync, rename to the final
 * name, then the directory made durable. 0 with the final name in name, or -1 with err. */
int maildrop_write(const char *spool_dir, const struct maildrop_msg *m, char *name,
                   size_t namecap, char *err, size_t errlen);
/* Call fn for each finished file of maildrop/ (names not starting with '.'), in name order,
 * that is arrival order. Returns the count, or -1 with errno if the directory cannot be read. */
long maildrop_scan(const char *spool_dir, void (*fn)(const char *name, void *arg), void *arg);

#endif
