/* submit.c - one message to the running server over loopback SMTP (see submit.h): the
 * client side of RFC 5321 (EHLO, MAIL with BODY/SIZE/RET/ENVID, RCPT with NOTIFY, DATA with
 * dot-stuffing, 4.5.2), blocking, with a timeout per read or write. Shared by `tern sendmail`
 * and the maildrop pickup. */
#include "submit.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "smtp_reply.h"
#include "util.h"

int submit_connect(const struct config *cfg, struct netclient *nc, int timeout_ms,
                   bool *refused, char *err, size_t errlen)
{
    err[0] = '\0';
    *refused = false;
    /* The first loopback smtp listener, else a submission listener without require_tls;
     * 0.0.0.0 / :: mean 127.0.0.1 / ::1. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < cfg->nlisten; i++) {
            const struct listen_cfg *l = &cfg->listen[i];
            if (l->require_tls || l->kind == LISTEN_SMTPS ||
                (pass == 0) != (l->kind == LISTEN_SMTP))
                continue;
            const char *host = l->addr;
            if (strcmp(host, "0.0.0.0") == 0)
                host = "127.0.0.1";
            else if (strcmp(host, "::") == 0)
                host = "::1";
            else if (strncmp(host, "127.", 4) != 0 && strcmp(host, "::1") != 0)
                continue;
            char port[8];
            snprintf(port, sizeof port, "%u", l->port);
            struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                                     .ai_socktype = SOCK_STREAM};
            struct addrinfo *ai = NULL;
            if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
                continue;
            nc_init(nc, timeout_ms);
            int rc = nc_connect(nc, ai->ai_addr, ai->ai_addrlen);
            freeaddrinfo(ai);
            if (rc == 0) {
                *refused = false;
                return 0;
            }
            *refused = true;
            snprintf(err, errlen, "cannot connect to the local tern server at %s port %s (%s): "
                     "is `tern serve` running?", host, port, nc->err);
            nc_close(nc);
        }
    }
    if (!err[0])
        snprintf(err, errlen, "the configuration %s has no loopback listener without "
                 "require_tls to submit to", cfg->path ? cfg->path : "(built-in)");
    return -1;
}

/* Send a command and read the reply. false on a connection problem (err says so). */
static bool command(struct netclient *nc, const char *line, struct smtp_reply *r, char *err,
                    size_t errlen)
{
    smtp_reply_free(r);
    smtp_reply_init(r);
    size_t n = strlen(line);
    if (n > 0 && (nc_write(nc, line, n) < 0 || nc_write(nc, "\r\n", 2) < 0)) {
        snprintf(err, errlen, "lost the connection to the local server: %s", nc->err);
        return false;
    }
    if (nc_read_reply(nc, r) < 0) {
        snprintf(err, errlen, "no reply from the local server: %s", nc->err);
        return false;
    }
    return true;
}

static void reply_text(const struct smtp_reply *r, char *out, size_t cap)
{
    snprintf(out, cap, "%s", r->nlines > 0 ? r->lines[0] : "(empty reply)");
}

/* The whole transaction once connected. */
static int transaction(struct netclient *nc, const struct submit_req *q, struct smtp_reply *r,
                       struct smtp_caps *caps, char *final, size_t finallen, char *err,
                       size_t errlen)
{
    char line[1200], text[600];
    if (!command(nc, "", r, err, errlen))
        return EX_TEMPFAIL;
    if (r->code != 220) {
        reply_text(r, text, sizeof text);
        snprintf(err, errlen, "the local server is not accepting mail: %s", text);
        return EX_TEMPFAIL;
    }
    if (!command(nc, "EHLO localhost", r, err, errlen))
        return EX_TEMPFAIL;
    if (!smtp_caps_parse(r, caps)) {
        reply_text(r, text, sizeof text);
        snprintf(err, errlen, "EHLO refused: %s", text);
        return EX_TEMPFAIL;
    }
    bool dsn = smtp_caps_find(caps, "DSN") != NULL;
    int n = snprintf(line, sizeof line, "MAIL FROM:<%s>", q->sender);
    if (q->eightbit && smtp_caps_find(caps, "8BITMIME"))
        n += snprintf(line + n, sizeof line - (size_t)n, " BODY=8BITMIME");
    if (smtp_caps_find(caps, "SIZE"))
        n += snprintf(line + n, sizeof line - (size_t)n, " SIZE=%zu", q->len);
    if (dsn && q->ret)
        n += snprintf(line + n, sizeof line - (size_t)n, " RET=%s",
                      str_ieq(q->ret, "hdrs") ? "HDRS" : "FULL");
    if (dsn && q->envid)
        snprintf(line + n, sizeof line - (size_t)n, " ENVID=%s", q->envid);
    if (!command(nc, line, r, err, errlen))
        return EX_TEMPFAIL;
    if (r->code / 100 != 2) {
        reply_text(r, text, sizeof text);
        snprintf(err, errlen, "sender <%s> refused: %s", q->sender, text);
        return r->code / 100 == 4 ? EX_TEMPFAIL : EX_NOPERM;
    }
    for (size_t i = 0; i < q->nrcpts; i++) {
        n = snprintf(line, sizeof line, "RCPT TO:<%s>", q->rcpts[i]);
        if (dsn && q->notify)
            snprintf(line + n, sizeof line - (size_t)n, " NOTIFY=%s", q->notify);
        if (!command(nc, line, r, err, errlen))
            return EX_TEMPFAIL;
        if (r->code / 100 != 2) {
            /* All or nothing: a partial delivery would make the caller's retry a duplicate. */
            reply_text(r, text, sizeof text);
            snprintf(err, errlen, "recipient <%s> refused: %s%s", q->rcpts[i], text,
                     r->code == 554 && strstr(text, "5.7.1")
                         ? " (local programs may send only to local mailboxes unless "
                           "relay_networks includes 127.0.0.1/32 and ::1/128)"
                         : "");
            return r->code / 100 == 4 ? EX_TEMPFAIL : EX_NOUSER;
        }
    }
    if (!command(nc, "DATA", r, err, errlen))
        return EX_TEMPFAIL;
    if (r->code != 354) {
        reply_text(r, text, sizeof text);
        snprintf(err, errlen, "DATA refused: %s", text);
        return r->code / 100 == 4 ? EX_TEMPFAIL : EX_UNAVAILABLE;
    }
    /* Dot-stuffing (RFC 5321 4.5.2), then the end of data. */
    size_t start = 0;
    bool io_ok = true;
    for (size_t i = 0; i <= q->len && io_ok; i++) {
        if (i < q->len && !(q->data[i] == '.' && (i == 0 || q->data[i - 1] == '\n')))
            continue;
        if (i > start)
            io_ok = nc_write(nc, q->data + start, i - start) == 0;
        if (i < q->len && io_ok)
            io_ok = nc_write(nc, ".", 1) == 0;
        start = i;
    }
    if (!io_ok || !command(nc, ".", r, err, errlen)) {
        if (!io_ok)
            snprintf(err, errlen, "lost the connection to the local server: %s", nc->err);
        else /* the 250 may have been lost after the commit: say so, keep the copy anyway */
            snprintf(err, errlen, "no confirmation from the local server after the message "
                     "(%s): it may or may not have been queued", nc->err);
        return EX_TEMPFAIL;
    }
    reply_text(r, text, sizeof text);
    if (r->code / 100 != 2) {
        snprintf(err, errlen, "message refused: %s", text);
        return r->code / 100 == 4 ? EX_TEMPFAIL : EX_DATAERR;
    }
    snprintf(final, finallen, "%s", text);
    return 0;
}

int submit_message(const struct config *cfg, const struct submit_req *q, char *final,
                   size_t finallen, bool *refused, char *err, size_t errlen)
{
    struct netclient nc;
    if (submit_connect(cfg, &nc, q->timeout_ms, refused, err, errlen) < 0)
        return EX_TEMPFAIL;
    struct smtp_reply r;
    smtp_reply_init(&r);
    struct smtp_caps caps = {0};
    int rc = transaction(&nc, q, &r, &caps, final, finallen, err, errlen);
    if (nc.fd >= 0 && !nc.eof) {
        char ignored[16];
        command(&nc, "QUIT", &r, ignored, sizeof ignored);
    }
    smtp_caps_free(&caps);
    smtp_reply_free(&r);
    nc_close(&nc);
    return rc;
}
