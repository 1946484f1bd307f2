/*
 * sigv4.c - AWS Signature Version 4 query-string presigning for S3.
 *
 * Stages, in the order a presigned URL needs them:
 *   uri_encode -> canonical_request -> string_to_sign -> HMAC with the day's
 *   signing key -> URL assembled from pieces of the canonical request.
 * S3 differs from the generic SigV4 services in two ways that matter here:
 * the path is encoded once (not twice) and is never normalised.
 *
 * Speed: a presigned URL costs about eleven SHA-256 blocks; everything else
 * should cost less than that. So bytes are written in runs, with one bounds
 * check per run, and whatever only changes with the configuration, the day
 * or the second is encoded or hashed once and kept in the signer.
 */
#define OPENSSL_SUPPRESS_DEPRECATED  /* SHA256_* : the EVP layer costs ~10% per URL */
#include "sigv4.h"

#include <string.h>            /* memcpy(3) memcmp(3) memchr(3) */

#include <openssl/sha.h>       /* SHA256_Init(3) and friends */

#define ALGORITHM "AWS4-HMAC-SHA256"
#define UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SHA256_BLOCK 64
#define AUTH_PREFIX "X-Amz-"      /* the parameters the signer adds all start so */

static const char hex_upper[] = "0123456789ABCDEF";

/* A 256-entry table initialiser: F(c) for every byte c, computed by the compiler. */
#define ROW16(F, r) \
	F(16 * r + 0), F(16 * r + 1), F(16 * r + 2), F(16 * r + 3), \
	F(16 * r + 4), F(16 * r + 5), F(16 * r + 6), F(16 * r + 7), \
	F(16 * r + 8), F(16 * r + 9), F(16 * r + 10), F(16 * r + 11), \
	F(16 * r + 12), F(16 * r + 13), F(16 * r + 14), F(16 * r + 15)
#define TABLE256(F) \
	ROW16(F, 0), ROW16(F, 1), ROW16(F, 2), ROW16(F, 3), ROW16(F, 4), ROW16(F, 5), \
	ROW16(F, 6), ROW16(F, 7), ROW16(F, 8), ROW16(F, 9), ROW16(F, 10), ROW16(F, 11), \
	ROW16(F, 12), ROW16(F, 13), ROW16(F, 14), ROW16(F, 15)

/* Lowercase hex of every byte: digests become text two characters per load. */
#define HEX_DIGIT(d) ((d) < 10 ? '0' + (d) : 'a' + (d) - 10)
#define HEX_PAIR(b) { HEX_DIGIT((b) >> 4), HEX_DIGIT((b) & 15) }
static const char hex_pairs[256][2] = { TABLE256(HEX_PAIR) };

const char *sigv4_strerror(int status)
{
	switch (status) {
	case SIGV4_OK: return "success";
	case SIGV4_EINVAL: return "invalid input";
	case SIGV4_ENOSPC: return "buffer too small";
	case SIGV4_ECRYPTO: return "libcrypto failure";
	default: return "unknown status";
	}
}

/*
** Calling memset through a volatile pointer keeps the compiler from dropping
** it as a dead store, and keeps libc's vectorised memset: on x86-64
** OPENSSL_cleanse stores a word at a time, which showed in profiles.
*/
static void *(*const volatile wipe_memset)(void *, int, size_t) = memset;

void sigv4_wipe(void *ptr, size_t len)
{
	wipe_memset(ptr, 0, len);
}

static struct sigv4_str str(const char *p, size_t n)
{
	struct sigv4_str s = { p, n };
	return s;
}

#define LIT(s) str((s), sizeof(s) - 1)

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
static char *room(const struct out *o, size_t n)
{
	return o->len <= o->cap && n <= o->cap - o->len ? o->p + o->len : NULL;
}

static void put(struct out *o, const char *p, size_t n)
{
	char *d = room(o, n);
	if (d)
		memcpy(d, p, n);
	o->len += n;
}

static void put_str(struct out *o, struct sigv4_str s)
{
	put(o, s.ptr, s.len);
}

static void put_char(struct out *o, char c)
{
	char *d = room(o, 1);
	if (d)
		*d = c;
	o->len++;
}

static int finish(const struct out *o, size_t *len)
{
	if (len)
		*len = o->len;
	return o->len <= o->cap ? SIGV4_OK : SIGV4_ENOSPC;
}

/* ---- byte classes and URI encoding ------------------------------------ */

/*
** What each byte may be, as bits of byte_class[c]: kept as itself in a query
** (RFC 3986 unreserved A-Za-z0-9-._~, the only bytes SigV4 leaves
** unescaped), kept in an object key path ('/'), allowed in a header field
** name (RFC 9110 tchar: unreserved plus !#$%&'*+^`|). The compiler computes
** the table from these definitions.
*/
enum { KEEP_QUERY = 1, KEEP_SLASH = 2, TCHAR = 4 };
#define KEEP_PATH (KEEP_QUERY | KEEP_SLASH)

#define IS_ALNUM(c) (((c) >= '0' && (c) <= '9') || ((c) >= 'A' && (c) <= 'Z') || ((c) >= 'a' && (c) <= 'z'))
#define IS_UNRESERVED(c) (IS_ALNUM(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~')
#define IS_TCHAR_MARK(c) ((c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' || \
                          (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '^' || (c) == '`' || (c) == '|')
#define CLASS(c) (IS_UNRESERVED(c) ? KEEP_QUERY | TCHAR : \
                  (c) == '/' ? KEEP_SLASH : IS_TCHAR_MARK(c) ? TCHAR : 0)
static const unsigned char byte_class[256] = { TABLE256(CLASS) };

static int is(unsigned char c, unsigned classes)
{
	return (byte_class[c] & classes) != 0;
}

static size_t encoded_len(struct sigv4_str s, unsigned keep)
{
	size_t n = s.len;
	for (size_t i = 0; i < s.len; i++)
		n += is((unsigned char)s.ptr[i], keep) ? 0 : 2;
	return n;
}

/* Runs of kept bytes are copied whole: keys and names are mostly such runs. */
static char *encode_to(char *d, struct sigv4_str s, unsigned keep)
{
	size_t i = 0;
	while (i < s.len) {
		size_t run = i;
		while (run < s.len && is((unsigned char)s.ptr[run], keep))
			run++;
		memcpy(d, s.ptr + i, run - i);
		d += run - i;
		if (run == s.len)
			break;
		unsigned char c = (unsigned char)s.ptr[run];
		d[0] = '%', d[1] = hex_upper[c >> 4], d[2] = hex_upper[c & 15];
		d += 3;
		i = run + 1;
	}
	return d;
}

/* Encoding at most triples the length: when that fits, one pass suffices. */
static void put_encoded(struct out *o, struct sigv4_str s, unsigned keep)
{
	char *d = room(o, 3 * s.len);
	if (d) {
		o->len = (size_t)(encode_to(d, s, keep) - o->p);
		return;
	}
	size_t n = encoded_len(s, keep);
	if ((d = room(o, n)))
		encode_to(d, s, keep);
	o->len += n;
}

int sigv4_uri_encode(char *dst, size_t cap, size_t *len, struct sigv4_str src, int keep_slash)
{
	struct out o = { dst, cap, 0 };
	put_encoded(&o, src, keep_slash ? KEEP_PATH : KEEP_QUERY);
	return finish(&o, len);
}

/*
** Compare the URI encodings of a and b without building them. An unreserved
** byte encodes as itself and any other as "%XY"; '%' sorts below every
** unreserved byte and uppercase hex sorts like the byte value, so comparing
** raw bytes decides, except that an unreserved byte beats an escaped one.
*/
static int encoded_compare(struct sigv4_str a, struct sigv4_str b)
{
	size_t n = a.len < b.len ? a.len : b.len;
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a.ptr[i], y = (unsigned char)b.ptr[i];
		if (x == y)
			continue;
		int ux = is(x, KEEP_QUERY), uy = is(y, KEEP_QUERY);
		if (ux != uy)
			return ux ? 1 : -1;
		return x < y ? -1 : 1;
	}
	return a.len < b.len ? -1 : a.len > b.len;
}

static unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/*
** lower() on 8 bytes at once, for header names. Per byte, with the high bit
** cleared first so that no sum carries into the next byte: +0x3f sets the
** high bit from 'A' up, +0x25 from past 'Z' up; where only the first did
** (and the byte is ASCII), add 0x20.
*/
static uint64_t lower8(uint64_t w)
{
	const uint64_t ones = UINT64_C(0x0101010101010101), highs = ones << 7;
	uint64_t low7 = w & ~highs;
	uint64_t from_a = low7 + ones * (0x80 - 'A'), past_z = low7 + ones * (0x7f - 'Z');
	return w | ((from_a & ~past_z & ~w & highs) >> 2);
}

static uint64_t load8(const char *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
	return w;
}

static int lowercase_compare(struct sigv4_str a, struct sigv4_str b)
{
	size_t n = a.len < b.len ? a.len : b.len, i = 0;
	while (i + 8 <= n && lower8(load8(a.ptr + i)) == lower8(load8(b.ptr + i)))
		i += 8;
	for (; i < n; i++) {
		unsigned char x = lower((unsigned char)a.ptr[i]), y = lower((unsigned char)b.ptr[i]);
		if (x != y)
			return x < y ? -1 : 1;
	}
	return a.len < b.len ? -1 : a.len > b.len;
}

static int query_compare(const struct sigv4_pair *a, const struct sigv4_pair *b)
{
	int c = encoded_compare(a->name, b->name);
	return c ? c : encoded_compare(a->value, b->value);
}

static int header_compare(const struct sigv4_pair *a, const struct sigv4_pair *b)
{
	return lowercase_compare(a->name, b->name);
}

/*
** Insertion sort of pointers: the lists are short and usually sorted already.
** Returns whether two elements compared equal. Inserting x into a prefix
** without equal elements compares x with its equal if it has one, so for a
** caller that stops at the first tie this is a complete duplicate check.
*/
static int sort_pairs(const struct sigv4_pair **v, size_t n,
                      int (*cmp)(const struct sigv4_pair *, const struct sigv4_pair *))
{
	int tie = 0;
	for (size_t i = 1; i < n; i++) {
		const struct sigv4_pair *x = v[i];
		size_t j = i;
		for (; j > 0; j--) {
			int c = cmp(v[j - 1], x);
			if (c <= 0) {
				tie |= c == 0;
				break;
			}
			v[j] = v[j - 1];
		}
		v[j] = x;
	}
	return tie;
}

/* ---- canonical request ------------------------------------------------ */

static int valid_header_name(struct sigv4_str name)
{
	if (name.len == 0)
		return 0;
	for (size_t i = 0; i < name.len; i++)
		if (!is((unsigned char)name.ptr[i], TCHAR))
			return 0;
	return 1;
}

/* Control bytes (C0, DEL): never in a header value, a secret or a bucket name. */
static int has_control(struct sigv4_str s)
{
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.ptr[i];
		if (c < 0x20 || c == 0x7f)
			return 1;
	}
	return 0;
}

static int valid_header(const struct sigv4_pair *h)
{
	return valid_header_name(h->name) && !has_control(h->value);
}

/* Sort checked headers by name in place; EINVAL on a repeated name. */
static int sort_headers(const struct sigv4_pair **v, size_t n)
{
	return sort_pairs(v, n, header_compare) ? SIGV4_EINVAL : SIGV4_OK;
}

static void put_lowercase(struct out *o, struct sigv4_str s)
{
	char *d = room(o, s.len);
	if (d && s.len >= 8) {
		for (size_t i = 0; i < s.len; i += 8) {
			size_t at = i + 8 <= s.len ? i : s.len - 8;   /* the last word may overlap */
			uint64_t w = lower8(load8(s.ptr + at));
			memcpy(d + at, &w, 8);
		}
	} else if (d) {
		for (size_t i = 0; i < s.len; i++)
			d[i] = (char)lower((unsigned char)s.ptr[i]);
	}
	o->len += s.len;
}

/*
** SigV4 "Trimall": no leading or trailing spaces, inner runs become one.
** Writes to d unless it is NULL; returns the length either way.
*/
static size_t trimall(char *d, struct sigv4_str s)
{
	size_t i = 0, end = s.len, n = 0;
	while (i < end && s.ptr[i] == ' ')
		i++;
	while (end > i && s.ptr[end - 1] == ' ')
		end--;
	for (; i < end; i++) {
		if (s.ptr[i] == ' ' && s.ptr[i - 1] == ' ')
			continue;
		if (d)
			d[n] = s.ptr[i];
		n++;
	}
	return n;
}

static void put_trimmed(struct out *o, struct sigv4_str s)
{
	if (!memchr(s.ptr, ' ', s.len))
		put_str(o, s);   /* the common case: nothing to trim */
	else
		o->len += trimall(room(o, s.len), s);
}

static void put_signed_headers(struct out *o, const struct sigv4_pair *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			put_char(o, ';');
		put_lowercase(o, v[i]->name);
	}
}

/*
** Everything a canonical request is made of, checked and in canonical order.
** The one builder below serves both sigv4_canonical_request (all parts
** decoded) and sigv4_presign, which hands over what it keeps encoded:
** the path's head ("/bucket/") and the run of X-Amz-* query parameters.
*/
struct canon {
	struct sigv4_str method;
	struct sigv4_str path_head;                 /* already encoded */
	struct sigv4_str path;                      /* decoded; encoded here with '/' kept */
	const struct sigv4_pair *const *query;      /* decoded, sorted */
	size_t query_count;
	const struct sigv4_str *encoded;            /* pieces of already encoded parameters, */
	size_t encoded_count;                       /* concatenated and placed before query[encoded_at] */
	size_t encoded_at;
	const struct sigv4_pair *const *headers;    /* checked, sorted */
	size_t header_count;
	struct sigv4_str signed_headers;            /* the names as put_signed_headers writes them,
	                                               if at hand (the header lines copy their
	                                               names from it); { NULL, 0 }: written here */
	struct sigv4_str payload_hash;
};

/* Encoded "name=value" parameters, '&' before all but the query's first. */
static void put_params(struct out *o, const struct sigv4_pair *const *v, size_t n, int *first)
{
	for (size_t i = 0; i < n; i++) {
		if (!*first)
			put_char(o, '&');
		*first = 0;
		put_encoded(o, v[i]->name, KEEP_QUERY);
		put_char(o, '=');
		put_encoded(o, v[i]->value, KEEP_QUERY);
	}
}

static void put_query(struct out *o, const struct canon *c)
{
	int first = 1;
	put_params(o, c->query, c->encoded_at, &first);
	if (c->encoded_count) {
		if (!first)
			put_char(o, '&');
		first = 0;
		for (size_t k = 0; k < c->encoded_count; k++)
			put_str(o, c->encoded[k]);
	}
	put_params(o, c->query + c->encoded_at, c->query_count - c->encoded_at, &first);
}

/* Where lines of a canonical request start: what a URL copies from it. */
struct canon_marks {
	size_t path, query, headers;
};

static void put_canonical_request(struct out *o, const struct canon *c, struct canon_marks *m)
{
	put_str(o, c->method);
	put_char(o, '\n');
	m->path = o->len;
	put_str(o, c->path_head);
	put_encoded(o, c->path, KEEP_PATH);
	put_char(o, '\n');
	m->query = o->len;
	put_query(o, c);
	put_char(o, '\n');
	m->headers = o->len;
	for (size_t i = 0, at = 0; i < c->header_count; i++) {
		size_t n = c->headers[i]->name.len;
		if (c->signed_headers.ptr)   /* the name lowercased already: n bytes at 'at' */
			put(o, c->signed_headers.ptr + at, n);
		else
			put_lowercase(o, c->headers[i]->name);
		at += n + 1;
		put_char(o, ':');
		put_trimmed(o, c->headers[i]->value);
		put_char(o, '\n');
	}
	put_char(o, '\n');
	if (c->signed_headers.ptr)
		put_str(o, c->signed_headers);
	else
		put_signed_headers(o, c->headers, c->header_count);
	put_char(o, '\n');
	put_str(o, c->payload_hash);
}

int sigv4_canonical_request(char *out, size_t cap, size_t *len, const struct sigv4_canonical *c)
{
	const struct sigv4_pair *headers[SIGV4_MAX_PAIRS + 1], *query[SIGV4_MAX_PAIRS];
	struct out o = { out, cap, 0 };

	if (c->method.len == 0 || c->path.len == 0 || c->query_count > SIGV4_MAX_PAIRS ||
	    c->header_count > SIGV4_MAX_PAIRS + 1)
		return SIGV4_EINVAL;
	for (size_t i = 0; i < c->header_count; i++) {
		if (!valid_header(&c->headers[i]))
			return SIGV4_EINVAL;
		headers[i] = &c->headers[i];
	}
	if (sort_headers(headers, c->header_count) != SIGV4_OK)
		return SIGV4_EINVAL;
	for (size_t i = 0; i < c->query_count; i++)
		query[i] = &c->query[i];
	sort_pairs(query, c->query_count, query_compare);

	struct canon canon = {
		c->method, LIT(""), c->path, query, c->query_count, NULL, 0, 0,
		headers, c->header_count, str(NULL, 0), c->payload_hash
	};
	struct canon_marks marks;
	put_canonical_request(&o, &canon, &marks);
	return finish(&o, len);
}

/*
** Days since 1970-01-01 to a civil date (proleptic Gregorian), after
** H. Hinnant's "chrono-compatible low-level date algorithms".
*/
static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400) + (*m <= 2);
}

static void put_digits(char *p, unsigned v, int width)
{
	while (width--) {
		p[width] = (char)('0' + v % 10);
		v /= 10;
	}
}

int sigv4_amz_date(char out[SIGV4_AMZ_DATE_LEN], int64_t t)
{
	if (t < 0 || t > INT64_C(253402300799))   /* 9999-12-31T23:59:59Z */
		return SIGV4_EINVAL;
	int y;
	unsigned m, d, secs = (unsigned)(t % 86400);
	civil_from_days(t / 86400, &y, &m, &d);
	put_digits(out, (unsigned)y, 4);
	put_digits(out + 4, m, 2);
	put_digits(out + 6, d, 2);
	out[8] = 'T';
	put_digits(out + 9, secs / 3600, 2);
	put_digits(out + 11, secs / 60 % 60, 2);
	put_digits(out + 13, secs % 60, 2);
	out[15] = 'Z';
	return SIGV4_OK;
}

int sigv4_scope(char *out, size_t cap, size_t *len, const char amz_date[SIGV4_AMZ_DATE_LEN],
                struct sigv4_str region, struct sigv4_str service)
{
	struct out o = { out, cap, 0 };
	put(&o, amz_date, 8);
	put_char(&o, '/');
	put_str(&o, region);
	put_char(&o, '/');
	put_str(&o, service);
	put_str(&o, LIT("/aws4_request"));
	return finish(&o, len);
}

/*
** The end of a SHA-256: c has absorbed `absorbed` bytes, a whole number of
** blocks; the message's last n bytes are at the start of buf, which has room
** for them, the padding and the length (n + 9 bytes, rounded up to blocks).
** Pads in place and compresses block by block: what SHA256_Update and
** SHA256_Final do, without their buffering and clean-up, which cost half a
** block on each of a URL's three short tails.
*/
static void sha256_last(uint8_t md[SIGV4_KEY_LEN], SHA256_CTX *c, uint64_t absorbed,
                        unsigned char *buf, size_t n)
{
	size_t end = (n + 9 + SHA256_BLOCK - 1) / SHA256_BLOCK * SHA256_BLOCK;
	uint64_t bits = (absorbed + n) * 8;

	buf[n] = 0x80;
	memset(buf + n + 1, 0, end - 8 - (n + 1));
	for (int i = 0; i < 8; i++)
		buf[end - 1 - i] = (unsigned char)(bits >> (8 * i));
	for (size_t at = 0; at < end; at += SHA256_BLOCK)
		SHA256_Transform(c, buf + at);
	for (int i = 0; i < 8; i++) {
		md[4 * i] = (uint8_t)(c->h[i] >> 24);
		md[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
		md[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
		md[4 * i + 3] = (uint8_t)c->h[i];
	}
}

static int sha256(uint8_t md[SIGV4_KEY_LEN], struct sigv4_str msg)
{
	SHA256_CTX ctx;
	unsigned char tail[2 * SHA256_BLOCK];
	size_t whole = msg.len / SHA256_BLOCK * SHA256_BLOCK;
	int ok = SHA256_Init(&ctx) && SHA256_Update(&ctx, msg.ptr, whole);

	memcpy(tail, msg.ptr + whole, msg.len - whole);
	sha256_last(md, &ctx, whole, tail, msg.len - whole);
	sigv4_wipe(&ctx, sizeof ctx);   /* msg may be an HMAC key */
	sigv4_wipe(tail, sizeof tail);
	return ok ? SIGV4_OK : SIGV4_ECRYPTO;
}

static void hex(char *out, const uint8_t *bytes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		memcpy(out + 2 * i, hex_pairs[bytes[i]], 2);
}

/* "AWS4-HMAC-SHA256\n" date "\n" scope "\n": all of a string to sign but the hash. */
static void put_sts_head(struct out *o, const char amz_date[SIGV4_AMZ_DATE_LEN], struct sigv4_str scope)
{
	put_str(o, LIT(ALGORITHM "\n"));
	put(o, amz_date, SIGV4_AMZ_DATE_LEN);
	put_char(o, '\n');
	put_str(o, scope);
	put_char(o, '\n');
}

int sigv4_string_to_sign(char *out, size_t cap, size_t *len, const char amz_date[SIGV4_AMZ_DATE_LEN],
                         struct sigv4_str scope, struct sigv4_str canonical_request)
{
	uint8_t md[SIGV4_KEY_LEN];
	char md_hex[SIGV4_HEX_LEN];
	struct out o = { out, cap, 0 };

	if (sha256(md, canonical_request) != SIGV4_OK)
		return SIGV4_ECRYPTO;
	hex(md_hex, md, sizeof md);
	put_sts_head(&o, amz_date, scope);
	put(&o, md_hex, sizeof md_hex);
	return finish(&o, len);
}

/*
** HMAC-SHA256 (RFC 2104) in parts: hmac_key absorbs the padded key into an
** inner and an outer hash state once; a message is then hashed on a copy of
** the inner state, and hmac_end finishes both (and wipes the copy).
*/
static int hmac_key(SHA256_CTX *inner, SHA256_CTX *outer, const uint8_t *key, size_t key_len)
{
	uint8_t block[SHA256_BLOCK] = { 0 }, pad[SHA256_BLOCK];
	int ok = 1;

	if (key_len > SHA256_BLOCK)
		ok = sha256(block, str((const char *)key, key_len)) == SIGV4_OK;
	else
		memcpy(block, key, key_len);
	for (size_t i = 0; i < SHA256_BLOCK; i++)
		pad[i] = block[i] ^ 0x36;
	ok = ok && SHA256_Init(inner) && SHA256_Update(inner, pad, sizeof pad);
	for (size_t i = 0; i < SHA256_BLOCK; i++)
		pad[i] = block[i] ^ 0x5c;
	ok = ok && SHA256_Init(outer) && SHA256_Update(outer, pad, sizeof pad);
	sigv4_wipe(block, sizeof block);
	sigv4_wipe(pad, sizeof pad);
	return ok ? SIGV4_OK : SIGV4_ECRYPTO;
}

/*
** The outer hash, from the inner one's digest. Nothing here needs wiping:
** the copy of the outer state ends up holding only the MAC, which is public.
*/
static void hmac_outer(uint8_t mac[SIGV4_KEY_LEN], const SHA256_CTX *outer, const uint8_t md[SIGV4_KEY_LEN])
{
	SHA256_CTX c = *outer;
	unsigned char buf[SHA256_BLOCK];
	memcpy(buf, md, SIGV4_KEY_LEN);
	sha256_last(mac, &c, SHA256_BLOCK, buf, SIGV4_KEY_LEN);
}

/* inner: a copy of the inner state that has absorbed the whole message. */
static int hmac_end(uint8_t mac[SIGV4_KEY_LEN], SHA256_CTX *inner, const SHA256_CTX *outer)
{
	uint8_t md[SIGV4_KEY_LEN];
	int ok = SHA256_Final(md, inner);
	hmac_outer(mac, outer, md);
	sigv4_wipe(inner, sizeof *inner);
	sigv4_wipe(md, sizeof md);
	return ok ? SIGV4_OK : SIGV4_ECRYPTO;
}

static int hmac_finish(uint8_t mac[SIGV4_KEY_LEN], const SHA256_CTX *inner, const SHA256_CTX *outer,
                       struct sigv4_str msg)
{
	SHA256_CTX ctx = *inner;
	if (!SHA256_Update(&ctx, msg.ptr, msg.len)) {
		sigv4_wipe(&ctx, sizeof ctx);
		return SIGV4_ECRYPTO;
	}
	return hmac_end(mac, &ctx, outer);
}

static int hmac(uint8_t mac[SIGV4_KEY_LEN], const uint8_t *key, size_t key_len, struct sigv4_str msg)
{
	SHA256_CTX inner, outer;
	int status = hmac_key(&inner, &outer, key, key_len);
	if (status == SIGV4_OK)
		status = hmac_finish(mac, &inner, &outer, msg);
	sigv4_wipe(&inner, sizeof inner);
	sigv4_wipe(&outer, sizeof outer);
	return status;
}

int sigv4_derive_key(uint8_t out[SIGV4_KEY_LEN], struct sigv4_str secret_key,
                     const char amz_date[SIGV4_AMZ_DATE_LEN], struct sigv4_str region,
                     struct sigv4_str service)
{
	uint8_t k_secret[4 + SIGV4_MAX_SECRET_KEY], k[SIGV4_KEY_LEN];
	int status = SIGV4_EINVAL;

	if (secret_key.len == 0 || secret_key.len > SIGV4_MAX_SECRET_KEY)
		return SIGV4_EINVAL;
	memcpy(k_secret, "AWS4", 4);
	memcpy(k_secret + 4, secret_key.ptr, secret_key.len);
	if ((status = hmac(k, k_secret, 4 + secret_key.len, str(amz_date, 8))) == SIGV4_OK &&
	    (status = hmac(k, k, sizeof k, region)) == SIGV4_OK &&
	    (status = hmac(k, k, sizeof k, service)) == SIGV4_OK)
		status = hmac(out, k, sizeof k, LIT("aws4_request"));
	sigv4_wipe(k_secret, sizeof k_secret);
	sigv4_wipe(k, sizeof k);
	return status;
}

int sigv4_sign(char out[SIGV4_HEX_LEN], const uint8_t key[SIGV4_KEY_LEN], struct sigv4_str msg)
{
	uint8_t mac[SIGV4_KEY_LEN];
	int status = hmac(mac, key, SIGV4_KEY_LEN, msg);
	if (status == SIGV4_OK)
		hex(out, mac, sizeof mac);
	return status;
}

/* ---- input checks ---------------------------------------------------- */

/*
** Eight bytes all in 0x01..0x7f: no high bit in any byte of w, nor in w
** minus one per byte, where a 0x00 byte (the lowest, free of borrows) wraps.
*/
static int ascii8_without_nul(const unsigned char *p)
{
	const uint64_t ones = UINT64_C(0x0101010101010101), highs = ones << 7;
	uint64_t w;
	memcpy(&w, p, 8);
	return ((w | (w - ones)) & highs) == 0;
}

/* Strict UTF-8 without NUL: no overlong forms, surrogates or code points past U+10FFFF. */
static int valid_utf8(struct sigv4_str s)
{
	const unsigned char *p = (const unsigned char *)s.ptr, *end = p + s.len;
	while (p < end) {
		if (end - p >= 8 && ascii8_without_nul(p)) {   /* the common case, 8 bytes at a time */
			p += 8;
			continue;
		}
		unsigned c = *p++;
		size_t more;
		unsigned min;
		if (c == 0)
			return 0;
		if (c < 0x80)
			continue;
		else if (c >= 0xc2 && c <= 0xdf)
			more = 1, min = 0x80, c &= 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			more = 2, min = 0x800, c &= 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			more = 3, min = 0x10000, c &= 0x07;
		else
			return 0;
		if ((size_t)(end - p) < more)
			return 0;
		for (; more; more--, p++) {
			if ((*p & 0xc0) != 0x80)
				return 0;
			c = (c << 6) | (*p & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return 0;
	}
	return 1;
}

/* 1..max bytes of printable ASCII without space, and without '/' if no_slash. */
static int is_printable(struct sigv4_str s, size_t max, int no_slash)
{
	if (s.len == 0 || s.len > max)
		return 0;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.ptr[i];
		if (c <= 0x20 || c >= 0x7f || (no_slash && c == '/'))
			return 0;
	}
	return 1;
}

/* Fields of the credential scope, which '/' separates. */
static int is_scope_safe(struct sigv4_str s, size_t max)
{
	return is_printable(s, max, 1);
}

static int is_host_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

/*
** "host", "host:port", "[v6]" or "[v6]:port": fills s->host, dropping the
** port that is the scheme's default, because clients leave it out of Host.
*/
static int parse_authority(struct sigv4_signer *s, struct sigv4_str a, const char *default_port)
{
	size_t i = 0;
	if (a.len && a.ptr[0] == '[') {
		const char *close = memchr(a.ptr, ']', a.len);
		if (!close || close == a.ptr + 1)
			return 0;
		for (const char *p = a.ptr + 1; p < close; p++)
			if (!(*p == ':' || *p == '.' || (*p >= '0' && *p <= '9') ||
			      ((*p | 32) >= 'a' && (*p | 32) <= 'f')))
				return 0;
		i = (size_t)(close - a.ptr) + 1;
	} else {
		while (i < a.len && is_host_char((unsigned char)a.ptr[i]))
			i++;
		if (i == 0)
			return 0;
	}
	size_t host_end = i;
	if (i < a.len) {
		if (a.ptr[i] != ':' || a.len - i < 2 || a.len - i > 6)
			return 0;
		unsigned port = 0;
		for (size_t j = i + 1; j < a.len; j++) {
			if (a.ptr[j] < '0' || a.ptr[j] > '9')
				return 0;
			port = port * 10 + (unsigned)(a.ptr[j] - '0');
		}
		if (port == 0 || port > 65535)
			return 0;
		if (!(a.len - i - 1 == strlen(default_port) &&
		      memcmp(a.ptr + i + 1, default_port, a.len - i - 1) == 0))
			host_end = a.len;
	}
	if (host_end > SIGV4_MAX_HOST)
		return 0;
	memcpy(s->host, a.ptr, host_end);
	s->host_len = host_end;
	return 1;
}

static int has_prefix(struct sigv4_str s, const char *prefix)
{
	size_t n = strlen(prefix);
	return s.len >= n && memcmp(s.ptr, prefix, n) == 0;
}

/* The start of the origin; the host follows once it is known. */
static void set_scheme(struct sigv4_signer *s, const char *scheme)
{
	s->origin_len = strlen(scheme);
	memcpy(s->origin, scheme, s->origin_len);
}

static int parse_endpoint(struct sigv4_signer *s, struct sigv4_str e)
{
	const char *default_port;
	if (e.len == 0) {
		struct out o = { s->host, SIGV4_MAX_HOST, 0 };
		put_str(&o, LIT("s3."));
		put(&o, s->region, s->region_len);
		put_str(&o, LIT(".amazonaws.com"));
		set_scheme(s, "https://");
		return finish(&o, &s->host_len) == SIGV4_OK;
	}
	if (has_prefix(e, "https://")) {
		set_scheme(s, "https://");
		default_port = "443";
		e.ptr += 8, e.len -= 8;
	} else if (has_prefix(e, "http://")) {
		set_scheme(s, "http://");
		default_port = "80";
		e.ptr += 7, e.len -= 7;
	} else {
		return 0;
	}
	if (e.len && e.ptr[e.len - 1] == '/')
		e.len--;   /* "https://host/" is common; any other path is not supported */
	return parse_authority(s, e, default_port);
}

/* Bucket names in a host must be DNS labels; S3's own rules are the caller's policy. */
static int is_dns_safe(struct sigv4_str b)
{
	for (size_t i = 0; i < b.len; i++) {
		unsigned char c = (unsigned char)b.ptr[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return 0;
	}
	return b.len > 0 && b.len <= 63;
}

static int copy_field(char *dst, size_t *dst_len, size_t max, struct sigv4_str src)
{
	if (src.len > max)
		return 0;
	memcpy(dst, src.ptr, src.len);
	*dst_len = src.len;
	return 1;
}

#define REFUSE(field) do { if (why) *why = (field); sigv4_signer_wipe(s); return SIGV4_EINVAL; } while (0)

int sigv4_signer_init(struct sigv4_signer *s, const struct sigv4_config *c, const char **why)
{
	struct sigv4_str service = c->service.len ? c->service : LIT("s3");

	memset(s, 0, sizeof *s);
	if (!is_scope_safe(c->access_key_id, SIGV4_MAX_ACCESS_KEY_ID) ||
	    !copy_field(s->access_key_id, &s->access_key_id_len, SIGV4_MAX_ACCESS_KEY_ID, c->access_key_id))
		REFUSE("access_key_id: must be 1..128 printable ASCII characters, no space or '/'");
	if (c->secret_key.len == 0 || has_control(c->secret_key) ||
	    !copy_field(s->secret_key, &s->secret_key_len, SIGV4_MAX_SECRET_KEY, c->secret_key))
		REFUSE("secret_key: must be 1..128 bytes without control characters");
	if (c->session_token.len && !is_printable(c->session_token, SIGV4_MAX_SESSION_TOKEN, 0))
		REFUSE("session_token: must be at most 4096 printable ASCII characters, no space");
	if (!is_scope_safe(c->region, SIGV4_MAX_REGION) ||
	    !copy_field(s->region, &s->region_len, SIGV4_MAX_REGION, c->region))
		REFUSE("region: must be 1..64 printable ASCII characters, no space or '/'");
	if (!is_scope_safe(service, SIGV4_MAX_SERVICE) ||
	    !copy_field(s->service, &s->service_len, SIGV4_MAX_SERVICE, service))
		REFUSE("service: must be 1..32 printable ASCII characters, no space or '/'");
	if (c->bucket.len == 0 || memchr(c->bucket.ptr, '/', c->bucket.len) || has_control(c->bucket) ||
	    !valid_utf8(c->bucket) || !copy_field(s->bucket, &s->bucket_len, SIGV4_MAX_BUCKET, c->bucket))
		REFUSE("bucket: must be 1..255 bytes of UTF-8 without '/' or control characters");
	/* without an endpoint the region becomes part of the host name: nothing else may slip in */
	for (size_t i = 0; c->endpoint.len == 0 && i < c->region.len; i++)
		if (!is_host_char((unsigned char)c->region.ptr[i]))
			REFUSE("region: must be letters, digits and '-' when no endpoint is set");
	if (!parse_endpoint(s, c->endpoint))
		REFUSE("endpoint: must be http(s)://host[:port] with no path, query or user name");
	s->path_style = c->path_style != 0;
	if (!s->path_style) {
		if (!is_dns_safe(c->bucket) || s->host[0] == '[')
			REFUSE("bucket: not usable in a host name (lowercase letters, digits, '-', '.'): use path style");
		memmove(s->host + c->bucket.len + 1, s->host, s->host_len);
		memcpy(s->host, c->bucket.ptr, c->bucket.len);
		s->host[c->bucket.len] = '.';
		s->host_len += c->bucket.len + 1;
	}
	memcpy(s->origin + s->origin_len, s->host, s->host_len);
	s->origin_len += s->host_len;

	/* encoded once here, copied into every URL; the buffers fit the limits checked above */
	struct out head = { s->path_head, sizeof s->path_head, 0 };
	put_char(&head, '/');
	if (s->path_style) {
		put_encoded(&head, c->bucket, KEEP_QUERY);
		put_char(&head, '/');
	}
	s->path_head_len = head.len;
	struct out tail = { s->after_expires, sizeof s->after_expires, 0 };
	if (c->session_token.len) {
		put_str(&tail, LIT("&X-Amz-Security-Token="));
		put_encoded(&tail, c->session_token, KEEP_QUERY);
	}
	put_str(&tail, LIT("&X-Amz-SignedHeaders="));
	s->after_expires_len = tail.len;
	return SIGV4_OK;
}

#undef REFUSE

void sigv4_signer_wipe(struct sigv4_signer *s)
{
	sigv4_wipe(s, sizeof *s);
}

int sigv4_bucket_url(char *out, size_t cap, size_t *len, const struct sigv4_signer *s)
{
	struct out o = { out, cap, 0 };
	put(&o, s->origin, s->origin_len);
	if (s->path_style)
		put(&o, s->path_head, s->path_head_len - 1);   /* "/bucket" without the final '/' */
	return finish(&o, len);
}

/* When the UTC day changes: the signing key, its HMAC states and the scope. */
static int refresh_day(struct sigv4_signer *s, const char amz_date[SIGV4_AMZ_DATE_LEN])
{
	if (s->key_day[0] && memcmp(s->key_day, amz_date, 8) == 0)
		return SIGV4_OK;
	memset(s->key_day, 0, sizeof s->key_day);
	int status = sigv4_derive_key(s->signing_key, str(s->secret_key, s->secret_key_len), amz_date,
	                              str(s->region, s->region_len), str(s->service, s->service_len));
	if (status == SIGV4_OK)
		status = hmac_key(&s->hmac_inner, &s->hmac_outer, s->signing_key, SIGV4_KEY_LEN);
	if (status == SIGV4_OK)
		status = sigv4_scope(s->scope, sizeof s->scope, &s->scope_len, amz_date,
		                     str(s->region, s->region_len), str(s->service, s->service_len));
	if (status == SIGV4_OK)
		memcpy(s->key_day, amz_date, 8);
	return status;
}

/*
** When the second changes: X-Amz-Date, the day's state if the day changed
** too, the encoded query parameters up to X-Amz-Expires' value, and the HMAC
** inner state after the string to sign's head. All depend only on the time
** and the configuration; a URL signed in the same second copies the
** parameters and hashes just its canonical request's hash on top.
*/
static int refresh_second(struct sigv4_signer *s, int64_t now)
{
	char amz_date[SIGV4_AMZ_DATE_LEN];
	char sts_head[sizeof ALGORITHM + SIGV4_AMZ_DATE_LEN + 1 + SIGV4_MAX_SCOPE + 1];
	struct out head = { sts_head, sizeof sts_head, 0 };
	int status;

	if (s->amz_date[0] && s->second == now)
		return SIGV4_OK;
	memset(s->amz_date, 0, sizeof s->amz_date);
	if (sigv4_amz_date(amz_date, now) != SIGV4_OK)
		return SIGV4_EINVAL;
	if ((status = refresh_day(s, amz_date)) != SIGV4_OK)
		return status;

	struct out q = { s->query_head, sizeof s->query_head, 0 };
	put_str(&q, LIT("X-Amz-Algorithm=" ALGORITHM "&X-Amz-Credential="));
	put_encoded(&q, str(s->access_key_id, s->access_key_id_len), KEEP_QUERY);
	put_str(&q, LIT("%2F"));
	put_encoded(&q, str(s->scope, s->scope_len), KEEP_QUERY);
	put_str(&q, LIT("&X-Amz-Date="));
	put(&q, amz_date, sizeof amz_date);
	put_str(&q, LIT("&X-Amz-Expires="));
	if ((status = finish(&q, &s->query_head_len)) != SIGV4_OK)
		return status;

	put_sts_head(&head, amz_date, str(s->scope, s->scope_len));
	if (finish(&head, NULL) != SIGV4_OK)
		return SIGV4_ECRYPTO;
	size_t whole = head.len / SHA256_BLOCK * SHA256_BLOCK;
	memcpy(&s->sts_inner, &s->hmac_inner, sizeof s->sts_inner);
	if (!SHA256_Update(&s->sts_inner, sts_head, whole))
		return SIGV4_ECRYPTO;
	s->sts_absorbed = SHA256_BLOCK + whole;
	s->sts_tail_len = head.len - whole;
	memcpy(s->sts_tail, sts_head + whole, s->sts_tail_len);
	memcpy(s->amz_date, amz_date, sizeof amz_date);
	s->second = now;
	return SIGV4_OK;
}

static int valid_request(const struct sigv4_request *r)
{
	if (r->method.len == 0 || r->method.len > 16)
		return 0;
	for (size_t i = 0; i < r->method.len; i++)
		if (r->method.ptr[i] < 'A' || r->method.ptr[i] > 'Z')
			return 0;
	if (r->key.len == 0 || r->key.len > SIGV4_MAX_KEY || !valid_utf8(r->key))
		return 0;
	if (r->expires < 1 || r->expires > SIGV4_MAX_EXPIRES)
		return 0;
	if (r->header_count > SIGV4_MAX_PAIRS || r->query_count > SIGV4_MAX_PAIRS - 6)
		return 0;
	for (size_t i = 0; i < r->query_count; i++) {
		struct sigv4_str name = r->query[i].name;
		if (name.len >= 6 && lowercase_compare(str(name.ptr, 6), LIT(AUTH_PREFIX)) == 0)
			return 0;   /* the signer owns the authentication parameters */
	}
	return 1;
}

size_t sigv4_decimal(char out[SIGV4_DECIMAL_LEN], uint64_t v)
{
	char tmp[SIGV4_DECIMAL_LEN];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/*
** The signed header names of a slot are the same request after request
** (content-length, maybe content-type, host): the signer keeps the last set,
** its canonical order and its lists, so that only the values need checking.
*/
static int same_shape(const struct sigv4_signer *s, const struct sigv4_request *r)
{
	if (!s->shape_valid || s->shape_count != r->header_count)
		return 0;
	const char *p = s->shape_names, *end = p + s->shape_names_len;
	for (size_t i = 0; i < r->header_count; i++) {
		struct sigv4_str name = r->headers[i].name;
		if ((size_t)(end - p) < name.len + 1 || memcmp(p, name.ptr, name.len) != 0 || p[name.len] != '\0')
			return 0;
		p += name.len + 1;
	}
	return 1;
}

static void remember_shape(struct sigv4_signer *s, const struct sigv4_request *r,
                           const struct sigv4_pair *const *sorted, const struct sigv4_pair *host,
                           struct sigv4_str signed_list, struct sigv4_str signed_encoded)
{
	struct out names = { s->shape_names, sizeof s->shape_names, 0 };
	for (size_t i = 0; i < r->header_count; i++) {
		put_str(&names, r->headers[i].name);
		put_char(&names, '\0');
	}
	s->shape_valid = 0;
	if (finish(&names, &s->shape_names_len) != SIGV4_OK || signed_list.len > sizeof s->shape_signed ||
	    signed_encoded.len > sizeof s->shape_param)
		return;   /* an unusual set: signed without the cache */
	for (size_t i = 0; i <= r->header_count; i++)
		s->shape_order[i] = (unsigned char)(sorted[i] == host ? r->header_count : (size_t)(sorted[i] - r->headers));
	memcpy(s->shape_signed, signed_list.ptr, signed_list.len);
	s->shape_signed_len = signed_list.len;
	memcpy(s->shape_param, signed_encoded.ptr, signed_encoded.len);
	s->shape_param_len = signed_encoded.len;
	s->shape_count = r->header_count;
	s->shape_valid = 1;
}

int sigv4_presign(char *url, size_t cap, size_t *len, struct sigv4_signer *s,
                  const struct sigv4_request *r, char *creq, size_t creq_cap, size_t *creq_len)
{
	char expires[SIGV4_DECIMAL_LEN], signature[SIGV4_HEX_LEN];
	char signed_headers[(SIGV4_MAX_PAIRS + 1) * 64], signed_param[3 * sizeof signed_headers];
	const struct sigv4_pair host = { LIT("host"), str(s->host, s->host_len) };
	const struct sigv4_pair *headers[SIGV4_MAX_PAIRS + 1], *query[SIGV4_MAX_PAIRS];
	size_t n_headers = r->header_count + 1, before = 0;
	uint8_t md[SIGV4_KEY_LEN], mac[SIGV4_KEY_LEN];
	int status;

	if (!valid_request(r))
		return SIGV4_EINVAL;
	if ((status = refresh_second(s, r->now)) != SIGV4_OK)
		return status;

	for (size_t i = 0; i < r->header_count; i++)
		if (has_control(r->headers[i].value))
			return SIGV4_EINVAL;
	struct sigv4_str signed_list, signed_encoded;
	if (same_shape(s, r)) {
		/* the names were checked, sorted and listed when this set was last signed */
		for (size_t i = 0; i < n_headers; i++)
			headers[i] = s->shape_order[i] == r->header_count ? &host : &r->headers[s->shape_order[i]];
		signed_list = str(s->shape_signed, s->shape_signed_len);
		signed_encoded = str(s->shape_param, s->shape_param_len);
	} else {
		/*
		** The signer owns Host (checked at init): another Host is refused as a
		** duplicate. It goes last, where it usually sorts (after content-*).
		*/
		for (size_t i = 0; i < r->header_count; i++) {
			if (!valid_header_name(r->headers[i].name))
				return SIGV4_EINVAL;
			headers[i] = &r->headers[i];
		}
		headers[r->header_count] = &host;
		if (sort_headers(headers, n_headers) != SIGV4_OK)
			return SIGV4_EINVAL;
		struct out sh = { signed_headers, sizeof signed_headers, 0 };
		put_signed_headers(&sh, headers, n_headers);
		if (finish(&sh, NULL) != SIGV4_OK)
			return SIGV4_EINVAL;
		struct out sp = { signed_param, sizeof signed_param, 0 };
		put_encoded(&sp, str(signed_headers, sh.len), KEEP_QUERY);
		signed_list = str(signed_headers, sh.len);
		signed_encoded = str(signed_param, sp.len);
		remember_shape(s, r, headers, &host, signed_list, signed_encoded);
	}

	/*
	** The caller's parameters do not start with X-Amz-, which every one of
	** the signer's does, so they sort all before or all after that run.
	*/
	for (size_t i = 0; i < r->query_count; i++)
		query[i] = &r->query[i];
	sort_pairs(query, r->query_count, query_compare);
	while (before < r->query_count && encoded_compare(query[before]->name, LIT(AUTH_PREFIX)) < 0)
		before++;
	const struct sigv4_str auth[] = {
		str(s->query_head, s->query_head_len),
		str(expires, sigv4_decimal(expires, r->expires)),
		str(s->after_expires, s->after_expires_len),
		signed_encoded,
	};
	struct canon c = {
		r->method, str(s->path_head, s->path_head_len), r->key, query, r->query_count,
		auth, sizeof auth / sizeof *auth, before, headers, n_headers, signed_list,
		LIT(UNSIGNED_PAYLOAD)
	};
	struct out cr = { creq, creq_cap, 0 };
	struct canon_marks m;
	put_canonical_request(&cr, &c, &m);
	if ((status = finish(&cr, creq_len)) != SIGV4_OK)
		return status;

	/*
	** The string to sign is the cached head plus the canonical request's
	** hash: its last blocks are the head's tail and the hash in hex. The
	** copy of sts_inner ends up holding the inner digest, no key material.
	*/
	SHA256_CTX ctx = s->sts_inner;
	unsigned char sts_last[3 * SHA256_BLOCK];   /* tail < 64, hash 64, padding <= 72 */
	if ((status = sha256(md, str(creq, cr.len))) != SIGV4_OK)
		return status;
	memcpy(sts_last, s->sts_tail, s->sts_tail_len);
	hex((char *)sts_last + s->sts_tail_len, md, sizeof md);
	sha256_last(md, &ctx, s->sts_absorbed, sts_last, s->sts_tail_len + SIGV4_HEX_LEN);
	hmac_outer(mac, &s->hmac_outer, md);
	hex(signature, mac, sizeof mac);

	/* the URL reuses the encoded path and query of the canonical request */
	struct out o = { url, cap, 0 };
	put(&o, s->origin, s->origin_len);
	put(&o, creq + m.path, m.query - 1 - m.path);
	put_char(&o, '?');
	put(&o, creq + m.query, m.headers - 1 - m.query);
	put_str(&o, LIT("&X-Amz-Signature="));
	put(&o, signature, sizeof signature);
	return finish(&o, len);
}

struct sigv4_str sigv4_url_key(const struct sigv4_signer *s, const char *url, size_t len)
{
	size_t at = s->origin_len + s->path_head_len;
	const char *end = at < len ? memchr(url + at, '?', len - at) : NULL;
	return end ? str(url + at, (size_t)(end - url) - at) : LIT("");
}
