/* fuzz_sendmail_msg.c - libFuzzer target for sm_prepare and sm_addresses: whatever a program
 * pipes into `tern sendmail` is untrusted. Checks the promises of sendmail_msg.h: the output
 * has CRLF line ends only, no line over 998 octets, and an empty line after the headers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sendmail_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ignore(const char *addr, void *arg)
{
    (void)arg;
    if (!addr[0])
        abort(); /* empty addresses are never reported */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct sm_opts o = {.extract = true, .from = "f@x.test", .full_name = "N \"q\"",
                        .date = "d", .message_id = "<m@x>"};
    struct sm_msg m;
    size_t end = sm_dot_end(in, size);
    if (end > size)
        abort();
    sm_prepare(in, end, &o, &m);
    size_t line = 0;
    for (size_t i = 0; i < m.len; i++) {
        if (m.data[i] == '\n') {
            if (i == 0 || m.data[i - 1] != '\r')
                abort();
            line = 0;
        } else if (++line > 999) {
            abort();
        }
    }
    if (m.len < 2 || memcmp(m.data + m.len - 2, "\r\n", 2) != 0 || !memmem(m.data, m.len, "\r\n\r\n", 4))
        abort();
    for (size_t i = 0; i < m.nrcpts; i++)
        if (!m.rcpts[i][0])
            abort();
    sm_msg_free(&m);
    sm_addresses(in, size, ignore, NULL);
    return 0;
}
