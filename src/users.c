/* users.c - the users table for SMTP AUTH: parser, formatter, secret derivation (crypt(3)
 * yescrypt for PLAIN/LOGIN; RFC 5802 3 / RFC 7677 SCRAM-SHA-256 StoredKey and ServerKey;
 * RFC 2104 HMAC-MD5 intermediate states for RFC 2195 CRAM-MD5) and atomic file writes.
 * The format is in users.h and docs/auth.md. */

/* The CRAM-MD5 secret is the MD5 state after one block, which only the low-level MD5 API
 * exposes; OpenSSL 3 marks it deprecated but keeps it. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "users.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/md5.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "smtp_reply.h"
#include "util.h"

#define USERS_FILE_MAX (64u << 20) /* refuse absurd files rather than exhaust memory */

bool users_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > USERS_NAME_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p <= ' ' || *p == ':' || *p == 0x7f)
            return false;
    return true;
}

/* ---- secrets -------------------------------------------------------------------------- */

static void cram_states(const char *password, unsigned char out[32])
{
    unsigned char key[64] = {0}, block[64];
    size_t len = strlen(password);
    if (len > sizeof key)
        MD5((const unsigned char *)password, len, key); /* RFC 2104 2: long keys are hashed */
    else
        memcpy(key, password, len);
    for (int half = 0; half < 2; half++) {
        MD5_CTX c;
        for (size_t i = 0; i < sizeof block; i++)
            block[i] = key[i] ^ (half == 0 ? 0x36 : 0x5c);
        MD5_Init(&c);
        MD5_Update(&c, block, sizeof block);
        const MD5_LONG w[4] = {c.A, c.B, c.C, c.D};
        for (int i = 0; i < 4; i++)
            for (int b = 0; b < 4; b++) /* little-endian words: stable across hosts */
                out[half * 16 + i * 4 + b] = (unsigned char)(w[i] >> (8 * b));
        OPENSSL_cleanse(&c, sizeof c);
    }
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(block, sizeof block);
}

static int scram_keys(struct user_entry *e, const char *password)
{
    unsigned char salted[32], client_key[32];
    unsigned int len = 0;
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), e->scram_salt,
                          (int)e->scram_salt_len, (int)e->scram_iter, EVP_sha256(),
                          sizeof salted, salted) != 1)
        return -1;
    if (!HMAC(EVP_sha256(), salted, sizeof salted, (const unsigned char *)"Client Key", 10,
              client_key, &len) ||
        !HMAC(EVP_sha256(), salted, sizeof salted, (const unsigned char *)"Server Key", 10,
              e->server_key, &len)) {
        OPENSSL_cleanse(salted, sizeof salted);
        return -1;
    }
    SHA256(client_key, sizeof client_key, e->stored_key);
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(client_key, sizeof client_key);
    return 0;
}

int users_make_entry(struct user_entry *e, const char *name, const char *password, bool cram,
                     unsigned iter, char *err, size_t errlen)
{
    memset(e, 0, sizeof *e);
    if (!users_name_valid(name))
        return errorf(err, errlen, "invalid user name (1-%d characters, no ':', spaces or "
                      "control characters)", USERS_NAME_MAX), -1;
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof setting))
        return errorf(err, errlen, "crypt_gensalt: %s", strerror(errno)), -1;
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return errorf(err, errlen, "out of memory"), -1;
    const char *h = crypt_r(password, setting, cd);
    if (!h || h[0] != '$') {
        free(cd);
        return errorf(err, errlen, "crypt failed"), -1;
    }
    e->crypt_hash = xstrdup(h);
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);

    e->has_scram = true;
    e->scram_iter = iter ? iter : USERS_SCRAM_ITER_DEFAULT;
    e->scram_salt_len = 16;
    if (RAND_bytes(e->scram_salt, (int)e->scram_salt_len) != 1 || scram_keys(e, password) < 0) {
        free(e->crypt_hash);
        memset(e, 0, sizeof *e);
        return errorf(err, errlen, "SCRAM key derivation failed"), -1;
    }
    if (cram) {
        e->has_cram = true;
        cram_states(password, e->cram);
    }
    e->name = xstrdup(name);
    return 0;
}

void users_cram_digest(const struct user_entry *e, const void *challenge, size_t len,
                       char hex[33])
{
    unsigned char inner[MD5_DIGEST_LENGTH], outer[MD5_DIGEST_LENGTH];
    for (int half = 0; half < 2; half++) {
        MD5_CTX c;
        MD5_Init(&c);
        MD5_LONG w[4];
        for (int i = 0; i < 4; i++) {
            const unsigned char *b = &e->cram[half * 16 + i * 4];
            w[i] = (MD5_LONG)b[0] | (MD5_LONG)b[1] << 8 | (MD5_LONG)b[2] << 16 |
                   (MD5_LONG)b[3] << 24;
        }
        c.A = w[0], c.B = w[1], c.C = w[2], c.D = w[3];
        c.Nl = 512; /* one 64-octet block (key ^ pad) already hashed */
        if (half == 0) {
            MD5_Update(&c, challenge, len);
            MD5_Final(inner, &c);
        } else {
            MD5_Update(&c, inner, sizeof inner);
            MD5_Final(outer, &c);
        }
        OPENSSL_cleanse(&c, sizeof c);
    }
    for (size_t i = 0; i < sizeof outer; i++)
        snprintf(hex + 2 * i, 3, "%02x", outer[i]);
}

bool users_check_hash(const char *hash, const char *password)
{
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return false;
    const char *h = crypt_r(password, hash, cd);
    size_t n = strlen(hash);
    bool ok = h && h[0] != '*' && strlen(h) == n && CRYPTO_memcmp(h, hash, n) == 0;
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
    return ok;
}

bool users_check_password(const struct user_entry *e, const char *password)
{
    return users_check_hash(e->crypt_hash, password);
}

/* ---- text ----------------------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode base64 of exactly want bytes (want 0: anything up to cap, length in *got). */
static bool b64_field(const char *s, size_t len, unsigned char *out, size_t cap, size_t want,
                      size_t *got)
{
    unsigned char buf[128];
    if (len == 0 || len > 4 * ((sizeof buf - 1) / 3))
        return false;
    long n = smtp_b64_decode(s, len, buf, sizeof buf);
    if (n <= 0 || (size_t)n > cap || (want && (size_t)n != want))
        return false;
    memcpy(out, buf, (size_t)n);
    if (got)
        *got = (size_t)n;
    return true;
}

static bool parse_scram(struct user_entry *e, const char *s, size_t len)
{
    const char *f[4];
    size_t fl[4];
    size_t k = 0;
    const char *start = s, *end = s + len;
    for (const char *p = s; p <= end; p++) {
        if (p == end || *p == ',') {
            if (k == 4)
                return false;
            f[k] = start;
            fl[k++] = (size_t)(p - start);
            start = p + 1;
        }
    }
    if (k != 4 || fl[0] == 0 || fl[0] > 9)
        return false;
    unsigned long it = 0;
    for (size_t i = 0; i < fl[0]; i++) {
        if (f[0][i] < '0' || f[0][i] > '9')
            return false;
        it = it * 10 + (unsigned long)(f[0][i] - '0');
    }
    if (it < 4096 || it > 100000000)
        return false;
    e->scram_iter = (unsigned)it;
    e->has_scram = true;
    return b64_field(f[1], fl[1], e->scram_salt, sizeof e->scram_salt, 0, &e->scram_salt_len) &&
           b64_field(f[2], fl[2], e->stored_key, 32, 32, NULL) &&
           b64_field(f[3], fl[3], e->server_key, 32, 32, NULL);
}

static int parse_line(struct user_entry *e, char *line, char *err, size_t errlen)
{
    char *f[4];
    size_t k = 0;
    char *p = line;
    for (;;) {
        if (k == 4)
            return errorf(err, errlen, "too many ':'-separated fields (expected 4)"), -1;
        f[k++] = p;
        char *c = strchr(p, ':');
        if (!c)
            break;
        *c = '\0';
        p = c + 1;
    }
    if (k != 4)
        return errorf(err, errlen, "expected 4 ':'-separated fields, got %zu", k), -1;
    if (!users_name_valid(f[0]))
        return errorf(err, errlen, "invalid user name"), -1;
    if (f[1][0] != '$' || strlen(f[1]) < 4)
        return errorf(err, errlen, "password hash is not a crypt(3) hash"), -1;
    for (const char *q = f[1]; *q; q++)
        if (*q <= ' ' || *q == 0x7f)
            return errorf(err, errlen, "password hash has invalid characters"), -1;
    if (f[2][0] && !parse_scram(e, f[2], strlen(f[2])))
        return errorf(err, errlen, "malformed SCRAM field (ITER>=4096,SALT,STOREDKEY,"
                      "SERVERKEY)"), -1;
    if (f[3][0]) {
        if (strlen(f[3]) != 64)
            return errorf(err, errlen, "CRAM-MD5 field must be 64 hex digits"), -1;
        for (size_t i = 0; i < 32; i++) {
            int hi = hexval(f[3][2 * i]), lo = hexval(f[3][2 * i + 1]);
            if (hi < 0 || lo < 0)
                return errorf(err, errlen, "CRAM-MD5 field must be 64 hex digits"), -1;
            e->cram[i] = (unsigned char)(hi << 4 | lo);
        }
        e->has_cram = true;
    }
    e->name = xstrdup(f[0]);
    e->crypt_hash = xstrdup(f[1]);
    return 0;
}

int users_parse(struct users *u, const char *text, size_t len, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    size_t lineno = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        lineno++;
        size_t n = (size_t)(le - p);
        if (n && p[n - 1] == '\r')
            n--;
        if (n > 0 && p[0] != '#') {
            if (memchr(p, '\0', n)) {
                users_free(u);
                return errorf(err, errlen, "line %zu: NUL byte", lineno), -1;
            }
            char *line = xstrndup(p, n);
            struct user_entry e = {0};
            char why[160];
            int rc = parse_line(&e, line, why, sizeof why);
            free(line);
            if (rc == 0 && users_find(u, e.name)) {
                snprintf(why, sizeof why, "duplicate user '%s'", e.name);
                rc = -1;
            }
            if (rc < 0) {
                users_entry_free(&e);
                users_free(u);
                return errorf(err, errlen, "line %zu: %s", lineno, why), -1;
            }
            u->v = xrealloc(u->v, (u->n + 1) * sizeof *u->v);
            u->v[u->n++] = e;
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

char *users_format(const struct user_entry *e)
{
    char scram[16 + 3 * 100] = "";
    if (e->has_scram) {
        char salt[4 * ((USERS_SCRAM_SALT_MAX + 2) / 3) + 1], sk[45], svk[45];
        smtp_b64_encode(e->scram_salt, e->scram_salt_len, salt);
        smtp_b64_encode(e->stored_key, 32, sk);
        smtp_b64_encode(e->server_key, 32, svk);
        snprintf(scram, sizeof scram, "%u,%s,%s,%s", e->scram_iter, salt, sk, svk);
    }
    char cram[65] = "";
    if (e->has_cram)
        for (size_t i = 0; i < 32; i++)
            snprintf(cram + 2 * i, 3, "%02x", e->cram[i]);
    size_t n = strlen(e->name) + strlen(e->crypt_hash) + strlen(scram) + strlen(cram) + 4;
    char *out = xmalloc(n);
    snprintf(out, n, "%s:%s:%s:%s", e->name, e->crypt_hash, scram, cram);
    return out;
}

const struct user_entry *users_find(const struct users *u, const char *name)
{
    for (size_t i = 0; i < u->n; i++)
        if (strcmp(u->v[i].name, name) == 0)
            return &u->v[i];
    return NULL;
}

int users_put(struct users *u, struct user_entry *e, bool replace)
{
    for (size_t i = 0; i < u->n; i++) {
        if (strcmp(u->v[i].name, e->name) == 0) {
            if (!replace)
                return -1;
            users_entry_free(&u->v[i]);
            u->v[i] = *e;
            memset(e, 0, sizeof *e);
            return 0;
        }
    }
    u->v = xrealloc(u->v, (u->n + 1) * sizeof *u->v);
    u->v[u->n++] = *e;
    memset(e, 0, sizeof *e);
    return 0;
}

bool users_remove(struct users *u, const char *name)
{
    for (size_t i = 0; i < u->n; i++) {
        if (strcmp(u->v[i].name, name) == 0) {
            users_entry_free(&u->v[i]);
            memmove(&u->v[i], &u->v[i + 1], (u->n - i - 1) * sizeof *u->v);
            u->n--;
            return true;
        }
    }
    return false;
}

/* ---- files ---------------------------------------------------------------------------- */

int users_load(struct users *u, const char *path, bool missing_ok, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && missing_ok)
            return 0;
        return errorf(err, errlen, "%s: %s", path, strerror(errno)), -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (unsigned long long)st.st_size >
                                                          USERS_FILE_MAX) {
        close(fd);
        return errorf(err, errlen, "%s: not a regular file of sane size", path), -1;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap > USERS_FILE_MAX) {
                free(buf);
                close(fd);
                return errorf(err, errlen, "%s: too large", path), -1;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return errorf(err, errlen, "%s: %s", path, strerror(e)), -1;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    char why[200];
    int rc = users_parse(u, buf, len, why, sizeof why);
    OPENSSL_cleanse(buf, len);
    free(buf);
    if (rc < 0)
        return errorf(err, errlen, "%s: %s", path, why), -1;
    return 0;
}

int users_save(const struct users *u, const char *path, char *err, size_t errlen)
{
    size_t plen = strlen(path);
    char *tmp = xmalloc(plen + 32);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        errorf(err, errlen, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    const char *what = "write";
    struct stat st;
    /* keep an existing file's owner and group (e.g. root:tern), so tern can still read it */
    if (stat(path, &st) == 0 && fchown(fd, st.st_uid, st.st_gid) < 0 && errno != EPERM) {
        what = "fchown";
        goto fail;
    }
    if (fchmod(fd, 0640) < 0) {
        what = "fchmod";
        goto fail;
    }
    static const char head[] = "# tern users file: name:crypt-hash:scram-sha-256:cram-md5 "
                               "(docs/auth.md). Edit with `tern user`.\n";
    if (write_all(fd, head, sizeof head - 1) < 0)
        goto fail;
    for (size_t i = 0; i < u->n; i++) {
        char *line = users_format(&u->v[i]);
        size_t n = strlen(line);
        line = xrealloc(line, n + 2);
        line[n] = '\n';
        int rc = write_all(fd, line, n + 1);
        free(line);
        if (rc < 0)
            goto fail;
    }
    if (fsync(fd) < 0) {
        what = "fsync";
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        what = "close";
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        what = "rename";
        goto fail;
    }
    char *dcopy = xstrdup(path);
    int drc = fsync_dir(dirname(dcopy));
    free(dcopy);
    free(tmp);
    if (drc < 0)
        return errorf(err, errlen, "%s: fsync of directory: %s", path, strerror(errno)), -1;
    return 0;
fail:
    errorf(err, errlen, "%s: %s: %s", tmp, what, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(tmp);
    return -1;
}

void users_entry_free(struct user_entry *e)
{
    free(e->name);
    if (e->crypt_hash)
        OPENSSL_cleanse(e->crypt_hash, strlen(e->crypt_hash));
    free(e->crypt_hash);
    OPENSSL_cleanse(e, sizeof *e);
}

void users_free(struct users *u)
{
    for (size_t i = 0; i < u->n; i++)
        users_entry_free(&u->v[i]);
    free(u->v);
    u->v = NULL;
    u->n = 0;
}
