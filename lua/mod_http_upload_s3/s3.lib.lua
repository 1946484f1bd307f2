-- The one client for every request the module sends to S3 (and to STS beside
-- it): signed by an s3sign signer, in the URL's query or in headers, sent by
-- the environment's HTTP (environment.lib.lua: net.http in the server,
-- LuaSocket in prosodyctl), answered with the error S3 wrote, read with util.xml.
--
--   local client = s3.new(signer, env.http)
--   client:send(method, key, options) -> response | nil, problem
--     options: query, headers, body (signed), presign (sign in the query instead of headers)
--     response: { status, headers, body, error = { code, message, region, canonical_request } | nil }
--   client:document(name, none) -> text | false (the bucket has none) | nil, response or problem
--   client:put_document(name, body), client:delete_document(name) -> response | nil, problem
--   client:delete_objects(keys) -> deleted keys (a set), failed keys ({ key = code }) | nil, problem
--     (S3's multi-object delete: at most MAX_DELETE keys a request, with the Content-MD5 it requires)
--   client:size(key) -> bytes | false (no such object) | nil, problem [, HTTP status when S3 answered]
--   s3.parse_error(body) -> { code, message, ... } | nil, s3.http_date(text) -> Unix seconds | nil

local st = require "util.stanza";
local xml = require "util.xml";
local hashes = require "util.hashes";
local base64 = require "util.encodings".base64;

local M = { MAX_DELETE = 1000 };   -- keys in one multi-object delete, S3's limit
local S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/";

-- The <Error> of an S3 answer, or STS's <ErrorResponse><Error>; nil when the body has none.
function M.parse_error(body)
	local ok, doc = pcall(xml.parse, body or "");
	if not ok or not doc then
		return nil;
	end
	local e = doc.name == "ErrorResponse" and doc:get_child("Error") or doc.name == "Error" and doc;
	if not e then
		return nil;
	end
	return {
		code = e:get_child_text("Code"),
		message = e:get_child_text("Message"),
		region = e:get_child_text("Region"),
		canonical_request = e:get_child_text("CanonicalRequest"),
	};
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11,
	Dec = 12 };

-- Seconds since the epoch of an HTTP Date ("Sat, 28 Nov 2026 07:24:02 GMT"): what the server's clock says.
function M.http_date(text)
	local d, mon, y, h, m, s = (text or ""):match("(%d+) (%a+) (%d+) (%d+):(%d+):(%d+) GMT");
	if not MONTHS[mon] then return nil; end
	y, mon = tonumber(y), MONTHS[mon];
	if mon <= 2 then y = y - 1; end -- days from civil, with the year starting in March
	local era = y // 400;
	local yoe = y - era * 400;
	local doy = (153 * (mon + (mon > 2 and -3 or 9)) + 2) // 5 + tonumber(d) - 1;
	local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy;
	return ((era * 146097 + doe - 719468) * 86400) + h * 3600 + m * 60 + s;
end

local client = {};
client.__index = client;

function M.new(signer, http)
	return setmetatable({ signer = signer, http = http }, client);
end

-- A signed request's URL and headers, without sending it: nil, problem when it cannot be signed.
function client:sign(method, key, options)
	options = options or {};
	local headers = {};
	for name, value in pairs(options.headers or {}) do headers[name] = value; end
	local signed = { query = options.query, headers = options.headers, body = options.body, now = options.now };
	if options.presign then
		local url, problem = self.signer:presign(method, key, signed);
		return url, url and headers or problem;
	end
	local url, auth = self.signer:authorize(method, key, signed);
	if not url then
		return nil, auth;
	end
	for name, value in pairs(auth) do headers[name] = value; end
	return url, headers;
end

function client:send(method, key, options)
	local url, headers = self:sign(method, key, options);
	if not url then
		return nil, headers;
	end
	local response, problem = self.http({ method = method, url = url, headers = headers,
		body = options and options.body });
	if not response then
		return nil, problem;
	end
	if response.status >= 300 then
		response.error = M.parse_error(response.body) or {};
	end
	return response;
end

-- A bucket's document (policy, cors, lifecycle): its text, or false when S3 answers with the code
-- `none` for it; nil and the response (or a problem) when it cannot be read.
function client:document(name, none)
	local response, problem = self:send("GET", "", { query = { [name] = "" } });
	if not response then
		return nil, problem;
	elseif response.status == 404 and response.error.code == none then
		return false;
	elseif response.status ~= 200 then
		return nil, response;
	end
	return response.body;
end

-- S3 wants a checksum of lifecycle and CORS documents and of multi-object deletes;
-- Content-MD5 is the one every provider takes.
local function md5_of(body)
	return { ["Content-MD5"] = base64.encode(hashes.md5(body)) };
end

function client:put_document(name, body)
	return self:send("PUT", "", { query = { [name] = "" }, body = body, headers = md5_of(body) });
end

function client:delete_document(name)
	return self:send("DELETE", "", { query = { [name] = "" } });
end

function client:delete_objects(keys)
	assert(#keys >= 1 and #keys <= M.MAX_DELETE, "1 to MAX_DELETE keys");
	local request = st.stanza("Delete", { xmlns = S3_NS }):text_tag("Quiet", "false");
	for _, key in ipairs(keys) do
		request:tag("Object"):text_tag("Key", key):up();
	end
	local body = tostring(request);
	local response, problem = self:send("POST", "", { query = { delete = "" }, body = body, headers = md5_of(body) });
	if not response then
		return nil, problem;
	elseif response.status ~= 200 then
		return nil, ("HTTP %d %s"):format(response.status, response.error.code or "");
	end
	local ok, doc = pcall(xml.parse, response.body);
	if not ok or not doc or doc.name ~= "DeleteResult" then
		return nil, "the answer to a multi-object delete is not a DeleteResult";
	end
	local deleted, failed = {}, {};
	for el in doc:childtags("Deleted") do
		deleted[el:get_child_text("Key") or ""] = true;
	end
	for el in doc:childtags("Error") do
		failed[el:get_child_text("Key") or ""] = el:get_child_text("Code") or "Error";
	end
	return deleted, failed;
end

function client:size(key)
	local response, problem = self:send("HEAD", key);
	if not response then
		return nil, problem;
	elseif response.status == 404 then
		return false;
	elseif response.status ~= 200 then
		return nil, ("HTTP %d"):format(response.status), response.status;
	end
	return tonumber(response.headers["content-length"]) or 0;
end

return M;
