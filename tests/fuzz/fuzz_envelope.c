/* fuzz_envelope.c - libFuzzer target for envelope_parse: a queue or state file is untrusted
 * input (a disk error or a stray edit must not crash the queue manager). Whatever the parser
 * accepts must format into text it accepts again, identically (a stable round trip). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct envelope env;
    envelope_init(&env);
    size_t used = envelope_parse(&env, (const char *)data, size);
    if (used > size)
        abort();
    if (used > 0) {
        size_t len, len2;
        char *text = envelope_format(&env, &len);
        struct envelope again;
        envelope_init(&again);
        if (envelope_parse(&again, text, len) != len)
            abort();
        char *text2 = envelope_format(&again, &len2);
        if (len != len2 || memcmp(text, text2, len) != 0)
            abort();
        (void)envelope_pending(&again);
        free(text);
        free(text2);
        envelope_free(&again);
    }
    envelope_free(&env);
    return 0;
}
