/*
 * test_binding.c - drive the Lua binding from C, where memory can be inspected.
 *
 *   test_binding [N]   make N slots in a loop, with a header-signed request
 *                      and a change of credentials every 100 (default 1000;
 *                      valgrind runs 100000 to show that nothing leaks), then
 *                      check that no URL stays in the signer's memory and that
 *                      __gc leaves no secret there.
 */
#include <stdlib.h>

#include <lauxlib.h>
#include <lualib.h>

#include "unit.h"

int luaopen_s3sign(lua_State *L);

#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define TOKEN "FQoGZXIvYXdzEXAMPLETOKEN"

static const char setup[] =
	"local s3sign = require 's3sign'\n"
	"signer = assert(s3sign.new{ access_key_id = 'AKIAIOSFODNN7EXAMPLE', secret_key = '" SECRET "',\n"
	"  session_token = '" TOKEN "', region = 'eu-west-2', bucket = 'the-best-bucket', put_expires = 300 })\n";

static const char loop[] =
	"local n = ...\n"
	"for i = 1, n do\n"
	"  local put, get, key = signer:slot('http_uploads/', 'holiday photo ' .. i .. '.jpg', i, 'image/jpeg',\n"
	"    i % 2 == 0 and { get_expires = 3600 } or nil)\n"
	"  assert(put and get and key)\n"
	"  if i % 100 == 0 then\n"
	"    assert(signer:authorize('PUT', '', { query = { lifecycle = '' }, body = '<x/>' }))\n"
	"    assert(signer:set_credentials{ access_key_id = 'ASIA' .. i, secret_key = 'rotated ' .. i })\n"
	"  end\n"
	"end\n"
	"assert(signer:set_credentials{ access_key_id = 'AKIAIOSFODNN7EXAMPLE', secret_key = '" SECRET "',\n"
	"  session_token = '" TOKEN "' })\n";

static int run(lua_State *L, const char *code, lua_Integer arg)
{
	if (luaL_loadstring(L, code) != LUA_OK) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		return 0;
	}
	lua_pushinteger(L, arg);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		return 0;
	}
	return 1;
}

/* New credentials leave nothing of the old ones: no call keeps a canonical request or key behind. */
static void test_rotation_wipes(lua_State *L)
{
	CHECK(run(L, "assert(signer:slot('p/', 'pinned.txt', 1, 'text/plain', { get_expires = 60 }))\n"
	             "assert(signer:presign('GET', 'k', { trace = true }))\n"
	             "assert(signer:authorize('PUT', '', { query = { cors = '' }, body = '<x/>', trace = true }))\n"
	             "assert(signer:set_credentials{ access_key_id = 'AKIDROTATED', secret_key = 'rotated' })", 0));
	lua_getglobal(L, "signer");
	void *block = lua_touserdata(L, -1);
	size_t size = lua_rawlen(L, -1);
	CHECK(!contains(block, size, SECRET, sizeof SECRET - 1));
	CHECK(!contains(block, size, TOKEN, sizeof TOKEN - 1));
	CHECK(!contains(block, size, "AKIAIOSFODNN7EXAMPLE", 20));
	CHECK(!contains(block, size, "pinned.txt", 10));
	lua_pop(L, 1);
	CHECK(run(L, "assert(signer:set_credentials{ access_key_id = 'AKIAIOSFODNN7EXAMPLE', secret_key = '" SECRET "',\n"
	             "  session_token = '" TOKEN "' })", 0));
}

/* After __gc the userdata block is still ours to read while the stack holds it. */
static void test_gc_wipes(lua_State *L)
{
	CHECK(run(L, "signer:slot('p/', 'pinned.txt', 1, nil, { now = 1705320000, get_expires = 60 })", 0));
	lua_getglobal(L, "signer");
	void *block = lua_touserdata(L, -1);
	size_t size = lua_rawlen(L, -1);
	CHECK(contains(block, size, SECRET, sizeof SECRET - 1));
	CHECK(contains(block, size, TOKEN, sizeof TOKEN - 1));
	CHECK(!contains(block, size, "X-Amz-Signature", 15));   /* no URL left behind by a call */

	CHECK(luaL_callmeta(L, -1, "__gc"));
	lua_pop(L, 1);
	CHECK(!contains(block, size, SECRET, sizeof SECRET - 1));
	CHECK(!contains(block, size, TOKEN, sizeof TOKEN - 1));
	lua_pop(L, 1);

	CHECK(run(L, "assert(not pcall(signer.slot, signer, '', 'a', 1))", 0));   /* a wiped signer refuses to work */
}

int main(int argc, char **argv)
{
	lua_Integer n = argc > 1 ? strtoll(argv[1], NULL, 10) : 1000;
	lua_State *L = luaL_newstate();
	luaL_openlibs(L);
	luaL_requiref(L, "s3sign", luaopen_s3sign, 0);
	lua_pop(L, 1);

	CHECK(run(L, setup, 0));
	CHECK(run(L, loop, n));
	test_rotation_wipes(L);
	test_gc_wipes(L);

	lua_close(L);
	return UNIT_SUMMARY("test_binding");
}
