/* reply.c - the reply table (see reply.h). Texts are written for the person reading a transcript:
 * they say what went wrong and, where it helps, what to do. */
#include "reply.h"

#include <stdio.h>

struct reply_def {
    short code;
    const char *esc;
    const char *text;
};

static const struct reply_def replies[RP__COUNT] = {
    [RP_GREETING] = {220, "", "ESMTP tern"},
    [RP_TLS_READY] = {220, "2.0.0", "Ready to start TLS"},
    [RP_BYE] = {221, "2.0.0", "Bye"},
    [RP_HELP] = {214, "2.0.0", "See RFC 5321"},
    [RP_OK] = {250, "2.0.0", "Ok"},
    [RP_HELO] = {250, "", "Hello"},
    [RP_MAIL_OK] = {250, "2.1.0", "Sender ok"},
    [RP_RCPT_OK] = {250, "2.1.5", "Recipient ok"},
    [RP_QUEUED] = {250, "2.0.0", "Ok: queued"},
    [RP_CHUNK_OK] = {250, "2.0.0", "Chunk received"},
    [RP_VRFY_OK] = {250, "2.1.5", "Mailbox exists"},
    [RP_CANNOT_VRFY] = {252, "2.1.5", "Cannot VRFY user, but will accept message and attempt delivery"},
    [RP_START_DATA] = {354, "", "End data with <CR><LF>.<CR><LF>"},
    [RP_SHUTDOWN] = {421, "4.3.2", "Service shutting down, closing connection; try again later"},
    [RP_TIMEOUT] = {421, "4.4.2", "Timeout waiting for client input, closing connection"},
    [RP_TOO_MANY_ERRORS] = {421, "4.7.0", "Too many errors, closing connection"},
    [RP_TOO_MANY_CONN] = {421, "4.7.0", "Too many connections, try again later"},
    [RP_TLS_UNAVAILABLE] = {454, "4.7.0", "TLS not available due to temporary reason"},
    [RP_LOCAL_ERROR] = {451, "4.3.0", "Local error in processing, try again later"},
    [RP_NO_STORAGE] = {452, "4.3.1", "Insufficient system storage, try again later"},
    [RP_TOO_MANY_RCPTS] = {452, "4.5.3", "Too many recipients"},
    [RP_UNKNOWN_CMD] = {500, "5.5.2", "Command unrecognized"},
    [RP_LINE_TOO_LONG] = {500, "5.5.2", "Line too long (RFC 5321 4.5.3.1.4: 512 octets)"},
    [RP_SYNTAX] = {501, "5.5.4", "Syntax error in parameters or arguments"},
    [RP_BAD_SENDER] = {501, "5.1.7", "Bad sender address syntax"},
    [RP_BAD_RCPT] = {501, "5.1.3", "Bad recipient address syntax"},
    [RP_NOT_IMPLEMENTED] = {502, "5.5.1", "Command not implemented"},
    [RP_BAD_SEQUENCE] = {503, "5.5.1", "Bad sequence of commands"},
    [RP_TLS_REQUIRED] = {530, "5.7.0", "Must issue a STARTTLS command first"},
    [RP_PARAM_NOT_IMPL] = {504, "5.5.4", "Command parameter not implemented"},
    [RP_NO_MAILBOX] = {550, "5.1.1", "No such user here"},
    [RP_MSG_REFUSED] = {550, "5.6.0", "Message refused"},
    [RP_SIZE_EXCEEDED] = {552, "5.3.4", "Message size exceeds fixed limit"},
    [R_NEED_UTF8] = {553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter (RFC 6531)"},
    [RP_PATH_TOO_LONG] = {553, "5.1.0", "Address too long (RFC 5321 4.5.3.1)"},
    [RP_RELAY_DENIED] = {554, "5.7.1", "Relay access denied"},
    [RP_PARAM_UNKNOWN] = {555, "5.5.4", "Unsupported parameter"},
    [RP_AUTH_CONTINUE] = {334, "", ""},
    [RP_AUTH_OK] = {235, "2.7.0", "Authentication successful"},
    [RP_AUTH_REQUIRED] = {530, "5.7.0", "Authentication required"},
    [RP_AUTH_FAILED] = {535, "5.7.8", "Authentication credentials invalid"},
    [RP_AUTH_CANCELLED] = {501, "5.7.0", "Authentication cancelled"},
    [RP_AUTH_BAD_BASE64] = {501, "5.5.2", "Cannot decode the base64 response"},
    [RP_AUTH_LINE_TOO_LONG] = {500, "5.5.6", "Authentication exchange line is too long"},
    [RP_AUTH_UNKNOWN_MECH] = {504, "5.5.4", "Unrecognized authentication type"},
    [RP_AUTH_TOO_WEAK] = {534, "5.7.9", "Authentication mechanism is too weak"},
    [RP_AUTH_NEED_TLS] = {538, "5.7.11", "Encryption required for requested authentication mechanism"},
    [RP_AUTH_TEMPFAIL] = {454, "4.7.0", "Temporary authentication failure"},
    [RP_AUTH_LOCKED] = {454, "4.7.0", "Too many failed authentication attempts from your address; try again later"},
    [RP_SENDER_NOT_OWNED] = {553, "5.7.1", "Sender address not owned by the authenticated user"},
    [RP_TURN_REFUSED] = {502, "5.7.0", "TURN is not supported: it would let any client take "
                                       "another's mail (RFC 2821 4.1.1); use AUTH, then ATRN (RFC 2645)"},
    [RP_SEND_NOT_IMPL] = {502, "5.5.1", "SEND is not supported: tern does not deliver to terminals; "
                                        "use MAIL (or SOML/SAML, which deliver to the mailbox)"},
    [RP_XEXPS_NOT_IMPL] = {502, "5.5.1", "X-EXPS (Exchange server authentication) is not supported; "
                                         "use AUTH (RFC 4954) with a mechanism listed in EHLO"},
    [RP_HOLD_TOO_LONG] = {554, "5.3.4", "Requested release time is beyond the maximum advertised "
                                        "with FUTURERELEASE (RFC 4865)"},
    [RP_HOLD_DENIED] = {550, "5.7.1", "Future release is only for authenticated users and "
                                      "clients in relay_networks"},
    [RP_ETRN_STARTED] = {250, "2.0.0", "OK, queuing for node started"},
    [RP_ETRN_NONE] = {251, "2.0.0", "OK, no messages waiting for node"},
    [RP_ETRN_PENDING] = {253, "2.0.0", "OK, pending messages for node started"},
    [RP_ETRN_UNABLE] = {458, "4.3.0", "Unable to queue messages for node"},
    [RP_ETRN_DENIED] = {459, "4.7.1", "Node not allowed"},
    /* RFC 2645 4.2 (On-Demand Mail Relay) */
    [RP_ATRN_OK] = {250, "2.0.0", "OK now reversing the connection"},
    [RP_ATRN_REFUSED] = {450, "4.7.1", "ATRN request refused"},
    [RP_ATRN_TEMPFAIL] = {451, "4.3.0", "Unable to process ATRN request now"},
    [RP_ATRN_NO_MAIL] = {453, "4.0.0", "You have no mail"},
    [RP_ODMR_ONLY] = {502, "5.5.1", "Command not available on the ODMR port: use EHLO, AUTH, ATRN, QUIT (RFC 2645)"},
    [RP_USER_MOVED] = {551, "5.1.6", "User has moved"},
    [RP_ALIAS_LOOP] = {550, "5.4.6", "Alias expansion loop"},
    [RP_ALIAS_REFUSED] = {550, "5.7.1", "Alias target refused by local policy"},
    [RP_RESOURCES] = {421, "4.3.2", "Temporary local resource shortage, closing connection; try again later"},
    [RP_HEADER_TOO_BIG] = {552, "5.3.4", "Message header section exceeds fixed limit"},
    [RP_TOO_MANY_HEADERS] = {554, "5.6.0", "Too many header fields in message"},
};

int reply_code(enum reply_id id)
{
    return replies[id].code;
}

const char *reply_esc(enum reply_id id)
{
    return replies[id].esc;
}

const char *reply_text(enum reply_id id)
{
    return replies[id].text;
}

size_t reply_format(char *buf, size_t cap, enum reply_id id, bool more, const char *text)
{
    const struct reply_def *r = &replies[id];
    int n = snprintf(buf, cap, "%d%c%s%s%s\r\n", r->code, more ? '-' : ' ', r->esc,
                     r->esc[0] ? " " : "", text ? text : r->text);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}
