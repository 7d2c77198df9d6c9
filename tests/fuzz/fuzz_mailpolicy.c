/* fuzz_mailpolicy.c - libFuzzer target for the mail policy record parsers (mailpolicy.c):
 * DMARC (RFC 7489 6.3), DKIM keys (RFC 6376 3.6.1), the MTA-STS TXT record and policy file
 * (RFC 8461 3.1, 3.2, 4.1) and TLS-RPT (RFC 8460 3), all of them text from DNS or HTTPS
 * that anyone controls. Byte 0 picks the parser, the rest is the record; for the MX matcher
 * it is "pattern\nhost". Parsers must accept or fail with a reason, and what they return
 * must be within bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailpolicy.h"
#include "fuzz.h"

static void taglist(const char *s, size_t len, char *err, size_t errlen)
{
    struct mp_taglist l;
    if (!mp_taglist_parse(s, len, &l, err, errlen)) {
        REQUIRE(err[0]);
        return;
    }
    for (size_t i = 0; i < l.n; i++) {
        REQUIRE(l.v[i].name[0] && l.v[i].value);
        REQUIRE(mp_tag_get(&l, l.v[i].name) == l.v[i].value); /* names are unique */
    }
    mp_taglist_free(&l);
}

static void dmarc(const char *s, size_t len, char *err, size_t errlen)
{
    (void)dmarc_is_record(s, len);
    struct dmarc_record r;
    if (!dmarc_parse(s, len, &r, err, errlen)) {
        REQUIRE(err[0]);
        return;
    }
    REQUIRE(r.pct >= 0 && r.pct <= 100);
    REQUIRE((r.adkim == 'r' || r.adkim == 's') && (r.aspf == 'r' || r.aspf == 's'));
    REQUIRE(r.rua && r.ruf && strlen(r.warnings) < sizeof r.warnings);
    (void)dmarc_policy_name(r.p);
    (void)dmarc_policy_name(r.sp);
    dmarc_record_free(&r);
}

static void dkim(const char *s, size_t len, char *err, size_t errlen)
{
    struct dkim_key k;
    if (!dkim_key_parse(s, len, &k, err, errlen)) {
        REQUIRE(err[0]);
        return;
    }
    REQUIRE(strlen(k.k) < sizeof k.k && strlen(k.warnings) < sizeof k.warnings);
    REQUIRE(k.revoked == (k.keylen == 0));
    for (size_t i = 0; i < k.keylen; i++) /* ASan checks the length is right */
        (void)*(volatile unsigned char *)&k.key[i];
    dkim_key_free(&k);
}

static void mtasts(const char *s, size_t len, char *err, size_t errlen)
{
    (void)mtasts_txt_is_record(s, len);
    struct mtasts_txt t;
    if (mtasts_txt_parse(s, len, &t, err, errlen)) {
        size_t n = strlen(t.id);
        REQUIRE(n >= 1 && n <= 32);
    } else {
        REQUIRE(err[0]);
    }
    struct mtasts_policy p;
    err[0] = '\0';
    if (mtasts_policy_parse(s, len, &p, err, errlen)) {
        (void)mtasts_mode_name(p.mode);
        REQUIRE(p.mode == MTASTS_NONE || p.nmx > 0);
        for (size_t i = 0; i < p.nmx; i++) {
            REQUIRE(p.mx[i]);
            (void)mtasts_mx_match(p.mx[i], "mx.example.com");
        }
        mtasts_policy_free(&p);
    } else {
        REQUIRE(err[0]);
    }
}

static void tlsrpt(const char *s, size_t len, char *err, size_t errlen)
{
    (void)tlsrpt_is_record(s, len);
    struct tlsrpt_record r;
    if (tlsrpt_parse(s, len, &r, err, errlen)) {
        REQUIRE(r.rua);
        tlsrpt_record_free(&r);
    } else {
        REQUIRE(err[0]);
    }
}

static void mx_match(const char *s, size_t len)
{
    const char *nl = memchr(s, '\n', len);
    if (!nl || memchr(s, '\0', len))
        return;
    char *pat = strndup(s, (size_t)(nl - s)), *host = strndup(nl + 1, len - (size_t)(nl - s) - 1);
    REQUIRE(pat && host);
    bool m = mtasts_mx_match(pat, host);
    if (m && pat[0] != '*')
        REQUIRE(strcasecmp(pat, host) == 0 ||
                (strlen(pat) == strlen(host) + 1 && pat[strlen(host)] == '.') ||
                (strlen(host) == strlen(pat) + 1 && host[strlen(pat)] == '.'));
    free(pat);
    free(host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len = size - 1;
    char *s = malloc(len ? len : 1); /* exact size: ASan sees overreads */
    REQUIRE(s);
    memcpy(s, data + 1, len);
    char err[256];
    err[0] = '\0';
    switch (data[0] % 6) {
    case 0: taglist(s, len, err, sizeof err); break;
    case 1: dmarc(s, len, err, sizeof err); break;
    case 2: dkim(s, len, err, sizeof err); break;
    case 3: mtasts(s, len, err, sizeof err); break;
    case 4: tlsrpt(s, len, err, sizeof err); break;
    default: mx_match(s, len); break;
    }
    free(s);
    return 0;
}
