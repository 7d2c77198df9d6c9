/* config.h - tern's configuration: the structure every module reads, and its parser.
 *
 * The file format is line based: "keyword value..." with '#' comments, documented in
 * docs/configuration.md; etc/tern.conf is the embedded default (make run uses it).
 * The parser is pure (text in, struct out) so it is unit-tested and fuzzed. */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

#define CONFIG_MAX_LISTEN 16
#define CONFIG_MAX_CERTS 16

enum listen_kind {
    LISTEN_SMTP,       /* port 25: MX for our domains */
    LISTEN_SUBMISSION, /* port 587: users submitting mail (AUTH comes in a later issue) */
    LISTEN_SMTPS,      /* port 465: implicit TLS submission (TLS issue) */
    LISTEN_ODMR,       /* port 366: On-Demand Mail Relay (RFC 2645): AUTH, then ATRN only */
};

struct listen_cfg {
    char addr[64];          /* numeric IPv4 or IPv6 address, "0.0.0.0", "::" */
    unsigned short port;
    enum listen_kind kind;
    /* Options after the kind; resolved at the end of parsing from the kind and whether a
     * certificate is configured (see docs/configuration.md). */
    bool starttls;          /* offer STARTTLS (RFC 3207); never on smtps */
    bool require_tls;       /* 530 5.7.0 to MAIL before STARTTLS; default on submission */
    signed char starttls_opt, require_tls_opt; /* parser only: -1 default, 0 no, 1 yes */
};

/* A certificate chain file and its private key (PEM). The first is the default; others are
 * chosen by the name the client asks for (SNI). */
struct tls_cert_cfg {
    char *cert;
    char *key;
    char *ocsp; /* "tls_ocsp_response FILE" after it: DER OCSP response to staple, or NULL */
};

/* A local mailbox: local part @ one of the local domains. Lookups are case-insensitive. */
struct mailbox_cfg {
    char *local;   /* lower-cased local part */
    char *domain;  /* lower-cased domain */
};

/* Outbound TLS policy (RFC 3207 client side), the levels of Postfix's
 * smtp_tls_security_level. Only "verify" checks the certificate (RFC 6125); "may" is
 * opportunistic security (RFC 7435); "encrypt" means encrypted or not at all. */
enum tls_policy {
    TLS_POLICY_DEFAULT = 0,   /* not set: the global outbound_tls applies */
    TLS_POLICY_NONE,          /* "none": never STARTTLS */
    TLS_POLICY_OPPORTUNISTIC, /* "may": STARTTLS when offered; on handshake failure, retry in
                                 clear */
    TLS_POLICY_REQUIRED,      /* "encrypt": no STARTTLS offered or a failed handshake: defer */
    TLS_POLICY_VERIFY,        /* "verify": as encrypt, and the certificate must chain to a
                                 trusted CA and name the MX host or the next-hop domain */
};

/* The policy a name means ("none", "may"/"opportunistic", "encrypt"/"required", "verify"),
 * or TLS_POLICY_DEFAULT for an unknown name. */
enum tls_policy config_tls_policy(const char *name);
/* The policy's canonical name ("may"...). */
const char *config_tls_policy_name(enum tls_policy policy);

/* A fixed next hop: the smarthost, or one transport override. */
struct outbound_dest_cfg {
    char *domain;             /* transport: "example.org" or ".example.org"; smarthost: NULL */
    char *host;               /* host name or IP address (no brackets) */
    unsigned short port;      /* default 25 */
    enum tls_policy tls;
    char *auth_user;          /* AUTH PLAIN/LOGIN (RFC 4954) after STARTTLS; NULL = no AUTH */
    char *auth_passfile;      /* first line of this file is the password (read at start) */
};

/* One address (or "@domain": any in that domain) a user may send as (sender_login). */
struct sender_login_cfg {
    char *user;
    char *addr;               /* lower-cased */
};

/* One network of relay_networks. */
struct cidr_cfg {
    int family;               /* AF_INET or AF_INET6 */
    unsigned char addr[16];   /* network address, host bits zero */
    unsigned prefix;          /* 0..32 or 0..128 */
};

/* A domain whose mail is held for On-Demand Mail Relay (RFC 2645): accepted like a backup MX
 * would, kept in the queue, and delivered only over an ATRN session of one of its users. */
struct odmr_domain_cfg {
    char *domain;             /* lower-cased */
    char **users;             /* login names (users_file) entitled to ATRN it */
    size_t nusers;
};

enum auth_backend {
    AUTH_BACKEND_USERS,   /* the users file (users_file) */
    AUTH_BACKEND_DOVECOT, /* a running Dovecot, over its auth-client socket (dovecot_auth.h) */
};

struct config {
    char *path;                 /* file it was read from, or "(embedded)" */
    char *hostname;             /* our name: greeting, EHLO, Received; default gethostname() */
    char *user;                 /* unprivileged user when started as root; default "tern" */
    char *spool_dir;            /* queue; default "var/spool" */
    char *maildir;              /* Maildir path pattern: %d domain, %u local part; default "var/mail/%d/%u" */
    int workers;                /* SMTP worker processes; 0 = one per core */

    struct listen_cfg listen[CONFIG_MAX_LISTEN];
    size_t nlisten;

    char **local_domains;       /* lower-cased */
    size_t nlocal_domains;
    struct mailbox_cfg *mailboxes;
    size_t nmailboxes;

    /* limits */
    size_t max_message_size;    /* octets; advertised with SIZE; default 35 MiB */
    size_t max_recipients;      /* per message; default 1000 (RFC 5321 4.5.3.1.8: at least 100) */
    size_t max_connections;     /* per worker process; default 1000 */
    size_t max_connections_per_ip; /* per worker process; default 20 */
    size_t max_errors;          /* protocol errors before 421 and close; default 20 */
    size_t max_connection_rate; /* connections per minute from one address, per worker;
                                   0 = no limit (default) */
    size_t min_free_space;      /* octets the spool's file system must keep free, else 452
                                   4.3.1 at MAIL; default 16 MiB */
    size_t max_header_size;     /* octets of a message's header section; default 256 KiB */
    size_t max_header_count;    /* header fields in a message; default 1000 */

    /* timeouts in seconds, RFC 5321 4.5.3.2 */
    int timeout_command;        /* waiting for the next command; default 300 */
    int timeout_data_block;     /* between data blocks; default 180 */
    int timeout_data_end;       /* we must answer end of data within 10 min; informational */
    int shutdown_grace;         /* seconds sessions get to finish on SIGTERM; default 10 */

    /* policy */
    bool vrfy_enabled;          /* VRFY/EXPN give real answers (else 252); default false */

    /* delivery retry schedule for temporary local failures, seconds */
    int retry_min;              /* first retry; default 60 */
    int retry_max;              /* cap of the doubling delay; default 3600 */
    int queue_lifetime;         /* bounce after this many seconds; default 5 days */

    /* TLS (RFC 3207, RFC 8314) */
    struct tls_cert_cfg tls_certs[CONFIG_MAX_CERTS];
    size_t ntls_certs;
    char *tls_ciphers;          /* TLS 1.2 cipher list; NULL = tern's modern default */

    enum log_target log_target; /* "log stderr" or "log syslog"; default stderr */
    int log_level;              /* LOG_INFO by default; "log_level debug" */

    /* ---- outbound delivery (docs/delivery.md). Zero counts and timeouts mean "the default"
     * given here, so a zeroed struct still works; delay_warning is set by the parser. ---- */
    /* "smarthost HOST[:PORT] [starttls=..] [auth=USER:PASSFILE]"; host NULL = none (by MX) */
    struct outbound_dest_cfg smarthost;
    struct outbound_dest_cfg *transports; /* "transport DOMAIN HOST[:PORT] [starttls=..]": per
                                             domain ("example.org", or ".example.org" for its
                                             subdomains); checked before the smarthost */
    size_t ntransports;
    struct cidr_cfg *relay_networks; /* "relay_networks CIDR...": clients that may relay
                                        (used by the SMTP session); default none */
    size_t nrelay_networks;
    char *resolver;             /* "resolver IP[:PORT]": one DNS server; NULL = /etc/resolv.conf */
    int delay_warning;          /* seconds before a delay DSN; default 4 h; 0 = never */
    int *retry_schedule;        /* "retry_schedule 1m 5m 30m 2h": delays after attempt 1, 2...;
                                   the last repeats. NULL = doubling retry_min .. retry_max */
    size_t nretry_schedule;
    enum tls_policy outbound_tls; /* "outbound_tls none|may|encrypt|verify"; default may
                                     (STARTTLS when offered) */
    char *outbound_tls_ca_file; /* "outbound_tls_ca_file PATH": trusted CAs (PEM) for
                                   "verify"; NULL = the system store */
    char *double_bounce_recipient; /* "double_bounce_recipient ADDR|none": who hears of a
                                      bounce that failed; NULL = postmaster@ the first
                                      local_domain; "" (none) = log and drop */
    size_t outbound_concurrency; /* connections per destination; default 5 */
    size_t outbound_max_connections; /* all destinations together; default 100 */
    size_t outbound_max_rcpts;  /* recipients per transaction; default 100 (RFC 5321 4.5.3.1.8) */
    /* timeouts in seconds, RFC 5321 4.5.3.2; defaults: connect 30, greeting and other
     * commands 300 (4.5.3.2.1-4), DATA initiation 120 (4.5.3.2.5), data block 180 (4.5.3.2.6),
     * end of data 600 (4.5.3.2.7), an idle cached connection kept 5 */
    int outbound_timeout_connect;
    int outbound_timeout_command;
    int outbound_timeout_data_init;
    int outbound_timeout_data_block;
    int outbound_timeout_data_end;
    int outbound_idle;

    /* ---- SMTP AUTH (RFC 4954, docs/auth.md) ---- */
    char *users_file;           /* "users_file PATH": the users table (tern user ...); NULL = none,
                                   no AUTH offered */
    bool auth_plaintext_loopback; /* "auth_plaintext_loopback on": PLAIN/LOGIN without TLS
                                     from 127.0.0.0/8 and ::1; default off */
    bool received_auth_user;    /* "received_auth_user on": name the authenticated user in
                                   Received:; default off (privacy) */
    bool sender_login_match;    /* "sender_login_match on": an authenticated user may use only
                                   their own addresses in MAIL FROM (553 5.7.1); default off */
    struct sender_login_cfg *sender_logins; /* "sender_login USER ADDR|@DOMAIN...": more
                                               addresses a user owns */
    size_t nsender_logins;
    char **trusted_users;       /* "trusted_users NAME...": may set sendmail -f without an
                                 * X-Authentication-Warning in the maildrop pickup */
    size_t ntrusted_users;
    size_t auth_max_failures;   /* failed AUTHs from one address before a lockout; default 10,
                                   0 = never lock */
    int auth_lockout;           /* seconds locked out (and the window failures count in);
                                   default 15 min */

    /* ---- the rest of the command set (docs/commands.md) ---- */
    int future_release_max;     /* "future_release_max 7d": the longest hold a client may ask
                                   for with HOLDFOR/HOLDUNTIL or X-DELIVERY-TIME (RFC 4865);
                                   0 = not offered; default 7 days */
    struct cidr_cfg *etrn_networks; /* "etrn_networks CIDR...": clients that may use ETRN
                                       without AUTH (besides relay_networks); default none */
    size_t netrn_networks;

    /* ---- On-Demand Mail Relay (RFC 2645, docs/odmr.md) ---- */
    struct odmr_domain_cfg *odmr_domains; /* "odmr_domain DOMAIN USER...": held for ATRN */
    size_t nodmr_domains;
    /* ---- queue management (docs/queue.md) ---- */
    char *control_socket;       /* "control_socket PATH": the queue manager's control socket;
                                   NULL = <spool>/control */
    /* ---- aliases (docs/aliases.md) ---- */
    char *aliases_file;         /* "aliases FILE": aliases(5) for the local domains; NULL = none */
    char *virtual_aliases_file; /* "virtual_aliases FILE": user@domain / @domain targets */
    char *relocated_file;       /* "relocated FILE": user@domain new@address (551 5.1.6) */
    bool allow_include;         /* "allow_include on|off": :include: files; default on */
    bool allow_pipe_aliases;    /* "allow_pipe_aliases on|off": deliver to "|command" targets
                                   of the aliases file (pipe.c); default off */
    struct alias_db *aliases;   /* the maps, read by aliases_load (not by the pure parser);
                                   NULL = none; freed by config_free */
    enum auth_backend auth_backend; /* "auth_backend users|dovecot": where AUTH checks
                                       credentials; default users (users_file) */
    char *dovecot_auth_socket;  /* "dovecot_auth_socket PATH": Dovecot's auth-client socket;
                                   default /run/dovecot/auth-client */
    int dovecot_auth_timeout;   /* "dovecot_auth_timeout DURATION": longest wait for Dovecot's
                                   answer (then 454 4.7.0); default 30 s */
};

struct alias_db;

/* The configuration compiled into the binary (etc/tern.conf). */
extern const char config_embedded[];

/* Parse text (len bytes, need not be NUL-terminated) into *cfg, filling defaults first.
 * On error returns -1 and writes "path:line: message" into err. */
int config_parse(struct config *cfg, const char *path, const char *text, size_t len,
                 char *err, size_t errlen);
/* Read and parse a file; path NULL means the embedded default. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);
void config_free(struct config *cfg);

bool config_is_local_domain(const struct config *cfg, const char *domain);
/* Is the domain held for On-Demand Mail Relay (odmr_domain)? Case-insensitive. */
bool config_is_odmr_domain(const struct config *cfg, const char *domain);
/* May this authenticated user ATRN the domain (listed on its odmr_domain line)? */
bool config_odmr_entitled(const struct config *cfg, const char *user, const char *domain);
/* Is local@domain a configured mailbox? (domain must be local; case-insensitive) */
bool config_has_mailbox(const struct config *cfg, const char *local, const char *domain);
/* May a client at this address (numeric IPv4/IPv6 text, "::ffff:a.b.c.d" counts as IPv4)
 * relay to any domain? True if it is inside one of relay_networks. */
bool config_relay_allowed(const struct config *cfg, const char *addr);
/* May a client at this address use ETRN without AUTH? In etrn_networks or relay_networks. */
bool config_etrn_allowed(const struct config *cfg, const char *addr);
/* May the authenticated user send with this envelope sender? Their login name when it is an
 * address, login@each local domain when it is not, and their sender_login entries;
 * comparisons ignore case. */
bool config_sender_owned(const struct config *cfg, const char *user, const char *sender);
/* Expand the Maildir pattern for a mailbox into out. Returns false if it does not fit or the
 * local part contains characters unsafe in a path ('/', leading '.'). */
bool config_maildir_path(const struct config *cfg, const char *local, const char *domain,
                         char *out, size_t outlen);

#endif
