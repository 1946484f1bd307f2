/*
 * test_binding.c - drive the Lua binding from C, where memory can be inspected.
 *
 *   test_binding [N]   presign N slots in a loop (default 1000; valgrind runs
 *                      100000 to show that nothing leaks), then check that
 *                      __gc leaves neither the secret nor the derived signing
 *                      key in the signer's memory.
 */
#include <stdlib.h>

#include <lauxlib.h>
#include <lualib.h>

#include "sigv4.h"
#include "unit.h"

int luaopen_s3sign(lua_State *L);

#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

static const char setup[] =
	"local s3sign = require 's3sign'\n"
	"signer = assert(s3sign.new{ access_key_id = 'AKIAIOSFODNN7EXAMPLE', secret_key = '" SECRET "',\n"
	"  region = 'eu-west-2', bucket = 'the-best-bucket', prefix = 'http_uploads', get_expires = 3600 })\n";

static const char loop[] =
	"local n = ...\n"
	"for i = 1, n do\n"
	"  local put, get, headers, key = signer:presign('holiday photo ' .. i .. '.jpg', i, 'image/jpeg')\n"
	"  assert(put and get and headers['Content-Length'] == tostring(i) and key)\n"
	"end\n";

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

static int contains(const void *hay, size_t hay_len, const void *needle, size_t needle_len)
{
	for (size_t i = 0; i + needle_len <= hay_len; i++)
		if (memcmp((const char *)hay + i, needle, needle_len) == 0)
			return 1;
	return 0;
}

/* After __gc the userdata block is still ours to read while the stack holds it. */
static void test_gc_wipes(lua_State *L)
{
	char amz_date[SIGV4_AMZ_DATE_LEN];
	uint8_t key[SIGV4_KEY_LEN];
	CHECK(run(L, "signer:presign('pinned.txt', 1, nil, { now = 1705320000 })", 0));
	sigv4_amz_date(amz_date, 1705320000);
	struct sigv4_str secret = { SECRET, sizeof SECRET - 1 };
	CHECK(sigv4_derive_key(key, secret, amz_date, (struct sigv4_str){ "eu-west-2", 9 },
	                       (struct sigv4_str){ "s3", 2 }) == SIGV4_OK);

	lua_getglobal(L, "signer");
	void *block = lua_touserdata(L, -1);
	size_t size = lua_rawlen(L, -1);
	CHECK(contains(block, size, SECRET, sizeof SECRET - 1));
	CHECK(contains(block, size, key, sizeof key));

	CHECK(luaL_callmeta(L, -1, "__gc"));
	lua_pop(L, 1);
	CHECK(!contains(block, size, SECRET, sizeof SECRET - 1));
	CHECK(!contains(block, size, key, sizeof key));
	CHECK(!contains(block, size, "X-Amz-Signature", 15));   /* no URL left behind either */
	lua_pop(L, 1);

	CHECK(run(L, "assert(not pcall(signer.presign, signer, 'a', 1))", 0));   /* a wiped signer refuses to work */
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
	test_gc_wipes(L);

	lua_close(L);
	return UNIT_SUMMARY("test_binding");
}
