/* spf.h - pure SPF record parser (RFC 7208): syntax of the record (4.5, 12 ABNF), the terms
 * that cost a DNS lookup (4.6.4) and the warnings a domain owner wants to hear about.
 * Evaluating SPF against an IP address is not done here (tern check only reports on the
 * record); the caller follows include/redirect through DNS and adds up the counts. */
#ifndef TERN_SPF_H
#define TERN_SPF_H

#include <stdbool.h>
#include <stddef.h>

#define SPF_LOOKUP_LIMIT 10 /* RFC 7208 4.6.4: DNS-querying terms per check_host() */
#define SPF_VOID_LIMIT 2    /* RFC 7208 4.6.4: lookups answering NXDOMAIN or no records */

enum spf_kind {
    SPF_ALL,
    SPF_INCLUDE,
    SPF_A,
    SPF_MX,
    SPF_PTR,
    SPF_IP4,
    SPF_IP6,
    SPF_EXISTS,
    SPF_REDIRECT, /* modifiers */
    SPF_EXP,
    SPF_UNKNOWN_MODIFIER,
};

struct spf_term {
    enum spf_kind kind;
    char qualifier;  /* '+', '-', '~', '?' (mechanisms; '+' when none was written) */
    char *name;      /* the term's name as written ("include", "redirect", "foo") */
    char *value;     /* domain-spec, network or modifier value; "" when none */
    int cidr4, cidr6; /* prefix lengths given, -1 when none */
    bool macro;      /* value contains macros (%{...}): cannot be followed statically */
};

struct spf_record {
    size_t n;
    struct spf_term *terms;
    unsigned lookups;        /* terms of this record that cost a DNS lookup (4.6.4) */
    const struct spf_term *all;      /* the first "all", or NULL */
    const struct spf_term *redirect; /* NULL if none (or ignored because of "all") */
    char warnings[512];      /* "; "-separated advice; "" if none */
};

/* True if txt is an SPF record: "v=spf1" (case-insensitive) followed by a space or the end
 * (RFC 7208 4.5: anything else, e.g. "v=spf10", is not one). */
bool spf_is_record(const char *txt, size_t len);

/* Parse a record; on failure rec holds nothing to free. False with a reason in err ("unknown mechanism 'ip'", "ip4 network
 * 300.1.2.3 is not an address") for what RFC 7208 calls a permerror. */
bool spf_parse(const char *txt, size_t len, struct spf_record *rec, char *err, size_t errlen);
void spf_record_free(struct spf_record *rec);

/* Whether a term of this kind costs a DNS lookup (include, a, mx, ptr, exists, redirect). */
bool spf_kind_counts(enum spf_kind kind);
const char *spf_kind_name(enum spf_kind kind);

#endif
