-- Where the signer's credentials come from, and when they are fetched again.
--
-- A source gives the base credentials (cfg.credentials.source):
--   static     the options, their *_file files (read here, again when they change,
--              and applied together once they have stopped changing), or the
--              standard AWS_* environment variables
--   instance   EC2 instance metadata (IMDSv2: a session token by PUT, then the role's credentials)
--   container  the ECS / EKS Pod Identity credentials endpoint
-- and an STS AssumeRole (cfg.credentials.role) may turn them into a role's.
--
-- Nothing here reads a clock: time comes in as the `now` each call is given.
-- Requests go through env.http (environment.lib.lua), which waits inside
-- Prosody (so start and tick run in a util.async runner there) and blocks in
-- prosodyctl; busted drives it all with fakes.
--
--   local chain = credentials.new(cfg, env)
--   chain:start(now, on_credentials, on_failure)   on_credentials(creds, source) with every new set,
--                                                  on_failure(problem, failures) with every failed fetch
--   chain:tick(now)                    from a timer: files, refreshes, retries
--   chain:usable(now) -> bool          the current set exists and has not expired
--   chain:status() -> { source =, expires_at =, problem = }
--
-- creds: { access_key_id, secret_key, session_token, expiration = unix seconds | nil }

local json = require "util.json";
local xml = require "util.xml";
local datetime = require "util.datetime";
local hashes = require "util.hashes";
local s3sign = require "s3sign";
local s3 = module:require "s3";

local IMDS_TOKEN_TTL = 21600;          -- seconds; the session token is asked for again with every refresh
local RETRY_FIRST, RETRY_MAX = 5, 300; -- seconds between failed refreshes, doubling...
local RETRY_EXPIRED = 15;              -- ...but no longer than this while no usable set is left

local M = {};

local FIELDS = { "access_key_id", "secret_key", "session_token" };

---- responses, as the services send them -----------------------------------------

-- An ISO 8601 time as STS, IMDS and ECS write it; nil if it is not one.
local function expiration(text)
	local ok, t = pcall(datetime.parse, text or "");
	return ok and t or nil;
end

-- The Credentials of an AssumeRoleResponse; nil and why not.
function M.parse_assume_role(body)
	local ok, doc = pcall(xml.parse, body or "");
	if not ok or not doc then
		return nil, "the answer is not XML";
	end
	local error_code = doc.name == "ErrorResponse" and doc:find("Error/Code#");
	if error_code or doc.name == "Error" then
		return nil, ("%s: %s"):format(error_code or doc:get_child_text("Code") or "error",
			doc:find("Error/Message#") or doc:get_child_text("Message") or "");
	end
	local c = doc:find("AssumeRoleResult/Credentials");
	local creds = c and {
		access_key_id = c:get_child_text("AccessKeyId"), secret_key = c:get_child_text("SecretAccessKey"),
		session_token = c:get_child_text("SessionToken"), expiration = expiration(c:get_child_text("Expiration")),
	};
	if not (creds and creds.access_key_id and creds.secret_key and creds.session_token and creds.expiration) then
		return nil, "the answer has no complete Credentials";
	end
	return creds;
end

-- The JSON the instance metadata service and the container endpoint answer with.
function M.parse_json_credentials(body)
	local doc = json.decode(body or "");
	if type(doc) ~= "table" then
		return nil, "the answer is not JSON";
	elseif doc.Code and doc.Code ~= "Success" then
		return nil, ("%s: %s"):format(tostring(doc.Code), tostring(doc.Message or ""));
	end
	local creds = { access_key_id = doc.AccessKeyId, secret_key = doc.SecretAccessKey, session_token = doc.Token,
		expiration = expiration(doc.Expiration) };
	for _, field in ipairs({ "access_key_id", "secret_key", "session_token" }) do
		if type(creds[field]) ~= "string" or creds[field] == "" then
			return nil, "the answer has no " .. field;
		end
	end
	if not creds.expiration then
		return nil, "the answer has no Expiration";
	end
	return creds;
end

-- The form body of an AssumeRole request (RGW takes it only as a header-signed POST).
function M.assume_role_body(role)
	local fields = { { "Action", "AssumeRole" }, { "Version", "2011-06-15" }, { "RoleArn", role.arn },
		{ "RoleSessionName", role.session_name }, { "DurationSeconds", tostring(role.duration) } };
	if role.external_id then
		table.insert(fields, { "ExternalId", role.external_id });
	end
	local parts = {};
	for i, f in ipairs(fields) do
		parts[i] = s3sign.uri_encode(f[1]) .. "=" .. s3sign.uri_encode(f[2]);
	end
	return table.concat(parts, "&");
end

-- When a set obtained at `obtained` should be fetched again: halfway through
-- its life (half an hour ahead for an hour's set), which leaves the other
-- half for retries; nil for a set that does not expire.
function M.refresh_at(creds, obtained)
	if not creds.expiration then
		return nil;
	end
	return obtained + (creds.expiration - obtained) / 2;
end

-- Seconds until the next try after `failures` failed ones; sooner while slots wait on it.
function M.retry_delay(failures, expired)
	return math.min(expired and RETRY_EXPIRED or RETRY_MAX, RETRY_FIRST * 2 ^ (failures - 1));
end

---- the chain -----------------------------------------------------------------------

local chain = {};
chain.__index = chain;

function M.new(cfg, env)
	local c = cfg.credentials;
	return setmetatable({
		cfg = c, env = env, refreshes = 0, failures = 0,
		source = c.role and ("the role " .. c.role.arn) or c.description,
	}, chain);
end

-- A secret or token file's content, without the newline editors leave; nil and why not, naming
-- what pointed at the file.
local function read_trimmed(env, path, named_by)
	local content, err = env.read_file(path);
	if not content then
		return nil, ("%s cannot be read: %s"):format(named_by, tostring(err));
	end
	return (content:gsub("%s+$", ""));
end

-- A set from the options and the variables, as config.lib.lua found them, and the files, read now.
function chain:static_set()
	local set = {};
	for field, value in pairs(self.cfg.static) do set[field] = value; end
	for _, field in ipairs(FIELDS) do   -- in this order, so that a failure names the same file every time
		local file = self.cfg.files[field];
		if file then
			local content, problem = read_trimmed(self.env, file.path, "http_upload_s3_" .. file.option);
			if not content then
				return nil, problem;
			end
			set[field] = content;
		end
	end
	return set;
end

-- What the files hold, as digests (no second copy of the secret): their times and
-- sizes miss a rewrite within the same second with values of the same length,
-- which access key ids always have. Read from the timer, never for a slot.
function chain:files_digest()
	local parts = {};
	for field, file in pairs(self.cfg.files) do
		local content = self.env.read_file(file.path);
		table.insert(parts, field .. "=" .. (content and hashes.sha256(content, true) or "unreadable"));
	end
	table.sort(parts);
	return table.concat(parts, ";");
end

-- One request; its answer when it is a 2xx, else nil and a problem naming the step.
function chain:get(step, req)
	local response, err = self.env.http(req);
	if not response then
		return nil, ("%s: %s"):format(step, tostring(err));
	elseif response.status < 200 or response.status >= 300 then
		local e = s3.parse_error(response.body) or {};
		return nil, ("%s: HTTP %d %s"):format(step, response.status, e.code or "");
	end
	return response;
end

-- The set a request answers with, read by parse; nil and why not. One that has
-- already expired (a stale cache upstream, a clock that is off) is refused too:
-- delivered, it would sign nothing, replace a working set on reload, and be
-- fetched again at every tick.
function chain:get_set(step, req, parse, now)
	local response, problem = self:get(step, req);
	if not response then
		return nil, problem;
	end
	local creds;
	creds, problem = parse(response.body);
	if creds and creds.expiration <= now then
		creds, problem = nil, ("the set has already expired (at %s)"):format(datetime.datetime(creds.expiration));
	end
	if not creds then
		return nil, step .. ": " .. problem;
	end
	return creds;
end

-- AssumeRole with the base set: the role's set, or nil and why not.
function chain:assume_role(base, now)
	local role = self.cfg.role;
	local ok, why;
	if not self.sts then
		self.sts, why = s3sign.new({ access_key_id = base.access_key_id, secret_key = base.secret_key,
			session_token = base.session_token, region = role.region, service = "sts", endpoint = role.endpoint });
		ok = self.sts ~= nil;
	else
		ok, why = self.sts:set_credentials(base);
	end
	if not ok then
		return nil, "AssumeRole: the base credentials are not usable: " .. tostring(why);
	end
	local body = M.assume_role_body(role);
	local url, headers = s3.new(self.sts, self.env.http):sign("POST", "", { body = body,
		headers = { ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8" } });
	return self:get_set("AssumeRole", { method = "POST", url = url, headers = headers, body = body },
		M.parse_assume_role, now);
end

function chain:fetch_instance(now)
	local endpoint = self.cfg.instance_endpoint;
	local path = "/latest/meta-data/iam/security-credentials/";
	local token, problem = self:get("instance metadata token", { method = "PUT", url = endpoint .. "/latest/api/token",
		headers = { ["X-aws-ec2-metadata-token-ttl-seconds"] = tostring(IMDS_TOKEN_TTL) } });
	if not token then
		return nil, problem;
	end
	local headers = { ["X-aws-ec2-metadata-token"] = token.body };
	local names;
	names, problem = self:get("instance role", { method = "GET", url = endpoint .. path, headers = headers });
	if not names then
		return nil, problem;
	end
	local role = names.body:match("^%s*([^%s]+)");
	if not role then
		return nil, "instance role: the instance has no IAM role";
	end
	return self:get_set("instance credentials", { method = "GET", url = endpoint .. path .. role, headers = headers },
		M.parse_json_credentials, now);
end

function chain:fetch_container(now)
	local c = self.cfg.container;
	local token, problem = c.token;
	if c.token_file then
		token, problem = read_trimmed(self.env, c.token_file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " .. c.token_file);
		if not token then
			return nil, "container credentials: " .. problem;
		end
	end
	return self:get_set("container credentials", { method = "GET", url = c.uri, headers = { Authorization = token } },
		M.parse_json_credentials, now);
end

local FETCH = { static = chain.static_set, instance = chain.fetch_instance, container = chain.fetch_container };

-- A set from the source, and the role's on top of it; nil and why not.
function chain:fetch(now)
	local creds, problem = FETCH[self.cfg.source](self, now);
	if creds and self.cfg.role then
		creds, problem = self:assume_role(creds, now);
	end
	return creds, problem;
end

-- Fetch a new set now, and hand it on or count the failure.
function chain:refresh(now)
	self.fetching = true;
	local creds, problem = self:fetch(now);
	self.fetching = false;
	if not creds then
		self.failures = self.failures + 1;
		self.problem = problem;
		self.retry_due = now + M.retry_delay(self.failures, not self:usable(now));
		if self.on_failure then
			self.on_failure(problem, self.failures);
		end
		return;
	end
	self.current, self.expires_at = creds, creds.expiration;
	self.refresh_due = M.refresh_at(creds, now);
	self.retry_due, self.failures, self.problem = nil, 0, nil;
	self.refreshes = self.refreshes + 1;
	self.on_credentials(creds, self.source);
end

function chain:start(now, on_credentials, on_failure)
	self.on_credentials, self.on_failure = on_credentials, on_failure;
	self.applied_files = self:files_digest();
	self:refresh(now);
end

function chain:tick(now)
	if self.fetching then
		return;
	end
	if self.cfg.source == "static" and next(self.cfg.files) then
		-- a rotation writes the files one after the other: apply them once none changed for a tick
		local digest = self:files_digest();
		if digest ~= self.applied_files then
			if digest == self.seen_files then
				self.applied_files = digest;
				return self:refresh(now);
			end
			self.seen_files = digest;
		end
	end
	local due = self.retry_due or self.refresh_due;
	if due and now >= due then
		self:refresh(now);
	end
end

function chain:usable(now)
	return self.current ~= nil and (not self.expires_at or now < self.expires_at);
end

function chain:status()
	return { source = self.source, expires_at = self.expires_at, problem = self.problem };
end

return M;
