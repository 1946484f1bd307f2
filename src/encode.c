/*
 * encode.c - byte classes, the URI encoder, UTF-8 checks, decimals, dates, hex.
 */
#include "sigv4_internal.h"

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

#define IS_ALNUM(c) (((c) >= '0' && (c) <= '9') || ((c) >= 'A' && (c) <= 'Z') || ((c) >= 'a' && (c) <= 'z'))
#define IS_UNRESERVED(c) (IS_ALNUM(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~')
#define IS_TCHAR_MARK(c) ((c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' || \
                          (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '^' || (c) == '`' || (c) == '|')
#define CLASS(c) (IS_UNRESERVED(c) ? KEEP_QUERY | TCHAR : (c) == '/' ? KEEP_SLASH : \
                  IS_TCHAR_MARK(c) ? TCHAR : ((c) < 0x20 || (c) == 0x7f) ? CONTROL : 0)
const unsigned char byte_class[256] = { TABLE256(CLASS) };

/* Lowercase hex of every byte: digests become text two characters per load. */
#define HEX_DIGIT(d) ((d) < 10 ? '0' + (d) : 'a' + (d) - 10)
#define HEX_PAIR(b) { HEX_DIGIT((b) >> 4), HEX_DIGIT((b) & 15) }
static const char hex_pairs[256][2] = { TABLE256(HEX_PAIR) };

static const char hex_upper[] = "0123456789ABCDEF";

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

/* A call through a volatile pointer is one the compiler cannot drop as a dead store. */
static void *(*const volatile wipe_memset)(void *, int, size_t) = memset;

void sigv4_wipe(void *ptr, size_t len)
{
	wipe_memset(ptr, 0, len);
}

void hex(char *out, const uint8_t *bytes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		memcpy(out + 2 * i, hex_pairs[bytes[i]], 2);
}

/* ---- URI encoding --------------------------------------------------------- */

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
void put_encoded(struct out *o, struct sigv4_str s, unsigned keep)
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
** An unreserved byte encodes as itself and any other as "%XY"; '%' sorts
** below every unreserved byte and uppercase hex sorts like the byte value,
** so comparing raw bytes decides, except that an unreserved byte beats an
** escaped one.
*/
int encoded_compare(struct sigv4_str a, struct sigv4_str b)
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

/* ---- input checks ------------------------------------------------------------ */

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

int valid_utf8(struct sigv4_str s)
{
	if (s.len == 0)
		return 1;   /* and ptr may be NULL */
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

int has_control(struct sigv4_str s)
{
	for (size_t i = 0; i < s.len; i++)
		if (is((unsigned char)s.ptr[i], CONTROL))
			return 1;
	return 0;
}

int is_printable(struct sigv4_str s, size_t max, int no_slash)
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

/* ---- numbers and dates ----------------------------------------------------------- */

/* v in exactly width digits, zero-padded on the left. */
static void put_digits(char *p, uint64_t v, size_t width)
{
	while (width--) {
		p[width] = (char)('0' + v % 10);
		v /= 10;
	}
}

size_t sigv4_decimal(char out[SIGV4_DECIMAL_LEN], uint64_t v)
{
	size_t n = 1;
	for (uint64_t rest = v / 10; rest; rest /= 10)
		n++;
	put_digits(out, v, n);
	return n;
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
