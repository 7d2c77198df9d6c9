/* dns_wait.h - blocking wrappers around the asynchronous resolver (dns.h) for one-shot
 * command-line tools (`tern send`, `tern check`): start one lookup, run the event loop until
 * it reports, and keep a copy of the answer. The server never uses these: it cannot block. */
#ifndef TERN_DNS_WAIT_H
#define TERN_DNS_WAIT_H

#include <stdbool.h>
#include <stddef.h>

#include "dns.h"

struct event_base;

struct dns_answer {
    enum dns_status status;
    char detail[96];
    size_t count;
    struct dns_mx *mx;     /* MX: copies, hosts owned by the answer */
    struct dns_addr *addr; /* A/AAAA */
    char **txt;            /* TXT: one NUL-terminated string per record */
    size_t *txtlen;
    char **names;          /* PTR */
    bool partial;          /* A/AAAA: one family failed temporarily, the other answered */
};

void dns_wait_mx(struct event_base *base, struct dns_resolver *r, const char *domain,
                 struct dns_answer *out);
void dns_wait_addr(struct event_base *base, struct dns_resolver *r, const char *host, int want,
                   struct dns_answer *out);
void dns_wait_txt(struct event_base *base, struct dns_resolver *r, const char *name,
                  struct dns_answer *out);
void dns_wait_ptr(struct event_base *base, struct dns_resolver *r, const char *addr,
                  struct dns_answer *out);
void dns_answer_free(struct dns_answer *a);

#endif
