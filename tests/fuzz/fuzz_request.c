/*
 * fuzz_request.c - libFuzzer target for the XEP-0363 field parsers of
 * lua/mod_http_upload_s3/request.lib.lua, run in an embedded Lua 5.4.
 *
 * Each input, as one Lua string, goes to check_filename, parse_size and
 * check_content_type in protected mode. A Lua error, a result of the wrong
 * type or a broken invariant aborts:
 *   check_filename: nil (accepted) or a reason string; accepted exactly when
 *     the name is 1..255 bytes of strict UTF-8 without '/', '\', C0/C1
 *     controls or bidi controls, and is not only dots, white space and invisible format characters.
 *   parse_size: an integer only for a string of ASCII digits, equal to its
 *     decimal value; else nil and "format" (not digits) or "too-large" (more
 *     than 15 significant digits).
 *   check_content_type: accepted implies <= 255 bytes of printable ASCII
 *     (0x20..0x7e) shaped type/subtype; a bare type/subtype is accepted.
 *
 * Where the module is: -DREQUEST_LIB="path" at build time (relative to the
 * directory the fuzzer runs in), or FUZZ_REQUEST_LIB in the environment.
 * Prosody's tree (for util.stanza): -DPROSODY_SRC or FUZZ_PROSODY_SRC.
 *
 * libFuzzer sees only instrumented C, and neither liblua nor the Lua code
 * is: a line hook feeds the module's line-to-line transitions to libFuzzer
 * as extra coverage counters, so it can steer by which Lua branches ran.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#ifndef REQUEST_LIB
#define REQUEST_LIB "lua/mod_http_upload_s3/request.lib.lua"
#endif
#ifndef PROSODY_SRC
#define PROSODY_SRC "/usr/lib/prosody"
#endif

#define CHECK(cond) do { if (!(cond)) fail(#cond, __LINE__); } while (0)

static lua_State *L;
static int ref_filename, ref_size, ref_ctype;

/* Lua coverage: a counter per (previous line, line) pair, hashed */
#define LUA_EDGES 4096
__attribute__((section("__libfuzzer_extra_counters")))
static uint8_t lua_edges[LUA_EDGES];
static const char *module_source;   /* the module's chunk name, as Lua interned it */
static unsigned prev_line;

static void line_hook(lua_State *l, lua_Debug *ar)
{
	if (!lua_getinfo(l, "S", ar) || ar->source != module_source)
		return;
	unsigned cur = (unsigned)ar->currentline * 2654435761u >> 20;
	lua_edges[(cur ^ prev_line) % LUA_EDGES]++;
	prev_line = cur >> 1;
}

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_request: invariant violated at line %d: %s\n", line, what);
	abort();
}

static const char *env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);
	return v && *v ? v : fallback;
}

static int function_ref(const char *name)
{
	lua_getfield(L, -1, name);
	if (!lua_isfunction(L, -1)) {
		fprintf(stderr, "fuzz_request: the module has no function %s\n", name);
		exit(2);
	}
	return luaL_ref(L, LUA_REGISTRYINDEX);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *lib = env_or("FUZZ_REQUEST_LIB", REQUEST_LIB);
	const char *prosody = env_or("FUZZ_PROSODY_SRC", PROSODY_SRC);
	(void)argc, (void)argv;

	L = luaL_newstate();
	if (!L)
		abort();
	luaL_openlibs(L);
	lua_getglobal(L, "package");
	lua_pushfstring(L, "%s/?.lua;", prosody);
	lua_getfield(L, -2, "path");
	lua_concat(L, 2);
	lua_setfield(L, -2, "path");
	lua_pushfstring(L, "%s/?.so;", prosody);
	lua_getfield(L, -2, "cpath");
	lua_concat(L, 2);
	lua_setfield(L, -2, "cpath");
	lua_pop(L, 1);

	if (luaL_loadfile(L, lib) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
		fprintf(stderr, "fuzz_request: loading %s: %s\n", lib, lua_tostring(L, -1));
		exit(2);
	}
	if (!lua_istable(L, -1)) {
		fprintf(stderr, "fuzz_request: %s did not return a table\n", lib);
		exit(2);
	}
	lua_getfield(L, -1, "check_filename");
	lua_Debug ar;
	lua_getinfo(L, ">S", &ar);
	module_source = ar.source;   /* kept alive by the function, which the registry holds */
	ref_filename = function_ref("check_filename");
	ref_size = function_ref("parse_size");
	ref_ctype = function_ref("check_content_type");
	lua_settop(L, 0);
	lua_sethook(L, line_hook, LUA_MASKLINE, 0);
	return 0;
}

/* Call a module function on the input; its results are left on the stack, their count returned. */
static int call(int ref, const uint8_t *data, size_t size)
{
	lua_settop(L, 0);
	prev_line = 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	lua_pushlstring(L, (const char *)data, size);
	if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
		fprintf(stderr, "fuzz_request: Lua error: %s\n", lua_tostring(L, -1));
		abort();
	}
	return lua_gettop(L);
}

/* ---- reference checks, written from the module's comments ----------- */

/* Next code point of strict UTF-8 (no overlong forms, surrogates, > U+10FFFF), or -1. */
static long next_code_point(const uint8_t *p, size_t n, size_t *used)
{
	unsigned c = p[0], more, min;
	if (c < 0x80) {
		*used = 1;
		return c;
	}
	if (c >= 0xc0 && c <= 0xdf)
		more = 1, min = 0x80, c &= 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		more = 2, min = 0x800, c &= 0x0f;
	else if (c >= 0xf0 && c <= 0xf7)
		more = 3, min = 0x10000, c &= 0x07;
	else
		return -1;
	if (n < 1 + more)
		return -1;
	for (unsigned i = 1; i <= more; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return -1;
	*used = 1 + more;
	return (long)c;
}

static int is_bidi_control(long cp)
{
	return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
	       cp == 0x200e || cp == 0x200f || cp == 0x061c;
}

/* White space and the format characters that show as nothing (the Unicode lists, written out again). */
static int is_blank(long cp)
{
	static const long singles[] = { 0x20, 0x85, 0xa0, 0xad, 0x34f, 0x115f, 0x1160, 0x1680, 0x180e, 0x2028,
	                                0x2029, 0x202f, 0x3000, 0x3164, 0xfeff, 0xffa0 };
	for (size_t i = 0; i < sizeof singles / sizeof *singles; i++)
		if (cp == singles[i])
			return 1;
	return (cp >= '\t' && cp <= '\r') || (cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x205f && cp <= 0x2064);
}

/* What check_filename must decide, from its comments; and the weaker must-haves. */
static void check_filename(const uint8_t *data, size_t size)
{
	int n = call(ref_filename, data, size);
	CHECK(n <= 1);
	int accepted = n == 0 || lua_isnil(L, 1);
	if (!accepted)
		CHECK(lua_type(L, 1) == LUA_TSTRING && lua_rawlen(L, 1) > 0);

	int valid = size >= 1 && size <= 255, only_dots_spaces = 1, controls = 0, bidi = 0, separators = 0;
	for (size_t i = 0; i < size && valid;) {
		size_t used;
		long cp = next_code_point(data + i, size - i, &used);
		if (cp < 0) {
			valid = 0;
			break;
		}
		separators |= cp == '/' || cp == '\\';
		controls |= cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
		bidi |= is_bidi_control(cp);
		only_dots_spaces &= cp == '.' || is_blank(cp);
		i += used;
	}
	if (accepted) {
		/* the must-haves, stated on their own */
		CHECK(valid && !separators && !controls);
		CHECK(memchr(data, '/', size) == NULL && memchr(data, '\\', size) == NULL);
	}
	CHECK(accepted == (valid && !separators && !controls && !bidi && !only_dots_spaces));
}

static void check_size(const uint8_t *data, size_t size)
{
	int n = call(ref_size, data, size);
	int digits = size > 0;
	for (size_t i = 0; i < size; i++)
		digits &= data[i] >= '0' && data[i] <= '9';
	size_t zeros = 0;
	while (zeros < size && data[zeros] == '0')
		zeros++;

	if (n >= 1 && !lua_isnil(L, 1)) {
		CHECK(lua_isinteger(L, 1));
		CHECK(digits && size - zeros <= 15);
		char buf[16] = { 0 };
		memcpy(buf, data + zeros, size - zeros);
		unsigned long long want = strtoull(buf, NULL, 10);
		CHECK((unsigned long long)lua_tointeger(L, 1) == want && lua_tointeger(L, 1) >= 0);
		return;
	}
	CHECK(n == 2 && lua_type(L, 2) == LUA_TSTRING);
	const char *why = lua_tostring(L, 2);
	if (!digits)
		CHECK(strcmp(why, "format") == 0);
	else
		CHECK(strcmp(why, "too-large") == 0 && size - zeros > 15);
}

static int is_token_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$&-^_.+", c) != NULL);
}

static void check_content_type(const uint8_t *data, size_t size)
{
	int n = call(ref_ctype, data, size);
	CHECK(n <= 1);
	int accepted = n == 0 || lua_isnil(L, 1);
	if (!accepted)
		CHECK(lua_type(L, 1) == LUA_TSTRING && lua_rawlen(L, 1) > 0);

	/* a bare type/subtype of token characters */
	const uint8_t *slash = memchr(data, '/', size);
	int bare = size <= 255 && slash && slash > data && (size_t)(slash - data) + 1 < size;
	for (size_t i = 0; i < size && bare; i++)
		bare = data + i == slash || is_token_char(data[i]);
	if (bare)
		CHECK(accepted);

	if (accepted) {
		CHECK(size <= 255);
		for (size_t i = 0; i < size; i++)
			CHECK(data[i] >= 0x20 && data[i] < 0x7f);
		CHECK(slash && slash > data && is_token_char(slash[-1]));
		for (const uint8_t *p = data; p < slash; p++)
			CHECK(is_token_char(*p));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_filename(data, size);
	check_size(data, size);
	check_content_type(data, size);
	lua_settop(L, 0);
	return 0;
}
