-- Reading and checking the module's options, at load and at every reload.
-- Pure Lua without I/O: options and the process's variables come in through
-- functions, so busted can test every rule; credential files are read by the
-- credential source (credentials.lib.lua), not here.
--
--   local cfg, warnings = config.read(get, env, present)
--     get(name) -> the raw value of http_upload_s3_<name>, or nil
--     env.getenv(name), env.parse_duration("5 minutes") -> 300 (Prosody 13)
--     present: the names of the http_upload_s3_* options set, to point out unknown ones
--   On a bad option, config.read raises { option = "http_upload_s3_<name>", problem = ... };
--   config.load(get, env, present) returns nil, "<option> <problem>" instead.
--   config.signer_options(cfg, creds) -> the s3sign.new{} table
--   config.option_of(field) -> the option behind a field s3sign names
-- What the signing library checks (endpoints, lengths, characters) it checks
-- for this file too, through s3sign.parse_endpoint and s3sign.check.

local jid = require "util.jid";
local s3sign = require "s3sign";

local PREFIX = "http_upload_s3_";
local MIB = 1024 * 1024;
local MAX_SINGLE_PUT = 5 * 1024 * MIB; -- S3 refuses larger single PUTs
local MAX_EXPIRES = s3sign.limits.expires;
local MAX_BUCKET = s3sign.limits.bucket;
local MAX_PATH = 255;                  -- bytes: leaves a file name room in S3's 1024-byte keys
local MAX_RETENTION = 36500;           -- days: a hundred years; false keeps files for ever

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
	if value == nil then
		return nil;   -- unset, without a default: the caller decides
	elseif not math.tointeger(value) then
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

-- How long files are kept: as whole days (S3 lifecycle rules count days) and as
-- seconds (for the module's own deletions), or false to keep them; given as
-- seconds, a period on Prosody 13 ("30 days"), and on 0.12 days or weeks ("30 days", "1 week").
local DAY = 86400;
local function retention(get, env, name, default)
	local value = get(name);
	if value == nil then
		value = default;
	end
	if value == false then
		return false;
	elseif type(value) == "string" then
		local n, unit = value:match("^%s*(%d+)%s*(%a+)%s*$");
		local fallback = ({ day = DAY, days = DAY, week = 7 * DAY, weeks = 7 * DAY })[unit or ""];
		local parsed = env.parse_duration and env.parse_duration(value) or (fallback and tonumber(n) * fallback);
		if not parsed then
			refuse(name, "must be false, seconds or a period such as \"30 days\"");
		end
		value = parsed;
	end
	local seconds = math.tointeger(value);
	if not seconds or seconds < 1 then
		refuse(name, "must be false, seconds or a period such as \"30 days\"");
	elseif seconds > MAX_RETENTION * DAY then
		refuse(name, "must be at most %d days (false keeps files for ever)", MAX_RETENTION);
	end
	return (seconds + DAY - 1) // DAY, seconds;
end

-- A per-user limit: a whole number from min, or false for none (math.huge).
local function limit(get, name, default, min)
	local value = get(name);
	if value == false or (value == nil and default == math.huge) then
		return math.huge;
	end
	return integer(get, name, default, min, math.maxinteger);
end

-- A list option given as a Lua table (or a single string): its items, each
-- through normalise(item) -> item | nil (refused), as a set. A map such as
-- { ["a@b"] = true } is refused, not read as an empty list.
local function set(get, name, default, normalise)
	local value = get(name);
	if value == nil then
		value = default;
	elseif type(value) == "string" then
		value = { value };
	elseif type(value) ~= "table" then
		refuse(name, "must be a list of strings");
	end
	for key in pairs(value) do
		if math.type(key) ~= "integer" or key < 1 or key > #value then
			refuse(name, "must be a list such as { \"a\", \"b\" }, not a table with keys");
		end
	end
	local s = {};
	for _, item in ipairs(value) do
		if type(item) ~= "string" then
			refuse(name, "must be a list of strings");
		end
		local normal = item;
		if normalise then normal = normalise(item); end
		if not normal then
			refuse(name, "has \"%s\", which is not valid here", item);
		end
		s[normal] = true;
	end
	return s;
end

-- JIDs and hosts as Prosody compares them (senders are normalised: "Alice@Example.org" is alice@example.org).
local function normal_jid(item)
	return jid.prep(item);
end

-- Web origins for the bucket's CORS rule: a list, in order, or false for no rule.
local function origins(get, name, default)
	local value = get(name);
	if value == false then
		return false;
	elseif value == nil then
		return default;
	elseif type(value) == "string" then
		value = { value };
	end
	if type(value) ~= "table" or #value == 0 then
		refuse(name, "must be a list of web origins such as \"https://chat.example.org\", or false");
	end
	for _, origin in ipairs(value) do   -- an origin is what an endpoint is: scheme://host[:port]
		if type(origin) ~= "string" or not (origin == "*" or (s3sign.parse_endpoint(origin) and origin:find("[^/]$"))) then
			refuse(name, "must be a list of web origins such as \"https://chat.example.org\", or false");
		end
	end
	return value;
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
	return #bucket >= 1 and #bucket <= MAX_BUCKET and bucket:find("^[%w._-]+$") ~= nil;
end

-- "http_uploads", "/http_uploads/" -> "http_uploads"; refuses dot and empty
-- segments, and the wildcards of bucket policies (* ? ${...}), which would
-- widen a grant on the folder to others while a lifecycle rule takes them literally.
local PATH_RULES = "a folder like \"http_uploads\": no empty, '.' or '..' parts, no * ? or $, at most "
	.. MAX_PATH .. " bytes";
local function clean_path(path)
	path = path:gsub("^/+", ""):gsub("/+$", "");
	if path == "" then
		return "";
	elseif #path > MAX_PATH or not utf8.len(path) or path:find("[%c\\*?$]") then
		return nil;
	end
	for segment in (path .. "/"):gmatch("([^/]*)/") do
		if segment == "" or segment == "." or segment == ".." then
			return nil;
		end
	end
	return path;
end

-- The static credentials: the option (also as <option>_file), the signer's
-- field it fills, and the standard AWS environment variable behind both.
local CREDENTIALS = {
	{ option = "access_id", field = "access_key_id", env = "AWS_ACCESS_KEY_ID" },
	{ option = "secret_key", field = "secret_key", env = "AWS_SECRET_ACCESS_KEY" },
	{ option = "session_token", field = "session_token", env = "AWS_SESSION_TOKEN" },
};

-- A credential from the config or the standard AWS environment variable, or
-- the file it is in ({ path =, option = }, which the credential source reads).
local function credential(get, env, name, env_name, warnings)
	local literal = typed(get, name, "string");
	local file = typed(get, name .. "_file", "string");
	if literal and file then
		refuse(name, "and %s%s_file are both set; keep one", PREFIX, name);
	elseif file then
		return nil, { path = file, option = name .. "_file" };
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

-- The s3sign.new{} table for a checked configuration and a set of credentials.
local function signer_options(cfg, creds)
	return {
		access_key_id = creds.access_key_id;
		secret_key = creds.secret_key;
		session_token = creds.session_token;
		region = cfg.region;
		bucket = cfg.bucket;
		endpoint = cfg.endpoint;
		path_style = cfg.path_style;
		put_expires = cfg.put_expires;
		get_url = cfg.get_url;
	};
end

-- The option behind each field that s3sign names in a refusal.
local SIGNER_FIELDS = {
	region = "region", bucket = "bucket", endpoint = "endpoint", put_expires = "expires", get_url = "get_url",
};
for _, c in ipairs(CREDENTIALS) do SIGNER_FIELDS[c.field] = c.option; end

local function option_of(field)
	return PREFIX .. (SIGNER_FIELDS[field] or field);
end

-- XEP-0363 upload purposes. message is always on, with the options above;
-- each other one, when listed in http_upload_s3_purposes, takes its own
-- http_upload_s3_<purpose>_<option>, defaulting as below.
local PURPOSES = { "message", "profile", "ephemeral", "permanent" };

local function purpose_defaults(name, message)
	if name == "profile" then   -- avatars: small, kept, public
		return { file_size_limit = MIB, daily_quota = 5 * MIB, storage_quota = math.huge, expires_after = false,
			presign_get = false };
	elseif name == "ephemeral" then   -- gone at expire-before: never public, always deleted
		return { file_size_limit = message.file_size_limit, daily_quota = message.daily_quota,
			storage_quota = message.storage_quota, expires_after = 7 * DAY };
	end
	return { file_size_limit = message.file_size_limit, daily_quota = message.daily_quota,
		storage_quota = message.storage_quota, expires_after = false, presign_get = message.presign_get };
end

-- Whether one prefix contains the other: then a lifecycle rule or a policy of one would reach the other.
local function overlap(a, b)
	return a:sub(1, #b) == b or b:sub(1, #a) == a;
end

-- One purpose's options, http_upload_s3_<name>_<option>, each refused under its own name.
local function read_purpose(get, env, name, message, prefix)
	local d = purpose_defaults(name, message);
	local option = name .. "_";
	local p = { name = name };
	p.path = clean_path(typed(get, option .. "path", "string", prefix ~= "" and prefix .. "_" .. name or name));
	if not p.path or p.path == "" then
		refuse(option .. "path", "must be %s, e.g. \"http_uploads_%s\"", PATH_RULES, name);
	end
	p.file_size_limit = integer(get, option .. "file_size_limit", d.file_size_limit, 1, MAX_SINGLE_PUT);
	p.daily_quota = limit(get, option .. "daily_quota", d.daily_quota, 0);
	p.storage_quota = limit(get, option .. "storage_quota", d.storage_quota, 0);
	p.expires_after, p.retention = retention(get, env, option .. "expires_after", d.expires_after);
	p.presign_get = typed(get, option .. "presign_get", "boolean", d.presign_get);
	if name == "ephemeral" then
		if not p.expires_after then
			refuse(option .. "expires_after", "must be a period: ephemeral files are always deleted");
		elseif p.presign_get == false then
			refuse(option .. "presign_get", "cannot be false: ephemeral downloads are presigned, to stop at expire-before");
		end
		p.presign_get = true;
	end
	return p;
end

-- The purposes offered, by name and in order (message first); a purpose's
-- options are read and checked whether it is offered or not, so that a typo
-- waits for no one to enable it, and options of one not offered are pointed out.
local function read_purposes(get, env, cfg, warnings)
	local message = {
		name = "message", path = cfg.prefix, file_size_limit = cfg.file_size_limit, daily_quota = cfg.daily_quota,
		storage_quota = cfg.storage_quota, presign_get = cfg.presign_get,
	};
	message.expires_after, message.retention = retention(get, env, "expires_after", 7 * DAY);
	local purposes, purpose_list = { message = message }, { message };
	local known = {};
	for _, name in ipairs(PURPOSES) do known[name] = true; end
	local enabled = set(get, "purposes", {});
	for name in pairs(enabled) do
		if not known[name] then
			refuse("purposes", "has \"%s\"; the purposes are %s", name, table.concat(PURPOSES, ", "));
		end
	end
	for _, name in ipairs(PURPOSES) do
		if name ~= "message" then
			local set_options = {};
			local p = read_purpose(function (option)
				local value = get(option);
				if value ~= nil then table.insert(set_options, PREFIX .. option); end
				return value;
			end, env, name, message, cfg.prefix);
			if enabled[name] then
				purposes[name] = p;
				table.insert(purpose_list, p);
			elseif #set_options > 0 then
				table.insert(warnings, ("%s set, but %s is not in %spurposes"):format(
					table.concat(set_options, ", "), name, PREFIX));
			end
		end
	end
	if #purpose_list > 1 and cfg.prefix == "" then
		refuse("path", "must name a folder when purposes are enabled: at the bucket's root message files "
			.. "would share every other purpose's prefix");
	end
	for i, p in ipairs(purpose_list) do
		p.key_prefix = p.path ~= "" and p.path .. "/" or "";
		for j = 1, i - 1 do
			local q = purpose_list[j];
			if overlap(p.key_prefix, q.key_prefix) then
				refuse(p.name .. "_path", "\"%s\" and the %s folder \"%s\" contain one another: "
					.. "lifecycle rules and policies could not tell them apart", p.path, q.name, q.path);
			end
		end
	end
	if message.expires_after == false then
		table.insert(warnings, "message uploads are kept forever (" .. PREFIX .. "expires_after = false)");
	end
	return purposes, purpose_list;
end

-- The address of the ECS / EKS credentials endpoint: https anywhere, plain http only on
-- loopback or the addresses ECS and EKS Pod Identity use, as the AWS SDKs allow.
local CONTAINER_HOSTS = { ["127.0.0.1"] = true, ["localhost"] = true, ["[::1]"] = true,
	["169.254.170.2"] = true, ["169.254.170.23"] = true, ["[fd00:ec2::23]"] = true };

local function container_endpoint(env)
	local full, relative = env.getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"), env.getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	local uri = relative and relative ~= "" and "http://169.254.170.2" .. relative or full;
	if not uri or uri == "" then
		refuse("credentials", "is \"container\", but neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor "
			.. "AWS_CONTAINER_CREDENTIALS_FULL_URI is set");
	end
	-- the origin as the HTTP client will connect to it: no user name (a@b is host b), a port or none
	local endpoint = s3sign.parse_endpoint(uri:match("^[^/]*//[^/?#]*") or "");
	if not endpoint or (endpoint.scheme == "http" and not CONTAINER_HOSTS[endpoint.host:gsub(":%d+$", "")]) then
		refuse("credentials", "is \"container\", but AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, "
			.. "or http on loopback, 169.254.170.2/.23 or [fd00:ec2::23], without a user name");
	end
	local token, token_file = env.getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN"), env.getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	return { uri = uri, token = token ~= "" and token or nil, token_file = token_file ~= "" and token_file or nil };
end

-- Where the credentials come from (credentials.lib.lua fetches them): the
-- options, their files or the environment; EC2 instance metadata; the
-- container endpoint; and an STS role on top of any of them.
local function read_credentials(get, env, warnings)
	local c = { files = {}, static = {} };
	c.source = typed(get, "credentials", "string", "static");
	if c.source == "static" then
		for _, o in ipairs(CREDENTIALS) do
			c.static[o.field], c.files[o.field] = credential(get, env, o.option, o.env, warnings);
		end
		if not (c.static.access_key_id or c.files.access_key_id) then
			refuse("access_id", "is required (or %saccess_id_file, or AWS_ACCESS_KEY_ID)", PREFIX);
		elseif not (c.static.secret_key or c.files.secret_key) then
			refuse("secret_key", "is required (or %ssecret_key_file, or AWS_SECRET_ACCESS_KEY)", PREFIX);
		end
		c.description = next(c.files) and "the credential files" or "the options or the AWS_* variables";
	elseif c.source == "instance" then
		local endpoint = env.getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
		c.instance_endpoint = (endpoint and endpoint ~= "" and endpoint or "http://169.254.169.254"):gsub("/+$", "");
		if not c.instance_endpoint:find("^https?://[^/]+$") then
			refuse("credentials", "is \"instance\", but AWS_EC2_METADATA_SERVICE_ENDPOINT is not http(s)://host[:port]");
		end
		c.description = "EC2 instance metadata at " .. c.instance_endpoint;
	elseif c.source == "container" then
		c.container = container_endpoint(env);
		c.description = "the container credentials endpoint " .. c.container.uri;
	else
		refuse("credentials", "must be \"static\", \"instance\" or \"container\"");
	end
	if c.source ~= "static" then
		local unused = {};
		for _, o in ipairs(CREDENTIALS) do
			for _, name in ipairs({ o.option, o.option .. "_file" }) do
				if get(name) ~= nil then table.insert(unused, PREFIX .. name); end
			end
		end
		if #unused > 0 then
			table.insert(warnings, ("%s not used: the credentials come from %s"):format(table.concat(unused, ", "),
				c.description));
		end
	end

	-- the role's options are checked whether a role is set or not, and pointed out when not
	local arn = typed(get, "role_arn", "string");
	local role = {
		arn = arn,
		session_name = typed(get, "role_session_name", "string"),
		duration = period(get, env, "role_duration", nil, 900, 43200),
		external_id = typed(get, "role_external_id", "string"),
		endpoint = typed(get, "sts_endpoint", "string"),   -- else the S3 endpoint's, once read() checked it
	};
	if not arn then
		if next(role) then
			table.insert(warnings, PREFIX .. "role_session_name, _role_duration, _role_external_id and "
				.. "_sts_endpoint are not used without " .. PREFIX .. "role_arn");
		end
		if c.static.session_token then
			table.insert(warnings, "a static session token is configured: upload URLs fail once it expires");
		end
		return c;
	elseif not arn:find("^arn:[%w-]+:iam::%d*:role/.+$") then
		refuse("role_arn", "must be a role's ARN, like arn:aws:iam::123456789012:role/uploader");
	end
	role.session_name, role.duration = role.session_name or "mod_http_upload_s3", role.duration or 3600;
	if not role.session_name:find("^[%w_+=,.@-]+$") or #role.session_name < 2 or #role.session_name > 64 then
		refuse("role_session_name", "must be 2..64 of letters, digits and _+=,.@-");
	elseif role.endpoint and not s3sign.parse_endpoint(role.endpoint) then
		refuse("sts_endpoint", "must be http(s)://host[:port], without a path, query or user name");
	end
	c.role = role;
	return c;
end

-- How many single-character edits turn a into b (Levenshtein), for "did you mean".
local function distance(a, b)
	local row = {};
	for j = 0, #b do row[j] = j; end
	for i = 1, #a do
		local diagonal, left = row[0], i;
		row[0] = i;
		for j = 1, #b do
			local cost = a:byte(i) == b:byte(j) and 0 or 1;
			local here = math.min(row[j] + 1, left + 1, diagonal + cost);
			diagonal, left, row[j] = row[j], here, here;
		end
	end
	return row[#b];
end

-- Options that are set but that read() never asked for: typos, mostly.
local function unknown_options(present, asked)
	local warnings = {};
	for _, name in ipairs(present) do
		local short = name:sub(#PREFIX + 1);
		if name:sub(1, #PREFIX) == PREFIX and not asked[short] then
			local nearest, best = nil, 4;   -- further than 3 edits is no suggestion
			for candidate in pairs(asked) do
				local d = distance(short, candidate);
				if d < best or (d == best and nearest and candidate < nearest) then
					nearest, best = candidate, d;
				end
			end
			table.insert(warnings, ("%s is not an option of this module%s"):format(name,
				nearest and (" (did you mean " .. PREFIX .. nearest .. "?)") or ""));
		end
	end
	table.sort(warnings);
	return warnings;
end

-- The names of the http_upload_s3_* options set for a host or globally, in a
-- configuration as configmanager.getconfig() gives it: to point out unknown ones.
local function options_set(all, host)
	local names = {};
	for _, section in ipairs({ all[host] or {}, all["*"] or {} }) do
		for name in pairs(section) do
			if type(name) == "string" and name:sub(1, #PREFIX) == PREFIX then names[name] = true; end
		end
	end
	local list = {};
	for name in pairs(names) do table.insert(list, name); end
	return list;
end

-- present: the names of the http_upload_s3_* options set for the host, to point out unknown ones.
local function read(get, env, present)
	local warnings = {};
	local cfg = {};
	local asked = {};
	local get_option = get;
	get = function (name)
		asked[name] = true;
		return get_option(name);
	end

	cfg.credentials = read_credentials(get, env, warnings);

	cfg.endpoint = typed(get, "endpoint", "string");
	local endpoint = { scheme = "https", ip = false };
	if cfg.endpoint then
		endpoint = s3sign.parse_endpoint(cfg.endpoint);
		if not endpoint then
			refuse("endpoint", "must be http(s)://host[:port], without a path, query or user name");
		elseif endpoint.scheme == "http" then
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
	local role = cfg.credentials.role;
	if role then   -- STS in the same region, at the S3 endpoint (as RGW serves it) unless told otherwise
		role.endpoint, role.region = role.endpoint or cfg.endpoint, cfg.region;
	end

	cfg.bucket = typed(get, "bucket", "string");
	cfg.path_style = typed(get, "path_style", "boolean", false);
	if not cfg.bucket then
		refuse("bucket", "is required");
	elseif not is_legacy_bucket(cfg.bucket) then
		refuse("bucket", "must be letters, digits, '.', '-' or '_' (at most %d)", MAX_BUCKET);
	elseif not cfg.path_style and not is_dns_bucket(cfg.bucket) then
		cfg.path_style = true;
		table.insert(warnings, ("bucket \"%s\" cannot be part of a host name: using path-style URLs"):format(cfg.bucket));
	elseif not cfg.path_style and endpoint.scheme == "https" and cfg.bucket:find(".", 1, true) then
		cfg.path_style = true;
		table.insert(warnings, ("bucket \"%s\" has dots, which break TLS for bucket.host: using path-style URLs")
			:format(cfg.bucket));
	end
	if not cfg.path_style and endpoint.ip then
		refuse("path_style", "must be true with an IP address endpoint");
	end

	cfg.prefix = clean_path(typed(get, "path", "string", ""));
	if not cfg.prefix then
		refuse("path", "must be %s", PATH_RULES);
	end

	cfg.file_size_limit = integer(get, "file_size_limit", 100 * MIB, 1, MAX_SINGLE_PUT);
	cfg.put_expires = period(get, env, "expires", 300, 1, MAX_EXPIRES);
	cfg.presign_get = typed(get, "presign_get", "boolean", false);
	cfg.get_expires = period(get, env, "get_expires", MAX_EXPIRES, 1, MAX_EXPIRES);
	cfg.get_url = typed(get, "get_url", "string");
	if cfg.get_url and not s3sign.parse_endpoint((cfg.get_url:gsub("^(https?://[^/]*).*$", "%1"))) then
		refuse("get_url", "must be an http(s) URL");
	elseif cfg.get_url and cfg.presign_get then
		refuse("get_url", "cannot be combined with %spresign_get", PREFIX);
	end
	if cfg.presign_get then
		table.insert(warnings, ("download links stop working after %d seconds (S3 allows at most 7 days)")
			:format(cfg.get_expires));
	end
	cfg.access = set(get, "access", {}, normal_jid);
	cfg.daily_quota = limit(get, "daily_quota", 10 * cfg.file_size_limit, 0);
	cfg.storage_quota = limit(get, "storage_quota", math.huge, 0);   -- bytes stored or on their way, per user
	cfg.delete_with_account = typed(get, "delete_with_account", "boolean", true);
	cfg.delete_on_retraction = typed(get, "delete_on_retraction", "boolean", true);
	-- who deletes files past their retention: the bucket's lifecycle rules, or this module
	cfg.expire_by = typed(get, "expire_by", "string", "lifecycle");
	if cfg.expire_by ~= "lifecycle" and cfg.expire_by ~= "module" then
		refuse("expire_by", "must be \"lifecycle\" (the bucket's rules, which setup writes) or \"module\"");
	end
	cfg.rate_limit = limit(get, "rate_limit", 60, 1);
	cfg.allowed_file_types = set(get, "allowed_file_types", {});
	-- an allow-list that the upload itself could ignore would be none: it signs the type
	cfg.sign_content_type = typed(get, "sign_content_type", "boolean", next(cfg.allowed_file_types) ~= nil);
	if next(cfg.allowed_file_types) and not cfg.sign_content_type then
		refuse("sign_content_type", "cannot be false with %sallowed_file_types: an upload could then carry "
			.. "any other type", PREFIX);
	end
	cfg.safe_file_types = set(get, "safe_file_types", { "image/*", "video/*", "audio/*", "text/plain" });
	cfg.cors_origins = origins(get, "cors_origins", { "*" });

	cfg.purposes, cfg.purpose_list = read_purposes(get, env, cfg, warnings);

	-- what only the library can tell: lengths and characters of region, bucket, endpoint, and of
	-- credentials written in the options (those in files are checked by the source that reads them)
	local c = cfg.credentials;
	local static = c.source == "static" and not c.role and not next(c.files);
	local ok, field, reason = s3sign.check(signer_options(cfg, static and c.static or {}));
	if not ok then
		refuse(SIGNER_FIELDS[field] or field, "%s", reason);
	end
	for _, warning in ipairs(unknown_options(present or {}, asked)) do
		table.insert(warnings, warning);
	end
	return cfg, warnings;
end

-- read(), with the refusal as one line: cfg, warnings | nil, "http_upload_s3_x problem"
local function load(get, env, present)
	local ok, cfg, warnings = pcall(read, get, env, present);
	if not ok then
		return nil, type(cfg) == "table" and (cfg.option .. " " .. cfg.problem) or tostring(cfg);
	end
	return cfg, warnings;
end

return {
	read = read;
	load = load;
	options_set = options_set;
	signer_options = signer_options;
	option_of = option_of;
};
