/* odmr.h - On-Demand Mail Relay (RFC 2645) decisions, pure (config and text in, answer out):
 * which domains an ATRN command asks for, and whether the authenticated user may have them.
 * Domain lists travel as comma-separated, lower-cased text ("a.example,b.example"), the
 * form of the ATRN argument itself (RFC 2645 4.2). */
#ifndef TERN_ODMR_H
#define TERN_ODMR_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define ODMR_LIST_MAX 1024 /* the longest domain list one ATRN may ask for */

enum odmr_result {
    ODMR_OK,            /* out holds the domains */
    ODMR_SYNTAX,        /* not "domain[,domain...]" (or too long) */
    ODMR_NOT_ENTITLED,  /* bad names a domain the user may not ATRN */
    ODMR_NO_DOMAINS,    /* no argument and the user has no odmr_domain at all */
};

/* Resolve the argument of "ATRN [domain[,domain...]]" for user. Without an argument: every
 * odmr_domain the user is listed on (RFC 2645 4.2). Duplicates are dropped. */
enum odmr_result odmr_atrn_domains(const struct config *cfg, const char *user, const char *arg,
                                   size_t arglen, char *out, size_t cap, char *bad,
                                   size_t badcap);

/* Is domain (any case) one of the comma-separated list? */
bool odmr_list_has(const char *list, const char *domain);

#endif
