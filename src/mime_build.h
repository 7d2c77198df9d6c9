/* mime_build.h - build a multipart/mixed message body with attachments for `tern send
 * --attach` (RFC 2045/2046 multipart, RFC 2183 Content-Disposition, RFC 2231 encoded file
 * names). Pure: no I/O; the caller reads the files and supplies the boundary's random part. */
#ifndef TERN_MIME_BUILD_H
#define TERN_MIME_BUILD_H

#include <stdbool.h>
#include <stddef.h>

struct mime_attachment {
    const char *name;          /* file name as given; only the part after the last '/' is used */
    const char *type;          /* "type/subtype", or NULL: mime_type_for_name(name) */
    const unsigned char *data;
    size_t len;
};

/* The content type for a file name from its extension (a small table, case-insensitive),
 * else "application/octet-stream". */
const char *mime_type_for_name(const char *name);

/* True if s is a syntactically valid "type/subtype" (RFC 2045 5.1 tokens, no parameters,
 * each name at most 127 characters: RFC 6838 4.2). */
bool mime_type_valid(const char *s);

/* True if any of the n bytes at p is 8-bit (needs 8bit transfer, RFC 6152). */
bool mime_has_8bit(const char *p, size_t n);

/* The MIME header fields (MIME-Version, Content-Type with the boundary), an empty line and
 * the multipart body: body (CRLF line ends, may be empty) as the first text/plain part,
 * then each attachment base64-encoded in 76-column lines (RFC 2045 6.8) with
 * Content-Disposition: attachment and its file name. The boundary is "=_tern_", the
 * letters and digits of seed, and a counter chosen so that it occurs nowhere in body.
 * Returns a malloc'd buffer (NUL-terminated; *len without the NUL). */
char *mime_build_mixed(const char *body, size_t body_len, const struct mime_attachment *att,
                       size_t natt, const char *seed, size_t *len);

#endif
