-- lua_presign.lua - a plain Lua SigV4 presigner for S3 upload slots, the
-- baseline of bench_slot.lua.
--
-- It is written the obvious way, like a Lua-only Prosody module would be:
-- string building with gsub/concat, hashing through Prosody's util.hashes,
-- and the signing key derived again (four HMACs) for every URL. It mirrors
-- the interface of s3sign: new(config) and signer:slot(prefix, filename, size,
-- content_type, {now=, id=}) -> put_url, get_url, key, so the two can be
-- checked against each other and timed on the same work.
--
-- Needs package.cpath/package.path to reach Prosody's util.hashes.

local hashes = require "util.hashes"

local hmac_sha256, sha256 = hashes.hmac_sha256, hashes.sha256
local concat, os_date, os_time, format = table.concat, os.date, os.time, string.format

local new_id
do
	local ok, uuid = pcall(require, "util.uuid")
	if ok and type(uuid) == "table" and uuid.generate then
		new_id = uuid.generate
	else
		local random = math.random
		new_id = function()
			local t = {}
			for i = 1, 16 do
				t[i] = format("%02x", random(0, 255))
			end
			return concat(t)
		end
	end
end

local escapes = {}
for byte = 0, 255 do
	escapes[string.char(byte)] = format("%%%02X", byte)
end

-- Every byte outside A-Za-z0-9-._~ becomes %XX; '/' stays when keep_slash.
local function uri_encode(s, keep_slash)
	local pattern = keep_slash and "[^A-Za-z0-9%-%._~/]" or "[^A-Za-z0-9%-%._~]"
	return (s:gsub(pattern, escapes))
end

-- SigV4 header value normalisation: trim, collapse inner runs of spaces.
local function trimall(v)
	return (v:gsub("^ +", ""):gsub(" +$", ""):gsub("  +", " "))
end

local signer = {}
signer.__index = signer

local function new(config)
	local self = setmetatable({}, signer)
	self.access_key_id = assert(config.access_key_id, "access_key_id")
	self.secret_key = assert(config.secret_key, "secret_key")
	self.session_token = config.session_token
	self.region = assert(config.region, "region")
	self.bucket = assert(config.bucket, "bucket")
	self.path_style = config.path_style and true or false
	self.put_expires = config.put_expires or 300

	local scheme, authority
	if config.endpoint and config.endpoint ~= "" then
		scheme, authority = config.endpoint:match("^(https?)://([^/]+)/?$")
		assert(scheme, "endpoint: must be http(s)://host[:port]")
		local default_port = scheme == "https" and ":443" or ":80"
		if authority:sub(-#default_port) == default_port then
			authority = authority:sub(1, -#default_port - 1)
		end
	else
		scheme, authority = "https", "s3." .. self.region .. ".amazonaws.com"
	end
	self.scheme = scheme
	if self.path_style then
		self.host = authority
		self.base = scheme .. "://" .. authority .. "/" .. uri_encode(self.bucket)
	else
		self.host = self.bucket .. "." .. authority
		self.base = scheme .. "://" .. self.host
	end
	if config.get_url and config.get_url ~= "" then
		self.get_base = config.get_url:gsub("/+$", "")
	else
		self.get_base = self.base
	end
	return self
end

-- One presigned URL. headers: array of {lowercase name, value}, sorted by name.
function signer:sign(method, key, headers, expires, now)
	local amz_date = os_date("!%Y%m%dT%H%M%SZ", now)
	local day = amz_date:sub(1, 8)
	local scope = day .. "/" .. self.region .. "/s3/aws4_request"

	local names, lines = {}, {}
	for i, h in ipairs(headers) do
		names[i] = h[1]
		lines[i] = h[1] .. ":" .. trimall(h[2]) .. "\n"
	end
	local signed_headers = concat(names, ";")

	local query = "X-Amz-Algorithm=AWS4-HMAC-SHA256"
		.. "&X-Amz-Credential=" .. uri_encode(self.access_key_id .. "/" .. scope)
		.. "&X-Amz-Date=" .. amz_date
		.. "&X-Amz-Expires=" .. expires
	if self.session_token then
		query = query .. "&X-Amz-Security-Token=" .. uri_encode(self.session_token)
	end
	query = query .. "&X-Amz-SignedHeaders=" .. uri_encode(signed_headers)

	local path = uri_encode((self.path_style and "/" .. self.bucket .. "/" or "/") .. key, true)
	local canonical_request = method .. "\n" .. path .. "\n" .. query .. "\n"
		.. concat(lines) .. "\n" .. signed_headers .. "\nUNSIGNED-PAYLOAD"

	local string_to_sign = "AWS4-HMAC-SHA256\n" .. amz_date .. "\n" .. scope .. "\n"
		.. sha256(canonical_request, true)

	local k = hmac_sha256("AWS4" .. self.secret_key, day)
	k = hmac_sha256(k, self.region)
	k = hmac_sha256(k, "s3")
	k = hmac_sha256(k, "aws4_request")
	local signature = hmac_sha256(k, string_to_sign, true)

	return self.scheme .. "://" .. self.host .. path .. "?" .. query .. "&X-Amz-Signature=" .. signature
end

function signer:slot(prefix, filename, size, content_type, opts)
	local now = opts and opts.now or os_time()
	local id = opts and opts.id or new_id()
	local key = prefix .. id .. "/" .. filename
	local length = format("%d", size)

	local headers = { { "content-length", length } }
	if content_type and content_type ~= "" then
		headers[2] = { "content-type", content_type }
	end
	headers[#headers + 1] = { "host", self.host }
	local put_url = self:sign("PUT", key, headers, self.put_expires, now)

	local get_url
	local get_expires = opts and opts.get_expires
	if get_expires then
		get_url = self:sign("GET", key, { { "host", self.host } }, get_expires, now)
	else
		get_url = self.get_base .. "/" .. uri_encode(key, true)
	end
	return put_url, get_url, key
end

return {
	new = new,
	uri_encode = uri_encode,
	new_id = new_id,
}
