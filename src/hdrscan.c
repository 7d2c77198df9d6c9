/* hdrscan.c - header section size and field count of a streamed message (RFC 5322 2.2,
 * 2.2.3 folding). See hdrscan.h. A bare LF ends a line too: a message with bare LFs is
 * refused anyway (data_reader.c), and counting it keeps the limits from being dodged. */
#include "hdrscan.h"

#include <string.h>

void hdrscan_init(struct hdrscan *h)
{
    memset(h, 0, sizeof *h);
}

void hdrscan_feed(struct hdrscan *h, const char *buf, size_t len)
{
    for (size_t i = 0; i < len && !h->done; i++) {
        char c = buf[i];
        h->size++;
        if (c == '\n') {
            if (h->line_len == 0)
                h->done = true; /* the empty line: end of the header section */
            h->line_len = 0;
            continue;
        }
        if (c == '\r')
            continue;
        if (h->line_len == 0 && c != ' ' && c != '\t')
            h->fields++;
        h->line_len++;
    }
}
