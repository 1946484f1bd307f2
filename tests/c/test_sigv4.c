/*
 * test_sigv4.c - known-answer and negative tests of the signing core.
 *
 *   S3 presign vectors (s3-presign-vectors.json): every entry through the
 *     signer, canonical request, string to sign, signature and URL byte for byte.
 *   AWS SigV4 suite (aws-c-auth/v4, query-* and header-* files): key
 *     derivation, string to sign and signature of every case through the
 *     public stages; every case whose path S3 would sign the same way (see
 *     suite_skips below) through sigv4_presign and sigv4_authorize, the
 *     canonical requests, signatures and Authorization values byte for byte.
 *   Negative cases: empty and oversized fields, NUL and invalid UTF-8, buffers
 *     one byte too small, expiry bounds, malformed endpoints and headers;
 *     bucket-level requests, inputs at every limit, credential rotation, wiping.
 */
#include <stdlib.h>
#include <strings.h>           /* strncasecmp(3) */

#include "sigv4.h"
#include "unit.h"

struct suite_case {
	const char *id;
	struct sigv4_str access_key_id, secret_key, session_token, region, service;
	int64_t now;
	uint32_t expires;
	struct sigv4_str method, path;
	const struct sigv4_pair *query;
	size_t query_count;
	const struct sigv4_pair *headers;
	size_t header_count;
	int sign_body;                     /* header mode sends X-Amz-Content-Sha256 */
	struct sigv4_str body;
	struct sigv4_str canonical_request, string_to_sign, signature;                  /* query-* */
	struct sigv4_str header_canonical_request, header_string_to_sign, header_signature, authorization;
};

struct s3_case {
	const char *id;
	struct sigv4_str access_key_id, secret_key, session_token, region, service, endpoint, bucket;
	int path_style;
	struct sigv4_str method, key;
	int64_t now;
	uint32_t expires;
	const struct sigv4_pair *headers;
	size_t header_count;
	const struct sigv4_pair *query;
	size_t query_count;
	struct sigv4_str canonical_request, string_to_sign, signature, url;
};

#include "vectors.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define S(lit) ((struct sigv4_str){ (lit), sizeof(lit) - 1 })

/*
 * The suite signs for a generic service: it normalises the path (RFC 3986
 * dot segments, repeated slashes). S3 does not, so for these cases only the
 * canonical request differs; the shared stages (key derivation, string to
 * sign, signature) are still checked.
 */
static const struct { const char *id, *why; } suite_skips[] = {
	{ "get-relative-normalized", "normalises /example/.. to /" },
	{ "get-relative-relative-normalized", "normalises /example1/example2/../.. to /" },
	{ "get-slash-dot-slash-normalized", "normalises /./ to /" },
	{ "get-slash-normalized", "normalises // to /" },
	{ "get-slash-pointless-dot-normalized", "normalises /./example to /example" },
	{ "get-slashes-normalized", "normalises //example// to /example/" },
};

static const char *suite_skip_reason(const char *id)
{
	for (size_t i = 0; i < COUNT(suite_skips); i++)
		if (strcmp(suite_skips[i].id, id) == 0)
			return suite_skips[i].why;
	return NULL;
}

static char url[SIGV4_MAX_URL], creq[SIGV4_MAX_CANONICAL_REQUEST];

/* A signer in malloc'd memory, as a C caller would keep one. */
static struct sigv4_signer *new_signer(const struct sigv4_config *c, const struct sigv4_credentials *k,
                                       const char **why, int *status)
{
	struct sigv4_signer *s = malloc(sigv4_signer_size());
	const char *ignored;
	if (!s)
		abort();
	*status = sigv4_signer_init(s, c, k, why ? why : &ignored);
	return s;
}

static void free_signer(struct sigv4_signer *s)
{
	sigv4_signer_wipe(s);
	free(s);
}

/* The public stages, from the expected canonical request on. */
static void check_stages(const char *id, struct sigv4_str secret, int64_t now, struct sigv4_str region,
                         struct sigv4_str service, struct sigv4_str want_creq, struct sigv4_str want_sts,
                         struct sigv4_str want_sig)
{
	char date[SIGV4_AMZ_DATE_LEN], scope[SIGV4_MAX_SCOPE], sts[512], sig[SIGV4_HEX_LEN];
	uint8_t key[SIGV4_KEY_LEN];
	size_t scope_len, sts_len;

	CHECK(sigv4_amz_date(date, now) == SIGV4_OK);
	CHECK(sigv4_scope(scope, sizeof scope, &scope_len, date, region, service) == SIGV4_OK);
	CHECK(sigv4_string_to_sign(sts, sizeof sts, &sts_len, date, (struct sigv4_str){ scope, scope_len },
	                           want_creq) == SIGV4_OK);
	CHECK_BYTES(id, sts, sts_len, want_sts.ptr, want_sts.len);
	CHECK(sigv4_derive_key(key, secret, date, region, service) == SIGV4_OK);
	CHECK(sigv4_sign(sig, key, want_sts) == SIGV4_OK);
	CHECK_BYTES(id, sig, sizeof sig, want_sig.ptr, want_sig.len);
}

/* A suite case as a signer (its Host as the endpoint, no bucket) and a request without the Host header. */
static struct sigv4_signer *suite_signer(const struct suite_case *t, int content_sha256)
{
	struct sigv4_str host = { NULL, 0 };
	char endpoint[300];
	for (size_t i = 0; i < t->header_count; i++)
		if (t->headers[i].name.len == 4 && strncasecmp(t->headers[i].name.ptr, "host", 4) == 0)
			host = t->headers[i].value;
	CHECK(host.len > 0 && host.len < 200);
	snprintf(endpoint, sizeof endpoint, "https://%.*s", (int)host.len, host.ptr);
	struct sigv4_config c = { .region = t->region, .service = t->service,
	                          .endpoint = { endpoint, strlen(endpoint) }, .content_sha256 = content_sha256 };
	struct sigv4_credentials k = { t->access_key_id, t->secret_key, t->session_token };
	int status;
	struct sigv4_signer *s = new_signer(&c, &k, NULL, &status);
	CHECK(status == SIGV4_OK);
	return s;
}

static struct sigv4_request suite_request(const struct suite_case *t, struct sigv4_pair *headers)
{
	size_t n = 0;
	for (size_t i = 0; i < t->header_count; i++)
		if (!(t->headers[i].name.len == 4 && strncasecmp(t->headers[i].name.ptr, "host", 4) == 0))
			headers[n++] = t->headers[i];
	struct sigv4_request r = {
		.method = t->method, .key = { t->path.ptr + 1, t->path.len - 1 },   /* the signer writes the '/' */
		.query = t->query, .query_count = t->query_count, .headers = headers, .header_count = n,
		.payload = &t->body, .now = t->now,
	};
	return r;
}

/* Every case of the suite through sigv4_presign and sigv4_authorize, byte for byte. */
static int test_suite(void)
{
	int skipped = 0;
	for (size_t i = 0; i < COUNT(suite_cases); i++) {
		const struct suite_case *t = &suite_cases[i];
		struct sigv4_pair headers[SIGV4_MAX_PAIRS];
		struct sigv4_auth_headers h;
		size_t url_len, creq_len;

		check_stages(t->id, t->secret_key, t->now, t->region, t->service, t->canonical_request,
		             t->string_to_sign, t->signature);
		check_stages(t->id, t->secret_key, t->now, t->region, t->service, t->header_canonical_request,
		             t->header_string_to_sign, t->header_signature);
		if (suite_skip_reason(t->id)) {
			skipped++;
			continue;
		}
		struct sigv4_request r = suite_request(t, headers);

		struct sigv4_signer *s = suite_signer(t, 0);
		CHECK(sigv4_presign(s, &r, t->expires, url, sizeof url, &url_len, creq, sizeof creq, &creq_len) == SIGV4_OK);
		CHECK_BYTES(t->id, creq, creq_len, t->canonical_request.ptr, t->canonical_request.len);
		CHECK(url_len > SIGV4_HEX_LEN);
		CHECK_BYTES(t->id, url + url_len - SIGV4_HEX_LEN, SIGV4_HEX_LEN, t->signature.ptr, t->signature.len);
		free_signer(s);

		s = suite_signer(t, t->sign_body);
		CHECK(sigv4_authorize(s, &r, url, sizeof url, &url_len, &h, creq, sizeof creq, &creq_len) == SIGV4_OK);
		CHECK_BYTES(t->id, creq, creq_len, t->header_canonical_request.ptr, t->header_canonical_request.len);
		CHECK(h.count >= 2 && strcmp("Authorization", h.header[h.count - 1].name.ptr) == 0);
		CHECK_BYTES(t->id, h.header[h.count - 1].value.ptr, h.header[h.count - 1].value.len,
		            t->authorization.ptr, t->authorization.len);
		CHECK(h.count == 2u + (t->sign_body != 0) + (t->session_token.len != 0));
		free_signer(s);
	}
	printf("aws sigv4 suite: %zu cases, %zu through the signer in both modes, %d skipped (path normalisation)\n",
	       COUNT(suite_cases), COUNT(suite_cases) - (size_t)skipped, skipped);
	return skipped;
}

static void test_s3_vectors(void)
{
	for (size_t i = 0; i < COUNT(s3_cases); i++) {
		const struct s3_case *t = &s3_cases[i];
		size_t url_len = 0, creq_len = 0;
		const char *why = NULL;
		int status;
		struct sigv4_config c = { t->region, t->service, t->endpoint, t->bucket, t->path_style, 1 };
		struct sigv4_credentials k = { t->access_key_id, t->secret_key, t->session_token };
		struct sigv4_signer *s = new_signer(&c, &k, &why, &status);
		if (status != SIGV4_OK)
			fprintf(stderr, "%s: %s\n", t->id, why);
		CHECK(status == SIGV4_OK);
		struct sigv4_request r = { .method = t->method, .key = t->key, .query = t->query,
		                           .query_count = t->query_count, .headers = t->headers,
		                           .header_count = t->header_count, .now = t->now };
		CHECK(sigv4_presign(s, &r, t->expires, url, sizeof url, &url_len, creq, sizeof creq, &creq_len) == SIGV4_OK);
		CHECK_BYTES(t->id, creq, creq_len, t->canonical_request.ptr, t->canonical_request.len);
		CHECK_BYTES(t->id, url, url_len, t->url.ptr, t->url.len);
		check_stages(t->id, t->secret_key, t->now, t->region, t->service, t->canonical_request,
		             t->string_to_sign, t->signature);
		free_signer(s);
	}
	printf("s3 presign vectors: %zu cases\n", COUNT(s3_cases));
}

/* ---- negative and edge cases ------------------------------------------- */

#define AKID S("AKIAIOSFODNN7EXAMPLE")
#define SECRET S("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
#define NOW INT64_C(1705320000)   /* 2024-01-15T12:00:00Z */

static struct sigv4_config base_config(void)
{
	struct sigv4_config c = { .region = S("eu-west-2"), .bucket = S("the-best-bucket"), .path_style = 1,
	                          .content_sha256 = 1 };
	return c;
}

static struct sigv4_credentials base_credentials(void)
{
	struct sigv4_credentials k = { AKID, SECRET, S("") };
	return k;
}

/* One signer reused by the checks below; init with a config, report the status. */
static struct sigv4_signer *signer;

static int init_with(struct sigv4_config c, struct sigv4_credentials k, const char **why)
{
	*why = NULL;
	sigv4_signer_wipe(signer);
	return sigv4_signer_init(signer, &c, &k, why);
}

static int refused(struct sigv4_config c, struct sigv4_credentials k, const char *field)
{
	const char *why;
	return init_with(c, k, &why) == SIGV4_EINVAL && why && strncmp(why, field, strlen(field)) == 0 &&
	       why[strlen(field)] == ':';
}

static void test_config(void)
{
	struct sigv4_config c;
	struct sigv4_credentials k = base_credentials();
	const char *why;
	char out[512];
	size_t len;

	CHECK(init_with(base_config(), k, &why) == SIGV4_OK);
	CHECK(sigv4_bucket_url(out, sizeof out, &len, signer) == SIGV4_OK);
	CHECK_BYTES("default endpoint", out, len, "https://s3.eu-west-2.amazonaws.com/the-best-bucket", 50);

	c = base_config(), c.region = S("");
	CHECK(refused(c, k, "region"));
	c = base_config(), c.region = S("eu/west");
	CHECK(refused(c, k, "region"));
	c = base_config(), c.bucket = S("a/b");
	CHECK(refused(c, k, "bucket"));
	c = base_config(), c.bucket = S("the_best_bucket"), c.path_style = 0;
	CHECK(refused(c, k, "bucket"));
	c = base_config(), c.region = S("x@evil.example?");   /* found by fuzz_presign: would become the host */
	CHECK(refused(c, k, "region"));
	c = base_config(), c.region = S("x@evil.example?"), c.endpoint = S("https://minio.example.org");
	CHECK(init_with(c, k, &why) == SIGV4_OK);   /* with an endpoint the region is only signed */
	c = base_config(), c.service = S("s3.evil.example");
	CHECK(refused(c, k, "service"));

	k = base_credentials(), k.access_key_id = S("");
	CHECK(refused(base_config(), k, "access_key_id"));
	k = base_credentials(), k.secret_key = S("");
	CHECK(refused(base_config(), k, "secret_key"));
	k = base_credentials(), k.secret_key = S("secret\n");
	CHECK(refused(base_config(), k, "secret_key"));
	k = base_credentials(), k.secret_key = (struct sigv4_str){ "sec\0ret", 7 };
	CHECK(refused(base_config(), k, "secret_key"));
	k = base_credentials(), k.session_token = S("has space");
	CHECK(refused(base_config(), k, "session_token"));
	k = base_credentials();

	static const char *bad_endpoints[] = {
		"s3.example.org", "ftp://s3.example.org", "https://", "https://user@host", "https://host/path",
		"https://host?x", "https://host#f", "https://host:", "https://host:0", "https://host:65536",
		"https://host:12a", "https://[::1", "https://[]", "https:// host", "https://host:123456",
	};
	for (size_t i = 0; i < COUNT(bad_endpoints); i++) {
		c = base_config(), c.endpoint = (struct sigv4_str){ bad_endpoints[i], strlen(bad_endpoints[i]) };
		CHECK(refused(c, k, "endpoint"));
	}
	static const struct { const char *endpoint; int path_style; const char *bucket_url; } good[] = {
		{ "https://minio.example.org:9000", 1, "https://minio.example.org:9000/the-best-bucket" },
		{ "https://minio.example.org:443/", 1, "https://minio.example.org/the-best-bucket" },
		{ "http://127.0.0.1:80", 1, "http://127.0.0.1/the-best-bucket" },
		{ "http://[::1]:8080", 1, "http://[::1]:8080/the-best-bucket" },
		{ "https://s3.eu-west-2.amazonaws.com", 0, "https://the-best-bucket.s3.eu-west-2.amazonaws.com" },
		{ "http://localhost:7480", 0, "http://the-best-bucket.localhost:7480" },
		{ "http://minio_1:9000", 1, "http://minio_1:9000/the-best-bucket" },
	};
	for (size_t i = 0; i < COUNT(good); i++) {
		c = base_config(), c.path_style = good[i].path_style;
		c.endpoint = (struct sigv4_str){ good[i].endpoint, strlen(good[i].endpoint) };
		CHECK(init_with(c, k, &why) == SIGV4_OK);
		CHECK(sigv4_bucket_url(out, sizeof out, &len, signer) == SIGV4_OK);
		CHECK_BYTES(good[i].endpoint, out, len, good[i].bucket_url, strlen(good[i].bucket_url));
	}
	/* no bucket label on an IP address */
	c = base_config(), c.path_style = 0, c.endpoint = S("http://[::1]:8080");
	CHECK(refused(c, k, "bucket"));
	c = base_config(), c.path_style = 0, c.endpoint = S("http://127.0.0.1:8080");
	CHECK(refused(c, k, "bucket"));
	/* path-style buckets are encoded in the URL; a signer without a bucket addresses the endpoint */
	c = base_config(), c.bucket = S("bucket with space");
	CHECK(init_with(c, k, &why) == SIGV4_OK);
	CHECK(sigv4_bucket_url(out, sizeof out, &len, signer) == SIGV4_OK);
	CHECK_BYTES("encoded bucket", out, len, "https://s3.eu-west-2.amazonaws.com/bucket%20with%20space", 56);
	c = base_config(), c.bucket = S(""), c.service = S("sts"), c.region = S("us-east-1");
	CHECK(init_with(c, k, &why) == SIGV4_OK);
	CHECK(sigv4_bucket_url(out, sizeof out, &len, signer) == SIGV4_OK);
	CHECK_BYTES("AWS's STS", out, len, "https://sts.us-east-1.amazonaws.com", 35);
}

static void test_parse_endpoint(void)
{
	struct sigv4_endpoint e;
	const char *why;
	CHECK(sigv4_parse_endpoint(&e, S("https://s3.example.org:443/"), &why) == SIGV4_OK && why == NULL);
	CHECK(e.https && !e.ip_literal);
	CHECK_BYTES("host", e.host, e.host_len, "s3.example.org", 14);
	CHECK(sigv4_parse_endpoint(&e, S("http://10.0.0.1:9000"), &why) == SIGV4_OK);
	CHECK(!e.https && e.ip_literal);
	CHECK_BYTES("host", e.host, e.host_len, "10.0.0.1:9000", 13);
	CHECK(sigv4_parse_endpoint(&e, S("http://[fe80::1]"), &why) == SIGV4_OK && e.ip_literal);
	CHECK(sigv4_parse_endpoint(&e, S("http://10.0.0.1.example.org"), &why) == SIGV4_OK && !e.ip_literal);
	CHECK(sigv4_parse_endpoint(&e, S("https://host/path"), &why) == SIGV4_EINVAL && strncmp(why, "endpoint:", 9) == 0);
}

/* Presign one PUT of key with the base configuration. */
static int presign_key(struct sigv4_str key, uint32_t expires, char *out, size_t cap, size_t *len)
{
	const char *why;
	struct sigv4_pair h[] = { { S("content-length"), S("5") } };
	struct sigv4_request r = { .method = S("PUT"), .key = key, .headers = h, .header_count = 1, .now = NOW };
	CHECK(init_with(base_config(), base_credentials(), &why) == SIGV4_OK);
	return sigv4_presign(signer, &r, expires, out, cap, len, creq, sizeof creq, NULL);
}

static void test_request_checks(void)
{
	static const struct sigv4_str bad_keys[] = {
		{ "a\0b", 3 },
		{ "\xc3", 1 },                   /* truncated sequence */
		{ "\xc0\xaf", 2 },               /* overlong '/' */
		{ "\xe0\x80\xaf", 3 },           /* overlong '/' */
		{ "\xed\xa0\x80", 3 },           /* UTF-16 surrogate */
		{ "\xf4\x90\x80\x80", 4 },       /* past U+10FFFF */
		{ "\xff", 1 },
		{ "ok\x80", 3 },                 /* stray continuation byte */
	};
	size_t len;
	for (size_t i = 0; i < COUNT(bad_keys); i++)
		CHECK(presign_key(bad_keys[i], 300, url, sizeof url, &len) == SIGV4_EINVAL);

	static char long_key[SIGV4_MAX_KEY + 1];
	memset(long_key, 'k', sizeof long_key);
	CHECK(presign_key((struct sigv4_str){ long_key, SIGV4_MAX_KEY }, 300, url, sizeof url, &len) == SIGV4_OK);
	CHECK(presign_key((struct sigv4_str){ long_key, SIGV4_MAX_KEY + 1 }, 300, url, sizeof url, &len) ==
	      SIGV4_EINVAL);

	CHECK(presign_key(S("a.txt"), 0, url, sizeof url, &len) == SIGV4_EINVAL);
	CHECK(presign_key(S("a.txt"), 1, url, sizeof url, &len) == SIGV4_OK);
	CHECK(presign_key(S("a.txt"), SIGV4_MAX_EXPIRES, url, sizeof url, &len) == SIGV4_OK);
	CHECK(presign_key(S("a.txt"), SIGV4_MAX_EXPIRES + 1, url, sizeof url, &len) == SIGV4_EINVAL);

	/* a URL buffer one byte short reports the size it needed and writes nothing past it */
	size_t need;
	CHECK(presign_key(S("a b.txt"), 300, url, sizeof url, &need) == SIGV4_OK);
	memset(url, '#', need);
	CHECK(presign_key(S("a b.txt"), 300, url, need - 1, &len) == SIGV4_ENOSPC && len == need);
	CHECK(url[need - 1] == '#');
	CHECK(presign_key(S("a b.txt"), 300, url, need, &len) == SIGV4_OK && len == need);

	/* likewise for the canonical request buffer */
	size_t creq_need, creq_len;
	struct sigv4_request r = { .method = S("GET"), .key = S("k"), .now = NOW };
	CHECK(sigv4_presign(signer, &r, 60, url, sizeof url, &len, creq, sizeof creq, &creq_need) == SIGV4_OK);
	CHECK(sigv4_presign(signer, &r, 60, url, sizeof url, &len, creq, creq_need - 1, &creq_len) == SIGV4_ENOSPC &&
	      creq_len == creq_need);

	/* the signer owns Host and the X-Amz-* parameters; header values carry no controls */
	struct sigv4_pair host[] = { { S("Host"), S("evil.example") } };
	struct sigv4_pair amz[] = { { S("x-amz-signature"), S("0") } };
	struct sigv4_pair crlf[] = { { S("content-type"), S("text/plain\r\nx: y") } };
	struct sigv4_pair dup[] = { { S("content-type"), S("a/b") }, { S("Content-Type"), S("a/b") } };
	struct sigv4_pair bad_name[] = { { S("content type"), S("a/b") } };
	struct sigv4_pair date[] = { { S("X-Amz-Date"), S("20240115T120000Z") } };
	static struct sigv4_pair many[SIGV4_MAX_PAIRS + 1];
	static char big[SIGV4_MAX_QUERY_BYTES + 1];
	for (size_t i = 0; i < COUNT(many); i++)
		many[i] = (struct sigv4_pair){ S("x-a"), S("1") };
	memset(big, 'v', sizeof big);
	struct sigv4_pair too_big[] = { { S("p"), { big, sizeof big - 1 } } };
	struct sigv4_request bad[] = {
		{ .method = S("GET"), .key = S("k"), .headers = host, .header_count = 1, .now = NOW },
		{ .method = S("GET"), .key = S("k"), .query = amz, .query_count = 1, .now = NOW },
		{ .method = S("PUT"), .key = S("k"), .headers = crlf, .header_count = 1, .now = NOW },
		{ .method = S("PUT"), .key = S("k"), .headers = dup, .header_count = 2, .now = NOW },
		{ .method = S("PUT"), .key = S("k"), .headers = bad_name, .header_count = 1, .now = NOW },
		{ .method = S("PUT"), .key = S("k"), .query = many, .query_count = COUNT(many), .now = NOW },
		{ .method = S("PUT"), .key = S("k"), .query = too_big, .query_count = 1, .now = NOW },
		{ .method = S(""), .key = S("k"), .now = NOW },
		{ .method = S("put"), .key = S("k"), .now = NOW },
		{ .method = S("GET"), .key = S("k"), .now = -1 },
		{ .method = S("GET"), .key = S("k"), .now = INT64_C(253402300800) },
	};
	for (size_t i = 0; i < COUNT(bad); i++)
		CHECK(sigv4_presign(signer, &bad[i], 60, url, sizeof url, &len, creq, sizeof creq, NULL) == SIGV4_EINVAL);
	struct sigv4_auth_headers h;
	for (size_t i = 0; i < COUNT(bad); i++)
		CHECK(sigv4_authorize(signer, &bad[i], url, sizeof url, &len, &h, creq, sizeof creq, NULL) == SIGV4_EINVAL);
	r = (struct sigv4_request){ .method = S("GET"), .key = S("k"), .headers = date, .header_count = 1, .now = NOW };
	CHECK(sigv4_authorize(signer, &r, url, sizeof url, &len, &h, creq, sizeof creq, NULL) == SIGV4_EINVAL);
	CHECK(sigv4_presign(signer, &r, 60, url, sizeof url, &len, creq, sizeof creq, NULL) == SIGV4_OK);
	r.query = too_big, r.query_count = 1, too_big[0].value.len--;   /* at the limit */
	CHECK(sigv4_presign(signer, &r, 60, url, sizeof url, &len, creq, sizeof creq, NULL) == SIGV4_OK);
}

/* Requests on the bucket itself and signed extra headers, as the setup command sends them. */
static void test_bucket_requests(void)
{
	const char *why;
	size_t len, creq_len;
	struct sigv4_auth_headers h;
	struct sigv4_str body = S("<LifecycleConfiguration/>");
	struct sigv4_pair lifecycle[] = { { S("lifecycle"), S("") } };
	struct sigv4_pair md5[] = { { S("Content-MD5"), S("1B2M2Y8AsgTpgAmY7PhCfg==") } };
	struct sigv4_request r = { .method = S("PUT"), .query = lifecycle, .query_count = 1, .headers = md5,
	                           .header_count = 1, .payload = &body, .now = NOW };
	struct sigv4_config c = base_config();

	CHECK(init_with(c, base_credentials(), &why) == SIGV4_OK);
	CHECK(sigv4_authorize(signer, &r, url, sizeof url, &len, &h, creq, sizeof creq, &creq_len) == SIGV4_OK);
	CHECK_BYTES("path-style bucket request", url, len, "https://s3.eu-west-2.amazonaws.com/the-best-bucket?lifecycle=",
	            61);
	CHECK(strncmp(creq, "PUT\n/the-best-bucket\nlifecycle=\ncontent-md5:1B2M2Y8AsgTpgAmY7PhCfg==\nhost:s3.eu-west-2."
	              "amazonaws.com\nx-amz-content-sha256:", 114) == 0);
	CHECK(h.count == 3 && strcmp(h.header[1].name.ptr, "X-Amz-Content-Sha256") == 0);
	CHECK(contains(creq, creq_len, "content-md5;host;x-amz-content-sha256;x-amz-date\n", 49));

	c.path_style = 0;
	CHECK(init_with(c, base_credentials(), &why) == SIGV4_OK);
	CHECK(sigv4_authorize(signer, &r, url, sizeof url, &len, &h, creq, sizeof creq, &creq_len) == SIGV4_OK);
	CHECK_BYTES("virtual-hosted bucket request", url, len,
	            "https://the-best-bucket.s3.eu-west-2.amazonaws.com/?lifecycle=", 62);

	/* no payload given: S3's unsigned payload, in the header too */
	r.payload = NULL;
	CHECK(sigv4_authorize(signer, &r, url, sizeof url, &len, &h, creq, sizeof creq, &creq_len) == SIGV4_OK);
	CHECK_BYTES("unsigned payload", h.header[1].value.ptr, h.header[1].value.len, "UNSIGNED-PAYLOAD", 16);
	CHECK(creq_len > 16 && memcmp(creq + creq_len - 17, "\nUNSIGNED-PAYLOAD", 17) == 0);
}

/* Inputs at every limit at once fit the buffers whose sizes sigv4.h derives from the limits. */
static void test_limits(void)
{
	static char token[SIGV4_MAX_SESSION_TOKEN], key[SIGV4_MAX_KEY], bucket[SIGV4_MAX_BUCKET], akid[SIGV4_MAX_ACCESS_KEY_ID];
	static char region[SIGV4_MAX_REGION], service[SIGV4_MAX_SERVICE], host[SIGV4_MAX_HOST + 8];
	static char query_bytes[SIGV4_MAX_QUERY_BYTES], header_bytes[SIGV4_MAX_HEADER_BYTES];
	struct sigv4_pair query[SIGV4_MAX_PAIRS], headers[SIGV4_MAX_PAIRS];
	const size_t part = SIGV4_MAX_QUERY_BYTES / SIGV4_MAX_PAIRS / 2;
	const char *why;
	size_t len, creq_len;

	memset(token, '%', sizeof token);                 /* each byte encodes as three */
	for (size_t i = 0; i + 1 < sizeof key; i += 2)
		memcpy(key + i, "\xc3\xa9", 2);               /* é: two bytes, each encoded */
	for (size_t i = 0; i + 1 < sizeof bucket; i += 2)
		memcpy(bucket + i, "\xc3\xa9", 2);
	bucket[sizeof bucket - 1] = '+';
	memset(akid, 'A', sizeof akid);
	memset(region, 'r', sizeof region);
	memset(service, 's', sizeof service);
	memcpy(host, "https://", 8);
	memset(host + 8, 'h', SIGV4_MAX_HOST - 6);
	memcpy(host + 8 + SIGV4_MAX_HOST - 6, ":65535", 6);
	memset(query_bytes, '=', sizeof query_bytes);
	memset(header_bytes, 'h', sizeof header_bytes);
	for (size_t i = 0; i < SIGV4_MAX_PAIRS; i++) {
		query[i] = (struct sigv4_pair){ { query_bytes + 2 * i * part, part }, { query_bytes + (2 * i + 1) * part, part } };
		header_bytes[2 * i * part] = (char)('a' + i);   /* distinct names */
		headers[i] = (struct sigv4_pair){ { header_bytes + 2 * i * part, part }, { header_bytes + (2 * i + 1) * part, part } };
	}
	struct sigv4_config c = { { region, sizeof region }, { service, sizeof service }, { host, sizeof host },
	                          { bucket, sizeof bucket }, 1, 1 };
	struct sigv4_credentials k = { { akid, sizeof akid }, SECRET, { token, sizeof token } };
	CHECK(init_with(c, k, &why) == SIGV4_OK);
	struct sigv4_request r = { .method = S("ABCDEFGHIJKLMNOP"), .key = { key, sizeof key }, .query = query,
	                           .query_count = SIGV4_MAX_PAIRS, .headers = headers, .header_count = SIGV4_MAX_PAIRS,
	                           .now = NOW };
	CHECK(sigv4_presign(signer, &r, SIGV4_MAX_EXPIRES, url, sizeof url, &len, creq, sizeof creq, &creq_len) ==
	      SIGV4_OK);
	printf("limits: presigned URL %zu of %zu bytes, canonical request %zu of %zu\n", len, (size_t)SIGV4_MAX_URL,
	       creq_len, (size_t)SIGV4_MAX_CANONICAL_REQUEST);
	struct sigv4_auth_headers h;
	CHECK(sigv4_authorize(signer, &r, url, sizeof url, &len, &h, creq, sizeof creq, &creq_len) == SIGV4_OK);
	CHECK(h.header[h.count - 1].value.len <= SIGV4_MAX_AUTHORIZATION);
}

static void test_encoding(void)
{
	static const struct { struct sigv4_str in; int keep_slash; const char *out; } cases[] = {
		{ { "AZaz09-._~", 10 }, 0, "AZaz09-._~" },
		{ { "a b/c", 5 }, 1, "a%20b/c" },
		{ { "a b/c", 5 }, 0, "a%20b%2Fc" },
		{ { "!*'()+,;=:@$&?#[]%", 18 }, 1, "%21%2A%27%28%29%2B%2C%3B%3D%3A%40%24%26%3F%23%5B%5D%25" },
		{ { "tr\xc3\xa8s", 5 }, 1, "tr%C3%A8s" },
		{ { "\xf0\x9f\x98\x80", 4 }, 1, "%F0%9F%98%80" },
		{ { "\x01\x7f", 2 }, 1, "%01%7F" },
		{ { "", 0 }, 1, "" },
	};
	char out[128];
	size_t len;
	for (size_t i = 0; i < COUNT(cases); i++) {
		CHECK(sigv4_uri_encode(out, sizeof out, &len, cases[i].in, cases[i].keep_slash) == SIGV4_OK);
		CHECK_BYTES("uri_encode", out, len, cases[i].out, strlen(cases[i].out));
	}
	CHECK(sigv4_uri_encode(out, 2, &len, S("a b"), 1) == SIGV4_ENOSPC && len == 5);

	static const struct { int64_t t; const char *date; } dates[] = {
		{ 0, "19700101T000000Z" },
		{ 951782400, "20000229T000000Z" },
		{ 1705320000, "20240115T120000Z" },
		{ 4107542399, "21000228T235959Z" },
		{ INT64_C(253402300799), "99991231T235959Z" },
	};
	char date[SIGV4_AMZ_DATE_LEN];
	for (size_t i = 0; i < COUNT(dates); i++) {
		CHECK(sigv4_amz_date(date, dates[i].t) == SIGV4_OK);
		CHECK_BYTES("amz_date", date, sizeof date, dates[i].date, SIGV4_AMZ_DATE_LEN);
	}
	static const struct { uint64_t v; const char *text; } decimals[] = {
		{ 0, "0" }, { 9, "9" }, { 10, "10" }, { 5368709120, "5368709120" },
		{ UINT64_MAX, "18446744073709551615" },
	};
	char decimal[SIGV4_DECIMAL_LEN];
	for (size_t i = 0; i < COUNT(decimals); i++) {
		size_t n = sigv4_decimal(decimal, decimals[i].v);
		CHECK_BYTES("decimal", decimal, n, decimals[i].text, strlen(decimals[i].text));
	}
	char hash[SIGV4_HEX_LEN];
	CHECK(sigv4_payload_hash(hash, S("")) == SIGV4_OK);
	CHECK_BYTES("empty body", hash, sizeof hash, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 64);
}

/* Sign r with a fresh signer of config c and credentials k, into out. */
static void fresh_presign(struct sigv4_config c, struct sigv4_credentials k, const struct sigv4_request *r,
                          char *out, size_t cap, size_t *len)
{
	int status;
	struct sigv4_signer *fresh = new_signer(&c, &k, NULL, &status);
	CHECK(status == SIGV4_OK);
	CHECK(sigv4_presign(fresh, r, 60, out, cap, len, creq, sizeof creq, NULL) == SIGV4_OK);
	free_signer(fresh);
}

/* The day's key must follow the clock across midnight UTC. */
static void test_key_cache(void)
{
	static char a[2048], b[2048];
	const char *why;
	size_t la, lb;
	CHECK(init_with(base_config(), base_credentials(), &why) == SIGV4_OK);
	for (int64_t now = NOW; now < NOW + 3 * 86400; now += 43200) {
		struct sigv4_request r = { .method = S("GET"), .key = S("k"), .now = now };
		CHECK(sigv4_presign(signer, &r, 60, a, sizeof a, &la, creq, sizeof creq, NULL) == SIGV4_OK);
		fresh_presign(base_config(), base_credentials(), &r, b, sizeof b, &lb);
		CHECK_BYTES("day key", a, la, b, lb);
	}
}

/* New credentials take effect at once, whole; refused ones change nothing. */
static void test_rotation(void)
{
	static char a[4096], b[4096], before[4096];
	const char *why;
	size_t la, lb, lbefore;
	struct sigv4_request r = { .method = S("PUT"), .key = S("k"), .now = NOW };
	struct sigv4_credentials next = { S("ASIAROTATEDEXAMPLE"), S("another secret"), S("a/session+token=") };
	struct sigv4_credentials broken = { S("ASIABROKEN"), S("a secret"), S("a token with spaces") };

	CHECK(init_with(base_config(), base_credentials(), &why) == SIGV4_OK);
	CHECK(sigv4_presign(signer, &r, 60, before, sizeof before, &lbefore, creq, sizeof creq, NULL) == SIGV4_OK);
	CHECK(sigv4_signer_set_credentials(signer, &next, &why) == SIGV4_OK && why == NULL);
	CHECK(sigv4_presign(signer, &r, 60, a, sizeof a, &la, creq, sizeof creq, NULL) == SIGV4_OK);
	fresh_presign(base_config(), next, &r, b, sizeof b, &lb);
	CHECK_BYTES("rotated on the same day", a, la, b, lb);
	CHECK(contains(a, la, "X-Amz-Security-Token=a%2Fsession%2Btoken%3D", 43));

	CHECK(sigv4_signer_set_credentials(signer, &broken, &why) == SIGV4_EINVAL && strncmp(why, "session_token:", 14) == 0);
	CHECK(sigv4_presign(signer, &r, 60, b, sizeof b, &lb, creq, sizeof creq, NULL) == SIGV4_OK);
	CHECK_BYTES("a refused rotation keeps the last set", a, la, b, lb);

	CHECK(sigv4_signer_set_credentials(signer, &(struct sigv4_credentials){ AKID, SECRET, S("") }, &why) == SIGV4_OK);
	CHECK(sigv4_presign(signer, &r, 60, a, sizeof a, &la, creq, sizeof creq, NULL) == SIGV4_OK);
	CHECK_BYTES("back to the first set", a, la, before, lbefore);
	CHECK(!contains(signer, sigv4_signer_size(), "another secret", 14));   /* the old secret is gone */
	CHECK(!contains(signer, sigv4_signer_size(), "a/session+token=", 16));
}

static int all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i])
			return 0;
	return 1;
}

static void test_wipe(void)
{
	const char *why;
	size_t len;
	struct sigv4_request r = { .method = S("GET"), .key = S("k"), .now = NOW };
	struct sigv4_credentials k = base_credentials();
	k.session_token = S("TOKEN-OF-THE-DAY");
	CHECK(init_with(base_config(), k, &why) == SIGV4_OK);
	CHECK(sigv4_presign(signer, &r, 60, url, sizeof url, &len, creq, sizeof creq, NULL) == SIGV4_OK);
	CHECK(contains(signer, sigv4_signer_size(), SECRET.ptr, SECRET.len));
	sigv4_signer_wipe(signer);
	CHECK(all_zero(signer, sigv4_signer_size()));

	/* a refused configuration leaves no copy of the secret behind */
	struct sigv4_config c = base_config();
	c.endpoint = S("nonsense");
	CHECK(init_with(c, k, &why) == SIGV4_EINVAL);
	CHECK(all_zero(signer, sigv4_signer_size()));
}

int main(void)
{
	signer = calloc(1, sigv4_signer_size());
	if (!signer)
		return 1;
	test_suite();
	test_s3_vectors();
	test_config();
	test_parse_endpoint();
	test_request_checks();
	test_bucket_requests();
	test_limits();
	test_encoding();
	test_key_cache();
	test_rotation();
	test_wipe();
	free_signer(signer);
	return UNIT_SUMMARY("test_sigv4");
}
