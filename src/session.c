/* session.c - the SMTP server session (RFC 5321 section 4, with RFC 1870 SIZE, RFC 2920
 * PIPELINING, RFC 3030 CHUNKING/BINARYMIME, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 2034
 * ENHANCEDSTATUSCODES, RFC 3461 DSN parameters and RFC 4954 AUTH with the PLAIN (RFC 4616),
 * LOGIN, CRAM-MD5 (RFC 2195) and SCRAM-SHA-256 (RFC 7677, scram_server.c) mechanisms, or
 * any mechanism a Dovecot auth server offers, relayed through session_sasl).
 * The rest of the command set (docs/commands.md): ETRN (RFC 1985, asking the queue manager
 * over its local control socket), RFC 4865 FUTURERELEASE and X-DELIVERY-TIME, SOML and SAML as
 * MAIL, and honest refusals of TURN, SEND (RFC 821) and X-EXPS.
 *
 * A table maps each verb to a small handler. Handlers check the state they need, change it,
 * and answer with one reply from reply.c. Message content goes straight into a queue file;
 * 250 for end of data is sent only after queue_writer_commit made it durable. */
#include "session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "aliases.h"
#include "authlock.h"
#include "data_reader.h"
#include "dovecot_proto.h"
#include "envelope.h"
#include "hdrscan.h"
#include "log.h"
#include "odmr.h"
#include "queue.h"
#include "received.h"
#include "reply.h"
#include "smtp_parse.h"
#include "scram_server.h"
#include "smtp_reply.h"
#include "users.h"
#include "util.h"

enum auth_step {
    AUTH_IDLE,       /* no exchange in progress */
    AUTH_PLAIN_WAIT, /* "334 " sent: waiting for the PLAIN response */
    AUTH_LOGIN_USER, /* "334 VXNlcm5hbWU6" (Username:) sent */
    AUTH_LOGIN_PASS, /* "334 UGFzc3dvcmQ6" (Password:) sent */
    AUTH_CRAM_WAIT,  /* CRAM-MD5 challenge sent */
    AUTH_SCRAM_FIRST, /* "334 " sent: waiting for the client-first message */
    AUTH_SCRAM_FINAL, /* server-first sent: waiting for client-final */
    AUTH_SCRAM_ACK,  /* server-final ("v=") sent: waiting for the empty response */
    AUTH_EXT_WAIT,   /* relayed to the external SASL server: waiting for its answer */
    AUTH_EXT_CONT,   /* its challenge sent as 334: waiting for the client's response */
    AUTH_EXT_FINAL,  /* it succeeded with final data, sent as 334: waiting for "" */
    AUTH_CHECK_WAIT, /* PLAIN/LOGIN password handed to io.check_password: waiting for it */
};

/* Growing delay after failed AUTH attempts: 1 s, doubling, at most this. */
#define AUTH_DELAY_MAX_MS 16000

enum state {
    ST_CONNECTED, /* greeting sent, no HELO/EHLO yet */
    ST_READY,     /* after HELO/EHLO or a finished transaction */
    ST_MAIL,      /* MAIL accepted, no recipient yet */
    ST_RCPT,      /* at least one recipient accepted */
    ST_DATA,      /* reading DATA content */
    ST_BDAT,      /* BDAT chunks in progress (between chunks, or reading one) */
    ST_STARTTLS,  /* 220 sent to STARTTLS, waiting for the handshake */
    ST_ATRN_WAIT, /* ATRN: waiting for the queue manager (RFC 2645) */
    ST_TURNED,    /* 250 to ATRN sent: the connection is the queue manager's now */
    ST_COMMIT,    /* end of data: the message is being made durable (io.commit) */
    ST_CLOSED,
};

struct session {
    const struct config *cfg;
    const struct listen_cfg *listener;
    struct session_io io;
    enum state state;
    bool reading_chunk;             /* MODE_CHUNK: reading chunk_left octets */
    unsigned long long chunk_left;
    enum reply_id chunk_error;      /* reply after a chunk we only discard, RP_OK if none */
    bool chunk_last;
    char peer[64];
    char helo[SMTP_DOMAIN_MAX + 1];
    bool esmtp;
    bool tls;                       /* TLS is active on the connection */
    char tls_desc[128];             /* "TLSv1.3 with cipher ..." */
    size_t errors;

    /* the transaction */
    struct mail_params mail;
    struct envelope env;
    struct queue_writer *qw;
    struct data_reader dr;
    unsigned long long msg_size;    /* content octets received */
    bool too_big;
    int write_errno;                /* first queue write error, 0 if none */
    struct hdrscan hdr;             /* the header section, for max_header_size/count */
    enum reply_id hdr_error;        /* RP_OK, or the reply for a header over the limits */

    /* SMTP AUTH (RFC 4954) */
    const struct users *users;      /* NULL: AUTH not offered */
    enum auth_step auth_step;
    bool authenticated;
    char auth_user[USERS_NAME_MAX + 1];  /* after 235 */
    char login_user[USERS_NAME_MAX + 1]; /* LOGIN: the name, while asking for the password */
    unsigned auth_failures;
    struct scram_server *scram;     /* during a SCRAM-SHA-256 exchange */
    struct authlock *authlock;      /* the worker's per-address failure counts, or NULL */
    char cram_challenge[128];       /* during CRAM-MD5: "<random.time@host>" */

    /* ETRN (RFC 1985) */
    bool etrn_waiting;              /* io->control called, session_control_done not yet */
    char etrn_node[SMTP_DOMAIN_MAX + 2]; /* "example.org" or "@example.org", for the reply */
    char atrn_domains[ODMR_LIST_MAX]; /* ATRN in progress or done: the domains asked for */
    const struct session_sasl *sasl; /* external SASL server (Dovecot), or NULL */
    char ext_mech[DOVECOT_MECH_NAME_MAX + 1]; /* the relayed mechanism, for the log */
    char ext_user[USERS_NAME_MAX + 1]; /* AUTH_EXT_FINAL: who succeeded */
    /* AUTH_CHECK_WAIT: the exchange whose password is being checked */
    const char *check_mech;         /* "PLAIN" or "LOGIN" */
    char check_user[USERS_NAME_MAX + 1];
    bool check_known;               /* false: checked against dummy_hash, fails whatever */
};

/* Is AUTH offered at all (a users table or an external SASL server)? */
static bool auth_offered(const struct session *s)
{
    return s->users || s->sasl;
}

/* ---- replies ---------------------------------------------------------------------------- */

static void reply_line(struct session *s, enum reply_id id, bool more, const char *text)
{
    char buf[SMTP_REPLY_MAX];
    size_t n = reply_format(buf, sizeof buf, id, more, text);
    if (n == 0) /* text too long for one line: fall back to the fixed text */
        n = reply_format(buf, sizeof buf, id, more, NULL);
    s->io.write(s->io.ctx, buf, n);
}

static void reply(struct session *s, enum reply_id id)
{
    reply_line(s, id, false, NULL);
}

static void replyf(struct session *s, enum reply_id id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void replyf(struct session *s, enum reply_id id, const char *fmt, ...)
{
    char text[SMTP_REPLY_MAX - 16];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    reply_line(s, id, false, n < 0 ? NULL : text);
}

/* A client error: counted, and the session ends after max_errors of them so a client that
 * never speaks SMTP cannot hold a connection forever. */
static void error_reply(struct session *s, enum reply_id id, const char *text)
{
    reply_line(s, id, false, text);
    if (++s->errors >= s->cfg->max_errors && s->state != ST_CLOSED) {
        log_info("too many errors client=[%s] errors=%zu", s->peer, s->errors);
        reply(s, RP_TOO_MANY_ERRORS);
        session_abort(s);
    }
}

/* ---- transaction state ------------------------------------------------------------------ */

/* The reply for a failed spool write: a full disk (or no memory for the buffers) is the
 * temporary "insufficient system storage" of RFC 5321 4.2.2 and RFC 3463 X.3.1. */
static enum reply_id storage_reply(int e)
{
    return (e == ENOSPC || e == EDQUOT || e == ENOMEM) ? RP_NO_STORAGE : RP_LOCAL_ERROR;
}

static void transaction_reset(struct session *s)
{
    if (s->qw) {
        queue_writer_abort(s->qw);
        s->qw = NULL;
    }
    envelope_free(&s->env);
    envelope_init(&s->env);
    memset(&s->mail, 0, sizeof s->mail);
    s->msg_size = 0;
    s->too_big = false;
    s->write_errno = 0;
    hdrscan_init(&s->hdr);
    s->hdr_error = RP_OK;
    if (s->state != ST_CONNECTED && s->state != ST_CLOSED)
        s->state = ST_READY;
}

static const char *protocol(const struct session *s)
{
    return received_protocol(s->esmtp, s->tls, s->authenticated, s->mail.smtputf8);
}

/* Open the queue file and write the Received: header: the start of DATA or the first BDAT. */
static enum reply_id message_open(struct session *s)
{
    envelope_set(&s->env.client_addr, s->peer);
    envelope_set(&s->env.client_helo, s->helo);
    envelope_set(&s->env.protocol, protocol(s));
    s->env.arrival = wall_now();
    s->qw = queue_writer_open(s->cfg->spool_dir, &s->env);
    if (!s->qw) {
        log_err("cannot create queue file in %s: %s client=[%s]", s->cfg->spool_dir,
                strerror(errno), s->peer);
        return storage_reply(errno);
    }
    char hdr[2048];
    struct received_info ri = {
        .helo = s->helo,
        .client_addr = s->peer,
        .by = s->cfg->hostname,
        .protocol = protocol(s),
        .qid = s->env.qid,
        .tls = s->tls ? s->tls_desc : NULL,
        .for_rcpt = s->env.nrcpts == 1 && s->env.rcpts[0].addr[0] != '|' /* no command */
                        ? s->env.rcpts[0].addr : NULL,
        .when = s->env.arrival,
        .auth_user = s->authenticated && s->cfg->received_auth_user ? s->auth_user : NULL,
    };
    size_t n = received_format(hdr, sizeof hdr, &ri);
    if (n == 0 || queue_writer_write(s->qw, hdr, n) < 0) {
        int e = n == 0 ? EINVAL : errno;
        log_err("cannot write queue file qid=%s: %s", s->env.qid, strerror(e));
        queue_writer_abort(s->qw);
        s->qw = NULL;
        return storage_reply(e);
    }
    s->state = ST_DATA;
    return RP_OK;
}

/* Append content, enforcing the size limit; errors are remembered and reported at the end,
 * because the client keeps sending until then anyway. */
static void message_write(struct session *s, const char *buf, size_t len)
{
    s->msg_size += len;
    if (s->msg_size > s->cfg->max_message_size && !s->too_big) {
        s->too_big = true; /* stop filling the disk now; answer 552 at the end */
        queue_writer_abort(s->qw);
        s->qw = NULL;
    }
    if (!s->hdr.done && s->hdr_error == RP_OK) {
        hdrscan_feed(&s->hdr, buf, len);
        if (s->hdr.size > s->cfg->max_header_size)
            s->hdr_error = RP_HEADER_TOO_BIG;
        else if (s->hdr.fields > s->cfg->max_header_count)
            s->hdr_error = RP_TOO_MANY_HEADERS;
        if (s->hdr_error != RP_OK && s->qw) { /* as for too_big: answer at the end */
            queue_writer_abort(s->qw);
            s->qw = NULL;
        }
    }
    if (!s->qw || s->write_errno || len == 0)
        return;
    if (queue_writer_write(s->qw, buf, len) < 0)
        s->write_errno = errno ? errno : EIO;
}

/* End of data: refuse, or commit and answer 250 only once the message is durable. */
static void message_finish(struct session *s, unsigned flags)
{
    enum reply_id refuse = RP_OK;
    const char *why = NULL;
    if (s->too_big) {
        refuse = RP_SIZE_EXCEEDED;
    } else if (s->hdr_error == RP_HEADER_TOO_BIG) {
        refuse = RP_HEADER_TOO_BIG;
        why = "Message header section exceeds the limit (max_header_size)";
    } else if (s->hdr_error == RP_TOO_MANY_HEADERS) {
        refuse = RP_TOO_MANY_HEADERS;
        why = "Too many header fields in message (max_header_count)";
    } else if (flags & (DATA_BARE_LF | DATA_BARE_CR)) {
        refuse = RP_MSG_REFUSED;
        why = "Message refused: bare <CR> or <LF> in DATA; lines must end with <CR><LF> "
              "(RFC 5321 2.3.8)";
    } else if (flags & DATA_NUL) {
        refuse = RP_MSG_REFUSED;
        why = "Message refused: NUL octet in DATA (use BDAT with BODY=BINARYMIME)";
    } else if (flags & DATA_LONG_LINE) {
        refuse = RP_MSG_REFUSED;
        why = "Message refused: line longer than 1000 octets (RFC 5321 4.5.3.1.6)";
    } else if (s->write_errno) {
        refuse = storage_reply(s->write_errno);
        log_err("queue write failed qid=%s: %s", s->env.qid, strerror(s->write_errno));
    }
    if (refuse != RP_OK) {
        log_info("refused qid=%s client=[%s] from=<%s> size=%llu reason=%s", s->env.qid,
                 s->peer, s->env.sender, s->msg_size,
                 why ? why : reply_text(refuse));
        reply_line(s, refuse, false, why);
        transaction_reset(s);
        return;
    }
    struct queue_writer *qw = s->qw;
    s->qw = NULL;
    if (s->io.commit) {
        /* Group commit: the I/O layer syncs the file off the event loop together with other
         * sessions' messages and calls session_commit_done; no 250 before that. */
        s->state = ST_COMMIT;
        s->io.commit(s->io.ctx, qw);
        return;
    }
    int err = queue_writer_commit(qw) < 0 ? (errno ? errno : EIO) : 0;
    session_commit_done(s, err);
}

void session_commit_done(struct session *s, int err)
{
    if (err) {
        log_err("queue commit failed qid=%s: %s", s->env.qid, strerror(err));
        reply(s, storage_reply(err));
        transaction_reset(s);
        return;
    }
    log_info("queued qid=%s client=[%s] helo=%s from=<%s> size=%llu nrcpt=%zu proto=%s",
             s->env.qid, s->peer, s->helo, s->env.sender, s->msg_size, s->env.nrcpts,
             protocol(s));
    if (s->env.hold_until > 0)
        log_info("held qid=%s until=%lld", s->env.qid, (long long)s->env.hold_until);
    replyf(s, RP_QUEUED, "Ok: queued as %s", s->env.qid);
    transaction_reset(s);
}

/* ---- command handlers ------------------------------------------------------------------- */

typedef void handler_fn(struct session *s, const char *arg, size_t arglen);

static bool has_arg(size_t arglen, const char *arg)
{
    for (size_t i = 0; i < arglen; i++)
        if (arg[i] != ' ' && arg[i] != '\t')
            return true;
    return false;
}

/* Copy an argument into a C string, trimming trailing blanks. */
static bool arg_string(char *out, size_t cap, const char *arg, size_t arglen)
{
    while (arglen > 0 && (arg[arglen - 1] == ' ' || arg[arglen - 1] == '\t'))
        arglen--;
    if (arglen >= cap)
        return false;
    memcpy(out, arg, arglen);
    out[arglen] = '\0';
    return true;
}

static bool starttls_offered(const struct session *s)
{
    return s->listener && s->listener->starttls && !s->tls;
}

static bool helo_common(struct session *s, const char *arg, size_t arglen, const char *verb)
{
    char name[SMTP_DOMAIN_MAX + 1];
    if (!has_arg(arglen, arg)) {
        char text[64];
        snprintf(text, sizeof text, "%s requires a domain name or address literal", verb);
        error_reply(s, RP_SYNTAX, text);
        return false;
    }
    if (!arg_string(name, sizeof name, arg, arglen) || !smtp_valid_domain(name, strlen(name), true)) {
        error_reply(s, RP_SYNTAX, "Invalid domain name or address literal (RFC 5321 4.1.1.1)");
        return false;
    }
    /* HELO/EHLO in the middle of a session resets it like RSET (RFC 5321 4.1.4). */
    transaction_reset(s);
    str_copy(s->helo, sizeof s->helo, name);
    s->state = ST_READY;
    return true;
}

/* Is the client on loopback (127.0.0.0/8, ::1, or IPv4-mapped 127/8)? */
static bool peer_is_loopback(const struct session *s)
{
    return strncmp(s->peer, "127.", 4) == 0 || strcmp(s->peer, "::1") == 0 ||
           strncmp(s->peer, "::ffff:127.", 11) == 0;
}

/* May mechanisms that send the password in clear (PLAIN, LOGIN) be used now? Only over TLS,
 * or on loopback when auth_plaintext_loopback is on (RFC 4954 4, 14). */
static bool plaintext_auth_ok(const struct session *s)
{
    return s->tls || (s->cfg->auth_plaintext_loopback && peer_is_loopback(s));
}

static bool any_cram_user(const struct users *u)
{
    for (size_t i = 0; i < u->n; i++)
        if (u->v[i].has_cram)
            return true;
    return false;
}

/* Until Dovecot has answered a handshake, PLAIN and LOGIN are assumed (its default). */
static const struct dovecot_mechs relay_fallback = {
    .v = {{"PLAIN", DMECH_PLAINTEXT}, {"LOGIN", DMECH_PLAINTEXT}},
    .n = 2,
};

static const struct dovecot_mechs *relay_mechs(const struct session *s)
{
    const struct dovecot_mechs *ms = s->sasl->mechs(s->io.ctx);
    return ms ? ms : &relay_fallback;
}

/* A mechanism the external server announced that may be used now: relayable, and not one
 * sending the password in clear unless plaintext_auth_ok. NULL if unknown; *need_tls is set
 * when it exists but needs TLS (538). */
static const struct dovecot_mech *relay_mech(const struct session *s, const char *name,
                                             bool *need_tls)
{
    const struct dovecot_mech *m = dovecot_mech_find(relay_mechs(s), name);
    *need_tls = false;
    if (!m || !dovecot_mech_relayable(m))
        return NULL;
    *need_tls = (m->flags & DMECH_PLAINTEXT) && !plaintext_auth_ok(s);
    return m;
}

/* EHLO's mechanisms with an external server: what it announced and tern can relay now. */
static const char *relay_mechanisms(const struct session *s, char *buf, size_t cap)
{
    const struct dovecot_mechs *ms = relay_mechs(s);
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < ms->n; i++) {
        bool need_tls;
        size_t n = strlen(ms->v[i].name);
        if (!relay_mech(s, ms->v[i].name, &need_tls) || need_tls || len + n + 2 > cap)
            continue;
        if (len)
            buf[len++] = ' ';
        memcpy(buf + len, ms->v[i].name, n + 1);
        len += n;
    }
    return buf;
}

/* The mechanisms to list after "AUTH" in EHLO, "" when none is usable now. CRAM-MD5 only
 * when some user has a CRAM-MD5 secret (users added with --cram). */
static const char *auth_mechanisms(const struct session *s, char *buf, size_t cap)
{
    if (!auth_offered(s) || s->authenticated)
        return "";
    if (s->sasl)
        return relay_mechanisms(s, buf, cap);
    snprintf(buf, cap, "%sSCRAM-SHA-256%s", plaintext_auth_ok(s) ? "PLAIN LOGIN " : "",
             any_cram_user(s->users) ? " CRAM-MD5" : "");
    return buf;
}

static void future_release_keyword(const struct session *s, char *buf, size_t cap);
static bool is_odmr(const struct session *s)
{
    return s->listener && s->listener->kind == LISTEN_ODMR;
}

static void odmr_ehlo(struct session *s);

static void cmd_ehlo(struct session *s, const char *arg, size_t arglen)
{
    if (!helo_common(s, arg, arglen, "EHLO"))
        return;
    s->esmtp = true;
    if (is_odmr(s)) {
        odmr_ehlo(s);
        return;
    }
    char line[SMTP_REPLY_MAX], auth[SMTP_REPLY_MAX - 16], mechs[SMTP_REPLY_MAX - 32], future[80];
    snprintf(line, sizeof line, "%s Hello %s [%s]", s->cfg->hostname, s->helo, s->peer);
    reply_line(s, RP_HELO, true, line);
    snprintf(line, sizeof line, "SIZE %zu", s->cfg->max_message_size);
    const char *m = auth_mechanisms(s, mechs, sizeof mechs);
    snprintf(auth, sizeof auth, "AUTH %s", m);
    future_release_keyword(s, future, sizeof future);
    const char *ext[] = {"PIPELINING", line, "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                         "CHUNKING", "BINARYMIME", "DSN", "STARTTLS", auth, "ETRN", future,
                         "HELP"};
    for (size_t i = 0; i < ARRAY_LEN(ext); i++) {
        if (strcmp(ext[i], "STARTTLS") == 0 && !starttls_offered(s))
            continue; /* and never again once TLS is active (RFC 3207 4.2) */
        if ((ext[i] == auth && m[0] == '\0') || ext[i][0] == '\0')
            continue;
        reply_line(s, RP_HELO, i + 1 < ARRAY_LEN(ext), ext[i]);
    }
}

static void cmd_helo(struct session *s, const char *arg, size_t arglen)
{
    if (!helo_common(s, arg, arglen, "HELO"))
        return;
    s->esmtp = false;
    char line[SMTP_REPLY_MAX];
    snprintf(line, sizeof line, "%s Hello %s [%s]", s->cfg->hostname, s->helo, s->peer);
    reply_line(s, RP_HELO, false, line);
}

/* The reply for a path that did not parse. */
static void path_error(struct session *s, enum parse_result r, enum reply_id syntax)
{
    switch (r) {
    case PARSE_TOO_LONG:
        error_reply(s, RP_PATH_TOO_LONG, NULL);
        break;
    case PARSE_NEED_UTF8:
        error_reply(s, R_NEED_UTF8, NULL);
        break;
    default:
        error_reply(s, syntax, syntax == RP_BAD_SENDER
                                   ? "Syntax: MAIL FROM:<address> [parameters]"
                                   : "Syntax: RCPT TO:<address> [parameters]");
        break;
    }
}

static void param_error(struct session *s, enum parse_result r, const char *keyword)
{
    char text[128];
    if (r == PARSE_UNKNOWN_PARAM) {
        snprintf(text, sizeof text, "Unsupported parameter %s", keyword);
        error_reply(s, RP_PARAM_UNKNOWN, text);
    } else {
        snprintf(text, sizeof text, "Bad value for parameter %s", keyword[0] ? keyword : "");
        error_reply(s, RP_SYNTAX, text);
    }
}

static bool hold_check(struct session *s, long long until, const char *what, time_t *out);

/* MAIL FROM, and SOML / SAML FROM (RFC 821 4.1.1): "send or mail" / "send and mail" deliver to
 * the terminal if the user is there and (or else) to the mailbox. tern has no terminals, so
 * both are exactly MAIL: the mailbox is where the message goes. */
static void cmd_mail(struct session *s, const char *arg, size_t arglen)
{
    if (s->state == ST_CONNECTED) {
        error_reply(s, RP_BAD_SEQUENCE, "Send HELO or EHLO first");
        return;
    }
    if (s->state != ST_READY) {
        error_reply(s, RP_BAD_SEQUENCE, "Nested MAIL command: a transaction is in progress (RSET first)");
        return;
    }
    if (s->listener && s->listener->require_tls && !s->tls) {
        error_reply(s, RP_TLS_REQUIRED, NULL);
        return;
    }
    if (auth_offered(s) && !s->authenticated && s->listener &&
        (s->listener->kind == LISTEN_SUBMISSION || s->listener->kind == LISTEN_SMTPS)) {
        error_reply(s, RP_AUTH_REQUIRED, "Authentication required: submission needs AUTH "
                                         "before MAIL (RFC 4954)");
        return;
    }
    struct smtp_path path;
    const char *params;
    size_t paramslen;
    enum parse_result r = smtp_parse_path_arg(arg, arglen, "FROM:", true, false, true, &path,
                                              &params, &paramslen);
    if (r != PARSE_OK) {
        path_error(s, r, RP_BAD_SENDER);
        return;
    }
    struct mail_params mp;
    char bad[32] = "";
    if (paramslen > 0 && !s->esmtp) {
        error_reply(s, RP_PARAM_UNKNOWN, "Parameters need EHLO, not HELO");
        return;
    }
    r = smtp_parse_mail_params(params, paramslen, &mp, bad, sizeof bad);
    if (r != PARSE_OK) {
        param_error(s, r, bad);
        return;
    }
    if (path.utf8 && !mp.smtputf8) {
        error_reply(s, R_NEED_UTF8, NULL);
        return;
    }
    if (mp.has_size && mp.size > s->cfg->max_message_size) {
        replyf(s, RP_SIZE_EXCEEDED, "Message size %llu exceeds fixed limit of %zu octets",
               mp.size, s->cfg->max_message_size);
        return;
    }
    time_t hold_until = 0;
    if (mp.hold != HOLD_NONE &&
        !hold_check(s, mp.hold == HOLD_FOR ? wall_now() + mp.hold_for : mp.hold_until,
                    mp.hold == HOLD_FOR ? "HOLDFOR" : "HOLDUNTIL", &hold_until))
        return;
    /* Refuse now, not after the client sent the whole message, when the spool's disk is
     * (nearly) full; SIZE= counts too (RFC 1870 6.1: 452 for a temporary shortage). */
    long long avail = s->cfg->min_free_space > 0 ? queue_free_space(s->cfg->spool_dir) : -1;
    if (avail >= 0 && (unsigned long long)avail < (unsigned long long)s->cfg->min_free_space +
                                                      (mp.has_size ? mp.size : 0)) {
        log_warn("refused client=[%s] from=<%s> reason=spool-full free=%lld min_free_space=%zu",
                 s->peer, path.addr, avail, s->cfg->min_free_space);
        reply(s, RP_NO_STORAGE);
        return;
    }
    if (s->authenticated && s->cfg->sender_login_match &&
        !config_sender_owned(s->cfg, s->auth_user, path.addr)) {
        log_info("reject client=[%s] user=%s from=<%s> reason=sender-login-mismatch", s->peer,
                 s->auth_user, path.addr);
        replyf(s, RP_SENDER_NOT_OWNED, "<%s>: Sender address not owned by user %s", path.addr,
               s->auth_user);
        return;
    }
    transaction_reset(s);
    s->mail = mp;
    envelope_set(&s->env.sender, path.addr);
    s->env.body = mp.body;
    s->env.smtputf8 = mp.smtputf8;
    s->env.ret = mp.ret;
    envelope_set(&s->env.envid, mp.envid);
    s->env.hold_until = hold_until;
    s->state = ST_MAIL;
    replyf(s, RP_MAIL_OK, "Sender <%s> ok", path.addr);
}

static bool rcpt_known(const struct envelope *env, const char *addr)
{
    for (size_t i = 0; i < env->nrcpts; i++)
        if (str_ieq(env->rcpts[i].addr, addr))
            return true;
    return false;
}

/* The reply for an alias that is not deliverable as it stands (docs/aliases.md). given is the
 * address as the client wrote it. Returns false for the results that are not failures. */
static bool alias_refusal(struct session *s, enum alias_status st,
                          const struct alias_expansion *ex, const char *given)
{
    switch (st) {
    case ALIAS_RELOCATED: /* RFC 5321 3.4: 551 with the new address, not forwarded */
        log_info("reject client=[%s] from=<%s> to=<%s> reason=relocated new=<%s>", s->peer,
                 s->env.sender ? s->env.sender : "", given, ex->detail);
        replyf(s, RP_USER_MOVED, "<%s>: User has moved; please try <%s>", given, ex->detail);
        return true;
    case ALIAS_NO_SUCH_USER:
        log_info("reject client=[%s] to=<%s> reason=unknown-virtual-user", s->peer, given);
        replyf(s, RP_NO_MAILBOX, "<%s>: Recipient address rejected: no such user here", given);
        return true;
    case ALIAS_LOOP:
    case ALIAS_TOO_DEEP:
    case ALIAS_TOO_MANY:
        log_warn("alias error to=<%s>: %s", given, ex->detail);
        replyf(s, st == ALIAS_TOO_MANY ? RP_ALIAS_REFUSED : RP_ALIAS_LOOP,
               "<%s>: Alias expansion failed: %s", given, ex->detail);
        return true;
    case ALIAS_REFUSED:
        log_warn("alias refused to=<%s> target=%s reason=%s", given, ex->detail,
                 ex->detail[0] == '|' ? "command not allowed (allow_pipe_aliases, or not in "
                                        "the aliases file)" : "file targets unsupported");
        replyf(s, RP_ALIAS_REFUSED, "<%s>: Alias delivers to a %s, which is not allowed here",
               given, ex->detail[0] == '|' ? "command" : "file");
        return true;
    case ALIAS_EXPANDED:
        if (ex->n > 0)
            return false;
        replyf(s, RP_NO_MAILBOX, "<%s>: Alias has no members", given);
        return true;
    case ALIAS_NOT_FOUND:
        break;
    }
    return false;
}

/* RCPT to an address of the alias maps: each final target becomes an envelope recipient with
 * ORCPT the address the client gave (RFC 3461 4.2), so per-recipient state and DSNs work as
 * usual. Targets in other domains need no relay permission: the alias owner chose them.
 * Returns false when no map knows addr. */
static bool rcpt_alias(struct session *s, const char *addr, const char *given,
                       const struct rcpt_params *rp)
{
    struct alias_expansion ex;
    enum alias_status st = aliases_expand(s->cfg->aliases, s->cfg, addr, &ex);
    bool done = st != ALIAS_NOT_FOUND;
    if (alias_refusal(s, st, &ex, given) || !done) {
        alias_expansion_free(&ex);
        return done;
    }
    size_t fresh = 0;
    for (size_t i = 0; i < ex.n; i++)
        fresh += !rcpt_known(&s->env, ex.addrs[i]);
    if (s->env.nrcpts + fresh > s->cfg->max_recipients) {
        replyf(s, RP_TOO_MANY_RCPTS, "<%s>: alias expands to too many recipients (at most %zu "
               "per message)", given, s->cfg->max_recipients);
        alias_expansion_free(&ex);
        return true;
    }
    char orcpt[SMTP_ORCPT_MAX + 1] = "rfc822;";
    if (rp->orcpt[0])
        str_copy(orcpt, sizeof orcpt, rp->orcpt);
    else if (!xtext_encode(given, strlen(given), orcpt + 7, sizeof orcpt - 7))
        orcpt[0] = '\0';
    for (size_t i = 0; i < ex.n; i++)
        if (!rcpt_known(&s->env, ex.addrs[i]))
            envelope_add_rcpt(&s->env, ex.addrs[i], rp->notify, orcpt);
    log_info("alias client=[%s] from=<%s> to=<%s> expanded=%zu new=%zu", s->peer, s->env.sender,
             given, ex.n, fresh);
    s->state = ST_RCPT;
    replyf(s, RP_RCPT_OK, "Recipient <%s> ok", given);
    alias_expansion_free(&ex);
    return true;
}

static void cmd_rcpt(struct session *s, const char *arg, size_t arglen)
{
    if (s->state != ST_MAIL && s->state != ST_RCPT) {
        error_reply(s, RP_BAD_SEQUENCE, s->state == ST_CONNECTED ? "Send HELO or EHLO first"
                                                                 : "Need MAIL command first");
        return;
    }
    struct smtp_path path;
    const char *params;
    size_t paramslen;
    enum parse_result r = smtp_parse_path_arg(arg, arglen, "TO:", false, true, s->mail.smtputf8,
                                              &path, &params, &paramslen);
    if (r != PARSE_OK) {
        path_error(s, r, RP_BAD_RCPT);
        return;
    }
    struct rcpt_params rp;
    char bad[32] = "";
    if (paramslen > 0 && !s->esmtp) {
        error_reply(s, RP_PARAM_UNKNOWN, "Parameters need EHLO, not HELO");
        return;
    }
    r = smtp_parse_rcpt_params(params, paramslen, &rp, bad, sizeof bad);
    if (r != PARSE_OK) {
        param_error(s, r, bad);
        return;
    }
    char local[SMTP_LOCAL_MAX + 1], domain[SMTP_DOMAIN_MAX + 1], addr[SMTP_PATH_MAX + 1];
    if (path.postmaster) {
        /* <Postmaster> with no domain means the postmaster of this host (RFC 5321 4.1.1.3). */
        if (s->cfg->nlocal_domains == 0) {
            reply(s, RP_NO_MAILBOX);
            return;
        }
        str_copy(local, sizeof local, "postmaster");
        str_copy(domain, sizeof domain, s->cfg->local_domains[0]);
    } else {
        str_copy(local, sizeof local, path.local);
        str_copy(domain, sizeof domain, path.domain);
    }
    str_lower(domain);
    /* The envelope keeps the canonical form (quoted local part where needed), domain in
     * lower case. */
    if (path.postmaster)
        snprintf(addr, sizeof addr, "postmaster@%.*s", SMTP_PATH_MAX - 12, domain);
    else
        snprintf(addr, sizeof addr, "%.*s%s", (int)(strrchr(path.addr, '@') - path.addr + 1),
                 path.addr, domain);
    if (rcpt_alias(s, addr, path.postmaster ? addr : path.addr, &rp))
        return;
    bool local_domain = config_is_local_domain(s->cfg, domain);
    /* Mail for a domain held for ODMR is accepted from anyone, as its backup MX would. */
    bool odmr_held = !local_domain && config_is_odmr_domain(s->cfg, domain);
    if (!local_domain && !odmr_held && !s->authenticated &&
        !config_relay_allowed(s->cfg, s->peer)) {
        /* Only authenticated users and clients in relay_networks may relay: tern is never
         * an open relay. */
        log_info("reject client=[%s] from=<%s> to=<%s> reason=relay", s->peer, s->env.sender,
                 path.addr);
        replyf(s, RP_RELAY_DENIED, "<%s>: Relay access denied", path.addr);
        return;
    }
    if (odmr_held) {
        log_info("hold client=[%s] from=<%s> to=<%s> reason=odmr", s->peer, s->env.sender,
                 path.addr);
    } else if (!local_domain) {
        log_info("relay client=[%s] from=<%s> to=<%s> relay=%s", s->peer, s->env.sender,
                 path.addr, s->authenticated ? "authenticated" : "allowed");
    } else if (!config_has_mailbox(s->cfg, local, domain)) {
        log_info("reject client=[%s] from=<%s> to=<%s> reason=unknown-user", s->peer,
                 s->env.sender, path.addr);
        replyf(s, RP_NO_MAILBOX, "<%s>: Recipient address rejected: no such user here",
               path.addr);
        return;
    }
    if (rcpt_known(&s->env, addr)) { /* deliver once, but the client did nothing wrong */
        replyf(s, RP_RCPT_OK, "Recipient <%s> ok (duplicate)", path.addr);
        return;
    }
    if (s->env.nrcpts >= s->cfg->max_recipients) {
        replyf(s, RP_TOO_MANY_RCPTS, "Too many recipients (at most %zu per message)",
               s->cfg->max_recipients);
        return;
    }
    envelope_add_rcpt(&s->env, addr, rp.notify, rp.orcpt);
    s->state = ST_RCPT;
    replyf(s, RP_RCPT_OK, "Recipient <%s> ok", path.addr);
}

/* DATA and BDAT share this check of the transaction state. */
static bool transaction_ready(struct session *s)
{
    if (s->state == ST_CONNECTED || s->state == ST_READY) {
        error_reply(s, RP_BAD_SEQUENCE, s->state == ST_CONNECTED ? "Send HELO or EHLO first"
                                                                 : "Need MAIL command first");
        return false;
    }
    if (s->state == ST_MAIL) {
        error_reply(s, RP_BAD_SEQUENCE, "Need RCPT command first");
        return false;
    }
    return true;
}

static void cmd_data(struct session *s, const char *arg, size_t arglen)
{
    if (has_arg(arglen, arg)) {
        error_reply(s, RP_SYNTAX, "DATA takes no argument");
        return;
    }
    if (!transaction_ready(s))
        return;
    if (s->state == ST_BDAT) {
        error_reply(s, RP_BAD_SEQUENCE, "DATA cannot follow BDAT in one transaction (RFC 3030 2)");
        return;
    }
    if (s->mail.body == BODY_BINARYMIME) {
        error_reply(s, RP_BAD_SEQUENCE, "BODY=BINARYMIME requires BDAT, not DATA (RFC 3030 3)");
        return;
    }
    enum reply_id r = message_open(s);
    if (r != RP_OK) {
        reply(s, r);
        transaction_reset(s);
        return;
    }
    data_reader_init(&s->dr);
    reply(s, RP_START_DATA);
}

static void cmd_bdat(struct session *s, const char *arg, size_t arglen)
{
    /* BDAT chunk-size [SP "LAST"] (RFC 3030 2). Without a valid size we cannot know where the
     * chunk ends, so that is the one error after which the octets are read as commands. */
    char buf[64], *end;
    if (!arg_string(buf, sizeof buf, arg, arglen) || buf[0] < '0' || buf[0] > '9') {
        error_reply(s, RP_SYNTAX, "Syntax: BDAT chunk-size [LAST]");
        return;
    }
    errno = 0;
    unsigned long long size = strtoull(buf, &end, 10);
    bool last = false;
    if (*end == ' ' && str_ieq(end + 1, "LAST"))
        last = true;
    else if (*end != '\0' || errno == ERANGE) {
        error_reply(s, RP_SYNTAX, "Syntax: BDAT chunk-size [LAST]");
        return;
    }
    s->chunk_left = size;
    s->chunk_last = last;
    s->chunk_error = RP_OK;
    s->reading_chunk = true;
    /* The chunk is consumed even when the command is refused (RFC 3030 2). */
    if (s->state == ST_CONNECTED || s->state == ST_READY || s->state == ST_MAIL)
        s->chunk_error = RP_BAD_SEQUENCE;
    else if (s->state == ST_DATA)
        s->chunk_error = RP_BAD_SEQUENCE;
    else if (s->state == ST_RCPT) {
        enum reply_id r = message_open(s);
        if (r != RP_OK)
            s->chunk_error = r;
        else
            s->state = ST_BDAT;
    }
    if (size == 0)
        session_data(s, "", 0);
}

/* A chunk has been read completely. */
static void chunk_done(struct session *s)
{
    s->reading_chunk = false;
    if (s->chunk_error != RP_OK) {
        if (s->chunk_error == RP_BAD_SEQUENCE)
            error_reply(s, RP_BAD_SEQUENCE, s->state == ST_MAIL ? "Need RCPT command first"
                                           : s->state == ST_READY ? "Need MAIL command first"
                                                                   : NULL);
        else
            reply(s, s->chunk_error);
        transaction_reset(s);
        return;
    }
    if (s->chunk_last) {
        message_finish(s, 0);
        return;
    }
    if (s->too_big) { /* no point in more chunks: fail the transaction now */
        reply(s, RP_SIZE_EXCEEDED);
        transaction_reset(s);
        return;
    }
    replyf(s, RP_CHUNK_OK, "%llu octets received", s->msg_size);
}

static void cmd_rset(struct session *s, const char *arg, size_t arglen)
{
    if (has_arg(arglen, arg)) {
        error_reply(s, RP_SYNTAX, "RSET takes no argument");
        return;
    }
    transaction_reset(s);
    reply(s, RP_OK);
}

static void cmd_noop(struct session *s, const char *arg, size_t arglen)
{
    (void)arg, (void)arglen; /* the argument is allowed and ignored (RFC 5321 4.1.1.9) */
    reply(s, RP_OK);
}

static void cmd_quit(struct session *s, const char *arg, size_t arglen)
{
    if (has_arg(arglen, arg)) {
        error_reply(s, RP_SYNTAX, "QUIT takes no argument");
        return;
    }
    replyf(s, RP_BYE, "%s closing connection", s->cfg->hostname);
    session_abort(s);
}

/* VRFY or EXPN of an alias (enabled): EXPN lists every final address, one per line of a
 * multi-line 250 (RFC 5321 3.5.2); VRFY confirms it. Returns false when no map knows it. */
static bool verify_alias(struct session *s, const char *local, const char *domain, bool expn)
{
    char addr[SMTP_PATH_MAX + 1];
    if (snprintf(addr, sizeof addr, "%s@%s", local, domain) >= (int)sizeof addr)
        return false;
    str_lower(strrchr(addr, '@'));
    struct alias_expansion ex;
    enum alias_status st = aliases_expand(s->cfg->aliases, s->cfg, addr, &ex);
    bool done = st != ALIAS_NOT_FOUND;
    if (done && !alias_refusal(s, st, &ex, addr)) {
        if (!expn)
            replyf(s, RP_VRFY_OK, "<%s> (alias of %zu address%s)", addr, ex.n,
                   ex.n == 1 ? "" : "es");
        /* Commands ("|command", allow_pipe_aliases) are not shown: not mailboxes. */
        size_t shown = 0, last = 0;
        for (size_t i = 0; i < ex.n; i++)
            if (ex.addrs[i][0] != '|')
                shown++, last = i;
        if (expn && shown == 0)
            replyf(s, RP_VRFY_OK, "<%s> (delivered to a command)", addr);
        for (size_t i = 0; expn && i < ex.n; i++) {
            char line[SMTP_PATH_MAX + 3];
            snprintf(line, sizeof line, "<%s>", ex.addrs[i]);
            if (ex.addrs[i][0] != '|')
                reply_line(s, RP_VRFY_OK, i != last, line);
        }
    }
    alias_expansion_free(&ex);
    return done;
}

/* VRFY and EXPN: 252 unless enabled, as RFC 5321 3.5.3 allows; real answers when enabled. */
static void verify(struct session *s, const char *arg, size_t arglen, bool expn)
{
    char name[SMTP_PATH_MAX + 1];
    if (!has_arg(arglen, arg) || !arg_string(name, sizeof name, arg, arglen)) {
        error_reply(s, RP_SYNTAX, expn ? "Syntax: EXPN mailing-list" : "Syntax: VRFY mailbox");
        return;
    }
    if (!s->cfg->vrfy_enabled) {
        reply(s, RP_CANNOT_VRFY);
        return;
    }
    char *at, *p = name;
    size_t len = strlen(p);
    if (len >= 2 && p[0] == '<' && p[len - 1] == '>') {
        p[len - 1] = '\0';
        p++;
    }
    at = strrchr(p, '@');
    const char *domain = at ? at + 1 : (s->cfg->nlocal_domains ? s->cfg->local_domains[0] : "");
    if (at)
        *at = '\0';
    if (verify_alias(s, p, domain, expn))
        return;
    if (!config_is_local_domain(s->cfg, domain)) {
        reply(s, RP_CANNOT_VRFY);
        return;
    }
    if (expn && config_has_mailbox(s->cfg, p, domain)) /* RFC 5321 3.5.3 */
        replyf(s, RP_NO_MAILBOX, "<%s@%s>: that is a mailbox, not a mailing list", p, domain);
    else if (config_has_mailbox(s->cfg, p, domain))
        replyf(s, RP_VRFY_OK, "<%s@%s>", p, domain);
    else
        replyf(s, RP_NO_MAILBOX, expn ? "<%s@%s>: no such mailing list" : "<%s@%s>: no such user",
               p, domain);
}

static void cmd_vrfy(struct session *s, const char *arg, size_t arglen)
{
    verify(s, arg, arglen, false);
}

static void cmd_expn(struct session *s, const char *arg, size_t arglen)
{
    verify(s, arg, arglen, true);
}

static void cmd_help(struct session *s, const char *arg, size_t arglen);

/* STARTTLS (RFC 3207): the I/O layer drops whatever the client sent after this line (it
 * must not be executed: CVE-2011-0411) and runs the handshake; session_tls_started follows. */
static void cmd_starttls(struct session *s, const char *arg, size_t arglen)
{
    if (has_arg(arglen, arg)) {
        error_reply(s, RP_SYNTAX, "STARTTLS takes no argument");
        return;
    }
    if (s->tls) {
        error_reply(s, RP_BAD_SEQUENCE, "TLS is already active");
        return;
    }
    if (!starttls_offered(s)) {
        error_reply(s, RP_NOT_IMPLEMENTED, "STARTTLS is not offered on this port");
        return;
    }
    if (s->state == ST_MAIL || s->state == ST_RCPT) {
        error_reply(s, RP_BAD_SEQUENCE, "STARTTLS is not allowed in a mail transaction (RSET first)");
        return;
    }
    reply(s, RP_TLS_READY);
    s->state = ST_STARTTLS;
}

/* ---- AUTH (RFC 4954) -------------------------------------------------------------------- */

/* A fixed yescrypt setting: checking a password for an unknown user costs as much as for a
 * known one, so response times do not reveal which names exist. */
static const char dummy_hash[] = "$y$j9T$7PaUK6TQDHgXPAhpm6B1H/$";

static void auth_reset(struct session *s)
{
    if (s->sasl && (s->auth_step == AUTH_EXT_WAIT || s->auth_step == AUTH_EXT_CONT))
        s->sasl->cancel(s->io.ctx);
    s->ext_user[0] = '\0';
    s->auth_step = AUTH_IDLE;
    memset(s->login_user, 0, sizeof s->login_user);
    s->cram_challenge[0] = '\0';
    if (s->scram) {
        scram_server_free(s->scram);
        free(s->scram);
        s->scram = NULL;
    }
}

static void auth_done(struct session *s, const char *mech, const char *user, bool ok);

/* Check user's password (PLAIN, LOGIN), then auth_done. An unknown user is checked against
 * dummy_hash, so that costs the same. With io.check_password the check runs off the loop and
 * the session waits (MODE_WAIT) for session_password_checked; else it runs here. */
static void auth_check(struct session *s, const char *mech, const char *user,
                       const char *password)
{
    const struct user_entry *e = users_find(s->users, user);
    const char *hash = e ? e->crypt_hash : dummy_hash;
    if (!s->io.check_password) {
        bool ok = users_check_hash(hash, password);
        auth_done(s, mech, user, ok && e);
        return;
    }
    s->check_mech = mech;
    str_copy(s->check_user, sizeof s->check_user, user);
    s->check_known = e != NULL;
    s->auth_step = AUTH_CHECK_WAIT;
    log_debug("auth client=[%s] mech=%s user=%s check=started", s->peer, mech, user);
    s->io.check_password(s->io.ctx, hash, password);
}

void session_password_checked(struct session *s, bool ok)
{
    if (s->auth_step != AUTH_CHECK_WAIT || s->state == ST_CLOSED)
        return; /* an answer nobody waits for any more */
    s->auth_step = AUTH_IDLE;
    char user[USERS_NAME_MAX + 1];
    str_copy(user, sizeof user, s->check_user);
    auth_done(s, s->check_mech, user, ok && s->check_known);
}

static void auth_done(struct session *s, const char *mech, const char *user, bool ok)
{
    auth_reset(s);
    if (ok) {
        if (s->authlock)
            authlock_success(s->authlock, s->peer);
        s->authenticated = true;
        str_copy(s->auth_user, sizeof s->auth_user, user);
        log_info("auth client=[%s] mech=%s user=%s result=ok", s->peer, mech, user);
        reply(s, RP_AUTH_OK);
        return;
    }
    s->auth_failures++;
    /* Failures count per connection (the delay) and per address across connections (the
     * lockout, in this worker process). */
    unsigned n = 0;
    bool locked = false;
    if (s->authlock)
        n = authlock_fail(s->authlock, s->peer, wall_now(), &locked);
    log_info("auth client=[%s] mech=%s user=%s result=failed failures=%u address-failures=%u",
             s->peer, mech, user[0] ? user : "-", s->auth_failures, n);
    if (locked)
        log_warn("auth lockout client=[%s] failures=%u for %ds", s->peer, n,
                 s->cfg->auth_lockout);
    /* Growing delay before the 535 (and before reading anything more): 1 s, 2 s, 4 s ... */
    unsigned ms = 1000;
    for (unsigned i = 1; i < s->auth_failures && ms < AUTH_DELAY_MAX_MS; i++)
        ms *= 2;
    if (ms > AUTH_DELAY_MAX_MS)
        ms = AUTH_DELAY_MAX_MS;
    /* pause first: the I/O layer holds back what is written during the pause. Not when this
     * error ends the session (max_errors): then the 535 and 421 go out at once. */
    if (s->io.pause && s->errors + 1 < s->cfg->max_errors)
        s->io.pause(s->io.ctx, ms);
    error_reply(s, RP_AUTH_FAILED, NULL);
}

/* Decode one base64 client response ("=" is the empty response, RFC 4954 4). The result is a
 * NUL-terminated buffer of *len octets (which may hold NULs: PLAIN). -1 if not base64. */
static long auth_decode(const char *in, size_t inlen, unsigned char *out, size_t cap)
{
    if (inlen == 0 || (inlen == 1 && in[0] == '=')) { /* an empty response */
        out[0] = '\0';
        return 0;
    }
    return smtp_b64_decode(in, inlen, out, cap);
}

/* PLAIN (RFC 4616): [authzid] NUL authcid NUL passwd. */
static void auth_plain(struct session *s, const unsigned char *msg, size_t len)
{
    const unsigned char *nul1 = memchr(msg, '\0', len);
    const unsigned char *nul2 = nul1 ? memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - msg))
                                     : NULL;
    if (!nul2) {
        auth_done(s, "PLAIN", "", false);
        return;
    }
    const char *authz = (const char *)msg, *user = (const char *)nul1 + 1;
    char pw[1024];
    size_t pwlen = len - (size_t)(nul2 + 1 - msg);
    if (pwlen >= sizeof pw || memchr(nul2 + 1, '\0', pwlen)) {
        auth_done(s, "PLAIN", user, false);
        return;
    }
    memcpy(pw, nul2 + 1, pwlen);
    pw[pwlen] = '\0';
    /* No proxy authorization: an authzid other than the user itself is refused. */
    if ((authz[0] == '\0' || strcmp(authz, user) == 0) && user[0])
        auth_check(s, "PLAIN", user, pw);
    else
        auth_done(s, "PLAIN", user, false);
    OPENSSL_cleanse(pw, sizeof pw);
}

/* Send a 334 with msg base64-encoded. */
static void auth_challenge(struct session *s, const char *msg, size_t len)
{
    char enc[4 * ((SMTP_REPLY_MAX / 2 + 2) / 3) + 1];
    if (len > SMTP_REPLY_MAX / 2)
        len = SMTP_REPLY_MAX / 2; /* our challenges are far shorter */
    smtp_b64_encode((const unsigned char *)msg, len, enc);
    reply_line(s, RP_AUTH_CONTINUE, false, enc);
}

/* CRAM-MD5 (RFC 2195): the response is "user SP 32-lower-hex-digest". */
static void auth_cram(struct session *s, const char *msg, size_t len)
{
    const char *sp = len > 33 ? msg + len - 33 : NULL;
    char user[USERS_NAME_MAX + 1] = "";
    if (!sp || *sp != ' ' || (size_t)(sp - msg) > USERS_NAME_MAX || memchr(msg, '\0', len)) {
        auth_done(s, "CRAM-MD5", "", false);
        return;
    }
    memcpy(user, msg, (size_t)(sp - msg));
    user[sp - msg] = '\0';
    const struct user_entry *e = users_find(s->users, user);
    if (e && !e->has_cram) { /* the user exists but has no CRAM-MD5 secret (RFC 4954 6) */
        log_info("auth client=[%s] mech=CRAM-MD5 user=%s result=refused reason=no-cram-secret",
                 s->peer, user);
        auth_reset(s);
        error_reply(s, RP_AUTH_TOO_WEAK, "Authentication mechanism is too weak for this user; "
                                         "use SCRAM-SHA-256 or PLAIN over TLS");
        return;
    }
    char want[33];
    bool ok = false;
    if (e) {
        users_cram_digest(e, s->cram_challenge, strlen(s->cram_challenge), want);
        char got[33];
        for (int i = 0; i < 32; i++) {
            char c = sp[1 + i];
            got[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
        }
        got[32] = '\0';
        ok = CRYPTO_memcmp(want, got, 32) == 0;
    }
    auth_done(s, "CRAM-MD5", user, ok);
}

static void auth_scram_first(struct session *s, const char *msg, size_t len)
{
    char err[128];
    s->scram = calloc(1, sizeof *s->scram);
    char *first = s->scram ? scram_server_first(s->scram, s->users, msg, len, err, sizeof err)
                           : NULL;
    if (!first) {
        log_info("auth client=[%s] mech=SCRAM-SHA-256 result=failed reason=%s", s->peer,
                 s->scram ? err : "out of memory");
        char user[USERS_NAME_MAX + 1];
        str_copy(user, sizeof user, s->scram ? s->scram->user : "");
        auth_done(s, "SCRAM-SHA-256", user, false);
        return;
    }
    s->auth_step = AUTH_SCRAM_FINAL;
    auth_challenge(s, first, strlen(first));
    free(first);
}

static void auth_scram_final(struct session *s, const char *msg, size_t len)
{
    char err[128], *final = NULL;
    int r = scram_server_final(s->scram, msg, len, &final, err, sizeof err);
    if (r != 1) {
        if (r < 0)
            log_info("auth client=[%s] mech=SCRAM-SHA-256 user=%s malformed: %s", s->peer,
                     s->scram->user, err);
        char user[USERS_NAME_MAX + 1];
        str_copy(user, sizeof user, s->scram->user);
        auth_done(s, "SCRAM-SHA-256", user, false);
        return;
    }
    s->auth_step = AUTH_SCRAM_ACK;
    auth_challenge(s, final, strlen(final));
    free(final);
}

/* ---- relaying to an external SASL server (Dovecot) ---- */

/* Relay the client's (decoded) response, re-encoded: only canonical base64 reaches the
 * server's protocol, whatever the client sent. */
static void relay_continue(struct session *s, const unsigned char *msg, size_t len)
{
    char *enc = xmalloc(4 * ((len + 2) / 3) + 1);
    smtp_b64_encode(msg, len, enc);
    bool ok = s->sasl->cont(s->io.ctx, enc);
    free(enc);
    if (!ok) {
        log_warn("auth client=[%s] mech=%s result=tempfail reason=auth-server-unreachable",
                 s->peer, s->ext_mech);
        auth_reset(s);
        reply(s, RP_AUTH_TEMPFAIL);
        return;
    }
    s->auth_step = AUTH_EXT_WAIT;
}

/* A 334 with the server's base64 data as it is (already checked to be base64). */
static void relay_challenge(struct session *s, const char *b64, size_t len)
{
    char *text = xstrndup(b64, len);
    size_t cap = len + 16;
    char *buf = xmalloc(cap);
    size_t n = reply_format(buf, cap, RP_AUTH_CONTINUE, false, text);
    s->io.write(s->io.ctx, buf, n);
    free(buf);
    free(text);
}

/* AUTH <mech> [initial-response] with an external server. */
static void relay_start(struct session *s, const char *mech, const char *ir, size_t irlen)
{
    bool need_tls;
    const struct dovecot_mech *m = relay_mech(s, mech, &need_tls);
    if (!m) {
        error_reply(s, RP_AUTH_UNKNOWN_MECH, NULL);
        return;
    }
    if (need_tls) {
        log_info("auth client=[%s] mech=%s result=refused reason=no-tls", s->peer, m->name);
        error_reply(s, RP_AUTH_NEED_TLS, NULL);
        return;
    }
    if (ir && irlen == 1 && ir[0] == '*') {
        error_reply(s, RP_AUTH_CANCELLED, NULL);
        return;
    }
    char *enc = NULL;
    if (ir) {
        unsigned char buf[AUTH_LINE_MAX];
        long n = auth_decode(ir, irlen, buf, sizeof buf);
        if (n < 0) {
            error_reply(s, RP_AUTH_BAD_BASE64, NULL);
            return;
        }
        enc = xmalloc(4 * (((size_t)n + 2) / 3) + 1);
        smtp_b64_encode(buf, (size_t)n, enc);
        memset(buf, 0, sizeof buf);
    }
    str_copy(s->ext_mech, sizeof s->ext_mech, m->name);
    bool ok = s->sasl->start(s->io.ctx, m->name, enc, plaintext_auth_ok(s));
    free(enc);
    if (!ok) {
        log_warn("auth client=[%s] mech=%s result=tempfail reason=auth-server-unreachable",
                 s->peer, m->name);
        reply(s, RP_AUTH_TEMPFAIL);
        return;
    }
    s->auth_step = AUTH_EXT_WAIT;
}

void session_sasl_answer(struct session *s, const struct dovecot_line *a)
{
    if (s->auth_step != AUTH_EXT_WAIT || s->state == ST_CLOSED)
        return; /* an answer nobody waits for any more */
    if (!a) {
        log_warn("auth client=[%s] mech=%s result=tempfail reason=auth-server-unreachable",
                 s->peer, s->ext_mech);
        s->auth_step = AUTH_IDLE; /* the I/O layer has forgotten the request already */
        auth_reset(s);
        reply(s, RP_AUTH_TEMPFAIL);
        return;
    }
    if (a->kind == DOVECOT_CONT) {
        s->auth_step = AUTH_EXT_CONT;
        relay_challenge(s, a->data, a->datalen);
        return;
    }
    s->auth_step = AUTH_IDLE; /* OK and FAIL end the server's request */
    char user[USERS_NAME_MAX + 1];
    if (!str_copy(user, sizeof user, a->user))
        user[0] = '\0';
    if (a->kind == DOVECOT_FAIL && a->temp) {
        log_warn("auth client=[%s] mech=%s user=%s result=tempfail reason=%s", s->peer,
                 s->ext_mech, user[0] ? user : "-", a->reason[0] ? a->reason : "-");
        auth_reset(s);
        reply(s, RP_AUTH_TEMPFAIL);
        return;
    }
    if (a->kind == DOVECOT_FAIL) {
        if (a->reason[0])
            log_info("auth client=[%s] mech=%s dovecot reason: %s", s->peer, s->ext_mech,
                     a->reason);
        auth_done(s, s->ext_mech, user, false);
        return;
    }
    if (!user[0]) { /* OK without a (usable) user name: nothing to authorise as */
        log_warn("auth client=[%s] mech=%s: the auth server said OK without a user name",
                 s->peer, s->ext_mech);
        auth_done(s, s->ext_mech, "", false);
        return;
    }
    if (a->data && a->datalen > 0) { /* success with final server data (RFC 4954 4) */
        auth_reset(s);
        str_copy(s->ext_user, sizeof s->ext_user, user);
        s->auth_step = AUTH_EXT_FINAL;
        relay_challenge(s, a->data, a->datalen);
        return;
    }
    auth_done(s, s->ext_mech, user, true);
}

static void auth_step_line(struct session *s, const char *line, size_t len)
{
    if (s->auth_step == AUTH_CHECK_WAIT)
        return; /* the I/O layer reads nothing meanwhile (MODE_WAIT); not even a cancel */
    if (len == 1 && line[0] == '*') { /* the client cancels (RFC 4954 4) */
        log_info("auth client=[%s] result=cancelled", s->peer);
        auth_reset(s);
        error_reply(s, RP_AUTH_CANCELLED, NULL);
        return;
    }
    unsigned char buf[AUTH_LINE_MAX];
    long n = auth_decode(line, len, buf, sizeof buf);
    if (n < 0) {
        auth_reset(s);
        error_reply(s, RP_AUTH_BAD_BASE64, NULL);
        return;
    }
    switch (s->auth_step) {
    case AUTH_PLAIN_WAIT:
        auth_plain(s, buf, (size_t)n);
        break;
    case AUTH_LOGIN_USER:
        if ((size_t)n >= sizeof s->login_user || memchr(buf, '\0', (size_t)n)) {
            auth_done(s, "LOGIN", "", false);
            break;
        }
        memcpy(s->login_user, buf, (size_t)n + 1);
        s->auth_step = AUTH_LOGIN_PASS;
        reply_line(s, RP_AUTH_CONTINUE, false, "UGFzc3dvcmQ6"); /* "Password:" */
        break;
    case AUTH_LOGIN_PASS: {
        char user[USERS_NAME_MAX + 1];
        str_copy(user, sizeof user, s->login_user);
        if (!memchr(buf, '\0', (size_t)n) && user[0])
            auth_check(s, "LOGIN", user, (const char *)buf);
        else
            auth_done(s, "LOGIN", user, false);
        break;
    }
    case AUTH_CRAM_WAIT:
        auth_cram(s, (const char *)buf, (size_t)n);
        break;
    case AUTH_SCRAM_FIRST:
        auth_scram_first(s, (const char *)buf, (size_t)n);
        break;
    case AUTH_SCRAM_FINAL:
        auth_scram_final(s, (const char *)buf, (size_t)n);
        break;
    case AUTH_SCRAM_ACK: {
        /* RFC 4954 4: the client acknowledges the server-final message with an empty
         * response; then the exchange has succeeded. */
        char user[USERS_NAME_MAX + 1];
        str_copy(user, sizeof user, s->scram ? s->scram->user : "");
        auth_done(s, "SCRAM-SHA-256", user, n == 0);
        break;
    }
    case AUTH_EXT_CONT:
        relay_continue(s, buf, (size_t)n);
        break;
    case AUTH_EXT_FINAL: {
        /* RFC 4954 4: the client acknowledges the server's final data with an empty line */
        char user[USERS_NAME_MAX + 1];
        str_copy(user, sizeof user, s->ext_user);
        auth_done(s, s->ext_mech, user, n == 0);
        break;
    }
    case AUTH_EXT_WAIT: /* not reached: nothing is read meanwhile (MODE_WAIT) */
    case AUTH_CHECK_WAIT:
    case AUTH_IDLE:
        break;
    }
    memset(buf, 0, sizeof buf);
}

static void cmd_auth(struct session *s, const char *arg, size_t arglen)
{
    if (!auth_offered(s)) {
        error_reply(s, RP_NOT_IMPLEMENTED, "AUTH is not offered here");
        return;
    }
    if (s->state == ST_CONNECTED || !s->esmtp) {
        error_reply(s, RP_BAD_SEQUENCE, "Send EHLO first");
        return;
    }
    if (s->authenticated) {
        error_reply(s, RP_BAD_SEQUENCE, "Already authenticated (RFC 4954 4)");
        return;
    }
    if (s->state != ST_READY) {
        error_reply(s, RP_BAD_SEQUENCE, "AUTH is not permitted during a mail transaction");
        return;
    }
    time_t until;
    if (s->authlock && authlock_locked(s->authlock, s->peer, wall_now(), &until)) {
        log_info("auth client=[%s] result=refused reason=locked-out seconds-left=%lld", s->peer,
                 (long long)(until - wall_now()));
        error_reply(s, RP_AUTH_LOCKED, NULL);
        return;
    }
    /* "AUTH mechanism [initial-response]" */
    while (arglen > 0 && (arg[arglen - 1] == ' ' || arg[arglen - 1] == '\t'))
        arglen--;
    size_t m = 0;
    while (m < arglen && arg[m] != ' ')
        m++;
    char mech[32];
    if (m == 0 || m >= sizeof mech) {
        error_reply(s, m == 0 ? RP_SYNTAX : RP_AUTH_UNKNOWN_MECH,
                    m == 0 ? "Syntax: AUTH mechanism [initial-response]" : NULL);
        return;
    }
    memcpy(mech, arg, m);
    mech[m] = '\0';
    const char *ir = m < arglen ? arg + m + 1 : NULL;
    size_t irlen = ir ? arglen - m - 1 : 0;
    if (s->sasl) {
        relay_start(s, mech, ir, irlen);
        return;
    }
    bool plain = str_ieq(mech, "PLAIN"), login = str_ieq(mech, "LOGIN");
    bool cram = str_ieq(mech, "CRAM-MD5"), scram = str_ieq(mech, "SCRAM-SHA-256");
    if (!plain && !login && !(cram && any_cram_user(s->users)) && !scram) {
        error_reply(s, RP_AUTH_UNKNOWN_MECH, NULL);
        return;
    }
    if (ir && irlen == 1 && ir[0] == '*') {
        error_reply(s, RP_AUTH_CANCELLED, NULL);
        return;
    }
    if (cram) {
        if (ir) { /* RFC 2195: the server speaks first; there is no initial response */
            error_reply(s, RP_SYNTAX, "CRAM-MD5 takes no initial response");
            return;
        }
        unsigned char rnd[8];
        unsigned long long r = 0;
        if (RAND_bytes(rnd, sizeof rnd) != 1) {
            reply(s, RP_AUTH_TEMPFAIL);
            return;
        }
        for (size_t i = 0; i < sizeof rnd; i++)
            r = r << 8 | rnd[i];
        snprintf(s->cram_challenge, sizeof s->cram_challenge, "<%llu.%lld@%.60s>", r,
                 wall_now(), s->cfg->hostname);
        s->auth_step = AUTH_CRAM_WAIT;
        auth_challenge(s, s->cram_challenge, strlen(s->cram_challenge));
        return;
    }
    if (scram) {
        s->auth_step = AUTH_SCRAM_FIRST;
        if (ir)
            auth_step_line(s, ir, irlen);
        else
            reply_line(s, RP_AUTH_CONTINUE, false, "");
        return;
    }
    if (!plaintext_auth_ok(s)) {
        log_info("auth client=[%s] mech=%s result=refused reason=no-tls", s->peer, mech);
        error_reply(s, RP_AUTH_NEED_TLS, NULL);
        return;
    }
    if (plain) {
        s->auth_step = AUTH_PLAIN_WAIT;
        if (ir)
            auth_step_line(s, ir, irlen);
        else
            reply_line(s, RP_AUTH_CONTINUE, false, "");
    } else {
        s->auth_step = AUTH_LOGIN_USER;
        if (ir)
            auth_step_line(s, ir, irlen); /* the initial response is the user name */
        else
            reply_line(s, RP_AUTH_CONTINUE, false, "VXNlcm5hbWU6"); /* "Username:" */
    }
}

/* ---- the rest of the command set (docs/commands.md) ------------------------------------ */

/* TURN (RFC 821 4.1.1) would hand this server's mail for any domain to whoever asks: refused,
 * as RFC 2821 4.1.1 says; ATRN (RFC 2645) is the authenticated replacement. */
static void cmd_turn(struct session *s, const char *arg, size_t arglen)
{
    (void)arg, (void)arglen;
    error_reply(s, RP_TURN_REFUSED, NULL);
}

/* SEND (RFC 821 4.1.1) delivers to a user's terminal only; tern has no terminals. */
static void cmd_send(struct session *s, const char *arg, size_t arglen)
{
    (void)arg, (void)arglen;
    error_reply(s, RP_SEND_NOT_IMPL, NULL);
}

/* X-EXPS: Microsoft Exchange's server-to-server authentication (GSSAPI/NTLM). */
static void cmd_xexps(struct session *s, const char *arg, size_t arglen)
{
    (void)arg, (void)arglen;
    error_reply(s, RP_XEXPS_NOT_IMPL, NULL);
}

/* The FUTURERELEASE EHLO keyword (RFC 4865 3): the longest hold in seconds, and the latest
 * release time that allows; "" when not offered. */
static void future_release_keyword(const struct session *s, char *buf, size_t cap)
{
    char latest[32];
    long long max = s->cfg->future_release_max;
    buf[0] = '\0';
    if (max > 0 && smtp_format_rfc3339(wall_now() + max, latest, sizeof latest))
        snprintf(buf, cap, "FUTURERELEASE %lld %s", max, latest);
}

/* A requested release time (HOLDFOR, HOLDUNTIL, X-DELIVERY-TIME): allowed for this client
 * and within future_release_max (RFC 4865 4: 554 5.3.4 beyond it)? *out is the hold, 0 when
 * the time has already come. Answers the refusal itself and returns false. */
static bool hold_check(struct session *s, long long until, const char *what, time_t *out)
{
    char text[160];
    long long now = wall_now(), max = s->cfg->future_release_max;
    if (max <= 0) {
        snprintf(text, sizeof text, "%s: future release is not enabled here", what);
        error_reply(s, RP_PARAM_UNKNOWN, text);
        return false;
    }
    if (!s->authenticated && !config_relay_allowed(s->cfg, s->peer)) {
        log_info("reject client=[%s] %s reason=hold-not-allowed", s->peer, what);
        error_reply(s, RP_HOLD_DENIED, NULL);
        return false;
    }
    if (until - now > max) {
        snprintf(text, sizeof text, "%s: release in %lld s is beyond the maximum of %lld s "
                 "(RFC 4865)", what, until - now, max);
        error_reply(s, RP_HOLD_TOO_LONG, text);
        return false;
    }
    *out = until > now ? (time_t)until : 0;
    return true;
}

/* X-DELIVERY-TIME [time]: the command form of a future release, for the transaction begun
 * by MAIL (the same hold as HOLDUNTIL); without an argument it tells the time set. */
static void cmd_xdelivery(struct session *s, const char *arg, size_t arglen)
{
    if (s->cfg->future_release_max <= 0) {
        error_reply(s, RP_NOT_IMPLEMENTED, "X-DELIVERY-TIME: future release is not enabled here");
        return;
    }
    if (s->state != ST_MAIL && s->state != ST_RCPT) {
        error_reply(s, RP_BAD_SEQUENCE, s->state == ST_CONNECTED ? "Send HELO or EHLO first"
                                                                 : "X-DELIVERY-TIME needs a "
                                                                   "transaction: send MAIL first");
        return;
    }
    char when[32];
    if (!has_arg(arglen, arg)) {
        if (s->env.hold_until > 0 && smtp_format_rfc3339(s->env.hold_until, when, sizeof when))
            replyf(s, RP_OK, "Delivery time %s (%lld s from now)", when,
                   (long long)(s->env.hold_until - wall_now()));
        else
            reply_line(s, RP_OK, false, "No delivery time set: delivery starts at once");
        return;
    }
    while (arglen > 0 && (arg[arglen - 1] == ' ' || arg[arglen - 1] == '\t'))
        arglen--;
    long long until;
    time_t hold;
    if (smtp_parse_delivery_time(arg, arglen, wall_now(), &until) != PARSE_OK) {
        error_reply(s, RP_SYNTAX, "Syntax: X-DELIVERY-TIME [YYYY-MM-DDTHH:MM:SSZ | +seconds]");
        return;
    }
    if (!hold_check(s, until, "X-DELIVERY-TIME", &hold))
        return;
    s->env.hold_until = hold;
    if (hold > 0 && smtp_format_rfc3339(hold, when, sizeof when))
        replyf(s, RP_OK, "Delivery time set to %s", when);
    else
        reply_line(s, RP_OK, false, "Delivery time is now: delivery starts at once");
}

/* ETRN node (RFC 1985): start delivery of the mail queued for a domain ("@domain": and its
 * subdomains), for authenticated users and clients in etrn_networks or relay_networks. */
static void cmd_etrn(struct session *s, const char *arg, size_t arglen)
{
    if (s->state == ST_CONNECTED) {
        error_reply(s, RP_BAD_SEQUENCE, "Send HELO or EHLO first");
        return;
    }
    if (s->state != ST_READY) {
        error_reply(s, RP_BAD_SEQUENCE, "ETRN is not allowed in a mail transaction (RSET first)");
        return;
    }
    struct etrn_arg ea;
    if (smtp_parse_etrn(arg, arglen, &ea) != PARSE_OK) {
        error_reply(s, RP_SYNTAX, "Syntax: ETRN domain | @domain | #queue (RFC 1985)");
        return;
    }
    const char *mark = ea.kind == ETRN_SUBDOMAINS ? "@" : ea.kind == ETRN_QUEUE ? "#" : "";
    if (!s->authenticated && !config_etrn_allowed(s->cfg, s->peer)) {
        log_info("reject client=[%s] etrn=%s%s reason=not-allowed", s->peer, mark, ea.node);
        replyf(s, RP_ETRN_DENIED, "Node %s%s not allowed: ETRN is for authenticated users and "
               "clients in etrn_networks", mark, ea.node);
        return;
    }
    if (ea.kind == ETRN_QUEUE) {
        replyf(s, RP_ETRN_DENIED, "Node #%s not allowed: tern has no named queues; "
               "use ETRN domain", ea.node);
        return;
    }
    /* The queue manager makes the node's messages due now (FLUSH, control.h); the worker
     * asks it without blocking (io->control) and the reply waits for its answer. */
    char request[SMTP_DOMAIN_MAX + 16];
    snprintf(request, sizeof request, "FLUSH @%s%s", ea.kind == ETRN_SUBDOMAINS ? "." : "",
             ea.node);
    snprintf(s->etrn_node, sizeof s->etrn_node, "%s%s", mark, ea.node);
    if (!s->io.control) {
        session_control_done(s, -1, "ETRN is not available in this process");
        return;
    }
    s->etrn_waiting = true;
    s->io.control(s->io.ctx, request);
}

void session_control_done(struct session *s, long n, const char *err)
{
    s->etrn_waiting = false;
    if (s->state == ST_CLOSED)
        return;
    log_info("etrn client=[%s] node=%s result=%ld%s%s", s->peer, s->etrn_node, n,
             n < 0 ? " error=" : "", n < 0 ? err : "");
    if (n < 0)
        replyf(s, RP_ETRN_UNABLE, "Unable to queue messages for node %s: %s", s->etrn_node,
               err);
    else if (n == 0)
        replyf(s, RP_ETRN_NONE, "OK, no messages waiting for node %s", s->etrn_node);
    else
        replyf(s, RP_ETRN_PENDING, "OK, %ld pending message%s for node %s started", n,
               n == 1 ? "" : "s", s->etrn_node);
}

/* ---- On-Demand Mail Relay (RFC 2645) ------------------------------------------------------ */

/* The ODMR port's EHLO: only what can be used there (RFC 2645 4.1: AUTH and ATRN). */
static void odmr_ehlo(struct session *s)
{
    char line[SMTP_REPLY_MAX], auth[80], mechs[64];
    snprintf(line, sizeof line, "%s Hello %s [%s]", s->cfg->hostname, s->helo, s->peer);
    reply_line(s, RP_HELO, true, line);
    const char *m = auth_mechanisms(s, mechs, sizeof mechs);
    snprintf(auth, sizeof auth, "AUTH %s", m);
    const char *ext[] = {"ENHANCEDSTATUSCODES", "STARTTLS", auth, "ATRN", "HELP"};
    for (size_t i = 0; i < ARRAY_LEN(ext); i++) {
        if ((ext[i] == auth && m[0] == '\0') ||
            (strcmp(ext[i], "STARTTLS") == 0 && !starttls_offered(s)))
            continue;
        reply_line(s, RP_HELO, i + 1 < ARRAY_LEN(ext), ext[i]);
    }
}

/* What the ODMR port accepts: the session of RFC 2645 4, and the means to get there. */
static bool odmr_allows(const char *verb)
{
    static const char *const ok[] = {"EHLO", "AUTH", "ATRN", "QUIT", "RSET", "NOOP", "HELP",
                                     "STARTTLS"};
    for (size_t i = 0; i < ARRAY_LEN(ok); i++)
        if (strcmp(ok[i], verb) == 0)
            return true;
    return false;
}

static void cmd_atrn(struct session *s, const char *arg, size_t arglen)
{
    if (!is_odmr(s)) {
        error_reply(s, RP_NOT_IMPLEMENTED, "ATRN is only available on the ODMR port (RFC 2645)");
        return;
    }
    if (s->state == ST_CONNECTED || !s->esmtp) {
        error_reply(s, RP_BAD_SEQUENCE, "Send EHLO first");
        return;
    }
    if (s->listener->require_tls && !s->tls) {
        error_reply(s, RP_TLS_REQUIRED, NULL);
        return;
    }
    if (!s->authenticated) {
        error_reply(s, RP_AUTH_REQUIRED, "Authentication required: AUTH before ATRN (RFC 2645)");
        return;
    }
    char bad[SMTP_DOMAIN_MAX + 1];
    switch (odmr_atrn_domains(s->cfg, s->auth_user, arg, arglen, s->atrn_domains,
                              sizeof s->atrn_domains, bad, sizeof bad)) {
    case ODMR_OK:
        break;
    case ODMR_SYNTAX:
        error_reply(s, RP_SYNTAX, "Syntax: ATRN [domain[,domain...]]");
        return;
    case ODMR_NOT_ENTITLED:
        log_info("atrn client=[%s] user=%s domain=%s result=refused", s->peer, s->auth_user, bad);
        replyf(s, RP_ATRN_REFUSED, "ATRN request refused: %s may not receive mail for %s",
               s->auth_user, bad);
        return;
    case ODMR_NO_DOMAINS:
        log_info("atrn client=[%s] user=%s result=refused reason=no-domains", s->peer,
                 s->auth_user);
        replyf(s, RP_ATRN_REFUSED, "ATRN request refused: no ODMR domain is configured for %s",
               s->auth_user);
        return;
    }
    if (!s->io.atrn) {
        reply(s, RP_ATRN_TEMPFAIL);
        return;
    }
    log_info("atrn client=[%s] user=%s domains=%s", s->peer, s->auth_user, s->atrn_domains);
    s->state = ST_ATRN_WAIT;
    s->io.atrn(s->io.ctx, s->atrn_domains);
}

void session_atrn_result(struct session *s, long messages, const char *why)
{
    if (s->state != ST_ATRN_WAIT)
        return;
    log_info("atrn client=[%s] user=%s domains=%s messages=%ld%s%s", s->peer, s->auth_user,
             s->atrn_domains, messages, why ? " error=" : "", why ? why : "");
    if (messages > 0) {
        s->state = ST_TURNED;
        replyf(s, RP_ATRN_OK, "OK now reversing the connection (%ld message%s for %s)",
               messages, messages == 1 ? "" : "s", s->atrn_domains);
        return;
    }
    s->state = ST_READY;
    if (messages == 0)
        reply(s, RP_ATRN_NO_MAIL);
    else
        replyf(s, RP_ATRN_TEMPFAIL, "Unable to process ATRN request now%s%s", why ? ": " : "",
               why ? why : "");
}

static const struct command {
    const char *verb;
    handler_fn *fn;
    const char *syntax; /* for HELP; NULL: not listed */
} commands[] = {
    {"EHLO", cmd_ehlo, "EHLO domain-or-address-literal"},
    {"HELO", cmd_helo, "HELO domain-or-address-literal"},
    {"MAIL", cmd_mail, "MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME|BINARYMIME] [SMTPUTF8] "
                       "[RET=FULL|HDRS] [ENVID=xtext] [HOLDFOR=seconds|HOLDUNTIL=date-time]"},
    {"RCPT", cmd_rcpt, "RCPT TO:<address> [NOTIFY=NEVER|SUCCESS,FAILURE,DELAY] [ORCPT=type;xtext]"},
    {"DATA", cmd_data, "DATA, then the message, ending with a line holding a single dot"},
    {"BDAT", cmd_bdat, "BDAT chunk-size [LAST], then exactly chunk-size octets"},
    {"RSET", cmd_rset, "RSET (abort the current transaction)"},
    {"NOOP", cmd_noop, "NOOP [anything]"},
    {"QUIT", cmd_quit, "QUIT"},
    {"HELP", cmd_help, "HELP [command]"},
    {"VRFY", cmd_vrfy, "VRFY mailbox"},
    {"EXPN", cmd_expn, "EXPN mailing-list"},
    {"STARTTLS", cmd_starttls, "STARTTLS (then the TLS handshake; EHLO again afterwards)"},
    {"AUTH", cmd_auth, "AUTH mechanism [initial-response] (RFC 4954; after EHLO)"},
    {"ETRN", cmd_etrn, "ETRN domain | @domain (and subdomains) (RFC 1985; AUTH or etrn_networks)"},
    {"ATRN", cmd_atrn, "ATRN [domain[,domain...]] (RFC 2645; on the ODMR port, after AUTH)"},
    {"TURN", cmd_turn, "TURN: refused (RFC 2821 4.1.1: unsafe); use AUTH, then ATRN"},
    {"SEND", cmd_send, "SEND FROM:<address>: refused (no terminals here); use MAIL, SOML or SAML"},
    {"SOML", cmd_mail, "SOML FROM:<address> [parameters]: like MAIL (delivered to the mailbox)"},
    {"SAML", cmd_mail, "SAML FROM:<address> [parameters]: like MAIL (delivered to the mailbox)"},
    {"X-DELIVERY-TIME", cmd_xdelivery, "X-DELIVERY-TIME [YYYY-MM-DDTHH:MM:SSZ | +seconds] "
                                       "(after MAIL; no argument: show it)"},
    {"X-EXPS", cmd_xexps, "X-EXPS: refused (Exchange authentication); use AUTH"},
};

static void cmd_help(struct session *s, const char *arg, size_t arglen)
{
    char topic[16];
    if (has_arg(arglen, arg)) {
        if (arg_string(topic, sizeof topic, arg, arglen)) {
            for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
                if (commands[i].syntax && str_ieq(commands[i].verb, topic)) {
                    reply_line(s, RP_HELP, false, commands[i].syntax);
                    return;
                }
            }
        }
        reply_line(s, RP_PARAM_NOT_IMPL, false, "No help for that topic; try HELP");
        return;
    }
    reply_line(s, RP_HELP, true, "tern: commands understood (HELP command for its syntax):");
    char line[SMTP_REPLY_MAX - 16] = "";
    size_t used = 0;
    for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
        if (!commands[i].syntax)
            continue;
        int n = snprintf(line + used, sizeof line - used, " %s", commands[i].verb);
        if (n < 0 || (size_t)n >= sizeof line - used)
            break; /* cannot happen with this table; never overflow if it grows */
        used += (size_t)n;
    }
    reply_line(s, RP_HELP, true, line + 1);
    reply_line(s, RP_HELP, false, "End of HELP info");
}

/* ---- input from the I/O layer ----------------------------------------------------------- */

void session_line(struct session *s, const char *line, size_t len)
{
    if (s->state == ST_CLOSED)
        return;
    if (s->auth_step != AUTH_IDLE) { /* a response in an AUTH exchange, not a command */
        auth_step_line(s, line, len);
        return;
    }
    struct smtp_cmdline cl;
    if (smtp_split_command(line, len, &cl) != PARSE_OK) {
        error_reply(s, RP_UNKNOWN_CMD, memchr(line, '\0', len) ? "NUL octet in command line"
                                                              : NULL);
        return;
    }
    /* Only AUTH may be longer than an ordinary command line (RFC 4954 4). */
    if (len + 2 > SMTP_CMDLINE_MAX && strcmp(cl.verb, "AUTH") != 0) {
        error_reply(s, RP_LINE_TOO_LONG, NULL);
        return;
    }
    if (is_odmr(s) && !odmr_allows(cl.verb)) {
        error_reply(s, RP_ODMR_ONLY, NULL);
        return;
    }
    for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
        if (strcmp(commands[i].verb, cl.verb) == 0) {
            commands[i].fn(s, cl.arg, cl.arglen);
            return;
        }
    }
    error_reply(s, RP_UNKNOWN_CMD, NULL);
}

void session_line_too_long(struct session *s)
{
    if (s->auth_step != AUTH_IDLE) {
        auth_reset(s);
        error_reply(s, RP_AUTH_LINE_TOO_LONG, NULL);
        return;
    }
    error_reply(s, RP_LINE_TOO_LONG, NULL);
}

size_t session_max_line(const struct session *s)
{
    if (s->auth_step != AUTH_IDLE ||
        (auth_offered(s) && !s->authenticated && s->state == ST_READY && s->esmtp))
        return AUTH_LINE_MAX;
    return SMTP_CMDLINE_MAX;
}

void session_set_users(struct session *s, const struct users *users)
{
    s->users = users;
}

void session_set_sasl(struct session *s, const struct session_sasl *sasl)
{
    s->sasl = sasl;
}

void session_set_authlock(struct session *s, struct authlock *t)
{
    s->authlock = t;
}

const char *session_auth_user(const struct session *s)
{
    return s->authenticated ? s->auth_user : NULL;
}

size_t session_data(struct session *s, const char *buf, size_t len)
{
    if (s->reading_chunk) {
        size_t n = len < s->chunk_left ? len : (size_t)s->chunk_left;
        if (s->chunk_error == RP_OK)
            message_write(s, buf, n);
        s->chunk_left -= n;
        if (s->chunk_left == 0)
            chunk_done(s);
        return n;
    }
    if (s->state != ST_DATA)
        return 0;
    char out[16384];
    size_t used = 0;
    while (used < len) {
        size_t piece = len - used < sizeof out ? len - used : sizeof out;
        size_t outlen = 0;
        bool done = false;
        size_t n = data_reader_feed(&s->dr, buf + used, piece, out, &outlen, &done);
        used += n;
        message_write(s, out, outlen);
        if (done) {
            message_finish(s, s->dr.flags);
            break;
        }
    }
    return used;
}

/* ---- life cycle ------------------------------------------------------------------------- */

struct session *session_new(const struct config *cfg, const struct listen_cfg *listener,
                            const char *peer_addr, const struct session_io *io)
{
    struct session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cfg = cfg;
    s->listener = listener;
    s->io = *io;
    s->state = ST_CONNECTED;
    s->chunk_error = RP_OK;
    s->hdr_error = RP_OK;
    str_copy(s->peer, sizeof s->peer, peer_addr);
    envelope_init(&s->env);
    return s;
}

void session_free(struct session *s)
{
    if (!s)
        return;
    if (s->qw)
        queue_writer_abort(s->qw);
    envelope_free(&s->env);
    auth_reset(s);
    free(s);
}

void session_start(struct session *s)
{
    replyf(s, RP_GREETING, "%s ESMTP tern", s->cfg->hostname);
}

void session_tls_started(struct session *s, const char *desc)
{
    /* RFC 3207 4.2: discard all knowledge from before TLS; the client must EHLO again. */
    transaction_reset(s);
    s->helo[0] = '\0';
    s->esmtp = false;
    s->tls = true;
    str_copy(s->tls_desc, sizeof s->tls_desc, desc);
    auth_reset(s);
    s->authenticated = false;
    s->auth_user[0] = '\0';
    if (s->state != ST_CLOSED)
        s->state = ST_CONNECTED;
    log_info("tls client=[%s] %s", s->peer, desc);
}

void session_abort(struct session *s)
{
    if (s->qw) {
        log_info("aborted qid=%s client=[%s] reason=connection closed during data",
                 s->env.qid, s->peer);
        queue_writer_abort(s->qw);
        s->qw = NULL;
    }
    s->state = ST_CLOSED;
}

void session_timeout(struct session *s)
{
    log_info("timeout client=[%s] state=%d", s->peer, (int)s->state);
    if (s->state != ST_TURNED) /* the connection carries the queue manager's SMTP now */
        reply(s, RP_TIMEOUT);
    session_abort(s);
}

void session_shutdown(struct session *s)
{
    if (s->state != ST_TURNED)
        reply(s, RP_SHUTDOWN);
    session_abort(s);
}

enum session_mode session_mode(const struct session *s)
{
    if (s->state == ST_CLOSED)
        return MODE_CLOSE;
    if (s->state == ST_STARTTLS)
        return MODE_STARTTLS;
    if (s->etrn_waiting)
        return MODE_WAIT;
    if (s->state == ST_ATRN_WAIT)
        return MODE_WAIT;
    if (s->state == ST_TURNED)
        return MODE_RELAY;
    if (s->auth_step == AUTH_EXT_WAIT || s->auth_step == AUTH_CHECK_WAIT)
        return MODE_WAIT;
    if (s->state == ST_COMMIT)
        return MODE_COMMIT;
    if (s->reading_chunk)
        return MODE_CHUNK;
    if (s->state == ST_DATA)
        return MODE_DATA;
    return MODE_LINE;
}

unsigned long long session_chunk_remaining(const struct session *s)
{
    return s->chunk_left;
}

int session_timeout_seconds(const struct session *s)
{
    if (s->state == ST_DATA || s->reading_chunk)
        return s->cfg->timeout_data_block;
    return s->cfg->timeout_command;
}
