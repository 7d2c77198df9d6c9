/* local.c - local delivery: a recipient of a local domain into its Maildir (maildir.c), with
 * Return-Path (RFC 5321 4.4) and Delivered-To in front. Mailboxes are matched
 * case-insensitively, so DEMO@ and demo@ map to one Maildir. */
#include "local.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "maildir.h"
#include "util.h"

/* Copy s for a header field, replacing what could break the header (CR, LF, controls). */
static void header_safe(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 1 < cap; s++)
        out[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    out[n] = '\0';
}

enum rcpt_status local_deliver(const struct config *cfg, const struct envelope *env,
                               const struct envelope_rcpt *r, int fd, off_t off, char *reply,
                               size_t replycap, char *mailbox, size_t mailboxcap)
{
    char local[SMTP_LOCAL_MAX * 4 + 1], domain[SMTP_DOMAIN_MAX + 1], path[PATH_MAX];
    char err[PATH_MAX + 128];
    const char *at = strrchr(r->addr, '@');
    size_t llen = at ? (size_t)(at - r->addr) : 0;
    str_copy(mailbox, mailboxcap, "-");
    if (!at || llen == 0 || llen >= sizeof local || !str_copy(domain, sizeof domain, at + 1) ||
        domain[0] == '\0') {
        str_copy(reply, replycap, "5.1.3 malformed recipient address");
        return RCPT_FAILED;
    }
    memcpy(local, r->addr, llen);
    local[llen] = '\0';
    str_lower(local);
    str_lower(domain);
    if (!config_has_mailbox(cfg, local, domain)) {
        str_copy(reply, replycap, "5.1.1 mailbox unknown");
        return RCPT_FAILED;
    }
    if (!config_maildir_path(cfg, local, domain, path, sizeof path)) {
        str_copy(reply, replycap, "5.3.5 mailbox path is too long or unsafe");
        return RCPT_FAILED;
    }
    str_copy(mailbox, mailboxcap, path);
    char hdr[2 * SMTP_PATH_MAX + 64], sender[SMTP_PATH_MAX + 1], rcpt[SMTP_PATH_MAX + 1];
    header_safe(sender, sizeof sender, env->sender);
    header_safe(rcpt, sizeof rcpt, r->addr);
    snprintf(hdr, sizeof hdr, "Return-Path: <%s>\r\nDelivered-To: %s\r\n", sender, rcpt);
    enum maildir_result res = maildir_deliver(path, cfg->hostname, hdr, fd, off, err, sizeof err);
    if (res == MAILDIR_OK) {
        str_copy(reply, replycap, "2.0.0 delivered to maildir");
        return RCPT_DELIVERED;
    }
    snprintf(reply, replycap, "%s %s", res == MAILDIR_TEMPFAIL ? "4.3.0" : "5.3.0", err);
    return res == MAILDIR_TEMPFAIL ? RCPT_PENDING : RCPT_FAILED;
}
