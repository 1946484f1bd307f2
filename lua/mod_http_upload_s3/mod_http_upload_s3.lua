-- mod_http_upload_s3: XEP-0363 HTTP File Upload straight to S3-compatible storage.
--
-- Clients get presigned S3 URLs (AWS Signature Version 4, signed by the s3sign
-- C library) and upload to the bucket themselves; no file passes through Prosody.
-- MIT licensed, see LICENSE.

local st = require "util.stanza";
local errors = require "util.error";
local dataform = require "util.dataforms".new;
local datetime = require "util.datetime";
local jid = require "util.jid";
local configmanager = require "core.configmanager";
local gettime = require "socket".gettime;

-- The signing library: on Lua's C path, or beside this module where a rocks
-- tree (prosodyctl install, luarocks --tree) has it, which Prosody leaves off
-- package.cpath: <tree>/share/lua/5.x/mod_http_upload_s3/ and <tree>/lib/lua/5.x/.
local function load_s3sign()
	local found, lib = pcall(require, "s3sign");
	if found then
		return lib;
	end
	local here = (module.path or ""):match("^(.*)/[^/]*$") or ".";
	local version = _VERSION:match("%d+%.%d+");
	local path = package.searchpath("s3sign", here .. "/?.so;" .. here .. "/../../../../lib/lua/" .. version .. "/?.so");
	if not path then
		error(lib, 0);
	end
	package.loaded.s3sign = assert(package.loadlib(path, "luaopen_s3sign"))();
	return package.loaded.s3sign;
end
local s3sign = load_s3sign();

local config = module:require "config";

if module.host == "*" then
	-- loaded by prosodyctl for "prosodyctl mod_http_upload_s3 check|presign|setup"
	local commands = module:require "commands";
	function module.command(arg)
		return commands.run(arg, print);
	end
	return;
end

local request = module:require "request";
local rules = module:require "rules";
local credentials = module:require "credentials";
local http = require "net.http";
local NS, NS_LEGACY, NS_PURPOSE = request.NS, request.NS_LEGACY, request.NS_PURPOSE;

local function read_config()
	local new_cfg, warnings = config.load(function (name)
		return module:get_option("http_upload_s3_" .. name);
	end, nil, config.options_set(configmanager.getconfig(), module.host));
	for _, warning in ipairs(new_cfg and warnings or {}) do
		module:log("warn", "%s", warning);
	end
	return new_cfg, warnings;
end

local cfg, load_problem = read_config();
if not cfg then
	error("Refusing to load: " .. load_problem, 0); -- one line naming the option
end
local upload_rules = rules.new(cfg, module:open_store("upload_quota"));

-- Whose users may upload: the host's own, or a component's parent host's.
local users_host = module:get_host_type() == "component" and module.host:match("^[^.]+%.(.+)$") or module.host;

module:depends("disco");
module:add_identity("store", "file", module:get_option_string("name", "HTTP File Upload"));

-- The disco features and forms of a configuration, in place of the last one's.
local advertised = {};
local function advertise(c)
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
		}:form({ ["max-file-size"] = tostring(c.file_size_limit) }, "result"));
	end
	for _, purpose in ipairs(c.purpose_list) do
		add("feature", NS_PURPOSE .. "#" .. purpose.name);
	end
end

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
		err.extra = { tag = st.stanza("retry", { xmlns = ns, stamp = datetime.datetime(retry_at) }) };
	end
	return err;
end

-- XEP-0363's <file-too-large/>, with the limit of the purpose asked for.
local function too_large(ns, purpose)
	local err = slot_error(ns, "toolarge");
	err.extra = { tag = st.stanza("file-too-large", { xmlns = ns })
		:text_tag("max-file-size", tostring(purpose.file_size_limit)) };
	return err;
end

---- credentials, the signer, and reloads --------------------------------------

local measure_refreshes = module:metric("counter", "credential_refreshes", "", "Sets of credentials obtained", {})
	:with_labels();
local measure_refresh_failures = module:metric("counter", "credential_failures", "",
	"Failed attempts to obtain credentials", {}):with_labels();
local measure_expiry = module:metric("gauge", "credentials_expiry", "seconds",
	"Seconds until the current credentials expire", {}):with_labels();

-- The sources' requests, through Prosody's asynchronous HTTP client.
local function fetch(req, callback)
	http.request(req.url, { method = req.method, headers = req.headers, body = req.body }, function (body, code)
		if type(code) ~= "number" or code < 100 then
			return callback(nil, tostring(body));
		end
		callback({ status = code, body = body });
	end);
end
local provider_env = setmetatable({ http = fetch, s3sign = s3sign }, { __index = config.process_env });

-- A configuration serves slots (active) once the first set of credentials from
-- its source is there; until then the one before it goes on (pending).
local active, pending;
local unavailable_logged = false; -- that slots are refused for want of credentials: said once

local function install(new_cfg)
	local entry = { chain = credentials.new(new_cfg, provider_env) };
	pending = entry;
	entry.chain:start(os.time(), function (creds, source)
		if entry ~= active and entry ~= pending then
			return; -- a later configuration took over
		end
		local ok, why;
		if entry.signer then
			ok, why = entry.signer:set_credentials(creds); -- all three at once, the old wiped
		else
			entry.signer, why = s3sign.new(config.signer_options(new_cfg, creds));
			ok = entry.signer ~= nil;
		end
		if not ok then
			module:log("error", "The credentials from %s cannot sign: %s", source, why);
			return;
		end
		if entry == pending then
			local previous = active;
			active, pending = entry, nil;
			cfg, upload_rules.cfg = new_cfg, new_cfg;
			advertise(new_cfg);
			if previous and previous.signer then
				previous.signer:close();
			end
		end
		measure_refreshes:add(1);
		unavailable_logged = false;
		module:log("debug", "Signing with credentials from %s%s", source,
			creds.expiration and (", valid until " .. datetime.datetime(creds.expiration)) or "");
	end, function (why, failures)
		measure_refresh_failures:add(1);
		if failures == 1 then -- one line per outage, not per retry
			module:log("warn", "Could not obtain credentials from %s: %s; retrying", entry.chain.source, why);
		end
	end);
end
install(cfg);

module:add_timer(2, function ()
	local now = os.time();
	for _, entry in ipairs({ active or false, pending or false }) do
		if entry then
			entry.chain:tick(now);
		end
	end
	local expires_at = active and active.chain.expires_at;
	if expires_at then
		measure_expiry:set(expires_at - now);
	end
	return 2;
end);

-- Why slots cannot be signed now, or nil; logged once until credentials are back.
local function signing_unavailable(now)
	if active and active.chain:usable(now) then
		return nil;
	end
	if not unavailable_logged then
		unavailable_logged = true;
		local chain = (pending or active).chain;
		module:log("error", "Refusing upload slots: the credentials from %s %s (%s)", chain.source,
			chain.expires_at and ("expired at " .. datetime.datetime(chain.expires_at)) or "are not there yet",
			chain.problem or "no answer yet");
	end
	return true;
end

-- prosodyctl reload (SIGHUP): the options again; a configuration that does not
-- load keeps the running one, so a typo never takes uploads down.
module:hook_global("config-reloaded", function ()
	local new_cfg, why = read_config();
	if not new_cfg then
		module:log("error", "Kept the running configuration: %s", why);
		return;
	end
	install(new_cfg);
end);

-- A module reload keeps the rate limits and the quota counted so far.
function module.save()
	return { usage = upload_rules.usage, buckets = upload_rules.buckets };
end
function module.restore(data)
	upload_rules.usage = data.usage or upload_rules.usage;
	upload_rules.buckets = data.buckets or upload_rules.buckets;
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

---- the daily quota, written behind ------------------------------------------

-- A storage outage is logged when it starts and when it ends, not at every
-- retry; the counts wait in memory meanwhile, and slots go on.
local saving_failed = false;
local function save_usage()
	local failures = upload_rules:save(os.time());
	if #failures > 0 and not saving_failed then
		module:log("error", "Could not save the upload quota of %s: %s; keeping it in memory and retrying",
			failures[1][1], failures[1][2]);
	elseif #failures == 0 and saving_failed then
		module:log("info", "Saved the upload quota again");
	end
	saving_failed = #failures > 0;
end
module:add_timer(5, function () save_usage(); return 5; end);
module:hook_global("server-stopping", save_usage);
module.unload = save_usage;

---- slots ------------------------------------------------------------------

-- How long an ephemeral file's GET URL may live: until expire-before, at most
-- the 7 days S3 allows a presigned URL; nil and why not.
local MIN_EPHEMERAL = 30; -- seconds: time to upload, and for someone to fetch it
local function ephemeral_lifetime(text, now)
	if not text then
		return nil, "Ephemeral uploads need an expire-before time";
	end
	local ok, at = pcall(datetime.parse, text);
	if not ok or not at then
		return nil, "expire-before is not a XEP-0082 date and time";
	elseif at <= now then
		return nil, "expire-before is in the past";
	elseif at < now + MIN_EPHEMERAL then
		return nil, ("expire-before must be at least %d seconds from now"):format(MIN_EPHEMERAL);
	end
	return math.min(math.floor(at - now), s3sign.limits.expires);
end

-- -> put url, get url, size in bytes | nil, error
local function issue_slot(ns, uploader, now, req)
	local filename, size_text, content_type, malformed = request.parse(req);
	local purpose_name, expire_before = request.parse_purpose(req);
	if malformed or not purpose_name then
		return nil, slot_error(ns, "request", malformed or expire_before);
	end
	local problem = request.check_filename(filename);
	if problem then
		return nil, slot_error(ns, "filename", problem);
	end
	local purpose = cfg.purposes[purpose_name];
	if not purpose then
		return nil, slot_error(ns, "purpose", ("Upload purpose '%s' is not offered by this service"):format(purpose_name));
	end
	local get_expires = purpose.presign_get and cfg.get_expires or nil;
	if purpose_name == "ephemeral" then
		get_expires, problem = ephemeral_lifetime(expire_before, now);
		if not get_expires then
			return nil, slot_error(ns, "expiry", problem);
		end
	end
	local size, size_problem = request.parse_size(size_text);
	if size_problem == "too-large" then
		return nil, too_large(ns, purpose);
	elseif not size then
		return nil, slot_error(ns, "filesize");
	end
	content_type = upload_rules:upload_type(content_type);
	if content_type then
		problem = request.check_content_type(content_type);
		if problem then
			return nil, slot_error(ns, "filetype", problem);
		end
	end
	local refusal = upload_rules:refusal(purpose, size, content_type);
	if refusal == "toolarge" then
		return nil, too_large(ns, purpose);
	elseif refusal then
		return nil, slot_error(ns, refusal);
	end
	local within, retry_at = upload_rules:quota_left(uploader, purpose, size, now);
	if not within then
		return nil, slot_error(ns, "quota", nil, retry_at);
	end

	if signing_unavailable(now) then
		return nil, slot_error(ns, "internal", "Upload credentials are not available; try again later");
	end
	local started = gettime();
	local put, get_or_err = active.signer:slot(purpose.key_prefix, filename, size,
		cfg.sign_content_type and content_type or nil,
		get_expires and upload_rules:download_options(get_expires, filename, content_type) or nil);
	measure_signing:sample(gettime() - started);
	if not put then
		module:log("error", "Could not sign a slot for %s: %s", uploader, get_or_err);
		return nil, slot_error(ns, "internal");
	end
	upload_rules:charge(uploader, purpose, size, now);
	return put, get_or_err, size;
end

local function handle_slot_request(event)
	local stanza, origin = event.stanza, event.origin;
	local req = stanza.tags[1];
	local ns = req.attr.xmlns;
	local username, host = jid.split(stanza.attr.from);
	local uploader = username and (username .. "@" .. host) or host;
	local now = os.time();

	local ok, put, get, size;   -- as issue_slot returns them: a slot, or nil and an error in get
	if not upload_rules:admits(uploader, host, is_local_user(event, host)) then
		ok, get = true, slot_error(ns, "access");
	else
		local allowed, retry_at = upload_rules:take_token(uploader, now);
		if allowed then
			-- a bug must still get the client an answer, not silence
			ok, put, get, size = pcall(issue_slot, ns, uploader, now, req);
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
	-- debug, not info: an info line costs as much as the rest of the slot (metrics count slots);
	-- no key, for the key of a public file is its download link
	module:log("debug", "Upload slot for %s: %d bytes", uploader, size);
	origin.send(request.slot_reply(stanza, ns, put, get));
	return true;
end

module:hook("iq-get/host/" .. NS .. ":request", handle_slot_request);
module:hook("iq-get/host/" .. NS_LEGACY .. ":request", handle_slot_request);
