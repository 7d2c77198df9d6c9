/* aliases_load.h - read the alias files of a configuration into cfg->aliases (aliases.h). */
#ifndef TERN_ALIASES_LOAD_H
#define TERN_ALIASES_LOAD_H

#include <stddef.h>

struct config;

/* Read cfg's aliases, virtual_aliases and relocated files and the :include: files they name,
 * replacing cfg->aliases (left NULL when no alias file is configured). Returns 0, or -1 with
 * "file:line: message" in err and cfg->aliases unchanged. */
int aliases_load(struct config *cfg, char *err, size_t errlen);

#endif
