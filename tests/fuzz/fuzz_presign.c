/*
 * fuzz_presign.c - libFuzzer target for the SigV4 core (src/sigv4.c).
 *
 * Input: fields separated by 0xff bytes (missing fields are empty):
 *    0 endpoint   1 bucket   2 region   3 access key id   4 secret key
 *    5 session token   6 service   7 options (first byte: bit 0 path style,
 *    bit 1 second signing one day later instead of one second later)
 *    8 method   9 object key   10 expires   11 now
 *   12.. name, value, name, value, ...: a header pair, or a query pair when
 *        the name starts with '?' (the '?' is dropped)
 * Numbers are decimal (now may start with '-'); a field that is not is read
 * as up to 8 little-endian bytes. The whole input is also URI-encoded.
 *
 * Every field lives in its own exactly sized heap block and every output
 * buffer is exactly as large as the call said it needed, so ASan sees any
 * byte read or written past an end. An invariant violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"

#define MAX_FIELDS 64
#define MAX_LIST 24   /* per list: more than SIGV4_MAX_PAIRS, to reach the limit checks */
#define SEP 0xff

#define CHECK(cond) do { if (!(cond)) fail(#cond, __LINE__); } while (0)

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_presign: invariant violated at line %d: %s\n", line, what);
	abort();
}

/* FUZZ_VERBOSE=1 in the environment: print what each input led to. */
static int verbose;

/* A non-NULL pointer for capacity-0 calls: the callers we model never pass NULL. */
static char probe[1];

static char *xmalloc(size_t n)
{
	char *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

static struct sigv4_str dup_str(const uint8_t *p, size_t n)
{
	char *d = xmalloc(n);
	memcpy(d, p, n);
	return (struct sigv4_str){ d, n };
}

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;   /* lowercase hex is not what SigV4 writes */
}

/*
 * enc must be canonical for src: unreserved bytes (and '/' when kept) as
 * themselves, every other byte as %XY with uppercase hex, decoding to src.
 */
static void check_encoding(const char *enc, size_t n, struct sigv4_str src, int keep_slash)
{
	size_t j = 0;
	for (size_t i = 0; i < n; j++) {
		unsigned char c = (unsigned char)enc[i];
		CHECK(j < src.len);
		if (c == '%') {
			CHECK(n - i >= 3);
			int hi = hex_value((unsigned char)enc[i + 1]), lo = hex_value((unsigned char)enc[i + 2]);
			CHECK(hi >= 0 && lo >= 0);
			unsigned char b = (unsigned char)(hi * 16 + lo);
			CHECK(!is_unreserved(b) && !(keep_slash && b == '/'));   /* nothing escaped needlessly */
			CHECK((unsigned char)src.ptr[j] == b);
			i += 3;
		} else {
			CHECK(is_unreserved(c) || (keep_slash && c == '/'));
			CHECK((unsigned char)src.ptr[j] == c);
			i++;
		}
	}
	CHECK(j == src.len);
}

static void fuzz_uri_encode(struct sigv4_str src, int keep_slash)
{
	size_t n = (size_t)-1, n2 = (size_t)-1;
	int st = sigv4_uri_encode(probe, 0, &n, src, keep_slash);
	CHECK(st == (src.len ? SIGV4_ENOSPC : SIGV4_OK));
	CHECK(n >= src.len && n <= 3 * src.len);

	/* exactly sized: the counting path unless every byte is escaped */
	char *exact = xmalloc(n);
	CHECK(sigv4_uri_encode(exact, n, &n2, src, keep_slash) == SIGV4_OK && n2 == n);
	check_encoding(exact, n, src, keep_slash);

	/* room for the worst case: the one-pass path, same bytes */
	char *roomy = xmalloc(3 * src.len);
	n2 = (size_t)-1;
	CHECK(sigv4_uri_encode(roomy, 3 * src.len, &n2, src, keep_slash) == SIGV4_OK && n2 == n);
	CHECK(memcmp(roomy, exact, n) == 0);

	if (n > 0) {
		char *shorter = xmalloc(n - 1);
		n2 = (size_t)-1;
		CHECK(sigv4_uri_encode(shorter, n - 1, &n2, src, keep_slash) == SIGV4_ENOSPC && n2 == n);
		free(shorter);
	}
	free(roomy);
	free(exact);
}

/* Printable ASCII without space (so no CR, LF or other control byte either). */
static int is_graphic(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
			return 0;
	return 1;
}

/* Strict UTF-8: no overlong forms, surrogates or code points past U+10FFFF. */
static int is_utf8(struct sigv4_str s)
{
	const unsigned char *p = (const unsigned char *)s.ptr;
	size_t i = 0;
	while (i < s.len) {
		unsigned c = p[i], more;
		unsigned long cp;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			more = 1, cp = c & 0x1f;
		else if ((c & 0xf0) == 0xe0)
			more = 2, cp = c & 0x0f;
		else if ((c & 0xf8) == 0xf0)
			more = 3, cp = c & 0x07;
		else
			return 0;
		if (s.len - i <= more)
			return 0;
		for (unsigned k = 1; k <= more; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		static const unsigned long min[] = { 0, 0x80, 0x800, 0x10000 };
		if (cp < min[more] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += 1 + more;
	}
	return 1;
}

static int has_byte_in(struct sigv4_str s, unsigned lo, unsigned hi)
{
	for (size_t i = 0; i < s.len; i++)
		if ((unsigned char)s.ptr[i] >= lo && (unsigned char)s.ptr[i] <= hi)
			return 1;
	return 0;
}

static int is_control(struct sigv4_str s)
{
	return has_byte_in(s, 0, 0x1f) || has_byte_in(s, 0x7f, 0x7f);
}

/* 1..max bytes of printable ASCII, no space, no '/' when slash_too */
static int is_scope_field(struct sigv4_str s, size_t max, int slash_too)
{
	return s.len >= 1 && s.len <= max && is_graphic(s.ptr, s.len) &&
	       !(slash_too && memchr(s.ptr, '/', s.len));
}

/* What sigv4_signer_init's messages promise of an accepted configuration. */
static void check_accepted_config(const struct sigv4_config *c)
{
	struct sigv4_str service = c->service.len ? c->service : (struct sigv4_str){ "s3", 2 };
	CHECK(is_scope_field(c->access_key_id, SIGV4_MAX_ACCESS_KEY_ID, 1));
	CHECK(c->secret_key.len >= 1 && c->secret_key.len <= SIGV4_MAX_SECRET_KEY && !is_control(c->secret_key));
	CHECK(c->session_token.len == 0 || is_scope_field(c->session_token, SIGV4_MAX_SESSION_TOKEN, 0));
	CHECK(is_scope_field(c->region, SIGV4_MAX_REGION, 1));
	CHECK(is_scope_field(service, SIGV4_MAX_SERVICE, 1));
	CHECK(c->bucket.len >= 1 && c->bucket.len <= SIGV4_MAX_BUCKET && is_utf8(c->bucket) &&
	      !is_control(c->bucket) && !memchr(c->bucket.ptr, '/', c->bucket.len));
	if (!c->path_style) {   /* in a host name: lowercase letters, digits, '-', '.' */
		CHECK(c->bucket.len <= 63);
		for (size_t i = 0; i < c->bucket.len; i++) {
			char ch = c->bucket.ptr[i];
			CHECK((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.');
		}
	}
}

/* What sigv4.h promises of a request it signs. */
static void check_accepted_request(const struct sigv4_request *r)
{
	char date[SIGV4_AMZ_DATE_LEN];
	CHECK(r->key.len >= 1 && r->key.len <= SIGV4_MAX_KEY && is_utf8(r->key) && !memchr(r->key.ptr, 0, r->key.len));
	CHECK(r->expires >= 1 && r->expires <= SIGV4_MAX_EXPIRES);
	CHECK(r->header_count <= SIGV4_MAX_PAIRS && r->query_count <= SIGV4_MAX_PAIRS);
	CHECK(sigv4_amz_date(date, r->now) == SIGV4_OK);
	CHECK(r->method.len >= 1);
}

static int64_t read_int(struct sigv4_str f)
{
	size_t i = 0;
	int neg = 0;
	uint64_t v = 0;
	if (f.len && f.ptr[0] == '-')
		neg = 1, i = 1;
	int digits = f.len > i;
	for (size_t k = i; k < f.len; k++)
		digits &= f.ptr[k] >= '0' && f.ptr[k] <= '9';
	if (digits) {
		for (; i < f.len; i++)
			v = v * 10 + (uint64_t)(f.ptr[i] - '0');   /* wraps: any value is fine */
		return neg ? (int64_t)(0 - v) : (int64_t)v;
	}
	for (i = 0; i < f.len && i < 8; i++)
		v |= (uint64_t)(unsigned char)f.ptr[i] << (8 * i);
	return (int64_t)v;
}

static int name_compare(struct sigv4_str a, struct sigv4_str b)
{
	size_t n = a.len < b.len ? a.len : b.len;
	int c = memcmp(a.ptr, b.ptr, n);
	return c ? c : (a.len > b.len) - (a.len < b.len);
}

/* Lines of a canonical request: method, path, query, headers..., "", signed, hash. */
static size_t find_line(const char *p, size_t n, size_t from, size_t *end)
{
	const char *nl = memchr(p + from, '\n', n - from);
	CHECK(nl != NULL);
	*end = (size_t)(nl - p);
	return from;
}

/*
 * The query of a URL or canonical request: '&'-separated name=value pairs
 * of canonical encodings, sorted by name then value, byte by byte.
 */
static void check_sorted_query(const char *q, size_t n)
{
	struct sigv4_str prev_name = { "", 0 }, prev_value = { "", 0 };
	size_t i = 0;
	int first = 1;
	while (i <= n) {
		const char *amp = memchr(q + i, '&', n - i);
		size_t end = amp ? (size_t)(amp - q) : n;
		const char *eq = memchr(q + i, '=', end - i);
		CHECK(eq != NULL);
		struct sigv4_str name = { q + i, (size_t)(eq - q) - i };
		struct sigv4_str value = { eq + 1, end - (size_t)(eq - q) - 1 };
		CHECK(memchr(value.ptr, '=', value.len) == NULL);
		if (!first) {
			int c = name_compare(prev_name, name);
			CHECK(c < 0 || (c == 0 && name_compare(prev_value, value) <= 0));
		}
		first = 0;
		prev_name = name, prev_value = value;
		i = end + 1;
	}
}

struct input {
	struct sigv4_str f[12];
	struct sigv4_pair headers[MAX_LIST], query[MAX_LIST];
	size_t n_headers, n_query;
};

/*
 * The canonical request built again through the public, unoptimised stage
 * function from decoded parts, and the signature through the uncached key
 * derivation: what the cached and pre-encoded fast path must agree with.
 */
static void check_against_stages(const struct sigv4_config *cfg,
                                 const char *bucket_url, size_t bucket_url_len,
                                 const struct sigv4_request *r, const char *creq, size_t creq_len,
                                 const char *url, size_t url_len)
{
	char amz_date[SIGV4_AMZ_DATE_LEN], scope[SIGV4_MAX_SCOPE], expires[16], sig[SIGV4_HEX_LEN];
	uint8_t key[SIGV4_KEY_LEN];
	size_t scope_len, n;
	struct sigv4_str service = cfg->service.len ? cfg->service : (struct sigv4_str){ "s3", 2 };

	CHECK(sigv4_amz_date(amz_date, r->now) == SIGV4_OK);
	CHECK(sigv4_scope(scope, sizeof scope, &scope_len, amz_date, cfg->region, service) == SIGV4_OK);

	/* host: the bucket URL between "://" and the path */
	const char *h = strstr(bucket_url, "://");
	CHECK(h != NULL);
	h += 3;
	const char *slash = memchr(h, '/', bucket_url_len - (size_t)(h - bucket_url));
	struct sigv4_str host = { h, slash ? (size_t)(slash - h) : bucket_url_len - (size_t)(h - bucket_url) };

	/* signed headers: the lowercased names, sorted, ';'-joined */
	struct sigv4_str names[SIGV4_MAX_PAIRS + 1];
	char *lowered[SIGV4_MAX_PAIRS];
	size_t n_names = 0, sh_len = 0;
	names[n_names++] = (struct sigv4_str){ "host", 4 };
	for (size_t i = 0; i < r->header_count; i++) {
		char *low = xmalloc(r->headers[i].name.len);
		for (size_t k = 0; k < r->headers[i].name.len; k++) {
			char c = r->headers[i].name.ptr[k];
			low[k] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
		}
		lowered[i] = low;
		names[n_names++] = (struct sigv4_str){ low, r->headers[i].name.len };
	}
	for (size_t i = 1; i < n_names; i++)
		for (size_t j = i; j > 0 && name_compare(names[j - 1], names[j]) > 0; j--) {
			struct sigv4_str t = names[j];
			names[j] = names[j - 1], names[j - 1] = t;
		}
	for (size_t i = 0; i < n_names; i++)
		sh_len += names[i].len + 1;
	char *signed_headers = xmalloc(sh_len);
	sh_len = 0;
	for (size_t i = 0; i < n_names; i++) {
		if (i)
			signed_headers[sh_len++] = ';';
		memcpy(signed_headers + sh_len, names[i].ptr, names[i].len);
		sh_len += names[i].len;
	}

	char *credential = xmalloc(cfg->access_key_id.len + 1 + scope_len);
	memcpy(credential, cfg->access_key_id.ptr, cfg->access_key_id.len);
	credential[cfg->access_key_id.len] = '/';
	memcpy(credential + cfg->access_key_id.len + 1, scope, scope_len);

	struct sigv4_pair query[SIGV4_MAX_PAIRS], headers[SIGV4_MAX_PAIRS + 1];
	size_t nq = 0;
	for (size_t i = 0; i < r->query_count; i++)
		query[nq++] = r->query[i];
#define PAIR(n, v, l) (struct sigv4_pair){ { (n), strlen(n) }, { (v), (l) } }
	query[nq++] = PAIR("X-Amz-Algorithm", "AWS4-HMAC-SHA256", 16);
	query[nq++] = PAIR("X-Amz-Credential", credential, cfg->access_key_id.len + 1 + scope_len);
	query[nq++] = PAIR("X-Amz-Date", amz_date, SIGV4_AMZ_DATE_LEN);
	query[nq++] = PAIR("X-Amz-Expires", expires, (size_t)snprintf(expires, sizeof expires, "%u", (unsigned)r->expires));
	if (cfg->session_token.len)
		query[nq++] = PAIR("X-Amz-Security-Token", cfg->session_token.ptr, cfg->session_token.len);
	query[nq++] = PAIR("X-Amz-SignedHeaders", signed_headers, sh_len);
#undef PAIR
	for (size_t i = 0; i < r->header_count; i++)
		headers[i] = r->headers[i];
	headers[r->header_count] = (struct sigv4_pair){ { "Host", 4 }, host };

	size_t path_len = 1 + (cfg->path_style ? cfg->bucket.len + 1 : 0) + r->key.len;
	char *path = xmalloc(path_len);
	path[0] = '/';
	n = 1;
	if (cfg->path_style) {
		memcpy(path + 1, cfg->bucket.ptr, cfg->bucket.len);
		path[1 + cfg->bucket.len] = '/';
		n += cfg->bucket.len + 1;
	}
	memcpy(path + n, r->key.ptr, r->key.len);

	struct sigv4_canonical c = {
		.method = r->method, .path = { path, path_len }, .query = query, .query_count = nq,
		.headers = headers, .header_count = r->header_count + 1,
		.payload_hash = { "UNSIGNED-PAYLOAD", 16 },
	};
	char *creq2 = xmalloc(creq_len);
	CHECK(sigv4_canonical_request(creq2, creq_len, &n, &c) == SIGV4_OK);
	CHECK(n == creq_len && memcmp(creq2, creq, creq_len) == 0);

	/* string to sign and signature, without any cached state */
	size_t sts_len;
	CHECK(sigv4_string_to_sign(probe, 0, &sts_len, amz_date, (struct sigv4_str){ scope, scope_len },
	                           (struct sigv4_str){ creq, creq_len }) == SIGV4_ENOSPC);
	char *sts = xmalloc(sts_len);
	CHECK(sigv4_string_to_sign(sts, sts_len, &n, amz_date, (struct sigv4_str){ scope, scope_len },
	                           (struct sigv4_str){ creq, creq_len }) == SIGV4_OK && n == sts_len);
	CHECK(sigv4_derive_key(key, cfg->secret_key, amz_date, cfg->region, service) == SIGV4_OK);
	CHECK(sigv4_sign(sig, key, (struct sigv4_str){ sts, sts_len }) == SIGV4_OK);
	CHECK(memcmp(url + url_len - SIGV4_HEX_LEN, sig, SIGV4_HEX_LEN) == 0);

	free(sts);
	free(creq2);
	free(path);
	free(credential);
	free(signed_headers);
	for (size_t i = 0; i < r->header_count; i++)
		free(lowered[i]);
}

static void check_url(const char *url, size_t len, const char *creq, size_t creq_len,
                      const char *bucket_url, size_t bucket_url_len)
{
	static const char sig_param[] = "&X-Amz-Signature=";
	const size_t tail = sizeof sig_param - 1 + SIGV4_HEX_LEN;

	CHECK(is_graphic(url, len));
	CHECK(memchr(url, '#', len) == NULL);
	const char *q = memchr(url, '?', len);
	CHECK(q != NULL && memchr(q + 1, '?', len - (size_t)(q + 1 - url)) == NULL);
	CHECK(len > tail && memcmp(url + len - tail, sig_param, sizeof sig_param - 1) == 0);
	for (size_t i = len - SIGV4_HEX_LEN; i < len; i++)
		CHECK((url[i] >= '0' && url[i] <= '9') || (url[i] >= 'a' && url[i] <= 'f'));

	/* objects live under the bucket URL */
	CHECK(len > bucket_url_len && memcmp(url, bucket_url, bucket_url_len) == 0 && url[bucket_url_len] == '/');

	/* the canonical request: no CR, and the URL's path and query are its lines 2 and 3 */
	CHECK(memchr(creq, '\r', creq_len) == NULL);
	size_t e1, e2, e3;
	find_line(creq, creq_len, 0, &e1);
	size_t p = find_line(creq, creq_len, e1 + 1, &e2);
	size_t qs = find_line(creq, creq_len, e2 + 1, &e3);
	/* url = origin + path + '?' + query + tail; the path starts where the origin ends */
	const char *origin_end = strstr(url, "://");
	CHECK(origin_end != NULL);
	origin_end = memchr(origin_end + 3, '/', len - (size_t)(origin_end + 3 - url));
	CHECK(origin_end != NULL && origin_end < q);
	CHECK((size_t)(q - origin_end) == e2 - p && memcmp(origin_end, creq + p, e2 - p) == 0);
	CHECK((size_t)(len - tail - (size_t)(q + 1 - url)) == e3 - qs);
	CHECK(memcmp(q + 1, creq + qs, e3 - qs) == 0);
	check_sorted_query(creq + qs, e3 - qs);

	/* header lines: lowercased names in strictly increasing order */
	size_t i = e3 + 1;
	struct sigv4_str prev = { "", 0 };
	int first = 1;
	for (;;) {
		size_t end;
		find_line(creq, creq_len, i, &end);
		if (end == i)
			break;
		const char *colon = memchr(creq + i, ':', end - i);
		CHECK(colon != NULL);
		struct sigv4_str name = { creq + i, (size_t)(colon - creq) - i };
		for (size_t k = 0; k < name.len; k++)
			CHECK(!(name.ptr[k] >= 'A' && name.ptr[k] <= 'Z'));
		CHECK(first || name_compare(prev, name) < 0);
		first = 0, prev = name;
		i = end + 1;
	}
	CHECK(creq_len >= 16 && memcmp(creq + creq_len - 16, "UNSIGNED-PAYLOAD", 16) == 0);
}

/* One presigned URL, every buffer exactly sized; returns the URL (malloc'd) or NULL. */
static char *presign(struct sigv4_signer *s, const struct sigv4_request *r, size_t *url_len,
                     char **creq_out, size_t *creq_len_out)
{
	size_t len = (size_t)-1, creq_len = (size_t)-1, n, cn;
	int st = sigv4_presign(probe, 0, &len, s, r, probe, 0, &creq_len);
	if (st == SIGV4_EINVAL)
		return NULL;
	CHECK(st == SIGV4_ENOSPC && creq_len != (size_t)-1);

	char *creq = xmalloc(creq_len);
	CHECK(sigv4_presign(probe, 0, &len, s, r, creq, creq_len, &cn) == SIGV4_ENOSPC && cn == creq_len);
	CHECK(len != (size_t)-1);
	char *url = xmalloc(len);
	CHECK(sigv4_presign(url, len, &n, s, r, creq, creq_len, &cn) == SIGV4_OK);
	CHECK(n == len && cn == creq_len);

	/* one byte short, of either buffer: ENOSPC and the same sizes */
	char *shorter = xmalloc(len - 1);
	n = (size_t)-1;
	CHECK(sigv4_presign(shorter, len - 1, &n, s, r, creq, creq_len, &cn) == SIGV4_ENOSPC && n == len);
	free(shorter);
	shorter = xmalloc(creq_len - 1);
	cn = (size_t)-1;
	CHECK(sigv4_presign(url, len, &n, s, r, shorter, creq_len - 1, &cn) == SIGV4_ENOSPC && cn == creq_len);
	free(shorter);
	/* leave the canonical request of the successful call in creq */
	CHECK(sigv4_presign(url, len, &n, s, r, creq, creq_len, NULL) == SIGV4_OK && n == len);

	*url_len = len;
	*creq_out = creq;
	*creq_len_out = creq_len;
	return url;
}

static void fuzz_canonical_request(const struct input *in)
{
	struct sigv4_canonical c = {
		.method = in->f[8], .path = in->f[9], .query = in->query, .query_count = in->n_query,
		.headers = in->headers, .header_count = in->n_headers,
		.payload_hash = { "UNSIGNED-PAYLOAD", 16 },
	};
	size_t len = (size_t)-1, n;
	int st = sigv4_canonical_request(probe, 0, &len, &c);
	if (st == SIGV4_EINVAL)
		return;
	CHECK(st == SIGV4_ENOSPC);
	char *out = xmalloc(len);
	CHECK(sigv4_canonical_request(out, len, &n, &c) == SIGV4_OK && n == len);
	char *shorter = xmalloc(len - 1);
	n = (size_t)-1;
	CHECK(sigv4_canonical_request(shorter, len - 1, &n, &c) == SIGV4_ENOSPC && n == len);
	free(shorter);
	free(out);
}

static void fuzz_signer(const struct input *in)
{
	const struct sigv4_str *f = in->f;
	int opt = f[7].len ? (unsigned char)f[7].ptr[0] : 0;
	struct sigv4_config cfg = {
		.access_key_id = f[3], .secret_key = f[4], .session_token = f[5], .region = f[2],
		.service = f[6], .endpoint = f[0], .bucket = f[1], .path_style = opt & 1,
	};
	struct sigv4_signer *s = malloc(sizeof *s);
	const char *why = NULL;
	if (!s)
		abort();

	int st = sigv4_signer_init(s, &cfg, &why);
	if (verbose)
		fprintf(stderr, "signer_init: %s%s%s\n", sigv4_strerror(st), why ? ": " : "", why ? why : "");
	if (st != SIGV4_OK) {
		CHECK(st == SIGV4_EINVAL && why != NULL && strchr(why, ':') != NULL);
		for (size_t i = 0; i < sizeof s->secret_key; i++)
			CHECK(s->secret_key[i] == 0);   /* a refused config leaves no secret behind */
		free(s);
		return;
	}

	check_accepted_config(&cfg);

	size_t bl = (size_t)-1, n;
	CHECK(sigv4_bucket_url(probe, 0, &bl, s) == SIGV4_ENOSPC && bl != (size_t)-1);
	char *bucket_url = xmalloc(bl + 1);   /* + NUL for strstr */
	CHECK(sigv4_bucket_url(bucket_url, bl, &n, s) == SIGV4_OK && n == bl);
	bucket_url[bl] = 0;
	CHECK(is_graphic(bucket_url, bl));
	CHECK(strncmp(bucket_url, "https://", 8) == 0 || strncmp(bucket_url, "http://", 7) == 0);
	CHECK(bucket_url[bl - 1] != '/');
	/*
	 * The authority holds what an explicit endpoint may (host name characters,
	 * [v6], :port), whichever way it was made: no userinfo '@', '?', '#', '%'.
	 */
	const char *a = strstr(bucket_url, "://") + 3, *a_end = strchr(a, '/');
	for (const char *p = a; p < (a_end ? a_end : bucket_url + bl); p++)
		CHECK((is_unreserved((unsigned char)*p) && *p != '~') || *p == ':' || *p == '[' || *p == ']');

	struct sigv4_request r = {
		.method = f[8], .key = f[9], .headers = in->headers, .header_count = in->n_headers,
		.query = in->query, .query_count = in->n_query,
		.now = read_int(f[11]), .expires = (uint32_t)read_int(f[10]),
	};
	size_t url_len, creq_len;
	char *creq;
	char *url = presign(s, &r, &url_len, &creq, &creq_len);
	if (verbose)
		fprintf(stderr, "presign: %s%.*s\n", url ? "ok " : "refused", url ? (int)url_len : 0, url ? url : "");
	if (url) {
		check_accepted_request(&r);
		char *z = xmalloc(url_len + 1);   /* NUL-terminated copy for strstr */
		memcpy(z, url, url_len);
		z[url_len] = 0;
		check_url(z, url_len, creq, creq_len, bucket_url, bl);
		check_against_stages(&cfg, bucket_url, bl, &r, creq, creq_len, url, url_len);

		/* the encoded key, as a public URL would cut it out */
		struct sigv4_str k = sigv4_url_key(s, url, url_len);
		size_t kn;
		CHECK(sigv4_uri_encode(probe, 0, &kn, r.key, 1) == SIGV4_ENOSPC);
		char *ek = xmalloc(kn);
		CHECK(sigv4_uri_encode(ek, kn, &kn, r.key, 1) == SIGV4_OK);
		CHECK(k.len == kn && memcmp(k.ptr, ek, kn) == 0);
		free(ek);

		/* sign at another second (or day), then again at the first: same URL */
		struct sigv4_request r2 = r;
		r2.now = r.now + ((opt & 2) ? 86400 : 1);
		size_t len2, creq2_len;
		char *creq2, *url2 = presign(s, &r2, &len2, &creq2, &creq2_len);
		if (url2) {
			free(url2);
			free(creq2);
		}
		size_t len3, creq3_len;
		char *creq3, *url3 = presign(s, &r, &len3, &creq3, &creq3_len);
		CHECK(url3 != NULL && len3 == url_len && memcmp(url3, url, url_len) == 0);
		CHECK(creq3_len == creq_len && memcmp(creq3, creq, creq_len) == 0);
		free(url3);
		free(creq3);
		free(z);
		free(url);
		free(creq);
	}
	sigv4_signer_wipe(s);
	free(bucket_url);
	free(s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sigv4_str fields[MAX_FIELDS];
	size_t n_fields = 0, start = 0;
	struct input in;

	/* the whole input, 0xff bytes included, through the encoder */
	struct sigv4_str all = dup_str(data, size);
	fuzz_uri_encode(all, 0);
	fuzz_uri_encode(all, 1);
	free((void *)all.ptr);

	for (size_t i = 0; i <= size && n_fields < MAX_FIELDS; i++)
		if (i == size || data[i] == SEP) {
			fields[n_fields++] = dup_str(data + start, i - start);
			start = i + 1;
		}

	memset(&in, 0, sizeof in);
	for (size_t i = 0; i < 12; i++)
		in.f[i] = i < n_fields ? fields[i] : (struct sigv4_str){ probe, 0 };
	for (size_t i = 12; i + 1 < n_fields; i += 2) {
		struct sigv4_str name = fields[i], value = fields[i + 1];
		if (name.len && name.ptr[0] == '?') {
			name.ptr++, name.len--;
			if (in.n_query < MAX_LIST)
				in.query[in.n_query++] = (struct sigv4_pair){ name, value };
		} else if (in.n_headers < MAX_LIST) {
			in.headers[in.n_headers++] = (struct sigv4_pair){ name, value };
		}
	}
	for (size_t i = 0; i < 12 && i < n_fields; i++)
		fuzz_uri_encode(fields[i], i == 9);

	fuzz_canonical_request(&in);
	fuzz_signer(&in);

	for (size_t i = 0; i < n_fields; i++)
		free((void *)fields[i].ptr);
	return 0;
}
