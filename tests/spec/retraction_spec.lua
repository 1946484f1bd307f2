-- What the module reads of messages (lua/mod_http_upload_s3/retraction.lib.lua).
local st = require "util.stanza";
local retraction = module:require "retraction";

local BASE = "https://chat-uploads.s3.eu-west-2.amazonaws.com/http_uploads/";
local LINK = BASE .. "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b/a%20b.jpg";

local function message(body, attrs)
	local m = st.message(attrs or { to = "bob@example.org", type = "chat", id = "m1" });
	if body then m:text_tag("body", body); end
	return m;
end

describe("the link watcher", function ()
	local watch = retraction.watcher({ BASE });

	it("finds this service's links in a body or a XEP-0066 <x>, and nothing in other messages", function ()
		assert.same({ LINK }, watch:links(message("look: " .. LINK .. " nice")));
		assert.same({ LINK, LINK }, watch:links(message(LINK .. "\n<" .. LINK .. ">")));
		local oob = message(LINK):tag("x", { xmlns = "jabber:x:oob" }):text_tag("url", LINK):up();
		assert.same({ LINK, LINK }, watch:links(oob));
		assert.is_nil(watch:links(message("just text")));
		assert.is_nil(watch:links(message(nil)));
		assert.is_nil(watch:links(message("https://elsewhere.example/http_uploads/x")));
	end);

	it("reads a bounded number of links of one message, however many it carries", function ()
		local parts = {};
		for n = 1, 2000 do parts[n] = BASE .. ("%08x-0000-4000-8000-000000000000/a"):format(n); end
		local found = watch:links(message(table.concat(parts, " ")));
		assert.equal(parts[1], found[1]);
		assert.is_true(#found <= 100, #found .. " links");
	end);
end);

describe("retraction", function ()
	it("knows a message by its origin-id and its id", function ()
		local m = message("x"):tag("origin-id", { xmlns = "urn:xmpp:sid:0", id = "o1" }):up();
		assert.same({ "o1", "m1" }, retraction.ids(m));
		assert.same({ "m1" }, retraction.ids(message("x")));
		local empty = message("x", { to = "bob@example.org", id = "" }):tag("origin-id", { xmlns = "urn:xmpp:sid:0", id = "" }):up();
		assert.same({}, retraction.ids(empty));   -- names no message
	end);

	it("reads both forms of a retraction", function ()
		local new = message(nil):tag("retract", { xmlns = "urn:xmpp:message-retract:1", id = "o1" }):up();
		assert.equal("o1", retraction.retracts(new));
		local old = message(nil):tag("apply-to", { xmlns = "urn:xmpp:fasten:0", id = "o2" })
			:tag("retract", { xmlns = "urn:xmpp:message-retract:0" }):up():up();
		assert.equal("o2", retraction.retracts(old));
		assert.is_nil(retraction.retracts(message("hello")));
		local other = message(nil):tag("apply-to", { xmlns = "urn:xmpp:fasten:0", id = "o3" })
			:tag("reaction", { xmlns = "urn:example" }):up():up();
		assert.is_nil(retraction.retracts(other));
	end);

	it("reads the stanza-id a room gave, and no other's", function ()
		local m = message("x", { from = "room@muc.example.org/alice", type = "groupchat" })
			:tag("stanza-id", { xmlns = "urn:xmpp:sid:0", by = "alice@example.org", id = "mam1" }):up()
			:tag("stanza-id", { xmlns = "urn:xmpp:sid:0", by = "room@muc.example.org", id = "room1" }):up();
		assert.equal("room1", retraction.stanza_id(m, "room@muc.example.org"));
		assert.is_nil(retraction.stanza_id(m, "other@muc.example.org"));
	end);
end);
