-- Which of the service's files a URL names (lua/mod_http_upload_s3/urls.lib.lua).
local config = module:require "config";
local urls = module:require "urls";
local s3sign = require "s3sign";

local ID = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b";

local function cfg_with(options)
	local all = { access_id = "AKIAIOSFODNN7EXAMPLE", secret_key = "secret", region = "eu-west-2",
		bucket = "chat-uploads", path = "http_uploads", purposes = { "ephemeral" } };
	for k, v in pairs(options or {}) do all[k] = v; end
	return assert(config.read(function (name) return all[name]; end, { getenv = function () end }));
end

describe("urls.key_of", function ()
	it("reads every URL form the service hands out or serves", function ()
		local cfg = cfg_with();
		local signer = assert(s3sign.new(config.signer_options(cfg, { access_key_id = "AKID", secret_key = "s" })));
		local put, get, key = signer:slot("http_uploads/", "a b é.jpg", 5, nil, { id = ID, get_expires = 60,
			disposition = "attachment" });
		assert.equal("http_uploads/" .. ID .. "/a b é.jpg", key);
		assert.equal(key, urls.key_of(cfg, put));
		assert.equal(key, urls.key_of(cfg, get));
		local _, public = signer:slot("http_uploads_ephemeral/", "x.txt", 1, nil, { id = ID });
		assert.equal("http_uploads_ephemeral/" .. ID .. "/x.txt", urls.key_of(cfg, public));
		-- as people paste them: other encodings, another case, the default port, a fragment
		for _, url in ipairs({
			"https://chat-uploads.s3.eu-west-2.amazonaws.com/http_uploads/" .. ID .. "/a%20b%20%C3%A9.jpg",
			"HTTPS://Chat-Uploads.S3.EU-West-2.amazonaws.com:443/http_uploads/" .. ID .. "/a%20b%20%c3%a9.jpg#x",
			"https://chat-uploads.s3.eu-west-2.amazonaws.com/%68ttp_uploads/" .. ID .. "/a b é.jpg?X-Amz-Date=1",
		}) do
			assert.equal(key, urls.key_of(cfg, url), url);
		end
	end);

	it("reads path-style URLs and the download base of a CDN", function ()
		local cfg = cfg_with { endpoint = "http://127.0.0.1:7480", path_style = true, region = "us-east-1" };
		assert.equal("http_uploads/" .. ID .. "/f.txt",
			urls.key_of(cfg, "http://127.0.0.1:7480/chat-uploads/http_uploads/" .. ID .. "/f.txt"));
		cfg = cfg_with { get_url = "https://files.example.org/up/" };
		assert.equal("http_uploads/" .. ID .. "/f.txt",
			urls.key_of(cfg, "https://files.example.org/up/http_uploads/" .. ID .. "/f.txt"));
	end);

	it("refuses what is not one of this service's files, saying why", function ()
		local cfg = cfg_with();
		for url, why in pairs({
			["ftp://chat-uploads.s3.eu-west-2.amazonaws.com/http_uploads/" .. ID .. "/f"] = "not an http",
			["https://other-bucket.s3.eu-west-2.amazonaws.com/http_uploads/" .. ID .. "/f"] = "not a URL of this service",
			["https://chat-uploads.s3.eu-west-2.amazonaws.com/private/payroll.csv"] = "not a file of this service's folders",
			["https://chat-uploads.s3.eu-west-2.amazonaws.com/http_uploads/" .. ID] = "not a file",
			["https://chat-uploads.s3.eu-west-2.amazonaws.com/http_uploads/not-a-uuid/f"] = "not a file",
			["https://chat-uploads.s3.eu-west-2.amazonaws.com/http_uploads/" .. ID .. "/a/b"] = "not a file",
			["https://evil.example/?https://chat-uploads.s3.eu-west-2.amazonaws.com/http_uploads/" .. ID .. "/f"]
				= "not a URL of this service",
			["not a url"] = "not an http",
		}) do
			local key, problem = urls.key_of(cfg, url);
			assert.is_nil(key, url);
			assert.matches(why, problem, 1, true);
		end
	end);

	it("refuses a file name the service never signs (a takedown's key must be one S3 can be asked to delete)", function ()
		local cfg = cfg_with();
		local base = "https://chat-uploads.s3.eu-west-2.amazonaws.com/http_uploads/" .. ID .. "/";
		for _, name in ipairs({ "x%00", "x%FF", "%2e%2e", "a%5Cb", "x%01y", ("a"):rep(300) }) do
			assert.is_nil(urls.key_of(cfg, base .. name), name);
		end
		assert.is_string(urls.key_of(cfg, base .. "caf%C3%A9.txt"));
	end);

	it("reads a line with a long run of white space inside it (trimmed in one pass, not quadratic)", function ()
		local key, why = urls.key_of(cfg_with(), "https://chat-uploads.s3.eu-west-2.amazonaws.com/http_uploads/" .. ID
			.. "/a" .. (" "):rep(20000) .. "b");
		assert.is_nil(key);
		assert.is_string(why);
	end);
end);
