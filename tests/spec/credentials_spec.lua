-- Where credentials come from and when they are fetched again
-- (lua/mod_http_upload_s3/credentials.lib.lua), driven by a fake HTTP client and clock.
local credentials = module:require "credentials";

local T0 = 1764650000;
local function stamp(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t); end

local function assume_role_answer(id, expires)
	return ([[<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>secret-%s</SecretAccessKey>
<SessionToken>token-%s</SessionToken><Expiration>%s</Expiration></Credentials>
</AssumeRoleResult></AssumeRoleResponse>]]):format(id, id, id, stamp(expires));
end

local function json_answer(id, expires)
	return ('{"Code":"Success","AccessKeyId":"%s","SecretAccessKey":"secret-%s","Token":"token-%s","Expiration":"%s"}')
		:format(id, id, id, stamp(expires));
end

-- An HTTP client (as env.http) that answers from a script and records the requests.
local function fake_http(answer)
	local log = {};
	return function (req)
		table.insert(log, req);
		return answer(req, #log);
	end, log;
end

-- files: { [path] = content }, read again whenever the chain asks.
local function chain_for(c, http, files)
	files = files or {};
	local env = {
		http = http,
		read_file = function (path)
			if not files[path] then return nil, "No such file"; end
			return files[path];
		end,
	};
	local chain = credentials.new({ credentials = c }, env);
	local got, problems = {}, {};
	chain:start(T0, function (creds) table.insert(got, creds); end, function (why) table.insert(problems, why); end);
	return chain, got, problems;
end

describe("responses", function ()
	it("reads STS, IMDS and container credentials, and their errors", function ()
		assert.same({ access_key_id = "ASIA1", secret_key = "secret-ASIA1", session_token = "token-ASIA1",
			expiration = T0 + 900 }, credentials.parse_assume_role(assume_role_answer("ASIA1", T0 + 900)));
		assert.same({ nil, "AccessDenied: not allowed" }, { credentials.parse_assume_role(
			"<ErrorResponse><Error><Code>AccessDenied</Code><Message>not allowed</Message></Error></ErrorResponse>") });
		assert.is_nil((credentials.parse_assume_role("<AssumeRoleResponse/>")));
		assert.is_nil((credentials.parse_assume_role("not xml")));
		assert.same({ access_key_id = "ASIA2", secret_key = "secret-ASIA2", session_token = "token-ASIA2",
			expiration = T0 + 3600 }, credentials.parse_json_credentials(json_answer("ASIA2", T0 + 3600)));
		assert.is_nil((credentials.parse_json_credentials('{"AccessKeyId":"A"}')));
		assert.is_nil((credentials.parse_json_credentials("{")));
	end);

	it("writes the AssumeRole form, refreshes halfway, and backs off", function ()
		assert.equal("Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr"
			.. "&RoleSessionName=s&DurationSeconds=900&ExternalId=x%20y",
			credentials.assume_role_body({ arn = "arn:aws:iam::1:role/r", session_name = "s", duration = 900,
				external_id = "x y" }));
		assert.equal(T0 + 1800, credentials.refresh_at({ expiration = T0 + 3600 }, T0));
		assert.equal(T0 + 5400, credentials.refresh_at({ expiration = T0 + 7200 }, T0 + 3600));
		assert.is_nil(credentials.refresh_at({}, T0));
		assert.same({ 5, 10, 20, 300, 15 }, { credentials.retry_delay(1), credentials.retry_delay(2),
			credentials.retry_delay(3), credentials.retry_delay(10), credentials.retry_delay(10, true) });
	end);
end);

describe("a static source", function ()
	it("gives the options' credentials at once and never asks anything", function ()
		local http, log = fake_http(function () error("no request expected"); end);
		local chain, got = chain_for({ source = "static", files = {},
			static = { access_key_id = "AKID", secret_key = "s" }, description = "the options" }, http);
		assert.same({ { access_key_id = "AKID", secret_key = "s" } }, got);
		assert.is_true(chain:usable(T0 + 10^6));
		chain:tick(T0 + 10^6);
		assert.equal(0, #log);
	end);

	it("applies rotated files together, once they have stopped changing", function ()
		local files = { ["/id"] = "OLDID\n", ["/secret"] = "old" };
		local http = fake_http(function () end);
		local chain, got = chain_for({ source = "static", static = {}, description = "the credential files",
			files = { access_key_id = { path = "/id", option = "access_id_file" },
				secret_key = { path = "/secret", option = "secret_key_file" } } }, http, files);
		assert.same({ access_key_id = "OLDID", secret_key = "old" }, got[1]);
		files["/id"] = "NEWID"; -- the secret is not written yet
		chain:tick(T0 + 2);
		assert.equal(1, #got); -- half a rotation is never signed with
		files["/secret"] = "new";
		chain:tick(T0 + 4);
		assert.equal(1, #got); -- changed again since the last look: wait once more
		chain:tick(T0 + 6);
		assert.same({ access_key_id = "NEWID", secret_key = "new" }, got[2]);
		chain:tick(T0 + 8);
		assert.equal(2, #got);
	end);

	it("notices a rotation within the same second, with values of the same lengths", function ()
		-- one-second modification times and sizes cannot tell these files apart: their content can
		local files = { ["/id"] = "AKIDOLD000000000001\n", ["/secret"] = "old-secret-0000000001\n" };
		local chain, got = chain_for({ source = "static", static = {}, description = "the credential files",
			files = { access_key_id = { path = "/id", option = "access_id_file" },
				secret_key = { path = "/secret", option = "secret_key_file" } } }, fake_http(function () end), files);
		files["/id"], files["/secret"] = "AKIDNEW000000000002\n", "new-secret-0000000002\n"; -- both at once
		chain:tick(T0 + 2);
		assert.equal(1, #got); -- changed since the last look: a second file may still be coming
		chain:tick(T0 + 4);
		assert.same({ access_key_id = "AKIDNEW000000000002", secret_key = "new-secret-0000000002" }, got[2]);
		for field, value in pairs(chain) do -- what tells a change keeps a digest, not another copy of the secret
			if field ~= "current" and type(value) == "string" then
				assert.is_nil(value:find("secret-", 1, true), field);
			end
		end
		chain:tick(T0 + 6);
		assert.equal(2, #got);
	end);
end);

describe("an STS role", function ()
	local ROLE = { arn = "arn:aws:iam:::role/uploader", session_name = "prosody", duration = 900,
		endpoint = "http://127.0.0.1:7480", region = "us-east-1" };

	it("is assumed with the base credentials in a header-signed POST, and refreshed halfway", function ()
		local n = 0;
		local http, log = fake_http(function ()
			n = n + 1;
			return { status = 200, body = assume_role_answer("ASIA" .. n, T0 + 900 * n) };
		end);
		local chain, got = chain_for({ source = "static", files = {}, static = { access_key_id = "AKID", secret_key = "s" },
			role = ROLE }, http);
		assert.equal("ASIA1", got[1].access_key_id);
		local req = log[1];
		assert.equal("POST", req.method);
		assert.equal("http://127.0.0.1:7480/", req.url);
		assert.matches("^AWS4%-HMAC%-SHA256 Credential=AKID/%d+/us%-east%-1/sts/aws4_request, "
			.. "SignedHeaders=content%-type;host;x%-amz%-date, ", req.headers.Authorization);
		assert.matches("RoleArn=arn%3Aaws%3Aiam%3A%3A%3Arole%2Fuploader", req.body, 1, true);
		chain:tick(T0 + 449);
		assert.equal(1, #log);
		chain:tick(T0 + 450);
		assert.equal("ASIA2", got[2].access_key_id);
		assert.equal(2, chain.refreshes);
	end);

	it("keeps the current set while STS fails, backs off, refuses once expired, and recovers", function ()
		local failing = false;
		local http, log = fake_http(function (_, n)
			if failing then return { status = 403, body = "<Error><Code>AccessDenied</Code></Error>" }; end
			return { status = 200, body = assume_role_answer("ASIA" .. n, T0 + (n == 1 and 100 or 1000)) };
		end);
		local chain, got, problems = chain_for({ source = "static", files = {},
			static = { access_key_id = "AKID", secret_key = "s" }, role = ROLE }, http);
		failing = true;
		chain:tick(T0 + 50); -- halfway
		assert.same({ "AssumeRole: HTTP 403 AccessDenied" }, problems);
		assert.is_true(chain:usable(T0 + 50));
		chain:tick(T0 + 54);
		assert.equal(2, #log); -- the next try only after 5 s
		chain:tick(T0 + 55);
		assert.equal(3, #log);
		assert.is_false(chain:usable(T0 + 100));
		failing = false;
		chain:tick(T0 + 100); -- the retry was due at 65
		assert.equal(2, #got);
		assert.is_true(chain:usable(T0 + 101));
		assert.equal(0, chain.failures);
	end);

	it("takes a set that has already expired for a failure, and does not send an expired base set", function ()
		local chain, got, problems = chain_for({ source = "static", files = {},
			static = { access_key_id = "AKID", secret_key = "s" }, role = ROLE },
			fake_http(function () return { status = 200, body = assume_role_answer("ASIAX", T0 - 1) }; end));
		assert.same({}, got);
		assert.matches("^AssumeRole: the set has already expired %(at %d+%-%d+%-%d+T", problems[1]);
		assert.equal(T0 + 5, chain.retry_due);
		-- a base set that expires the moment it comes
		local http, log = fake_http(function () return { status = 200, body = json_answer("ASIAB", T0) }; end);
		local _, none, why = chain_for({ source = "container", files = {}, static = {}, role = ROLE,
			container = { uri = "http://127.0.0.1:1339/creds", token = "t" } }, http);
		assert.same({}, none);
		assert.equal(1, #log); -- never signed into an AssumeRole
		assert.matches("^container credentials: the set has already expired", why[1]);
	end);
end);

describe("instance metadata and the container endpoint", function ()
	it("speaks IMDSv2: a session token by PUT, then the role's credentials", function ()
		local http, log = fake_http(function (req, n)
			if n == 1 then return { status = 200, body = "imds-session-token" }; end
			if req.headers["X-aws-ec2-metadata-token"] ~= "imds-session-token" then return { status = 401, body = "" }; end
			if n == 2 then return { status = 200, body = "prosody-role\n" }; end
			return { status = 200, body = json_answer("ASIAI", T0 + 21600) };
		end);
		local _, got = chain_for({ source = "instance", files = {}, static = {},
			instance_endpoint = "http://127.0.0.1:1338" }, http);
		assert.equal("ASIAI", got[1].access_key_id);
		assert.same({ "PUT", "http://127.0.0.1:1338/latest/api/token", "21600" },
			{ log[1].method, log[1].url, log[1].headers["X-aws-ec2-metadata-token-ttl-seconds"] });
		assert.equal("http://127.0.0.1:1338/latest/meta-data/iam/security-credentials/prosody-role", log[3].url);
	end);

	it("sends the container endpoint its authorization token, from the variable or its file", function ()
		local http, log = fake_http(function () return { status = 200, body = json_answer("ASIAC", T0 + 3600) }; end);
		local _, got = chain_for({ source = "container", files = {}, static = {},
			container = { uri = "http://127.0.0.1:1339/creds", token_file = "/token" } }, http,
			{ ["/token"] = "pod-identity-token\n" });
		assert.equal("ASIAC", got[1].access_key_id);
		assert.equal("pod-identity-token", log[1].headers.Authorization);
		local _, none, problems = chain_for({ source = "container", files = {}, static = {},
			container = { uri = "http://127.0.0.1:1339/creds", token_file = "/missing" } }, http);
		assert.same({}, none);
		assert.matches("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE /missing cannot be read", problems[1], 1, true);
	end);

	it("names the option of a credential file that cannot be read", function ()
		local _, got, problems = chain_for({ source = "static", static = { access_key_id = "AKID" },
			files = { secret_key = { path = "/run/secrets/s3", option = "secret_key_file" } } },
			fake_http(function () end), {});
		assert.same({}, got);
		assert.matches("^http_upload_s3_secret_key_file cannot be read: No such file", problems[1]);
	end);

	it("takes a set that has already expired for a failure: backs off, then delivers a good one", function ()
		local stale = true;
		local http, log = fake_http(function ()
			return { status = 200, body = stale and json_answer("ASIAOLD", T0 - 60) or json_answer("ASIANEW", T0 + 3600) };
		end);
		local chain, got, problems = chain_for({ source = "container", files = {}, static = {},
			container = { uri = "http://127.0.0.1:1339/creds", token = "t" } }, http);
		local asked_at = { T0 };
		for now = T0 + 1, T0 + 40 do
			local before = #log;
			chain:tick(now);
			if #log > before then table.insert(asked_at, now); end
		end
		assert.same({}, got); -- never delivered
		assert.same({ T0, T0 + 5, T0 + 15, T0 + 30 }, asked_at); -- 5, 10, then 15 s apart, not every tick
		assert.equal(4, #problems);
		assert.matches("^container credentials: the set has already expired %(at %d+%-%d+%-%d+T", problems[1]);
		assert.is_false(chain:usable(T0 + 40));
		stale = false;
		chain:tick(T0 + 45);
		assert.equal("ASIANEW", got[1].access_key_id);
		assert.is_true(chain:usable(T0 + 45));
		assert.equal(0, chain.failures);
	end);
end);
