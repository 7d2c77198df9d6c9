/* dns.h - asynchronous DNS lookups (MX, A/AAAA, TXT, PTR) on a libevent loop, via c-ares.
 *
 * One struct dns_resolver per event loop. Every lookup is non-blocking and reports once,
 * through a callback run from the event loop (never from inside the call that started the
 * lookup), with a result class that tells the caller what to do next:
 *
 *   DNS_OK         records found (for MX: sorted by preference, RFC 5321 5.1)
 *   DNS_NXDOMAIN   the name does not exist: permanent
 *   DNS_NODATA     the name exists but has no records of that type. For MX the caller
 *                  applies the implicit MX rule (RFC 5321 5.1): use the domain's own A/AAAA
 *   DNS_NULL_MX    the domain publishes a null MX (RFC 7505): it accepts no mail, permanent
 *   DNS_TEMPFAIL   SERVFAIL, REFUSED, timeout, unreachable server, malformed answer: retry later
 *   DNS_BADNAME    the name cannot be a DNS name (empty label, label > 63, name > 253): permanent
 *
 * Lookups use exact names (no search list, no /etc/hosts): a mail domain is always fully
 * qualified, and a hosts-file answer would hide what the rest of the Internet sees. */
#ifndef TERN_DNS_H
#define TERN_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct dns_resolver;
struct dns_query;

#define DNS_NAME_MAX 253 /* longest name in text form, without the trailing dot (RFC 1035 2.3.4) */

enum dns_status {
    DNS_OK = 0,
    DNS_NXDOMAIN,
    DNS_NODATA,
    DNS_NULL_MX,
    DNS_TEMPFAIL,
    DNS_BADNAME,
};

struct dns_mx {
    unsigned pref;
    char *host;        /* exchange, no trailing dot; "" for the root (a null MX) */
    uint32_t tiebreak; /* used by dns_mx_sort: random order among equal preferences */
};

struct dns_addr {
    int family;                 /* AF_INET or AF_INET6 */
    struct sockaddr_storage sa; /* port 0: set it before connect() */
    socklen_t salen;
    char text[46];              /* "127.0.0.1", "::1" (INET6_ADDRSTRLEN) */
};

struct dns_txt {
    char *data; /* the record's strings concatenated (RFC 7208 3.3), NUL-terminated */
    size_t len; /* bytes in data; a TXT string may itself hold a NUL */
};

/* What a callback receives. Everything it points to is valid only during the callback:
 * copy what you keep. Only the array for the lookup's kind is set, and only with DNS_OK
 * (the MX array also with DNS_NULL_MX: the null record itself). */
struct dns_result {
    enum dns_status status;
    const char *name;  /* the name that was looked up (for PTR: the address) */
    const char *detail; /* why, for logs: "SERVFAIL", "timeout", ... ("" on success) */
    size_t count;
    const struct dns_mx *mx;     /* dns_lookup_mx */
    const struct dns_addr *addr; /* dns_lookup_addr: IPv6 first, then IPv4 */
    const struct dns_txt *txt;   /* dns_lookup_txt, one per record */
    char *const *names;          /* dns_lookup_ptr: host names, no trailing dot */
    bool partial; /* addr only: one family failed temporarily, the other answered */
};

typedef void (*dns_cb)(const struct dns_result *res, void *arg);

struct dns_options {
    /* NULL: servers from /etc/resolv.conf. Else one server "IP" or "IP:port",
     * "[IPv6]:port", e.g. "127.0.0.53:5353" (tests point at their own server this way). */
    const char *nameserver;
    const char *resolv_conf; /* without nameserver: this file instead of /etc/resolv.conf */
    int timeout_ms; /* first try's timeout per server; 0: resolv.conf / c-ares default */
    int tries;      /* attempts per server; 0: resolv.conf / c-ares default */
};

/* Create a resolver on base. NULL on error, with a message in err. */
struct dns_resolver *dns_resolver_new(struct event_base *base, const char *nameserver,
                                      char *err, size_t errlen);
struct dns_resolver *dns_resolver_new_opts(struct event_base *base,
                                           const struct dns_options *opts, char *err,
                                           size_t errlen);
/* Cancel every lookup (their callbacks are not run) and free the resolver. May be called
 * from inside a callback: the resolver then goes away when that callback returns. */
void dns_resolver_free(struct dns_resolver *r);

/* Lookups. Each returns a handle valid until its callback has run or it is cancelled; NULL
 * only if the resolver is being freed. The callback always runs later, from the loop. */
enum { DNS_WANT_V4 = 1, DNS_WANT_V6 = 2, DNS_WANT_ANY = 3 };

struct dns_query *dns_lookup_mx(struct dns_resolver *r, const char *domain, dns_cb cb, void *arg);
struct dns_query *dns_lookup_addr(struct dns_resolver *r, const char *host, int want,
                                  dns_cb cb, void *arg);
struct dns_query *dns_lookup_txt(struct dns_resolver *r, const char *name, dns_cb cb, void *arg);
/* addr: an IPv4 or IPv6 address in text form. DNS_BADNAME if it is not one. */
struct dns_query *dns_lookup_ptr(struct dns_resolver *r, const char *addr, dns_cb cb, void *arg);
/* The callback will not run; the handle is invalid afterwards. */
void dns_cancel(struct dns_query *q);

/* ---- pure helpers (no network) ---- */

/* Class of a c-ares status code (ARES_SUCCESS, ARES_ENOTFOUND...). */
enum dns_status dns_status_from_ares(int ares_status);
/* "ok", "nxdomain", "nodata", "null-mx", "tempfail", "badname". */
const char *dns_status_str(enum dns_status st);
/* True for the classes that will not change by retrying. */
bool dns_status_permanent(enum dns_status st);

/* Sort by ascending preference; equal preferences in random order (RFC 5321 5.1).
 * rnd returns a random 32-bit value; NULL uses arc4random. */
void dns_mx_sort(struct dns_mx *mx, size_t n, uint32_t (*rnd)(void *), void *rnd_arg);
/* RFC 7505: true if the set is a null MX: every record's exchange is the root ("" or ".").
 * (A null MX is a single record; dns_lookup_mx treats a set that mixes the root with real
 * hosts as the real hosts: the root can never be delivered to, the others may be.) */
bool dns_mx_is_null(const struct dns_mx *mx, size_t n);
/* Move root exchanges to the end of a mixed set, keeping the others' order; returns how many
 * are not root. Frees nothing (the caller still owns all n hosts). */
size_t dns_mx_drop_null(struct dns_mx *mx, size_t n);

/* Whether name can be sent as a query name: 1..253 octets, labels of 1..63, one optional
 * trailing dot, printable ASCII other than space and backslash. A UTF-8 name must be
 * converted to A-labels first (RFC 5890). */
bool dns_name_valid(const char *name);

/* The reverse-lookup name of an address in text form: "4.3.2.1.in-addr.arpa" or the
 * 32-nibble ip6.arpa name (RFC 1035 3.5, RFC 3596 2.5). False if addr is not an address
 * or out is too small (128 bytes is always enough). */
bool dns_reverse_name(const char *addr, char *out, size_t cap);

/* Parse "IP", "IP:port", "[IPv6]" or "[IPv6]:port" into family, address bytes (4 or 16)
 * and port (default 53). False with a message in err when malformed. */
bool dns_parse_nameserver(const char *spec, int *family, unsigned char addr[16],
                          unsigned *port, char *err, size_t errlen);

/* Parse one raw DNS answer (the wire format c-ares hands over) as a lookup of this kind
 * would, and report it through cb before returning: no resolver, no network. For the fuzz
 * target (tests/fuzz/fuzz_dns_answer.c). ptr_addr: for DNS_KIND_PTR, the address that was
 * asked about ("192.0.2.1"); ignored otherwise (may be NULL). */
enum dns_kind { DNS_KIND_MX, DNS_KIND_A, DNS_KIND_AAAA, DNS_KIND_TXT, DNS_KIND_PTR };
void dns_parse_answer(enum dns_kind kind, const unsigned char *abuf, int alen, const char *ptr_addr,
                      dns_cb cb, void *arg);

#endif
