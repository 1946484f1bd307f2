-- Which of this service's files a URL names, in any form its URLs take: a
-- presigned PUT or GET, the public GET, the http_upload_s3_get_url (CDN) form;
-- the query and fragment ignored, the percent-encoding as anyone may write it
-- (any case, any character encoded), the scheme's default port written or not.
-- Pure: a checked configuration (config.lib.lua) and the URL.
--
--   urls.key_of(cfg, url) -> object key, purpose name | nil, why not
--   urls.bases(cfg) -> how the service's download links begin ("https://bucket.host/"), to find them in text
--
-- A URL outside this service's folders, or of another bucket or host, is
-- refused: what an admin takes down by URL must be one of this host's files.

local s3sign = require "s3sign";
local request = module:require "request";

-- "HTTPS://Files.Example:443" -> "https://files.example"
local function origin(scheme, authority)
	scheme, authority = scheme:lower(), authority:lower();
	local default = scheme == "https" and ":443" or ":80";
	if authority:sub(-#default) == default then
		authority = authority:sub(1, -#default - 1);
	end
	return scheme .. "://" .. authority;
end

-- Where the service's objects live, as origin and path prefix pairs: the bucket's URL (the one
-- its PUT URLs and presigned GETs use), and the download base when there is one.
local function bases(cfg)
	local list = {};
	local endpoint = cfg.endpoint and s3sign.parse_endpoint(cfg.endpoint)
		or { scheme = "https", host = "s3." .. cfg.region .. ".amazonaws.com" };
	if cfg.path_style then
		table.insert(list, { origin(endpoint.scheme, endpoint.host), "/" .. cfg.bucket .. "/" });
	else
		table.insert(list, { origin(endpoint.scheme, cfg.bucket .. "." .. endpoint.host), "/" });
	end
	if cfg.get_url then
		local scheme, authority, path = cfg.get_url:match("^(%a+)://([^/]+)(.*)$");
		table.insert(list, { origin(scheme, authority), (path:gsub("/*$", "/")) });
	end
	return list;
end

local function decode(path)
	return (path:gsub("%%(%x%x)", function (hex) return string.char(tonumber(hex, 16)); end));
end

local UUID = "%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x";

local function key_of(cfg, url)
	-- trimmed in linear time ("^%s*(.-)%s*$" is quadratic in a run of white space)
	url = (url or ""):match("^%s*(.*)$"):reverse():match("^%s*(.*)$"):reverse();
	local scheme, authority, path = url:match("^(%a+)://([^/?#%s]+)(/[^?#]*)");
	if not scheme or not (scheme:lower() == "http" or scheme:lower() == "https") then
		return nil, "not an http(s) URL";
	end
	local here = origin(scheme, authority);
	local decoded = decode(path);
	for _, base in ipairs(bases(cfg)) do
		if here == base[1] and decoded:sub(1, #base[2]) == base[2] then
			local key = decoded:sub(#base[2] + 1);
			for _, purpose in ipairs(cfg.purpose_list) do
				local prefix = purpose.key_prefix;
				if key:sub(1, #prefix) == prefix and key:sub(#prefix + 1):find("^" .. UUID .. "/[^/]+$")
						and not request.check_filename(key:match("[^/]+$")) then   -- a name the service signs
					return key, purpose.name;
				end
			end
			return nil, "not a file of this service's folders";
		end
	end
	return nil, "not a URL of this service's bucket or download address";
end

-- The beginnings of the links this service hands out for downloads: the download base
-- when there is one, else the bucket's URL; each with its folder's path.
local function link_bases(cfg)
	local list = bases(cfg);
	local base = list[#list];
	local found = {};
	for _, purpose in ipairs(cfg.purpose_list) do
		table.insert(found, base[1] .. base[2] .. s3sign.uri_encode(purpose.key_prefix, true));
	end
	return found;
end

return { key_of = key_of, bases = link_bases };
