/*
 * canonical.c - the canonical request, its list of signed headers, the scope.
 *
 * S3 differs from the generic SigV4 services in that the path is encoded
 * once (not twice) and never normalised; this writes it the S3 way.
 */
#include "sigv4_internal.h"

static unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static int lowercase_compare(struct sigv4_str a, struct sigv4_str b)
{
	size_t n = a.len < b.len ? a.len : b.len;
	for (size_t i = 0; i < n; i++) {
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

static int valid_header_name(struct sigv4_str name)
{
	if (name.len == 0)
		return 0;
	for (size_t i = 0; i < name.len; i++)
		if (!is((unsigned char)name.ptr[i], TCHAR))
			return 0;
	return 1;
}

static void put_lowercase(struct out *o, struct sigv4_str s)
{
	char *d = room(o, s.len);
	for (size_t i = 0; d && i < s.len; i++)
		d[i] = (char)lower((unsigned char)s.ptr[i]);
	o->len += s.len;
}

int sort_headers(struct sorted_headers *h, const struct sigv4_pair *headers, size_t n)
{
	struct out list = { h->list, sizeof h->list, 0 };
	if (n > SIGV4_MAX_CANONICAL_PAIRS)
		return SIGV4_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!valid_header_name(headers[i].name) || has_control(headers[i].value))
			return SIGV4_EINVAL;
		h->v[i] = &headers[i];
	}
	if (sort_pairs(h->v, n, header_compare))
		return SIGV4_EINVAL;   /* a name twice */
	for (size_t i = 0; i < n; i++) {
		if (i)
			put_char(&list, ';');
		put_lowercase(&list, h->v[i]->name);
	}
	h->n = n;
	return finish(&list, &h->list_len) == SIGV4_OK ? SIGV4_OK : SIGV4_EINVAL;
}

/* SigV4 "Trimall": no leading or trailing spaces, inner runs of them become one. */
static void put_trimmed(struct out *o, struct sigv4_str s)
{
	size_t i = 0, end = s.len;
	while (i < end && s.ptr[i] == ' ')
		i++;
	while (end > i && s.ptr[end - 1] == ' ')
		end--;
	while (i < end) {   /* runs up to and with a space; a space at i has a non-space before it */
		const char *space = memchr(s.ptr + i, ' ', end - i);
		size_t run = space ? (size_t)(space - s.ptr) + 1 - i : end - i;
		put(o, s.ptr + i, run);
		i += run;
		while (i < end && s.ptr[i] == ' ')
			i++;
	}
}

int sigv4_signed_headers(char *out, size_t cap, size_t *len, const struct sigv4_pair *headers, size_t count)
{
	struct sorted_headers h;
	struct out o = { out, cap, 0 };
	int status = sort_headers(&h, headers, count);
	if (status != SIGV4_OK)
		return status;
	put(&o, h.list, h.list_len);
	return finish(&o, len);
}

int canonical_request(struct out *o, const struct sigv4_canonical *c, const struct sorted_headers *h)
{
	const struct sigv4_pair *query[SIGV4_MAX_CANONICAL_PAIRS];

	if (c->method.len == 0 || c->path.len == 0 || c->query_count > SIGV4_MAX_CANONICAL_PAIRS)
		return SIGV4_EINVAL;
	for (size_t i = 0; i < c->query_count; i++)
		query[i] = &c->query[i];
	sort_pairs(query, c->query_count, query_compare);

	put_str(o, c->method);
	put_char(o, '\n');
	put_encoded(o, c->path, KEEP_PATH);
	put_char(o, '\n');
	for (size_t i = 0; i < c->query_count; i++) {
		if (i)
			put_char(o, '&');
		put_encoded(o, query[i]->name, KEEP_QUERY);
		put_char(o, '=');
		put_encoded(o, query[i]->value, KEEP_QUERY);
	}
	put_char(o, '\n');
	for (size_t i = 0, at = 0; i < h->n; i++) {   /* each name as the list has it: lowercased */
		size_t n = h->v[i]->name.len;
		put(o, h->list + at, n);
		at += n + 1;
		put_char(o, ':');
		put_trimmed(o, h->v[i]->value);
		put_char(o, '\n');
	}
	put_char(o, '\n');
	put(o, h->list, h->list_len);
	put_char(o, '\n');
	put_str(o, c->payload_hash);
	return finish(o, NULL);
}

int sigv4_canonical_request(char *out, size_t cap, size_t *len, const struct sigv4_canonical *c)
{
	struct sorted_headers h;
	struct out o = { out, cap, 0 };
	int status = sort_headers(&h, c->headers, c->header_count);
	if (status == SIGV4_OK)
		status = canonical_request(&o, c, &h);
	if (len)
		*len = o.len;
	return status;
}

void canonical_lines(struct canonical_lines *l, struct sigv4_str creq)
{
	const char *method_end = memchr(creq.ptr, '\n', creq.len);
	const char *path = method_end + 1, *end = creq.ptr + creq.len;
	const char *path_end = memchr(path, '\n', (size_t)(end - path));
	const char *query = path_end + 1;
	const char *query_end = memchr(query, '\n', (size_t)(end - query));
	l->path = str(path, (size_t)(path_end - path));
	l->query = str(query, (size_t)(query_end - query));
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
