-- Reading and checking the module's options, once, at load time.
-- Pure Lua: options come in through a function, so busted can test every rule.
--
--   local cfg, warnings = config.read(get, env)
--     get(name) -> the raw value of http_upload_s3_<name>, or nil
--     env.getenv(name), env.read_file(path) -> string | nil, err, env.parse_duration("5 minutes") -> 300
--   On a bad option, config.read raises { option = "http_upload_s3_<name>", problem = ... };
--   config.load(get) reads the process's environment and returns nil, "<option> <problem>" instead.

local PREFIX = "http_upload_s3_";
local MIB = 1024 * 1024;
local MAX_SINGLE_PUT = 5 * 1024 * MIB; -- S3 refuses larger single PUTs
local MAX_EXPIRES = 604800;            -- S3 refuses presigned URLs valid longer than 7 days

local function refuse(name, problem, ...)
	error({ option = PREFIX .. name, problem = problem:format(...) }, 0);
end

local function typed(get, name, lua_type, default)
	local value = get(name);
	if value == nil then
		return default;
	elseif type(value) ~= lua_type then
		refuse(name, "must be a %s, not %s", lua_type, type(value));
	end
	return value;
end

local function integer(get, name, default, min, max)
	local value = typed(get, name, "number", default);
	if not math.tointeger(value) then
		refuse(name, "must be a whole number");
	elseif value < min or value > max then
		refuse(name, "must be between %d and %d", min, max);
	end
	return math.tointeger(value);
end

-- A lifetime: seconds, or where Prosody can parse them (13 and later) a
-- period such as "5 minutes", as its own options take.
local function period(get, env, name, default, min, max)
	local value = get(name);
	if type(value) == "string" then
		if not env.parse_duration then
			refuse(name, "must be a number of seconds (periods such as \"5 minutes\" need Prosody 13)");
		end
		value = env.parse_duration(value);
		if not value then
			refuse(name, "must be seconds or a period such as \"5 minutes\"");
		end
	end
	return integer(function () return value; end, name, default, min, max);
end

-- A per-user limit: a whole number from min, or false for none (math.huge).
local function limit(get, name, default, min)
	if get(name) == false then
		return math.huge;
	end
	return integer(get, name, default, min, math.maxinteger);
end

-- A list option given as a Lua table (or a single string), as a set.
local function set(get, name, default)
	local value = get(name);
	if value == nil then
		value = default;
	elseif type(value) == "string" then
		value = { value };
	elseif type(value) ~= "table" then
		refuse(name, "must be a list of strings");
	end
	local s = {};
	for _, item in ipairs(value) do
		if type(item) ~= "string" then
			refuse(name, "must be a list of strings");
		end
		s[item] = true;
	end
	return s;
end

-- AWS region names: eu-west-2, us-gov-west-1, ap-southeast-3, cn-north-1 ...
local function is_aws_region(region)
	return region:find("^%l%l%-[%l%-]+%-%d+$") ~= nil;
end

-- S3's rules for new buckets, which also make the name usable in a host name.
local function is_dns_bucket(bucket)
	return #bucket >= 3 and #bucket <= 63
		and bucket:find("^[%l%d][%l%d.-]*[%l%d]$") ~= nil
		and not bucket:find("..", 1, true)
		and not bucket:find("^%d+%.%d+%.%d+%.%d+$")
end

-- What other S3 implementations and old AWS buckets accept (the seed's "the_best_bucket").
local function is_legacy_bucket(bucket)
	return #bucket >= 1 and #bucket <= 255 and bucket:find("^[%w._-]+$") ~= nil;
end

local function parse_endpoint(endpoint)
	local scheme, authority, rest = endpoint:match("^(https?)://([^/?#]*)(.*)$");
	if not scheme or authority == "" or authority:find("@", 1, true) or (rest ~= "" and rest ~= "/") then
		return nil;
	end
	local host, port = authority:match("^(%[[%x:.]+%])(.*)$");
	if not host then
		host, port = authority:match("^([%w.-]+)(.*)$");
	end
	if not host or not (port == "" or port:find("^:%d+$")) then
		return nil;
	end
	return scheme, host;
end

-- "http_uploads", "/http_uploads/" -> "http_uploads"; refuses dot and empty segments.
local function clean_path(path)
	path = path:gsub("^/+", ""):gsub("/+$", "");
	if path == "" then
		return "";
	elseif #path > 255 or not utf8.len(path) or path:find("[%c\\]") then
		return nil;
	end
	for segment in (path .. "/"):gmatch("([^/]*)/") do
		if segment == "" or segment == "." or segment == ".." then
			return nil;
		end
	end
	return path;
end

-- A credential from the config, a file, or the standard AWS environment variable.
local function credential(get, env, name, env_name, warnings)
	local literal = typed(get, name, "string");
	local file = typed(get, name .. "_file", "string");
	if literal and file then
		refuse(name, "and %s%s_file are both set; keep one", PREFIX, name);
	elseif file then
		local content, err = env.read_file(file);
		if not content then
			refuse(name .. "_file", "cannot be read: %s", tostring(err));
		end
		return (content:gsub("%s+$", ""));
	elseif literal then
		if name == "secret_key" then
			table.insert(warnings, PREFIX .. "secret_key is written in the config file; "
				.. PREFIX .. "secret_key_file or " .. env_name .. " keep it out of it");
		end
		return literal;
	end
	local from_env = env.getenv(env_name);
	return from_env ~= "" and from_env or nil;
end

local function read(get, env)
	local warnings = {};
	local cfg = {};

	cfg.access_key_id = credential(get, env, "access_id", "AWS_ACCESS_KEY_ID", warnings);
	cfg.secret_key = credential(get, env, "secret_key", "AWS_SECRET_ACCESS_KEY", warnings);
	cfg.session_token = credential(get, env, "session_token", "AWS_SESSION_TOKEN", warnings);
	if not cfg.access_key_id then
		refuse("access_id", "is required (or %saccess_id_file, or AWS_ACCESS_KEY_ID)", PREFIX);
	elseif not cfg.secret_key then
		refuse("secret_key", "is required (or %ssecret_key_file, or AWS_SECRET_ACCESS_KEY)", PREFIX);
	end
	if cfg.session_token then
		table.insert(warnings, "a static session token is configured: upload URLs fail once it expires");
	end

	cfg.endpoint = typed(get, "endpoint", "string");
	local scheme, host = "https", nil;
	if cfg.endpoint then
		scheme, host = parse_endpoint(cfg.endpoint);
		if not scheme then
			refuse("endpoint", "must be http(s)://host[:port], without a path, query or user name");
		elseif scheme == "http" then
			table.insert(warnings, PREFIX .. "endpoint is plain http: most clients refuse http:// upload URLs");
		end
	end

	cfg.region = typed(get, "region", "string") or env.getenv("AWS_REGION");
	if not cfg.region or cfg.region == "" then
		refuse("region", "is required, e.g. \"eu-west-2\" (\"us-east-1\" suits most S3-compatible servers)");
	elseif cfg.endpoint and not cfg.region:find("^[%l%d][%l%d_-]*$") then
		refuse("region", "must be lowercase letters, digits, '-' or '_'");
	elseif not cfg.endpoint and not is_aws_region(cfg.region) then
		refuse("region", "\"%s\" is not an AWS region name like eu-west-2 (set %sendpoint for other services)",
			cfg.region, PREFIX);
	end

	cfg.bucket = typed(get, "bucket", "string");
	cfg.path_style = typed(get, "path_style", "boolean", false);
	if not cfg.bucket then
		refuse("bucket", "is required");
	elseif not is_legacy_bucket(cfg.bucket) then
		refuse("bucket", "must be letters, digits, '.', '-' or '_' (at most 255)");
	elseif not cfg.path_style and not is_dns_bucket(cfg.bucket) then
		cfg.path_style = true;
		table.insert(warnings, ("bucket \"%s\" cannot be part of a host name: using path-style URLs"):format(cfg.bucket));
	elseif not cfg.path_style and scheme == "https" and cfg.bucket:find(".", 1, true) then
		cfg.path_style = true;
		table.insert(warnings, ("bucket \"%s\" has dots, which break TLS for bucket.host: using path-style URLs")
			:format(cfg.bucket));
	end
	if not cfg.path_style and host and host:find("^%[") then
		refuse("path_style", "must be true with an IP address endpoint");
	end

	cfg.prefix = clean_path(typed(get, "path", "string", ""));
	if not cfg.prefix then
		refuse("path", "must be a folder like \"http_uploads\": no empty, '.' or '..' parts, at most 255 bytes");
	end

	cfg.file_size_limit = integer(get, "file_size_limit", 100 * MIB, 1, MAX_SINGLE_PUT);
	cfg.put_expires = period(get, env, "expires", 300, 1, MAX_EXPIRES);
	cfg.presign_get = typed(get, "presign_get", "boolean", false);
	cfg.get_expires = period(get, env, "get_expires", MAX_EXPIRES, 1, MAX_EXPIRES);
	cfg.get_url = typed(get, "get_url", "string");
	if cfg.get_url and not parse_endpoint(cfg.get_url:gsub("^(https?://[^/]*).*$", "%1")) then
		refuse("get_url", "must be an http(s) URL");
	elseif cfg.get_url and cfg.presign_get then
		refuse("get_url", "cannot be combined with %spresign_get", PREFIX);
	end
	if cfg.presign_get then
		table.insert(warnings, ("download links stop working after %d seconds (S3 allows at most 7 days)")
			:format(cfg.get_expires));
	end
	cfg.sign_content_type = typed(get, "sign_content_type", "boolean", false);

	cfg.access = set(get, "access", {});
	cfg.daily_quota = limit(get, "daily_quota", 10 * cfg.file_size_limit, 0);
	cfg.rate_limit = limit(get, "rate_limit", 60, 1);
	cfg.allowed_file_types = set(get, "allowed_file_types", {});
	cfg.safe_file_types = set(get, "safe_file_types", { "image/*", "video/*", "audio/*", "text/plain" });
	return cfg, warnings;
end

-- The environment of the Prosody process: its variables and files.
local function read_file(path)
	local f, err = io.open(path);
	if not f then return nil, err; end
	local content = f:read("a");
	f:close();
	return content;
end
local process_env = {
	getenv = os.getenv,
	read_file = read_file,
	parse_duration = require "util.human.io".parse_duration, -- nil before Prosody 13
};

-- read(), with the refusal as one line: cfg, warnings | nil, "http_upload_s3_x problem"
local function load(get, env)
	local ok, cfg, warnings = pcall(read, get, env or process_env);
	if not ok then
		return nil, type(cfg) == "table" and (cfg.option .. " " .. cfg.problem) or tostring(cfg);
	end
	return cfg, warnings;
end

-- The s3sign.new{} table for a checked configuration.
local function signer_options(cfg)
	return {
		access_key_id = cfg.access_key_id;
		secret_key = cfg.secret_key;
		session_token = cfg.session_token;
		region = cfg.region;
		bucket = cfg.bucket;
		endpoint = cfg.endpoint;
		path_style = cfg.path_style;
		prefix = cfg.prefix;
		put_expires = cfg.put_expires;
		get_expires = cfg.presign_get and cfg.get_expires or nil;
		get_url = cfg.get_url;
	};
end

return {
	read = read;
	load = load;
	signer_options = signer_options;
};
