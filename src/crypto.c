/*
 * crypto.c - SHA-256 and HMAC-SHA256 on OpenSSL's EVP interface, and the
 * stages built on them: string to sign, signing key, signature, payload hash.
 *
 * A digest context is made once and reused; an HMAC key is absorbed once
 * into an inner and an outer state, and each MAC starts from copies of them
 * (EVP_MD_CTX_copy_ex), which saves hashing the key's two blocks again.
 * OpenSSL clears a digest context's memory when it frees or resets it.
 */
#include "sigv4_internal.h"

#define SHA256_BLOCK 64

int sha256_open(struct sha256 *h)
{
	h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	h->ctx = EVP_MD_CTX_new();
	if (h->md && h->ctx)
		return SIGV4_OK;
	sha256_close(h);
	return SIGV4_ECRYPTO;
}

void sha256_close(struct sha256 *h)
{
	EVP_MD_CTX_free(h->ctx);
	EVP_MD_free(h->md);
	h->ctx = NULL;
	h->md = NULL;
}

static int digest(struct sha256 *h, uint8_t md[SIGV4_KEY_LEN], struct sigv4_str msg)
{
	unsigned int n;
	return EVP_DigestInit_ex2(h->ctx, h->md, NULL) && EVP_DigestUpdate(h->ctx, msg.ptr, msg.len) &&
	       EVP_DigestFinal_ex(h->ctx, md, &n) ? SIGV4_OK : SIGV4_ECRYPTO;
}

/* RFC 2104: the key, hashed if longer than a block, padded, XORed with ipad and opad. */
int hmac_key(struct hmac *k, struct sha256 *h, const uint8_t *key, size_t key_len)
{
	uint8_t block[SHA256_BLOCK] = { 0 }, pad[SHA256_BLOCK];
	int ok;

	if (!k->inner)
		k->inner = EVP_MD_CTX_new();
	if (!k->outer)
		k->outer = EVP_MD_CTX_new();
	ok = k->inner && k->outer;
	if (ok && key_len > SHA256_BLOCK)
		ok = digest(h, block, str((const char *)key, key_len)) == SIGV4_OK;
	else if (ok)
		memcpy(block, key, key_len);
	for (size_t i = 0; i < SHA256_BLOCK; i++)
		pad[i] = block[i] ^ 0x36;
	ok = ok && EVP_DigestInit_ex2(k->inner, h->md, NULL) && EVP_DigestUpdate(k->inner, pad, sizeof pad);
	for (size_t i = 0; i < SHA256_BLOCK; i++)
		pad[i] = block[i] ^ 0x5c;
	ok = ok && EVP_DigestInit_ex2(k->outer, h->md, NULL) && EVP_DigestUpdate(k->outer, pad, sizeof pad);
	sigv4_wipe(block, sizeof block);
	sigv4_wipe(pad, sizeof pad);
	return ok ? SIGV4_OK : SIGV4_ECRYPTO;
}

int hmac_mac(uint8_t mac[SIGV4_KEY_LEN], const struct hmac *k, struct sha256 *h, struct sigv4_str msg)
{
	uint8_t inner[SIGV4_KEY_LEN];
	unsigned int n;
	int ok = EVP_MD_CTX_copy_ex(h->ctx, k->inner) && EVP_DigestUpdate(h->ctx, msg.ptr, msg.len) &&
	         EVP_DigestFinal_ex(h->ctx, inner, &n) &&
	         EVP_MD_CTX_copy_ex(h->ctx, k->outer) && EVP_DigestUpdate(h->ctx, inner, sizeof inner) &&
	         EVP_DigestFinal_ex(h->ctx, mac, &n);
	sigv4_wipe(inner, sizeof inner);
	return ok ? SIGV4_OK : SIGV4_ECRYPTO;
}

void hmac_close(struct hmac *k)
{
	EVP_MD_CTX_free(k->inner);
	EVP_MD_CTX_free(k->outer);
	k->inner = k->outer = NULL;
}

/* ---- the stages -------------------------------------------------------------- */

int string_to_sign(struct sha256 *h, struct out *o, const char amz_date[SIGV4_AMZ_DATE_LEN],
                   struct sigv4_str scope, struct sigv4_str canonical_request)
{
	uint8_t md[SIGV4_KEY_LEN];
	char md_hex[SIGV4_HEX_LEN];

	if (digest(h, md, canonical_request) != SIGV4_OK)
		return SIGV4_ECRYPTO;
	hex(md_hex, md, sizeof md);
	put_str(o, LIT(ALGORITHM "\n"));
	put(o, amz_date, SIGV4_AMZ_DATE_LEN);
	put_char(o, '\n');
	put_str(o, scope);
	put_char(o, '\n');
	put(o, md_hex, sizeof md_hex);
	return finish(o, NULL);
}

int derive_key(struct sha256 *h, uint8_t out[SIGV4_KEY_LEN], struct sigv4_str secret_key,
               const char amz_date[SIGV4_AMZ_DATE_LEN], struct sigv4_str region, struct sigv4_str service)
{
	uint8_t k_secret[4 + SIGV4_MAX_SECRET_KEY], k[SIGV4_KEY_LEN];
	struct hmac key = { NULL, NULL };
	int status;

	if (secret_key.len == 0 || secret_key.len > SIGV4_MAX_SECRET_KEY)
		return SIGV4_EINVAL;
	memcpy(k_secret, "AWS4", 4);
	memcpy(k_secret + 4, secret_key.ptr, secret_key.len);
	if ((status = hmac_key(&key, h, k_secret, 4 + secret_key.len)) == SIGV4_OK &&
	    (status = hmac_mac(k, &key, h, str(amz_date, 8))) == SIGV4_OK &&
	    (status = hmac_key(&key, h, k, sizeof k)) == SIGV4_OK &&
	    (status = hmac_mac(k, &key, h, region)) == SIGV4_OK &&
	    (status = hmac_key(&key, h, k, sizeof k)) == SIGV4_OK &&
	    (status = hmac_mac(k, &key, h, service)) == SIGV4_OK &&
	    (status = hmac_key(&key, h, k, sizeof k)) == SIGV4_OK)
		status = hmac_mac(out, &key, h, LIT("aws4_request"));
	sigv4_wipe(k_secret, sizeof k_secret);
	sigv4_wipe(k, sizeof k);
	hmac_close(&key);
	EVP_MD_CTX_reset(h->ctx);   /* it held the last step's state, which is the key */
	return status;
}

int signature(char out[SIGV4_HEX_LEN], const struct hmac *k, struct sha256 *h, struct sigv4_str sts)
{
	uint8_t mac[SIGV4_KEY_LEN];
	int status = hmac_mac(mac, k, h, sts);
	if (status == SIGV4_OK)
		hex(out, mac, sizeof mac);
	return status;
}

int payload_hash(struct sha256 *h, char out[SIGV4_HEX_LEN], struct sigv4_str body)
{
	uint8_t md[SIGV4_KEY_LEN];
	int status = digest(h, md, body);
	if (status == SIGV4_OK)
		hex(out, md, sizeof md);
	return status;
}

/* ---- the same stages with contexts of their own, for callers without a signer ---- */

int sigv4_string_to_sign(char *out, size_t cap, size_t *len, const char amz_date[SIGV4_AMZ_DATE_LEN],
                         struct sigv4_str scope, struct sigv4_str canonical_request)
{
	struct sha256 h;
	struct out o = { out, cap, 0 };
	int status = sha256_open(&h);
	if (status == SIGV4_OK)
		status = string_to_sign(&h, &o, amz_date, scope, canonical_request);
	sha256_close(&h);
	if (len)
		*len = o.len;
	return status;
}

int sigv4_derive_key(uint8_t out[SIGV4_KEY_LEN], struct sigv4_str secret_key,
                     const char amz_date[SIGV4_AMZ_DATE_LEN], struct sigv4_str region,
                     struct sigv4_str service)
{
	struct sha256 h;
	int status = sha256_open(&h);
	if (status == SIGV4_OK)
		status = derive_key(&h, out, secret_key, amz_date, region, service);
	sha256_close(&h);
	return status;
}

int sigv4_sign(char out[SIGV4_HEX_LEN], const uint8_t key[SIGV4_KEY_LEN], struct sigv4_str msg)
{
	struct sha256 h;
	struct hmac k = { NULL, NULL };
	int status = sha256_open(&h);
	if (status == SIGV4_OK && (status = hmac_key(&k, &h, key, SIGV4_KEY_LEN)) == SIGV4_OK)
		status = signature(out, &k, &h, msg);
	hmac_close(&k);
	sha256_close(&h);
	return status;
}

int sigv4_payload_hash(char out[SIGV4_HEX_LEN], struct sigv4_str body)
{
	struct sha256 h;
	int status = sha256_open(&h);
	if (status == SIGV4_OK)
		status = payload_hash(&h, out, body);
	sha256_close(&h);
	return status;
}
