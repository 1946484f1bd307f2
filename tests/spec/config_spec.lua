-- Option checks at load time (lua/mod_http_upload_s3/config.lib.lua).
local config = module:require "config";
local parse_duration = require "util.human.io".parse_duration; -- Prosody 13 and later

local BASE = {
	access_id = "AKIAIOSFODNN7EXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	region = "eu-west-2", bucket = "chat-uploads", path = "http_uploads",
};

local function read(overrides, environment, files)
	local options = {};
	for k, v in pairs(BASE) do options[k] = v; end
	for k, v in pairs(overrides or {}) do
		if v == "nil" then options[k] = nil; else options[k] = v; end
	end
	local env = {
		parse_duration = parse_duration,
		getenv = function (name) return (environment or {})[name]; end,
		read_file = function (path)
			if files and files[path] then return files[path]; end
			return nil, path .. ": No such file or directory";
		end,
	};
	return config.read(function (name) return options[name]; end, env);
end

-- The refusal for these overrides, as "option problem".
local function refusal(overrides, environment)
	local ok, err = pcall(read, overrides, environment);
	assert.is_false(ok, "expected a refusal");
	assert.is_table(err);
	return err.option .. " " .. err.problem;
end

describe("config.read", function ()
	it("has safe defaults", function ()
		local cfg = read();
		assert.equal(100 * 1024 * 1024, cfg.file_size_limit);
		assert.equal(300, cfg.put_expires);
		assert.equal(10 * cfg.file_size_limit, cfg.daily_quota);
		assert.equal(60, cfg.rate_limit);
		assert.is_false(cfg.presign_get);
		assert.is_false(cfg.sign_content_type);
		assert.is_false(cfg.path_style);
		assert.same({ ["image/*"] = true, ["video/*"] = true, ["audio/*"] = true, ["text/plain"] = true },
			cfg.safe_file_types);
	end);

	it("refuses missing and malformed options, naming them", function ()
		local cases = {
			{ { access_id = "nil" }, "http_upload_s3_access_id is required" },
			{ { secret_key = "nil" }, "http_upload_s3_secret_key is required" },
			{ { region = "nil" }, "http_upload_s3_region is required" },
			{ { region = "Europe" }, "http_upload_s3_region" },
			{ { region = "eu west 2", endpoint = "https://minio.example.org" }, "http_upload_s3_region" },
			{ { bucket = "nil" }, "http_upload_s3_bucket is required" },
			{ { bucket = "a/b" }, "http_upload_s3_bucket" },
			{ { bucket = "with space" }, "http_upload_s3_bucket" },
			{ { bucket = 42 }, "http_upload_s3_bucket must be a string" },
			{ { endpoint = "minio.example.org" }, "http_upload_s3_endpoint" },
			{ { access_id = "AKIA EXAMPLE" }, "http_upload_s3_access_id must be 1..128 printable" },
			{ { session_token = "has space" }, "http_upload_s3_session_token must be" },
			{ { get_url = "https://cdn.example.org/" .. ("x"):rep(1100) }, "http_upload_s3_get_url longer than" },
			{ { endpoint = "https://user:pw@minio.example.org" }, "http_upload_s3_endpoint" },
			{ { endpoint = "https://minio.example.org/s3" }, "http_upload_s3_endpoint" },
			{ { endpoint = "https://minio.example.org?x=1" }, "http_upload_s3_endpoint" },
			{ { endpoint = "https://minio.example.org:port" }, "http_upload_s3_endpoint" },
			{ { expires = 0 }, "http_upload_s3_expires must be between 1 and 604800" },
			{ { expires = 604801 }, "http_upload_s3_expires must be between 1 and 604800" },
			{ { expires = 1.5 }, "http_upload_s3_expires must be a whole number" },
			{ { expires = "soon" }, "http_upload_s3_expires must be" },
			{ { get_expires = 604801 }, "http_upload_s3_get_expires" },
			{ { file_size_limit = 5 * 1024 ^ 3 + 1 }, "http_upload_s3_file_size_limit must be between 1 and 5368709120" },
			{ { file_size_limit = 0 }, "http_upload_s3_file_size_limit" },
			{ { path = "a//b" }, "http_upload_s3_path" },
			{ { path = "../x" }, "http_upload_s3_path" },
			{ { path = "a/./b" }, "http_upload_s3_path" },
			{ { presign_get = "yes" }, "http_upload_s3_presign_get must be a boolean" },
			{ { daily_quota = -1 }, "http_upload_s3_daily_quota" },
			{ { rate_limit = 0 }, "http_upload_s3_rate_limit must be between 1 and" },
			{ { access = 42 }, "http_upload_s3_access must be a list of strings" },
			{ { get_url = "cdn.example.org" }, "http_upload_s3_get_url" },
			{ { get_url = "https://cdn.example.org", presign_get = true }, "http_upload_s3_get_url cannot be combined" },
			{ { secret_key_file = "/nonexistent" }, "http_upload_s3_secret_key and http_upload_s3_secret_key_file" },
			{ { path_style = false, bucket = "chat", endpoint = "https://[::1]:9000" }, "http_upload_s3_path_style" },
		};
		for _, case in ipairs(cases) do
			local message = refusal(case[1]);
			assert.equal(case[2], message:sub(1, #case[2]), message);
		end
	end);

	it("never puts the secret in a refusal", function ()
		local message = refusal({ secret_key = 42 });
		assert.not_matches("wJalr", message, 1, true);
	end);

	it("switches to path-style for buckets that cannot be host names, with a warning", function ()
		for _, bucket in ipairs({ "the_best_bucket", "Chat-Uploads", "ab", "dotted.bucket.name" }) do
			local cfg, warnings = read({ bucket = bucket });
			assert.is_true(cfg.path_style, bucket);
			local mentions = 0;
			for _, warning in ipairs(warnings) do
				if warning:find(bucket, 1, true) then mentions = mentions + 1; end
			end
			assert.equal(1, mentions, bucket);
		end
		local cfg = read({ bucket = "dotted.bucket.name", endpoint = "http://localhost:7480" });
		assert.is_false(cfg.path_style);  -- dots are fine without TLS
		assert.matches("http_upload_s3_path_style must be true with an IP address",
			refusal({ endpoint = "http://10.0.0.7:9000" }), 1, true);
		assert.is_true(read({ endpoint = "http://10.0.0.7:9000", path_style = true }).path_style);
		assert.is_false(read({ bucket = "chat-uploads" }).path_style);
	end);

	it("normalises the folder", function ()
		assert.equal("http_uploads", read({ path = "/http_uploads/" }).prefix);
		assert.equal("a/b", read({ path = "a/b" }).prefix);
		assert.equal("", read({ path = "nil" }).prefix);
	end);

	it("warns about plain http, literal secrets and static session tokens", function ()
		local _, warnings = read({ endpoint = "http://minio.internal:9000", session_token = "FwoGZX" });
		local text = table.concat(warnings, "\n");
		assert.matches("plain http", text, 1, true);
		assert.matches("secret_key is written in the config file", text, 1, true);
		assert.matches("session token", text, 1, true);
		assert.not_matches("wJalr", text, 1, true);
	end);

	it("leaves files to the credential source, and reads the AWS environment variables", function ()
		local cfg, warnings = read({ secret_key = "nil", secret_key_file = "/run/secrets/s3" });
		assert.is_nil(cfg.credentials.static.secret_key);   -- read by credentials.lib.lua, not here: no I/O
		assert.same({ secret_key = { path = "/run/secrets/s3", option = "secret_key_file" } }, cfg.credentials.files);
		assert.equal(0, #warnings);
		cfg = read({ access_id = "nil", secret_key = "nil", region = "nil" },
			{ AWS_ACCESS_KEY_ID = "AKIDENV", AWS_SECRET_ACCESS_KEY = "env-secret", AWS_SESSION_TOKEN = "tok", AWS_REGION = "us-east-1" });
		assert.same({ "AKIDENV", "env-secret", "tok", "us-east-1" },
			{ cfg.credentials.static.access_key_id, cfg.credentials.static.secret_key,
				cfg.credentials.static.session_token, cfg.region });
	end);

	it("reads where credentials come from: instance, container, a role", function ()
		local cfg, warnings = read({ credentials = "instance", access_id = "nil", secret_key = "nil" },
			{ AWS_EC2_METADATA_SERVICE_ENDPOINT = "http://127.0.0.1:1338/" });
		assert.equal("http://127.0.0.1:1338", cfg.credentials.instance_endpoint);
		assert.same({}, warnings);
		cfg = read({ credentials = "container", access_id = "nil", secret_key = "nil" },
			{ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = "/v2/credentials/abc", AWS_CONTAINER_AUTHORIZATION_TOKEN = "t" });
		assert.same({ uri = "http://169.254.170.2/v2/credentials/abc", token = "t" }, cfg.credentials.container);
		assert.matches("AWS_CONTAINER_CREDENTIALS_FULL_URI must be https",
			refusal({ credentials = "container" }, { AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://10.0.0.1/creds" }), 1, true);
		assert.matches("neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", refusal({ credentials = "container" }), 1, true);
		assert.matches("http_upload_s3_credentials must be", refusal({ credentials = "vault" }), 1, true);
		cfg = read({ role_arn = "arn:aws:iam::123456789012:role/uploader", role_duration = 900 });
		assert.same({ arn = "arn:aws:iam::123456789012:role/uploader", session_name = "mod_http_upload_s3",
			duration = 900, region = "eu-west-2" }, cfg.credentials.role);
		assert.matches("http_upload_s3_role_arn", refusal({ role_arn = "uploader" }), 1, true);
		assert.matches("http_upload_s3_role_duration must be between 900 and 43200",
			refusal({ role_arn = "arn:aws:iam::1:role/r", role_duration = 60 }), 1, true);
		-- STS at the S3 endpoint unless told otherwise; a bad endpoint is named as itself
		cfg = read({ role_arn = "arn:aws:iam::1:role/r", endpoint = "http://127.0.0.1:7480", region = "default",
			path_style = true });
		assert.same({ "http://127.0.0.1:7480", "default" }, { cfg.credentials.role.endpoint, cfg.credentials.role.region });
		assert.matches("^http_upload_s3_endpoint must be",
			refusal({ role_arn = "arn:aws:iam::1:role/r", endpoint = "http://h/path" }));
		assert.matches("^http_upload_s3_sts_endpoint must be",
			refusal({ role_arn = "arn:aws:iam::1:role/r", sts_endpoint = "sts.example.com" }));
	end);

	it("takes lifetimes as seconds, or as periods where Prosody parses them", function ()
		assert.equal(600, read({ expires = 600 }).put_expires);
		if parse_duration then
			local cfg = read({ expires = "5 minutes", presign_get = true, get_expires = "7 days" });
			assert.same({ 300, 604800 }, { cfg.put_expires, cfg.get_expires });
			assert.matches("between 1 and 604800", refusal({ expires = "8 days" }), 1, true);
		else
			assert.matches("need Prosody 13", refusal({ expires = "5 minutes" }), 1, true);
		end
	end);

	it("takes false as no limit for quota and rate", function ()
		local cfg = read({ daily_quota = false, rate_limit = false });
		assert.equal(math.huge, cfg.daily_quota);
		assert.equal(math.huge, cfg.rate_limit);
		cfg = read({ daily_quota = false, purposes = { "permanent", "profile" } });
		assert.equal(math.huge, cfg.purposes.permanent.daily_quota); -- as message
		assert.equal(5 * 1024 * 1024, cfg.purposes.profile.daily_quota); -- its own default
	end);

	it("reads purposes: folders, limits, retention, downloads", function ()
		local cfg = read({ purposes = { "profile", "ephemeral", "permanent" }, expires_after = 30 * 86400,
			profile_file_size_limit = 2048, permanent_path = "forever", presign_get = true });
		assert.same({ "message", "profile", "ephemeral", "permanent" },
			{ cfg.purpose_list[1].name, cfg.purpose_list[2].name, cfg.purpose_list[3].name, cfg.purpose_list[4].name });
		assert.same({ "http_uploads/", "http_uploads_profile/", "http_uploads_ephemeral/", "forever/" },
			{ cfg.purposes.message.key_prefix, cfg.purposes.profile.key_prefix, cfg.purposes.ephemeral.key_prefix,
				cfg.purposes.permanent.key_prefix });
		assert.same({ 30, false, 7, false }, { cfg.purposes.message.expires_after, cfg.purposes.profile.expires_after,
			cfg.purposes.ephemeral.expires_after, cfg.purposes.permanent.expires_after });
		assert.equal(2048, cfg.purposes.profile.file_size_limit);
		assert.is_false(cfg.purposes.profile.presign_get); -- avatars stay public
		assert.is_true(cfg.purposes.permanent.presign_get); -- as message
		assert.is_true(cfg.purposes.ephemeral.presign_get);
		assert.is_nil(read({}).purposes.profile); -- not offered unless listed
		assert.equal(2, read({ expires_after = 36 * 3600 }).purposes.message.expires_after); -- whole days, rounded up
	end);

	it("refuses purposes that would share a folder, or unknown ones", function ()
		assert.matches("http_upload_s3_purposes has \"avatars\"", refusal({ purposes = { "avatars" } }), 1, true);
		assert.matches("http_upload_s3_profile_path \"http_uploads/profile\" and the message folder",
			refusal({ purposes = { "profile" }, profile_path = "http_uploads/profile" }), 1, true);
		assert.matches("http_upload_s3_permanent_path",
			refusal({ purposes = { "profile", "permanent" }, profile_path = "a", permanent_path = "a" }), 1, true);
		assert.matches("http_upload_s3_path must name a folder when purposes are enabled",
			refusal({ path = "nil", purposes = { "profile" } }), 1, true);
		assert.matches("http_upload_s3_ephemeral_expires_after must be a period",
			refusal({ purposes = { "ephemeral" }, ephemeral_expires_after = false }), 1, true);
		assert.matches("http_upload_s3_expires_after", refusal({ expires_after = "soon" }), 1, true);
		assert.matches("http_upload_s3_cors_origins", refusal({ cors_origins = { "chat.example.org" } }), 1, true);
	end);

	it("names each purpose's own option when it refuses one", function ()
		local cases = {
			{ { purposes = { "profile" }, profile_file_size_limit = 0 }, "http_upload_s3_profile_file_size_limit must be" },
			{ { purposes = { "profile" }, profile_daily_quota = -1 }, "http_upload_s3_profile_daily_quota must be" },
			{ { purposes = { "permanent" }, permanent_presign_get = "yes" }, "http_upload_s3_permanent_presign_get must be" },
			{ { purposes = { "permanent" }, permanent_path = "a/../b" }, "http_upload_s3_permanent_path must be" },
			{ { purposes = { "permanent" }, permanent_expires_after = "soon" }, "http_upload_s3_permanent_expires_after" },
			{ { purposes = { "ephemeral" }, ephemeral_presign_get = false },
				"http_upload_s3_ephemeral_presign_get cannot be false" },
			-- a purpose not offered still has its options checked, under their own names
			{ { profile_file_size_limit = 0 }, "http_upload_s3_profile_file_size_limit must be" },
		};
		for _, case in ipairs(cases) do
			local message = refusal(case[1]);
			assert.equal(case[2], message:sub(1, #case[2]), message);
		end
		assert.is_true(read({ purposes = { "ephemeral" }, ephemeral_presign_get = true }).purposes.ephemeral.presign_get);
	end);

	it("refuses retention periods S3 cannot hold", function ()
		assert.matches("^http_upload_s3_expires_after must be at most 36500 days",
			refusal({ expires_after = math.maxinteger }));
		assert.matches("^http_upload_s3_permanent_expires_after must be at most",
			refusal({ purposes = { "permanent" }, permanent_expires_after = math.maxinteger }));
		assert.equal(36500, read({ expires_after = 36500 * 86400 }).purposes.message.expires_after);
	end);

	it("refuses folders with the wildcards of bucket policies", function ()
		for _, path in ipairs({ "up*", "up?", "up/${aws:username}", "a$b" }) do
			assert.matches("^http_upload_s3_path must be", refusal({ path = path }), path);
			assert.matches("^http_upload_s3_profile_path must be",
				refusal({ purposes = { "profile" }, profile_path = path }), path);
		end
	end);

	it("compares access list JIDs as Prosody does, and refuses what it cannot read", function ()
		local cfg = read({ access = { "Alice@Example.Test", "Partner.Example" } });
		assert.same({ ["alice@example.test"] = true, ["partner.example"] = true }, cfg.access);
		assert.matches("^http_upload_s3_access must be a list such as",
			refusal({ access = { ["friend@other.example"] = true } }));
		assert.matches("^http_upload_s3_allowed_file_types must be a list such as",
			refusal({ allowed_file_types = { image = "png" } }));
		assert.matches("^http_upload_s3_access has \"a@@b\"", refusal({ access = { "a@@b" } }));
	end);

	it("points out options it does not know, with the nearest it does", function ()
		local options = { access_id = "AKIDEXAMPLE", secret_key_file = "/s", region = "eu-west-2", bucket = "b-uploads",
			presign_gett = true, profile_path = "avatars", role_duration = 900, frobnicate = 1 };
		local present = {};
		for name in pairs(options) do table.insert(present, "http_upload_s3_" .. name); end
		local _, warnings = config.read(function (name) return options[name]; end, {
			getenv = function () end, read_file = function () return "secret\n"; end,
		}, present);
		local text = table.concat(warnings, "\n");
		assert.matches("http_upload_s3_presign_gett is not an option of this module (did you mean "
			.. "http_upload_s3_presign_get?)", text, 1, true);
		assert.matches("http_upload_s3_frobnicate is not an option of this module\n", text .. "\n", 1, true);
		assert.matches("http_upload_s3_profile_path set, but profile is not in http_upload_s3_purposes", text, 1, true);
		assert.matches("are not used without http_upload_s3_role_arn", text, 1, true);
		assert.not_matches("http_upload_s3_bucket is not", text, 1, true);
		assert.not_matches("secret_key_file is not", text, 1, true);
	end);

	it("takes web origins as scheme://host[:port] only", function ()
		for _, origin in ipairs({ "http://a::::", "https://chat.example.org/", "chat.example.org", "https://u@h.example",
			"https://h.example:99999" }) do
			assert.matches("^http_upload_s3_cors_origins", refusal({ cors_origins = { origin } }), origin);
		end
		assert.same({ "https://chat.example.org:5281", "*" },
			read({ cors_origins = { "https://chat.example.org:5281", "*" } }).cors_origins);
	end);

	it("signs the content type whenever an allow-list of types is set", function ()
		assert.is_true(read({ allowed_file_types = { "image/png" } }).sign_content_type);
		assert.matches("^http_upload_s3_sign_content_type cannot be false with http_upload_s3_allowed_file_types",
			refusal({ allowed_file_types = { "image/png" }, sign_content_type = false }));
		assert.is_false(read({}).sign_content_type);
	end);

	it("parses the container endpoint as the HTTP client will", function ()
		local function container(uri)
			return read({ credentials = "container", access_id = "nil", secret_key = "nil" },
				{ AWS_CONTAINER_CREDENTIALS_FULL_URI = uri });
		end
		for _, uri in ipairs({ "http://[::1]:8080/creds", "http://[fd00:ec2::23]/v1/credentials",
			"http://169.254.170.23/v1/credentials", "http://localhost/x", "https://creds.example/x" }) do
			assert.equal(uri, container(uri).credentials.container.uri);
		end
		for _, uri in ipairs({ "http://localhost:80@evil.example/", "http://127.0.0.1@evil.example/",
			"http://evil.example/?localhost", "http://[::2]/x", "ftp://localhost/x" }) do
			assert.has_error(function () container(uri); end, nil, uri);
		end
	end);
end);
