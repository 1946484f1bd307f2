-- The upload rules (lua/mod_http_upload_s3/rules.lib.lua) over configurations
-- read by config.lib.lua, with a clock and a store passed in.
local config = module:require "config";
local rules = module:require "rules";

local MIB = 1024 * 1024;
local DAY = 86400;
local NOON = 20000 * DAY + 43200; -- some day at 12:00 UTC

local function cfg_with(options)
	local all = {
		access_id = "AKIAIOSFODNN7EXAMPLE", secret_key_file = "/secret", region = "eu-west-2",
		bucket = "chat-uploads", path = "http_uploads",
	};
	for k, v in pairs(options or {}) do all[k] = v; end
	local env = { getenv = function () end, read_file = function () return "secret"; end };
	return config.read(function (name) return all[name]; end, env);
end

-- A store like module:open_store's, that can be made to fail.
local function memory_store(records)
	local store = { records = records or {}, reads = 0, failing = false };
	function store:get(user) self.reads = self.reads + 1; return self.records[user]; end
	function store:set(user, value)
		if self.failing then return nil, "database is down"; end
		self.records[user] = value;
		return true;
	end
	return store;
end

describe("rules", function ()
	it("admits local users and whoever the access list names", function ()
		local r = rules.new(cfg_with { access = { "friend@other.example", "partner.example" } }, memory_store());
		assert.is_true(r:admits("alice@example.org", "example.org", true));
		assert.is_false(r:admits("mallory@evil.example", "evil.example", false));
		assert.is_true(r:admits("friend@other.example", "other.example", false));
		assert.is_true(r:admits("anyone@partner.example", "partner.example", false));
	end);

	it("limits the rate with a token bucket per user", function ()
		local r = rules.new(cfg_with { rate_limit = 3 }, memory_store());
		for _ = 1, 3 do assert.is_true(r:take_token("a@x", NOON)); end
		local ok, retry_at = r:take_token("a@x", NOON);
		assert.is_false(ok);
		assert.equal(NOON + 20, retry_at); -- 3 a minute: one every 20 s
		assert.is_true(r:take_token("b@x", NOON)); -- another user is unaffected
		assert.is_true(r:take_token("a@x", NOON + 20));
		local unlimited = rules.new(cfg_with { rate_limit = false }, memory_store());
		for _ = 1, 1000 do assert.is_true(unlimited:take_token("a@x", NOON)); end
	end);

	it("applies each purpose's size limit, and the type allow-list", function ()
		local cfg = cfg_with { purposes = { "profile" }, file_size_limit = 10 * MIB, allowed_file_types = { "image/*" } };
		local r = rules.new(cfg, memory_store());
		assert.is_nil(r:refusal(cfg.purposes.message, 10 * MIB, "image/png"));
		assert.equal("toolarge", r:refusal(cfg.purposes.message, 10 * MIB + 1, "image/png"));
		assert.equal("toolarge", r:refusal(cfg.purposes.profile, MIB + 1, "image/png")); -- profile default: 1 MiB
		assert.is_nil(r:refusal(cfg.purposes.profile, MIB, "Image/PNG; x=y"));
		assert.equal("typedenied", r:refusal(cfg.purposes.message, 1, "text/plain"));
		assert.equal("typedenied", r:refusal(cfg.purposes.message, 1, nil)); -- counts as application/octet-stream
	end);

	it("keeps a daily quota per user and purpose, until the next UTC midnight", function ()
		local cfg = cfg_with { purposes = { "profile" }, daily_quota = 100, profile_daily_quota = 10 };
		local store = memory_store();
		local r = rules.new(cfg, store);
		local message, profile = cfg.purposes.message, cfg.purposes.profile;
		assert.is_true(r:quota_left("a@x", profile, 10, NOON));
		r:charge("a@x", profile, 10, NOON);
		local ok, retry_at = r:quota_left("a@x", profile, 1, NOON);
		assert.is_false(ok);
		assert.equal(NOON - 43200 + DAY, retry_at);
		assert.is_true(r:quota_left("a@x", message, 100, NOON)); -- the message quota is its own
		assert.is_true(r:quota_left("b@x", profile, 10, NOON)); -- so is another user's
		assert.is_true(r:quota_left("a@x", profile, 10, NOON + DAY / 2)); -- next day
	end);

	it("writes the quota behind, keeps failed writes for the next save, and reads old records", function ()
		local cfg = cfg_with { daily_quota = 100 };
		local store = memory_store { ["old@x"] = { day = NOON // DAY, bytes = 95 } }; -- written before purposes
		local r = rules.new(cfg, store);
		assert.is_false((r:quota_left("old@x", cfg.purposes.message, 6, NOON)));
		r:charge("a@x", cfg.purposes.message, 40, NOON);
		assert.is_nil(store.records["a@x"]); -- not yet written
		store.failing = true;
		local failures = r:save(NOON);
		assert.same({ { "a@x", "database is down" } }, failures);
		store.failing = false;
		assert.same({}, r:save(NOON + 5));
		assert.same({ day = NOON // DAY, bytes = 40 }, store.records["a@x"]);
		local reads = store.reads;
		assert.is_true(r:quota_left("a@x", cfg.purposes.message, 60, NOON));
		assert.equal(reads, store.reads); -- kept in memory: no storage round trip per slot
		-- a fresh module (a restart) reads it back
		assert.is_false((rules.new(cfg, store):quota_left("a@x", cfg.purposes.message, 61, NOON)));
	end);

	it("answers while the store raises errors, and saves once it is back", function ()
		local cfg = cfg_with { daily_quota = 100 };
		local store = memory_store();
		local broken = true;
		local get, set = store.get, store.set;
		function store:get(user) if broken then error("no connection to the database"); end return get(self, user); end
		function store:set(user, v) if broken then error("no connection to the database"); end return set(self, user, v); end
		local r = rules.new(cfg, store);
		assert.is_true(r:quota_left("a@x", cfg.purposes.message, 50, NOON));
		r:charge("a@x", cfg.purposes.message, 50, NOON);
		local failures = r:save(NOON);
		assert.equal(1, #failures);
		assert.matches("no connection to the database", failures[1][2]);
		broken = false;
		assert.same({}, r:save(NOON + 5));
		assert.same({ day = NOON // DAY, bytes = 50 }, store.records["a@x"]);
	end);

	it("serves every XML type and HTML as a download, whatever the safe list says", function ()
		local r = rules.new(cfg_with { safe_file_types = { "image/*", "text/*", "application/*" } }, memory_store());
		for _, t in ipairs({ "image/svg+xml", "image/x+xml", "application/xhtml+xml", "application/atom+xml",
			"text/html", "Text/HTML; charset=utf-8", "text/xml", "application/xml" }) do
			assert.is_truthy(rules.is_active_type(t), t);
			local options = r:download_options(600, "a b.svg", t);
			assert.same({ 600, "application/octet-stream", "attachment; filename*=UTF-8''a%20b.svg" },
				{ options.get_expires, options.response_type, options.disposition }, t);
		end
		for _, t in ipairs({ "image/png", "text/plain", "application/pdf" }) do
			assert.is_falsy(rules.is_active_type(t), t);
			assert.same({ get_expires = 600, response_type = t }, r:download_options(600, "x", t));
		end
		assert.equal("application/octet-stream", r:download_options(600, "x", nil).response_type);
	end);

	it("judges and signs a request without a type as application/octet-stream under an allow-list", function ()
		local open = rules.new(cfg_with {}, memory_store());
		assert.is_nil(open:upload_type(nil));
		assert.is_nil(open:upload_type(""));
		assert.equal("image/png", open:upload_type("image/png"));
		local listed = rules.new(cfg_with { allowed_file_types = { "image/*" } }, memory_store());
		assert.equal("application/octet-stream", listed:upload_type(nil));
		assert.equal("application/octet-stream", listed:upload_type(""));
		assert.equal("typedenied", listed:refusal(listed.cfg.purposes.message, 1, listed:upload_type(nil)));
		assert.is_true(listed.cfg.sign_content_type);
	end);
end);
