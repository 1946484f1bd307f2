/*
 * signer.c - a signer's endpoint, configuration and credentials, and the
 * day's key: what both ways of signing (presign.c, authorize.c) start from.
 */
#include <strings.h>           /* strncasecmp(3) */

#include "sigv4_internal.h"

size_t sigv4_signer_size(void)
{
	return sizeof(struct sigv4_signer);
}

/* ---- endpoints ------------------------------------------------------------- */

static int is_host_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

/* what a label of AWS's own host names may hold: the region and the service go there */
static int is_label_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static int has_prefix(struct sigv4_str s, const char *prefix)
{
	size_t n = strlen(prefix);
	return s.len >= n && memcmp(s.ptr, prefix, n) == 0;
}

/* a.b.c.d in decimal: a host that takes no bucket label */
static int is_ipv4(struct sigv4_str h)
{
	size_t dots = 0;
	for (size_t i = 0; i < h.len; i++) {
		if (h.ptr[i] == '.')
			dots++;
		else if (h.ptr[i] < '0' || h.ptr[i] > '9')
			return 0;
	}
	return dots == 3;
}

/*
** A field that was refused: its name and why, and both as the one message
** "field: reason" that *why points at. All static.
*/
struct problem {
	const char *field, *reason, *message;
};
#define PROBLEM(field, reason) { field, reason, field ": " reason }

static const struct problem
	BAD_ENDPOINT = PROBLEM("endpoint", "must be http(s)://host[:port] with no path, query or user name"),
	BAD_ACCESS_KEY_ID = PROBLEM("access_key_id", "must be 1.." SIGV4_TEXT(SIGV4_MAX_ACCESS_KEY_ID)
	                            " printable ASCII characters, no space or '/'"),
	BAD_SECRET_KEY = PROBLEM("secret_key", "must be 1.." SIGV4_TEXT(SIGV4_MAX_SECRET_KEY)
	                         " bytes without control characters"),
	BAD_SESSION_TOKEN = PROBLEM("session_token", "must be at most " SIGV4_TEXT(SIGV4_MAX_SESSION_TOKEN)
	                            " printable ASCII characters, no space"),
	BAD_REGION = PROBLEM("region", "must be 1.." SIGV4_TEXT(SIGV4_MAX_REGION)
	                     " printable ASCII characters, no space or '/'"),
	BAD_SERVICE = PROBLEM("service", "must be 1.." SIGV4_TEXT(SIGV4_MAX_SERVICE)
	                      " printable ASCII characters, no space or '/'"),
	BAD_BUCKET = PROBLEM("bucket", "must be at most " SIGV4_TEXT(SIGV4_MAX_BUCKET)
	                     " bytes of UTF-8 without '/' or control characters"),
	REGION_NOT_LABEL = PROBLEM("region", "must be letters, digits and '-' when no endpoint is set"),
	SERVICE_NOT_LABEL = PROBLEM("service", "must be letters, digits and '-' when no endpoint is set"),
	REGION_TOO_LONG = PROBLEM("region", "too long for a host name"),
	BUCKET_NOT_HOST = PROBLEM("bucket", "not usable in a host name (lowercase letters, digits, '-', '.'; "
	                          "not on an IP address): use path style");

/*
** "host", "host:port", "[v6]" or "[v6]:port" after the scheme, and at most a
** "/" after that. The port that is the scheme's default is left out of the
** host, because clients leave it out of their Host header.
*/
int sigv4_parse_endpoint(struct sigv4_endpoint *e, struct sigv4_str a, const char **why)
{
	const char *default_port;
	size_t i = 0;

	memset(e, 0, sizeof *e);
	if (why)
		*why = BAD_ENDPOINT.message;
	if (has_prefix(a, "https://"))
		e->https = 1, default_port = "443", a.ptr += 8, a.len -= 8;
	else if (has_prefix(a, "http://"))
		default_port = "80", a.ptr += 7, a.len -= 7;
	else
		return SIGV4_EINVAL;
	if (a.len && a.ptr[a.len - 1] == '/')
		a.len--;   /* "https://host/" is common; any other path is not supported */

	if (a.len && a.ptr[0] == '[') {
		const char *close = memchr(a.ptr, ']', a.len);
		if (!close || close == a.ptr + 1)
			return SIGV4_EINVAL;
		for (const char *p = a.ptr + 1; p < close; p++)
			if (!(*p == ':' || *p == '.' || (*p >= '0' && *p <= '9') || ((*p | 32) >= 'a' && (*p | 32) <= 'f')))
				return SIGV4_EINVAL;
		i = (size_t)(close - a.ptr) + 1;
		e->ip_literal = 1;
	} else {
		while (i < a.len && is_host_char((unsigned char)a.ptr[i]))
			i++;
		if (i == 0)
			return SIGV4_EINVAL;
		e->ip_literal = is_ipv4(str(a.ptr, i));
	}
	size_t host_end = i;
	if (i < a.len) {
		if (a.ptr[i] != ':' || a.len - i < 2 || a.len - i > 6 || a.ptr[i + 1] == '0')
			return SIGV4_EINVAL;   /* no leading zero: clients send the port as a number, so ":080" never matches */
		unsigned port = 0;
		for (size_t j = i + 1; j < a.len; j++) {
			if (a.ptr[j] < '0' || a.ptr[j] > '9')
				return SIGV4_EINVAL;
			port = port * 10 + (unsigned)(a.ptr[j] - '0');
		}
		if (port == 0 || port > 65535)
			return SIGV4_EINVAL;
		if (!(a.len - i - 1 == strlen(default_port) && memcmp(a.ptr + i + 1, default_port, a.len - i - 1) == 0))
			host_end = a.len;
	}
	if (host_end > SIGV4_MAX_HOST)
		return SIGV4_EINVAL;
	memcpy(e->host, a.ptr, host_end);
	e->host_len = host_end;
	if (why)
		*why = NULL;
	return SIGV4_OK;
}

/* AWS's own endpoint of a service in a region: https://service.region.amazonaws.com */
static int default_endpoint(struct sigv4_endpoint *e, struct sigv4_str service, struct sigv4_str region)
{
	struct out o = { e->host, sizeof e->host, 0 };
	memset(e, 0, sizeof *e);
	e->https = 1;
	put_str(&o, service);
	put_char(&o, '.');
	put_str(&o, region);
	put_str(&o, LIT(".amazonaws.com"));
	return finish(&o, &e->host_len);
}

/* ---- configuration ------------------------------------------------------------- */

/* Bucket names in a host must be DNS labels; S3's own naming rules are the caller's policy. */
static int is_dns_safe(struct sigv4_str b)
{
	for (size_t i = 0; i < b.len; i++) {
		unsigned char c = (unsigned char)b.ptr[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return 0;
	}
	return b.len > 0 && b.len <= 63;
}

static void copy(char *dst, size_t *dst_len, struct sigv4_str src)
{
	if (src.len)
		memcpy(dst, src.ptr, src.len);
	*dst_len = src.len;
}

/* NULL when the credentials may be used, else what is refused. */
static const struct problem *credentials_problem(const struct sigv4_credentials *k)
{
	if (!is_printable(k->access_key_id, SIGV4_MAX_ACCESS_KEY_ID, 1))
		return &BAD_ACCESS_KEY_ID;
	if (k->secret_key.len == 0 || k->secret_key.len > SIGV4_MAX_SECRET_KEY || has_control(k->secret_key))
		return &BAD_SECRET_KEY;
	if (k->session_token.len && !is_printable(k->session_token, SIGV4_MAX_SESSION_TOKEN, 0))
		return &BAD_SESSION_TOKEN;
	return NULL;
}

/* NULL when the configuration may be used, else what is refused; *e is its endpoint. */
static const struct problem *config_problem(const struct sigv4_config *c, struct sigv4_str service,
                                            struct sigv4_endpoint *e)
{
	if (!is_printable(c->region, SIGV4_MAX_REGION, 1))
		return &BAD_REGION;
	if (!is_printable(service, SIGV4_MAX_SERVICE, 1))
		return &BAD_SERVICE;
	if (c->bucket.len > SIGV4_MAX_BUCKET || (c->bucket.len && memchr(c->bucket.ptr, '/', c->bucket.len)) ||
	    has_control(c->bucket) || !valid_utf8(c->bucket))
		return &BAD_BUCKET;
	if (c->endpoint.len) {
		if (sigv4_parse_endpoint(e, c->endpoint, NULL) != SIGV4_OK)
			return &BAD_ENDPOINT;
	} else {
		/* the region and service become part of the host name: nothing else may slip in */
		for (size_t i = 0; i < c->region.len; i++)
			if (!is_label_char((unsigned char)c->region.ptr[i]))
				return &REGION_NOT_LABEL;
		for (size_t i = 0; i < service.len; i++)
			if (!is_label_char((unsigned char)service.ptr[i]))
				return &SERVICE_NOT_LABEL;
		if (default_endpoint(e, service, c->region) != SIGV4_OK)
			return &REGION_TOO_LONG;
	}
	if (c->bucket.len && !c->path_style && (!is_dns_safe(c->bucket) || e->ip_literal))
		return &BUCKET_NOT_HOST;
	return NULL;
}

/* What sigv4_signer_init and sigv4_check refuse first: the configuration's, then the credentials'. */
static const struct problem *first_problem(const struct sigv4_config *c, const struct sigv4_credentials *k,
                                           struct sigv4_endpoint *e)
{
	const struct problem *p = config_problem(c, c->service.len ? c->service : LIT("s3"), e);
	return p || !k ? p : credentials_problem(k);
}

int sigv4_check(const struct sigv4_config *c, const struct sigv4_credentials *k, const char **field,
                const char **reason)
{
	struct sigv4_endpoint e;
	const struct problem *p = first_problem(c, k, &e);
	*field = p ? p->field : NULL;
	*reason = p ? p->reason : NULL;
	return p ? SIGV4_EINVAL : SIGV4_OK;
}

static void set_credentials(struct sigv4_signer *s, const struct sigv4_credentials *k)
{
	sigv4_wipe(s->access_key_id, sizeof s->access_key_id);
	sigv4_wipe(s->secret_key, sizeof s->secret_key);
	sigv4_wipe(s->session_token, sizeof s->session_token);
	copy(s->access_key_id, &s->access_key_id_len, k->access_key_id);
	copy(s->secret_key, &s->secret_key_len, k->secret_key);
	copy(s->session_token, &s->session_token_len, k->session_token);
	/* the day's key came from the old secret */
	hmac_close(&s->key);
	memset(s->key_day, 0, sizeof s->key_day);
}

int sigv4_signer_init(struct sigv4_signer *s, const struct sigv4_config *c, const struct sigv4_credentials *k,
                      const char **why)
{
	struct sigv4_str service = c->service.len ? c->service : LIT("s3");
	struct sigv4_endpoint e;
	const struct problem *problem = first_problem(c, k, &e);

	memset(s, 0, sizeof *s);
	if (why)
		*why = problem ? problem->message : NULL;
	if (problem)
		return SIGV4_EINVAL;
	if (sha256_open(&s->sha) != SIGV4_OK)
		return SIGV4_ECRYPTO;

	copy(s->region, &s->region_len, c->region);
	copy(s->service, &s->service_len, service);
	s->content_sha256 = c->content_sha256 != 0;

	struct out origin = { s->origin, sizeof s->origin, 0 };
	put_str(&origin, e.https ? LIT("https://") : LIT("http://"));
	s->host_at = origin.len;
	if (c->bucket.len && !c->path_style) {
		put_str(&origin, c->bucket);
		put_char(&origin, '.');
	}
	put(&origin, e.host, e.host_len);
	s->origin_len = origin.len;   /* fits: SIGV4_MAX_ORIGIN and the limits checked above */

	struct out head = { s->path_head, sizeof s->path_head, 0 };
	put_char(&head, '/');
	if (c->bucket.len && c->path_style) {
		put_str(&head, c->bucket);
		put_char(&head, '/');
	}
	s->path_head_len = head.len;

	set_credentials(s, k);
	return SIGV4_OK;
}

void sigv4_signer_wipe(struct sigv4_signer *s)
{
	hmac_close(&s->key);
	sha256_close(&s->sha);
	sigv4_wipe(s, sizeof *s);
}

int sigv4_signer_set_credentials(struct sigv4_signer *s, const struct sigv4_credentials *k, const char **why)
{
	const struct problem *problem = credentials_problem(k);
	if (why)
		*why = problem ? problem->message : NULL;
	if (problem)
		return SIGV4_EINVAL;
	set_credentials(s, k);
	return SIGV4_OK;
}

int sigv4_bucket_url(char *out, size_t cap, size_t *len, const struct sigv4_signer *s)
{
	struct out o = { out, cap, 0 };
	put(&o, s->origin, s->origin_len);
	if (s->path_head_len > 1)   /* "/bucket", without the final '/' */
		put_encoded(&o, str(s->path_head, s->path_head_len - 1), KEEP_PATH);
	return finish(&o, len);
}

/* ---- what both ways of signing share ---------------------------------------------- */

static int valid_method(struct sigv4_str m)
{
	if (m.len == 0 || m.len > SIGV4_MAX_METHOD)
		return 0;
	for (size_t i = 0; i < m.len; i++)
		if (m.ptr[i] < 'A' || m.ptr[i] > 'Z')
			return 0;
	return 1;
}

/* n pairs of at most max bytes in all, none of whose names starts with X-Amz- if so told */
static int valid_pairs(const struct sigv4_pair *v, size_t n, size_t max, int no_auth_names)
{
	size_t bytes = 0;
	if (n > SIGV4_MAX_PAIRS)
		return 0;
	for (size_t i = 0; i < n; i++) {
		struct sigv4_str name = v[i].name;
		bytes += name.len + v[i].value.len;
		if (no_auth_names && name.len >= sizeof AUTH_PREFIX - 1 &&
		    strncasecmp(name.ptr, AUTH_PREFIX, sizeof AUTH_PREFIX - 1) == 0)
			return 0;   /* the signer owns the authentication parameters */
	}
	return bytes <= max;
}

static int request_path(const struct sigv4_signer *s, const struct sigv4_request *r, char path[SIGV4_MAX_PATH],
                        size_t *len)
{
	if (!valid_method(r->method) || r->key.len > SIGV4_MAX_KEY || !valid_utf8(r->key) ||
	    !valid_pairs(r->query, r->query_count, SIGV4_MAX_QUERY_BYTES, 1) ||
	    !valid_pairs(r->headers, r->header_count, SIGV4_MAX_HEADER_BYTES, 0))
		return SIGV4_EINVAL;
	size_t head = s->path_head_len;
	if (r->key.len == 0 && head > 1)
		head--;   /* the bucket itself: "/bucket" */
	memcpy(path, s->path_head, head);
	if (r->key.len)
		memcpy(path + head, r->key.ptr, r->key.len);
	*len = head + r->key.len;
	return SIGV4_OK;
}

/* The day's key and scope for amz_date, derived if the day or the credentials changed. */
static int signer_day(struct sigv4_signer *s, const char amz_date[SIGV4_AMZ_DATE_LEN])
{
	uint8_t k[SIGV4_KEY_LEN];
	struct sigv4_str region = str(s->region, s->region_len), service = str(s->service, s->service_len);
	int status;

	if (s->key_day[0] && memcmp(s->key_day, amz_date, 8) == 0)
		return SIGV4_OK;
	memset(s->key_day, 0, sizeof s->key_day);
	if ((status = derive_key(&s->sha, k, str(s->secret_key, s->secret_key_len), amz_date, region, service)) ==
	    SIGV4_OK && (status = hmac_key(&s->key, &s->sha, k, sizeof k)) == SIGV4_OK)
		status = sigv4_scope(s->scope, sizeof s->scope, &s->scope_len, amz_date, region, service);
	sigv4_wipe(k, sizeof k);
	if (status == SIGV4_OK)
		memcpy(s->key_day, amz_date, 8);
	return status;
}

int begin_request(struct sigv4_signer *s, const struct sigv4_request *r, char path[SIGV4_MAX_PATH],
                  size_t *path_len, char amz_date[SIGV4_AMZ_DATE_LEN], char hash[SIGV4_HEX_LEN], size_t *hash_len)
{
	int status = request_path(s, r, path, path_len);
	if (status != SIGV4_OK)
		return status;
	if (sigv4_amz_date(amz_date, r->now) != SIGV4_OK)
		return SIGV4_EINVAL;
	if ((status = signer_day(s, amz_date)) != SIGV4_OK)
		return status;
	if (!r->payload) {
		memcpy(hash, UNSIGNED_PAYLOAD, sizeof UNSIGNED_PAYLOAD - 1);
		*hash_len = sizeof UNSIGNED_PAYLOAD - 1;
		return SIGV4_OK;
	}
	*hash_len = SIGV4_HEX_LEN;
	return payload_hash(&s->sha, hash, *r->payload);
}

/* The signer owns Host and its extra headers: another of the same name is refused as a duplicate. */
int signed_headers(const struct sigv4_signer *s, const struct sigv4_request *r, const struct sigv4_pair *extra,
                   size_t n_extra, struct sigv4_pair *out, size_t *n, struct sorted_headers *sorted)
{
	size_t k = r->header_count;
	if (k)
		memcpy(out, r->headers, k * sizeof *out);
	out[k++] = (struct sigv4_pair){ LIT("host"), signer_host(s) };
	for (size_t i = 0; i < n_extra; i++)
		out[k++] = extra[i];
	*n = k;
	return sort_headers(sorted, out, k);
}

void put_credential(struct out *o, const struct sigv4_signer *s)
{
	put(o, s->access_key_id, s->access_key_id_len);
	put_char(o, '/');
	put(o, s->scope, s->scope_len);
}

int sign_canonical(struct sigv4_signer *s, const struct sigv4_canonical *c, const struct sorted_headers *h,
                   const char amz_date[SIGV4_AMZ_DATE_LEN], char *creq, size_t creq_cap, size_t *creq_len,
                   char sig[SIGV4_HEX_LEN])
{
	char sts[MAX_STRING_TO_SIGN];
	struct out o = { sts, sizeof sts, 0 }, cr = { creq, creq_cap, 0 };
	int status = canonical_request(&cr, c, h);
	*creq_len = cr.len;
	if (status == SIGV4_OK &&
	    (status = string_to_sign(&s->sha, &o, amz_date, str(s->scope, s->scope_len), str(creq, cr.len))) ==
	    SIGV4_OK)
		status = signature(sig, &s->key, &s->sha, str(sts, o.len));
	return status;
}

void put_url(struct out *o, const struct sigv4_signer *s, struct sigv4_str creq)
{
	struct canonical_lines lines;
	canonical_lines(&lines, creq);
	put(o, s->origin, s->origin_len);
	put_str(o, lines.path);
	if (lines.query.len) {
		put_char(o, '?');
		put_str(o, lines.query);
	}
}
