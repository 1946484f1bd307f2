-- The Lua binding: require "s3sign" (build/s3sign.so; run with `make test-lua`).
local s3sign = require "s3sign";

local SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
local NOW = 1705320000; -- 2024-01-15T12:00:00Z
local ID = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b";

local function config(overrides)
	local c = {
		access_key_id = "AKIAIOSFODNN7EXAMPLE", secret_key = SECRET,
		region = "eu-west-2", bucket = "the-best-bucket", path_style = true, prefix = "http_uploads",
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
			{ "bucket", { bucket = "" } }, { "bucket", { bucket = "a/b" } },
			{ "bucket", { bucket = "the_best_bucket", path_style = false } },
			{ "access_key_id", { access_key_id = "" } },
			{ "secret_key", { secret_key = "" } }, { "secret_key", { secret_key = "line\n" } },
			{ "endpoint", { endpoint = "ftp://x" } }, { "endpoint", { endpoint = "https://user@host" } },
			{ "endpoint", { endpoint = "https://h/path" } },
			{ "put_expires", { put_expires = 0 } }, { "put_expires", { put_expires = 604801 } },
			{ "get_expires", { get_expires = -1 } }, { "get_expires", { get_expires = 604801 } },
			{ "prefix", { prefix = ("p"):rep(300) } },
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
		assert.matches("the-best-bucket", tostring(s), 1, true);
		local _, err = s3sign.new(config{ secret_key = SECRET .. "\n" });
		assert.not_matches(SECRET, err, 1, true);
	end);
end);

describe("signer:presign", function ()
	it("is deterministic for a fixed time and id, and matches the published vector", function ()
		local s = signer();
		local put, get, headers, key = s:presign("photo (1)!*'.jpg", 12345, "image/jpeg", { now = NOW, id = ID });
		local put2 = s:presign("photo (1)!*'.jpg", 12345, "image/jpeg", { now = NOW, id = ID });
		assert.equal(put, put2);
		-- s3-presign-vectors.json, key-sub-delims-encoded
		assert.equal("&X-Amz-Signature=a8c2160225414228aeaffbbcbe6ea8dce2d4aa9bb66793ad85a53de9b1a779ec", put:sub(-81));
		assert.equal("https://s3.eu-west-2.amazonaws.com/the-best-bucket/http_uploads/" .. ID
			.. "/photo%20%281%29%21%2A%27.jpg", get);
		assert.same({ ["Content-Length"] = "12345", ["Content-Type"] = "image/jpeg" }, headers);
		assert.equal("http_uploads/" .. ID .. "/photo (1)!*'.jpg", key);
	end);

	it("slot() gives the same URLs and key without the headers table", function ()
		local s = signer();
		local put, get, headers, key = s:presign("a b.txt", 7, "text/plain", { now = NOW, id = ID });
		local results = table.pack(s:slot("a b.txt", 7, "text/plain", { now = NOW, id = ID }));
		assert.same({ n = 3, put, get, key }, results);
		assert.is_table(headers);
	end);

	it("sign() presigns any method on a key, and can show the canonical request", function ()
		local s = signer();
		local put, _, _, key = s:presign("a b.txt", 7, "text/plain", { now = NOW, id = ID });
		local url, creq = s:sign("PUT", key, { now = NOW, content_length = 7, content_type = "text/plain", trace = true });
		assert.equal(put, url);
		assert.matches("^PUT\n/the%-best%-bucket/http_uploads/", creq);
		assert.not_matches(SECRET, creq, 1, true);
		assert.matches("X-Amz-SignedHeaders=host&", s:sign("DELETE", key), 1, true);
		assert.same({ nil, "sign: invalid method or key" }, { s:sign("delete", key) });
		assert.is_nil((s:sign("GET", key, { expires = 0 })));
	end);

	it("signs content-type only when one is given", function ()
		local s = signer();
		for _, content_type in ipairs({ false, "" }) do
			local put, _, headers = s:presign("a.txt", 5, content_type or nil, { now = NOW, id = ID });
			assert.matches("X-Amz-SignedHeaders=content-length%3Bhost&", put, 1, true);
			assert.same({ ["Content-Length"] = "5" }, headers);
		end
	end);

	it("makes fresh random v4 UUIDs", function ()
		local s, seen = signer(), {};
		for _ = 1, 1000 do
			local _, _, _, key = s:presign("a.txt", 1);
			local id = key:match("^http_uploads/(.-)/a%.txt$");
			assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", id);
			assert.is_nil(seen[id]);
			seen[id] = true;
		end
	end);

	it("presigns GET URLs when get_expires is set, with an optional disposition", function ()
		local s = signer{ path_style = false, get_expires = 300 };
		local _, get = s:presign("x.html", 1, "text/html", { now = NOW, id = ID,
			disposition = "attachment; filename*=UTF-8''x.html" });
		assert.matches("^https://the%-best%-bucket%.s3%.eu%-west%-2%.amazonaws%.com/http_uploads/", get);
		assert.matches("&X-Amz-SignedHeaders=host&response-content-disposition="
			.. "attachment%3B%20filename%2A%3DUTF-8%27%27x.html&X-Amz-Signature=", get, 1, true);
	end);

	it("builds public GET URLs from get_url", function ()
		local s = signer{ get_url = "https://cdn.example.org/files/" };
		local _, get = s:presign("a b.txt", 1, nil, { now = NOW, id = ID });
		assert.equal("https://cdn.example.org/files/http_uploads/" .. ID .. "/a%20b.txt", get);
	end);

	it("returns nil and a message for bad values", function ()
		local s = signer();
		local bad = {
			{ "", 1 }, { "a\0b", 1 }, { "\xff.txt", 1 }, { "\xc0\xaf", 1 }, { ("x"):rep(1025), 1 },
			{ "a.txt", -1 }, { "a.txt", 5 * 1024^3 + 1 },
			{ "a.txt", 1, "text/plain\r\nX-Evil: 1" },
		};
		for _, args in ipairs(bad) do
			local put, err = s:presign(args[1], math.tointeger(args[2]), args[3], { now = NOW, id = ID });
			assert.is_nil(put);
			assert.is_string(err);
		end
		assert.is_string((s:presign("a.txt", 5 * 1024^3 // 1, nil, { now = NOW })));
	end);

	it("raises on wrong argument types", function ()
		local s = signer();
		assert.has_error(function () s:presign(nil, 1) end);
		assert.has_error(function () s:presign("a", "1") end);
		assert.has_error(function () s:presign("a", 1.5) end);
		assert.has_error(function () s:presign("a", 1, {}) end);
		assert.has_error(function () s:presign("a", 1, nil, "now") end);
		assert.has_error(function () s:presign("a", 1, nil, { now = "soon" }) end);
		assert.has_error(function () s3sign.new(config()).presign({}, "a", 1) end);
	end);

	it("is unusable once closed or collected", function ()
		local s = signer();
		s:close();
		assert.equal("s3sign.signer (closed)", tostring(s));
		assert.has_error(function () s:presign("a", 1) end);
		do local _ <close> = signer(); end
		getmetatable(signer()).__gc(s); -- a second wipe is harmless
		collectgarbage(); collectgarbage();
	end);
end);
