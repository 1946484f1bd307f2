-- authorize_cases.lua - sign a batch of header-signed requests with s3sign, for botocore_crosscheck.py.
--
--   lua5.4 authorize_cases.lua 'build/?.so' < cases > results
--
-- One case per input line, 15 tab-separated fields, each hex-encoded:
--   access_key_id secret_key session_token region service endpoint bucket path_style
--   method key now body headers query unsigned
-- headers and query are name NUL value NUL ...; an empty field is absent, and
-- an absent body is an unsigned payload when unsigned is "u", else an empty body.
-- One result per output line, fields hex-encoded and tab-separated:
--   OK url headers     (headers as name NUL value NUL ..., in name order)
--   ERR message

package.cpath = assert(arg[1], "usage: authorize_cases.lua CPATH") .. ";" .. package.cpath
local s3sign = require "s3sign"

local FIELDS = {
	"access_key_id", "secret_key", "session_token", "region", "service", "endpoint", "bucket", "path_style",
	"method", "key", "now", "body", "headers", "query", "unsigned",
}

local hexfields = dofile((arg[0]:match("^(.*)/") or ".") .. "/hexfields.lua")

local function unpack_pairs(s)
	local t = {}
	for name, value in s:gmatch("([^%z]*)%z([^%z]*)%z") do
		t[name] = value
	end
	return t
end

local function pack_pairs(t)
	local names = {}
	for name in pairs(t) do names[#names + 1] = name end
	table.sort(names)
	local out = {}
	for _, name in ipairs(names) do out[#out + 1] = name .. "\0" .. t[name] .. "\0" end
	return table.concat(out)
end

-- url, headers | nil, message
local function sign(c)
	local signer, err = s3sign.new{
		access_key_id = c.access_key_id, secret_key = c.secret_key, session_token = c.session_token,
		region = c.region, service = c.service, endpoint = c.endpoint, bucket = c.bucket,
		path_style = c.path_style == "1",
	}
	if not signer then
		return nil, "new: " .. err
	end
	local url, headers = signer:authorize(c.method, c.key or "", {
		now = math.tointeger(tonumber(c.now)), headers = unpack_pairs(c.headers or ""),
		query = unpack_pairs(c.query or ""), body = c.unsigned ~= "u" and (c.body or "") or nil,
	})
	signer:close()
	if not url then
		return nil, "authorize: " .. headers
	end
	return url, pack_pairs(headers)
end

for line in io.lines() do
	local result = table.pack(pcall(function() return sign(hexfields.decode(line, FIELDS)) end))
	if result[1] and result[2] then
		hexfields.write(true, result[2], result[3])
	else
		hexfields.write(false, result[result[1] and 3 or 2])
	end
end
