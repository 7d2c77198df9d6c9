/* dns.c - asynchronous DNS lookups for tern: c-ares driven by a libevent event_base.
 *
 * c-ares tells us which sockets it wants watched (ARES_OPT_SOCK_STATE_CB); we keep one
 * libevent event per socket and one timer armed from ares_timeout(), and hand readiness
 * back with ares_process_fd(). Nothing blocks.
 *
 * Lookups: MX (RFC 5321 5.1 ordering, RFC 7505 null MX), A/AAAA (RFC 1035, RFC 3596),
 * TXT (RFC 1035 3.3.14; strings joined per record as RFC 7208 3.3 requires for SPF),
 * PTR (RFC 1035 3.5, RFC 3596 2.5). Answers are classified into the classes of dns.h.
 *
 * Lifetime rules, because callbacks re-enter us:
 * - A user callback never runs inside the dns_lookup_* call that started the lookup
 *   (c-ares reports some errors synchronously); such results are delivered from a
 *   zero-delay event.
 * - The resolver counts how deep we are inside c-ares or a user callback ("busy");
 *   dns_resolver_free() while busy only marks it, and the outermost frame frees it.
 * - A cancelled query stays allocated until c-ares is done with it, then is freed
 *   silently. */
#include "dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

enum qkind { Q_MX, Q_ADDR, Q_TXT, Q_PTR };

struct sock_watch {
    int fd;
    short what;
    struct event *ev;
    struct sock_watch *next;
};

struct dns_resolver {
    struct event_base *base;
    ares_channel ch;
    struct event *timer;
    struct sock_watch *socks;
    struct dns_query *queries; /* every live query, for dns_resolver_free */
    int busy;
    bool dying;      /* free requested while busy */
    bool destroying; /* inside ares_destroy: answers are not delivered */
};

/* One c-ares query; an address lookup has two (A and AAAA). */
struct subq {
    struct dns_query *q;
    int type;       /* ns_t_a, ns_t_aaaa, ... */
    int ares_status;
    enum dns_status status;
    struct dns_addr *addr; /* address lookups: this family's answers */
    size_t naddr;
};

struct dns_query {
    struct dns_resolver *r;
    struct dns_query *prev, *next;
    enum qkind kind;
    dns_cb cb;
    void *arg;
    char *name;
    int outstanding;  /* c-ares queries not yet answered */
    bool submitting;  /* inside dns_lookup_*: do not call back yet */
    bool cancelled;
    bool delivering;
    struct event *deliver_ev;
    int nsub;
    struct subq sub[2];
    int ptr_family;
    unsigned char ptr_addr[16];
    /* the result */
    enum dns_status status;
    const char *detail;
    size_t count;
    struct dns_mx *mx;
    struct dns_addr *addr;
    struct dns_txt *txt;
    char **names;
    bool partial;
};

static void resolver_destroy(struct dns_resolver *r);

/* ---------------------------------------------------------------- pure helpers */

enum dns_status dns_status_from_ares(int st)
{
    switch (st) {
    case ARES_SUCCESS:
        return DNS_OK;
    case ARES_ENODATA:
        return DNS_NODATA;
    case ARES_ENOTFOUND:
        return DNS_NXDOMAIN;
    case ARES_EBADNAME:
        return DNS_BADNAME;
    default:
        /* ESERVFAIL, EREFUSED, ETIMEOUT, ECONNREFUSED, EBADRESP, EFORMERR, ENOTIMP, ENOMEM,
         * ECANCELLED, EDESTRUCTION...: nothing was learnt about the name, so retry later. */
        return DNS_TEMPFAIL;
    }
}

const char *dns_status_str(enum dns_status st)
{
    switch (st) {
    case DNS_OK:
        return "ok";
    case DNS_NXDOMAIN:
        return "nxdomain";
    case DNS_NODATA:
        return "nodata";
    case DNS_NULL_MX:
        return "null-mx";
    case DNS_TEMPFAIL:
        return "tempfail";
    case DNS_BADNAME:
        return "badname";
    }
    return "unknown";
}

bool dns_status_permanent(enum dns_status st)
{
    return st == DNS_NXDOMAIN || st == DNS_NODATA || st == DNS_NULL_MX || st == DNS_BADNAME;
}

static uint32_t default_rnd(void *arg)
{
    (void)arg;
    return arc4random();
}

static int mx_cmp(const void *a, const void *b)
{
    const struct dns_mx *x = a, *y = b;
    if (x->pref != y->pref)
        return x->pref < y->pref ? -1 : 1;
    if (x->tiebreak != y->tiebreak)
        return x->tiebreak < y->tiebreak ? -1 : 1;
    return 0;
}

void dns_mx_sort(struct dns_mx *mx, size_t n, uint32_t (*rnd)(void *), void *rnd_arg)
{
    if (!rnd)
        rnd = default_rnd;
    for (size_t i = 0; i < n; i++)
        mx[i].tiebreak = rnd(rnd_arg);
    if (n > 1)
        qsort(mx, n, sizeof(*mx), mx_cmp);
}

static bool is_root(const char *host)
{
    return host[0] == '\0' || (host[0] == '.' && host[1] == '\0');
}

bool dns_mx_is_null(const struct dns_mx *mx, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_root(mx[i].host))
            return false;
    return true;
}

size_t dns_mx_drop_null(struct dns_mx *mx, size_t n)
{
    /* Stable partition: with n bounded by one DNS message this O(n^2) worst case is small,
     * and mixed sets are a misconfiguration that is rare in practice. */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_root(mx[i].host))
            continue;
        if (i != kept) {
            struct dns_mx tmp = mx[i];
            memmove(&mx[kept + 1], &mx[kept], (i - kept) * sizeof(*mx));
            mx[kept] = tmp;
        }
        kept++;
    }
    return kept;
}

bool dns_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > DNS_NAME_MAX)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        /* c-ares reads '\\' as an escape; bytes >= 0x80 would be a U-label sent raw. */
        if (c <= 0x20 || c >= 0x7f || c == '\\')
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0;
}

/* Text address to family + bytes; an IPv4-mapped IPv6 address becomes IPv4, because
 * that is the address whose PTR the world publishes. */
static bool parse_addr(const char *text, int *family, unsigned char bytes[16])
{
    if (inet_pton(AF_INET, text, bytes) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text, bytes) != 1)
        return false;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(bytes, mapped, sizeof(mapped)) == 0) {
        memmove(bytes, bytes + 12, 4);
        *family = AF_INET;
    } else {
        *family = AF_INET6;
    }
    return true;
}

static bool reverse_of(int family, const unsigned char *b, char *out, size_t cap)
{
    int n;
    if (family == AF_INET) {
        n = snprintf(out, cap, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
    } else {
        static const char hex[] = "0123456789abcdef";
        char buf[64 + sizeof("ip6.arpa")];
        size_t k = 0;
        for (int i = 15; i >= 0; i--) {
            buf[k++] = hex[b[i] & 0xf];
            buf[k++] = '.';
            buf[k++] = hex[b[i] >> 4];
            buf[k++] = '.';
        }
        buf[k] = '\0';
        n = snprintf(out, cap, "%sip6.arpa", buf);
    }
    return n > 0 && (size_t)n < cap;
}

bool dns_reverse_name(const char *addr, char *out, size_t cap)
{
    int family;
    unsigned char b[16];
    if (!parse_addr(addr, &family, b))
        return false;
    return reverse_of(family, b, out, cap);
}

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen,
                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

bool dns_parse_nameserver(const char *spec, int *family, unsigned char addr[16],
                          unsigned *port, char *err, size_t errlen)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *portstr = NULL;
    size_t hlen;

    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (!end) {
            set_err(err, errlen, "nameserver \"%s\": missing ']'", spec);
            return false;
        }
        hlen = (size_t)(end - spec - 1);
        if (end[1] == ':')
            portstr = end + 2;
        else if (end[1] != '\0') {
            set_err(err, errlen, "nameserver \"%s\": junk after ']'", spec);
            return false;
        }
        spec++;
    } else {
        const char *colon = strchr(spec, ':');
        if (colon && !strchr(colon + 1, ':')) { /* one colon: IPv4:port */
            hlen = (size_t)(colon - spec);
            portstr = colon + 1;
        } else { /* none, or several: a bare IPv6 address */
            hlen = strlen(spec);
        }
    }
    if (hlen == 0 || hlen >= sizeof(host)) {
        set_err(err, errlen, "nameserver \"%s\": bad address", spec);
        return false;
    }
    memcpy(host, spec, hlen);
    host[hlen] = '\0';
    if (inet_pton(AF_INET, host, addr) == 1)
        *family = AF_INET;
    else if (inet_pton(AF_INET6, host, addr) == 1)
        *family = AF_INET6;
    else {
        set_err(err, errlen, "nameserver \"%s\": not an IP address", host);
        return false;
    }

    *port = 53;
    if (portstr) {
        unsigned long v = 0;
        const char *p = portstr;
        if (*p == '\0')
            goto bad_port;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                goto bad_port;
            v = v * 10 + (unsigned long)(*p - '0');
            if (v > 65535)
                goto bad_port;
        }
        if (v == 0)
            goto bad_port;
        *port = (unsigned)v;
    }
    return true;
bad_port:
    set_err(err, errlen, "nameserver port \"%s\": not 1-65535", portstr);
    return false;
}

/* ---------------------------------------------------------------- libevent glue */

static void process(struct dns_resolver *r, int rfd, int wfd);

static void rearm_timer(struct dns_resolver *r)
{
    struct timeval tv, *tvp = ares_timeout(r->ch, NULL, &tv);
    if (tvp) {
        if (evtimer_add(r->timer, tvp) != 0)
            log_err("dns: cannot arm the resolver timer");
    } else {
        evtimer_del(r->timer);
    }
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
    process(arg, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
            (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    process(arg, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

/* Called by c-ares whenever it opens, closes or changes interest in a socket. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns_resolver *r = data;
    struct sock_watch **pp = &r->socks, *w;
    while ((w = *pp) && w->fd != fd)
        pp = &w->next;

    short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    if (what == 0) {
        if (w) {
            *pp = w->next;
            if (w->ev)
                event_free(w->ev); /* safe even from inside this event's own callback */
            free(w);
        }
        return;
    }
    if (w && w->what == what)
        return;
    if (!w) {
        w = xcalloc(1, sizeof(*w));
        w->fd = fd;
        w->next = r->socks;
        r->socks = w;
    } else if (w->ev) {
        event_free(w->ev);
    }
    w->what = what;
    w->ev = event_new(r->base, fd, (short)(what | EV_PERSIST), on_sock, r);
    if (!w->ev || event_add(w->ev, NULL) != 0)
        /* Only on resource exhaustion; the query then ends by its timeout. */
        log_err("dns: cannot watch resolver socket %d", fd);
}

static void process(struct dns_resolver *r, int rfd, int wfd)
{
    r->busy++;
    ares_process_fd(r->ch, rfd, wfd);
    r->busy--;
    if (r->dying && r->busy == 0)
        resolver_destroy(r);
    else
        rearm_timer(r);
}

/* ---------------------------------------------------------------- resolver */

static int init_channel(struct dns_resolver *r, const struct dns_options *opts, int flags)
{
    struct ares_options o;
    memset(&o, 0, sizeof(o));
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS | ARES_OPT_LOOKUPS;
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = r;
    /* NOSEARCH and NOALIASES: mail domains are absolute names. No EDNS0: c-ares 1.18 turns
     * it off for the whole channel at the first SERVFAIL anyway (and re-sends), and a
     * truncated answer is retried over TCP. "b": DNS only, never /etc/hosts. */
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | flags;
    o.lookups = (char *)"b";
    if (opts->timeout_ms > 0) {
        o.timeout = opts->timeout_ms;
        mask |= ARES_OPT_TIMEOUTMS;
    }
    if (opts->tries > 0) {
        o.tries = opts->tries;
        mask |= ARES_OPT_TRIES;
    }
    if (opts->resolv_conf && !opts->nameserver) {
        o.resolvconf_path = (char *)opts->resolv_conf;
        mask |= ARES_OPT_RESOLVCONF;
    }
    int rc = ares_init_options(&r->ch, &o, mask);
    if (rc != ARES_SUCCESS)
        r->ch = NULL;
    return rc;
}

static int count_servers(ares_channel ch)
{
    struct ares_addr_port_node *list = NULL;
    if (ares_get_servers_ports(ch, &list) != ARES_SUCCESS)
        return -1;
    int n = 0;
    for (struct ares_addr_port_node *s = list; s; s = s->next)
        n++;
    ares_free_data(list);
    return n;
}

struct dns_resolver *dns_resolver_new(struct event_base *base, const char *nameserver,
                                      char *err, size_t errlen)
{
    struct dns_options o = {.nameserver = nameserver};
    return dns_resolver_new_opts(base, &o, err, errlen);
}

struct dns_resolver *dns_resolver_new_opts(struct event_base *base,
                                           const struct dns_options *opts, char *err,
                                           size_t errlen)
{
    struct ares_addr_port_node server;
    int rc;

    memset(&server, 0, sizeof(server));
    if (opts->nameserver) {
        unsigned char a[16];
        unsigned port;
        if (!dns_parse_nameserver(opts->nameserver, &server.family, a, &port, err, errlen))
            return NULL;
        if (server.family == AF_INET)
            memcpy(&server.addr.addr4, a, 4);
        else
            memcpy(&server.addr.addr6, a, 16);
        server.udp_port = server.tcp_port = (int)port;
    }

    /* c-ares reference-counts this; each resolver holds one reference until freed. */
    if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
        set_err(err, errlen, "c-ares init: %s", ares_strerror(rc));
        return NULL;
    }

    struct dns_resolver *r = xcalloc(1, sizeof(*r));
    r->base = base;
    r->timer = evtimer_new(base, on_timer, r);
    if (!r->timer) {
        set_err(err, errlen, "%s", "cannot create the resolver timer");
        goto fail;
    }

    /* With one server, let SERVFAIL and REFUSED through to us (NOCHECKRESP): c-ares 1.18
     * would otherwise ask the same server again and then report them as
     * ARES_ECONNREFUSED, and the logs (and "tern check") should say which it was. With
     * several servers, keep c-ares' default of moving on to the next one. */
    rc = init_channel(r, opts, opts->nameserver ? ARES_FLAG_NOCHECKRESP : 0);
    if (rc != ARES_SUCCESS) {
        set_err(err, errlen, "c-ares: %s", ares_strerror(rc));
        goto fail;
    }
    if (opts->nameserver) {
        if ((rc = ares_set_servers_ports(r->ch, &server)) != ARES_SUCCESS) {
            set_err(err, errlen, "c-ares: setting the nameserver: %s", ares_strerror(rc));
            goto fail;
        }
    } else if (count_servers(r->ch) == 1) {
        ares_destroy(r->ch);
        r->ch = NULL;
        if ((rc = init_channel(r, opts, ARES_FLAG_NOCHECKRESP)) != ARES_SUCCESS) {
            set_err(err, errlen, "c-ares: %s", ares_strerror(rc));
            goto fail;
        }
    }
    return r;

fail:
    if (r->ch)
        ares_destroy(r->ch);
    if (r->timer)
        event_free(r->timer);
    free(r);
    ares_library_cleanup();
    return NULL;
}

static void query_free(struct dns_query *q);

static void unlink_query(struct dns_query *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else if (q->r->queries == q)
        q->r->queries = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
}

static void resolver_destroy(struct dns_resolver *r)
{
    r->destroying = true;
    /* Runs on_answer with ARES_EDESTRUCTION for every outstanding query; those free
     * themselves. What is left are queries waiting for their deferred delivery. */
    ares_destroy(r->ch);
    while (r->queries) {
        struct dns_query *q = r->queries;
        unlink_query(q);
        query_free(q);
    }
    while (r->socks) {
        struct sock_watch *w = r->socks;
        r->socks = w->next;
        if (w->ev)
            event_free(w->ev);
        free(w);
    }
    event_free(r->timer);
    free(r);
    ares_library_cleanup();
}

void dns_resolver_free(struct dns_resolver *r)
{
    if (!r)
        return;
    if (r->busy > 0) {
        r->dying = true;
        return;
    }
    resolver_destroy(r);
}

/* ---------------------------------------------------------------- queries */

static void query_free(struct dns_query *q)
{
    if (q->deliver_ev)
        event_free(q->deliver_ev);
    for (size_t i = 0; q->mx && i < q->count; i++)
        free(q->mx[i].host);
    free(q->mx);
    free(q->addr);
    for (size_t i = 0; q->txt && i < q->count; i++)
        free(q->txt[i].data);
    free(q->txt);
    for (size_t i = 0; q->names && i < q->count; i++)
        free(q->names[i]);
    free(q->names);
    for (int i = 0; i < q->nsub; i++)
        free(q->sub[i].addr);
    free(q->name);
    free(q);
}

static void deliver(struct dns_query *q)
{
    struct dns_resolver *r = q->r;
    struct dns_result res = {
        .status = q->status,
        .name = q->name,
        .detail = q->detail ? q->detail : "",
        .count = q->status == DNS_OK || q->status == DNS_NULL_MX ? q->count : 0,
        .mx = q->mx,
        .addr = q->addr,
        .txt = q->txt,
        .names = q->names,
        .partial = q->partial,
    };
    if (res.count == 0)
        res.mx = NULL, res.addr = NULL, res.txt = NULL, res.names = NULL;
    unlink_query(q);
    q->delivering = true;
    r->busy++;
    q->cb(&res, q->arg);
    r->busy--;
    query_free(q);
    if (r->dying && r->busy == 0)
        resolver_destroy(r);
}

static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    deliver(arg);
}

static void deliver_later(struct dns_query *q)
{
    q->deliver_ev = event_new(q->r->base, -1, 0, on_deliver, q);
    if (!q->deliver_ev) {
        log_err("dns: cannot schedule a result; exiting");
        exit(71); /* like an allocation failure: see util.h */
    }
    event_active(q->deliver_ev, EV_TIMEOUT, 0);
}

static const char *detail_of(int ares_status)
{
    switch (ares_status) {
    case ARES_SUCCESS:
        return "";
    case ARES_ENOTFOUND:
        return "NXDOMAIN";
    case ARES_ENODATA:
        return "no records of this type";
    case ARES_ESERVFAIL:
        return "SERVFAIL";
    case ARES_EREFUSED:
        return "REFUSED";
    case ARES_ETIMEOUT:
        return "timeout";
    case ARES_ECONNREFUSED: /* also c-ares' word for "every server failed" */
        return "no server gave a usable answer (unreachable, REFUSED or SERVFAIL)";
    default:
        return ares_strerror(ares_status);
    }
}

static void parse_mx(struct dns_query *q, const unsigned char *abuf, int alen)
{
    struct ares_mx_reply *list = NULL;
    int rc = ares_parse_mx_reply(abuf, alen, &list);
    q->status = dns_status_from_ares(rc);
    q->detail = detail_of(rc);
    if (rc != ARES_SUCCESS)
        return;
    size_t n = 0;
    for (struct ares_mx_reply *m = list; m; m = m->next)
        n++;
    q->mx = xcalloc(n, sizeof(*q->mx));
    for (struct ares_mx_reply *m = list; m; m = m->next, q->count++) {
        q->mx[q->count].pref = m->priority;
        q->mx[q->count].host = xstrdup(m->host ? m->host : "");
    }
    ares_free_data(list);
    if (q->count == 0) {
        q->status = DNS_NODATA;
        q->detail = detail_of(ARES_ENODATA);
    } else if (dns_mx_is_null(q->mx, q->count)) {
        q->status = DNS_NULL_MX;
        q->detail = "null MX (RFC 7505)";
        for (size_t i = 0; i < q->count; i++) /* one spelling for the caller */
            q->mx[i].host[0] = '\0';
    } else {
        size_t keep = dns_mx_drop_null(q->mx, q->count);
        for (size_t i = keep; i < q->count; i++)
            free(q->mx[i].host);
        q->count = keep;
        dns_mx_sort(q->mx, q->count, NULL, NULL);
    }
}

static void parse_addr_answer(struct subq *s, const unsigned char *abuf, int alen)
{
    struct hostent *he = NULL;
    int rc = s->type == ns_t_a ? ares_parse_a_reply(abuf, alen, &he, NULL, NULL)
                               : ares_parse_aaaa_reply(abuf, alen, &he, NULL, NULL);
    s->ares_status = rc;
    s->status = dns_status_from_ares(rc);
    if (rc != ARES_SUCCESS)
        return;
    int family = s->type == ns_t_a ? AF_INET : AF_INET6;
    size_t n = 0;
    while (he->h_addr_list[n])
        n++;
    s->addr = xcalloc(n, sizeof(*s->addr));
    for (size_t i = 0; i < n; i++) {
        struct dns_addr *a = &s->addr[i];
        a->family = family;
        if (family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&a->sa;
            sin->sin_family = AF_INET;
            memcpy(&sin->sin_addr, he->h_addr_list[i], 4);
            a->salen = sizeof(*sin);
            inet_ntop(AF_INET, &sin->sin_addr, a->text, sizeof(a->text));
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->sa;
            sin6->sin6_family = AF_INET6;
            memcpy(&sin6->sin6_addr, he->h_addr_list[i], 16);
            a->salen = sizeof(*sin6);
            inet_ntop(AF_INET6, &sin6->sin6_addr, a->text, sizeof(a->text));
        }
    }
    s->naddr = n;
    ares_free_hostent(he);
    if (n == 0) {
        s->status = DNS_NODATA;
        s->ares_status = ARES_ENODATA;
    }
}

/* Both families answered: one result. Any address is success (flagged partial if the other
 * family could not be asked); else a temporary failure wins over "no such records", since
 * the failed family might have had some. */
static void finish_addr(struct dns_query *q)
{
    size_t total = 0;
    const struct subq *decider = NULL;
    bool temp = false, nxdomain = true, badname = false;
    for (int i = 0; i < q->nsub; i++) {
        const struct subq *s = &q->sub[i];
        total += s->naddr;
        if (s->status == DNS_TEMPFAIL) {
            temp = true;
            decider = s;
        }
        if (s->status != DNS_NXDOMAIN)
            nxdomain = false;
        if (s->status == DNS_BADNAME)
            badname = true;
    }
    if (total > 0) {
        q->addr = xcalloc(total, sizeof(*q->addr));
        /* IPv6 first (sub[] holds AAAA before A when both were asked). */
        for (int i = 0; i < q->nsub; i++) {
            if (q->sub[i].naddr == 0)
                continue;
            memcpy(q->addr + q->count, q->sub[i].addr, q->sub[i].naddr * sizeof(*q->addr));
            q->count += q->sub[i].naddr;
        }
        q->status = DNS_OK;
        q->detail = "";
        q->partial = temp;
        return;
    }
    if (!decider) {
        decider = &q->sub[0];
        for (int i = 0; i < q->nsub; i++)
            if (q->sub[i].status == DNS_NODATA)
                decider = &q->sub[i];
    }
    q->status = badname    ? DNS_BADNAME
                : temp     ? DNS_TEMPFAIL
                : nxdomain ? DNS_NXDOMAIN
                           : DNS_NODATA;
    q->detail = detail_of(decider->ares_status);
}

static void parse_txt(struct dns_query *q, const unsigned char *abuf, int alen)
{
    struct ares_txt_ext *list = NULL;
    int rc = ares_parse_txt_reply_ext(abuf, alen, &list);
    q->status = dns_status_from_ares(rc);
    q->detail = detail_of(rc);
    if (rc != ARES_SUCCESS)
        return;
    size_t n = 0;
    for (struct ares_txt_ext *t = list; t; t = t->next)
        if (t->record_start || t == list)
            n++;
    q->txt = xcalloc(n, sizeof(*q->txt));
    struct dns_txt *cur = NULL;
    for (struct ares_txt_ext *t = list; t; t = t->next) {
        if (t->record_start || !cur) {
            cur = &q->txt[q->count++];
            cur->data = xcalloc(1, 1);
        }
        cur->data = xrealloc(cur->data, cur->len + t->length + 1);
        memcpy(cur->data + cur->len, t->txt, t->length);
        cur->len += t->length;
        cur->data[cur->len] = '\0';
    }
    ares_free_data(list);
    if (q->count == 0) {
        q->status = DNS_NODATA;
        q->detail = detail_of(ARES_ENODATA);
    }
}

static void parse_ptr(struct dns_query *q, const unsigned char *abuf, int alen)
{
    struct hostent *he = NULL;
    int rc = ares_parse_ptr_reply(abuf, alen, q->ptr_addr, q->ptr_family == AF_INET ? 4 : 16,
                                  q->ptr_family, &he);
    q->status = dns_status_from_ares(rc);
    q->detail = detail_of(rc);
    if (rc != ARES_SUCCESS)
        return;
    /* c-ares puts one PTR name in h_name and every one of them in h_aliases. */
    size_t n = 1;
    for (char **a = he->h_aliases; a && *a; a++)
        n++;
    q->names = xcalloc(n, sizeof(*q->names));
    if (he->h_name && he->h_name[0])
        q->names[q->count++] = xstrdup(he->h_name);
    for (char **a = he->h_aliases; a && *a; a++) {
        bool dup = false;
        for (size_t i = 0; i < q->count; i++)
            dup = dup || str_ieq(q->names[i], *a);
        if (!dup && (*a)[0])
            q->names[q->count++] = xstrdup(*a);
    }
    ares_free_hostent(he);
    if (q->count == 0) {
        q->status = DNS_NODATA;
        q->detail = detail_of(ARES_ENODATA);
    }
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct subq *s = arg;
    struct dns_query *q = s->q;
    (void)timeouts;

    q->outstanding--;
    /* dying: the user freed the resolver in an earlier callback of this same round */
    if (q->cancelled || q->r->destroying || q->r->dying) {
        if (q->outstanding == 0) {
            unlink_query(q);
            query_free(q);
        }
        return;
    }

    s->ares_status = status;
    s->status = dns_status_from_ares(status);
    if (status == ARES_SUCCESS) {
        switch (q->kind) {
        case Q_MX:
            parse_mx(q, abuf, alen);
            break;
        case Q_ADDR:
            parse_addr_answer(s, abuf, alen);
            break;
        case Q_TXT:
            parse_txt(q, abuf, alen);
            break;
        case Q_PTR:
            parse_ptr(q, abuf, alen);
            break;
        }
    } else if (q->kind != Q_ADDR) {
        q->status = s->status;
        q->detail = detail_of(status);
    }

    if (q->outstanding > 0)
        return;
    if (q->kind == Q_ADDR)
        finish_addr(q);
    if (q->submitting)
        deliver_later(q);
    else
        deliver(q);
}

static struct dns_query *query_new(struct dns_resolver *r, enum qkind kind, const char *name,
                                   dns_cb cb, void *arg)
{
    struct dns_query *q = xcalloc(1, sizeof(*q));
    q->r = r;
    q->kind = kind;
    q->name = xstrdup(name);
    q->cb = cb;
    q->arg = arg;
    q->status = DNS_TEMPFAIL;
    q->next = r->queries;
    if (r->queries)
        r->queries->prev = q;
    r->queries = q;
    return q;
}

/* Send the sub-queries for qname; results come back through on_answer. */
static void submit(struct dns_query *q, const char *qname)
{
    q->submitting = true;
    q->outstanding = q->nsub;
    for (int i = 0; i < q->nsub; i++) {
        q->sub[i].q = q;
        ares_query(q->r->ch, qname, ns_c_in, q->sub[i].type, on_answer, &q->sub[i]);
    }
    q->submitting = false; /* a synchronous failure has been queued by deliver_later */
    rearm_timer(q->r);
}

/* A lookup that fails before reaching c-ares still reports from the loop. */
static struct dns_query *fail_later(struct dns_query *q, enum dns_status st, const char *why)
{
    q->status = st;
    q->detail = why;
    deliver_later(q);
    return q;
}

static struct dns_query *start(struct dns_resolver *r, enum qkind kind, const char *name,
                               int t1, int t2, dns_cb cb, void *arg)
{
    if (r->dying || r->destroying)
        return NULL;
    struct dns_query *q = query_new(r, kind, name, cb, arg);
    q->sub[0].type = t1;
    q->sub[1].type = t2;
    q->nsub = t2 ? 2 : 1;
    if (!dns_name_valid(name))
        return fail_later(q, DNS_BADNAME, "not a valid DNS name");
    submit(q, name);
    return q;
}

struct dns_query *dns_lookup_mx(struct dns_resolver *r, const char *domain, dns_cb cb, void *arg)
{
    return start(r, Q_MX, domain, ns_t_mx, 0, cb, arg);
}

struct dns_query *dns_lookup_addr(struct dns_resolver *r, const char *host, int want,
                                  dns_cb cb, void *arg)
{
    int t1 = ns_t_aaaa, t2 = ns_t_a;
    if (!(want & DNS_WANT_V6))
        t1 = ns_t_a, t2 = 0;
    else if (!(want & DNS_WANT_V4))
        t2 = 0;
    return start(r, Q_ADDR, host, t1, t2, cb, arg);
}

struct dns_query *dns_lookup_txt(struct dns_resolver *r, const char *name, dns_cb cb, void *arg)
{
    return start(r, Q_TXT, name, ns_t_txt, 0, cb, arg);
}

struct dns_query *dns_lookup_ptr(struct dns_resolver *r, const char *addr, dns_cb cb, void *arg)
{
    if (r->dying || r->destroying)
        return NULL;
    struct dns_query *q = query_new(r, Q_PTR, addr, cb, arg);
    q->sub[0].type = ns_t_ptr;
    q->nsub = 1;
    char rev[128];
    if (!parse_addr(addr, &q->ptr_family, q->ptr_addr) ||
        !reverse_of(q->ptr_family, q->ptr_addr, rev, sizeof(rev)))
        return fail_later(q, DNS_BADNAME, "not an IP address");
    submit(q, rev);
    return q;
}

void dns_cancel(struct dns_query *q)
{
    if (!q || q->delivering || q->cancelled)
        return;
    if (q->outstanding == 0) { /* only waiting for its deferred delivery */
        unlink_query(q);
        query_free(q);
        return;
    }
    q->cancelled = true; /* on_answer frees it when c-ares lets go */
}

/* ---------------------------------------------------------------- raw answers (fuzzing) */

void dns_parse_answer(enum dns_kind kind, const unsigned char *abuf, int alen, const char *ptr_addr,
                      dns_cb cb, void *arg)
{
    static const int types[] = {[DNS_KIND_MX] = ns_t_mx, [DNS_KIND_A] = ns_t_a,
                                [DNS_KIND_AAAA] = ns_t_aaaa, [DNS_KIND_TXT] = ns_t_txt,
                                [DNS_KIND_PTR] = ns_t_ptr};
    static const enum qkind kinds[] = {[DNS_KIND_MX] = Q_MX, [DNS_KIND_A] = Q_ADDR,
                                       [DNS_KIND_AAAA] = Q_ADDR, [DNS_KIND_TXT] = Q_TXT,
                                       [DNS_KIND_PTR] = Q_PTR};
    struct dns_resolver none = {0}; /* deliver() needs one; nothing in it is used */
    struct dns_query *q = xcalloc(1, sizeof *q);
    q->r = &none;
    q->kind = kinds[kind];
    q->cb = cb;
    q->arg = arg;
    q->name = xstrdup(ptr_addr ? ptr_addr : "fuzz.test");
    q->nsub = 1;
    q->sub[0].q = q;
    q->sub[0].type = types[kind];
    if (kind == DNS_KIND_PTR && !parse_addr(q->name, &q->ptr_family, q->ptr_addr)) {
        q->ptr_family = AF_INET;
        memset(q->ptr_addr, 0, sizeof q->ptr_addr);
    }
    switch (q->kind) {
    case Q_MX:
        parse_mx(q, abuf, alen);
        break;
    case Q_ADDR:
        parse_addr_answer(&q->sub[0], abuf, alen);
        finish_addr(q);
        break;
    case Q_TXT:
        parse_txt(q, abuf, alen);
        break;
    case Q_PTR:
        parse_ptr(q, abuf, alen);
        break;
    }
    deliver(q);
}
