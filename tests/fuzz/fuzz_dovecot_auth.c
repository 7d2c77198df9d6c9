/* fuzz_dovecot_auth.c - libFuzzer target for dovecot_proto.c: whatever arrives on a Dovecot
 * auth socket is parsed line by line without crashing, and what the parser lets through is
 * safe to relay: challenges are base64, user names hold no control characters. Each line is
 * also used as a value tern would send: tab-escaping must keep it on one protocol line and
 * unescape to the same text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dovecot_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_line(const char *line, size_t len)
{
    struct dovecot_line l;
    enum dovecot_kind k = dovecot_parse_line(line, len, &l);
    if (k == DOVECOT_CONT || ((k == DOVECOT_OK || k == DOVECOT_FAIL) && l.data)) {
        if (!l.data || l.data < line || l.data + l.datalen > line + len ||
            !dovecot_is_base64(l.data, l.datalen))
            abort();
    }
    for (const char *u = l.user; *u; u++)
        if ((unsigned char)*u < 0x20 || *u == 0x7f)
            abort();
    for (const char *r = l.reason; *r; r++)
        if ((unsigned char)*r < 0x20)
            abort();
    if (k == DOVECOT_MECH && (l.mech.name[0] == '\0' || strlen(l.mech.name) > 20))
        abort();

    /* as a value tern sends */
    char *value = strndup(line, len); /* stops at a NUL: C strings cannot carry one */
    if (!value)
        return;
    size_t cap = 2 * strlen(value) + 1, back_cap = strlen(value) + 1;
    char *esc = malloc(cap), *back = malloc(back_cap);
    bool ok;
    if (esc && back) {
        size_t n = dovecot_tabescape(esc, cap, value, &ok);
        if (!ok || strpbrk(esc, "\t\n\r") || strlen(esc) != n)
            abort();
        size_t m = dovecot_tabunescape(back, back_cap, esc, n, &ok);
        if (!ok || m != strlen(value) || strcmp(back, value) != 0)
            abort();
        char buf[DOVECOT_LINE_MAX];
        struct dovecot_auth_params p = {.id = 1, .mech = "PLAIN", .remote_ip = value};
        size_t f = dovecot_format_auth(buf, sizeof buf, &p);
        if (f > 0 && (buf[f - 1] != '\n' || memchr(buf, '\n', f - 1)))
            abort();
    }
    free(esc);
    free(back);
    free(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        check_line(p, len);
        p += len + 1;
    }
    return 0;
}
