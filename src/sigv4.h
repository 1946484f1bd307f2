/*
 * sigv4.h - AWS Signature Version 4 for S3 and the services beside it (STS).
 *
 * A pure core: no Lua, no clock, no random numbers, no I/O. Strings are
 * (ptr, len) views and need not be NUL-terminated. Outputs go to caller
 * buffers of explicit capacity; when one is too small the call fails with
 * SIGV4_ENOSPC and reports the size it needed. Time comes in as Unix
 * seconds, so every output is reproducible.
 *
 * Signing goes through four named stages, public so that known-answer tests
 * check each one, and the same stages make every URL and header:
 *   canonical request -> string to sign -> the day's key -> signature.
 * A signer (sigv4_signer_init) holds an endpoint, a scope and credentials that
 * can be replaced while it lives; it presigns URLs (query authentication) and
 * signs requests in an Authorization header (header authentication).
 */
#ifndef SIGV4_H
#define SIGV4_H

#include <stddef.h>
#include <stdint.h>

enum sigv4_status {
	SIGV4_OK = 0,
	SIGV4_EINVAL,   /* an input is empty, too long, or holds forbidden bytes */
	SIGV4_ENOSPC,   /* an output buffer is too small; *len says how much is needed */
	SIGV4_ECRYPTO   /* libcrypto failed */
};

/* ---- limits: inputs above them are refused with SIGV4_EINVAL ------------ */

/* A limit as text, for the messages that name it: SIGV4_TEXT(SIGV4_MAX_REGION) is "64". */
#define SIGV4_TEXT(limit) SIGV4_TEXT_(limit)
#define SIGV4_TEXT_(limit) #limit

#define SIGV4_MAX_EXPIRES 604800        /* S3 refuses presigned URLs valid longer than 7 days */
#define SIGV4_MAX_ACCESS_KEY_ID 128
#define SIGV4_MAX_SECRET_KEY 128
#define SIGV4_MAX_SESSION_TOKEN 4096
#define SIGV4_MAX_REGION 64
#define SIGV4_MAX_SERVICE 32
#define SIGV4_MAX_HOST 261              /* a 255-byte DNS name, ':' and a port */
#define SIGV4_MAX_BUCKET 255            /* older S3 buckets and other servers allow more than 63 */
#define SIGV4_MAX_KEY 1024              /* S3's limit on object key bytes */
#define SIGV4_MAX_METHOD 16
#define SIGV4_MAX_PAIRS 16              /* a request's own query parameters, and its own headers */
#define SIGV4_MAX_QUERY_BYTES 2048      /* names and values of a request's own query, decoded */
#define SIGV4_MAX_HEADER_BYTES 2048     /* names and values of a request's own headers */

/* ---- sizes that follow from them ------------------------------------------ */

#define SIGV4_KEY_LEN 32                /* HMAC-SHA256 key and MAC size */
#define SIGV4_HEX_LEN 64                /* a SHA-256 digest in hex, without NUL */
#define SIGV4_AMZ_DATE_LEN 16           /* "20240115T120000Z" */
#define SIGV4_DECIMAL_LEN 20            /* digits of the largest uint64_t */
/* "YYYYMMDD/" region "/" service "/aws4_request" */
#define SIGV4_MAX_SCOPE (9 + SIGV4_MAX_REGION + 1 + SIGV4_MAX_SERVICE + 13)
/* access key id "/" scope: X-Amz-Credential and the Authorization header's Credential= */
#define SIGV4_MAX_CREDENTIAL (SIGV4_MAX_ACCESS_KEY_ID + 1 + SIGV4_MAX_SCOPE)
/* "scheme://" [bucket "."] host */
#define SIGV4_MAX_ORIGIN (8 + SIGV4_MAX_BUCKET + 1 + SIGV4_MAX_HOST)
/* "/" [bucket "/"] key, decoded */
#define SIGV4_MAX_PATH (1 + SIGV4_MAX_BUCKET + 1 + SIGV4_MAX_KEY)
/* the request's header names, the signer's four ("host", "x-amz-date" ...) and ';' between */
#define SIGV4_MAX_SIGNED_HEADERS (SIGV4_MAX_HEADER_BYTES + 64 + SIGV4_MAX_PAIRS)
/* the X-Amz-* query parameters of a presigned URL, encoded (each value at most tripled) */
#define SIGV4_MAX_AUTH_QUERY (160 + 3 * (SIGV4_MAX_CREDENTIAL + SIGV4_MAX_SESSION_TOKEN + \
                              SIGV4_MAX_SIGNED_HEADERS) + SIGV4_HEX_LEN)
/* the request's own query, encoded, with '=' and '&' */
#define SIGV4_MAX_QUERY (3 * SIGV4_MAX_QUERY_BYTES + 2 * SIGV4_MAX_PAIRS)
/* a path, encoded, '?' and a query with the X-Amz-* parameters: a URL's, and a canonical request's lines */
#define SIGV4_MAX_TARGET (3 * SIGV4_MAX_PATH + 1 + SIGV4_MAX_QUERY + 1 + SIGV4_MAX_AUTH_QUERY)
/* any URL a signer writes: presigned, or the target of a header-signed request */
#define SIGV4_MAX_URL (SIGV4_MAX_ORIGIN + SIGV4_MAX_TARGET)
/* the header lines of a canonical request: the request's own and the signer's */
#define SIGV4_MAX_HEADER_LINES (SIGV4_MAX_HEADER_BYTES + 2 * SIGV4_MAX_PAIRS + \
                                sizeof "host:\n" + SIGV4_MAX_BUCKET + 1 + SIGV4_MAX_HOST + \
                                sizeof "x-amz-date:\n" + SIGV4_AMZ_DATE_LEN + \
                                sizeof "x-amz-content-sha256:\n" + SIGV4_HEX_LEN + \
                                sizeof "x-amz-security-token:\n" + SIGV4_MAX_SESSION_TOKEN)
/* any canonical request a signer writes */
#define SIGV4_MAX_CANONICAL_REQUEST (SIGV4_MAX_METHOD + 1 + SIGV4_MAX_TARGET + 1 + SIGV4_MAX_HEADER_LINES + 1 + \
                                     SIGV4_MAX_SIGNED_HEADERS + 1 + SIGV4_HEX_LEN)
/* the Authorization header's value */
#define SIGV4_MAX_AUTHORIZATION (sizeof "AWS4-HMAC-SHA256 Credential=" + SIGV4_MAX_CREDENTIAL + \
                                 sizeof ", SignedHeaders=" + SIGV4_MAX_SIGNED_HEADERS + \
                                 sizeof ", Signature=" + SIGV4_HEX_LEN)

struct sigv4_str {
	const char *ptr;
	size_t len;
};

struct sigv4_pair {
	struct sigv4_str name, value;
};

/* A short static description of a status code. */
const char *sigv4_strerror(int status);

/* Overwrite memory that held secrets; not optimised away. */
void sigv4_wipe(void *ptr, size_t len);

/* ---- encoding ---------------------------------------------------------------- */

/*
 * URI-encode src the S3 way: every byte outside A-Za-z0-9-._~ becomes %XX
 * with uppercase hex; '/' is kept when keep_slash is set (object key paths)
 * and encoded otherwise (query names and values). One pass, no normalising.
 * The only encoder: every URL and canonical request is written with it.
 */
int sigv4_uri_encode(char *dst, size_t cap, size_t *len, struct sigv4_str src, int keep_slash);

/* v in decimal, without NUL; returns the number of digits. */
size_t sigv4_decimal(char out[SIGV4_DECIMAL_LEN], uint64_t v);

/* Unix seconds to "YYYYMMDDTHHMMSSZ"; EINVAL outside years 1970..9999. */
int sigv4_amz_date(char out[SIGV4_AMZ_DATE_LEN], int64_t unix_seconds);

/* ---- the stages ---------------------------------------------------------------- */

/* What a canonical request is built from. */
struct sigv4_canonical {
	struct sigv4_str method;
	struct sigv4_str path;              /* decoded; encoded here once, '/' kept, never normalised */
	const struct sigv4_pair *query;     /* decoded; encoded and sorted here */
	size_t query_count;
	const struct sigv4_pair *headers;   /* names any case, lowercased and sorted here;
	                                       values trimmed, inner space runs collapsed */
	size_t header_count;
	struct sigv4_str payload_hash;      /* hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
};

/* At most this many query parameters and headers in a canonical request: a
   request's own and those authentication adds. */
#define SIGV4_MAX_CANONICAL_PAIRS (SIGV4_MAX_PAIRS + 8)

/*
 * Write the canonical request. EINVAL for an empty method or path, more than
 * SIGV4_MAX_CANONICAL_PAIRS pairs, a header name that is not an HTTP token,
 * duplicate header names, header names longer than SIGV4_MAX_SIGNED_HEADERS
 * together, or control bytes in a header value.
 */
int sigv4_canonical_request(char *out, size_t cap, size_t *len, const struct sigv4_canonical *c);

/* The header names lowercased, sorted and joined by ';' (SignedHeaders); EINVAL as above. */
int sigv4_signed_headers(char *out, size_t cap, size_t *len, const struct sigv4_pair *headers, size_t count);

/* The credential scope "YYYYMMDD/region/service/aws4_request". */
int sigv4_scope(char *out, size_t cap, size_t *len, const char amz_date[SIGV4_AMZ_DATE_LEN],
                struct sigv4_str region, struct sigv4_str service);

/* The string to sign for a canonical request: algorithm, date, scope, the request's hash. */
int sigv4_string_to_sign(char *out, size_t cap, size_t *len, const char amz_date[SIGV4_AMZ_DATE_LEN],
                         struct sigv4_str scope, struct sigv4_str canonical_request);

/* kSigning = HMAC chain over "AWS4"+secret, the date's day, region, service. */
int sigv4_derive_key(uint8_t out[SIGV4_KEY_LEN], struct sigv4_str secret_key,
                     const char amz_date[SIGV4_AMZ_DATE_LEN], struct sigv4_str region,
                     struct sigv4_str service);

/* Hex of HMAC-SHA256(key, msg): the signature of a string to sign. */
int sigv4_sign(char out[SIGV4_HEX_LEN], const uint8_t key[SIGV4_KEY_LEN], struct sigv4_str msg);

/* Hex SHA-256 of a request body: the payload hash of a header-signed request. */
int sigv4_payload_hash(char out[SIGV4_HEX_LEN], struct sigv4_str body);

/* ---- endpoints ------------------------------------------------------------------- */

/* An endpoint "http(s)://host[:port][/]", parsed: the one parser every layer uses. */
struct sigv4_endpoint {
	int https;
	int ip_literal;                     /* "[v6]" or a dotted IPv4 address: no bucket label */
	char host[SIGV4_MAX_HOST];          /* host[:port], the port left out when it is the scheme's default */
	size_t host_len;
};

/* EINVAL, with *why (when not NULL) a static message, for anything else: a path, a query, user
   info, a port out of 1..65535 or with a leading zero. */
int sigv4_parse_endpoint(struct sigv4_endpoint *e, struct sigv4_str text, const char **why);

/* ---- signers ------------------------------------------------------------------------ */

/* Where and for what a signer signs; fixed for its life. */
struct sigv4_config {
	struct sigv4_str region;
	struct sigv4_str service;           /* empty: "s3" */
	struct sigv4_str endpoint;          /* "https://host[:port]"; empty: AWS's service.region.amazonaws.com */
	struct sigv4_str bucket;            /* empty: requests address the endpoint itself (STS) */
	int path_style;                     /* bucket in the path instead of the host name */
	int content_sha256;                 /* header-signed requests carry X-Amz-Content-Sha256 (S3 wants it) */
};

/* Who signs; replaceable while the signer lives. */
struct sigv4_credentials {
	struct sigv4_str access_key_id;
	struct sigv4_str secret_key;
	struct sigv4_str session_token;     /* empty: none */
};

/*
 * A signer: a configuration, credentials, the day's key (as OpenSSL digest
 * contexts) and scratch contexts. Opaque; its memory belongs to the caller
 * (a Lua userdata, a malloc'd block), sigv4_signer_size() bytes aligned for
 * any type. Not thread-safe: signing may refresh the day's key.
 */
struct sigv4_signer;
size_t sigv4_signer_size(void);

/*
 * Check and copy a configuration and credentials. On EINVAL, *why (when
 * not NULL) is a static message that starts with the field name: "region:
 * must be ...". On any failure the memory holds nothing and needs no wipe.
 */
int sigv4_signer_init(struct sigv4_signer *s, const struct sigv4_config *c, const struct sigv4_credentials *k,
                      const char **why);

/*
 * Check a configuration, and credentials unless k is NULL, as sigv4_signer_init
 * does, without a signer: SIGV4_OK, or EINVAL with *field the name of the first
 * field refused ("region", "endpoint", "secret_key" ...) and *reason why, both static.
 */
int sigv4_check(const struct sigv4_config *c, const struct sigv4_credentials *k, const char **field,
                const char **reason);

/* Free the signer's OpenSSL contexts and wipe its memory; init again before use. */
void sigv4_signer_wipe(struct sigv4_signer *s);

/*
 * Replace all three credentials at once: on success the old ones and every
 * key derived from them are wiped, and the next signature uses the new set;
 * on EINVAL (*why as for sigv4_signer_init) the signer keeps the old set.
 */
int sigv4_signer_set_credentials(struct sigv4_signer *s, const struct sigv4_credentials *k, const char **why);

/* "scheme://host" plus "/bucket" when path-style: where objects live. */
int sigv4_bucket_url(char *out, size_t cap, size_t *len, const struct sigv4_signer *s);

/* One request to sign. */
struct sigv4_request {
	struct sigv4_str method;            /* "PUT", "GET", "POST": uppercase, at most SIGV4_MAX_METHOD */
	struct sigv4_str key;               /* object key, valid UTF-8 without NUL; empty: the bucket itself
	                                       (or the endpoint's root when the signer has no bucket) */
	const struct sigv4_pair *query;     /* the request's own parameters, e.g. response-content-type or
	                                       the subresource { "lifecycle", "" }; none may start X-Amz- */
	size_t query_count;
	const struct sigv4_pair *headers;   /* signed besides the signer's own; the client must send them */
	size_t header_count;
	const struct sigv4_str *payload;    /* the body, whose SHA-256 is signed; NULL: "UNSIGNED-PAYLOAD",
	                                       what S3 takes in presigned URLs and over TLS */
	int64_t now;                        /* Unix seconds */
};

/*
 * A presigned URL (query authentication) valid for expires seconds,
 * 1..SIGV4_MAX_EXPIRES. The canonical request is
 * built in creq and left there for diagnostics; *creq_len receives its
 * length when creq_len is not NULL. Buffers of SIGV4_MAX_URL and
 * SIGV4_MAX_CANONICAL_REQUEST bytes always suffice.
 */
int sigv4_presign(struct sigv4_signer *s, const struct sigv4_request *r, uint32_t expires,
                  char *url, size_t cap, size_t *len, char *creq, size_t creq_cap, size_t *creq_len);

/* The headers a header-signed request carries besides its own and Host. */
#define SIGV4_AUTH_HEADERS 4
struct sigv4_auth_headers {
	struct sigv4_pair header[SIGV4_AUTH_HEADERS];   /* X-Amz-Date, then X-Amz-Content-Sha256 if the
	                                                   signer sends it, X-Amz-Security-Token if it has
	                                                   a token, and Authorization */
	size_t count;
	/* where the values live */
	char amz_date[SIGV4_AMZ_DATE_LEN];
	char content_sha256[SIGV4_HEX_LEN];   /* the payload hash, hex or "UNSIGNED-PAYLOAD" */
	char session_token[SIGV4_MAX_SESSION_TOKEN];
	char authorization[SIGV4_MAX_AUTHORIZATION];
};

/*
 * Sign a request in its headers (header authentication): writes the URL to
 * send it to (its authority is the Host that was signed) and fills h, which
 * then holds credentials (the token, the signature): wipe it after use.
 * creq as for sigv4_presign.
 */
int sigv4_authorize(struct sigv4_signer *s, const struct sigv4_request *r,
                    char *url, size_t cap, size_t *len, struct sigv4_auth_headers *h,
                    char *creq, size_t creq_cap, size_t *creq_len);

#endif
