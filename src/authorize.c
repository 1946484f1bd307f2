/*
 * authorize.c - requests signed in their headers (header authentication).
 *
 * What the setup command sends to the bucket (?policy, ?cors, ?lifecycle)
 * and what asks STS for temporary credentials. The signer adds X-Amz-Date, X-Amz-Content-Sha256 when
 * configured to (S3 wants it), X-Amz-Security-Token with a session token,
 * and Authorization.
 */
#include "sigv4_internal.h"

int sigv4_authorize(struct sigv4_signer *s, const struct sigv4_request *r,
                    char *url, size_t cap, size_t *len, struct sigv4_auth_headers *h,
                    char *creq, size_t creq_cap, size_t *creq_len)
{
	char path[SIGV4_MAX_PATH], sig[SIGV4_HEX_LEN];
	struct sigv4_pair headers[SIGV4_MAX_PAIRS + SIGV4_AUTH_HEADERS];
	size_t path_len, hash_len, n_headers, n;
	struct sorted_headers sorted;
	int status;

	h->count = 0;
	if ((status = begin_request(s, r, path, &path_len, h->amz_date, h->content_sha256, &hash_len)) != SIGV4_OK)
		return status;

	struct sigv4_str date = str(h->amz_date, SIGV4_AMZ_DATE_LEN), hash = str(h->content_sha256, hash_len);
	h->header[h->count++] = (struct sigv4_pair){ LIT("X-Amz-Date"), date };
	if (s->content_sha256)
		h->header[h->count++] = (struct sigv4_pair){ LIT("X-Amz-Content-Sha256"), hash };
	if (s->session_token_len) {
		memcpy(h->session_token, s->session_token, s->session_token_len);
		h->header[h->count++] = (struct sigv4_pair){ LIT("X-Amz-Security-Token"),
		                                             str(h->session_token, s->session_token_len) };
	}

	if ((status = signed_headers(s, r, h->header, h->count, headers, &n_headers, &sorted)) != SIGV4_OK) {
		h->count = 0;
		return status;
	}

	struct sigv4_canonical c = { r->method, str(path, path_len), r->query, r->query_count, headers, n_headers, hash };
	status = sign_canonical(s, &c, &sorted, h->amz_date, creq, creq_cap, &n, sig);
	if (creq_len)
		*creq_len = n;
	if (status != SIGV4_OK) {
		h->count = 0;
		return status;
	}

	struct out a = { h->authorization, sizeof h->authorization, 0 };
	put_str(&a, LIT(ALGORITHM " Credential="));
	put_credential(&a, s);
	put_str(&a, LIT(", SignedHeaders="));
	put(&a, sorted.list, sorted.list_len);
	put_str(&a, LIT(", Signature="));
	put(&a, sig, sizeof sig);
	h->header[h->count++] = (struct sigv4_pair){ LIT("Authorization"), str(h->authorization, a.len) };
	sigv4_wipe(sig, sizeof sig);

	struct out o = { url, cap, 0 };
	put_url(&o, s, str(creq, n));
	return finish(&o, len);
}
