/* dovecot_proto.h - pure parsing and formatting of Dovecot's authentication client protocol
 * (version 1: the lines on a Dovecot auth-client socket; see docs/auth.md). No I/O here:
 * dovecot_auth.c carries the lines, session.c decides what to do with the answers. */
#ifndef TERN_DOVECOT_PROTO_H
#define TERN_DOVECOT_PROTO_H

#include <stdbool.h>
#include <stddef.h>

/* Dovecot expects its lines to fit in 16384 octets (AUTH_CLIENT_MAX_LINE_LENGTH). */
#define DOVECOT_LINE_MAX 16384
#define DOVECOT_MECHS_MAX 32
#define DOVECOT_MECH_NAME_MAX 20 /* RFC 4422 3.1: a SASL mechanism name is 1-20 characters */
#define DOVECOT_USER_MAX 255
#define DOVECOT_REASON_MAX 160

/* MECH flags Dovecot announces. */
enum {
    DMECH_PLAINTEXT = 1 << 0,  /* the password crosses the wire in clear (PLAIN, LOGIN) */
    DMECH_ANONYMOUS = 1 << 1,
    DMECH_PRIVATE = 1 << 2,    /* usable but not to be advertised */
    DMECH_DICTIONARY = 1 << 3,
    DMECH_ACTIVE = 1 << 4,
    DMECH_FORWARD_SECRECY = 1 << 5,
    DMECH_MUTUAL_AUTH = 1 << 6,
};

struct dovecot_mech {
    char name[DOVECOT_MECH_NAME_MAX + 1]; /* upper case */
    unsigned flags;
};

struct dovecot_mechs {
    struct dovecot_mech v[DOVECOT_MECHS_MAX];
    size_t n;
};

enum dovecot_kind {
    DOVECOT_BAD,     /* not a well-formed line: the connection cannot be trusted any more */
    DOVECOT_OTHER,   /* a command we do not use (SPID, CUID, COOKIE, unknown ones): ignore */
    DOVECOT_VERSION,
    DOVECOT_MECH,
    DOVECOT_DONE,
    DOVECOT_OK,
    DOVECOT_CONT,
    DOVECOT_FAIL,
};

/* One line from the server, LF removed. Strings are copied (user, reason) or point into the
 * parsed line (data), so the line must outlive the struct. */
struct dovecot_line {
    enum dovecot_kind kind;
    unsigned major, minor;         /* VERSION */
    struct dovecot_mech mech;      /* MECH */
    unsigned long id;              /* OK, CONT, FAIL */
    const char *data;              /* CONT: the base64 challenge; OK/FAIL: resp= or NULL */
    size_t datalen;
    char user[DOVECOT_USER_MAX + 1]; /* OK/FAIL: user= (unescaped), "" if absent or unusable */
    char reason[DOVECOT_REASON_MAX + 1]; /* FAIL: reason= (unescaped, control chars dropped) */
    bool temp;                     /* FAIL: "temp" or code=temp_fail: try again later */
};

/* Parse one server line (without its LF). Returns out->kind. */
enum dovecot_kind dovecot_parse_line(const char *line, size_t len, struct dovecot_line *out);

/* Is this a base64 string (RFC 4648 alphabet with padding), possibly empty? What Dovecot
 * sends as a challenge goes into a 334 reply only if it is. */
bool dovecot_is_base64(const char *s, size_t len);

/* Can tern relay this mechanism for an SMTP client? Not ANONYMOUS, EXTERNAL (tern does not
 * pass client certificates), channel-binding "-PLUS" variants, or private ones. */
bool dovecot_mech_relayable(const struct dovecot_mech *m);
/* Find a mechanism by name (case-insensitive); NULL if not announced. */
const struct dovecot_mech *dovecot_mech_find(const struct dovecot_mechs *ms, const char *name);

/* The client handshake: "VERSION\t1\t2\nCPID\t<pid>\n". Returns its length, 0 if cap is too
 * small. */
size_t dovecot_format_handshake(char *buf, size_t cap, unsigned long pid);

struct dovecot_auth_params {
    unsigned long id;
    const char *mech;              /* a mechanism name Dovecot announced */
    const char *service;           /* "smtp" */
    const char *local_ip, *remote_ip; /* NULL: not sent */
    unsigned local_port, remote_port; /* 0: not sent */
    bool secured;                  /* TLS (or a channel tern's policy trusts): "secured" */
    bool no_penalty;               /* "no-penalty": tern applies its own delay and lockout */
    const char *resp;              /* the initial response in base64; NULL: none, "": empty */
};

/* "AUTH\t<id>\t<mech>\tservice=...\t...\n" with tab-escaped values. 0 if it does not fit. */
size_t dovecot_format_auth(char *buf, size_t cap, const struct dovecot_auth_params *p);
/* "CONT\t<id>\t<base64>\n". 0 if it does not fit. */
size_t dovecot_format_cont(char *buf, size_t cap, unsigned long id, const char *resp);
/* "CANCEL\t<id>\n". */
size_t dovecot_format_cancel(char *buf, size_t cap, unsigned long id);

/* Dovecot's tab-escaping (\001 then 0, 1, t, r, n for NUL, \001, TAB, CR, LF). Escape writes
 * at most cap-1 octets and a NUL; returns the length, or 0 with *ok false if it did not fit. */
size_t dovecot_tabescape(char *out, size_t cap, const char *in, bool *ok);
/* Unescape len octets into out (cap includes the NUL). Returns the length; false *ok if it
 * did not fit or holds a NUL. */
size_t dovecot_tabunescape(char *out, size_t cap, const char *in, size_t len, bool *ok);

#endif
