/* session.c - the SMTP server session (RFC 5321 section 4, with RFC 1870 SIZE, RFC 2920
 * PIPELINING, RFC 3030 CHUNKING/BINARYMIME, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 2034
 * ENHANCEDSTATUSCODES and RFC 3461 DSN parameters).
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

#include "data_reader.h"
#include "envelope.h"
#include "log.h"
#include "queue.h"
#include "received.h"
#include "reply.h"
#include "smtp_parse.h"
#include "util.h"

enum state {
    ST_CONNECTED, /* greeting sent, no HELO/EHLO yet */
    ST_READY,     /* after HELO/EHLO or a finished transaction */
    ST_MAIL,      /* MAIL accepted, no recipient yet */
    ST_RCPT,      /* at least one recipient accepted */
    ST_DATA,      /* reading DATA content */
    ST_BDAT,      /* BDAT chunks in progress (between chunks, or reading one) */
    ST_STARTTLS,  /* 220 sent to STARTTLS, waiting for the handshake */
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
};

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
    if (s->state != ST_CONNECTED && s->state != ST_CLOSED)
        s->state = ST_READY;
}

static const char *protocol(const struct session *s)
{
    return received_protocol(s->esmtp, s->tls, false, s->mail.smtputf8);
}

/* Open the queue file and write the Received: header: the start of DATA or the first BDAT. */
static enum reply_id message_open(struct session *s)
{
    envelope_set(&s->env.client_addr, s->peer);
    envelope_set(&s->env.client_helo, s->helo);
    envelope_set(&s->env.protocol, protocol(s));
    s->env.arrival = time(NULL);
    s->qw = queue_writer_open(s->cfg->spool_dir, &s->env);
    if (!s->qw) {
        log_err("cannot create queue file in %s: %s client=[%s]", s->cfg->spool_dir,
                strerror(errno), s->peer);
        return (errno == ENOSPC || errno == EDQUOT) ? RP_NO_STORAGE : RP_LOCAL_ERROR;
    }
    char hdr[2048];
    struct received_info ri = {
        .helo = s->helo,
        .client_addr = s->peer,
        .by = s->cfg->hostname,
        .protocol = protocol(s),
        .qid = s->env.qid,
        .tls = s->tls ? s->tls_desc : NULL,
        .for_rcpt = s->env.nrcpts == 1 ? s->env.rcpts[0].addr : NULL,
        .when = s->env.arrival,
    };
    size_t n = received_format(hdr, sizeof hdr, &ri);
    if (n == 0 || queue_writer_write(s->qw, hdr, n) < 0) {
        int e = n == 0 ? EINVAL : errno;
        log_err("cannot write queue file qid=%s: %s", s->env.qid, strerror(e));
        queue_writer_abort(s->qw);
        s->qw = NULL;
        return (e == ENOSPC || e == EDQUOT) ? RP_NO_STORAGE : RP_LOCAL_ERROR;
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
        refuse = (s->write_errno == ENOSPC || s->write_errno == EDQUOT) ? RP_NO_STORAGE
                                                                           : RP_LOCAL_ERROR;
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
    if (queue_writer_commit(qw) < 0) {
        int e = errno;
        log_err("queue commit failed qid=%s: %s", s->env.qid, strerror(e));
        reply(s, (e == ENOSPC || e == EDQUOT) ? RP_NO_STORAGE : RP_LOCAL_ERROR);
        transaction_reset(s);
        return;
    }
    log_info("queued qid=%s client=[%s] helo=%s from=<%s> size=%llu nrcpt=%zu proto=%s",
             s->env.qid, s->peer, s->helo, s->env.sender, s->msg_size, s->env.nrcpts,
             protocol(s));
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

static void cmd_ehlo(struct session *s, const char *arg, size_t arglen)
{
    if (!helo_common(s, arg, arglen, "EHLO"))
        return;
    s->esmtp = true;
    char line[SMTP_REPLY_MAX];
    snprintf(line, sizeof line, "%s Hello %s [%s]", s->cfg->hostname, s->helo, s->peer);
    reply_line(s, RP_HELO, true, line);
    snprintf(line, sizeof line, "SIZE %zu", s->cfg->max_message_size);
    const char *ext[] = {"PIPELINING", line, "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                         "CHUNKING", "BINARYMIME", "DSN", "STARTTLS", "HELP"};
    for (size_t i = 0; i < ARRAY_LEN(ext); i++) {
        if (strcmp(ext[i], "STARTTLS") == 0 && !starttls_offered(s))
            continue; /* and never again once TLS is active (RFC 3207 4.2) */
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
    transaction_reset(s);
    s->mail = mp;
    envelope_set(&s->env.sender, path.addr);
    s->env.body = mp.body;
    s->env.smtputf8 = mp.smtputf8;
    s->env.ret = mp.ret;
    envelope_set(&s->env.envid, mp.envid);
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
    bool local_domain = config_is_local_domain(s->cfg, domain);
    if (!local_domain && !config_relay_allowed(s->cfg, s->peer)) {
        /* Only clients in relay_networks (and, later, authenticated users) may relay:
         * tern is never an open relay. */
        log_info("reject client=[%s] from=<%s> to=<%s> reason=relay", s->peer, s->env.sender,
                 path.addr);
        replyf(s, RP_RELAY_DENIED, "<%s>: Relay access denied", path.addr);
        return;
    }
    if (!local_domain) {
        log_info("relay client=[%s] from=<%s> to=<%s> relay=allowed", s->peer, s->env.sender,
                 path.addr);
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
    if (!config_is_local_domain(s->cfg, domain)) {
        reply(s, RP_CANNOT_VRFY);
        return;
    }
    if (config_has_mailbox(s->cfg, p, domain))
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

/* Commands of RFC 821/5321 and common extensions that tern does not (yet) do: an honest 502. */
static void cmd_not_implemented(struct session *s, const char *arg, size_t arglen)
{
    (void)arg, (void)arglen;
    error_reply(s, RP_NOT_IMPLEMENTED, NULL);
}

static const struct command {
    const char *verb;
    handler_fn *fn;
    const char *syntax; /* for HELP; NULL: not listed */
} commands[] = {
    {"EHLO", cmd_ehlo, "EHLO domain-or-address-literal"},
    {"HELO", cmd_helo, "HELO domain-or-address-literal"},
    {"MAIL", cmd_mail, "MAIL FROM:<address> [SIZE=n] [BODY=7BIT|8BITMIME|BINARYMIME] [SMTPUTF8] "
                       "[RET=FULL|HDRS] [ENVID=xtext]"},
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
    {"AUTH", cmd_not_implemented, NULL},
    {"ETRN", cmd_not_implemented, NULL},
    {"ATRN", cmd_not_implemented, NULL},
    {"TURN", cmd_not_implemented, NULL},
    {"SEND", cmd_not_implemented, NULL},
    {"SOML", cmd_not_implemented, NULL},
    {"SAML", cmd_not_implemented, NULL},
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
    reply_line(s, RP_HELP, true, "tern: commands supported (HELP command for its syntax):");
    char line[128] = "";
    for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
        if (!commands[i].syntax)
            continue;
        strcat(line, " ");
        strcat(line, commands[i].verb);
    }
    reply_line(s, RP_HELP, true, line + 1);
    reply_line(s, RP_HELP, false, "End of HELP info");
}

/* ---- input from the I/O layer ----------------------------------------------------------- */

void session_line(struct session *s, const char *line, size_t len)
{
    if (s->state == ST_CLOSED)
        return;
    struct smtp_cmdline cl;
    if (smtp_split_command(line, len, &cl) != PARSE_OK) {
        error_reply(s, RP_UNKNOWN_CMD, memchr(line, '\0', len) ? "NUL octet in command line"
                                                              : NULL);
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
    error_reply(s, RP_LINE_TOO_LONG, NULL);
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
    reply(s, RP_TIMEOUT);
    session_abort(s);
}

void session_shutdown(struct session *s)
{
    reply(s, RP_SHUTDOWN);
    session_abort(s);
}

enum session_mode session_mode(const struct session *s)
{
    if (s->state == ST_CLOSED)
        return MODE_CLOSE;
    if (s->state == ST_STARTTLS)
        return MODE_STARTTLS;
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
