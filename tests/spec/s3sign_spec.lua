-- The Lua binding: require "s3sign" (build/s3sign.so; run with `make test-lua`).
local s3sign = require "s3sign";

local SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
local NOW = 1705320000; -- 2024-01-15T12:00:00Z
local ID = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b";
local PREFIX = "http_uploads/";

local function config(overrides)
	local c = {
		access_key_id = "AKIAIOSFODNN7EXAMPLE", secret_key = SECRET,
		region = "eu-west-2", bucket = "the-best-bucket", path_style = true, put_expires = 300,
	};
	for k, v in pairs(overrides or {}) do c[k] = v; end
	return c;
end

local function signer(overrides)
	return assert(s3sign.new(config(overrides)));
end

describe("s3sign.new", function ()
	it("returns nil and a message naming the field for bad values", function ()
		local cases = {
			{ "region", { region = "" } }, { "region", { region = "eu west" } },
			{ "bucket", { bucket = "a/b" } },
			{ "bucket", { bucket = "the_best_bucket", path_style = false } },
			{ "bucket", { path_style = false, endpoint = "http://10.1.2.3:9000" } },
			{ "access_key_id", { access_key_id = "" } },
			{ "secret_key", { secret_key = "" } }, { "secret_key", { secret_key = "line\n" } },
			{ "session_token", { session_token = "with space" } },
			{ "endpoint", { endpoint = "ftp://x" } }, { "endpoint", { endpoint = "https://user@host" } },
			{ "endpoint", { endpoint = "https://h/path" } },
			{ "put_expires", { put_expires = 0 } }, { "put_expires", { put_expires = 604801 } },
			{ "get_url", { get_url = "https://cdn.example.org/" .. ("p"):rep(1024) } },
		};
		for _, case in ipairs(cases) do
			local field, overrides = case[1], case[2];
			local s, err = s3sign.new(config(overrides));
			assert.is_nil(s);
			assert.matches("^" .. field .. ": ", err);
		end
	end);

	it("raises on wrong types and embedded NULs", function ()
		assert.has_error(function () s3sign.new("region=eu-west-2") end);
		assert.has_error(function () s3sign.new(config{ region = 42 }) end);
		assert.has_error(function () s3sign.new(config{ path_style = "yes" }) end);
		assert.has_error(function () s3sign.new(config{ put_expires = "300" }) end);
		assert.has_error(function () s3sign.new(config{ put_expires = 1.5 }) end);
		assert.has_error(function () s3sign.new(config{ secret_key = "sec\0ret" }) end);
	end);

	it("never shows the secret in tostring or error messages", function ()
		local s = signer();
		assert.not_matches(SECRET, tostring(s), 1, true);
		local _, err = s3sign.new(config{ secret_key = SECRET .. "\n" });
		assert.not_matches(SECRET, err, 1, true);
	end);

	it("tells its limits, defined once in the C core", function ()
		assert.equal(604800, s3sign.limits.expires);
		assert.equal(1024, s3sign.limits.key);
		assert.equal(4096, s3sign.limits.session_token);
	end);
end);

describe("s3sign.check", function ()
	it("names the field new would refuse, and why, without a signer", function ()
		assert.is_true(s3sign.check(config()));
		local pending = config();
		pending.access_key_id, pending.secret_key = nil, nil;
		assert.is_true(s3sign.check(pending));   -- credentials to come: the rest is checked
		for field, overrides in pairs({
			region = { region = "eu west 2" }, endpoint = { endpoint = "https://h/path" },
			bucket = { bucket = "a/b" }, access_key_id = { access_key_id = "AKIA EXAMPLE" },
			secret_key = { secret_key = "" }, session_token = { session_token = "a b" },
			put_expires = { put_expires = 604801 }, get_url = { get_url = "https://cdn/" .. ("x"):rep(1100) },
		}) do
			local ok, named, reason = s3sign.check(config(overrides));
			assert.same({ false, field }, { ok == true, named }, field);
			assert.is_string(reason, field);
			assert.not_matches("^" .. field, reason);   -- the reason alone: no "field: " to take apart
		end
	end);
end);

describe("the version", function ()
	it("is the rockspec's, written once", function ()
		local rockspec = assert(io.popen("ls mod_http_upload_s3-*-1.rockspec")):read("l");
		assert.equal(rockspec:match("^mod_http_upload_s3%-(.-)%-1%.rockspec$"), s3sign._VERSION);
		local declared = assert(io.open(rockspec)):read("a"):match('\nversion = "(.-)%-1"');
		assert.equal(declared, s3sign._VERSION);
	end);
end);

describe("s3sign.parse_endpoint", function ()
	it("is the one endpoint parser, for the config as for the signer", function ()
		assert.same({ scheme = "https", host = "minio.example.org", ip = false },
			s3sign.parse_endpoint("https://minio.example.org:443/"));
		assert.same({ scheme = "http", host = "10.0.0.7:9000", ip = true }, s3sign.parse_endpoint("http://10.0.0.7:9000"));
		assert.same({ scheme = "http", host = "[::1]:7480", ip = true }, s3sign.parse_endpoint("http://[::1]:7480"));
		assert.same({ scheme = "http", host = "minio_1:9000", ip = false }, s3sign.parse_endpoint("http://minio_1:9000"));
		for _, bad in ipairs({ "minio", "https://h/p", "https://u@h", "https://h:0", "https://h:65536", "https://h?q" }) do
			local e, err = s3sign.parse_endpoint(bad);
			assert.is_nil(e);
			assert.matches("^endpoint: ", err);
		end
	end);
end);

describe("signer:slot", function ()
	it("is deterministic for a fixed time and id, and matches the published vector", function ()
		local s = signer();
		local put, get, key = s:slot(PREFIX, "photo (1)!*'.jpg", 12345, "image/jpeg", { now = NOW, id = ID });
		local put2 = s:slot(PREFIX, "photo (1)!*'.jpg", 12345, "image/jpeg", { now = NOW, id = ID });
		assert.equal(put, put2);
		-- s3-presign-vectors.json, key-sub-delims-encoded
		assert.equal("&X-Amz-Signature=a8c2160225414228aeaffbbcbe6ea8dce2d4aa9bb66793ad85a53de9b1a779ec", put:sub(-81));
		assert.equal("https://s3.eu-west-2.amazonaws.com/the-best-bucket/http_uploads/" .. ID
			.. "/photo%20%281%29%21%2A%27.jpg", get);
		assert.equal("http_uploads/" .. ID .. "/photo (1)!*'.jpg", key);
	end);

	it("takes its prefix per call", function ()
		local s = signer();
		local _, _, key = s:slot("up/profile/", "me.png", 1, nil, { now = NOW, id = ID });
		assert.equal("up/profile/" .. ID .. "/me.png", key);
		_, _, key = s:slot("", "me.png", 1, nil, { now = NOW, id = ID });
		assert.equal(ID .. "/me.png", key);
	end);

	it("signs content-type only when one is given", function ()
		local s = signer();
		for _, content_type in ipairs({ false, "" }) do
			local put = s:slot(PREFIX, "a.txt", 5, content_type or nil, { now = NOW, id = ID });
			assert.matches("X-Amz-SignedHeaders=content-length%3Bhost&", put, 1, true);
		end
		assert.matches("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost&",
			s:slot(PREFIX, "a.txt", 5, "text/plain", { now = NOW, id = ID }), 1, true);
	end);

	it("makes fresh random v4 UUIDs", function ()
		local s, seen = signer(), {};
		for _ = 1, 1000 do
			local _, _, key = s:slot(PREFIX, "a.txt", 1);
			local id = key:match("^http_uploads/(.-)/a%.txt$");
			assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", id);
			assert.is_nil(seen[id]);
			seen[id] = true;
		end
	end);

	it("presigns the GET URL when given get_expires, with an optional disposition", function ()
		local s = signer{ path_style = false };
		local _, get = s:slot(PREFIX, "x.html", 1, "text/html", { now = NOW, id = ID, get_expires = 300,
			disposition = "attachment; filename*=UTF-8''x.html" });
		assert.matches("^https://the%-best%-bucket%.s3%.eu%-west%-2%.amazonaws%.com/http_uploads/", get);
		assert.matches("X-Amz-Expires=300&", get, 1, true);
		assert.matches("&X-Amz-SignedHeaders=host&response-content-disposition="
			.. "attachment%3B%20filename%2A%3DUTF-8%27%27x.html&X-Amz-Signature=", get, 1, true);
		assert.same({ nil, "get_expires: must be 1..604800 seconds" },
			{ s:slot(PREFIX, "x", 1, nil, { get_expires = 604801 }) });
	end);

	it("builds public GET URLs from get_url", function ()
		local s = signer{ get_url = "https://cdn.example.org/files/" };
		local _, get = s:slot(PREFIX, "a b.txt", 1, nil, { now = NOW, id = ID });
		assert.equal("https://cdn.example.org/files/http_uploads/" .. ID .. "/a%20b.txt", get);
	end);

	it("returns nil and a message for bad values", function ()
		local s = signer();
		local bad = {
			{ "a\0b", 1 }, { "\xff.txt", 1 }, { "\xc0\xaf", 1 }, { ("x"):rep(1024 - #PREFIX - 36), 1 },
			{ "a.txt", -1 }, { "a.txt", 1, "text/plain\r\nX-Evil: 1" },
		};
		for _, args in ipairs(bad) do
			local put, err = s:slot(PREFIX, args[1], math.tointeger(args[2]), args[3], { now = NOW, id = ID });
			assert.is_nil(put);
			assert.is_string(err);
		end
		assert.is_string((s:slot(PREFIX, ("x"):rep(1024 - #PREFIX - 37), 1, nil, { now = NOW, id = ID })));
	end);

	it("raises on wrong argument types", function ()
		local s = signer();
		assert.has_error(function () s:slot(PREFIX, nil, 1) end);
		assert.has_error(function () s:slot(PREFIX, "a", "1") end);
		assert.has_error(function () s:slot(PREFIX, "a", 1.5) end);
		assert.has_error(function () s:slot(PREFIX, "a", 1, {}) end);
		assert.has_error(function () s:slot(PREFIX, "a", 1, nil, "now") end);
		assert.has_error(function () s:slot(PREFIX, "a", 1, nil, { now = "soon" }) end);
		assert.has_error(function () s3sign.new(config()).slot({}, PREFIX, "a", 1) end);
	end);

	it("is unusable once closed or collected", function ()
		local s = signer();
		s:close();
		assert.equal("s3sign.signer (closed)", tostring(s));
		assert.has_error(function () s:slot(PREFIX, "a", 1) end);
		do local _ <close> = signer(); end
		getmetatable(signer()).__gc(s); -- a second wipe is harmless
		collectgarbage(); collectgarbage();
	end);
end);

describe("signer:presign", function ()
	it("presigns any method on a key as slot() does, and can show the canonical request", function ()
		local s = signer();
		local put, _, key = s:slot(PREFIX, "a b.txt", 7, "text/plain", { now = NOW, id = ID });
		local url, creq = s:presign("PUT", key, { now = NOW, trace = true,
			headers = { ["content-length"] = "7", ["content-type"] = "text/plain" } });
		assert.equal(put, url);
		assert.matches("^PUT\n/the%-best%-bucket/http_uploads/", creq);
		assert.not_matches(SECRET, creq, 1, true);
		assert.matches("X-Amz-SignedHeaders=host&", s:presign("DELETE", key), 1, true);
		assert.same({ nil, "presign: invalid method, key, header or query parameter" }, { s:presign("delete", key) });
		assert.is_nil((s:presign("GET", key, { expires = 0 })));
		assert.is_nil((s:presign("GET", key, { query = { ["X-Amz-Signature"] = "0" } })));
	end);
end);

describe("signer:authorize", function ()
	it("signs a bucket-level request in its headers, with the body's SHA-256", function ()
		local s = signer();
		local body = "<LifecycleConfiguration/>";
		local url, headers, creq = s:authorize("PUT", "", { now = NOW, body = body, query = { lifecycle = "" },
			headers = { ["Content-MD5"] = "oG8cEnQkiSILKx8dSmo3nw==" }, trace = true });
		assert.equal("https://s3.eu-west-2.amazonaws.com/the-best-bucket?lifecycle=", url);
		assert.equal("20240115T120000Z", headers["X-Amz-Date"]);
		assert.matches("^%x+$", headers["X-Amz-Content-Sha256"]);
		assert.matches("^AWS4%-HMAC%-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240115/eu%-west%-2/s3/aws4_request, "
			.. "SignedHeaders=content%-md5;host;x%-amz%-content%-sha256;x%-amz%-date, Signature=%x+$",
			headers.Authorization);
		assert.matches("\ncontent-md5:oG8cEnQkiSILKx8dSmo3nw==\nhost:s3.eu-west-2.amazonaws.com\n", creq, 1, true);
		assert.is_nil(headers["X-Amz-Security-Token"]);
	end);

	it("signs STS requests: another service, no bucket, no X-Amz-Content-Sha256", function ()
		local sts = assert(s3sign.new{ access_key_id = "AKIDEXAMPLE", secret_key = SECRET, region = "us-east-1",
			service = "sts", session_token = "a+token/=" });
		local url, headers = sts:authorize("POST", "", { now = NOW, body = "Action=AssumeRole&Version=2011-06-15",
			headers = { ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8" } });
		assert.equal("https://sts.us-east-1.amazonaws.com/", url);
		assert.is_nil(headers["X-Amz-Content-Sha256"]);
		assert.equal("a+token/=", headers["X-Amz-Security-Token"]);
		assert.matches("/us%-east%-1/sts/aws4_request, SignedHeaders=content%-type;host;x%-amz%-date;"
			.. "x%-amz%-security%-token, ", headers.Authorization);
	end);
end);

describe("signer:set_credentials", function ()
	it("replaces the three at once, and keeps the old on a refusal", function ()
		local s = signer();
		local first = s:presign("GET", "k", { now = NOW });
		assert.is_true(s:set_credentials{ access_key_id = "ASIANEXT", secret_key = "next", session_token = "t" });
		local rotated = s:presign("GET", "k", { now = NOW });
		assert.matches("X-Amz-Credential=ASIANEXT%2F", rotated, 1, true);
		assert.matches("X-Amz-Security-Token=t&", rotated, 1, true);
		assert.equal(rotated, signer{ access_key_id = "ASIANEXT", secret_key = "next", session_token = "t" }
			:presign("GET", "k", { now = NOW }));
		assert.same({ nil, "secret_key: must be 1..128 bytes without control characters" },
			{ s:set_credentials{ access_key_id = "ASIABAD", secret_key = "" } });
		assert.equal(rotated, s:presign("GET", "k", { now = NOW }));
		assert.is_true(s:set_credentials{ access_key_id = "AKIAIOSFODNN7EXAMPLE", secret_key = SECRET });
		assert.equal(first, s:presign("GET", "k", { now = NOW }));
	end);
end);
