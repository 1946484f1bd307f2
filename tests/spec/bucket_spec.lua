-- The bucket's documents (lua/mod_http_upload_s3/bucket.lib.lua): what setup
-- writes, what check compares, and what docs/admin.md shows.
local config = module:require "config";
local bucket = module:require "bucket";
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

local DENIED = { "s3:x-amz-copy-source", "s3:x-amz-acl", "s3:x-amz-grant-read", "s3:x-amz-grant-write",
	"s3:x-amz-grant-read-acp", "s3:x-amz-grant-write-acp", "s3:x-amz-grant-full-control" };

-- The statements of a policy text, by Sid.
local function by_sid(text)
	local statements = {};
	for _, statement in ipairs(json.decode(text).Statement) do
		statements[statement.Sid or "(none)"] = statement;
	end
	return statements;
end

local function count(t)
	local n = 0;
	for _ in pairs(t) do n = n + 1; end
	return n;
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
		assert.is_nil(w.problem);
	end);

	it("denies uploads with each header that would copy or publish, on every folder of the module and no other", function ()
		local w = bucket.wanted(cfg_with(EXAMPLE), HOST);
		assert.equal(1 + #DENIED, #w.policy);
		for i, key in ipairs(DENIED) do
			local statement = w.policy[i + 1];
			local condition = key == "s3:x-amz-acl"
				and { StringEquals = { [key] = { "public-read", "public-read-write", "authenticated-read",
					"aws-exec-read", "log-delivery-write" } } }
				or { StringLike = { [key] = "*" } };
			assert.same({ Effect = "Deny", Principal = "*", Action = "s3:PutObject", Condition = condition },
				{ Effect = statement.Effect, Principal = statement.Principal, Action = statement.Action,
					Condition = statement.Condition }, key);
			assert.same({ "arn:aws:s3:::example-chat-uploads/http_uploads/*",
				"arn:aws:s3:::example-chat-uploads/http_uploads_profile/*",
				"arn:aws:s3:::example-chat-uploads/http_uploads_ephemeral/*",
				"arn:aws:s3:::example-chat-uploads/http_uploads_permanent/*" }, statement.Resource);
		end
	end);

	it("leaves out what the options turn off, but never the deny statements", function ()
		local w = bucket.wanted(cfg_with { presign_get = true, expires_after = false, cors_origins = false }, HOST);
		assert.same({ #DENIED, 0, 0 }, { #w.policy, #w.cors, #w.lifecycle });
		assert.equal("Deny", w.policy[1].Effect);
	end);

	it("writes no statement or rule for the whole bucket: an empty path is a problem naming the option", function ()
		for _, path in ipairs({ "", "/", "//" }) do
			local cfg = cfg_with { path = path };
			local w = bucket.wanted(cfg, HOST);
			assert.same({}, w.policy, path);
			assert.same({}, w.lifecycle, path);
			assert.equal(1, #w.cors, path);   -- CORS is the bucket's anyway
			assert.matches("http_upload_s3_path is empty", w.problem, 1, true);
			local text, changes, _, problem = bucket.merge_policy(cfg, HOST, nil);
			assert.same({ nil, {}, w.problem }, { text, changes, problem });
			text, changes, _, problem = bucket.merge_lifecycle(cfg, HOST, nil);
			assert.same({ nil, {}, w.problem }, { text, changes, problem });
			assert.is_string((bucket.merge_cors(cfg, HOST, nil)));
		end
	end);
end);

describe("bucket.merge_policy", function ()
	local FOREIGN = '{"Sid":"Logs","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"s3:PutObject",'
		.. '"Resource":"arn:aws:s3:::example-chat-uploads/logs/*",'
		.. '"Condition":{"NumericLessThan":{"s3:max-keys":12345678901234567890}}}';

	it("adds its statements, keeps others' as the text they were, and is idempotent", function ()
		local cfg = cfg_with(EXAMPLE);
		local current = '{ "Version": "2012-10-17", "Id": "shop",\n  "Statement": [ ' .. FOREIGN .. ' ] }';
		local text, changes, warnings, problem = bucket.merge_policy(cfg, HOST, current);
		assert.is_nil(problem);
		assert.same({}, warnings);
		assert.equal(1 + #DENIED, #changes);
		assert.matches("^policy: add HttpUploadS3PublicReaduploadX2EexampleX2Eorg, public s3:GetObject", changes[1]);
		assert.matches("^policy: add HttpUploadS3DenyCopySourceuploadX2EexampleX2Eorg, deny uploads with "
			.. "x%-amz%-copy%-source to", changes[2]);
		assert.matches(FOREIGN, text, 1, true);   -- 12345678901234567890 and all
		assert.matches('"Id":"shop"', text, 1, true);
		assert.matches('^{"Version":"2012%-10%-17"', text);
		assert.equal(2 + #DENIED, count(by_sid(text)));
		local again, no_changes = bucket.merge_policy(cfg, HOST, text);
		assert.is_nil(again);
		assert.same({}, no_changes);
	end);

	it("reads a Statement that is one object, as IAM allows, and keeps it", function ()
		local text, changes = bucket.merge_policy(cfg_with(EXAMPLE), HOST,
			'{"Version":"2012-10-17","Statement":' .. FOREIGN .. '}');
		assert.equal(1 + #DENIED, #changes);
		assert.matches("[" .. FOREIGN .. ",", text, 1, true);
		-- and taking all of the module's statements out keeps it too
		local others = cfg_with { path = "elsewhere" };
		local _, removed = bucket.merge_policy(others, "other.example", text);
		assert.equal(1 + #DENIED, #removed);
	end);

	it("leaves a document it cannot read alone, with the problem", function ()
		for _, current in ipairs({ "{ not json", '{"Version":"2012-10-17"}', '"a string"', '{"Statement":[1]}' }) do
			local text, changes, _, problem = bucket.merge_policy(cfg_with(EXAMPLE), HOST, current);
			assert.is_nil(text, current);
			assert.same({}, changes, current);
			assert.matches("not a JSON policy document the module can read: left as it is", problem, 1, true);
		end
	end);

	it("marks each host's statements with a Sid no other host name gives", function ()
		local a, b = cfg_with { path = "a_uploads" }, cfg_with { path = "b_uploads" };
		local text = bucket.merge_policy(b, "chatexample.test",
			(bucket.merge_policy(a, "chat-example.test", nil)));
		local sids = by_sid(text);
		assert.equal(2 * (1 + #DENIED), count(sids));
		assert.is_table(sids["HttpUploadS3PublicReadchatX2DexampleX2Etest"]);
		assert.is_table(sids["HttpUploadS3PublicReadchatexampleX2Etest"]);
		assert.is_nil((bucket.merge_policy(a, "chat-example.test", text)));   -- a's statements are still a's
		assert.is_nil((bucket.merge_policy(b, "chatexample.test", text)));
		for _, host in ipairs({ "xn--bcher-kva.example", "X.example", "a_b.example" }) do
			assert.matches("^HttpUploadS3PublicRead[%w]+$", bucket.wanted(a, host).policy[1].Sid);
		end
	end);

	it("takes over the public statement of earlier versions only where it grants this host's folders", function ()
		local cfg = cfg_with(EXAMPLE);
		local resources = bucket.wanted(cfg, HOST).policy[1].Resource;
		local old = { Sid = "HttpUploadS3PublicReaduploadexampleorg", Effect = "Allow", Principal = "*",
			Action = "s3:GetObject", Resource = resources };
		local theirs = { Sid = "HttpUploadS3PublicReaduploadexampleorg", Effect = "Allow", Principal = "*",
			Action = "s3:GetObject", Resource = { "arn:aws:s3:::example-chat-uploads/uploadex/*" } };
		local text, changes = bucket.merge_policy(cfg, HOST, json.encode({ Statement = { old } }));
		assert.matches("policy: remove HttpUploadS3PublicReaduploadexampleorg", changes[#changes], 1, true);
		assert.is_nil(by_sid(text)["HttpUploadS3PublicReaduploadexampleorg"]);
		text = bucket.merge_policy(cfg, HOST, json.encode({ Statement = { theirs } }));
		assert.same(theirs, by_sid(text)["HttpUploadS3PublicReaduploadexampleorg"]);
	end);

	it("removes its public statement when nothing is public, and warns of a public ephemeral folder", function ()
		local cfg = cfg_with(EXAMPLE);
		local mine = bucket.merge_policy(cfg, HOST, nil);
		local private = cfg_with { purposes = { "ephemeral" }, presign_get = true };
		local everything = '{"Sid":"OldRule","Effect":"Allow","Principal":"*","Action":["s3:GetObject"],'
			.. '"Resource":"arn:aws:s3:::example-chat-uploads/*"}';
		mine = mine:gsub("%]}$", "," .. everything .. "]}");
		local text, changes, warnings = bucket.merge_policy(private, HOST, mine);
		assert.matches(everything, text, 1, true);
		assert.is_nil(by_sid(text)["HttpUploadS3PublicReaduploadX2EexampleX2Eorg"]);
		assert.matches("^policy: remove HttpUploadS3PublicReaduploadX2EexampleX2Eorg", changes[#changes]);
		assert.matches("OldRule makes the ephemeral folder http_uploads_ephemeral/ public", warnings[1], 1, true);
	end);
end);

describe("hosts sharing a bucket", function ()
	it("each keep their own statements and rules", function ()
		local a, b = cfg_with { path = "a_uploads" }, cfg_with { path = "b_uploads", expires_after = 86400 };
		local policy = bucket.merge_policy(b, "b.example", (bucket.merge_policy(a, "a.example", nil)));
		assert.equal(2 * (1 + #DENIED), count(by_sid(policy)));
		local lifecycle = bucket.merge_lifecycle(b, "b.example", (bucket.merge_lifecycle(a, "a.example", nil)));
		assert.same({ "HttpUploadS3 a.example message", "HttpUploadS3 b.example message" }, rule_ids(lifecycle));
		assert.is_nil((bucket.merge_lifecycle(a, "a.example", lifecycle))); -- a's rule is still as a wants it
	end);

	it("are told when their folders contain one another, and when their CORS origins differ", function ()
		local hosts = {
			{ host = "a.example", cfg = cfg_with { path = "up" } },
			{ host = "b.example", cfg = cfg_with { path = "up/b", cors_origins = { "https://b.example" } } },
			{ host = "c.example", cfg = cfg_with { path = "up", bucket = "another-bucket" } },
			{ host = "d.example", cfg = cfg_with { path = "upload" } },   -- "up" is not a folder of "upload"
		};
		local report = bucket.shared(hosts);
		assert.equal(1, #report["a.example"].problems);
		assert.matches("this host's message folder \"up/\" and b.example's message folder \"up/b/\" contain one another",
			report["a.example"].problems[1], 1, true);
		assert.matches("and a.example's message folder \"up/\"", report["b.example"].problems[1], 1, true);
		assert.same({ {}, {} }, { report["c.example"].problems, report["d.example"].problems });
		assert.matches("CORS: b.example wants origins https://b.example, this host *", report["a.example"].warnings[1],
			1, true);
		assert.equal(2, #report["b.example"].warnings);   -- a's and d's *
		assert.same({}, report["c.example"].warnings);
		-- the same folder on two hosts is the same problem
		local same_folder = bucket.shared({ { host = "a", cfg = cfg_with {} }, { host = "b", cfg = cfg_with {} } });
		assert.equal(1, #same_folder.a.problems);
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

	it("leaves documents it cannot read alone, with the problem", function ()
		local body, changes, _, problem = bucket.merge_lifecycle(cfg_with(EXAMPLE), HOST, "not xml <");
		assert.is_nil(body);
		assert.same({}, changes);
		assert.matches("lifecycle configuration is not XML the module can read: left as it is", problem, 1, true);
		body, changes, _, problem = bucket.merge_cors(cfg_with(EXAMPLE), HOST, "<CORSConfiguration>");
		assert.same({ nil, {} }, { body, changes });
		assert.matches("cors configuration is not XML", problem, 1, true);
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
