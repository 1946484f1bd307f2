/*
 * fuzz_presign.c - libFuzzer target for the SigV4 core in src/, through sigv4.h only.
 *
 * Input: fields separated by 0xff bytes (missing fields are empty):
 *    0 endpoint   1 bucket   2 region   3 access key id   4 secret key
 *    5 session token   6 service   7 options (first byte, OPT_* below)
 *    8 method   9 object key   10 expires   11 now   12 body
 *   13.. name, value, name, value, ...: a header pair, or a query pair when
 *        the name starts with '?' (the '?' is dropped)
 * Numbers are decimal (now may start with '-'); a field that is not is read
 * as up to 8 little-endian bytes. The whole input is also URI-encoded.
 *
 * Every field lives in its own exactly sized heap block and every output
 * buffer is exactly as large as the call said it needed, so ASan sees any
 * byte read or written past an end. An invariant violation aborts.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sigv4.h"

enum {
	F_ENDPOINT, F_BUCKET, F_REGION, F_AKID, F_SECRET, F_TOKEN, F_SERVICE, F_OPTIONS,
	F_METHOD, F_KEY, F_EXPIRES, F_NOW, F_BODY, N_FIELDS
};

enum {
	OPT_PATH_STYLE = 1,       /* the bucket in the path */
	OPT_NEXT_DAY = 2,         /* re-sign a day later instead of a second later */
	OPT_CONTENT_SHA256 = 4,   /* header-signed requests carry X-Amz-Content-Sha256 */
	OPT_PAYLOAD = 8,          /* the body is the payload; else UNSIGNED-PAYLOAD */
	OPT_ROTATE = 16           /* replace the credentials before re-signing */
};

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

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

static struct sigv4_str dup_str(const void *p, size_t n)
{
	char *d = xmalloc(n);
	memcpy(d, p, n);
	return (struct sigv4_str){ d, n };
}

/* A growing string for the harness's own models of what the core must write. */
struct buf {
	char *p;
	size_t len, cap;
};

static void add(struct buf *b, const void *p, size_t n)
{
	if (b->cap - b->len < n) {
		b->cap = 2 * (b->len + n);
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void add_str(struct buf *b, struct sigv4_str s)
{
	add(b, s.ptr, s.len);
}

static void add_z(struct buf *b, const char *z)
{
	add(b, z, strlen(z));
}

static struct sigv4_str as_str(const struct buf *b)
{
	return (struct sigv4_str){ b->len ? b->p : probe, b->len };
}

static int same_bytes(const void *a, size_t a_len, const void *b, size_t b_len)
{
	return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* c is one of set's characters (strchr would find NUL in any set) */
static int in_set(char c, const char *set)
{
	return c && strchr(set, c) != NULL;
}

/* RFC 9110 tchar: what a header field name is made of */
static int is_tchar(unsigned char c)
{
	return is_unreserved(c) || in_set((char)c, "!#$%&'*+^`|");
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;   /* lowercase hex is not what SigV4 writes */
}

static int is_lower_hex(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

static void to_hex(char *out, const uint8_t *bytes, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++)
		out[2 * i] = digits[bytes[i] >> 4], out[2 * i + 1] = digits[bytes[i] & 15];
}

/* ---- the encoder ---------------------------------------------------------- */

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

/* The encoding of s, exactly sized; the encoder itself is checked above. */
static char *encode(struct sigv4_str s, int keep_slash, size_t *len)
{
	CHECK(sigv4_uri_encode(probe, 0, len, s, keep_slash) == (s.len ? SIGV4_ENOSPC : SIGV4_OK));
	char *e = xmalloc(*len);
	CHECK(sigv4_uri_encode(e, *len, len, s, keep_slash) == SIGV4_OK);
	return e;
}

/* ---- byte classes ------------------------------------------------------------ */

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

static int is_control(struct sigv4_str s)
{
	for (size_t i = 0; i < s.len; i++)
		if ((unsigned char)s.ptr[i] < 0x20 || (unsigned char)s.ptr[i] == 0x7f)
			return 1;
	return 0;
}

/* 1..max bytes of printable ASCII, no space, no '/' when slash_too */
static int is_scope_field(struct sigv4_str s, size_t max, int slash_too)
{
	return s.len >= 1 && s.len <= max && is_graphic(s.ptr, s.len) &&
	       !(slash_too && memchr(s.ptr, '/', s.len));
}

/* what a label of AWS's host names may hold */
static int is_label(struct sigv4_str s)
{
	for (size_t i = 0; i < s.len; i++) {
		char c = s.ptr[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return 0;
	}
	return 1;
}

static int all_zero(const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (((const unsigned char *)p)[i])
			return 0;
	return 1;
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
	int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
	return c ? c : (a.len > b.len) - (a.len < b.len);
}

static int is_named(struct sigv4_str name, const char *z)
{
	return name.len == strlen(z) && strncasecmp(name.ptr, z, name.len) == 0;
}

/* ---- reference crypto: OpenSSL's own SHA-256 and HMAC, not the core's ---------- */

static void reference_sha256_hex(struct sigv4_str s, char out[SIGV4_HEX_LEN])
{
	uint8_t md[SIGV4_KEY_LEN];
	unsigned int n = 0;
	CHECK(EVP_Digest(s.ptr, s.len, md, &n, EVP_sha256(), NULL) == 1 && n == sizeof md);
	to_hex(out, md, sizeof md);
}

static void reference_hmac(uint8_t out[SIGV4_KEY_LEN], const void *key, size_t key_len, struct sigv4_str msg)
{
	unsigned int n = 0;
	CHECK(HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg.ptr, msg.len, out, &n) != NULL &&
	      n == SIGV4_KEY_LEN);
}

static void fuzz_payload_hash(struct sigv4_str body)
{
	char *out = xmalloc(SIGV4_HEX_LEN), want[SIGV4_HEX_LEN];
	reference_sha256_hex(body, want);
	CHECK(sigv4_payload_hash(out, body) == SIGV4_OK && memcmp(out, want, SIGV4_HEX_LEN) == 0);
	free(out);
}

/* sigv4_amz_date against the C library's calendar. */
static void fuzz_amz_date(int64_t t)
{
	char *out = xmalloc(SIGV4_AMZ_DATE_LEN), want[SIGV4_AMZ_DATE_LEN + 1];
	int st = sigv4_amz_date(out, t);
	if (t < 0 || t > INT64_C(253402300799)) {   /* outside 1970..9999 */
		CHECK(st == SIGV4_EINVAL);
	} else {
		time_t tt = (time_t)t;
		struct tm tm;
		CHECK(st == SIGV4_OK && gmtime_r(&tt, &tm) != NULL);
		CHECK(strftime(want, sizeof want, "%Y%m%dT%H%M%SZ", &tm) == SIGV4_AMZ_DATE_LEN);
		CHECK(memcmp(out, want, SIGV4_AMZ_DATE_LEN) == 0);
	}
	free(out);
}

/* ---- endpoints ------------------------------------------------------------------- */

/* "host" or "[v6]", then ":" port or nothing: whether there is a port */
static int split_port(struct sigv4_str host, struct sigv4_str *name, struct sigv4_str *port)
{
	const char *from = host.len && host.ptr[0] == '[' ? memchr(host.ptr, ']', host.len) : host.ptr;
	CHECK(from != NULL);
	const char *colon = memchr(from, ':', host.len - (size_t)(from - host.ptr));
	*name = (struct sigv4_str){ host.ptr, colon ? (size_t)(colon - host.ptr) : host.len };
	*port = colon ? (struct sigv4_str){ colon + 1, host.len - name->len - 1 } : (struct sigv4_str){ probe, 0 };
	return colon != NULL;
}

/* 1..65535 in decimal, leading zeros allowed as every URL parser allows them; else -1 */
/* 1..65535 in decimal without a leading zero (clients send the port as a number), else -1 */
static long port_value(struct sigv4_str p)
{
	long v = 0;
	if (p.len == 0 || p.len > 5 || p.ptr[0] == '0')
		return -1;
	for (size_t i = 0; i < p.len; i++) {
		if (p.ptr[i] < '0' || p.ptr[i] > '9')
			return -1;
		v = v * 10 + (p.ptr[i] - '0');
	}
	return v >= 1 && v <= 65535 ? v : -1;
}

static int is_ipv4(struct sigv4_str name)
{
	char z[INET_ADDRSTRLEN];
	struct in_addr a;
	if (name.len >= sizeof z)
		return 0;
	memcpy(z, name.ptr, name.len);
	z[name.len] = 0;
	return inet_pton(AF_INET, z, &a) == 1;
}

#define V6_CHARS "0123456789abcdefABCDEF:."

/*
 * The endpoint grammar of sigv4.h: "http(s)://", a host name or [v6], then
 * ":" and a port 1..65535 or nothing, then "/" or nothing; at most
 * SIGV4_MAX_HOST bytes once a default port is left out.
 */
static int endpoint_valid(struct sigv4_str t)
{
	long default_port;
	size_t i = 0, at;
	if (t.len >= 8 && memcmp(t.ptr, "https://", 8) == 0)
		at = 8, default_port = 443;
	else if (t.len >= 7 && memcmp(t.ptr, "http://", 7) == 0)
		at = 7, default_port = 80;
	else
		return 0;
	struct sigv4_str a = { t.ptr + at, t.len - at };
	if (a.len && a.ptr[a.len - 1] == '/')
		a.len--;
	if (a.len && a.ptr[0] == '[') {
		for (i = 1; i < a.len && a.ptr[i] != ']'; i++)
			if (!in_set(a.ptr[i], V6_CHARS))
				return 0;
		if (i == a.len || i == 1)
			return 0;
		i++;
	} else {
		while (i < a.len && is_unreserved((unsigned char)a.ptr[i]) && a.ptr[i] != '~')
			i++;
		if (i == 0)
			return 0;
	}
	size_t host_len = a.len;
	if (i < a.len) {
		long port = port_value((struct sigv4_str){ a.ptr + i + 1, a.len - i - 1 });
		if (a.ptr[i] != ':' || port < 0)
			return 0;
		if (port == default_port)
			host_len = i;
	}
	return host_len <= SIGV4_MAX_HOST;
}

/*
 * An accepted endpoint is "scheme://" host [":" port] ["/"], and its host
 * is what clients put in their Host header: the host name or [v6], and the
 * port unless it is the scheme's default. A dotted IPv4 address or [v6] is
 * an IP literal.
 */
static void fuzz_endpoint(struct sigv4_str text)
{
	struct sigv4_endpoint *e = xmalloc(sizeof *e);
	const char *why = "unset";
	int st = sigv4_parse_endpoint(e, text, &why);
	CHECK((st == SIGV4_OK) == endpoint_valid(text));
	if (st != SIGV4_OK) {
		CHECK(st == SIGV4_EINVAL && why != NULL && strncmp(why, "endpoint:", 9) == 0);
		free(e);
		return;
	}
	CHECK(why == NULL);
	const char *scheme = e->https ? "https://" : "http://";
	size_t at = strlen(scheme);
	CHECK(text.len > at && memcmp(text.ptr, scheme, at) == 0);
	struct sigv4_str rest = { text.ptr + at, text.len - at }, host = { e->host, e->host_len }, name, port;
	if (rest.ptr[rest.len - 1] == '/')
		rest.len--;
	CHECK(host.len >= 1 && host.len <= SIGV4_MAX_HOST && host.len <= rest.len);
	CHECK(memcmp(host.ptr, rest.ptr, host.len) == 0 && is_graphic(host.ptr, host.len));

	long default_port = e->https ? 443 : 80;
	if (split_port(host, &name, &port))   /* as clients write it: no leading zero, not the default */
		CHECK(port_value(port) > 0 && port.ptr[0] != '0' && port_value(port) != default_port);
	if (host.len < rest.len) {   /* what was left out: the default port */
		struct sigv4_str rest_name, left_out;
		CHECK(split_port(rest, &rest_name, &left_out) && rest_name.len == host.len);
		CHECK(port_value(left_out) == default_port);
	}
	CHECK(name.len >= 1);
	if (name.ptr[0] == '[') {
		CHECK(e->ip_literal && name.len > 2 && name.ptr[name.len - 1] == ']');
		for (size_t i = 1; i + 1 < name.len; i++)
			CHECK(in_set(name.ptr[i], V6_CHARS));
	} else {
		for (size_t i = 0; i < name.len; i++) {
			char c = name.ptr[i];
			CHECK(is_unreserved((unsigned char)c) && c != '~');
			CHECK(!e->ip_literal || (c >= '0' && c <= '9') || c == '.');
		}
		CHECK(!is_ipv4(name) || e->ip_literal);
	}
	free(e);
}

/* ---- signers ------------------------------------------------------------------------ */

/* What sigv4_signer_init's messages state of credentials it takes (set_credentials too). */
static int credentials_valid(const struct sigv4_credentials *k)
{
	return is_scope_field(k->access_key_id, SIGV4_MAX_ACCESS_KEY_ID, 1) &&
	       k->secret_key.len >= 1 && k->secret_key.len <= SIGV4_MAX_SECRET_KEY && !is_control(k->secret_key) &&
	       (k->session_token.len == 0 || is_scope_field(k->session_token, SIGV4_MAX_SESSION_TOKEN, 0));
}

/* ... and of a configuration. */
static int config_valid(const struct sigv4_config *c)
{
	struct sigv4_str service = c->service.len ? c->service : (struct sigv4_str){ "s3", 2 };
	struct sigv4_endpoint e;
	if (!is_scope_field(c->region, SIGV4_MAX_REGION, 1) || !is_scope_field(service, SIGV4_MAX_SERVICE, 1))
		return 0;
	if (c->bucket.len > SIGV4_MAX_BUCKET || !is_utf8(c->bucket) || is_control(c->bucket) ||
	    memchr(c->bucket.ptr, '/', c->bucket.len))
		return 0;
	if (c->endpoint.len ? sigv4_parse_endpoint(&e, c->endpoint, NULL) != SIGV4_OK
	                    : !is_label(c->region) || !is_label(service))   /* labels of the default host */
		return 0;
	if (c->bucket.len && !c->path_style) {   /* in a host name: lowercase letters, digits, '-', '.' */
		if (c->bucket.len > 63 || (c->endpoint.len && e.ip_literal))
			return 0;
		for (size_t i = 0; i < c->bucket.len; i++)
			if (!((c->bucket.ptr[i] >= 'a' && c->bucket.ptr[i] <= 'z') || in_set(c->bucket.ptr[i], "0123456789-.")))
				return 0;
	}
	return 1;
}

static const char *const fields_named[] = {
	"endpoint:", "bucket:", "region:", "service:", "access_key_id:", "secret_key:", "session_token:"
};

/* A signer in a malloc'd block of sigv4_signer_size() bytes; NULL when refused. */
static struct sigv4_signer *new_signer(const struct sigv4_config *c, const struct sigv4_credentials *k)
{
	size_t size = sigv4_signer_size();
	struct sigv4_signer *s = xmalloc(size);
	const char *why = "unset";
	memset(s, 0xa5, size);   /* so that "holds nothing" is seen to be done */
	int st = sigv4_signer_init(s, c, k, &why);
	if (verbose)
		fprintf(stderr, "signer_init: %s%s%s\n", sigv4_strerror(st), why ? ": " : "", why ? why : "");
	if (st == SIGV4_OK) {
		CHECK(why == NULL);
		return s;
	}
	CHECK(st == SIGV4_EINVAL && why != NULL);
	size_t i = 0;
	while (i < sizeof fields_named / sizeof *fields_named && strncmp(why, fields_named[i], strlen(fields_named[i])))
		i++;
	CHECK(i < sizeof fields_named / sizeof *fields_named);   /* the reason starts with a field name */
	CHECK(all_zero(s, size));   /* a refused signer holds nothing, a secret least of all */
	free(s);
	return NULL;
}

static void free_signer(struct sigv4_signer *s)
{
	sigv4_signer_wipe(s);
	CHECK(all_zero(s, sigv4_signer_size()));
	free(s);
}

/*
 * What a signer's URLs start with, made from its configuration alone:
 * origin "scheme://" [bucket "."] host, then "/" bucket when path-style.
 */
struct model {
	struct sigv4_str service;
	struct buf bucket_url;
	size_t origin_len, host_at;
};

static void make_model(struct model *m, const struct sigv4_config *c, const struct sigv4_signer *s)
{
	struct sigv4_endpoint e;
	memset(m, 0, sizeof *m);
	memset(&e, 0, sizeof e);
	m->service = c->service.len ? c->service : (struct sigv4_str){ "s3", 2 };
	if (c->endpoint.len) {
		CHECK(sigv4_parse_endpoint(&e, c->endpoint, NULL) == SIGV4_OK);
	} else {
		e.https = 1;
		int n = snprintf(e.host, sizeof e.host, "%.*s.%.*s.amazonaws.com", (int)m->service.len, m->service.ptr,
		                 (int)c->region.len, c->region.ptr);
		CHECK(n > 0 && (size_t)n < sizeof e.host);
		e.host_len = (size_t)n;
	}
	struct buf *u = &m->bucket_url;
	add_z(u, e.https ? "https://" : "http://");
	m->host_at = u->len;
	if (c->bucket.len && !c->path_style) {
		add_str(u, c->bucket);
		add(u, ".", 1);
	}
	add(u, e.host, e.host_len);
	m->origin_len = u->len;
	if (c->bucket.len && c->path_style) {
		size_t n;
		char *eb = encode(c->bucket, 1, &n);
		add(u, "/", 1);
		add(u, eb, n);
		free(eb);
	}

	/* sigv4_bucket_url writes it, and it is printable with a clean authority */
	size_t bl = (size_t)-1, n;
	CHECK(sigv4_bucket_url(probe, 0, &bl, s) == SIGV4_ENOSPC && bl != (size_t)-1);
	char *bucket_url = xmalloc(bl);
	CHECK(sigv4_bucket_url(bucket_url, bl, &n, s) == SIGV4_OK && n == bl);
	CHECK(same_bytes(bucket_url, bl, u->p, u->len));
	CHECK(is_graphic(bucket_url, bl) && bucket_url[bl - 1] != '/');
	/* the authority holds what an explicit endpoint may (host name characters, [v6], :port) */
	for (size_t i = m->host_at; i < m->origin_len; i++) {
		char ch = bucket_url[i];
		CHECK((is_unreserved((unsigned char)ch) && ch != '~') || ch == ':' || ch == '[' || ch == ']');
	}
	free(bucket_url);
}

/* "/" [bucket "/"] key, decoded; "/bucket" for the bucket itself when path-style */
static struct buf model_path(const struct sigv4_config *c, struct sigv4_str key)
{
	struct buf p = { 0 };
	add(&p, "/", 1);
	if (c->path_style && c->bucket.len) {
		add_str(&p, c->bucket);
		if (key.len)
			add(&p, "/", 1);
	}
	add_str(&p, key);
	return p;
}

/* sigv4.h's reasons to refuse headers: a name not a token, a name twice in any case, a control byte in a value. */
static int headers_valid(const struct sigv4_pair *h, size_t n)
{
	size_t names = 0;   /* the SignedHeaders list: names and ';' between */
	if (n > SIGV4_MAX_CANONICAL_PAIRS)
		return 0;
	for (size_t i = 0; i < n; i++) {
		struct sigv4_str name = h[i].name;
		names += name.len + (i > 0);
		if (name.len == 0 || is_control(h[i].value) || names > SIGV4_MAX_SIGNED_HEADERS)
			return 0;
		for (size_t k = 0; k < name.len; k++)
			if (!is_tchar((unsigned char)name.ptr[k]))
				return 0;
		for (size_t j = 0; j < i; j++)
			if (name.len == h[j].name.len && strncasecmp(name.ptr, h[j].name.ptr, name.len) == 0)
				return 0;
	}
	return 1;
}

/* ... and to refuse a canonical request: those, an empty method or path, too many pairs. */
static int canonical_valid(const struct sigv4_canonical *c)
{
	return c->method.len && c->path.len && c->query_count <= SIGV4_MAX_CANONICAL_PAIRS &&
	       headers_valid(c->headers, c->header_count);
}

/*
 * What sigv4.h says a signer signs, given the header names it adds itself
 * (which the request may not repeat, in any case).
 */
static int request_valid(const struct sigv4_request *r, const char *const *added, size_t n_added)
{
	size_t bytes = 0;
	if (r->method.len < 1 || r->method.len > SIGV4_MAX_METHOD)
		return 0;
	for (size_t i = 0; i < r->method.len; i++)
		if (r->method.ptr[i] < 'A' || r->method.ptr[i] > 'Z')
			return 0;
	if (r->key.len > SIGV4_MAX_KEY || !is_utf8(r->key) || memchr(r->key.ptr, 0, r->key.len))
		return 0;
	if (r->query_count > SIGV4_MAX_PAIRS || r->header_count > SIGV4_MAX_PAIRS)
		return 0;
	for (size_t i = 0; i < r->query_count; i++) {
		struct sigv4_str name = r->query[i].name;
		bytes += name.len + r->query[i].value.len;
		if (name.len >= 6 && strncasecmp(name.ptr, "X-Amz-", 6) == 0)
			return 0;
	}
	if (bytes > SIGV4_MAX_QUERY_BYTES)
		return 0;
	if (!headers_valid(r->headers, r->header_count))
		return 0;
	bytes = 0;
	for (size_t i = 0; i < r->header_count; i++) {
		bytes += r->headers[i].name.len + r->headers[i].value.len;
		for (size_t j = 0; j < n_added; j++)
			if (is_named(r->headers[i].name, added[j]))
				return 0;
	}
	return bytes <= SIGV4_MAX_HEADER_BYTES && r->now >= 0 && r->now <= INT64_C(253402300799);
}

/* ---- one signing's outputs ------------------------------------------------------------ */

/* Each in an exactly sized heap block; h only from sigv4_authorize. */
struct signed_req {
	char *url, *creq;
	size_t url_len, creq_len;
	struct sigv4_auth_headers *h;
};

static void release(struct signed_req *o)
{
	if (o->h)
		sigv4_wipe(o->h, sizeof *o->h);   /* it holds credentials, as callers are told */
	free(o->h);
	free(o->url);
	free(o->creq);
	memset(o, 0, sizeof *o);
}

static int same(const struct signed_req *a, const struct signed_req *b)
{
	if (!a->url || !b->url)
		return !a->url && !b->url;
	if (!same_bytes(a->url, a->url_len, b->url, b->url_len) || !same_bytes(a->creq, a->creq_len, b->creq, b->creq_len))
		return 0;
	if (!a->h)
		return !b->h;
	if (!b->h || a->h->count != b->h->count)
		return 0;
	for (size_t i = 0; i < a->h->count; i++) {
		const struct sigv4_pair *x = &a->h->header[i], *y = &b->h->header[i];
		if (!same_bytes(x->name.ptr, x->name.len, y->name.ptr, y->name.len) ||
		    !same_bytes(x->value.ptr, x->value.len, y->value.ptr, y->value.len))
			return 0;
	}
	return 1;
}

/* One signing call: sigv4_authorize when h is set, else sigv4_presign for expires seconds. */
static int sign_once(struct sigv4_signer *s, const struct sigv4_request *r, uint32_t expires,
                     struct sigv4_auth_headers *h, char *url, size_t cap, size_t *len, char *creq, size_t creq_cap,
                     size_t *creq_len)
{
	return h ? sigv4_authorize(s, r, url, cap, len, h, creq, creq_cap, creq_len)
	         : sigv4_presign(s, r, expires, url, cap, len, creq, creq_cap, creq_len);
}

/* Signed with exactly sized buffers, and one byte short of each; 0 when refused. */
static int sign_sized(struct sigv4_signer *s, const struct sigv4_request *r, uint32_t expires,
                      struct sigv4_auth_headers *h, struct signed_req *o)
{
	size_t len = (size_t)-1, creq_len = (size_t)-1, n, cn;
	memset(o, 0, sizeof *o);
	int st = sign_once(s, r, expires, h, probe, 0, &len, probe, 0, &creq_len);
	if (st == SIGV4_EINVAL)
		return 0;
	CHECK(st == SIGV4_ENOSPC && creq_len != (size_t)-1);

	char *creq = xmalloc(creq_len);
	CHECK(sign_once(s, r, expires, h, probe, 0, &len, creq, creq_len, &cn) == SIGV4_ENOSPC && cn == creq_len);
	CHECK(len != (size_t)-1);
	char *url = xmalloc(len);
	CHECK(sign_once(s, r, expires, h, url, len, &n, creq, creq_len, &cn) == SIGV4_OK);
	CHECK(n == len && cn == creq_len);

	/* one byte short, of either buffer: ENOSPC and the same sizes */
	char *shorter = xmalloc(len - 1);
	n = cn = (size_t)-1;
	CHECK(sign_once(s, r, expires, h, shorter, len - 1, &n, creq, creq_len, &cn) == SIGV4_ENOSPC);
	CHECK(n == len && cn == creq_len);
	free(shorter);
	shorter = xmalloc(creq_len - 1);
	cn = (size_t)-1;
	CHECK(sign_once(s, r, expires, h, url, len, &n, shorter, creq_len - 1, &cn) == SIGV4_ENOSPC && cn == creq_len);
	free(shorter);
	/* leave the canonical request of a successful call in creq; its length need not be asked for */
	CHECK(sign_once(s, r, expires, h, url, len, &n, creq, creq_len, NULL) == SIGV4_OK && n == len);

	*o = (struct signed_req){ url, creq, len, creq_len, h };
	return 1;
}

static int presign(struct sigv4_signer *s, const struct sigv4_request *r, uint32_t expires, struct signed_req *o)
{
	return sign_sized(s, r, expires, NULL, o);
}

static int authorize(struct sigv4_signer *s, const struct sigv4_request *r, struct signed_req *o)
{
	struct sigv4_auth_headers *h = xmalloc(sizeof *h);
	if (sign_sized(s, r, 0, h, o))
		return 1;
	free(h);
	return 0;
}

/* ---- invariants of a signed request ------------------------------------------------------ */

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

/*
 * The URL is the bucket URL, "/" and the encoded key (the bucket URL alone,
 * or the origin and "/", for an empty key), then "?" and the query if there
 * is one, then tail bytes; its path and query are the canonical request's
 * lines 2 and 3. The canonical request has no CR, sorted lowercase header
 * names with trimmed values, their list, and the payload hash last.
 */
static void check_target(const struct model *m, const struct sigv4_request *r, const struct signed_req *o,
                         size_t tail, struct sigv4_str hash)
{
	const char *url = o->url, *creq = o->creq;
	size_t len = o->url_len, creq_len = o->creq_len;
	const struct buf *bu = &m->bucket_url;

	CHECK(len <= SIGV4_MAX_URL && creq_len <= SIGV4_MAX_CANONICAL_REQUEST);
	CHECK(is_graphic(url, len) && memchr(url, '#', len) == NULL);
	CHECK(len >= bu->len + tail && memcmp(url, bu->p, bu->len) == 0);
	size_t end = len - tail;
	const char *q = memchr(url, '?', end);
	size_t path_end = q ? (size_t)(q - url) : end, at = bu->len, ekn;
	if (r->key.len || bu->len == m->origin_len) {
		CHECK(path_end > at && url[at] == '/');
		at++;
	}
	char *ek = encode(r->key, 1, &ekn);
	CHECK(same_bytes(url + at, path_end - at, ek, ekn));
	free(ek);

	CHECK(memchr(creq, '\r', creq_len) == NULL);
	size_t e1, e2, e3;
	find_line(creq, creq_len, 0, &e1);
	CHECK(same_bytes(creq, e1, r->method.ptr, r->method.len));
	size_t p = find_line(creq, creq_len, e1 + 1, &e2);
	size_t qs = find_line(creq, creq_len, e2 + 1, &e3);
	CHECK(same_bytes(url + m->origin_len, path_end - m->origin_len, creq + p, e2 - p));
	if (q) {   /* exactly one '?', and only before a query */
		CHECK(memchr(q + 1, '?', end - path_end - 1) == NULL);
		CHECK(e3 > qs && same_bytes(q + 1, end - path_end - 1, creq + qs, e3 - qs));
		check_sorted_query(creq + qs, e3 - qs);
	} else {
		CHECK(e3 == qs);
	}

	/* header lines: lowercase token names in strictly increasing order, trimmed values */
	struct buf names = { 0 };
	struct sigv4_str prev = { "", 0 };
	size_t i = e3 + 1, line_end;
	for (;;) {
		find_line(creq, creq_len, i, &line_end);
		if (line_end == i)
			break;
		const char *colon = memchr(creq + i, ':', line_end - i);
		CHECK(colon != NULL);
		struct sigv4_str name = { creq + i, (size_t)(colon - creq) - i };
		struct sigv4_str value = { colon + 1, line_end - (size_t)(colon - creq) - 1 };
		CHECK(name.len >= 1);
		for (size_t k = 0; k < name.len; k++)
			CHECK(is_tchar((unsigned char)name.ptr[k]) && !(name.ptr[k] >= 'A' && name.ptr[k] <= 'Z'));
		CHECK(names.len == 0 || name_compare(prev, name) < 0);
		CHECK(value.len == 0 || (value.ptr[0] != ' ' && value.ptr[value.len - 1] != ' '));
		for (size_t k = 1; k < value.len; k++)
			CHECK(!(value.ptr[k] == ' ' && value.ptr[k - 1] == ' '));
		if (names.len)
			add(&names, ";", 1);
		add_str(&names, name);
		prev = name;
		i = line_end + 1;
	}
	/* then their list and the payload hash */
	i = line_end + 1;
	CHECK(creq_len - i == names.len + 1 + hash.len);
	CHECK(memcmp(creq + i, names.p, names.len) == 0 && creq[i + names.len] == '\n');
	CHECK(memcmp(creq + i + names.len + 1, hash.ptr, hash.len) == 0);
	free(names.p);
}

/* Header names lowercased, sorted byte by byte and ';'-joined: SignedHeaders, made here. */
static struct buf signed_list(const struct sigv4_pair *h, size_t n)
{
	struct buf low[SIGV4_MAX_CANONICAL_PAIRS], joined = { 0 };
	CHECK(n <= SIGV4_MAX_CANONICAL_PAIRS);
	for (size_t i = 0; i < n; i++) {
		low[i] = (struct buf){ 0 };
		for (size_t k = 0; k < h[i].name.len; k++) {
			char c = h[i].name.ptr[k];
			c = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
			add(&low[i], &c, 1);
		}
	}
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && name_compare(as_str(&low[j - 1]), as_str(&low[j])) > 0; j--) {
			struct buf t = low[j];
			low[j] = low[j - 1], low[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++) {
		if (i)
			add(&joined, ";", 1);
		add_str(&joined, as_str(&low[i]));
		free(low[i].p);
	}
	return joined;
}

/* The date, the scope (checked against sigv4_scope) and the credential of a signing at now. */
struct when {
	char amz_date[SIGV4_AMZ_DATE_LEN];
	struct buf scope, credential;
};

static void make_when(struct when *w, const struct model *m, const struct sigv4_config *c,
                      const struct sigv4_credentials *k, int64_t now)
{
	size_t n, n2;
	CHECK(sigv4_amz_date(w->amz_date, now) == SIGV4_OK);
	w->scope = (struct buf){ 0 };
	add(&w->scope, w->amz_date, 8);
	add(&w->scope, "/", 1);
	add_str(&w->scope, c->region);
	add(&w->scope, "/", 1);
	add_str(&w->scope, m->service);
	add_z(&w->scope, "/aws4_request");
	CHECK(sigv4_scope(probe, 0, &n, w->amz_date, c->region, m->service) == SIGV4_ENOSPC && n == w->scope.len);
	char *scope = xmalloc(n);
	CHECK(sigv4_scope(scope, n, &n2, w->amz_date, c->region, m->service) == SIGV4_OK && n2 == n);
	CHECK(memcmp(scope, w->scope.p, n) == 0);
	free(scope);
	w->credential = (struct buf){ 0 };
	add_str(&w->credential, k->access_key_id);
	add(&w->credential, "/", 1);
	add_str(&w->credential, as_str(&w->scope));
}

static void free_when(struct when *w)
{
	free(w->scope.p);
	free(w->credential.p);
}

/* sigv4_canonical_request from the given parts, exactly sized, must write creq. */
static void expect_canonical(const struct sigv4_canonical *c, const struct signed_req *o)
{
	size_t n;
	char *creq = xmalloc(o->creq_len);
	CHECK(sigv4_canonical_request(creq, o->creq_len, &n, c) == SIGV4_OK);
	CHECK(n == o->creq_len && memcmp(creq, o->creq, n) == 0);
	free(creq);
}

/*
 * The signature of a canonical request through the public stages (fresh
 * contexts, no cached key), each checked against one made here with
 * OpenSSL's own SHA-256 and HMAC.
 */
static void stage_signature(char sig[SIGV4_HEX_LEN], const struct sigv4_credentials *k, const struct when *w,
                            const struct sigv4_config *c, const struct model *m, struct sigv4_str creq)
{
	struct sigv4_str scope = as_str(&w->scope);
	char creq_hash[SIGV4_HEX_LEN];
	struct buf want = { 0 };
	reference_sha256_hex(creq, creq_hash);
	add_z(&want, "AWS4-HMAC-SHA256\n");
	add(&want, w->amz_date, SIGV4_AMZ_DATE_LEN);
	add(&want, "\n", 1);
	add_str(&want, scope);
	add(&want, "\n", 1);
	add(&want, creq_hash, sizeof creq_hash);
	size_t sts_len, n;
	CHECK(sigv4_string_to_sign(probe, 0, &sts_len, w->amz_date, scope, creq) == SIGV4_ENOSPC);
	CHECK(sts_len == want.len);
	char *sts = xmalloc(sts_len);
	CHECK(sigv4_string_to_sign(sts, sts_len, &n, w->amz_date, scope, creq) == SIGV4_OK && n == sts_len);
	CHECK(memcmp(sts, want.p, n) == 0);

	/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" secret, day), region), service), "aws4_request") */
	uint8_t key[SIGV4_KEY_LEN], a[SIGV4_KEY_LEN], b[SIGV4_KEY_LEN];
	struct buf k_secret = { 0 };
	add_z(&k_secret, "AWS4");
	add_str(&k_secret, k->secret_key);
	reference_hmac(a, k_secret.p, k_secret.len, (struct sigv4_str){ w->amz_date, 8 });
	reference_hmac(b, a, sizeof a, c->region);
	reference_hmac(a, b, sizeof b, m->service);
	reference_hmac(b, a, sizeof a, (struct sigv4_str){ "aws4_request", 12 });
	CHECK(sigv4_derive_key(key, k->secret_key, w->amz_date, c->region, m->service) == SIGV4_OK);
	CHECK(memcmp(key, b, sizeof key) == 0);

	char ref[SIGV4_HEX_LEN];
	CHECK(sigv4_sign(sig, key, (struct sigv4_str){ sts, sts_len }) == SIGV4_OK);
	reference_hmac(a, key, sizeof key, (struct sigv4_str){ sts, sts_len });
	to_hex(ref, a, sizeof a);
	CHECK(memcmp(sig, ref, SIGV4_HEX_LEN) == 0);

	free(k_secret.p);
	free(sts);
	free(want.p);
}

#define PAIR(n, v, l) (struct sigv4_pair){ { (n), sizeof(n) - 1 }, { (v), (l) } }

static struct sigv4_str model_host(const struct model *m)
{
	return (struct sigv4_str){ m->bucket_url.p + m->host_at, m->origin_len - m->host_at };
}

/*
 * The presigned URL again, from decoded parts: the X-Amz-* parameters and the
 * signed header list made here, the canonical request by the public stage,
 * the signature from no cached state.
 */
static void check_presigned(const struct model *m, const struct sigv4_config *c, const struct sigv4_credentials *k,
                            const struct sigv4_request *r, uint32_t expires, const struct signed_req *o,
                            struct sigv4_str hash)
{
	static const char sig_param[] = "&X-Amz-Signature=";
	const size_t tail = sizeof sig_param - 1 + SIGV4_HEX_LEN;
	const char *url = o->url;
	size_t len = o->url_len;

	CHECK(len > tail && memcmp(url + len - tail, sig_param, sizeof sig_param - 1) == 0);
	CHECK(is_lower_hex(url + len - SIGV4_HEX_LEN, SIGV4_HEX_LEN));
	CHECK(memchr(url, '?', len) != NULL);   /* the X-Amz-* parameters are always there */
	check_target(m, r, o, tail, hash);

	struct when w;
	make_when(&w, m, c, k, r->now);
	struct sigv4_pair headers[SIGV4_MAX_PAIRS + 1], query[SIGV4_MAX_PAIRS + 6];
	size_t nh = 0, nq = 0;
	for (size_t i = 0; i < r->header_count; i++)
		headers[nh++] = r->headers[i];
	headers[nh++] = PAIR("Host", model_host(m).ptr, model_host(m).len);
	struct buf sh = signed_list(headers, nh);

	char expires_text[16];
	for (size_t i = 0; i < r->query_count; i++)
		query[nq++] = r->query[i];
	query[nq++] = PAIR("X-Amz-Algorithm", "AWS4-HMAC-SHA256", 16);
	query[nq++] = PAIR("X-Amz-Credential", w.credential.p, w.credential.len);
	query[nq++] = PAIR("X-Amz-Date", w.amz_date, SIGV4_AMZ_DATE_LEN);
	query[nq++] = PAIR("X-Amz-Expires", expires_text,
	                   (size_t)snprintf(expires_text, sizeof expires_text, "%u", (unsigned)expires));
	if (k->session_token.len)
		query[nq++] = PAIR("X-Amz-Security-Token", k->session_token.ptr, k->session_token.len);
	query[nq++] = PAIR("X-Amz-SignedHeaders", sh.p, sh.len);

	struct buf path = model_path(c, r->key);
	struct sigv4_canonical can = {
		.method = r->method, .path = as_str(&path), .query = query, .query_count = nq,
		.headers = headers, .header_count = nh, .payload_hash = hash,
	};
	expect_canonical(&can, o);

	char sig[SIGV4_HEX_LEN];
	stage_signature(sig, k, &w, c, m, (struct sigv4_str){ o->creq, o->creq_len });
	CHECK(memcmp(url + len - SIGV4_HEX_LEN, sig, SIGV4_HEX_LEN) == 0);

	free(path.p);
	free(sh.p);
	free_when(&w);
}

/*
 * The header-signed request again: the signed headers (the request's own,
 * host, x-amz-date, x-amz-content-sha256 when configured, x-amz-security-token
 * with a token) and the Authorization value made here, the canonical request
 * by the public stage, the signature from no cached state.
 */
static void check_authorized(const struct model *m, const struct sigv4_config *c, const struct sigv4_credentials *k,
                             const struct sigv4_request *r, const struct signed_req *o, struct sigv4_str hash)
{
	check_target(m, r, o, 0, hash);

	struct when w;
	make_when(&w, m, c, k, r->now);
	struct sigv4_pair headers[SIGV4_MAX_PAIRS + 4], added[4];
	size_t nh = 0, na = 0;
	added[na++] = PAIR("X-Amz-Date", w.amz_date, SIGV4_AMZ_DATE_LEN);
	if (c->content_sha256)
		added[na++] = PAIR("X-Amz-Content-Sha256", hash.ptr, hash.len);
	if (k->session_token.len)
		added[na++] = PAIR("X-Amz-Security-Token", k->session_token.ptr, k->session_token.len);
	for (size_t i = 0; i < r->header_count; i++)
		headers[nh++] = r->headers[i];
	headers[nh++] = PAIR("host", model_host(m).ptr, model_host(m).len);
	for (size_t i = 0; i < na; i++)
		headers[nh++] = added[i];
	struct buf sh = signed_list(headers, nh);

	/* sigv4_signed_headers writes the same list */
	size_t n, n2;
	CHECK(sigv4_signed_headers(probe, 0, &n, headers, nh) == SIGV4_ENOSPC && n == sh.len);
	char *list = xmalloc(n);
	CHECK(sigv4_signed_headers(list, n, &n2, headers, nh) == SIGV4_OK && n2 == n && memcmp(list, sh.p, n) == 0);
	free(list);

	struct buf path = model_path(c, r->key);
	struct sigv4_canonical can = {
		.method = r->method, .path = as_str(&path), .query = r->query, .query_count = r->query_count,
		.headers = headers, .header_count = nh, .payload_hash = hash,
	};
	expect_canonical(&can, o);

	char sig[SIGV4_HEX_LEN];
	stage_signature(sig, k, &w, c, m, (struct sigv4_str){ o->creq, o->creq_len });
	struct buf auth = { 0 };
	add_z(&auth, "AWS4-HMAC-SHA256 Credential=");
	add_str(&auth, as_str(&w.credential));
	add_z(&auth, ", SignedHeaders=");
	add_str(&auth, as_str(&sh));
	add_z(&auth, ", Signature=");
	add(&auth, sig, sizeof sig);
	CHECK(auth.len <= SIGV4_MAX_AUTHORIZATION);
	added[na++] = PAIR("Authorization", auth.p, auth.len);

	/* X-Amz-Date, [X-Amz-Content-Sha256], [X-Amz-Security-Token], Authorization, in that order */
	const struct sigv4_auth_headers *h = o->h;
	CHECK(h->count == na);
	for (size_t i = 0; i < na; i++) {
		CHECK(same_bytes(h->header[i].name.ptr, h->header[i].name.len, added[i].name.ptr, added[i].name.len));
		CHECK(same_bytes(h->header[i].value.ptr, h->header[i].value.len, added[i].value.ptr, added[i].value.len));
	}
	struct sigv4_str a = h->header[na - 1].value;
	CHECK(a.len > SIGV4_HEX_LEN && is_lower_hex(a.ptr + a.len - SIGV4_HEX_LEN, SIGV4_HEX_LEN));

	free(auth.p);
	free(path.p);
	free(sh.p);
	free_when(&w);
}

/* Both ways of signing r, without checks: for comparisons. */
static void sign(struct sigv4_signer *s, const struct sigv4_request *r, uint32_t expires,
                 struct signed_req *p, struct signed_req *a)
{
	presign(s, r, expires, p);
	authorize(s, r, a);
}

/* Both ways of signing r, with every check; 0 when both refused it. */
static int sign_checked(struct sigv4_signer *s, const struct model *m, const struct sigv4_config *c,
                        const struct sigv4_credentials *k, const struct sigv4_request *r, uint32_t expires,
                        struct signed_req *p, struct signed_req *a)
{
	int p_ok = presign(s, r, expires, p), a_ok = authorize(s, r, a);
	if (verbose) {
		fprintf(stderr, "presign: %s %.*s\n", p_ok ? "ok" : "refused", p_ok ? (int)p->url_len : 0, p_ok ? p->url : "");
		fprintf(stderr, "authorize: %s %.*s\n", a_ok ? "ok" : "refused", a_ok ? (int)a->url_len : 0, a_ok ? a->url : "");
		for (size_t i = 0; a_ok && i < a->h->count; i++)
			fprintf(stderr, "  %.*s: %.*s\n", (int)a->h->header[i].name.len, a->h->header[i].name.ptr,
			        (int)a->h->header[i].value.len, a->h->header[i].value.ptr);
	}
	/* exactly the requests sigv4.h describes are signed; presigning adds only Host */
	const char *added[4] = { "host", "x-amz-date" };
	size_t n_added = 2;
	if (c->content_sha256)
		added[n_added++] = "x-amz-content-sha256";
	if (k->session_token.len)
		added[n_added++] = "x-amz-security-token";
	CHECK(p_ok == (request_valid(r, added, 1) && expires >= 1 && expires <= SIGV4_MAX_EXPIRES));
	CHECK(a_ok == request_valid(r, added, n_added));
	if (!p_ok && !a_ok)
		return 0;

	char hex[SIGV4_HEX_LEN];
	struct sigv4_str hash = { "UNSIGNED-PAYLOAD", 16 };
	if (r->payload) {
		reference_sha256_hex(*r->payload, hex);
		hash = (struct sigv4_str){ hex, sizeof hex };
	}
	if (p_ok)
		check_presigned(m, c, k, r, expires, p, hash);
	if (a_ok)
		check_authorized(m, c, k, r, a, hash);
	return 1;
}

static struct sigv4_str reversed(struct sigv4_str s)
{
	char *d = xmalloc(s.len);
	for (size_t i = 0; i < s.len; i++)
		d[i] = s.ptr[s.len - 1 - i];
	return (struct sigv4_str){ d, s.len };
}

/* A valid set unlike k: another key id, the secret reversed, a token if k has none and none if it has one. */
static struct sigv4_credentials second_credentials(const struct sigv4_credentials *k)
{
	static const char akid[] = "ASIAROTATEDEXAMPLE", token[] = "FwoGZXIvYXdzEROTATED/+=token";
	return (struct sigv4_credentials){
		dup_str(akid, sizeof akid - 1), reversed(k->secret_key),
		k->session_token.len ? dup_str(probe, 0) : dup_str(token, sizeof token - 1),
	};
}

static void free_credentials(struct sigv4_credentials *k)
{
	free((void *)k->access_key_id.ptr);
	free((void *)k->secret_key.ptr);
	free((void *)k->session_token.ptr);
}

/* Sets refused for their secret or token after a valid key id: the old set must stay whole. */
static void refuse_credentials(struct sigv4_signer *s, const struct sigv4_credentials *k)
{
	struct sigv4_credentials next = second_credentials(k), bad;
	const char *why = "unset";

	bad = next, bad.session_token = dup_str("not a token", 11);
	CHECK(sigv4_signer_set_credentials(s, &bad, &why) == SIGV4_EINVAL);
	CHECK(why != NULL && strncmp(why, "session_token:", 14) == 0);
	free((void *)bad.session_token.ptr);

	bad = next, bad.secret_key = dup_str("\n", 1);
	why = "unset";
	CHECK(sigv4_signer_set_credentials(s, &bad, &why) == SIGV4_EINVAL);
	CHECK(why != NULL && strncmp(why, "secret_key:", 11) == 0);
	free((void *)bad.secret_key.ptr);
	free_credentials(&next);
}

/*
 * Replaced credentials sign as a signer made with them does, at once (the
 * day's key from the old secret is cached for r's day) and at r2.
 */
static void rotate(struct sigv4_signer *s, const struct model *m, const struct sigv4_config *c,
                   const struct sigv4_credentials *k, const struct sigv4_request *r,
                   const struct sigv4_request *r2, uint32_t expires)
{
	struct sigv4_credentials next = second_credentials(k);
	const char *why = "unset";
	CHECK(sigv4_signer_set_credentials(s, &next, &why) == SIGV4_OK && why == NULL);
	struct sigv4_signer *fresh = new_signer(c, &next);
	CHECK(fresh != NULL);

	const struct sigv4_request *when[2] = { r, r2 };
	for (size_t i = 0; i < 2 && when[i]; i++) {
		struct signed_req p, a, fp, fa;
		/* a token now may clash with a header of the request: sign_checked knows */
		sign_checked(s, m, c, &next, when[i], expires, &p, &a);
		sign(fresh, when[i], expires, &fp, &fa);
		CHECK(same(&p, &fp) && same(&a, &fa));
		release(&p), release(&a), release(&fp), release(&fa);
	}
	free_signer(fresh);
	free_credentials(&next);
}

struct input {
	struct sigv4_str f[N_FIELDS];
	struct sigv4_pair headers[MAX_LIST], query[MAX_LIST];
	size_t n_headers, n_query;
};

static void fuzz_signer(const struct input *in)
{
	const struct sigv4_str *f = in->f;
	int opt = f[F_OPTIONS].len ? (unsigned char)f[F_OPTIONS].ptr[0] : 0;
	struct sigv4_config cfg = {
		.region = f[F_REGION], .service = f[F_SERVICE], .endpoint = f[F_ENDPOINT], .bucket = f[F_BUCKET],
		.path_style = opt & OPT_PATH_STYLE, .content_sha256 = (opt & OPT_CONTENT_SHA256) != 0,
	};
	struct sigv4_credentials k = { f[F_AKID], f[F_SECRET], f[F_TOKEN] };
	struct sigv4_signer *s = new_signer(&cfg, &k);
	CHECK((s != NULL) == (config_valid(&cfg) && credentials_valid(&k)));
	if (!s)
		return;
	struct model m;
	make_model(&m, &cfg, s);

	struct sigv4_request r = {
		.method = f[F_METHOD], .key = f[F_KEY], .query = in->query, .query_count = in->n_query,
		.headers = in->headers, .header_count = in->n_headers,
		.payload = (opt & OPT_PAYLOAD) ? &f[F_BODY] : NULL, .now = read_int(f[F_NOW]),
	};
	uint32_t expires = (uint32_t)read_int(f[F_EXPIRES]);
	struct signed_req p1, a1, p2, a2, p, a;
	if (sign_checked(s, &m, &cfg, &k, &r, expires, &p1, &a1)) {
		/* now is valid: no overflow */
		struct sigv4_request r2 = r;
		r2.now = r.now + ((opt & OPT_NEXT_DAY) ? 86400 : 1);
		int later = sign_checked(s, &m, &cfg, &k, &r2, expires, &p2, &a2);

		/* at the first time again, after another second or day and refused credentials: the same */
		if (opt & OPT_ROTATE)
			refuse_credentials(s, &k);
		sign(s, &r, expires, &p, &a);
		CHECK(same(&p, &p1) && same(&a, &a1));
		if (opt & OPT_ROTATE)
			rotate(s, &m, &cfg, &k, &r, later ? &r2 : NULL, expires);
		release(&p), release(&a), release(&p2), release(&a2);
	}
	release(&p1), release(&a1);
	free(m.bucket_url.p);
	free_signer(s);
}

/* ---- the stages with arbitrary parts ------------------------------------------------------- */

static void fuzz_canonical_request(const struct input *in)
{
	struct sigv4_canonical c = {
		.method = in->f[F_METHOD], .path = in->f[F_KEY], .query = in->query, .query_count = in->n_query,
		.headers = in->headers, .header_count = in->n_headers, .payload_hash = in->f[F_BODY],
	};
	size_t len = (size_t)-1, n, sh_len = (size_t)-1;
	int sh_st = sigv4_signed_headers(probe, 0, &sh_len, in->headers, in->n_headers);
	int st = sigv4_canonical_request(probe, 0, &len, &c);
	CHECK(sh_st == (!headers_valid(in->headers, in->n_headers) ? SIGV4_EINVAL : in->n_headers ? SIGV4_ENOSPC : SIGV4_OK));
	CHECK(st == (canonical_valid(&c) ? SIGV4_ENOSPC : SIGV4_EINVAL));
	if (st == SIGV4_EINVAL)
		return;
	char *out = xmalloc(len);
	CHECK(sigv4_canonical_request(out, len, &n, &c) == SIGV4_OK && n == len);
	char *shorter = xmalloc(len - 1);
	n = (size_t)-1;
	CHECK(sigv4_canonical_request(shorter, len - 1, &n, &c) == SIGV4_ENOSPC && n == len);
	free(shorter);

	/* it ends in "\n" signed headers "\n" payload hash */
	char *sh = xmalloc(sh_len);
	CHECK(sigv4_signed_headers(sh, sh_len, &n, in->headers, in->n_headers) == SIGV4_OK && n == sh_len);
	if (sh_len) {
		shorter = xmalloc(sh_len - 1);
		n = (size_t)-1;
		CHECK(sigv4_signed_headers(shorter, sh_len - 1, &n, in->headers, in->n_headers) == SIGV4_ENOSPC &&
		      n == sh_len);
		free(shorter);
	}
	struct buf want = signed_list(in->headers, in->n_headers);
	CHECK(same_bytes(sh, sh_len, want.p, want.len));
	size_t ph = c.payload_hash.len;
	CHECK(len >= sh_len + ph + 2);
	CHECK(out[len - ph - sh_len - 2] == '\n' && out[len - ph - 1] == '\n');
	CHECK(memcmp(out + len - ph - sh_len - 1, sh, sh_len) == 0 && memcmp(out + len - ph, c.payload_hash.ptr, ph) == 0);
	free(want.p);
	free(sh);
	free(out);
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
	for (size_t i = 0; i < N_FIELDS; i++)
		in.f[i] = i < n_fields ? fields[i] : (struct sigv4_str){ probe, 0 };
	for (size_t i = N_FIELDS; i + 1 < n_fields; i += 2) {
		struct sigv4_str name = fields[i], value = fields[i + 1];
		if (name.len && name.ptr[0] == '?') {
			name.ptr++, name.len--;
			if (in.n_query < MAX_LIST)
				in.query[in.n_query++] = (struct sigv4_pair){ name, value };
		} else if (in.n_headers < MAX_LIST) {
			in.headers[in.n_headers++] = (struct sigv4_pair){ name, value };
		}
	}
	for (size_t i = 0; i < N_FIELDS && i < n_fields; i++)
		fuzz_uri_encode(fields[i], i == F_KEY);
	fuzz_endpoint(in.f[F_ENDPOINT]);
	fuzz_amz_date(read_int(in.f[F_NOW]));
	fuzz_payload_hash(in.f[F_BODY]);

	fuzz_canonical_request(&in);
	fuzz_signer(&in);

	for (size_t i = 0; i < n_fields; i++)
		free((void *)fields[i].ptr);
	return 0;
}
