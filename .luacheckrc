-- luacheck: Prosody plugins run with a `module` global and Lua 5.4
std = "lua54"
max_line_length = 150
files["lua/"] = { globals = { "module" }, read_globals = { "prosody" } }
files["tests/integration/fault/"] = { }
files["tests/spec/"] = { std = "+busted", read_globals = { "module" } }
files["tests/spec/helper.lua"] = { globals = { "module" } }
files["bench/"] = { read_globals = { "module" } }
