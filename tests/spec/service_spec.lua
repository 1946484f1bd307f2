-- The one slot path (lua/mod_http_upload_s3/service.lib.lua), without a server:
-- a configuration read by config.lib.lua, its credentials, its rules, the signer.
local config = module:require "config";
local service = module:require "service";
local records = module:require "records";

local NOW = 1764650000;
local KEY = "AKIAIOSFODNN7EXAMPLE";
local ALICE = { jid = "alice@example.org", host = "example.org", local_user = true };

local function quota_store()
	local saved = {};
	return { get = function (_, user) return saved[user]; end, set = function (_, user, v) saved[user] = v; return true; end };
end

-- A started service for these options (over a bucket on AWS, credentials in the options).
local function service_with(options)
	local all = { access_id = KEY, secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region = "eu-west-2",
		bucket = "chat-uploads", path = "http_uploads" };
	for k, v in pairs(options or {}) do all[k] = v ~= false and v or nil; end
	local env = { getenv = function () end, http = function () error("no request expected"); end,
		read_file = function () return nil, "no files here"; end };
	local cfg = assert(config.read(function (name) return all[name]; end, env));
	local svc = service.new(cfg, env, { quota = quota_store(), records = records.new(memory_records_stores()) });
	local problems = {};
	svc:start(NOW, function () end, function (why) table.insert(problems, why); end);
	return svc, problems;
end

local function request(fields)
	local req = { filename = "holiday photo.jpg", size = "1000", content_type = "image/jpeg", purpose = "message" };
	for k, v in pairs(fields or {}) do req[k] = v ~= false and v or nil; end
	return req;
end

describe("service:slot", function ()
	it("makes a slot: the PUT signs the size, the GET is public, the key is the folder, an id and the name", function ()
		local svc = service_with();
		local slot = assert(svc:slot(request(), ALICE, NOW));
		assert.matches("^http_uploads/%x+%-%x+%-4%x+%-[89ab]%x+%-%x+/holiday photo%.jpg$", slot.key);
		assert.matches("X-Amz-SignedHeaders=content-length%3Bhost&", slot.put, 1, true);
		assert.equal("https://chat-uploads.s3.eu-west-2.amazonaws.com/" .. slot.key:gsub(" ", "%%20"), slot.get);
		assert.same({ 1000, "message" }, { slot.size, slot.purpose });
	end);

	it("refuses with one error convention: a reason, a text, a retry time or a limit", function ()
		local svc = service_with { purposes = { "ephemeral" }, rate_limit = 60, daily_quota = 1500 };
		local cases = {
			{ request { filename = "a/b" }, ALICE, "filename" },
			{ request { size = "1e3" }, ALICE, "filesize" },
			{ request { size = "999999999999999999999" }, ALICE, "toolarge" },
			{ request { content_type = "not a type" }, ALICE, "filetype" },
			{ request { purpose = "profile" }, ALICE, "purpose" },
			{ request { purpose = "ephemeral" }, ALICE, "expiry" },
			{ request { malformed = "Request has more than one <size>" }, ALICE, "request" },
			{ request(), { jid = "mallory@evil.example", host = "evil.example", local_user = false }, "access" },
		};
		for _, case in ipairs(cases) do
			local slot, err = svc:slot(case[1], case[2], NOW);
			assert.is_nil(slot, case[3]);
			assert.equal(case[3], err.reason);
		end
		local _, too_large = svc:slot(request { size = "999999999999999999999" }, ALICE, NOW);
		assert.equal(100 * 1024 * 1024, too_large.max_size);
		assert.truthy(svc:slot(request(), ALICE, NOW));
		local _, quota = svc:slot(request { size = "600" }, ALICE, NOW);
		assert.same({ "quota", (NOW // 86400 + 1) * 86400 }, { quota.reason, quota.retry_at });
	end);

	it("answers internal-server-error, with a reason, while it has no credentials", function ()
		local svc, problems = service_with { access_id = false, secret_key = false, access_id_file = "/missing",
			secret_key_file = "/missing" };
		assert.matches("^http_upload_s3_access_id_file cannot be read", problems[1]);
		local slot, err = svc:slot(request(), ALICE, NOW);
		assert.is_nil(slot);
		assert.same({ "internal", "Upload credentials are not available; try again later" }, { err.reason, err.text });
	end);

	it("gives prosodyctl's own slots the GET options a client's get: the same path, not a copy", function ()
		local svc = service_with { presign_get = true, get_expires = 600, rate_limit = 1,
			allowed_file_types = { "image/*", "text/html" } };
		for i, content_type in ipairs({ "image/jpeg", "text/html" }) do
			local user = { jid = "user" .. i .. "@example.org", host = "example.org", local_user = true };
			local client = assert(svc:slot(request { content_type = content_type, filename = "x" }, user, NOW));
			local admin = assert(svc:slot(request { content_type = content_type, filename = "x" }, { admin = true }, NOW));
			-- the same signed type and the same response headers; only the random id differs
			local function without_id(url)
				return (url:gsub("%x+%-%x+%-4%x+%-[89ab]%x+%-%x+", "ID"):gsub("X%-Amz%-Signature=%x+", ""));
			end
			assert.equal(without_id(client.get), without_id(admin.get));
			assert.equal(without_id(client.put), without_id(admin.put));
			assert.matches("response-content-type=", admin.get, 1, true);
		end
		assert.matches("response-content-disposition=attachment",
			assert(svc:slot(request { content_type = "text/html" }, { admin = true }, NOW)).get, 1, true);
		-- the admin's slots count against no one's rate or quota
		assert.truthy(svc:slot(request(), ALICE, NOW));
		assert.equal("rate", select(2, svc:slot(request(), ALICE, NOW)).reason);
	end);

	it("shows the PUT's canonical request when asked (for check to put beside S3's)", function ()
		local slot = assert(service_with():slot(request(), { admin = true }, NOW, true));
		assert.matches("^PUT\n/http_uploads/", slot.canonical_request);
		assert.matches("content-length:1000\n", slot.canonical_request, 1, true);
	end);

	it("records every client's slot (never prosodyctl's), with when it is due to go", function ()
		local svc = service_with { purposes = { "ephemeral", "permanent" }, expires_after = 2 * 86400 };
		local slot = assert(svc:slot(request(), ALICE, NOW));
		assert(svc:slot(request { purpose = "permanent" }, ALICE, NOW));
		assert(svc:slot(request { purpose = "ephemeral", expire_before = "2025-12-02T05:00:00Z" }, ALICE, NOW));
		assert(svc:slot(request(), { admin = true }, NOW));
		local list = svc.records:of(ALICE.jid);
		assert.equal(3, #list);
		local by_purpose = {};
		for _, rec in ipairs(list) do by_purpose[rec.purpose] = rec; end
		assert.same({ slot.key, "alice@example.org", "holiday photo.jpg", 1000, "image/jpeg", NOW + 2 * 86400, "pending" },
			{ by_purpose.message.key, by_purpose.message.owner, by_purpose.message.filename, by_purpose.message.size,
				by_purpose.message.content_type, by_purpose.message.due, by_purpose.message.state });
		assert.is_nil(by_purpose.permanent.due);   -- kept for ever
		assert.equal(1764651600, by_purpose.ephemeral.due);   -- expire-before
		assert.equal(NOW + 300 + 5, by_purpose.message.check_at);   -- after its PUT URL expired
		assert.equal(by_purpose.message.check_at, svc:check_time(NOW));   -- as a takedown's second look
	end);

	it("names a file for logs and admins: its owner, name and size, or that nobody recorded it", function ()
		assert.equal("alice@example.org's file cat.jpg (1.5 KiB)",
			service.whose_file({ owner = "alice@example.org", filename = "cat.jpg", size = 1536 }));
		assert.equal("alice@example.org's file cat.jpg (900 bytes)",   -- what arrived, once known
			service.whose_file({ owner = "alice@example.org", filename = "cat.jpg", size = 1536, stored = 900 }));
		assert.equal("an unrecorded uploader's file old.png (0 bytes)",
			service.whose_file({ owner = "", filename = "old.png", size = 0 }));
	end);

	it("refuses past the storage quota, saying what is used, and grants again once files are deleted", function ()
		local svc = service_with { storage_quota = 2500 };
		assert(svc:slot(request { size = "1000" }, ALICE, NOW));
		assert(svc:slot(request { size = "1000" }, ALICE, NOW));
		local slot, err = svc:slot(request { size = "1000" }, ALICE, NOW);
		assert.is_nil(slot);
		assert.equal("storage", err.reason);
		assert.matches("You store 2.0 KiB of the 2.4 KiB your message uploads may take; delete some", err.text, 1, true);
		assert(svc:slot(request { size = "1000" }, { jid = "bob@example.org", host = "example.org", local_user = true }, NOW));
		svc.records:delete({ svc.records:of(ALICE.jid)[1] }, "user");
		assert(svc:slot(request { size = "1000" }, ALICE, NOW));   -- at once, while the bucket deletes it
		-- an upload that never came gives its bytes back, once the bucket says so
		local never = svc.records:due_checks(NOW + 400)[1];
		svc.records:vanish(never);
		assert.equal(1000, svc.records:usage(ALICE.jid, "message"));
	end);
end);
