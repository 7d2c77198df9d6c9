/* fuzz_dns_answer.c - libFuzzer target for the DNS answers tern reads (dns.c on top of
 * c-ares' parsers, RFC 1035 4.1): MX (RFC 5321 5.1 ordering, RFC 7505 null MX), A, AAAA,
 * TXT (strings joined per record, RFC 7208 3.3) and PTR, from whatever server answers.
 * Byte 0 picks the record type (and for PTR the address asked about); the rest is the DNS
 * message. With byte 0 >= 0xf0 the rest is text for the pure name helpers instead
 * (dns_name_valid, dns_reverse_name, dns_parse_nameserver). Results must be consistent. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dns.h"
#include "fuzz.h"

static void check(const struct dns_result *res, void *arg)
{
    enum dns_kind kind = *(enum dns_kind *)arg;
    REQUIRE(res->status <= DNS_BADNAME && res->name && res->detail);
    if (res->status != DNS_OK && res->status != DNS_NULL_MX) {
        REQUIRE(res->count == 0);
        return;
    }
    REQUIRE(res->count > 0);
    for (size_t i = 0; i < res->count; i++) {
        switch (kind) {
        case DNS_KIND_MX:
            REQUIRE(res->mx[i].host);
            if (res->status == DNS_NULL_MX)
                REQUIRE(res->mx[i].host[0] == '\0');
            else
                REQUIRE(res->mx[i].host[0] != '\0' &&
                        (i == 0 || res->mx[i - 1].pref <= res->mx[i].pref));
            break;
        case DNS_KIND_A:
        case DNS_KIND_AAAA:
            REQUIRE(res->addr[i].family == (kind == DNS_KIND_A ? AF_INET : AF_INET6));
            REQUIRE(strlen(res->addr[i].text) > 0 && strlen(res->addr[i].text) < 46);
            break;
        case DNS_KIND_TXT:
            REQUIRE(res->txt[i].data && res->txt[i].data[res->txt[i].len] == '\0');
            break;
        case DNS_KIND_PTR:
            REQUIRE(res->names[i] && res->names[i][0]);
            break;
        }
    }
}

static void names(const char *in, size_t len)
{
    char *s = malloc(len + 1);
    REQUIRE(s);
    memcpy(s, in, len);
    s[len] = '\0';
    (void)dns_name_valid(s);
    char rev[128];
    if (dns_reverse_name(s, rev, sizeof rev))
        REQUIRE(dns_name_valid(rev));
    int family;
    unsigned char addr[16];
    unsigned port;
    char err[256];
    err[0] = '\0';
    if (dns_parse_nameserver(s, &family, addr, &port, err, sizeof err))
        REQUIRE((family == AF_INET || family == AF_INET6) && port <= 65535);
    else
        REQUIRE(err[0]);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] >= 0xf0) {
        names((const char *)data + 1, size - 1);
        return 0;
    }
    static const char *const ptr_addrs[] = {"192.0.2.1", "2001:db8::1"};
    enum dns_kind kind = (enum dns_kind)(data[0] % 5);
    unsigned char *msg = malloc(size > 1 ? size - 1 : 1); /* exact size: ASan sees overreads */
    REQUIRE(msg);
    memcpy(msg, data + 1, size - 1);
    dns_parse_answer(kind, msg, (int)(size - 1), ptr_addrs[(data[0] / 5) & 1], check, &kind);
    free(msg);
    return 0;
}
