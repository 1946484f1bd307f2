-- The upload service of one configuration: its rules, its credential chain
-- and the signer they feed, and the one path a slot takes, for the module's
-- clients and for prosodyctl's check and presign alike.
--
--   local svc = service.new(cfg, env, stores)     -- stores.quota: the daily quota's (module:open_store);
--                                                 -- stores.records: records.lib's, to record every slot
--   svc:start(now, on_ready, on_failure)          -- on_ready(source, creds) when a set of credentials
--                                                 -- can sign; on_failure(problem, failures)
--   svc:tick(now), svc:ready(now) -> bool, svc:status() -> the chain's, svc:close()
--   svc:download_url(rec, now) -> the URL a recorded file is downloaded from now | nil, why
--   svc:slot(req, uploader, now [, trace]) -> slot | nil, err
--     req: request.parse's fields { filename, size, content_type, purpose, expire_before, malformed }
--     uploader: { jid =, host =, local_user = bool (a signed-in user of the served host) },
--               or { admin = true }: prosodyctl's own slots (check, presign), the same slot as a
--               client's but for the rules of who may upload what, how often and how much
--     slot: { put =, get =, key =, size =, purpose = name, content_type = signed or nil,
--             canonical_request = the PUT's, with trace (for check to show beside S3's) }
--     err: { reason =, text =, retry_at = | nil, max_size = | nil }
--
-- The reasons, each a reply the module knows: access, rate, request, filename,
-- purpose, expiry, filesize, toolarge, filetype, typedenied, quota, storage, internal.

local s3sign = require "s3sign";
local datetime = require "util.datetime";
local config = module:require "config";
local credentials = module:require "credentials";
local request = module:require "request";
local rules = module:require "rules";

local MIN_EPHEMERAL = 30;   -- seconds: time to upload, and for someone to fetch it
local CHECK_AFTER = 5;      -- seconds after a PUT URL expires: its upload may still be finishing

local service = {};
service.__index = service;

local function new(cfg, env, stores)
	return setmetatable({ cfg = cfg, rules = rules.new(cfg, stores.quota), records = stores.records,
		chain = credentials.new(cfg, env) }, service);
end

local function refusal(reason, text, extra)
	local err = extra or {};
	err.reason, err.text = reason, text;
	return err;
end

-- Every set of credentials goes into the signer (made with the first); a set it refuses is a failure.
function service:start(now, on_ready, on_failure)
	self.chain:start(now, function (creds, source)
		local ok, why;
		if self.signer then
			ok, why = self.signer:set_credentials(creds);   -- all three at once, the old wiped
		else
			self.signer, why = s3sign.new(config.signer_options(self.cfg, creds));
			ok = self.signer ~= nil;
		end
		if not ok then
			local field, reason = why:match("^([%w_]+): (.*)$");
			return on_failure(("the credentials from %s cannot sign: %s %s"):format(source,
				config.option_of(field or "access_key_id"), reason or why), 1);
		end
		on_ready(source, creds);
	end, on_failure);
end

function service:tick(now)
	self.chain:tick(now);
end

function service:ready(now)
	return self.signer ~= nil and self.chain:usable(now);
end

function service:status()
	return self.chain:status();
end

function service:close()
	if self.signer then
		self.signer:close();
		self.signer = nil;
	end
end

-- How long an ephemeral file's GET URL may live: until expire-before, at most
-- the 7 days S3 allows a presigned URL; nil and why not.
local function ephemeral_lifetime(text, now)
	if not text then
		return nil, "Ephemeral uploads need an expire-before time";
	end
	local ok, at = pcall(datetime.parse, text);
	if not ok or not at then
		return nil, "expire-before is not a XEP-0082 date and time";
	elseif at <= now then
		return nil, "expire-before is in the past";
	elseif at < now + MIN_EPHEMERAL then
		return nil, ("expire-before must be at least %d seconds from now"):format(MIN_EPHEMERAL);
	end
	return math.min(math.floor(at - now), s3sign.limits.expires);
end

-- What the request asks for, checked field by field: the purpose, the size,
-- the type signed and how long a presigned GET lives; nil and the refusal.
function service:checked(req, now, admin)
	if req.malformed then
		return nil, refusal("request", req.malformed);
	end
	local problem = request.check_filename(req.filename);
	if problem then
		return nil, refusal("filename", problem);
	end
	local purpose = self.cfg.purposes[req.purpose];
	if not purpose then
		return nil, refusal("purpose", ("Upload purpose '%s' is not offered by this service"):format(req.purpose));
	end
	local get_expires = purpose.presign_get and self.cfg.get_expires or nil;
	if purpose.name == "ephemeral" then
		get_expires, problem = ephemeral_lifetime(req.expire_before, now);
		if not get_expires then
			return nil, refusal("expiry", problem);
		end
	end
	local size, size_problem = request.parse_size(req.size);
	if size_problem == "too-large" then
		return nil, refusal("toolarge", nil, { max_size = purpose.file_size_limit });
	elseif not size then
		return nil, refusal("filesize");
	end
	local content_type = self.rules:upload_type(req.content_type);
	problem = content_type and request.check_content_type(content_type);
	if problem then
		return nil, refusal("filetype", problem);
	end
	local refused = not admin and self.rules:refusal(purpose, size, content_type);
	if refused then
		return nil, refusal(refused, nil, refused == "toolarge" and { max_size = purpose.file_size_limit } or nil);
	end
	return { purpose = purpose, size = size, content_type = content_type, get_expires = get_expires };
end

-- Who may ask, and how often: nil when the uploader may ask now, else the refusal.
function service:admission(uploader, now)
	if not self.rules:admits(uploader.jid, uploader.host, uploader.local_user) then
		return refusal("access");
	end
	local allowed, retry_at = self.rules:take_token(uploader.jid, now);
	if not allowed then
		return refusal("rate", nil, { retry_at = math.ceil(retry_at) });
	end
end

-- "12.3 MiB"
local function bytes(n)
	for _, unit in ipairs({ "bytes", "KiB", "MiB", "GiB" }) do
		if n < 1024 or unit == "GiB" then
			return unit == "bytes" and ("%d bytes"):format(n) or ("%.1f %s"):format(n, unit);
		end
		n = n / 1024;
	end
end

-- How much: nil when the uploader may have this slot, else the refusal.
function service:limits(uploader, ask, now)
	local within, retry_at = self.rules:quota_left(uploader.jid, ask.purpose, ask.size, now);
	if not within then
		return refusal("quota", nil, { retry_at = retry_at });
	end
	local stored = self.records and self.records:usage(uploader.jid, ask.purpose.name) or 0;
	if stored + ask.size > ask.purpose.storage_quota then
		return refusal("storage", ("You store %s of the %s your %s uploads may take; delete some "
			.. "(the \"Delete uploads\" command of this service) to make room"):format(bytes(stored),
			bytes(ask.purpose.storage_quota), ask.purpose.name));
	end
end

-- "alice@example.com's file cat.jpg (12.3 KiB)", for logs and admins' replies
local function whose_file(rec)
	return ("%s's file %s (%s)"):format(rec.owner ~= "" and rec.owner or "an unrecorded uploader", rec.filename,
		bytes(rec.stored or rec.size));
end

function service:slot(req, uploader, now, trace)
	local admin = uploader.admin;
	local err = not admin and self:admission(uploader, now);
	if err then
		return nil, err;
	end
	local ask;
	ask, err = self:checked(req, now, admin);
	if not ask then
		return nil, err;
	end
	err = not admin and self:limits(uploader, ask, now);
	if err then
		return nil, err;
	end
	if not self:ready(now) then
		return nil, refusal("internal", "Upload credentials are not available; try again later");
	end
	local signed_type = self.cfg.sign_content_type and ask.content_type or nil;
	local options = ask.get_expires and self.rules:download_options(ask.get_expires, req.filename, ask.content_type);
	if trace then
		options = options or {};
		options.trace = true;
	end
	local put, get, key, canonical_request = self.signer:slot(ask.purpose.key_prefix, req.filename, ask.size,
		signed_type, options or nil);
	if not put then
		return nil, refusal("internal", nil, { problem = get });
	end
	if not admin then
		self.rules:charge(uploader.jid, ask.purpose, ask.size, now);
		if self.records then
			self.records:add({ key = key, owner = uploader.jid, filename = req.filename, size = ask.size,
				content_type = ask.content_type, purpose = ask.purpose.name, at = now,
				due = self:due(ask.purpose, ask.get_expires, now), check_at = self:check_time(now) });
		end
	end
	return { put = put, get = get, key = key, size = ask.size, purpose = ask.purpose.name, content_type = signed_type,
		canonical_request = canonical_request };
end

-- When to look in the bucket for what a PUT URL signed now uploaded: once the URL has expired.
function service:check_time(now)
	return now + self.cfg.put_expires + CHECK_AFTER;
end

-- When a file of this purpose granted now is to go: an ephemeral one at its
-- expire-before; the others after their retention, as the lifecycle rule counts
-- it (whole days) or to the second when this module deletes them; nil to keep it.
function service:due(purpose, get_expires, now)
	if purpose.name == "ephemeral" then
		return now + get_expires;
	elseif purpose.expires_after then
		return now + (self.cfg.expire_by == "module" and purpose.retention or purpose.expires_after * 86400);
	end
end

-- Where a recorded file is downloaded from now: its public URL, or a presigned one that lives
-- as long as a slot's would, and not past the file's due time.
function service:download_url(rec, now)
	local purpose = self.cfg.purposes[rec.purpose];
	if not purpose or not self.signer then
		return nil, "not served by this configuration";
	end
	local options;
	if purpose.presign_get then
		local expires = math.min(self.cfg.get_expires, (rec.due or math.huge) - now);
		if expires < 1 then
			return nil, "past its time";
		end
		options = self.rules:download_options(expires, rec.filename, rec.content_type);
		options.now = now;
	end
	return self.signer:download(rec.key, options);
end

return { new = new, bytes = bytes, whose_file = whose_file };
