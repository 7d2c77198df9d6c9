/* fuzz_maildrop.c - libFuzzer target for maildrop_parse: a maildrop file is written by any
 * local user. Checks maildrop.h's promises: an accepted file has a non-empty recipient list,
 * every address fit for an SMTP command, content that is exactly the rest of the file, and
 * formatting it again gives back the same header. */
#include <string.h>

#include "fuzz.h"
#include "maildrop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct maildrop_msg m;
    char err[256];
    if (maildrop_parse(in, size, &m, err, sizeof err) < 0) {
        REQUIRE(err[0] != '\0' && m.sender == NULL && m.nrcpts == 0);
        return 0;
    }
    REQUIRE(m.nrcpts > 0 && maildrop_addr_ok(m.sender));
    for (size_t i = 0; i < m.nrcpts; i++)
        REQUIRE(m.rcpts[i][0] && maildrop_addr_ok(m.rcpts[i]));
    REQUIRE(m.data >= in && m.data + m.len == in + size);
    size_t hlen;
    char *head = maildrop_format_head(&m, &hlen);
    REQUIRE(head != NULL);
    /* Same fields; their order in the input may differ, so compare by re-parsing. */
    struct maildrop_msg again;
    char *f = malloc(hlen + m.len + 1);
    REQUIRE(f != NULL);
    memcpy(f, head, hlen);
    memcpy(f + hlen, m.data, m.len);
    REQUIRE(maildrop_parse(f, hlen + m.len, &again, err, sizeof err) == 0);
    REQUIRE(strcmp(again.sender, m.sender) == 0 && again.nrcpts == m.nrcpts &&
            again.len == m.len && again.eightbit == m.eightbit);
    for (size_t i = 0; i < m.nrcpts; i++)
        REQUIRE(strcmp(again.rcpts[i], m.rcpts[i]) == 0);
    maildrop_msg_free(&again);
    free(f);
    free(head);
    maildrop_msg_free(&m);
    return 0;
}
