-- sign_cases.lua - presign a batch of cases with s3sign, for botocore_crosscheck.py.
--
--   lua5.4 sign_cases.lua 'build/?.so' < cases > results
--
-- One case per input line, 16 tab-separated fields, each hex-encoded (so any
-- byte can travel); an empty field is an absent optional value:
--   access_key_id secret_key session_token region endpoint bucket path_style
--   prefix put_expires get_expires filename size content_type now id disposition
-- One result per output line, fields hex-encoded and tab-separated:
--   OK put_url get_url key
--   ERR message
-- A case that fails (nil + message, or a raised error) does not stop the batch.

package.cpath = assert(arg[1], "usage: sign_cases.lua CPATH") .. ";" .. package.cpath
local s3sign = require "s3sign"

local FIELDS = {
	"access_key_id", "secret_key", "session_token", "region", "endpoint", "bucket", "path_style",
	"prefix", "put_expires", "get_expires", "filename", "size", "content_type", "now", "id",
	"disposition",
}

local hexfields = dofile((arg[0]:match("^(.*)/") or ".") .. "/hexfields.lua")

local function integer(s)
	return s and math.tointeger(tonumber(s))
end

-- put_url, get_url, key | nil, message
local function sign(c)
	local signer, err = s3sign.new{
		access_key_id = c.access_key_id,
		secret_key = c.secret_key,
		session_token = c.session_token,
		region = c.region,
		endpoint = c.endpoint,
		bucket = c.bucket,
		path_style = c.path_style == "1",
		put_expires = integer(c.put_expires),
	}
	if not signer then
		return nil, "new: " .. err
	end
	local put_url, get_url, key = signer:slot(c.prefix and c.prefix .. "/" or "", c.filename, integer(c.size), c.content_type,
		{ now = integer(c.now), id = c.id, get_expires = integer(c.get_expires), disposition = c.disposition })
	signer:close()
	if not put_url then
		return nil, "slot: " .. get_url
	end
	return put_url, get_url, key
end

for line in io.lines() do
	local result = table.pack(pcall(function() return sign(hexfields.decode(line, FIELDS)) end))
	if result[1] and result[2] then
		hexfields.write(true, table.unpack(result, 2, result.n))
	else
		hexfields.write(false, result[result[1] and 3 or 2])
	end
end
