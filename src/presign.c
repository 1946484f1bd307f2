/*
 * presign.c - presigned URLs (query authentication).
 *
 * The authentication goes into the query as X-Amz-* parameters (for S3 with
 * an unsigned payload), and the URL is the canonical request's path and query with
 * the signature added: what was signed is, byte for byte, what is sent.
 */
#include "sigv4_internal.h"

/* X-Amz-Algorithm, -Credential, -Date, -Expires, -Security-Token and -SignedHeaders */
#define AUTH_QUERY_PARAMS 6

int sigv4_presign(struct sigv4_signer *s, const struct sigv4_request *r, uint32_t expires,
                  char *url, size_t cap, size_t *len, char *creq, size_t creq_cap, size_t *creq_len)
{
	char path[SIGV4_MAX_PATH], amz_date[SIGV4_AMZ_DATE_LEN], expires_text[SIGV4_DECIMAL_LEN];
	char credential[SIGV4_MAX_CREDENTIAL], sig[SIGV4_HEX_LEN];
	char hash[SIGV4_HEX_LEN];
	struct sigv4_pair headers[SIGV4_MAX_PAIRS + 1], query[SIGV4_MAX_PAIRS + AUTH_QUERY_PARAMS];
	size_t path_len, hash_len, n_headers, n_query = r->query_count, n;
	struct sorted_headers sorted;
	int status;

	if (expires < 1 || expires > SIGV4_MAX_EXPIRES)
		return SIGV4_EINVAL;
	if ((status = begin_request(s, r, path, &path_len, amz_date, hash, &hash_len)) != SIGV4_OK ||
	    (status = signed_headers(s, r, NULL, 0, headers, &n_headers, &sorted)) != SIGV4_OK)
		return status;

	struct out cred = { credential, sizeof credential, 0 };
	put_credential(&cred, s);
	if (n_query)
		memcpy(query, r->query, n_query * sizeof *query);
	query[n_query++] = (struct sigv4_pair){ LIT("X-Amz-Algorithm"), LIT(ALGORITHM) };
	query[n_query++] = (struct sigv4_pair){ LIT("X-Amz-Credential"), str(credential, cred.len) };
	query[n_query++] = (struct sigv4_pair){ LIT("X-Amz-Date"), str(amz_date, sizeof amz_date) };
	query[n_query++] = (struct sigv4_pair){ LIT("X-Amz-Expires"), str(expires_text, sigv4_decimal(expires_text, expires)) };
	if (s->session_token_len)
		query[n_query++] = (struct sigv4_pair){ LIT("X-Amz-Security-Token"), str(s->session_token, s->session_token_len) };
	query[n_query++] = (struct sigv4_pair){ LIT("X-Amz-SignedHeaders"), str(sorted.list, sorted.list_len) };

	struct sigv4_canonical c = {
		r->method, str(path, path_len), query, n_query, headers, n_headers, str(hash, hash_len)
	};
	status = sign_canonical(s, &c, &sorted, amz_date, creq, creq_cap, &n, sig);
	if (creq_len)
		*creq_len = n;
	if (status != SIGV4_OK)
		return status;

	struct out o = { url, cap, 0 };
	put_url(&o, s, str(creq, n));
	put_str(&o, LIT("&X-Amz-Signature="));
	put(&o, sig, sizeof sig);
	sigv4_wipe(sig, sizeof sig);   /* with the URL it is a credential */
	return finish(&o, len);
}
