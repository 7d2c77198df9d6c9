/* users.h - the users table for SMTP AUTH (RFC 4954): parse, format, derive and check
 * secrets. One line per user (docs/auth.md):
 *
 *   name:CRYPT:SCRAM:CRAM
 *
 * CRYPT  a crypt(3) hash (yescrypt "$y$" by default, bcrypt "$2b$" accepted) for PLAIN/LOGIN;
 * SCRAM  "ITER,SALT,STOREDKEY,SERVERKEY" (SALT and keys base64) for SCRAM-SHA-256 (RFC 7677,
 *        RFC 5802 3), empty when the user has none;
 * CRAM   64 hex digits: the HMAC-MD5 inner and outer MD5 states for CRAM-MD5 (RFC 2195),
 *        empty unless added with --cram (it is plaintext-equivalent; see docs/auth.md).
 *
 * Parsing and formatting are pure (text in, struct out) so they are unit-tested; the file
 * I/O (users_load, users_save) writes atomically (temporary file, fsync, rename). */
#ifndef TERN_USERS_H
#define TERN_USERS_H

#include <stdbool.h>
#include <stddef.h>

#define USERS_NAME_MAX 255
#define USERS_SCRAM_SALT_MAX 64
#define USERS_SCRAM_ITER_DEFAULT 10000 /* RFC 7677 4: at least 4096 */

struct user_entry {
    char *name;
    char *crypt_hash;                 /* "$y$..." */
    bool has_scram;
    unsigned scram_iter;
    unsigned char scram_salt[USERS_SCRAM_SALT_MAX];
    size_t scram_salt_len;
    unsigned char stored_key[32];     /* H(ClientKey) */
    unsigned char server_key[32];     /* HMAC(SaltedPassword, "Server Key") */
    bool has_cram;
    unsigned char cram[32];           /* MD5 state after key^ipad, then after key^opad */
};

struct users {
    struct user_entry *v;
    size_t n;
};

/* A name is 1..USERS_NAME_MAX printable ASCII or UTF-8 octets without ':', whitespace or
 * control characters. */
bool users_name_valid(const char *name);

/* Parse a whole file's text. Blank lines and lines starting with '#' are skipped. Duplicate
 * names are an error. On error returns -1 with "line N: reason" in err and *u empty. */
int users_parse(struct users *u, const char *text, size_t len, char *err, size_t errlen);
/* The line for one entry, without the newline. Caller frees. */
char *users_format(const struct user_entry *e);
/* Exact (case-sensitive) lookup; NULL if absent. */
const struct user_entry *users_find(const struct users *u, const char *name);

/* Fill *e for name/password: a fresh yescrypt hash, SCRAM keys with a random salt and iter
 * iterations (0 = USERS_SCRAM_ITER_DEFAULT) and, when cram, the CRAM-MD5 states. -1 with a
 * reason in err (bad name, crypt failure). */
int users_make_entry(struct user_entry *e, const char *name, const char *password, bool cram,
                     unsigned iter, char *err, size_t errlen);
/* Does password match the entry's crypt hash? (constant-time comparison) */
bool users_check_password(const struct user_entry *e, const char *password);
/* The same against a crypt(3) hash string. Uses crypt_r only, so threads may call it at once
 * (authpool.c runs it off the event loop). */
bool users_check_hash(const char *hash, const char *password);

/* The CRAM-MD5 response digest (RFC 2195) for challenge, from the stored HMAC-MD5 states,
 * as 32 lower-case hex digits. The entry must have has_cram. */
void users_cram_digest(const struct user_entry *e, const void *challenge, size_t len,
                       char hex[33]);

/* Add (or, with replace, overwrite) an entry; takes ownership of *e's strings. -1 if the name
 * exists and !replace. */
int users_put(struct users *u, struct user_entry *e, bool replace);
/* Remove by name; false if absent. */
bool users_remove(struct users *u, const char *name);

/* Read and parse a file. A missing file is an error unless missing_ok (then *u is empty). */
int users_load(struct users *u, const char *path, bool missing_ok, char *err, size_t errlen);
/* Write the table atomically: PATH.tmp.PID with mode 0640, fsync, rename, fsync the
 * directory. An existing file's owner and group are kept. */
int users_save(const struct users *u, const char *path, char *err, size_t errlen);

void users_entry_free(struct user_entry *e);
void users_free(struct users *u);

#endif
