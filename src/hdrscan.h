/* hdrscan.h - measures a message's header section as its content streams in: the octets up
 * to and including the empty line that ends it, and the number of header fields (RFC 5322
 * 2.2: a field starts on a line that does not begin with a space or tab; folded lines
 * continue it). Pure, so the limits max_header_size and max_header_count are unit-tested. */
#ifndef TERN_HDRSCAN_H
#define TERN_HDRSCAN_H

#include <stdbool.h>
#include <stddef.h>

struct hdrscan {
    size_t size;      /* octets of the header section seen so far */
    size_t fields;    /* header fields started so far */
    size_t line_len;  /* octets of the current line, CR and LF not counted */
    bool done;        /* the empty line was seen: the body follows */
};

void hdrscan_init(struct hdrscan *h);
/* Feed the next content octets (after dot-unstuffing). Octets after the header section are
 * ignored, so the caller may keep feeding the whole message. */
void hdrscan_feed(struct hdrscan *h, const char *buf, size_t len);

#endif
