/*
 * bench_sigv4.c - how fast is the C signing core, and how far from SHA-256?
 *
 * Measures, each auto-calibrated and reported as the best of several runs:
 *   c_presign_ns      one presigned PUT URL via sigv4_presign (a typical
 *                     upload slot: content-length and content-type signed,
 *                     path-style, fixed clock so the day's key stays cached)
 *   sha256_block_ns   one 64-byte SHA-256 compression (EVP_DigestUpdate on a
 *                     long buffer), the floor every URL pays per block
 *   uuid_generate_random_ns  libuuid's random UUID, as each slot makes one
 * and counts the SHA-256 blocks one URL needs (url_blocks).
 *
 * Output: one "name value" line per figure, for bench/run.py.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <uuid/uuid.h>

#include "sigv4.h"

/* The slot every benchmark signs; bench_slot.lua and bench_botocore.py use the same. */
#define ACCESS_KEY_ID "AKIAIOSFODNN7EXAMPLE"
#define SECRET_KEY "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define REGION "eu-west-2"
#define BUCKET "example-upload-bucket"
#define ENDPOINT "https://s3.eu-west-2.amazonaws.com"
#define OBJECT_KEY "http_uploads/8d7e4b5a-2f1c-4e9b-a3d6-0c5f7e2b91a4/holiday photo.jpg"
#define CONTENT_LENGTH "1843217"
#define CONTENT_TYPE "image/jpeg"
#define NOW INT64_C(1718454896)   /* 2024-06-15T12:34:56Z */
#define EXPIRES 300

#define REPS 10
#define TARGET_REP_NS 40e6        /* ~40 ms per repetition: ~0.5 s per item in all */
#define CALIBRATE_NS 20e6

#define SHA_CHUNK_BLOCKS 256

#define S(lit) { (lit), sizeof(lit) - 1 }

static volatile unsigned sink;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

typedef void (*bench_fn)(void *ctx, uint64_t iters);

static double run_once(bench_fn fn, void *ctx, uint64_t iters)
{
	double t0 = now_ns();
	fn(ctx, iters);
	return now_ns() - t0;
}

struct item {
	const char *name;
	bench_fn fn;
	void *ctx;
	int wanted;
	uint64_t iters;
	double best;        /* ns per iteration; 0 when not wanted */
};

/*
 * Nanoseconds per iteration of each item: calibrate each, then REPS rounds
 * that run every item once (interleaved, so that a noisy spell on the
 * machine hits them all alike), keeping each one's best.
 */
static void measure_all(struct item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!items[i].wanted)
			continue;
		uint64_t iters = 1;
		double t;
		while ((t = run_once(items[i].fn, items[i].ctx, iters)) < CALIBRATE_NS)
			iters = t < CALIBRATE_NS / 64 ? iters * 16 : iters * 2;
		items[i].iters = (uint64_t)((double)iters * TARGET_REP_NS / t) + 1;
		items[i].best = 1e300;
	}
	for (int r = 0; r < REPS; r++) {
		for (size_t i = 0; i < n; i++) {
			if (!items[i].wanted)
				continue;
			double per = run_once(items[i].fn, items[i].ctx, items[i].iters) / (double)items[i].iters;
			if (per < items[i].best)
				items[i].best = per;
		}
	}
}

static void die(const char *what, int status)
{
	fprintf(stderr, "bench_sigv4: %s: %s\n", what, sigv4_strerror(status));
	exit(1);
}

/* ---- presigned PUT URL ---------------------------------------------------- */

struct presign_ctx {
	struct sigv4_signer *signer;
	struct sigv4_request req;
	struct sigv4_pair headers[2];
	char url[SIGV4_MAX_URL], creq[SIGV4_MAX_CANONICAL_REQUEST];
	size_t url_len, creq_len;
};

static void bench_presign(void *p, uint64_t iters)
{
	struct presign_ctx *c = p;
	unsigned acc = 0;
	for (uint64_t i = 0; i < iters; i++) {
		int status = sigv4_presign(c->signer, &c->req, EXPIRES, c->url, sizeof c->url, &c->url_len,
		                           c->creq, sizeof c->creq, &c->creq_len);
		if (status != SIGV4_OK)
			die("sigv4_presign", status);
		acc += (unsigned char)c->url[c->url_len - 1];
	}
	sink += acc;
}

/* ---- SHA-256 block rate --------------------------------------------------- */

struct sha_ctx {
	EVP_MD *md;
	EVP_MD_CTX *ctx;
	unsigned char buf[SHA_CHUNK_BLOCKS * 64];
};

static void bench_sha256(void *p, uint64_t iters)
{
	struct sha_ctx *c = p;
	unsigned char md[32];
	unsigned int n;
	if (!EVP_DigestInit_ex2(c->ctx, c->md, NULL))
		die("EVP_DigestInit_ex2", SIGV4_ECRYPTO);
	for (uint64_t i = 0; i < iters; i++)
		EVP_DigestUpdate(c->ctx, c->buf, sizeof c->buf);
	EVP_DigestFinal_ex(c->ctx, md, &n);
	sink += md[0];
}

/* ---- random ids ----------------------------------------------------------- */

static void bench_uuid_generate(void *p, uint64_t iters)
{
	(void)p;
	uuid_t u;
	unsigned acc = 0;
	for (uint64_t i = 0; i < iters; i++) {
		uuid_generate_random(u);
		acc += u[0];
	}
	sink += acc;
}

/* ---- SHA-256 blocks one URL needs ----------------------------------------- */

/* Blocks to hash len bytes from a fresh state: 0x80, padding and a 64-bit length. */
static size_t blocks_for(size_t len)
{
	return (len + 9 + 63) / 64;
}

int main(int argc, char **argv)
{
	static struct presign_ctx pc;
	static struct sha_ctx sc;
	const char *why = NULL;

	struct sigv4_config cfg = { .region = S(REGION), .endpoint = S(ENDPOINT), .bucket = S(BUCKET), .path_style = 1 };
	struct sigv4_credentials k = { S(ACCESS_KEY_ID), S(SECRET_KEY), S("") };
	if (!(pc.signer = malloc(sigv4_signer_size())))
		return 1;
	int status = sigv4_signer_init(pc.signer, &cfg, &k, &why);
	if (status != SIGV4_OK) {
		fprintf(stderr, "bench_sigv4: sigv4_signer_init: %s\n", why ? why : sigv4_strerror(status));
		return 1;
	}
	pc.headers[0] = (struct sigv4_pair){ S("content-length"), S(CONTENT_LENGTH) };
	pc.headers[1] = (struct sigv4_pair){ S("content-type"), S(CONTENT_TYPE) };
	pc.req = (struct sigv4_request){
		.method = S("PUT"), .key = S(OBJECT_KEY), .headers = pc.headers, .header_count = 2, .now = NOW
	};

	/* one URL up front: its sizes give the block count, and run.py cross-checks it */
	status = sigv4_presign(pc.signer, &pc.req, EXPIRES, pc.url, sizeof pc.url, &pc.url_len,
	                       pc.creq, sizeof pc.creq, &pc.creq_len);
	if (status != SIGV4_OK)
		die("sigv4_presign", status);

	char amz_date[SIGV4_AMZ_DATE_LEN], scope[256];
	size_t scope_len;
	if ((status = sigv4_amz_date(amz_date, NOW)) != SIGV4_OK)
		die("sigv4_amz_date", status);
	if ((status = sigv4_scope(scope, sizeof scope, &scope_len, amz_date, (struct sigv4_str)S(REGION),
	                          (struct sigv4_str)S("s3"))) != SIGV4_OK)
		die("sigv4_scope", status);
	/* "AWS4-HMAC-SHA256\n" date "\n" scope "\n" hex(sha256(creq)) */
	size_t sts_len = 17 + SIGV4_AMZ_DATE_LEN + 1 + scope_len + 1 + SIGV4_HEX_LEN;
	size_t creq_blocks = blocks_for(pc.creq_len);
	/* keyed HMAC: ipad block already absorbed, so the inner hash continues at
	 * offset 64 (same padding arithmetic); the outer hash of a 32-byte digest
	 * after the absorbed opad block is one more block */
	size_t sts_blocks = blocks_for(sts_len);
	size_t outer_blocks = blocks_for(32);
	size_t url_blocks = creq_blocks + sts_blocks + outer_blocks;

	sc.md = EVP_MD_fetch(NULL, "SHA256", NULL);
	sc.ctx = EVP_MD_CTX_new();
	if (!sc.md || !sc.ctx)
		die("EVP_MD_fetch", SIGV4_ECRYPTO);
	memset(sc.buf, 0xa5, sizeof sc.buf);

	struct item items[] = {
		{ "presign", bench_presign, &pc, 1, 0, 0 },
		{ "sha256", bench_sha256, &sc, 1, 0, 0 },
		{ "uuid", bench_uuid_generate, NULL, 1, 0, 0 },
	};
	size_t n_items = sizeof items / sizeof *items;
	/* with arguments, only the named items run (for profiling: bench_sigv4 presign) */
	for (size_t i = 0; argc > 1 && i < n_items; i++) {
		items[i].wanted = 0;
		for (int a = 1; a < argc; a++)
			items[i].wanted |= strcmp(argv[a], items[i].name) == 0;
	}
	measure_all(items, n_items);
	double presign_ns = items[0].best, block_ns = items[1].best / SHA_CHUNK_BLOCKS;
	double uuid_ns = items[2].best;

	printf("c_presign_ns %.1f\n", presign_ns);
	printf("sha256_block_ns %.2f\n", block_ns);
	printf("url_blocks %zu\n", url_blocks);
	printf("creq_len %zu\n", pc.creq_len);
	printf("creq_blocks %zu\n", creq_blocks);
	printf("sts_len %zu\n", sts_len);
	printf("sts_blocks %zu\n", sts_blocks);
	printf("hmac_outer_blocks %zu\n", outer_blocks);
	printf("sha256_limit_ns %.1f\n", (double)url_blocks * block_ns);
	printf("uuid_generate_random_ns %.1f\n", uuid_ns);
	printf("url_len %zu\n", pc.url_len);
	printf("c_url %.*s\n", (int)pc.url_len, pc.url);
	sigv4_signer_wipe(pc.signer);
	free(pc.signer);
	EVP_MD_CTX_free(sc.ctx);
	EVP_MD_free(sc.md);
	return 0;
}
