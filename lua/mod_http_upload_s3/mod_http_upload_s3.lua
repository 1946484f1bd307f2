-- mod_http_upload_s3: XEP-0363 HTTP File Upload straight to S3-compatible storage.
--
-- Clients get presigned S3 URLs (AWS Signature Version 4, signed by the s3sign
-- C library) and upload to the bucket themselves; no file passes through Prosody.
-- MIT licensed, see LICENSE.

local st = require "util.stanza";
local errors = require "util.error";
local dataform = require "util.dataforms".new;
local datetime = require "util.datetime".datetime;
local jid = require "util.jid";
local cache = require "util.cache";
local configmanager = require "core.configmanager";
local gettime = require "socket".gettime;
local s3sign = require "s3sign";

local config = module:require "config";

if module.host == "*" then
	-- loaded by prosodyctl for "prosodyctl mod_http_upload_s3 check|presign"
	local commands = module:require "commands";
	function module.command(arg)
		return commands.run(arg, print);
	end
	return;
end

local request = module:require "request";
local NS, NS_LEGACY = request.NS, request.NS_LEGACY;

local cfg, warnings = config.load(function (name)
	return module:get_option("http_upload_s3_" .. name);
end);
if not cfg then
	error("Refusing to load: " .. warnings, 0); -- one line naming the option
end
for _, warning in ipairs(warnings) do
	module:log("warn", "%s", warning);
end

local signer = assert(s3sign.new(config.signer_options(cfg)));

-- Whose users may upload: the host's own, or a component's parent host's.
local users_host = module:get_host_type() == "component" and module.host:match("^[^.]+%.(.+)$") or module.host;

module:depends("disco");
module:add_identity("store", "file", module:get_option_string("name", "HTTP File Upload"));
for _, ns in ipairs({ NS, NS_LEGACY }) do
	module:add_feature(ns);
	module:add_extension(dataform {
		{ name = "FORM_TYPE", type = "hidden", value = ns },
		{ name = "max-file-size", type = "text-single", datatype = "xs:integer" },
	}:form({ ["max-file-size"] = tostring(cfg.file_size_limit) }, "result"));
end

-- Every reply the module can send, once per namespace (its elements live in it).
local function error_registry(ns)
	return errors.init(module.name, ns, {
		access = { type = "auth", condition = "forbidden", text = "Only local users may upload files" };
		filename = { type = "modify", condition = "bad-request", text = "Invalid file name" };
		filesize = { type = "modify", condition = "bad-request", text = "File size must be a whole number of bytes" };
		filetype = { type = "modify", condition = "bad-request", text = "Invalid content type" };
		typedenied = { type = "modify", condition = "not-acceptable", text = "File type not allowed" };
		toolarge = { type = "modify", condition = "not-acceptable", text = "File too large";
			extra = { tag = st.stanza("file-too-large", { xmlns = ns })
				:text_tag("max-file-size", tostring(cfg.file_size_limit)) } };
		quota = { type = "wait", condition = "resource-constraint", text = "Daily upload quota reached" };
		rate = { type = "wait", condition = "resource-constraint", text = "Too many upload requests, slow down" };
		internal = { type = "wait", condition = "internal-server-error", text = "Could not create an upload slot" };
	});
end
local upload_errors = { [NS] = error_registry(NS), [NS_LEGACY] = error_registry(NS_LEGACY) };

-- Statistics, for mod_http_openmetrics and friends (no-ops when statistics are off).
local measure_slots = module:metric("counter", "slots", "", "Upload slots granted", {}):with_labels();
local measure_bytes = module:metric("counter", "granted", "bytes", "Bytes of the upload slots granted", {}):with_labels();
local measure_refused = module:metric("counter", "refused", "", "Upload slot requests refused", { "reason" });
local measure_signing = module:metric("histogram", "signing", "seconds", "Time to presign a slot", {},
	{ buckets = { 1e-6, 2e-6, 5e-6, 1e-5, 1e-4, 1e-3 } }):with_labels();

-- An error from the registry, with a more precise text, or a <retry/> time.
local function slot_error(ns, name, text, retry_at)
	local err = upload_errors[ns].new(name);
	err.reason = name; -- for the statistics
	err.text = text or err.text;
	if retry_at then
		err.extra = { tag = st.stanza("retry", { xmlns = ns, stamp = datetime(retry_at) }) };
	end
	return err;
end

-- "Text/HTML; charset=utf-8" -> "text/html"
local function bare_type(content_type)
	return content_type:match("^[^;%s]+"):lower();
end

local function type_matches(types, content_type)
	local bare = bare_type(content_type);
	return types[bare] or types[bare:gsub("/.*", "/*")];
end

-- Types a browser may run scripts in, even where a wildcard calls them safe.
local ACTIVE_TYPES = { ["image/svg+xml"] = true, ["text/html"] = true, ["application/xhtml+xml"] = true,
	["text/xml"] = true, ["application/xml"] = true };

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

local function may_upload(event, uploader, host)
	local origin = event.origin;
	if cfg.access[uploader] or cfg.access[host] then
		return true;
	end
	-- a signed-in account of users_host: not a remote server, a component or a guest
	local local_user = origin.type == "c2s" and origin.username ~= nil and host == users_host
		and not users_are_anonymous;
	return local_user and (not has_roles or module:may(":upload", event));
end

---- rate limit: a token bucket per user, in memory ------------------------

local buckets = cache.new(10000); -- LRU: a flood of JIDs cannot grow it without bound

-- -> true | false, time when the next request would be allowed
local function take_token(uploader, now)
	if cfg.rate_limit == math.huge then
		return true;
	end
	local rate = cfg.rate_limit / 60; -- tokens per second
	local b = buckets:get(uploader);
	if not b then
		b = { tokens = cfg.rate_limit, at = now };
		buckets:set(uploader, b);
	end
	b.tokens = math.min(cfg.rate_limit, b.tokens + (now - b.at) * rate);
	b.at = now;
	if b.tokens < 1 then
		return false, now + (1 - b.tokens) / rate;
	end
	b.tokens = b.tokens - 1;
	return true;
end

---- daily quota: bytes granted per user and UTC day, kept in storage ------

local quota_store = module:open_store("upload_quota");
local usage = {};   -- uploader -> { day = days since the epoch, bytes = n, dirty = bool }

local function usage_of(uploader, day)
	local u = usage[uploader];
	if not u then
		u = quota_store:get(uploader) or {};
		usage[uploader] = u;
	end
	if u.day ~= day then
		u.day, u.bytes = day, 0;
	end
	return u;
end

-- Written behind, every few seconds and on unload, so that a burst of slots
-- costs no storage round trips; a crash loses at most the last interval.
local function save_usage()
	local today = os.time() // 86400;
	for uploader, u in pairs(usage) do
		if u.dirty then
			u.dirty = nil;
			local saved, err = quota_store:set(uploader, { day = u.day, bytes = u.bytes });
			if not saved then
				u.dirty = true;
				module:log("error", "Could not save the upload quota of %s: %s", uploader, err);
			end
		elseif u.day ~= today then
			usage[uploader] = nil;
		end
	end
end
module:add_timer(5, function () save_usage(); return 5; end);
module:hook_global("server-stopping", save_usage);
module.unload = save_usage;

---- slots ------------------------------------------------------------------

-- response-content-* overrides for a presigned GET: the declared type when it
-- is safe to show inline, else a download, whatever type the upload carried.
local function download_options(filename, content_type)
	if content_type and not ACTIVE_TYPES[bare_type(content_type)]
		and type_matches(cfg.safe_file_types, content_type) then
		return { response_type = content_type };
	end
	return {
		response_type = "application/octet-stream",
		disposition = "attachment; filename*=UTF-8''" .. s3sign.uri_encode(filename),
	};
end

-- -> put url, get url, object key, size in bytes | nil, error
local function issue_slot(ns, uploader, now, filename, size_text, content_type)
	local problem = request.check_filename(filename);
	if problem then
		return nil, slot_error(ns, "filename", problem);
	end
	local size, size_problem = request.parse_size(size_text);
	if size_problem == "too-large" or (size and size > cfg.file_size_limit) then
		return nil, slot_error(ns, "toolarge");
	elseif not size then
		return nil, slot_error(ns, "filesize");
	end
	if content_type == "" then
		content_type = nil; -- some clients send an empty type: nothing to sign
	elseif content_type then
		problem = request.check_content_type(content_type);
		if problem then
			return nil, slot_error(ns, "filetype", problem);
		end
	end
	if next(cfg.allowed_file_types) and not type_matches(cfg.allowed_file_types,
		content_type or "application/octet-stream") then
		return nil, slot_error(ns, "typedenied");
	end

	local today = now // 86400;
	local used = usage_of(uploader, today);
	if used.bytes + size > cfg.daily_quota then
		return nil, slot_error(ns, "quota", nil, (today + 1) * 86400);
	end

	local started = gettime();
	local put, get_or_err, key = signer:slot(filename, size, cfg.sign_content_type and content_type or nil,
		cfg.presign_get and download_options(filename, content_type) or nil);
	measure_signing:sample(gettime() - started);
	if not put then
		module:log("error", "Could not sign a slot for %s: %s", uploader, get_or_err);
		return nil, slot_error(ns, "internal");
	end
	used.bytes, used.dirty = used.bytes + size, true;
	return put, get_or_err, key, size;
end

local function handle_slot_request(event)
	local stanza, origin = event.stanza, event.origin;
	local req = stanza.tags[1];
	local ns = req.attr.xmlns;
	local username, host = jid.split(stanza.attr.from);
	local uploader = username and (username .. "@" .. host) or host;
	local now = os.time();

	local ok, put, get, key, size;   -- as issue_slot returns them: a slot, or nil and an error in get
	if not may_upload(event, uploader, host) then
		ok, get = true, slot_error(ns, "access");
	else
		local allowed, retry_at = take_token(uploader, now);
		if allowed then
			-- a bug must still get the client an answer, not silence
			ok, put, get, key, size = pcall(issue_slot, ns, uploader, now, request.parse(req));
		else
			ok, get = true, slot_error(ns, "rate", nil, math.ceil(retry_at));
		end
	end
	if not ok then
		module:log("error", "Upload slot for %s failed: %s", uploader, put);
		put, get = nil, slot_error(ns, "internal");
	end
	if not put then
		local err = get;
		measure_refused:with_labels(err.reason):add(1);
		module:log("debug", "Refused an upload slot to %s: %s", uploader, err.text);
		origin.send(st.error_reply(stanza, err));
		return true;
	end
	measure_slots:add(1);
	measure_bytes:add(size);
	-- debug, not info: an info line costs as much as the rest of the slot (metrics count slots)
	module:log("debug", "Upload slot for %s: %d bytes, key %s", uploader, size, key);
	origin.send(request.slot_reply(stanza, ns, put, get));
	return true;
end

module:hook("iq-get/host/" .. NS .. ":request", handle_slot_request);
module:hook("iq-get/host/" .. NS_LEGACY .. ":request", handle_slot_request);
