/* route.h - where a recipient's mail goes: the routing decision, pure (config in, route out).
 *
 * In order: a local domain -> local Maildir delivery; a "transport" override for the domain
 * (exact, or ".parent" for subdomains; the most specific wins) -> that host; a smarthost ->
 * the smarthost; an address literal ([192.0.2.1], [IPv6:2001:db8::1], RFC 5321 4.1.3) ->
 * that address; otherwise the domain's MX records (RFC 5321 5.1, looked up by the outbound
 * client). Recipients with the same route key share connections and transactions. */
#ifndef TERN_ROUTE_H
#define TERN_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

enum route_kind {
    ROUTE_LOCAL, /* one of our local domains */
    ROUTE_MX,    /* MX lookup of the domain (implicit MX if none) */
    ROUTE_HOST,  /* a fixed host (transport, smarthost) or an address literal: no MX lookup */
    ROUTE_ODMR,  /* held for On-Demand Mail Relay (odmr_domain, RFC 2645): delivered only over
                    a customer's ATRN connection (outbound_attach_fd), never by itself */
};

#define ROUTE_NAME_MAX 256

struct route {
    enum route_kind kind;
    char domain[ROUTE_NAME_MAX];  /* the recipient's domain, lower-cased */
    char host[ROUTE_NAME_MAX];    /* ROUTE_MX: the domain; ROUTE_HOST: host name or IP address */
    bool literal;                 /* host is an IP address: connect without DNS */
    unsigned short port;          /* 25 unless configured */
    enum tls_policy tls;          /* never TLS_POLICY_DEFAULT */
    const struct outbound_dest_cfg *dest; /* the transport or smarthost entry, or NULL */
    char key[ROUTE_NAME_MAX + 32]; /* destination key: "mx:DOMAIN", "host:HOST:PORT[:tls=LEVEL]",
                                      "odmr:DOMAIN" (an ATRN session: "atrn:N") */
};

/* Route a recipient domain. Returns 0, or -1 with an explanation beginning with an enhanced
 * status code in err ("5.1.2 ...") when the domain cannot be routed at all. */
int route_lookup(const struct config *cfg, const char *domain, struct route *out, char *err,
                 size_t errlen);

/* The domain part of an address (after the last '@'), or NULL. */
const char *route_addr_domain(const char *addr);

#endif
