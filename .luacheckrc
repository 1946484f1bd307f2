-- luacheck: Prosody plugins run with a `module` global and Lua 5.4
std = "lua54"
max_line_length = 150
files["lua/"] = { globals = { "module" }, read_globals = { "prosody" } }
files["tests/integration/fault/"] = { }
files["tests/spec/"] = { std = "+busted", read_globals = { "module", "memory_store", "memory_records_stores" } }
files["tests/spec/helper.lua"] = { globals = { "module", "memory_store", "memory_records_stores" } }
files["bench/"] = { read_globals = { "module" } }
