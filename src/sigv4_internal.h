/*
 * sigv4_internal.h - what the files of the signing core share; not for callers.
 *
 *   encode.c     byte classes, the URI encoder, UTF-8 checks, decimals, dates, hex
 *   canonical.c  canonical requests, signed header lists, scopes
 *   crypto.c     SHA-256 and HMAC on OpenSSL's EVP interface, the key, the signature
 *   signer.c     endpoints, configuration, credentials, the day's key
 *   presign.c    presigned URLs (query authentication)
 *   authorize.c  Authorization headers (header authentication)
 */
#ifndef SIGV4_INTERNAL_H
#define SIGV4_INTERNAL_H

#include <string.h>            /* memcpy(3) */

#include <openssl/evp.h>

#include "sigv4.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define AUTH_PREFIX "X-Amz-"          /* the parameters and headers a signer adds all start so */
#define MAX_STRING_TO_SIGN (sizeof ALGORITHM + SIGV4_AMZ_DATE_LEN + 1 + SIGV4_MAX_SCOPE + 1 + SIGV4_HEX_LEN)

static inline struct sigv4_str str(const char *p, size_t n)
{
	struct sigv4_str s = { p, n };
	return s;
}

#define LIT(s) str((s), sizeof(s) - 1)

/* ---- output buffers ---------------------------------------------------- */

/*
** An output buffer that keeps counting past its capacity, so that a failed
** call can report the size it needed (like snprintf). Writers check the
** capacity once per run of bytes (room), never per byte.
*/
struct out {
	char *p;
	size_t cap, len;
};

/* Where n more bytes go, or NULL when they do not fit. */
static inline char *room(const struct out *o, size_t n)
{
	return o->len <= o->cap && n <= o->cap - o->len ? o->p + o->len : NULL;
}

static inline void put(struct out *o, const char *p, size_t n)
{
	char *d = room(o, n);
	if (d && n)
		memcpy(d, p, n);
	o->len += n;
}

static inline void put_str(struct out *o, struct sigv4_str s)
{
	put(o, s.ptr, s.len);
}

static inline void put_char(struct out *o, char c)
{
	char *d = room(o, 1);
	if (d)
		*d = c;
	o->len++;
}

/* What a writer returns: OK, or ENOSPC with *len the size it needed. */
static inline int finish(const struct out *o, size_t *len)
{
	if (len)
		*len = o->len;
	return o->len <= o->cap ? SIGV4_OK : SIGV4_ENOSPC;
}

/* ---- encode.c ----------------------------------------------------------- */

/*
** What each byte may be: kept as itself in a query (RFC 3986 unreserved
** A-Za-z0-9-._~, the only bytes SigV4 leaves unescaped), kept in an object
** key path ('/'), allowed in a header field name (RFC 9110 tchar), or a
** control byte (C0, DEL), which no header value, secret or bucket holds.
*/
enum { KEEP_QUERY = 1, KEEP_SLASH = 2, TCHAR = 4, CONTROL = 8 };
#define KEEP_PATH (KEEP_QUERY | KEEP_SLASH)
extern const unsigned char byte_class[256];

static inline int is(unsigned char c, unsigned classes)
{
	return (byte_class[c] & classes) != 0;
}

void put_encoded(struct out *o, struct sigv4_str s, unsigned keep);
/* How the encodings of a and b sort, without building them. */
int encoded_compare(struct sigv4_str a, struct sigv4_str b);
/* Strict UTF-8 without NUL: no overlong forms, surrogates or code points past U+10FFFF. */
int valid_utf8(struct sigv4_str s);
/* Control bytes (C0, DEL): never in a header value, a secret or a bucket name. */
int has_control(struct sigv4_str s);
/* 1..max bytes of printable ASCII without space, and without '/' if no_slash. */
int is_printable(struct sigv4_str s, size_t max, int no_slash);
/* Lowercase hex of n bytes: 2n characters. */
void hex(char *out, const uint8_t *bytes, size_t n);

/* ---- canonical.c ---------------------------------------------------------- */

/*
** A request's headers checked and sorted by name, with the list of their
** lowercased names (SignedHeaders), from which the header lines copy them:
** sigv4_canonical_request is sort_headers, then canonical_request.
*/
struct sorted_headers {
	const struct sigv4_pair *v[SIGV4_MAX_CANONICAL_PAIRS];
	size_t n, list_len;
	char list[SIGV4_MAX_SIGNED_HEADERS];
};
int sort_headers(struct sorted_headers *h, const struct sigv4_pair *headers, size_t n);
/* The canonical request of c, whose headers h holds, sorted; then finish(o). */
int canonical_request(struct out *o, const struct sigv4_canonical *c, const struct sorted_headers *h);

/* The canonical request's lines, found again in what sigv4_canonical_request wrote. */
struct canonical_lines {
	struct sigv4_str path, query;
};
void canonical_lines(struct canonical_lines *l, struct sigv4_str creq);

/* ---- crypto.c --------------------------------------------------------------- */

/* SHA-256 on EVP, with a context made once and reused for every digest. */
struct sha256 {
	EVP_MD *md;
	EVP_MD_CTX *ctx;
};
int sha256_open(struct sha256 *h);
void sha256_close(struct sha256 *h);

/* An HMAC-SHA256 key, absorbed once into inner and outer states that each MAC copies. */
struct hmac {
	EVP_MD_CTX *inner, *outer;
};
int hmac_key(struct hmac *k, struct sha256 *h, const uint8_t *key, size_t key_len);
int hmac_mac(uint8_t mac[SIGV4_KEY_LEN], const struct hmac *k, struct sha256 *h, struct sigv4_str msg);
void hmac_close(struct hmac *k);

/* The stages behind sigv4_string_to_sign, sigv4_derive_key and sigv4_payload_hash. */
int string_to_sign(struct sha256 *h, struct out *o, const char amz_date[SIGV4_AMZ_DATE_LEN],
                   struct sigv4_str scope, struct sigv4_str canonical_request);
int derive_key(struct sha256 *h, uint8_t out[SIGV4_KEY_LEN], struct sigv4_str secret_key,
               const char amz_date[SIGV4_AMZ_DATE_LEN], struct sigv4_str region, struct sigv4_str service);
int payload_hash(struct sha256 *h, char out[SIGV4_HEX_LEN], struct sigv4_str body);
/* The signature of a string to sign: hex of its MAC under k. */
int signature(char out[SIGV4_HEX_LEN], const struct hmac *k, struct sha256 *h, struct sigv4_str sts);

/* ---- signer.c ------------------------------------------------------------------- */

struct sigv4_signer {
	/* fixed at creation */
	char region[SIGV4_MAX_REGION], service[SIGV4_MAX_SERVICE];
	char origin[SIGV4_MAX_ORIGIN];          /* "scheme://" host: every URL's start */
	char path_head[1 + SIGV4_MAX_BUCKET + 1];   /* "/", or "/" bucket "/" when path-style; decoded */
	size_t region_len, service_len, origin_len, host_at, path_head_len;   /* host: origin + host_at */
	int content_sha256;

	/* credentials: replaced together */
	char access_key_id[SIGV4_MAX_ACCESS_KEY_ID], secret_key[SIGV4_MAX_SECRET_KEY];
	char session_token[SIGV4_MAX_SESSION_TOKEN];
	size_t access_key_id_len, secret_key_len, session_token_len;

	/* the day's key for these credentials, derived when the UTC day or they change */
	char key_day[8];                        /* YYYYMMDD; all zero: nothing derived */
	struct hmac key;
	char scope[SIGV4_MAX_SCOPE];
	size_t scope_len;

	struct sha256 sha;                      /* scratch */
};

/*
 * What both ways of signing share. begin_request checks a request, writes
 * its path ("/" [bucket "/"] key, decoded), its X-Amz-Date and its payload
 * hash (of the body, or UNSIGNED-PAYLOAD), and makes sure of the day's key;
 * signed_headers puts the request's own headers, Host and the signer's extra
 * ones into out (room for SIGV4_MAX_PAIRS + 1 + n_extra) and sorts them;
 * sign_canonical writes the canonical request and signs it; put_url writes
 * the URL of a canonical request: the origin, its encoded path and, if it
 * has one, its query.
 */
int begin_request(struct sigv4_signer *s, const struct sigv4_request *r, char path[SIGV4_MAX_PATH],
                  size_t *path_len, char amz_date[SIGV4_AMZ_DATE_LEN], char hash[SIGV4_HEX_LEN], size_t *hash_len);
int signed_headers(const struct sigv4_signer *s, const struct sigv4_request *r, const struct sigv4_pair *extra,
                   size_t n_extra, struct sigv4_pair *out, size_t *n, struct sorted_headers *sorted);
int sign_canonical(struct sigv4_signer *s, const struct sigv4_canonical *c, const struct sorted_headers *h,
                   const char amz_date[SIGV4_AMZ_DATE_LEN], char *creq, size_t creq_cap, size_t *creq_len,
                   char sig[SIGV4_HEX_LEN]);
void put_url(struct out *o, const struct sigv4_signer *s, struct sigv4_str creq);
static inline struct sigv4_str signer_host(const struct sigv4_signer *s)
{
	return str(s->origin + s->host_at, s->origin_len - s->host_at);
}
/* The credential: access key id "/" scope, decoded. */
void put_credential(struct out *o, const struct sigv4_signer *s);

#endif
