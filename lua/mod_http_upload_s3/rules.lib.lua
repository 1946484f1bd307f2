-- Who may upload what, how often and how much: the upload rules, per purpose.
-- Pure Lua over a checked configuration (config.lib.lua), a clock passed in
-- and a store for the daily quota, so busted can test every rule.
--
--   local r = rules.new(cfg, store)   -- store: :get(user) and :set(user, value), as module:open_store gives
--   r:admits(uploader, host, local_user) -> bool
--   r:take_token(uploader, now) -> true | false, retry_at
--   r:refusal(purpose, size, content_type) -> nil | reason       ("toolarge", "typedenied")
--   r:quota_left(uploader, purpose, size, now) -> true | false, retry_at
--   r:charge(uploader, purpose, size, now)
--   r:refund(uploader, purpose, size, at, now)   -- a slot granted at `at` that was never used
--   r:save(now) -> { { uploader, error }... }   -- write-behind of the quota
--   r:state(), r:restore(state)                 -- what counts so far, across a module reload
--   r:upload_type(content_type) -> the type the upload is judged and signed as, or nil
--   r:download_options(get_expires, filename, content_type) -> slot options of a presigned GET
--   rules.bare_type(content_type), rules.type_matches(set, content_type), rules.is_active_type(content_type)

local cache = require "util.cache";
local s3sign = require "s3sign";

local DAY = 86400;

-- "Text/HTML; charset=utf-8" -> "text/html"
local function bare_type(content_type)
	return content_type:match("^[^;%s]+"):lower();
end

local function type_matches(types, content_type)
	local bare = bare_type(content_type);
	return types[bare] or types[bare:gsub("/.*", "/*")];
end

-- Types a browser may run scripts in, even where a wildcard calls them safe:
-- HTML, and XML under any name (image/svg+xml, image/x+xml, application/xml...).
local ACTIVE_TYPES = { ["text/html"] = true, ["text/xml"] = true, ["application/xml"] = true };
local function is_active_type(content_type)
	local bare = bare_type(content_type);
	return ACTIVE_TYPES[bare] or bare:find("%+xml$") ~= nil;
end

local rules = {};
rules.__index = rules;

local function new(cfg, store)
	return setmetatable({
		cfg = cfg,
		store = store,
		buckets = cache.new(10000), -- LRU: a flood of JIDs cannot grow it without bound
		usage = {},                 -- uploader -> { day = days since the epoch, [purpose] = bytes, dirty = bool }
	}, rules);
end

-- A signed-in local user (the caller knows: origin, host, roles), or one the access list names.
function rules:admits(uploader, host, local_user)
	return self.cfg.access[uploader] or self.cfg.access[host] or local_user or false;
end

-- Rate limit: a token bucket per uploader, in memory.
function rules:take_token(uploader, now)
	local limit = self.cfg.rate_limit;
	if limit == math.huge then
		return true;
	end
	local rate = limit / 60; -- tokens per second
	local b = self.buckets:get(uploader);
	if not b then
		b = { tokens = limit, at = now };
		self.buckets:set(uploader, b);
	end
	b.tokens = math.min(limit, b.tokens + (now - b.at) * rate);
	b.at = now;
	if b.tokens < 1 then
		return false, now + (1 - b.tokens) / rate;
	end
	b.tokens = b.tokens - 1;
	return true;
end

-- The type a request is judged by and, when signed, that the upload must carry:
-- with an allow-list, a request without one is application/octet-stream.
function rules:upload_type(content_type)
	if content_type == "" then
		content_type = nil;   -- some clients send an empty type: nothing to sign
	end
	if not content_type and next(self.cfg.allowed_file_types) then
		return "application/octet-stream";
	end
	return content_type;
end

-- The slot options for a presigned GET valid get_expires seconds: the
-- declared type when it is safe to show inline, else a download, whatever
-- type the upload carried.
function rules:download_options(get_expires, filename, content_type)
	if content_type and not is_active_type(content_type) and type_matches(self.cfg.safe_file_types, content_type) then
		return { get_expires = get_expires, response_type = content_type };
	end
	return {
		get_expires = get_expires,
		response_type = "application/octet-stream",
		disposition = "attachment; filename*=UTF-8''" .. s3sign.uri_encode(filename),
	};
end

-- What the purpose's limits and the type allow-list say of a file; nil when allowed.
function rules:refusal(purpose, size, content_type)
	if size > purpose.file_size_limit then
		return "toolarge";
	end
	local allowed = self.cfg.allowed_file_types;
	if next(allowed) and not type_matches(allowed, content_type or "application/octet-stream") then
		return "typedenied";
	end
end

-- Bytes granted to uploader today, per purpose; read from the store once a day.
-- Message bytes are kept as `bytes`, where records from before purposes have them.
local function field(purpose)
	return purpose.name == "message" and "bytes" or purpose.name;
end

function rules:usage_of(uploader, day)
	local u = self.usage[uploader];
	if not u then
		-- a store that fails (a database away) counts from nothing rather than refuse the slot
		local ok, stored = pcall(self.store.get, self.store, uploader);
		u = ok and stored or {};
		self.usage[uploader] = u;
	end
	if u.day ~= day then
		for k in pairs(u) do u[k] = nil; end
		u.day = day;
	end
	return u;
end

-- Daily quota per purpose, counted when a slot is granted; the retry time is the next UTC midnight.
function rules:quota_left(uploader, purpose, size, now)
	local today = now // DAY;
	local used = self:usage_of(uploader, today)[field(purpose)] or 0;
	if used + size > purpose.daily_quota then
		return false, (today + 1) * DAY;
	end
	return true;
end

function rules:charge(uploader, purpose, size, now)
	local u = self:usage_of(uploader, now // DAY);
	local f = field(purpose);
	u[f] = (u[f] or 0) + size;
	u.dirty = true;
end

-- A slot that was never used gives its bytes back, if they still count today.
function rules:refund(uploader, purpose, size, at, now)
	if at // DAY ~= now // DAY then
		return;
	end
	local u = self:usage_of(uploader, now // DAY);
	local f = field(purpose);
	u[f] = math.max(0, (u[f] or 0) - size);
	u.dirty = true;
end

-- What has been counted (rate and quota), for the rules of the next configuration or module load.
function rules:state()
	return { usage = self.usage, buckets = self.buckets };
end

function rules:restore(state)
	self.usage = state.usage or self.usage;
	self.buckets = state.buckets or self.buckets;
end

-- Written behind, every few seconds and on unload, so that a burst of slots
-- costs no storage round trips; a crash loses at most the last interval. A
-- failed write stays dirty, so the next save tries it again.
function rules:save(now)
	local today, failures = now // DAY, {};
	for uploader, u in pairs(self.usage) do
		if u.dirty then
			u.dirty = nil;
			local record = {};
			for k, v in pairs(u) do record[k] = v; end
			local ok, saved, err = pcall(self.store.set, self.store, uploader, record);
			if not ok then
				saved, err = nil, saved;
			end
			if not saved then
				u.dirty = true;
				table.insert(failures, { uploader, err });
			end
		elseif u.day ~= today then
			self.usage[uploader] = nil;
		end
	end
	return failures;
end

return {
	new = new;
	bare_type = bare_type;
	type_matches = type_matches;
	is_active_type = is_active_type;
};
