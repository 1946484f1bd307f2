-- The bucket's documents (lua/mod_http_upload_s3/bucket.lib.lua): what setup
-- writes, what check compares, and what docs/admin.md shows.
local config = dofile("lua/mod_http_upload_s3/config.lib.lua");
local bucket = dofile("lua/mod_http_upload_s3/bucket.lib.lua");
local HOST = "upload.example.org";
local json = require "util.json";
local xml = require "util.xml";

local function cfg_with(options)
	local all = {
		access_id = "AKIAIOSFODNN7EXAMPLE", secret_key_file = "/secret", region = "eu-west-2",
		bucket = "example-chat-uploads", path = "http_uploads",
	};
	for k, v in pairs(options or {}) do all[k] = v; end
	local env = { getenv = function () end, read_file = function () return "secret"; end,
		parse_duration = require "util.human.io".parse_duration };
	return config.read(function (name) return all[name]; end, env);
end

-- The configuration docs/admin.md shows the documents of.
local EXAMPLE = { purposes = { "profile", "ephemeral", "permanent" }, expires_after = 30 * 86400,
	cors_origins = { "https://chat.example.org" } };

local function rule_ids(body)
	local ids = {};
	for rule in xml.parse(body):childtags() do
		table.insert(ids, rule:get_child_text("ID"));
	end
	return ids;
end

describe("bucket.wanted", function ()
	it("makes public only the folders with public downloads, never the ephemeral one", function ()
		local w = bucket.wanted(cfg_with(EXAMPLE), HOST);
		assert.same({ "arn:aws:s3:::example-chat-uploads/http_uploads/*",
			"arn:aws:s3:::example-chat-uploads/http_uploads_profile/*",
			"arn:aws:s3:::example-chat-uploads/http_uploads_permanent/*" }, w.policy[1].Resource);
		assert.equal("s3:GetObject", w.policy[1].Action); -- never s3:ListBucket
		assert.same({ { ID = "HttpUploadS3 upload.example.org message", Prefix = "http_uploads/", Days = 30 },
			{ ID = "HttpUploadS3 upload.example.org ephemeral", Prefix = "http_uploads_ephemeral/", Days = 7 } }, w.lifecycle);
		assert.same({ "https://chat.example.org" }, w.cors[1].AllowedOrigins);
	end);

	it("leaves out what the options turn off", function ()
		local w = bucket.wanted(cfg_with { presign_get = true, expires_after = false, cors_origins = false }, HOST);
		assert.same({ policy = {}, cors = {}, lifecycle = {} }, w);
	end);
end);

describe("bucket.merge_policy", function ()
	it("adds its statement, keeps others', and is idempotent", function ()
		local cfg = cfg_with(EXAMPLE);
		local foreign = { Sid = "Logs", Effect = "Allow", Principal = { AWS = "arn:aws:iam::1:root" },
			Action = "s3:PutObject", Resource = "arn:aws:s3:::example-chat-uploads/logs/*" };
		local document, changes = bucket.merge_policy(cfg, HOST, json.encode({ Version = "2012-10-17", Statement = { foreign } }));
		assert.equal(1, #changes);
		assert.matches("^policy: add HttpUploadS3PublicReaduploadexampleorg", changes[1]);
		assert.same(foreign, document.Statement[1]);
		local again, no_changes = bucket.merge_policy(cfg, HOST, json.encode(document));
		assert.is_nil(again);
		assert.same({}, no_changes);
	end);

	it("removes its statement when nothing is public, and warns of a public ephemeral folder", function ()
		local cfg = cfg_with(EXAMPLE);
		local mine = bucket.merge_policy(cfg, HOST, nil);
		local private = cfg_with { purposes = { "ephemeral" }, presign_get = true };
		local everything = { Sid = "OldRule", Effect = "Allow", Principal = "*", Action = { "s3:GetObject" },
			Resource = "arn:aws:s3:::example-chat-uploads/*" };
		table.insert(mine.Statement, everything);
		local document, changes, warnings = bucket.merge_policy(private, HOST, json.encode(mine));
		assert.same({ everything }, document.Statement);
		assert.matches("^policy: remove HttpUploadS3PublicReaduploadexampleorg", changes[1]);
		assert.matches("OldRule makes the ephemeral folder http_uploads_ephemeral/ public", warnings[1], 1, true);
		local gone, last = bucket.merge_policy(private, HOST, json.encode((bucket.merge_policy(cfg, HOST, nil))));
		assert.is_nil(gone); -- nothing left: delete the policy
		assert.equal(1, #last);
	end);
end);

describe("hosts sharing a bucket", function ()
	it("each keep their own statement and rules", function ()
		local a, b = cfg_with { path = "a_uploads" }, cfg_with { path = "b_uploads", expires_after = 86400 };
		local policy = bucket.merge_policy(b, "b.example", json.encode((bucket.merge_policy(a, "a.example", nil))));
		assert.equal(2, #policy.Statement);
		local lifecycle = bucket.merge_lifecycle(b, "b.example", (bucket.merge_lifecycle(a, "a.example", nil)));
		assert.same({ "HttpUploadS3 a.example message", "HttpUploadS3 b.example message" }, rule_ids(lifecycle));
		assert.is_nil((bucket.merge_lifecycle(a, "a.example", lifecycle))); -- a's rule is still as a wants it
	end);
end);

describe("bucket.merge_lifecycle and merge_cors", function ()
	local FOREIGN = [[<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ID>logs</ID>]]
		.. [[<Filter><And><Prefix>logs/</Prefix><Tag><Key>k</Key><Value>v &amp; w</Value></Tag></And></Filter>]]
		.. [[<Status>Enabled</Status><Expiration><Days>90</Days></Expiration></Rule></LifecycleConfiguration>]];

	it("adds one rule per expiring purpose, keeps foreign rules as they were, and is idempotent", function ()
		local cfg = cfg_with(EXAMPLE);
		local body, changes = bucket.merge_lifecycle(cfg, HOST, FOREIGN);
		assert.same({ "lifecycle: add HttpUploadS3 upload.example.org message: http_uploads/ expires after 30 days",
			"lifecycle: add HttpUploadS3 upload.example.org ephemeral: http_uploads_ephemeral/ expires after 7 days" }, changes);
		assert.same({ "logs", "HttpUploadS3 upload.example.org message", "HttpUploadS3 upload.example.org ephemeral" }, rule_ids(body));
		assert.matches("<Tag><Key>k</Key><Value>v &amp; w</Value></Tag>", body, 1, true);
		local again, none = bucket.merge_lifecycle(cfg, HOST, body);
		assert.is_nil(again);
		assert.same({}, none);
	end);

	it("changes and removes its own rules as the options change", function ()
		local body = bucket.merge_lifecycle(cfg_with(EXAMPLE), HOST, FOREIGN);
		local changed, changes = bucket.merge_lifecycle(cfg_with { expires_after = 86400 }, HOST, body);
		table.sort(changes);
		assert.same({ "lifecycle: change HttpUploadS3 upload.example.org message: http_uploads/ expires after 1 day "
			.. "(was HttpUploadS3 upload.example.org message: http_uploads/ expires after 30 days)",
			"lifecycle: remove HttpUploadS3 upload.example.org ephemeral: http_uploads_ephemeral/ expires after 7 days" }, changes);
		assert.same({ "logs", "HttpUploadS3 upload.example.org message" }, rule_ids(changed));
		local nothing, last = bucket.merge_lifecycle(cfg_with { expires_after = false }, HOST,
			(bucket.merge_lifecycle(cfg_with {}, HOST, nil)));
		assert.is_nil(nothing); -- nothing left: delete the configuration
		assert.equal(1, #last);
	end);

	it("writes the CORS rule web clients need, once", function ()
		local cfg = cfg_with(EXAMPLE);
		local body, changes = bucket.merge_cors(cfg, HOST, nil);
		assert.same({ "cors: add HttpUploadS3 upload.example.org for origins https://chat.example.org" }, changes);
		assert.matches("<AllowedMethod>PUT</AllowedMethod><AllowedMethod>GET</AllowedMethod>", body, 1, true);
		assert.is_nil((bucket.merge_cors(cfg, HOST, body)));
		-- as RGW gives it back: its own order of methods
		local reordered = body:gsub("<AllowedMethod>PUT</AllowedMethod><AllowedMethod>GET</AllowedMethod>",
			"<AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>");
		assert.is_nil((bucket.merge_cors(cfg, HOST, reordered)));
	end);

	it("leaves documents it cannot read alone", function ()
		local body, changes, warnings = bucket.merge_lifecycle(cfg_with(EXAMPLE), HOST, "not xml <");
		assert.is_nil(body);
		assert.same({}, changes);
		assert.matches("not XML; left as it is", warnings[1], 1, true);
	end);
end);

describe("docs/admin.md", function ()
	it("shows exactly the documents setup writes for its example configuration", function ()
		local docs = assert(io.open("docs/admin.md")):read("a");
		local shown = bucket.as_json(cfg_with(EXAMPLE), HOST);
		for _, name in ipairs({ "policy", "cors", "lifecycle" }) do
			local block = docs:match("<!%-%- bucket%.lib: " .. name .. " %-%->%s*```json\n(.-)```");
			assert.is_string(block, "no " .. name .. " example in docs/admin.md");
			assert.is_true(bucket.same(json.decode(shown[name]), json.decode(block)), name);
		end
	end);
end);
