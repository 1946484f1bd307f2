-- mod_http_upload_s3: XEP-0363 HTTP File Upload straight to S3-compatible storage.
--
-- Clients get presigned S3 URLs (AWS Signature Version 4, signed by the s3sign
-- C library) and upload to the bucket themselves; no file passes through Prosody.
-- This file is where Prosody's events meet the rooms beside it: the options,
-- disco, slot requests, timers, reloads and metrics. The slot itself is the
-- service's (service.lib.lua). MIT licensed, see LICENSE.

local st = require "util.stanza";
local errors = require "util.error";
local dataform = require "util.dataforms".new;
local datetime = require "util.datetime";
local jid = require "util.jid";
local async = require "util.async";
local configmanager = require "core.configmanager";
local usermanager = require "core.usermanager";
local gettime = require "socket".gettime;

-- The signing library: on Lua's C path, or beside this module where a rocks
-- tree (prosodyctl install, luarocks --tree) has it, which Prosody leaves off
-- package.cpath: <tree>/share/lua/5.x/mod_http_upload_s3/ and <tree>/lib/lua/5.x/.
-- Loaded first, so that every room's require "s3sign" finds it.
local function load_s3sign()
	local found, lib = pcall(require, "s3sign");
	if found then
		return;
	end
	local here = (module.path or ""):match("^(.*)/[^/]*$") or ".";
	local version = _VERSION:match("%d+%.%d+");
	local path = package.searchpath("s3sign", here .. "/?.so;" .. here .. "/../../../../lib/lua/" .. version .. "/?.so");
	if not path then
		error(lib, 0);
	end
	package.loaded.s3sign = assert(package.loadlib(path, "luaopen_s3sign"))();
end
load_s3sign();

if module.host == "*" then
	-- loaded by prosodyctl for "prosodyctl mod_http_upload_s3 check|presign|setup"
	local commands = module:require "commands";
	function module.command(arg)
		return commands.run(arg, print);
	end
	return;
end

local adhoc_commands = module:require "adhoc_commands";
local config = module:require "config";
local environment = module:require "environment";
local records = module:require "records";
local request = module:require "request";
local retraction = module:require "retraction";
local s3 = module:require "s3";
local service = module:require "service";
local upkeep = module:require "upkeep";
local urls = module:require "urls";
local NS, NS_LEGACY, NS_PURPOSE = request.NS, request.NS_LEGACY, request.NS_PURPOSE;

local env = environment.prosody();
local stores = { quota = module:open_store("upload_quota"),
	records = records.new(module:open_store("upload_records", "map"), module:open_store("upload_records"),
		module:open_store("upload_record_pages")) };
local upload_records = stores.records;

local function read_config()
	local cfg, warnings = config.load(function (name)
		return module:get_option("http_upload_s3_" .. name);
	end, env, config.options_set(configmanager.getconfig(), module.host));
	for _, warning in ipairs(cfg and warnings or {}) do
		module:log("warn", "%s", warning);
	end
	return cfg, warnings;
end

-- Whose users may upload: the host's own, or a component's parent host's.
local users_host = module:get_host_type() == "component" and module.host:match("^[^.]+%.(.+)$") or module.host;

---- disco ------------------------------------------------------------------

module:depends("disco");
module:add_identity("store", "file", module:get_option_string("name", "HTTP File Upload"));

-- The disco features and forms of a configuration, in place of the last one's.
local advertised = {};
local function advertise(cfg)
	for _, item in ipairs(advertised) do
		module:remove_item(item[1], item[2]);
	end
	advertised = {};
	local function add(kind, value)
		module:add_item(kind, value);
		table.insert(advertised, { kind, value });
	end
	for _, ns in ipairs({ NS, NS_LEGACY }) do
		add("feature", ns);
		add("extension", dataform {
			{ name = "FORM_TYPE", type = "hidden", value = ns },
			{ name = "max-file-size", type = "text-single", datatype = "xs:integer" },
		}:form({ ["max-file-size"] = tostring(cfg.file_size_limit) }, "result"));
	end
	for _, purpose in ipairs(cfg.purpose_list) do
		add("feature", NS_PURPOSE .. "#" .. purpose.name);
	end
end

---- replies and statistics ------------------------------------------------------

-- Every reply the module can send, once per namespace (its elements live in it).
local function error_registry(ns)
	return errors.init(module.name, ns, {
		access = { type = "auth", condition = "forbidden", text = "Only local users may upload files" };
		request = { type = "modify", condition = "bad-request", text = "Malformed upload request" };
		filename = { type = "modify", condition = "bad-request", text = "Invalid file name" };
		filesize = { type = "modify", condition = "bad-request", text = "File size must be a whole number of bytes" };
		filetype = { type = "modify", condition = "bad-request", text = "Invalid content type" };
		typedenied = { type = "modify", condition = "not-acceptable", text = "File type not allowed" };
		toolarge = { type = "modify", condition = "not-acceptable", text = "File too large" };
		purpose = { type = "cancel", condition = "feature-not-implemented", text = "Upload purpose not offered" };
		expiry = { type = "modify", condition = "bad-request", text = "Invalid expire-before" };
		quota = { type = "wait", condition = "resource-constraint", text = "Daily upload quota reached" };
		storage = { type = "wait", condition = "resource-constraint", text = "Storage quota reached" };
		rate = { type = "wait", condition = "resource-constraint", text = "Too many upload requests, slow down" };
		internal = { type = "wait", condition = "internal-server-error", text = "Could not create an upload slot" };
	});
end
local upload_errors = { [NS] = error_registry(NS), [NS_LEGACY] = error_registry(NS_LEGACY) };

-- The service's refusal as the error the registry has for it, in the request's namespace:
-- a more precise text, a <retry/> time, XEP-0363's <file-too-large/> with the purpose's limit.
local function error_reply(stanza, ns, refusal)
	local err = upload_errors[ns].new(refusal.reason);
	err.text = refusal.text or err.text;
	if refusal.retry_at then
		err.extra = { tag = st.stanza("retry", { xmlns = ns, stamp = datetime.datetime(refusal.retry_at) }) };
	elseif refusal.max_size then
		err.extra = { tag = st.stanza("file-too-large", { xmlns = ns })
			:text_tag("max-file-size", tostring(refusal.max_size)) };
	end
	return st.error_reply(stanza, err);
end

-- Statistics, for mod_http_openmetrics and friends (no-ops when statistics are off).
local measure_slots = module:metric("counter", "slots", "", "Upload slots granted", {}):with_labels();
local measure_bytes = module:metric("counter", "granted", "bytes", "Bytes of the upload slots granted", {}):with_labels();
local measure_refused = module:metric("counter", "refused", "", "Upload slot requests refused", { "reason" });
local measure_signing = module:metric("histogram", "signing", "seconds", "Time to make a granted slot, checks included", {},
	{ buckets = { 1e-6, 2e-6, 5e-6, 1e-5, 1e-4, 1e-3 } }):with_labels();
local measure_refreshes = module:metric("counter", "credential_refreshes", "", "Sets of credentials obtained", {})
	:with_labels();
local measure_refresh_failures = module:metric("counter", "credential_failures", "",
	"Failed attempts to obtain credentials", {}):with_labels();
local measure_expiry = module:metric("gauge", "credentials_expiry", "seconds",
	"Seconds until the current credentials expire", {}):with_labels();
local measure_records = module:metric("gauge", "records", "", "Uploads recorded", {}):with_labels();
local measure_stored = module:metric("gauge", "stored", "bytes", "Bytes the recorded uploads take", {}):with_labels();
local measure_deleted = module:metric("counter", "deleted", "", "Files deleted from the bucket", { "reason" });
local measure_delete_failures = module:metric("counter", "delete_failures", "",
	"Files the bucket did not delete when asked (tried again)", {}):with_labels();

---- the service, its credentials, and reloads -------------------------------------------

-- Credential fetches wait on HTTP: they run here, one after another, never on the slot path.
local background = async.runner(function (job) job(); end);

-- The service serving slots (active), and a newer configuration's until the
-- first set of credentials from its source is there (pending).
local active, pending;
local link_watcher;   -- how the active configuration's download links begin, to find them in messages
local unavailable_logged = false; -- that slots are refused for want of credentials: said once

-- Start a service for cfg: it, and why its credentials failed if they failed at once (a file that cannot be read).
local function install(cfg)
	local svc = service.new(cfg, env, stores);
	local first_problem, starting = nil, true;
	pending = svc;
	background:run(function ()
		svc:start(os.time(), function (source, creds)
			if svc ~= active and svc ~= pending then
				return; -- a later configuration took over
			end
			if svc == pending then
				if active then
					svc.rules:restore(active.rules:state());
					active:close();
				end
				active, pending = svc, nil;
				link_watcher = retraction.watcher(urls.bases(cfg));
				advertise(cfg);
			end
			measure_refreshes:add(1);
			unavailable_logged = false;
			module:log("debug", "Signing with credentials from %s%s", source,
				creds.expiration and (", valid until " .. datetime.datetime(creds.expiration)) or "");
		end, function (why, failures)
			measure_refresh_failures:add(1);
			first_problem = first_problem or why;
			if starting and cfg.credentials.source == "static" then
				return; -- the configuration is refused with it (configure)
			elseif failures == 1 then -- one line per outage, not per retry
				module:log("warn", "Could not obtain credentials from %s: %s; retrying", svc:status().source, why);
			end
		end);
	end);
	starting = false;
	return svc, first_problem;
end

-- The options read and the service started; nil and why not (one line naming the option).
-- Credentials from the options and their files are there at once, or the configuration is refused.
local function configure()
	local cfg, problem = read_config();
	if not cfg then
		return nil, problem;
	end
	local svc;
	svc, problem = install(cfg);
	if problem and cfg.credentials.source == "static" then
		if svc == pending then pending = nil; end
		svc:close();
		return nil, problem;
	end
	return svc;
end

do
	local ok, problem = configure();
	if not ok then
		error("Refusing to load: " .. problem, 0);
	end
end

module:add_timer(2, function ()
	local now = os.time();
	background:run(function ()
		for _, svc in ipairs({ active or false, pending or false }) do
			if svc then svc:tick(now); end
		end
	end);
	local expires_at = active and active:status().expires_at;
	if expires_at then
		measure_expiry:set(expires_at - now);
	end
	return 2;
end);

-- prosodyctl reload (SIGHUP): the options again; a configuration that does not
-- load keeps the running one, so a typo never takes uploads down.
module:hook_global("config-reloaded", function ()
	local ok, why = configure();
	if not ok then
		module:log("error", "Kept the running configuration: %s", why);
	end
end);

local function current()
	return active or pending;
end

-- A module reload keeps the rate limits, the quota counted so far, and the records not yet written.
function module.save()
	return { rules = current().rules:state(), records = upload_records:state() };
end
function module.restore(data)
	if data.rules then
		current().rules:restore(data.rules);
	end
	if data.records then
		upload_records:restore(data.records);
	end
end

---- who may upload ---------------------------------------------------------

-- anonymous logins are guests, whatever Prosody version
local users_are_anonymous = configmanager.get(users_host, "authentication") == "anonymous";

-- Prosody 13 has roles: uploading is the ":upload" permission, which
-- registered users hold by default and guests do not, and which admins may
-- grant or revoke per role. Prosody 0.12 has none, so only the checks below.
local has_roles = module.may ~= nil;
if has_roles then
	module:default_permission("prosody:registered", ":upload");
end

-- a signed-in account of users_host: not a remote server, a component or a guest
local function is_local_user(event, host)
	local origin = event.origin;
	return origin.type == "c2s" and origin.username ~= nil and host == users_host and not users_are_anonymous
		and (not has_roles or module:may(":upload", event));
end

---- the daily quota and the records, written behind ----------------------------------

-- A storage outage is logged when it starts and when it ends, not at every
-- retry; what is to be written waits in memory meanwhile, and slots go on.
local failing = {};
local function outage(what, failed, problem)
	if failed and not failing[what] then
		module:log("error", "Could not save %s: %s; keeping it in memory and retrying", what, problem);
	elseif not failed and failing[what] then
		module:log("info", "Saved %s again", what);
	end
	failing[what] = failed;
end

-- The records' usage, checks and deletions, read at start; until the storage answers, again at every save.
local function load_records()
	local ok, err = pcall(upload_records.load, upload_records);
	outage("the upload records (reading them)", not ok, err);
end

-- At most this long each second in writing records: the storage's calls block the server
-- (a database round trip each), so a flood of slots is written over the seconds after it.
local FLUSH_BUDGET = 0.05;

local function save_records(budget)
	local deadline = budget and gettime() + budget;
	local failed, problem = upload_records:flush(deadline and function () return gettime() < deadline; end);
	outage("the upload records", failed > 0, problem);
	local n, stored = upload_records:totals();
	measure_records:set(n);
	measure_stored:set(stored);
end

local function save_quota()
	local failures = current().rules:save(os.time());
	outage("the upload quota", #failures > 0, failures[1] and ("%s: %s"):format(failures[1][1], failures[1][2]));
end

-- Everything, at once: at stop and at unload.
local function save()
	save_quota();
	save_records();
end

load_records();
module:add_timer(5, function () save_quota(); return 5; end);
module:add_timer(1, function ()
	save_records(FLUSH_BUDGET);
	if not upload_records:loaded() then
		load_records();
	end
	return 1;
end);
module:hook_global("server-stopping", save);
module.unload = save;

---- after the slot: uploads confirmed, files deleted ---------------------------------

-- The work behind the slots (upkeep.lib.lua): each round in the background, never two at once.
local keeper = upkeep.new(upload_records, {
	log = function (...) module:log(...); end;
	deleted = function (reason) measure_deleted:with_labels(reason):add(1); end;
	delete_failures = function (n) measure_delete_failures:add(n); end;
});
local working = false;
local function work()
	local svc = active;
	if working or not svc or not upload_records:loaded() then
		return;
	end
	working = true;
	background:run(function ()
		local ok, err = pcall(keeper.round, keeper, svc, s3.new(svc.signer, env.http), os.time());
		working = false;
		if not ok then
			module:log("error", "The work behind the slots failed: %s", err);
		end
	end);
end
module:add_timer(5, function () work(); return 5; end);

---- a retracted message takes its file with it --------------------------------------

-- A room's copy of a user's message comes back with the room's stanza-id, which a
-- retraction in the room names: the links of the user's recent room messages, by id.
local sent_to_rooms = require "util.cache".new(1000);

-- A local user's message on its way out: one plain find of the download links' beginning in
-- the body, and nothing more for a message without one; a retraction is noted for later.
local function on_outgoing(event)
	local origin, stanza = event.origin, event.stanza;
	local svc = current();
	if not (svc.cfg.delete_on_retraction and origin and origin.type == "c2s" and origin.username) then
		return;
	end
	local owner = origin.username .. "@" .. origin.host;
	local retracted = retraction.retracts(stanza);
	if retracted then
		keeper:note({ owner = owner, retracted = retracted });
		work();
		return;
	end
	local links = link_watcher and link_watcher:links(stanza);
	if not links then
		return;
	end
	local keys = {};
	for _, link in ipairs(links) do
		keys[#keys + 1] = (urls.key_of(svc.cfg, link));   -- a link that names no file adds nothing
	end
	local ids = retraction.ids(stanza);
	if #keys > 0 and #ids > 0 then
		keeper:note({ owner = owner, keys = keys, ids = ids });
		if stanza.attr.type == "groupchat" and stanza.attr.to then
			sent_to_rooms:set(owner .. " " .. ids[1], { room = jid.bare(stanza.attr.to), keys = keys });
		end
	end
end

-- The room's copy of it, on its way in: its stanza-id joins the ids the files were sent under.
local function on_reflection(event)
	local stanza = event.stanza;
	if stanza.attr.type ~= "groupchat" or sent_to_rooms:count() == 0 then
		return;
	end
	local owner = jid.bare(stanza.attr.to);
	for _, id in ipairs(retraction.ids(stanza)) do
		local sent = sent_to_rooms:get(owner .. " " .. id);
		if sent and sent.room == jid.bare(stanza.attr.from) then
			-- the first copy back is the room's of the user's own message; a later one carrying the same
			-- id is another occupant's, whose stanza-id (or a <stanza-id> it smuggled) is not the user's
			sent_to_rooms:set(owner .. " " .. id, nil);
			local stanza_id = retraction.stanza_id(stanza, sent.room);
			if stanza_id then
				keeper:note({ owner = owner, keys = sent.keys, ids = { stanza_id } });
			end
			return;
		end
	end
end

do
	local users = module:context(users_host);
	for _, kind in ipairs({ "bare", "full", "host" }) do
		users:hook("pre-message/" .. kind, on_outgoing, 1);
	end
	users:hook("message/full", on_reflection, 1);
end

---- deleted on time ------------------------------------------------------------------

-- Ephemeral files within a minute of their expire-before (the lifecycle rule is a
-- second lock, at whole days); overdue ones at start, after a restart or an outage.
module:add_timer(10, function ()
	if upload_records:loaded() and upload_records:delete(upload_records:expired(os.time()), "expired") > 0 then
		work();
	end
	return 10;
end);

-- With http_upload_s3_expire_by = "module", files past their retention, daily and
-- batched, for services without lifecycle rules (or credentials that may not set them).
-- False when it could not look yet (the records not read).
local function delete_due()
	if current().cfg.expire_by ~= "module" then
		return true;
	elseif not upload_records:loaded() then
		return false;
	end
	local due, problem = upload_records:overdue(os.time());
	if problem then
		module:log("warn", "Could not read every owner's uploads to find those past their retention: %s", problem);
	end
	local n = upload_records:delete(due, "retention");
	if n > 0 then
		module:log("info", "Deleting %d uploaded files past their retention", n);
		work();
	end
	return true;
end
module:add_timer(20, function () return delete_due() and 86400 or 60; end);

---- taken down by URL -----------------------------------------------------------------

-- The file a URL names, whoever owns it, or one signed before records were kept;
-- a line saying what was done, or nil and why nothing was (not one of this host's files).
local function take_down(url, by)
	local svc = current();
	local key, purpose = urls.key_of(svc.cfg, url);
	if not key then
		return nil, purpose;
	end
	local rec, problem = upload_records:file(key, purpose);
	if not rec then
		return nil, "the records cannot be read now (" .. tostring(problem) .. "); try again later";
	end
	local what = service.whose_file(rec);
	if upload_records:delete({ rec }, "takedown") == 0 then
		return what .. ": already removed";
	end
	-- a PUT URL that still lives could bring it back: look once more after it has expired
	upload_records:recheck(rec, svc:check_time(os.time()));
	module:log("info", "%s took down %s", by, what);
	work();
	return what .. ": taken down";
end

-- Prosody 13's shell: http_upload_s3:delete(HOST, URL)
module:add_item("shell-command", {
	section = "http_upload_s3";
	section_desc = "Uploads to S3";
	name = "delete";
	desc = "Take down an uploaded file by any form of its URL";
	args = { { name = "host", type = "string" }, { name = "url", type = "string" } };
	host_selector = "host";
	handler = function (_, _, url)
		local done, why = take_down(url, "the admin shell");
		return done ~= nil, done or ("nothing deleted: " .. why);
	end;
});

---- deleted with the account -------------------------------------------------------

local function delete_uploads_of(owner, reason)
	local files, err = upload_records:of(owner);
	if not files then
		module:log("error", "Could not read the uploads of %s to delete them: %s; trying again later", owner, err);
		return;
	end
	local n = upload_records:delete(files, reason);
	if n > 0 then
		module:log("info", "Deleting the %d uploaded files of %s (%s)", n, owner, reason);
		work();
	end
end

module:hook_global("user-deleted", function (event)
	if event.host == users_host and current().cfg.delete_with_account then
		delete_uploads_of(event.username .. "@" .. event.host, "account");
	end
end);

-- Accounts removed while this module did not hear of it (prosodyctl deluser on 0.12 works
-- on the storage from outside the server): their uploads go too, found at start and daily.
-- False when it could not look yet (the records not read).
local function delete_orphans()
	if not current().cfg.delete_with_account or users_are_anonymous or not prosody.hosts[users_host] then
		return true;
	elseif not upload_records:loaded() then
		return false;
	end
	-- user_exists says nil alike for an account that is not there and one its store could not read:
	-- an account is gone only when the whole list of accounts could be read, and lacks it
	local existing = {};
	local listed, problem = pcall(function ()
		for name in assert(usermanager.users(users_host)) do existing[name] = true; end
	end);
	if not listed then
		module:log("warn", "Could not list the accounts to find the uploads of deleted ones: %s", problem);
		return true;
	end
	for _, owner in ipairs(upload_records:owners() or {}) do
		local node, host = jid.split(owner);
		if node and host == users_host and not existing[node] and not usermanager.user_exists(node, host) then
			delete_uploads_of(owner, "account");
		end
	end
	return true;
end
module:add_timer(30, function () return delete_orphans() and 86400 or 60; end);

---- slots ------------------------------------------------------------------

-- That slots are refused for want of credentials, once until they are back.
local function log_unavailable(svc)
	if not unavailable_logged then
		unavailable_logged = true;
		local status = svc:status();
		module:log("error", "Refusing upload slots: the credentials from %s %s (%s)", status.source,
			status.expires_at and ("expired at " .. datetime.datetime(status.expires_at)) or "are not there yet",
			status.problem or "no answer yet");
	end
end

local function handle_slot_request(event)
	local stanza, origin = event.stanza, event.origin;
	local req = stanza.tags[1];
	local ns = req.attr.xmlns;
	local username, host = jid.split(stanza.attr.from);
	local uploader = { jid = username and (username .. "@" .. host) or host, host = host,
		local_user = is_local_user(event, host) };
	local svc, now = current(), os.time();

	local started = gettime();
	-- a bug must still get the client an answer, not silence
	local ok, slot, refusal = pcall(svc.slot, svc, request.parse(req), uploader, now);
	if not ok then
		module:log("error", "Upload slot for %s failed: %s", uploader.jid, slot);
		slot, refusal = nil, { reason = "internal" };
	end
	if not slot then
		measure_refused:with_labels(refusal.reason):add(1);
		if refusal.problem then
			module:log("error", "Could not sign a slot for %s: %s", uploader.jid, refusal.problem);
		elseif refusal.reason == "internal" then
			log_unavailable(svc);
		end
		module:log("debug", "Refused an upload slot to %s: %s", uploader.jid, refusal.text or refusal.reason);
		origin.send(error_reply(stanza, ns, refusal));
		return true;
	end
	measure_signing:sample(gettime() - started);
	measure_slots:add(1);
	measure_bytes:add(slot.size);
	-- debug, not info: an info line costs as much as the rest of the slot (metrics count slots);
	-- no key, for the key of a public file is its download link
	module:log("debug", "Upload slot for %s: %d bytes", uploader.jid, slot.size);
	origin.send(request.slot_reply(stanza, ns, slot.put, slot.get));
	return true;
end

module:hook("iq-get/host/" .. NS .. ":request", handle_slot_request);
module:hook("iq-get/host/" .. NS_LEGACY .. ":request", handle_slot_request);

---- users' and admins' commands ------------------------------------------------------

-- Whether a bare JID is one of those this service takes uploads from: a user of the
-- host it serves, or one the access list names.
local function may_upload(bare)
	local node, host = jid.split(bare);
	local access = current().cfg.access;
	return (node ~= nil and host == users_host and not users_are_anonymous) or access[bare] or access[host] or false;
end

module:depends("adhoc");
local adhoc_new = module:require "adhoc".new;
for _, command in ipairs(adhoc_commands.new({ records = upload_records, service = current, may_upload = may_upload,
	wake = work, take_down = take_down })) do
	module:provides("adhoc", adhoc_new(table.unpack(command)));
end
