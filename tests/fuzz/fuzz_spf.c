/* fuzz_spf.c - libFuzzer target for the SPF record parser (spf.c, RFC 7208 4.5, 12): TXT
 * records come from any DNS server `tern check` asks. Arbitrary text must parse or fail
 * with a reason; a parsed record's terms, counts and warnings must be consistent. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spf.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *txt = malloc(size ? size : 1); /* exact size: ASan sees overreads */
    REQUIRE(txt);
    memcpy(txt, data, size);
    (void)spf_is_record(txt, size);
    struct spf_record rec;
    char err[256];
    err[0] = '\0';
    if (spf_parse(txt, size, &rec, err, sizeof err)) {
        unsigned lookups = 0;
        for (size_t i = 0; i < rec.n; i++) {
            const struct spf_term *t = &rec.terms[i];
            REQUIRE(t->name && t->value);
            REQUIRE(strchr("+-~?", t->qualifier));
            REQUIRE(t->cidr4 >= -1 && t->cidr4 <= 32 && t->cidr6 >= -1 && t->cidr6 <= 128);
            (void)spf_kind_name(t->kind);
            if (spf_kind_counts(t->kind) && t->kind != SPF_REDIRECT)
                lookups++;
        }
        REQUIRE(rec.lookups >= lookups && rec.lookups <= lookups + 1);
        REQUIRE(!rec.all || (rec.all >= rec.terms && rec.all < rec.terms + rec.n));
        REQUIRE(!rec.redirect || (rec.redirect >= rec.terms && rec.redirect < rec.terms + rec.n));
        REQUIRE(strlen(rec.warnings) < sizeof rec.warnings);
        spf_record_free(&rec);
    } else {
        REQUIRE(err[0] != '\0');
    }
    free(txt);
    return 0;
}
