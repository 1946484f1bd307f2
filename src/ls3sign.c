/*
 * ls3sign.c - Lua 5.4 binding of the signing core: require "s3sign".
 *
 *   local signer, err = s3sign.new{ access_key_id=, secret_key=, region=, bucket=, ... }
 *   local put_url, get_url, key = signer:slot(prefix, filename, size [, content_type [, options]])
 *   local url = signer:download(key [, options])
 *   local url = signer:presign(method, key [, options])
 *   local url, headers = signer:authorize(method, key [, options])
 *   signer:set_credentials{ access_key_id=, secret_key=, session_token= }
 *   s3sign.check{ ... as for new } -> true | nil, field, reason
 *   s3sign.parse_endpoint(url), s3sign.uri_encode(s), s3sign.limits
 *
 * Wrong argument types raise; bad values return nil and a message naming the
 * field. This file owns the clock and the random object ids; the core has
 * neither. Policy (which prefixes, how large a file) is the caller's. The
 * module is not linked against liblua: the host provides it.
 */
#include <stddef.h>            /* offsetof */
#include <string.h>            /* memcpy(3) strlen(3) */
#include <time.h>              /* time(2) */

#include <lua.h>
#include <lauxlib.h>
#include <uuid/uuid.h>         /* uuid_generate_random(3) uuid_unparse_lower(3) */

#include "sigv4.h"

#define S3SIGN_EXPORT __attribute__((visibility("default")))
#define SIGNER_MT "s3sign.signer"
#ifndef S3SIGN_VERSION
#error "S3SIGN_VERSION is the release's version, defined by the Makefile from the rockspec"
#endif

#define UUID_LEN 36
#define MAX_GET_BASE_LEN 1023      /* the base of public download URLs (http_upload_s3_get_url) */
#define EXPIRES_RANGE "must be 1.." SIGV4_TEXT(SIGV4_MAX_EXPIRES) " seconds"
#define NO_EXPIRES (-1)

union max_align {   /* what Lua aligns a userdata's memory for */
	double d;
	void *p;
	long long ll;
};

struct signer {
	int closed;
	uint32_t put_expires;                   /* 0: not given, so no slots and no default lifetime */
	size_t get_base_len;
	char get_base[MAX_GET_BASE_LEN + 1];            /* public GET URLs: this, '/', the encoded key */
	/* scratch: what one call builds, wiped before it returns */
	char key[SIGV4_MAX_KEY];
	char url[SIGV4_MAX_URL];
	char creq[SIGV4_MAX_CANONICAL_REQUEST];
	union max_align core[];                 /* the sigv4_signer, sigv4_signer_size() bytes */
};

static struct sigv4_signer *core(struct signer *s)
{
	return (struct sigv4_signer *)s->core;
}

/* The metatable, an upvalue of every method: checking the signer looks up no string. */
#define UPVALUE_MT lua_upvalueindex(1)

static struct signer *check_signer(lua_State *L)
{
	struct signer *s = lua_touserdata(L, 1);
	if (!s || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, UPVALUE_MT))
		luaL_typeerror(L, 1, SIGNER_MT);
	lua_pop(L, 1);
	luaL_argcheck(L, !s->closed, 1, "signer is closed");
	return s;
}

static void close_signer(struct signer *s)
{
	sigv4_signer_wipe(core(s));   /* also when init failed: then it holds nothing */
	sigv4_wipe(s, offsetof(struct signer, core));
	s->closed = 1;
}

/* A random (v4) UUID from libuuid, as 36 lowercase characters and a NUL. */
static void new_uuid(char out[UUID_LEN + 1])
{
	uuid_t u;
	uuid_generate_random(u);
	uuid_unparse_lower(u, out);
	sigv4_wipe(u, sizeof u);   /* a public file's id is its link's secret */
}

/* ---- reading tables --------------------------------------------------------- */

/* Optional string field: raises on a wrong type or an embedded NUL. */
static struct sigv4_str opt_string(lua_State *L, int t, const char *field)
{
	struct sigv4_str s = { "", 0 };
	if (lua_getfield(L, t, field) != LUA_TNIL) {
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "bad field '%s' (string expected, got %s)", field, luaL_typename(L, -1));
		s.ptr = lua_tolstring(L, -1, &s.len);
		if (strlen(s.ptr) != s.len)
			luaL_error(L, "bad field '%s' (embedded NUL)", field);
	}
	lua_pop(L, 1);   /* the table still holds the string, so s.ptr stays valid */
	return s;
}

static lua_Integer opt_integer(lua_State *L, int t, const char *field, lua_Integer dflt)
{
	lua_Integer v = dflt;
	if (lua_getfield(L, t, field) != LUA_TNIL) {
		int isint = 0;
		if (lua_type(L, -1) == LUA_TNUMBER)   /* no silent conversion of strings */
			v = lua_tointegerx(L, -1, &isint);
		if (!isint)
			luaL_error(L, "bad field '%s' (integer expected, got %s)", field, luaL_typename(L, -1));
	}
	lua_pop(L, 1);
	return v;
}

static int opt_boolean(lua_State *L, int t, const char *field, int dflt)
{
	int v = dflt;
	if (lua_getfield(L, t, field) != LUA_TNIL) {
		if (lua_type(L, -1) != LUA_TBOOLEAN)
			luaL_error(L, "bad field '%s' (boolean expected, got %s)", field, luaL_typename(L, -1));
		v = lua_toboolean(L, -1);
	}
	lua_pop(L, 1);
	return v;
}

/*
** A { name = value } table field as pairs: at most SIGV4_MAX_PAIRS, strings
** only. The table is left on the stack, so that its strings stay valid.
*/
static size_t opt_pairs(lua_State *L, int t, const char *field, struct sigv4_pair v[SIGV4_MAX_PAIRS])
{
	size_t n = 0;
	int type = lua_getfield(L, t, field);
	if (type == LUA_TNIL)
		return 0;
	if (type != LUA_TTABLE)
		luaL_error(L, "bad field '%s' (table expected, got %s)", field, luaL_typename(L, -1));
	int pairs = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, pairs)) {
		if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "bad field '%s' (strings expected)", field);
		if (n == SIGV4_MAX_PAIRS)
			luaL_error(L, "bad field '%s' (more than %d entries)", field, SIGV4_MAX_PAIRS);
		v[n].name.ptr = lua_tolstring(L, -2, &v[n].name.len);
		v[n].value.ptr = lua_tolstring(L, -1, &v[n].value.len);
		n++;
		lua_pop(L, 1);
	}
	return n;
}

static int fail(lua_State *L, const char *field, const char *problem)
{
	luaL_pushfail(L);
	lua_pushfstring(L, "%s: %s", field, problem);
	return 2;
}

static int expires_ok(lua_Integer v)
{
	return v >= 1 && v <= SIGV4_MAX_EXPIRES;
}

static int pushed_wiped(lua_State *L, char *buf, size_t len)
{
	lua_pushlstring(L, buf, len);
	sigv4_wipe(buf, len);   /* URLs are credentials until they expire: leave no copy behind */
	return 1;
}

/*
** After a signing call: the canonical request names the access key id and
** any session token, and a URL cut short by an error may hold the token.
** used is what the call says it wrote, which may exceed the buffer.
*/
static void wipe_signing_scratch(struct signer *s, size_t creq_used, int status)
{
	sigv4_wipe(s->creq, creq_used < sizeof s->creq ? creq_used : sizeof s->creq);
	if (status != SIGV4_OK)
		sigv4_wipe(s->url, sizeof s->url);
}

/* sigv4_presign, pushing the URL and, when traced, the canonical request; the scratch is wiped. */
static int presign_pushed(lua_State *L, struct signer *s, const struct sigv4_request *r, uint32_t expires,
                          int trace)
{
	size_t url_len, creq_len = 0;
	int status = sigv4_presign(core(s), r, expires, s->url, sizeof s->url, &url_len, s->creq, sizeof s->creq,
	                           &creq_len);
	if (status == SIGV4_OK) {
		pushed_wiped(L, s->url, url_len);
		if (trace)
			lua_pushlstring(L, s->creq, creq_len);
	}
	wipe_signing_scratch(s, creq_len, status);
	return status;
}

/* ---- creating ---------------------------------------------------------------------- */

static struct sigv4_credentials read_credentials(lua_State *L, int t)
{
	struct sigv4_credentials k;
	k.access_key_id = opt_string(L, t, "access_key_id");
	k.secret_key = opt_string(L, t, "secret_key");
	k.session_token = opt_string(L, t, "session_token");
	return k;
}

/* What s3sign.new and s3sign.check read from their table. */
struct new_options {
	struct sigv4_config c;
	struct sigv4_credentials k;
	struct sigv4_str get_url;
	lua_Integer put_expires;        /* NO_EXPIRES: not given */
};

/* The options, and the first one refused by the binding's own rules (NULL: none), with why. */
static const char *read_new_options(lua_State *L, int t, struct new_options *o, const char **reason)
{
	luaL_checktype(L, t, LUA_TTABLE);
	o->k = read_credentials(L, t);
	o->c.region = opt_string(L, t, "region");
	o->c.service = opt_string(L, t, "service");
	o->c.endpoint = opt_string(L, t, "endpoint");
	o->c.bucket = opt_string(L, t, "bucket");
	o->c.path_style = opt_boolean(L, t, "path_style", 0);
	int is_s3 = o->c.service.len == 0 || (o->c.service.len == 2 && memcmp(o->c.service.ptr, "s3", 2) == 0);
	o->c.content_sha256 = opt_boolean(L, t, "content_sha256", is_s3);
	o->get_url = opt_string(L, t, "get_url");
	o->put_expires = opt_integer(L, t, "put_expires", NO_EXPIRES);

	*reason = EXPIRES_RANGE;
	if (o->put_expires != NO_EXPIRES && !expires_ok(o->put_expires))
		return "put_expires";
	*reason = "longer than " SIGV4_TEXT(MAX_GET_BASE_LEN) " bytes";
	if (o->get_url.len > MAX_GET_BASE_LEN)
		return "get_url";
	*reason = NULL;
	return NULL;
}

/*
** s3sign.check(config) -> true | nil, field, reason
** What s3sign.new would refuse, without a signer: the field's name and why.
** The credentials are checked when any of them is given.
*/
static int l_check(lua_State *L)
{
	struct new_options o;
	const char *reason;
	const char *field = read_new_options(L, 1, &o, &reason);
	int has_credentials = o.k.access_key_id.len || o.k.secret_key.len || o.k.session_token.len;
	if (!field && sigv4_check(&o.c, has_credentials ? &o.k : NULL, &field, &reason) == SIGV4_OK) {
		lua_pushboolean(L, 1);
		return 1;
	}
	luaL_pushfail(L);
	lua_pushstring(L, field);
	lua_pushstring(L, reason);
	return 3;
}

/*
** s3sign.new(config) -> signer | nil, message
** config: the credentials, region, service ("s3"), endpoint, bucket,
** path_style, content_sha256 (default: service is s3), put_expires (the
** lifetime of upload URLs and of presign's default; needed for slots),
** get_url (base of public download URLs; default: the bucket's URL).
** The userdata exists (with its metatable, so __gc wipes it) before any
** secret is copied into it.
*/
static int l_new(lua_State *L)
{
	struct new_options o;
	const char *why = NULL;
	const char *field = read_new_options(L, 1, &o, &why);
	if (field)
		return fail(L, field, why);

	struct signer *s = lua_newuserdatauv(L, offsetof(struct signer, core) + sigv4_signer_size(), 0);
	memset(s, 0, offsetof(struct signer, core));
	s->closed = 1;
	luaL_setmetatable(L, SIGNER_MT);
	int status = sigv4_signer_init(core(s), &o.c, &o.k, &why);
	if (status != SIGV4_OK)
		return luaL_pushfail(L), lua_pushstring(L, why ? why : sigv4_strerror(status)), 2;
	s->closed = 0;
	s->put_expires = o.put_expires == NO_EXPIRES ? 0 : (uint32_t)o.put_expires;
	if (o.get_url.len) {
		memcpy(s->get_base, o.get_url.ptr, o.get_url.len);
		s->get_base_len = o.get_url.len;
		while (s->get_base_len && s->get_base[s->get_base_len - 1] == '/')
			s->get_base_len--;
	} else if (sigv4_bucket_url(s->get_base, sizeof s->get_base, &s->get_base_len, core(s)) != SIGV4_OK) {
		close_signer(s);
		return fail(L, "endpoint", "too long");
	}
	return 1;
}

/* signer:set_credentials{ access_key_id=, secret_key=, session_token= } -> true | nil, message */
static int l_set_credentials(lua_State *L)
{
	struct signer *s = check_signer(L);
	const char *why = NULL;
	luaL_checktype(L, 2, LUA_TTABLE);
	struct sigv4_credentials k = read_credentials(L, 2);
	if (sigv4_signer_set_credentials(core(s), &k, &why) != SIGV4_OK)
		return luaL_pushfail(L), lua_pushstring(L, why), 2;
	lua_pushboolean(L, 1);
	return 1;
}

/* ---- slots ------------------------------------------------------------------------- */

struct slot_options {
	int64_t now;
	struct sigv4_str id;            /* empty: a fresh random UUID */
	lua_Integer get_expires;        /* 0: a public GET URL */
	struct sigv4_str disposition;   /* response-content-disposition of a presigned GET */
	struct sigv4_str response_type; /* response-content-type of a presigned GET */
	int trace;                      /* also return the PUT's canonical request */
};

static void read_slot_options(lua_State *L, int t, struct slot_options *o)
{
	o->now = (int64_t)time(NULL);
	o->id = o->disposition = o->response_type = (struct sigv4_str){ "", 0 };
	o->get_expires = 0;
	o->trace = 0;
	if (lua_isnoneornil(L, t))
		return;
	luaL_checktype(L, t, LUA_TTABLE);
	o->now = opt_integer(L, t, "now", o->now);
	o->id = opt_string(L, t, "id");
	o->get_expires = opt_integer(L, t, "get_expires", 0);
	o->disposition = opt_string(L, t, "disposition");
	o->response_type = opt_string(L, t, "response_type");
	o->trace = opt_boolean(L, t, "trace", 0);
}

/* The object key prefix .. id .. "/" .. filename into s->key: the one place its layout is written. */
static int build_key(struct signer *s, struct sigv4_str prefix, struct sigv4_str id, struct sigv4_str name,
                     size_t *len)
{
	char uuid[UUID_LEN + 1];
	if (prefix.len + (id.len ? id.len : UUID_LEN) + 1 + name.len > sizeof s->key)
		return 0;
	if (id.len == 0) {
		new_uuid(uuid);
		id = (struct sigv4_str){ uuid, UUID_LEN };
	}
	memcpy(s->key, prefix.ptr, prefix.len);
	memcpy(s->key + prefix.len, id.ptr, id.len);
	s->key[prefix.len + id.len] = '/';
	memcpy(s->key + prefix.len + id.len + 1, name.ptr, name.len);
	*len = prefix.len + id.len + 1 + name.len;
	sigv4_wipe(uuid, sizeof uuid);
	return 1;
}

/* The public download URL of a key: the base, '/', the key encoded as in the PUT URL. */
static int public_url(struct signer *s, struct sigv4_str key, size_t *len)
{
	size_t n;
	memcpy(s->url, s->get_base, s->get_base_len);
	s->url[s->get_base_len] = '/';
	int status = sigv4_uri_encode(s->url + s->get_base_len + 1, sizeof s->url - s->get_base_len - 1, &n, key, 1);
	*len = s->get_base_len + 1 + n;
	return status;
}

static int request_failure(lua_State *L, const char *what, int status);

/* The download URL of a key, pushed: presigned when o->get_expires is set, else public. */
static int get_url_pushed(lua_State *L, struct signer *s, struct sigv4_str key, const struct slot_options *o)
{
	size_t url_len;
	if (o->get_expires) {
		struct sigv4_pair query[2];
		size_t n_query = 0;
		if (o->disposition.len)
			query[n_query++] = (struct sigv4_pair){ { "response-content-disposition", 28 }, o->disposition };
		if (o->response_type.len)
			query[n_query++] = (struct sigv4_pair){ { "response-content-type", 21 }, o->response_type };
		struct sigv4_request get = {
			.method = { "GET", 3 }, .key = key, .query = query, .query_count = n_query, .now = o->now
		};
		return presign_pushed(L, s, &get, (uint32_t)o->get_expires, 0);
	}
	int status = public_url(s, key, &url_len);
	if (status == SIGV4_OK)
		pushed_wiped(L, s->url, url_len);
	return status;
}

/*
** signer:download(key [, options]) -> url | nil, message
** The download URL of an object the module handed out, as slot() makes it:
** options get_expires, disposition, response_type, now.
*/
static int l_download(lua_State *L)
{
	struct signer *s = check_signer(L);
	struct sigv4_str key;
	struct slot_options o;
	key.ptr = luaL_checklstring(L, 2, &key.len);
	read_slot_options(L, 3, &o);
	if (o.get_expires != 0 && !expires_ok(o.get_expires))
		return fail(L, "get_expires", EXPIRES_RANGE);
	int status = get_url_pushed(L, s, key, &o);
	if (status != SIGV4_OK) {
		sigv4_wipe(s->url, sizeof s->url);
		return request_failure(L, "download", status);
	}
	return 1;
}

/*
** signer:slot(prefix, filename, size [, content_type [, options]]) -> put_url, get_url, key [, creq] | nil, message
** The object key is prefix .. uuid .. "/" .. filename. The PUT URL signs
** Content-Length and, when given, Content-Type. options: now (Unix seconds),
** id (instead of a random UUID), get_expires (a presigned GET URL valid that
** long instead of a public one), and for presigned GETs the headers S3
** should answer with: disposition (response-content-disposition) and
** response_type (response-content-type); trace (also return the PUT's
** canonical request, to show beside S3's when S3 refuses the signature).
*/
static int l_slot(lua_State *L)
{
	struct signer *s = check_signer(L);
	struct sigv4_str prefix, name, type = { "", 0 };
	prefix.ptr = luaL_checklstring(L, 2, &prefix.len);
	name.ptr = luaL_checklstring(L, 3, &name.len);
	luaL_checktype(L, 4, LUA_TNUMBER);
	lua_Integer size = luaL_checkinteger(L, 4);
	type.ptr = luaL_optlstring(L, 5, "", &type.len);
	struct slot_options o;
	char length[SIGV4_DECIMAL_LEN];
	size_t key_len;

	read_slot_options(L, 6, &o);
	if (s->put_expires == 0)
		return fail(L, "put_expires", "not given to s3sign.new");
	if (size < 0)
		return fail(L, "size", "must not be negative");
	if (o.get_expires != 0 && !expires_ok(o.get_expires))
		return fail(L, "get_expires", EXPIRES_RANGE);
	if (o.id.len > UUID_LEN)
		return fail(L, "id", "longer than a UUID");
	if (!build_key(s, prefix, o.id, name, &key_len))
		return fail(L, "filename", "object key longer than " SIGV4_TEXT(SIGV4_MAX_KEY) " bytes");

	struct sigv4_str key = { s->key, key_len };
	struct sigv4_pair headers[2] = {
		{ { "content-length", 14 }, { length, sigv4_decimal(length, (uint64_t)size) } },
		{ { "content-type", 12 }, type },
	};
	struct sigv4_request put = {
		.method = { "PUT", 3 }, .key = key, .headers = headers, .header_count = type.len ? 2 : 1, .now = o.now
	};
	int status = presign_pushed(L, s, &put, s->put_expires, o.trace);
	if (status != SIGV4_OK) {
		sigv4_wipe(s->key, key_len);
		return fail(L, "presign", status == SIGV4_EINVAL ? "invalid filename or content type" : sigv4_strerror(status));
	}

	if ((status = get_url_pushed(L, s, key, &o)) != SIGV4_OK) {
		sigv4_wipe(s->key, key_len);
		sigv4_wipe(s->url, sizeof s->url);   /* a public URL cut short still has the id */
		return fail(L, "get", sigv4_strerror(status));
	}
	pushed_wiped(L, s->key, key_len);   /* its random id makes the public GET URL unguessable */
	if (o.trace)
		lua_rotate(L, -3, -1);   /* put, creq, get, key -> put, get, key, creq */
	return o.trace ? 4 : 3;
}

/* ---- any request ------------------------------------------------------------------- */

struct request_options {
	struct sigv4_request r;
	struct sigv4_pair headers[SIGV4_MAX_PAIRS], query[SIGV4_MAX_PAIRS];
	struct sigv4_str body;
	lua_Integer expires;
	int trace;
};

/*
** method, key and an options table from argument 2 on: now, headers, query,
** expires, body (its SHA-256 is signed; absent: an unsigned payload), trace
*/
static void read_request(lua_State *L, struct signer *s, struct request_options *o)
{
	o->r.method.ptr = luaL_checklstring(L, 2, &o->r.method.len);
	o->r.key.ptr = luaL_checklstring(L, 3, &o->r.key.len);
	o->r.now = (int64_t)time(NULL);
	o->r.header_count = o->r.query_count = 0;
	o->r.headers = o->headers;
	o->r.query = o->query;
	o->r.payload = NULL;
	o->expires = s->put_expires;
	o->trace = 0;
	if (lua_isnoneornil(L, 4))
		return;
	luaL_checktype(L, 4, LUA_TTABLE);
	o->r.now = opt_integer(L, 4, "now", o->r.now);
	o->expires = opt_integer(L, 4, "expires", o->expires);
	if (lua_getfield(L, 4, "body") != LUA_TNIL) {
		o->body.ptr = luaL_checklstring(L, -1, &o->body.len);   /* stays on the stack */
		o->r.payload = &o->body;
	}
	o->trace = opt_boolean(L, 4, "trace", 0);
	o->r.header_count = opt_pairs(L, 4, "headers", o->headers);
	o->r.query_count = opt_pairs(L, 4, "query", o->query);
}

static int request_failure(lua_State *L, const char *what, int status)
{
	return fail(L, what, status == SIGV4_EINVAL ? "invalid method, key, header or query parameter"
	                                            : sigv4_strerror(status));
}

/*
** signer:presign(method, key [, options]) -> url [, canonical_request] | nil, message
** A presigned URL for any method and key (empty: the bucket), for tools such
** as "prosodyctl mod_http_upload_s3 check". options: now, expires (default:
** the signer's put_expires; one of them is needed), headers and query ({ name = value }, signed), body
** (its SHA-256 is signed; absent: an unsigned payload, as S3 takes), trace
** (also return the canonical request: it holds no secret key, but any
** session token, so show it to the admin only with the token masked).
*/
static int l_presign(lua_State *L)
{
	struct signer *s = check_signer(L);
	struct request_options o;

	read_request(L, s, &o);
	if (!expires_ok(o.expires))
		return fail(L, "expires", EXPIRES_RANGE);
	int status = presign_pushed(L, s, &o.r, (uint32_t)o.expires, o.trace);
	if (status != SIGV4_OK)
		return request_failure(L, "presign", status);
	return o.trace ? 2 : 1;
}

/*
** signer:authorize(method, key [, options]) -> url, headers [, canonical_request] | nil, message
** A request signed in its headers: the URL to send it to, and the headers
** to add to the request's own ({ ["X-Amz-Date"] = ..., Authorization = ... }).
** options as for presign but expires.
*/
static int l_authorize(lua_State *L)
{
	struct signer *s = check_signer(L);
	struct request_options o;
	struct sigv4_auth_headers h;
	size_t url_len, creq_len = 0;

	read_request(L, s, &o);
	int status = sigv4_authorize(core(s), &o.r, s->url, sizeof s->url, &url_len, &h, s->creq,
	                             sizeof s->creq, &creq_len);
	if (status != SIGV4_OK) {
		sigv4_wipe(&h, sizeof h);
		wipe_signing_scratch(s, creq_len, status);
		return request_failure(L, "authorize", status);
	}
	pushed_wiped(L, s->url, url_len);
	lua_createtable(L, 0, (int)h.count);
	for (size_t i = 0; i < h.count; i++) {
		lua_pushlstring(L, h.header[i].name.ptr, h.header[i].name.len);
		lua_pushlstring(L, h.header[i].value.ptr, h.header[i].value.len);
		lua_rawset(L, -3);
	}
	sigv4_wipe(&h, sizeof h);   /* the token and the Authorization value are credentials */
	if (o.trace)
		lua_pushlstring(L, s->creq, creq_len);
	wipe_signing_scratch(s, creq_len, status);
	return o.trace ? 3 : 2;
}

/* ---- module functions --------------------------------------------------------------- */

/* s3sign.uri_encode(s [, keep_slash]) -> s with every byte but A-Za-z0-9-._~ (and '/') as %XX */
static int l_uri_encode(lua_State *L)
{
	struct sigv4_str src;
	size_t n;
	src.ptr = luaL_checklstring(L, 1, &src.len);
	int keep_slash = lua_toboolean(L, 2);
	luaL_Buffer b;
	char *dst = luaL_buffinitsize(L, &b, 3 * src.len + 1);
	sigv4_uri_encode(dst, 3 * src.len + 1, &n, src, keep_slash);
	luaL_pushresultsize(&b, n);
	return 1;
}

/* s3sign.parse_endpoint(url) -> { scheme =, host = "host[:port]", ip = bool } | nil, message */
static int l_parse_endpoint(lua_State *L)
{
	struct sigv4_str text;
	struct sigv4_endpoint e;
	const char *why;
	text.ptr = luaL_checklstring(L, 1, &text.len);
	if (sigv4_parse_endpoint(&e, text, &why) != SIGV4_OK)
		return luaL_pushfail(L), lua_pushstring(L, why), 2;
	lua_createtable(L, 0, 3);
	lua_pushstring(L, e.https ? "https" : "http");
	lua_setfield(L, -2, "scheme");
	lua_pushlstring(L, e.host, e.host_len);
	lua_setfield(L, -2, "host");
	lua_pushboolean(L, e.ip_literal);
	lua_setfield(L, -2, "ip");
	return 1;
}

static int l_close(lua_State *L)
{
	close_signer(luaL_checkudata(L, 1, SIGNER_MT));
	return 0;
}

static int l_tostring(lua_State *L)
{
	struct signer *s = luaL_checkudata(L, 1, SIGNER_MT);
	lua_pushstring(L, s->closed ? SIGNER_MT " (closed)" : SIGNER_MT);
	return 1;
}

static const luaL_Reg signer_methods[] = {
	{ "slot", l_slot },
	{ "download", l_download },
	{ "presign", l_presign },
	{ "authorize", l_authorize },
	{ "set_credentials", l_set_credentials },
	{ "close", l_close },
	{ NULL, NULL }
};

static const luaL_Reg signer_metamethods[] = {
	{ "__gc", l_close },
	{ "__close", l_close },
	{ "__tostring", l_tostring },
	{ "__index", NULL },
	{ NULL, NULL }
};

static const luaL_Reg functions[] = {
	{ "new", l_new },
	{ "check", l_check },
	{ "uri_encode", l_uri_encode },
	{ "parse_endpoint", l_parse_endpoint },
	{ NULL, NULL }
};

/* The core's limits, for the Lua side to check options against (defined once, in sigv4.h). */
static void push_limits(lua_State *L)
{
	static const struct { const char *name; lua_Integer value; } limits[] = {
		{ "expires", SIGV4_MAX_EXPIRES },
		{ "key", SIGV4_MAX_KEY },
		{ "bucket", SIGV4_MAX_BUCKET },
		{ "session_token", SIGV4_MAX_SESSION_TOKEN },
	};
	lua_createtable(L, 0, sizeof limits / sizeof *limits);
	for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
		lua_pushinteger(L, limits[i].value);
		lua_setfield(L, -2, limits[i].name);
	}
}

S3SIGN_EXPORT int luaopen_s3sign(lua_State *L);
S3SIGN_EXPORT int luaopen_s3sign(lua_State *L)
{
	luaL_checkversion(L);
	luaL_newmetatable(L, SIGNER_MT);
	luaL_setfuncs(L, signer_metamethods, 0);
	luaL_newlibtable(L, signer_methods);
	lua_pushvalue(L, -2);
	luaL_setfuncs(L, signer_methods, 1);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	luaL_newlib(L, functions);
	lua_pushliteral(L, S3SIGN_VERSION);
	lua_setfield(L, -2, "_VERSION");
	push_limits(L);
	lua_setfield(L, -2, "limits");
	return 1;
}
