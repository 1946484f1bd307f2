-- Where the signer's credentials come from, and when they are fetched again.
--
-- A source gives the base credentials (cfg.credentials.source):
--   static     the options, their *_file files (read again when they change,
--              and applied together once they have stopped changing), or the
--              standard AWS_* environment variables
--   instance   EC2 instance metadata (IMDSv2: a session token by PUT, then the role's credentials)
--   container  the ECS / EKS Pod Identity credentials endpoint
-- and an STS AssumeRole (cfg.credentials.role) may turn them into a role's.
--
-- Nothing here waits or reads a clock: requests go through env.http (Prosody's
-- net.http in the module, LuaSocket in prosodyctl) and time through the `now`
-- each call is given, so busted drives it all with fakes.
--
--   local chain = credentials.new(cfg, env)
--     env.http(request, callback)  request = { method, url, headers, body }; callback(response | nil, err),
--                                  response = { status, body }
--     env.read_file(path) -> string | nil, err
--     env.s3sign                   the signing library, for the AssumeRole request
--   chain:start(now, on_credentials)   on_credentials(creds, source) with every new set
--   chain:tick(now)                    from a timer: files, refreshes, retries
--   chain:usable(now) -> bool          the current set exists and has not expired
--   chain.current, chain.source, chain.expires_at, chain.refreshes, chain.failures, chain.problem
--
-- creds: { access_key_id, secret_key, session_token, expiration = unix seconds | nil }

local json = require "util.json";
local xml = require "util.xml";
local datetime = require "util.datetime";
local hashes = require "util.hashes";

local IMDS_TOKEN_TTL = 21600;          -- seconds; the session token is asked for again with every refresh
local RETRY_FIRST, RETRY_MAX = 5, 300; -- seconds between failed refreshes, doubling...
local RETRY_EXPIRED = 15;              -- ...but no longer than this while no usable set is left

local M = {};

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
function M.assume_role_body(role, s3sign)
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

-- A secret or token file's content, without the newline editors leave; nil and why not.
local function read_trimmed(env, path)
	local content, err = env.read_file(path);
	if not content then
		return nil, ("%s cannot be read: %s"):format(path, tostring(err));
	end
	return (content:gsub("%s+$", ""));
end

-- A set from the options and their files, as config.lib.lua read them, with the files read again.
function chain:static_set()
	local set = {};
	for field, value in pairs(self.cfg.static) do set[field] = value; end
	for field, path in pairs(self.cfg.files) do
		local content, problem = read_trimmed(self.env, path);
		if not content then
			return nil, problem;
		end
		set[field] = content;
	end
	return set;
end

-- What the files hold, as digests (no second copy of the secret): their times and
-- sizes miss a rewrite within the same second with values of the same length,
-- which access key ids always have. Read from the timer, never for a slot.
function chain:files_digest()
	local parts = {};
	for field, path in pairs(self.cfg.files) do
		local content = self.env.read_file(path);
		table.insert(parts, field .. "=" .. (content and hashes.sha256(content, true) or "unreadable"));
	end
	table.sort(parts);
	return table.concat(parts, ";");
end

function chain:deliver(creds, now)
	self.current, self.expires_at = creds, creds.expiration;
	self.refresh_due = M.refresh_at(creds, now);
	self.retry_due, self.failures, self.problem, self.fetching = nil, 0, nil, false;
	self.refreshes = self.refreshes + 1;
	self.on_credentials(creds, self.source);
end

function chain:fail(problem, now)
	self.fetching = false;
	self.failures = self.failures + 1;
	self.problem = problem;
	self.retry_due = now + M.retry_delay(self.failures, not self:usable(now));
	if self.on_failure then
		self.on_failure(problem, self.failures);
	end
end

-- One request, then `andthen(response)` for a 2xx answer, else a failure naming the step.
function chain:request(step, req, now, andthen)
	self.env.http(req, function (response, err)
		if not response then
			return self:fail(("%s: %s"):format(step, tostring(err)), now);
		elseif response.status < 200 or response.status >= 300 then
			local code = (response.body or ""):match("<Code>(.-)</Code>") or "";
			return self:fail(("%s: HTTP %d %s"):format(step, response.status, code), now);
		end
		andthen(response);
	end);
end

-- The set in an answer, or nil after failing the fetch. One that has already
-- expired (a stale cache upstream, a clock that is off) fails too: delivered, it
-- would sign nothing, replace a working set on reload, and be fetched every tick.
function chain:credentials_in(step, parse, response, now)
	local creds, problem = parse(response.body);
	if creds and creds.expiration <= now then
		creds, problem = nil, "the set has already expired (at " .. datetime.datetime(creds.expiration) .. ")";
	end
	if not creds then
		self:fail(step .. ": " .. problem, now);
	end
	return creds;
end

-- AssumeRole with the base set: the role's set, or a failure.
function chain:assume_role(base, now)
	local role = self.cfg.role;
	local sts = self.sts;
	local ok, why;
	if not sts then
		sts, why = self.env.s3sign.new({ access_key_id = base.access_key_id, secret_key = base.secret_key,
			session_token = base.session_token, region = role.region, service = "sts", endpoint = role.endpoint });
		self.sts = sts;
		ok = sts ~= nil;
	else
		ok, why = sts:set_credentials(base);
	end
	if not ok then
		return self:fail("AssumeRole: the base credentials are not usable: " .. tostring(why), now);
	end
	local body = M.assume_role_body(role, self.env.s3sign);
	local content_type = "application/x-www-form-urlencoded; charset=utf-8";
	local url, headers = sts:authorize("POST", "", { now = now, body = body, headers = { ["Content-Type"] = content_type } });
	headers["Content-Type"], headers["Content-Length"] = content_type, tostring(#body);
	self:request("AssumeRole", { method = "POST", url = url, headers = headers, body = body }, now, function (response)
		local creds = self:credentials_in("AssumeRole", M.parse_assume_role, response, now);
		if creds then
			self:deliver(creds, now);
		end
	end);
end

-- The base set is here: use it, or assume the role with it.
function chain:with_base(base, now)
	if self.cfg.role then
		return self:assume_role(base, now);
	end
	self:deliver(base, now);
end

function chain:fetch_instance(now)
	local endpoint = self.cfg.instance_endpoint;
	local path = "/latest/meta-data/iam/security-credentials/";
	self:request("instance metadata token", { method = "PUT", url = endpoint .. "/latest/api/token",
		headers = { ["X-aws-ec2-metadata-token-ttl-seconds"] = tostring(IMDS_TOKEN_TTL) } }, now, function (token)
		local headers = { ["X-aws-ec2-metadata-token"] = token.body };
		self:request("instance role", { method = "GET", url = endpoint .. path, headers = headers }, now, function (names)
			local role = names.body:match("^%s*([^%s]+)");
			if not role then
				return self:fail("instance role: the instance has no IAM role", now);
			end
			self:request("instance credentials", { method = "GET", url = endpoint .. path .. role, headers = headers },
				now, function (response)
					local creds = self:credentials_in("instance credentials", M.parse_json_credentials, response, now);
					if creds then
						self:with_base(creds, now);
					end
				end);
		end);
	end);
end

function chain:fetch_container(now)
	local c = self.cfg.container;
	local headers = {};
	local token = c.token;
	if c.token_file then
		local problem;
		token, problem = read_trimmed(self.env, c.token_file);
		if not token then
			return self:fail("container credentials: " .. problem, now);
		end
	end
	headers.Authorization = token;
	self:request("container credentials", { method = "GET", url = c.uri, headers = headers }, now, function (response)
		local creds = self:credentials_in("container credentials", M.parse_json_credentials, response, now);
		if creds then
			self:with_base(creds, now);
		end
	end);
end

-- Fetch a new set from the source, now.
function chain:refresh(now)
	self.fetching = true;
	local source = self.cfg.source;
	if source == "instance" then
		return self:fetch_instance(now);
	elseif source == "container" then
		return self:fetch_container(now);
	end
	local base, problem = self:static_set();
	if not base then
		return self:fail(problem, now);
	end
	self:with_base(base, now);
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

return M;
