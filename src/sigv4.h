/*
 * sigv4.h - AWS Signature Version 4 query-string presigning for S3.
 *
 * A pure core: no Lua, no clock, no random numbers, no allocation, no I/O.
 * Strings are (ptr, len) views and need not be NUL-terminated. Outputs go to
 * caller buffers of explicit capacity; when one is too small the call fails
 * with SIGV4_ENOSPC and reports the size it needed. Time comes in as Unix
 * seconds, so every output is reproducible.
 *
 * The stage functions (encoding, canonical request, string to sign, key
 * derivation) are public so known-answer tests can check each artefact.
 */
#ifndef SIGV4_H
#define SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/sha.h>  /* SHA256_CTX */

enum sigv4_status {
	SIGV4_OK = 0,
	SIGV4_EINVAL,   /* an input is empty, too long, or holds forbidden bytes */
	SIGV4_ENOSPC,   /* an output buffer is too small; *len says how much is needed */
	SIGV4_ECRYPTO   /* libcrypto failed */
};

#define SIGV4_KEY_LEN 32            /* HMAC-SHA256 key and MAC size */
#define SIGV4_HEX_LEN 64            /* a SHA-256 digest in hex, without NUL */
#define SIGV4_AMZ_DATE_LEN 16       /* "20240115T120000Z" */
#define SIGV4_MAX_EXPIRES 604800    /* S3 refuses presigned URLs valid longer than 7 days */
#define SIGV4_MAX_PAIRS 16          /* signed headers or query parameters per request */

/* Field limits of a signer; inputs above them are refused with SIGV4_EINVAL. */
#define SIGV4_MAX_ACCESS_KEY_ID 128
#define SIGV4_MAX_SECRET_KEY 128
#define SIGV4_MAX_SESSION_TOKEN 4096
#define SIGV4_MAX_REGION 64
#define SIGV4_MAX_SERVICE 32
#define SIGV4_MAX_HOST 261          /* a 255-byte DNS name, ':' and a port */
#define SIGV4_MAX_BUCKET 255
#define SIGV4_MAX_KEY 1024          /* S3's limit on object key bytes */

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

/*
 * URI-encode src the S3 way: every byte outside A-Za-z0-9-._~ becomes %XX
 * with uppercase hex; '/' is kept when keep_slash is set (object key paths)
 * and encoded otherwise (query names and values). One pass, no normalising.
 */
int sigv4_uri_encode(char *dst, size_t cap, size_t *len, struct sigv4_str src, int keep_slash);

#define SIGV4_DECIMAL_LEN 20         /* digits of the largest uint64_t */

/* v in decimal, without NUL; returns the number of digits. */
size_t sigv4_decimal(char out[SIGV4_DECIMAL_LEN], uint64_t v);

/* Unix seconds to "YYYYMMDDTHHMMSSZ"; EINVAL outside years 1970..9999. */
int sigv4_amz_date(char out[SIGV4_AMZ_DATE_LEN], int64_t unix_seconds);

/* What a canonical request is built from. */
struct sigv4_canonical {
	struct sigv4_str method;
	struct sigv4_str path;              /* decoded; encoded here once, '/' kept */
	const struct sigv4_pair *query;     /* decoded; encoded and sorted here */
	size_t query_count;
	const struct sigv4_pair *headers;   /* names any case, lowercased and sorted here;
	                                       values trimmed, inner space runs collapsed */
	size_t header_count;
	struct sigv4_str payload_hash;      /* "UNSIGNED-PAYLOAD" for presigned URLs */
};

/*
 * Write the canonical request. EINVAL for an empty method or path, more than
 * SIGV4_MAX_PAIRS pairs, duplicate header names, or control bytes in a header.
 */
int sigv4_canonical_request(char *out, size_t cap, size_t *len, const struct sigv4_canonical *c);

/*
 * Write "date;region;service" joined into the credential scope
 * "YYYYMMDD/region/service/aws4_request".
 */
int sigv4_scope(char *out, size_t cap, size_t *len, const char amz_date[SIGV4_AMZ_DATE_LEN],
                struct sigv4_str region, struct sigv4_str service);

/* Write the string to sign for a canonical request. */
int sigv4_string_to_sign(char *out, size_t cap, size_t *len, const char amz_date[SIGV4_AMZ_DATE_LEN],
                         struct sigv4_str scope, struct sigv4_str canonical_request);

/* kSigning = HMAC chain over "AWS4"+secret, the date's day, region, service. */
int sigv4_derive_key(uint8_t out[SIGV4_KEY_LEN], struct sigv4_str secret_key,
                     const char amz_date[SIGV4_AMZ_DATE_LEN], struct sigv4_str region,
                     struct sigv4_str service);

/* Hex of HMAC-SHA256(key, msg): the signature of a string to sign. */
int sigv4_sign(char out[SIGV4_HEX_LEN], const uint8_t key[SIGV4_KEY_LEN], struct sigv4_str msg);

/* What a signer is built from; the signer keeps copies. */
struct sigv4_config {
	struct sigv4_str access_key_id;
	struct sigv4_str secret_key;
	struct sigv4_str session_token;     /* empty: none */
	struct sigv4_str region;
	struct sigv4_str service;           /* empty: "s3" */
	struct sigv4_str endpoint;          /* "https://host[:port]"; empty: AWS for the region */
	struct sigv4_str bucket;
	int path_style;                     /* bucket in the path instead of the host name */
};

/* Longest credential scope: "YYYYMMDD/" region "/" service "/aws4_request". */
#define SIGV4_MAX_SCOPE (9 + SIGV4_MAX_REGION + 1 + SIGV4_MAX_SERVICE + 13)

/*
 * A signer: configuration, the pieces of every URL that only change with it
 * (encoded once at init), and the state of the last day and second it signed
 * for. Owned by the caller (a Lua userdata, a stack variable); treat as
 * opaque. Not thread-safe: signing may refresh the cached state.
 */
struct sigv4_signer {
	char access_key_id[SIGV4_MAX_ACCESS_KEY_ID];
	char secret_key[SIGV4_MAX_SECRET_KEY];
	char region[SIGV4_MAX_REGION];
	char service[SIGV4_MAX_SERVICE];
	char host[SIGV4_MAX_HOST + 1 + SIGV4_MAX_BUCKET];   /* bucket. prefix when virtual-hosted */
	char origin[8 + SIGV4_MAX_HOST + 1 + SIGV4_MAX_BUCKET];  /* "scheme://" host: every URL's start */
	char bucket[SIGV4_MAX_BUCKET];
	char path_head[2 + 3 * SIGV4_MAX_BUCKET];           /* "/" or "/" encoded bucket "/" */
	/* encoded: ["&X-Amz-Security-Token=" token] "&X-Amz-SignedHeaders=" */
	char after_expires[sizeof "&X-Amz-Security-Token=" - 1 + 3 * SIGV4_MAX_SESSION_TOKEN +
	                   sizeof "&X-Amz-SignedHeaders=" - 1];
	size_t access_key_id_len, secret_key_len, region_len, service_len, host_len, bucket_len;
	size_t origin_len, path_head_len, after_expires_len;
	int path_style;

	/* per UTC day */
	char key_day[8];                    /* the YYYYMMDD all of these were made for */
	uint8_t signing_key[SIGV4_KEY_LEN];
	SHA256_CTX hmac_inner, hmac_outer;  /* signing_key absorbed: HMAC without re-keying */
	char scope[SIGV4_MAX_SCOPE];
	size_t scope_len;

	/* per second */
	int64_t second;                     /* the Unix time the fields below are for */
	char amz_date[SIGV4_AMZ_DATE_LEN];  /* all zero: nothing cached */
	/* the string to sign's head: its whole blocks absorbed into a copy of hmac_inner, the rest kept */
	SHA256_CTX sts_inner;
	unsigned char sts_tail[SHA256_CBLOCK];
	size_t sts_tail_len, sts_absorbed;  /* sts_absorbed: bytes in sts_inner, key block included */
	/* encoded: "X-Amz-Algorithm=...&X-Amz-Credential=...&X-Amz-Date=...&X-Amz-Expires=" */
	char query_head[sizeof "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" - 1 +
	                3 * (SIGV4_MAX_ACCESS_KEY_ID + 1 + SIGV4_MAX_SCOPE) +
	                sizeof "&X-Amz-Date=" - 1 + SIGV4_AMZ_DATE_LEN + sizeof "&X-Amz-Expires=" - 1];
	size_t query_head_len;

	/* the last set of signed header names: their canonical order and lists (see sigv4_presign) */
	int shape_valid;
	size_t shape_count, shape_names_len, shape_signed_len, shape_param_len;
	char shape_names[128];                      /* the caller's names, each ended by NUL */
	unsigned char shape_order[SIGV4_MAX_PAIRS + 1];   /* canonical position -> caller index; count: Host */
	char shape_signed[160];                     /* "content-length;content-type;host" */
	char shape_param[3 * 160];                  /* the same, encoded for the query */
};

/*
 * Check and copy a configuration. On EINVAL, *why (when why is not NULL) is a
 * static message that starts with the field name: "region: must be ...".
 */
int sigv4_signer_init(struct sigv4_signer *s, const struct sigv4_config *c, const char **why);

/* Wipe every secret the signer holds; it must be initialised again before use. */
void sigv4_signer_wipe(struct sigv4_signer *s);

/* "scheme://host" plus "/bucket" when path-style: where objects live. */
int sigv4_bucket_url(char *out, size_t cap, size_t *len, const struct sigv4_signer *s);

/* One presigned request for an object. */
struct sigv4_request {
	struct sigv4_str method;            /* "PUT", "GET" */
	struct sigv4_str key;               /* object key: valid UTF-8, no NUL, 1..1024 bytes */
	const struct sigv4_pair *headers;   /* signed besides host; the client must send them */
	size_t header_count;
	const struct sigv4_pair *query;     /* extra query parameters, e.g. response-content-disposition */
	size_t query_count;
	int64_t now;                        /* Unix seconds */
	uint32_t expires;                   /* seconds, 1..SIGV4_MAX_EXPIRES */
};

/*
 * Write the presigned URL. The canonical request is built in creq (capacity
 * creq_cap) and left there for diagnostics; *creq_len receives its length
 * when creq_len is not NULL.
 */
int sigv4_presign(char *url, size_t cap, size_t *len, struct sigv4_signer *s,
                  const struct sigv4_request *r, char *creq, size_t creq_cap, size_t *creq_len);

/*
 * The encoded object key inside a URL that sigv4_presign wrote with s: what
 * a public URL appends to its base, without encoding the key again.
 */
struct sigv4_str sigv4_url_key(const struct sigv4_signer *s, const char *url, size_t len);

#endif
