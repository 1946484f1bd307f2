-- Slot request parsing and replies (lua/mod_http_upload_s3/request.lib.lua),
-- with Prosody's own util.stanza (the Makefile puts Prosody's tree on the path).
local st = require "util.stanza";
local request = module:require "request";

local NS, NS_LEGACY = request.NS, request.NS_LEGACY;

local function iq_get(payload)
	return st.iq({ type = "get", id = "slot1", from = "alice@example.test/phone", to = "upload.example.test" })
		:add_child(payload);
end

describe("parse", function ()
	local function fields(req)
		local f = request.parse(req);
		return { f.filename, f.size, f.content_type };
	end

	it("reads attributes in urn:xmpp:http:upload:0", function ()
		local req = st.stanza("request", { xmlns = NS, filename = "a b.jpg", size = "23456", ["content-type"] = "image/jpeg" });
		assert.same({ "a b.jpg", "23456", "image/jpeg" }, fields(req));
	end);

	it("reads child elements in the legacy namespace", function ()
		local req = st.stanza("request", { xmlns = NS_LEGACY })
			:text_tag("filename", "a b.jpg"):text_tag("size", "23456"):text_tag("content-type", "image/jpeg");
		assert.same({ "a b.jpg", "23456", "image/jpeg" }, fields(req));
	end);

	it("leaves missing fields nil", function ()
		assert.same({ purpose = "message" }, request.parse(st.stanza("request", { xmlns = NS })));
	end);

	it("marks a legacy request that gives a field twice malformed, rather than reading the first", function ()
		for _, field in ipairs({ "filename", "size", "content-type" }) do
			local req = st.stanza("request", { xmlns = NS_LEGACY })
				:text_tag("filename", "a.jpg"):text_tag("size", "1"):text_tag("content-type", "image/jpeg")
				:text_tag(field, "again");
			assert.same({ malformed = "Request has more than one <" .. field .. ">" }, request.parse(req));
		end
	end);
end);

describe("parse: purposes", function ()
	local function with(...)
		local req = st.stanza("request", { xmlns = NS, filename = "a", size = "1" });
		for _, child in ipairs({ ... }) do req:add_child(child); end
		local f = request.parse(req);
		return { f.purpose, f.expire_before, f.malformed };
	end
	local function purpose(name, attr)
		attr = attr or {};
		attr.xmlns = request.NS_PURPOSE;
		return st.stanza(name, attr);
	end

	it("is message when none is given, or the one given", function ()
		assert.same({ "message" }, with());
		assert.same({ "message" }, with(st.stanza("message", { xmlns = "urn:example:other" })));
		for _, name in ipairs({ "message", "profile", "permanent", "unknown-purpose" }) do
			assert.same({ name }, with(purpose(name)));
		end
		assert.same({ "ephemeral", "2026-12-24T18:00:00Z" },
			with(purpose("ephemeral", { ["expire-before"] = "2026-12-24T18:00:00Z" })));
	end);

	it("marks two purposes malformed", function ()
		assert.same({ nil, nil, "Request has more than one upload purpose" }, with(purpose("profile"), purpose("message")));
	end);

	it("reads purposes in the legacy namespace too", function ()
		local req = st.stanza("request", { xmlns = NS_LEGACY }):text_tag("filename", "a"):text_tag("size", "1")
			:add_child(purpose("profile"));
		assert.equal("profile", request.parse(req).purpose);
	end);
end);

describe("parse_size", function ()
	it("accepts decimal digits only", function ()
		assert.equal(0, request.parse_size("0"));
		assert.equal(5, request.parse_size("0005"));
		assert.equal(5368709120, request.parse_size("5368709120"));
		assert.equal(math.type(request.parse_size("1000")), "integer");
		for _, bad in ipairs({ "", " 12", "12 ", "-1", "+5", "0x10", "1e3", "1.0", "1.5", "inf", "nan", "1_000", "12abc" }) do
			local size, why = request.parse_size(bad);
			assert.is_nil(size);
			assert.equal("format", why, bad);
		end
		assert.same({ nil, "format" }, { request.parse_size(nil) });
	end);

	it("calls absurd sizes too large without converting them", function ()
		for _, big in ipairs({ "9007199254740993", "9223372036854775808", "1" .. ("0"):rep(400) }) do
			assert.same({ nil, "too-large" }, { request.parse_size(big) });
		end
		assert.equal(999999999999999, request.parse_size("000999999999999999"));
	end);
end);

describe("check_filename", function ()
	it("accepts ordinary and unusual but harmless names", function ()
		for _, name in ipairs({ "a.txt", "très cool.jpg", "😀.png", "a+b=c&d?e#f%g.txt", ".hidden", "x" .. ("y"):rep(254),
			"\194\160a", "a\227\128\128b" }) do
			assert.is_nil(request.check_filename(name), name);
		end
	end);

	it("refuses the bad-input matrix rows", function ()
		local bad = {
			false, "", ".", "..", "...", " ", " . ", "a/b", "/etc/passwd", "a\\b", "..\\x",
			"a\tb", "a\nb", "a\rb", "a\127b", "a\194\133b", -- U+0085
			"invoice\226\128\174gnp.exe", "a\226\128\142b", "a\226\129\166b", "a\216\156b", -- U+202E, U+200E, U+2066, U+061C
			"\255\254", "a\192\175", ("x"):rep(256),
			-- only invisible or space characters: U+00A0, U+FEFF, U+2000, U+2007, U+200B, U+3000, U+2060, U+00AD
			"\194\160", "\239\187\191", "\226\128\128", ".\226\128\135.", "\226\128\139", "\227\128\128",
			"\226\129\160\194\173", " \194\160.\239\187\191 ",
		};
		for _, name in ipairs(bad) do
			assert.is_string(request.check_filename(name or nil), tostring(name));
		end
	end);
end);

describe("check_content_type", function ()
	it("accepts type/subtype with parameters", function ()
		for _, t in ipairs({ "image/jpeg", "application/vnd.oasis.opendocument.text", "text/plain; charset=utf-8",
			"text/plain;charset=\"utf-8\"", "text/plain;  charset=utf-8", "application/x-tar+gzip" }) do
			assert.is_nil(request.check_content_type(t), t);
		end
	end);

	it("refuses malformed types", function ()
		for _, t in ipairs({ "text", "text/", "/plain", "text/plain\r\nX-Evil: 1", "text/plain; charset",
			"te xt/plain", "text/plain; a=b c", "text/plain; q=\"\n\"", "tëxt/plain", "a/" .. ("b"):rep(260) }) do
			assert.is_string(request.check_content_type(t), t);
		end
	end);
end);

describe("slot_reply", function ()
	local put = "https://s3.example/b/k?X-Amz-Signature=00&a=1";
	local get = "https://s3.example/b/k";

	it("uses attributes in urn:xmpp:http:upload:0 and no <header/>", function ()
		local reply = request.slot_reply(iq_get(st.stanza("request", { xmlns = NS })), NS, put, get);
		assert.equal("result", reply.attr.type);
		assert.equal("slot1", reply.attr.id);
		assert.equal("alice@example.test/phone", reply.attr.to);
		local slot = reply:get_child("slot", NS);
		assert.equal(put, slot:get_child("put").attr.url);
		assert.equal(get, slot:get_child("get").attr.url);
		assert.is_nil(slot:get_child("put"):get_child("header"));
		assert.matches("url='https://s3.example/b/k?X-Amz-Signature=00&amp;a=1'", tostring(reply), 1, true);
	end);

	it("uses text in the legacy namespace", function ()
		local reply = request.slot_reply(iq_get(st.stanza("request", { xmlns = NS_LEGACY })), NS_LEGACY, put, get);
		local slot = reply:get_child("slot", NS_LEGACY);
		assert.equal(put, slot:get_child_text("put"));
		assert.equal(get, slot:get_child_text("get"));
	end);
end);
