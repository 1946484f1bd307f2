-- luarocks make --lua-version 5.4 [--tree DIR]: builds s3sign.so with the Makefile and
-- installs it with the Prosody module; point plugin_paths at the tree (see README).
rockspec_format = "3.0"
package = "mod_http_upload_s3"
version = "0.1.0-1"
source = {
	url = "git+file://./mod_http_upload_s3",
}
description = {
	summary = "XEP-0363 HTTP File Upload for Prosody, straight to S3-compatible storage",
	detailed = [[
Prosody module that answers upload slot requests with presigned S3 URLs
(AWS Signature Version 4), signed by a small C library using OpenSSL.
]],
	license = "MIT",
}
dependencies = {
	"lua >= 5.4, < 5.5",
}
external_dependencies = {
	CRYPTO = { header = "openssl/evp.h" },
	UUID = { header = "uuid/uuid.h" },
}
build = {
	type = "make",
	build_target = "all",
	build_variables = {
		CFLAGS = "$(CFLAGS)",
		LUA_CFLAGS = "-I$(LUA_INCDIR)",
	},
	install_target = "install",
	install_variables = {
		-- the tree's C module folder, and its Lua folder, where Prosody's
		-- plugin loader looks (share/lua/5.4/mod_NAME/) for plugin_paths entries
		LUA_CMODDIR = "$(LIBDIR)",
		PROSODY_MODDIR = "$(LUADIR)",
	},
}
