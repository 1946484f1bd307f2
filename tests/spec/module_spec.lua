-- The module file (lua/mod_http_upload_s3/mod_http_upload_s3.lua) loaded into
-- a fake Prosody module object, as Prosody's own spec/core_moduleapi_spec.lua
-- builds one: its hooks fired with real util.stanza stanzas, its replies read.
-- luacheck: ignore 212/self
local st = require "util.stanza";

local NS = "urn:xmpp:http:upload:0";
local HOST = "example.org";

-- What the module takes from Prosody outside its module object, stood in for.
local prosody_config = {};
package.loaded["core.configmanager"] = {
	getconfig = function () return prosody_config; end,
	get = function (host, key) return (prosody_config[host] or {})[key]; end,
};
package.loaded["net.http"] = { request = function () error("no HTTP expected"); end };
package.loaded["core.usermanager"] = { user_exists = function () return true; end };
package.loaded["util.timer"] = { add_task = function () end, stop = function () end };

local function metric()
	local m = {};
	function m.with_labels() return m; end
	function m.add() end
	function m.sample() end
	function m.set() end
	return m;
end

-- A module object for HOST with these options, and the module file loaded into it.
local function load_module(options)
	prosody_config[HOST] = options;
	local m = { host = HOST, name = "http_upload_s3", path = "lua/mod_http_upload_s3/mod_http_upload_s3.lua",
		hooks = {}, items = {}, logs = {}, stored = {}, commands = {} };
	m.records_map, m.records_keyval, m.records_index = memory_records_stores();
	function m:require(name)
		if name == "adhoc" then   -- Prosody's own, which mod_adhoc's commands are made with
			return { new = function (...) return { ... }; end };
		end
		return module:require(name);
	end
	function m:provides(kind, item) if kind == "adhoc" then self.commands[item[2]] = item; end end
	function m:get_option(name) return options[name]; end
	function m:get_option_string(name, default) return options[name] or default; end
	function m:get_host_type() return "local"; end
	function m:depends() end
	function m:context() return self; end
	function m:add_identity() end
	function m:add_item(kind, value) table.insert(self.items, { kind, value }); end
	function m:remove_item() end
	function m:metric() return metric(); end
	function m:open_store(name, kind)
		if name == "upload_records" then return kind == "map" and m.records_map or m.records_keyval; end
		if name == "upload_record_pages" then return m.records_index; end
		return { get = function (_, user) return m.stored[user]; end,
			set = function (_, user, value) m.stored[user] = value; return true; end };
	end
	m.timers = {};
	function m:add_timer(delay, f) table.insert(self.timers, { delay, f }); end
	function m:hook(name, f) self.hooks[name] = f; end
	m.hook_global = m.hook;
	function m:log(level, format, ...) table.insert(self.logs, level .. " " .. format:format(...)); end
	local chunk = assert(loadfile(m.path, "t", setmetatable({ module = m }, { __index = _G })));
	local ok, err = pcall(chunk);
	return m, ok, err;
end

local OPTIONS = {
	http_upload_s3_access_id = "AKIAIOSFODNN7EXAMPLE", http_upload_s3_secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	http_upload_s3_region = "eu-west-2", http_upload_s3_bucket = "chat-uploads", http_upload_s3_path = "http_uploads",
};

local function options(extra)
	local o = {};
	for k, v in pairs(OPTIONS) do o[k] = v; end
	for k, v in pairs(extra or {}) do
		if v == "nil" then o[k] = nil; else o[k] = v; end
	end
	return o;
end

-- The module's answer to a slot request from alice's session.
local function ask(m, attrs)
	attrs.xmlns = NS;
	local sent = {};
	local event = {
		stanza = st.iq({ type = "get", id = "s1", from = "alice@" .. HOST .. "/phone", to = HOST })
			:tag("request", attrs):up(),
		origin = { type = "c2s", username = "alice", send = function (s) table.insert(sent, s); end },
	};
	assert.is_true(m.hooks["iq-get/host/" .. NS .. ":request"](event));
	assert.equal(1, #sent);   -- every request gets exactly one reply
	return sent[1];
end

-- A message from a local user of HOST on its way out, and a room's copy of one on its way in.
local function send(m, from, stanza)
	stanza.attr.from = from .. "@" .. HOST .. "/phone";
	m.hooks["pre-message/bare"]({ stanza = stanza, origin = { type = "c2s", username = from, host = HOST } });
end

local function retract(m, from, id)
	send(m, from, st.message({ to = "carol@" .. HOST, id = "r-" .. id })
		:tag("retract", { xmlns = "urn:xmpp:message-retract:1", id = id }):up());
end

local function alice_list(m)
	return m.commands["http_upload_s3#list"][3](nil, { from = "alice@" .. HOST .. "/phone" }).info;
end

describe("the module file", function ()
	it("answers a slot request with the service's slot, and logs neither URL nor key", function ()
		local m, ok, err = load_module(options());
		assert.is_true(ok, err);
		local reply = ask(m, { filename = "a b.txt", size = "12", ["content-type"] = "text/plain" });
		assert.equal("result", reply.attr.type);
		local put = reply:get_child("slot", NS):get_child("put").attr.url;
		assert.matches("^https://chat%-uploads%.s3%.eu%-west%-2%.amazonaws%.com/http_uploads/", put);
		local key = put:match("amazonaws%.com/(.-)%?");
		local logs = table.concat(m.logs, "\n");
		assert.matches("Upload slot for alice@example.org: 12 bytes", logs, 1, true);
		assert.not_matches("X-Amz-", logs, 1, true);
		assert.not_matches(key:match("[^/]+/[^/]+$"), logs, 1, true);
	end);

	it("turns a refusal into the typed error of the request's namespace", function ()
		local m = load_module(options({ http_upload_s3_file_size_limit = 10 }));
		local reply = ask(m, { filename = "big.bin", size = "11" });
		assert.equal("error", reply.attr.type);
		local e = reply:get_child("error");
		assert.equal("modify", e.attr.type);
		assert.is_table(e:get_child("not-acceptable", "urn:ietf:params:xml:ns:xmpp-stanzas"));
		assert.equal("10", e:get_child("file-too-large", NS):get_child_text("max-file-size"));
		reply = ask(m, { filename = "a/b", size = "1" });
		assert.is_table(reply:get_child("error"):get_child("bad-request", "urn:ietf:params:xml:ns:xmpp-stanzas"));
	end);

	it("refuses to load with one line naming the option, and points out unknown ones", function ()
		local _, ok, err = load_module(options({ http_upload_s3_expires = 0 }));
		assert.is_false(ok);
		assert.equal("Refusing to load: http_upload_s3_expires must be between 1 and 604800", err);
		_, ok, err = load_module(options({ http_upload_s3_secret_key = "nil",
			http_upload_s3_secret_key_file = "/nonexistent/secret" }));
		assert.is_false(ok);
		assert.matches("^Refusing to load: http_upload_s3_secret_key_file cannot be read", err);
		local m = load_module(options({ http_upload_s3_presign_gett = true }));
		assert.matches("http_upload_s3_presign_gett is not an option of this module (did you mean "
			.. "http_upload_s3_presign_get?)", table.concat(m.logs, "\n"), 1, true);
	end);

	it("keeps the running configuration when a reload brings a broken one", function ()
		local m = load_module(options());
		prosody_config[HOST].http_upload_s3_region = "Europe";
		m.hooks["config-reloaded"]();
		assert.matches("Kept the running configuration: http_upload_s3_region", table.concat(m.logs, "\n"), 1, true);
		assert.equal("result", ask(m, { filename = "a.txt", size = "1" }).attr.type);
	end);

	it("keeps what it counted across a module reload", function ()
		local m = load_module(options({ http_upload_s3_daily_quota = 10 }));
		assert.equal("result", ask(m, { filename = "a.txt", size = "10" }).attr.type);
		local saved = m.save();
		local again = load_module(options({ http_upload_s3_daily_quota = 10 }));
		again.restore(saved);
		assert.equal("error", ask(again, { filename = "a.txt", size = "1" }).attr.type);
	end);

	it("offers users their own uploads, and never another's", function ()
		local m = load_module(options());
		for _ = 1, 2 do assert.equal("result", ask(m, { filename = "mine.txt", size = "5" }).attr.type); end
		m.records_index:set("bob@example.org", { n = 1 });
		m.records_map:set_keys("bob@example.org#1", { ["http_uploads/b/theirs.txt"] =
			"theirs.txt\t7\t\tmessage\t1\t\t\tstored\t\t\t" });
		local list = m.commands["http_upload_s3#list"][3];
		local shown = list(nil, { from = "alice@example.org/phone" });
		assert.equal("completed", shown.status);
		assert.matches("mine.txt, 5 bytes, [%d-]+T[%d:]+Z, message, not uploaded yet\n", shown.info);
		assert.matches("message uploads: 10 bytes stored", shown.info, 1, true);
		assert.not_matches("theirs.txt", shown.info, 1, true);
		assert.equal("error", list(nil, { from = "mallory@evil.example/x" }).status);

		local delete = m.commands["http_upload_s3#delete"][3];
		local step = delete(nil, { from = "alice@example.org/phone" });
		local offered = {};
		for _, field in ipairs(step.form) do
			for _, option in ipairs(field.name == "files" and field.options or {}) do offered[option.value] = option.label; end
		end
		assert.is_nil(offered["http_upload_s3/b/theirs.txt"]);
		-- a forged answer naming bob's key deletes nothing of bob's
		local mine = next(offered);
		local form = step.form:form({ files = { mine, "http_uploads/b/theirs.txt" } }, "submit");
		local done = delete(nil, { from = "alice@example.org/phone", form = form, action = "complete" }, "executing");
		assert.same({ "completed", "1 file deleted." }, { done.status, done.info });
		assert.matches("being deleted", list(nil, { from = "alice@example.org/phone" }).info, 1, true);
	end);

	it("gives an admin one form per command: a user's uploads, and files taken down by URL", function ()
		local m = load_module(options());
		assert.equal("result", ask(m, { filename = "report.pdf", size = "5" }).attr.type);
		local admin = { from = "admin@example.org/desk" };
		local function answer(node, values, action)
			local command = m.commands["http_upload_s3#" .. node][3];
			local step = command(nil, admin);
			assert.equal("executing", step.status);
			return command(nil, { from = admin.from, form = step.form:form(values, "submit"), action = action or "complete" },
				"executing");
		end
		assert.equal("admin", m.commands["http_upload_s3#admin-list"][4]);
		local shown = answer("admin-list", { user = "Alice@Example.org" });
		assert.equal("completed", shown.status);
		assert.matches("^alice@example.org:\nreport.pdf, 5 bytes", shown.info);
		assert.equal("canceled", answer("admin-list", { user = "alice@example.org" }, "cancel").status);
		assert.equal("That is not a JID", answer("admin-delete", { user = "@@" }).error.text);
		assert.same({ "completed", "nothing deleted: not a URL of this service's bucket or download address\n"
			.. "nothing deleted: not an http(s) URL" }, (function (r) return { r.status, r.info }; end)(
			answer("takedown", { urls = "https://example.net/x\nftp://a" })));
		assert.equal("1 file of alice@example.org deleted.", answer("admin-delete", { user = "alice@example.org" }).info);
	end);

	it("marks a deleted account's uploads for deletion", function ()
		local m = load_module(options());
		assert.equal("result", ask(m, { filename = "a.txt", size = "1" }).attr.type);
		m.hooks["user-deleted"]({ username = "alice", host = HOST });
		assert.matches("Deleting the 1 uploaded files of alice@example.org (account)", table.concat(m.logs, "\n"), 1, true);
		local kept = load_module(options({ http_upload_s3_delete_with_account = false }));
		assert.equal("result", ask(kept, { filename = "a.txt", size = "1" }).attr.type);
		kept.hooks["user-deleted"]({ username = "alice", host = HOST });
		assert.not_matches("Deleting the", table.concat(kept.logs, "\n"), 1, true);
	end);

	it("deletes a file when its owner retracts the message that carried it, and no one else can", function ()
		local m = load_module(options());
		local reply = ask(m, { filename = "shared.txt", size = "5" });
		local link = reply:get_child("slot", NS):get_child("get").attr.url;
		send(m, "alice", st.message({ to = "bob@" .. HOST, id = "m1", type = "chat" }):text_tag("body", "see " .. link)
			:tag("origin-id", { xmlns = "urn:xmpp:sid:0", id = "o1" }):up());
		-- mallory pastes alice's link, and retracts that: nothing of alice's goes
		send(m, "mallory", st.message({ to = "bob@" .. HOST, id = "m2", type = "chat" }):text_tag("body", link)
			:tag("origin-id", { xmlns = "urn:xmpp:sid:0", id = "o2" }):up());
		retract(m, "mallory", "o2");
		retract(m, "mallory", "o1");
		assert.matches("shared.txt, 5 bytes, [^\n]*not uploaded yet", alice_list(m));
		retract(m, "alice", "o1");
		assert.matches("shared.txt, 5 bytes, [^\n]*being deleted", alice_list(m));
		assert.matches("alice@example.org retracted a message; deleting the 1 uploaded files it carried",
			table.concat(m.logs, "\n"), 1, true);
	end);

	it("lets a message through whose links to the bucket name no file", function ()
		local m = load_module(options());
		local base = "https://chat-uploads.s3.eu-west-2.amazonaws.com/http_uploads/";
		for _, text in ipairs({ base, base .. "notes.txt", base .. "x/y/z", base .. "../other/%zz" }) do
			local stanza = st.message({ to = "bob@" .. HOST, id = "m1", type = "chat", from = "alice@" .. HOST .. "/phone" })
				:text_tag("body", "see " .. text .. " and " .. text):up()
				:tag("x", { xmlns = "jabber:x:oob" }):text_tag("url", text):up();
			local ok, err = pcall(m.hooks["pre-message/bare"],
				{ stanza = stanza, origin = { type = "c2s", username = "alice", host = HOST } });
			assert.is_true(ok, text .. ": " .. tostring(err));
		end
	end);

	-- review: bug 8 (mod_http_upload_s3.lua:533, delete_orphans)
	it("deletes no one's uploads when the accounts cannot be read", function ()
		local usermanager = package.loaded["core.usermanager"];
		local user_exists, users = usermanager.user_exists, usermanager.users;
		_G.prosody = { hosts = { [HOST] = {} } };
		-- as mod_auth_internal_hashed answers when its store does not (nil, as for no such account)
		usermanager.user_exists = function () return nil, "Auth failed. Invalid username"; end;
		usermanager.users = function () error("database is down"); end;
		local m = load_module(options());
		assert.equal("result", ask(m, { filename = "a.txt", size = "1" }).attr.type);
		for _, timer in ipairs(m.timers) do
			if timer[1] == 30 then timer[2](); end   -- the orphans' look, 30 s after start
		end
		local logs = table.concat(m.logs, "\n");
		usermanager.users = function () return function () end; end;   -- read, and alice's is not there
		for _, timer in ipairs(m.timers) do
			if timer[1] == 30 then timer[2](); end
		end
		usermanager.user_exists, usermanager.users, _G.prosody = user_exists, users, nil;
		assert.not_matches("Deleting the", logs, 1, true);
		assert.matches("Deleting the 1 uploaded files of alice@example.org (account)", table.concat(m.logs, "\n"), 1, true);
	end);

	it("keeps a user's retraction however many links others send meanwhile", function ()
		local upkeep = module:require "upkeep";
		local m = load_module(options());
		local link = ask(m, { filename = "private.jpg", size = "5" }):get_child("slot", NS):get_child("get").attr.url;
		send(m, "alice", st.message({ to = "bob@" .. HOST, id = "m1", type = "chat" }):text_tag("body", link)
			:tag("origin-id", { xmlns = "urn:xmpp:sid:0", id = "o1" }):up());
		local fake = link:gsub("%x+%-%x+%-%x+%-%x+%-%x+", "00000000-0000-4000-8000-000000000000");   -- anyone's
		for n = 1, upkeep.MAX_NOTES do
			send(m, "mallory", st.message({ to = "bob@" .. HOST, id = "f" .. n, type = "chat" }):text_tag("body", fake));
		end
		retract(m, "alice", "o1");
		assert.matches("private.jpg, [^\n]*being deleted", alice_list(m));
	end);

	it("takes the ids of a room's first copy of a user's message only, not of another occupant's echo", function ()
		local m = load_module(options());
		local link = ask(m, { filename = "photo.jpg", size = "5" }):get_child("slot", NS):get_child("get").attr.url;
		local ROOM = "room@conference." .. HOST;
		local function reflect(nick, origin_id, stanza_id)
			m.hooks["message/full"]({ stanza = st.message({ from = ROOM .. "/" .. nick, to = "alice@" .. HOST .. "/phone",
				type = "groupchat", id = origin_id }):text_tag("body", "x")
				:tag("origin-id", { xmlns = "urn:xmpp:sid:0", id = origin_id }):up()
				:tag("stanza-id", { xmlns = "urn:xmpp:sid:0", by = ROOM, id = stanza_id }):up() });
		end
		-- alice's "hi" (the room's stanza-id S0), then her photo (origin-id o1, stanza-id S1)
		send(m, "alice", st.message({ to = ROOM, id = "o0", type = "groupchat" }):text_tag("body", "hi")
			:tag("origin-id", { xmlns = "urn:xmpp:sid:0", id = "o0" }):up());
		reflect("alice", "o0", "S0");
		send(m, "alice", st.message({ to = ROOM, id = "o1", type = "groupchat" }):text_tag("body", link)
			:tag("origin-id", { xmlns = "urn:xmpp:sid:0", id = "o1" }):up());
		reflect("alice", "o1", "S1");
		-- mallory echoes alice's origin-id, once with the stanza-id of alice's "hi"
		for n = 1, 50 do reflect("mallory", "o1", "M" .. n); end
		reflect("mallory", "o1", "S0");
		retract(m, "alice", "S0");   -- alice retracts "hi": the photo stays
		assert.matches("photo.jpg, [^\n]*not uploaded yet", alice_list(m));
		local rec = select(2, next(m.save().records.dirty));
		assert.same({ "o1", "S1" }, rec.messages);
	end);

	it("answers a command step that comes without its form by showing the form again", function ()
		local m = load_module(options({ admins = nil }));
		ask(m, { filename = "a.txt", size = "5" });
		for _, node in ipairs({ "delete", "takedown", "admin-list", "admin-delete" }) do
			local command = m.commands["http_upload_s3#" .. node][3];
			local ok, reply = pcall(command, nil, { from = "alice@" .. HOST .. "/phone", action = "complete" }, "executing");
			assert.is_true(ok, node .. ": " .. tostring(reply));
			assert.equal("executing", reply.status);
		end
	end);
end);
