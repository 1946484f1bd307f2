/*
 * ls3sign.c - Lua 5.4 binding of the SigV4 presigner: require "s3sign".
 *
 *   local signer, err = s3sign.new{ access_key_id=, secret_key=, region=, bucket=, ... }
 *   local put_url, get_url, headers, key = signer:presign(filename, size [, content_type [, opts]])
 *
 * Wrong argument types raise; bad values return nil and a message naming the
 * field. This file owns the clock and the random object ids; sigv4.c has
 * neither. The module is not linked against liblua: the host provides it.
 */
#include <pthread.h>           /* pthread_atfork(3) */
#include <string.h>            /* memcpy(3) strlen(3) */
#include <time.h>              /* time(2) */

#include <lua.h>
#include <lauxlib.h>
#include <openssl/err.h>       /* ERR_clear_error(3) */
#include <openssl/rand.h>      /* RAND_bytes(3) */
#include <uuid/uuid.h>         /* uuid_unparse_lower(3) */

#include "sigv4.h"

#define S3SIGN_EXPORT __attribute__((visibility("default")))
#define SIGNER_MT "s3sign.signer"
#define VERSION "0.1.0"

#define UUID_LEN 36
#define MAX_PREFIX 256
#define MAX_GET_URL 512
#define MAX_OBJECT_SIZE (INT64_C(5) << 30)   /* S3's single-PUT limit: 5 GiB */
#define UUID_POOL 4096                       /* random bytes fetched at once: 256 ids */
#define BUF_LEN 32768                        /* fits every request the limits allow */

/*
** Random bytes for object ids, drawn from OpenSSL's CSPRNG in bulk: one
** RAND_bytes call costs about as much as a whole presigned URL. A forked child
** must not reuse its parent's bytes, so fork() empties every pool.
*/
static unsigned long fork_generation;

static void after_fork_in_child(void)
{
	fork_generation++;
}

struct signer {
	struct sigv4_signer core;
	int closed;
	uint32_t put_expires, get_expires;  /* get_expires 0: public GET URLs */
	unsigned long pool_generation;
	size_t pool_used;
	unsigned char pool[UUID_POOL];
	/*
	** Object keys are built here after the "prefix/" written at creation,
	** and public GET URLs in get_url after the base and '/' put there at
	** creation (get_base_len + 1 bytes, which presigned GET URLs overwrite).
	*/
	size_t key_head_len, get_base_len;
	char key[MAX_PREFIX + UUID_LEN + 2 + SIGV4_MAX_KEY];
	char url[BUF_LEN], get_url[BUF_LEN], creq[BUF_LEN];
};

/*
** Upvalues of the methods, so that the hot path looks up no strings (the
** registry by name, the string cache behind lua_setfield).
*/
#define UPVALUE_MT lua_upvalueindex(1)
#define UPVALUE_CONTENT_LENGTH lua_upvalueindex(2)
#define UPVALUE_CONTENT_TYPE lua_upvalueindex(3)
#define METHOD_UPVALUES 3

/* luaL_checkudata, against the metatable in an upvalue. */
static struct signer *check_signer(lua_State *L)
{
	struct signer *s = lua_touserdata(L, 1);
	if (!s || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, UPVALUE_MT))
		luaL_typeerror(L, 1, SIGNER_MT);
	lua_pop(L, 1);
	luaL_argcheck(L, !s->closed, 1, "signer is closed");
	return s;
}

static void wipe_signer(struct signer *s)
{
	sigv4_wipe(s, sizeof *s);
	s->closed = 1;
}

/* A v4 UUID (RFC 9562: 122 random bits), formatted by libuuid: 36 lowercase characters and a NUL. */
static int new_uuid(struct signer *s, char *out)
{
	if (s->pool_generation != fork_generation || s->pool_used + 16 > sizeof s->pool) {
		if (RAND_bytes(s->pool, sizeof s->pool) != 1) {
			ERR_clear_error();
			return 0;
		}
		s->pool_generation = fork_generation;
		s->pool_used = 0;
	}
	unsigned char *u = s->pool + s->pool_used;
	u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
	u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
	uuid_unparse_lower(u, out);
	sigv4_wipe(u, 16);
	s->pool_used += 16;
	return 1;
}

/* ---- reading the config table ------------------------------------------- */

/* Optional string field: raises on a wrong type or an embedded NUL. */
static struct sigv4_str opt_string(lua_State *L, int t, const char *field)
{
	struct sigv4_str s = { "", 0 };
	if (lua_getfield(L, t, field) != LUA_TNIL) {
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "bad config field '%s' (string expected, got %s)", field, luaL_typename(L, -1));
		s.ptr = lua_tolstring(L, -1, &s.len);
		if (strlen(s.ptr) != s.len)
			luaL_error(L, "bad config field '%s' (embedded NUL)", field);
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
			luaL_error(L, "bad config field '%s' (integer expected, got %s)", field, luaL_typename(L, -1));
	}
	lua_pop(L, 1);
	return v;
}

static int opt_boolean(lua_State *L, int t, const char *field)
{
	int v = 0;
	if (lua_getfield(L, t, field) != LUA_TNIL) {
		if (lua_type(L, -1) != LUA_TBOOLEAN)
			luaL_error(L, "bad config field '%s' (boolean expected, got %s)", field, luaL_typename(L, -1));
		v = lua_toboolean(L, -1);
	}
	lua_pop(L, 1);
	return v;
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

/*
** The headers an upload signs, into h: content-length when size is not
** negative, content-type when one is given. Returns how many.
*/
static size_t upload_headers(struct sigv4_pair h[2], char length[SIGV4_DECIMAL_LEN], lua_Integer size,
                             struct sigv4_str type)
{
	size_t n = 0;
	if (size >= 0)
		h[n++] = (struct sigv4_pair){ { "content-length", 14 }, { length, sigv4_decimal(length, (uint64_t)size) } };
	if (type.len)
		h[n++] = (struct sigv4_pair){ { "content-type", 12 }, type };
	return n;
}

/*
** s3sign.new(config) -> signer | nil, message
** The userdata exists (with its metatable, so __gc wipes it) before any
** secret is copied into it.
*/
static int l_new(lua_State *L)
{
	struct sigv4_config c;
	const char *why = NULL;

	luaL_checktype(L, 1, LUA_TTABLE);
	c.access_key_id = opt_string(L, 1, "access_key_id");
	c.secret_key = opt_string(L, 1, "secret_key");
	c.session_token = opt_string(L, 1, "session_token");
	c.region = opt_string(L, 1, "region");
	c.service = (struct sigv4_str){ "", 0 };
	c.endpoint = opt_string(L, 1, "endpoint");
	c.bucket = opt_string(L, 1, "bucket");
	c.path_style = opt_boolean(L, 1, "path_style");
	struct sigv4_str prefix = opt_string(L, 1, "prefix");
	struct sigv4_str get_url = opt_string(L, 1, "get_url");
	lua_Integer put_expires = opt_integer(L, 1, "put_expires", 300);
	lua_Integer get_expires = opt_integer(L, 1, "get_expires", 0);

	if (!expires_ok(put_expires))
		return fail(L, "put_expires", "must be 1..604800 seconds");
	if (get_expires != 0 && !expires_ok(get_expires))
		return fail(L, "get_expires", "must be 1..604800 seconds");
	if (prefix.len >= MAX_PREFIX)
		return fail(L, "prefix", "too long");
	if (get_url.len >= MAX_GET_URL)
		return fail(L, "get_url", "too long");

	struct signer *s = lua_newuserdatauv(L, sizeof *s, 0);
	memset(s, 0, sizeof *s);
	s->closed = 1;
	luaL_setmetatable(L, SIGNER_MT);
	if (sigv4_signer_init(&s->core, &c, &why) != SIGV4_OK)
		return luaL_pushfail(L), lua_pushstring(L, why), 2;
	if (prefix.len) {
		memcpy(s->key, prefix.ptr, prefix.len);
		s->key[prefix.len] = '/';
		s->key_head_len = prefix.len + 1;
	}
	s->put_expires = (uint32_t)put_expires;
	s->get_expires = (uint32_t)get_expires;
	s->pool_used = sizeof s->pool;   /* empty: filled on first use */
	if (get_url.len) {
		memcpy(s->get_url, get_url.ptr, get_url.len);
		s->get_base_len = get_url.len;
		while (s->get_base_len && s->get_url[s->get_base_len - 1] == '/')
			s->get_base_len--;
	} else if (sigv4_bucket_url(s->get_url, MAX_GET_URL, &s->get_base_len, &s->core) != SIGV4_OK) {
		return fail(L, "endpoint", "too long");
	}
	s->get_url[s->get_base_len] = '/';
	s->closed = 0;
	return 1;
}

/* ---- presigning --------------------------------------------------------- */

struct slot_options {
	int64_t now;
	struct sigv4_str id;            /* empty: a fresh random UUID */
	struct sigv4_str disposition;   /* response-content-disposition of a presigned GET */
	struct sigv4_str response_type; /* response-content-type of a presigned GET */
};

static void read_options(lua_State *L, int t, struct slot_options *o)
{
	o->now = (int64_t)time(NULL);
	o->id = (struct sigv4_str){ "", 0 };
	o->disposition = o->response_type = o->id;
	if (lua_isnoneornil(L, t))
		return;
	luaL_checktype(L, t, LUA_TTABLE);
	o->now = opt_integer(L, t, "now", o->now);
	o->id = opt_string(L, t, "id");
	o->disposition = opt_string(L, t, "disposition");
	o->response_type = opt_string(L, t, "response_type");
}

static const char *status_message(int status)
{
	return status == SIGV4_EINVAL ? "invalid filename or content type" : sigv4_strerror(status);
}

/*
** signer:presign(filename, size [, content_type [, options]])
**   -> put_url, get_url, headers, key | nil, message
** signer:slot(...) -> put_url, get_url, key: the same without the headers
** table, which the module does not need and which costs a tenth of a slot.
** options: now (Unix seconds), id (instead of a random UUID), and for
** presigned GETs the headers S3 should answer with: disposition
** (response-content-disposition) and response_type (response-content-type).
*/
static int presign(lua_State *L, int with_headers)
{
	struct signer *s = check_signer(L);
	size_t name_len, type_len = 0;
	const char *name = luaL_checklstring(L, 2, &name_len);
	luaL_checktype(L, 3, LUA_TNUMBER);
	lua_Integer size = luaL_checkinteger(L, 3);
	const char *type = luaL_optlstring(L, 4, "", &type_len);
	struct slot_options o;
	char length[SIGV4_DECIMAL_LEN], *key = s->key;
	size_t key_len = s->key_head_len, url_len, get_len, get_wipe_from = 0;
	int status;

	read_options(L, 5, &o);
	if (size < 0 || size > MAX_OBJECT_SIZE)
		return fail(L, "size", "must be 0..5368709120 bytes");
	if (name_len == 0 || name_len > SIGV4_MAX_KEY)
		return fail(L, "filename", "must be 1..1024 bytes");
	if (o.id.len > UUID_LEN)
		return fail(L, "id", "too long");
	if (o.id.len == 0) {
		if (!new_uuid(s, key + key_len))   /* in place; its NUL becomes the '/' below */
			return fail(L, "id", "no random bytes available");
		key_len += UUID_LEN;
	} else {
		memcpy(key + key_len, o.id.ptr, o.id.len);
		key_len += o.id.len;
	}
	key[key_len++] = '/';
	memcpy(key + key_len, name, name_len);
	key_len += name_len;
	if (key_len > SIGV4_MAX_KEY)
		return fail(L, "filename", "object key longer than 1024 bytes");

	struct sigv4_pair headers[2];
	size_t n_headers = upload_headers(headers, length, size, (struct sigv4_str){ type, type_len });
	struct sigv4_request put = {
		{ "PUT", 3 }, { key, key_len }, headers, n_headers, NULL, 0, o.now, s->put_expires
	};
	status = sigv4_presign(s->url, sizeof s->url, &url_len, &s->core, &put, s->creq, sizeof s->creq, NULL);
	if (status != SIGV4_OK)
		return fail(L, "presign", status_message(status));

	if (s->get_expires) {
		struct sigv4_pair query[2];
		size_t n_query = 0;
		if (o.disposition.len)
			query[n_query++] = (struct sigv4_pair){ { "response-content-disposition", 28 }, o.disposition };
		if (o.response_type.len)
			query[n_query++] = (struct sigv4_pair){ { "response-content-type", 21 }, o.response_type };
		struct sigv4_request get = {
			{ "GET", 3 }, { key, key_len }, NULL, 0, query, n_query, o.now, s->get_expires
		};
		status = sigv4_presign(s->get_url, sizeof s->get_url, &get_len, &s->core, &get, s->creq,
		                       sizeof s->creq, NULL);
		if (status != SIGV4_OK)
			return fail(L, "presign", status_message(status));
	} else {
		/* public: after the base and '/', the key as the PUT URL already has it encoded */
		struct sigv4_str encoded = sigv4_url_key(&s->core, s->url, url_len);
		get_wipe_from = s->get_base_len + 1;
		get_len = get_wipe_from + encoded.len;
		if (get_len > sizeof s->get_url)
			return fail(L, "get_url", "too long");
		memcpy(s->get_url + get_wipe_from, encoded.ptr, encoded.len);
	}

	lua_pushlstring(L, s->url, url_len);
	lua_pushlstring(L, s->get_url, get_len);
	if (with_headers) {
		lua_createtable(L, 0, 2);
		lua_pushvalue(L, UPVALUE_CONTENT_LENGTH);
		lua_pushlstring(L, length, headers[0].value.len);
		lua_rawset(L, -3);
		if (type_len) {
			lua_pushvalue(L, UPVALUE_CONTENT_TYPE);
			lua_pushvalue(L, 4);
			lua_rawset(L, -3);
		}
	}
	lua_pushlstring(L, key, key_len);
	/* the URLs are credentials until they expire: leave no copy behind (the base is public) */
	sigv4_wipe(s->url, url_len);
	sigv4_wipe(s->get_url + get_wipe_from, get_len - get_wipe_from);
	return with_headers ? 4 : 3;
}

static int l_presign(lua_State *L)
{
	return presign(L, 1);
}

static int l_slot(lua_State *L)
{
	return presign(L, 0);
}

/*
** signer:sign(method, key [, options]) -> url [, canonical_request] | nil, message
** A presigned URL for any method on an object key as presign() makes them, for
** tools such as "prosodyctl mod_http_upload_s3 check". options: now, expires
** (default: the PUT lifetime), content_length and content_type (signed when
** given), trace (also return the canonical request; it holds no secret).
*/
static int l_sign(lua_State *L)
{
	struct signer *s = check_signer(L);
	struct sigv4_str method, key, type = { "", 0 };
	char length[SIGV4_DECIMAL_LEN];
	size_t url_len, creq_len;
	int64_t now = (int64_t)time(NULL);
	lua_Integer expires = s->put_expires, content_length = -1;
	int trace = 0;

	method.ptr = luaL_checklstring(L, 2, &method.len);
	key.ptr = luaL_checklstring(L, 3, &key.len);
	if (!lua_isnoneornil(L, 4)) {
		luaL_checktype(L, 4, LUA_TTABLE);
		now = opt_integer(L, 4, "now", now);
		expires = opt_integer(L, 4, "expires", expires);
		content_length = opt_integer(L, 4, "content_length", -1);
		type = opt_string(L, 4, "content_type");
		trace = opt_boolean(L, 4, "trace");
	}
	if (!expires_ok(expires))
		return fail(L, "expires", "must be 1..604800 seconds");
	if (content_length < -1 || content_length > MAX_OBJECT_SIZE)
		return fail(L, "content_length", "must be 0..5368709120 bytes");

	struct sigv4_pair headers[2];
	size_t n_headers = upload_headers(headers, length, content_length, type);
	struct sigv4_request r = { method, key, headers, n_headers, NULL, 0, now, (uint32_t)expires };
	int status = sigv4_presign(s->url, sizeof s->url, &url_len, &s->core, &r, s->creq, sizeof s->creq, &creq_len);
	if (status != SIGV4_OK)
		return fail(L, "sign", status == SIGV4_EINVAL ? "invalid method or key" : sigv4_strerror(status));
	lua_pushlstring(L, s->url, url_len);
	sigv4_wipe(s->url, url_len);
	if (!trace)
		return 1;
	lua_pushlstring(L, s->creq, creq_len);
	return 2;
}

/* s3sign.uri_encode(s) -> s with every byte but A-Za-z0-9-._~ as %XX (for RFC 8187 filename*) */
static int l_uri_encode(lua_State *L)
{
	struct sigv4_str src;
	size_t n;
	src.ptr = luaL_checklstring(L, 1, &src.len);
	luaL_Buffer b;
	char *dst = luaL_buffinitsize(L, &b, 3 * src.len + 1);
	sigv4_uri_encode(dst, 3 * src.len + 1, &n, src, 0);
	luaL_pushresultsize(&b, n);
	return 1;
}

static int l_close(lua_State *L)
{
	struct signer *s = luaL_checkudata(L, 1, SIGNER_MT);
	wipe_signer(s);
	return 0;
}

static int l_tostring(lua_State *L)
{
	struct signer *s = luaL_checkudata(L, 1, SIGNER_MT);
	if (s->closed)
		lua_pushstring(L, SIGNER_MT " (closed)");
	else
		lua_pushfstring(L, SIGNER_MT " (bucket %s, region %s)", s->core.bucket, s->core.region);
	return 1;
}

static const luaL_Reg signer_methods[] = {
	{ "presign", l_presign },
	{ "slot", l_slot },
	{ "sign", l_sign },
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
	{ "uri_encode", l_uri_encode },
	{ NULL, NULL }
};

S3SIGN_EXPORT int luaopen_s3sign(lua_State *L);
S3SIGN_EXPORT int luaopen_s3sign(lua_State *L)
{
	static int atfork_registered;

	luaL_checkversion(L);
	if (!atfork_registered)
		atfork_registered = pthread_atfork(NULL, NULL, after_fork_in_child) == 0;
	luaL_newmetatable(L, SIGNER_MT);
	luaL_setfuncs(L, signer_metamethods, 0);
	luaL_newlibtable(L, signer_methods);
	lua_pushvalue(L, -2);
	lua_pushliteral(L, "Content-Length");
	lua_pushliteral(L, "Content-Type");
	luaL_setfuncs(L, signer_methods, METHOD_UPVALUES);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	luaL_newlib(L, functions);
	lua_pushliteral(L, VERSION);
	lua_setfield(L, -2, "_VERSION");
	return 1;
}
