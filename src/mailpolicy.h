/* mailpolicy.h - pure parsers for the DNS records (and one file) through which a domain
 * states its mail policy: DMARC (RFC 7489 6.3, 6.4), DKIM public keys (RFC 6376 3.6.1),
 * MTA-STS (RFC 8461 3.1 TXT record, 3.2 policy file, 4.1 MX matching) and SMTP TLS
 * Reporting (RFC 8460 3). Used by `tern check`; no I/O. */
#ifndef TERN_MAILPOLICY_H
#define TERN_MAILPOLICY_H

#include <stdbool.h>
#include <stddef.h>

/* ---- tag=value lists (RFC 6376 3.2, used by DMARC and DKIM) ---- */

struct mp_tag {
    char name[32];
    char *value; /* surrounding whitespace removed */
};

struct mp_taglist {
    size_t n;
    struct mp_tag *v;
};

/* Parse "a=1; b = two ;c=3;". Empty tag-specs are allowed only as a trailing ";".
 * False with a reason in err (missing '=', bad tag name, duplicate tag). On failure the list
 * holds nothing to free. */
bool mp_taglist_parse(const char *s, size_t len, struct mp_taglist *out, char *err,
                      size_t errlen);
void mp_taglist_free(struct mp_taglist *l);
/* Value of a tag (exact, case-sensitive name as RFC 6376 3.2 says), or NULL. */
const char *mp_tag_get(const struct mp_taglist *l, const char *name);

/* ---- DMARC (RFC 7489) ---- */

enum dmarc_policy { DMARC_NONE, DMARC_QUARANTINE, DMARC_REJECT };

struct dmarc_record {
    enum dmarc_policy p;
    bool has_p;          /* false: p= missing (treated as "none" when rua is valid, 6.6.3) */
    enum dmarc_policy sp; /* subdomain policy; = p when not given */
    char adkim, aspf;    /* 'r' or 's' */
    int pct;             /* 0..100 */
    char *rua, *ruf;     /* "" when not given */
    char warnings[512];  /* "; "-separated advice */
};

/* Whether a TXT record is meant as DMARC: starts with "v=DMARC1" then ';' or the end
 * (spaces allowed around '='; RFC 7489 6.3 wants the value exactly "DMARC1"). */
bool dmarc_is_record(const char *txt, size_t len);
/* Parse; false with err for a record a receiver would discard or that has invalid values. */
bool dmarc_parse(const char *txt, size_t len, struct dmarc_record *out, char *err,
                 size_t errlen);
void dmarc_record_free(struct dmarc_record *r);
const char *dmarc_policy_name(enum dmarc_policy p);

/* ---- DKIM key records (RFC 6376 3.6.1, RFC 8463 for ed25519) ---- */

struct dkim_key {
    char k[16];          /* key type: "rsa" (default) or "ed25519" */
    bool revoked;        /* p= is empty */
    bool testing;        /* t=y */
    unsigned char *key;  /* p= decoded from base64 (DER SubjectPublicKeyInfo for rsa) */
    size_t keylen;
    char warnings[256];
};

bool dkim_key_parse(const char *txt, size_t len, struct dkim_key *out, char *err,
                    size_t errlen);
void dkim_key_free(struct dkim_key *k);

/* ---- MTA-STS (RFC 8461) ---- */

/* The _mta-sts TXT record: "v=STSv1; id=20240101T000000;" */
struct mtasts_txt {
    char id[33]; /* 1-32 letters/digits */
};
bool mtasts_txt_is_record(const char *txt, size_t len); /* starts with "v=STSv1" then ';' */
bool mtasts_txt_parse(const char *txt, size_t len, struct mtasts_txt *out, char *err,
                      size_t errlen);

enum mtasts_mode { MTASTS_NONE, MTASTS_TESTING, MTASTS_ENFORCE };

struct mtasts_policy {
    enum mtasts_mode mode;
    unsigned long max_age;
    size_t nmx;
    char **mx; /* patterns: "mx.example.com" or "*.example.com" */
};

/* The policy file at https://mta-sts.DOMAIN/.well-known/mta-sts.txt (RFC 8461 3.2):
 * "key: value" lines ending in CRLF or LF; version, mode and max_age required, mx required
 * unless mode is none. On failure the policy holds nothing to free. */
bool mtasts_policy_parse(const char *text, size_t len, struct mtasts_policy *out, char *err,
                         size_t errlen);
void mtasts_policy_free(struct mtasts_policy *p);
/* RFC 8461 4.1: does MX host name match pattern? A leading "*." matches exactly one label. */
bool mtasts_mx_match(const char *pattern, const char *host);
const char *mtasts_mode_name(enum mtasts_mode m);

/* ---- SMTP TLS Reporting (RFC 8460) ---- */

struct tlsrpt_record {
    char *rua; /* comma-separated mailto: / https: URIs */
};
bool tlsrpt_is_record(const char *txt, size_t len); /* starts with "v=TLSRPTv1" then ';' */
bool tlsrpt_parse(const char *txt, size_t len, struct tlsrpt_record *out, char *err,
                  size_t errlen);
void tlsrpt_record_free(struct tlsrpt_record *r);

#endif
