-- The hosts that load the module, as prosodyctl's commands see them: their
-- options, the service each runs (credentials fetched now, LuaSocket
-- blocking), what hosts sharing a bucket do to one another, and the one way
-- a command prints a line about a host.
--
--   hosts.list() -> sorted host names
--   hosts.config(host) -> cfg, warnings | nil, problem
--   hosts.sharing() -> bucket.shared's report for every host whose options load
--   hosts.each(list, print, fn) -> exit status: fn(host, sharing) -> ok for each host of the list
--   hosts.service(cfg, say) -> a started service | nil (after saying why)
--   hosts.reporter(host, print) -> say(layer, text, ...): "host: layer: text"
--   hosts.serving(users_host) -> the module's hosts that take uploads from that host's users
--   hosts.store(host, name, kind) -> a host's store, as the server opens it (works with it stopped)
--   hosts.ADMIN: the uploader of a command's own slots

local configmanager = require "core.configmanager";
local datetime = require "util.datetime";
local config = module:require "config";
local bucket = module:require "bucket";
local environment = module:require "environment";
local service = module:require "service";

local M = {};

M.env = environment.prosodyctl();
M.ADMIN = { admin = true };

-- A command counts no quota: a store that keeps nothing.
local NO_STORE = { get = function () return nil; end, set = function () return true; end };

-- Hosts whose config loads the module, as a VirtualHost module or a Component.
function M.list()
	local list = {};
	for host in pairs(configmanager.getconfig()) do
		if host ~= "*" then
			local enabled = configmanager.get(host, "modules_enabled") or {};
			local loads = configmanager.get(host, "component_module") == "http_upload_s3";
			for _, name in ipairs(enabled) do
				loads = loads or name == "http_upload_s3";
			end
			if loads then
				table.insert(list, host);
			end
		end
	end
	table.sort(list);
	return list;
end

function M.config(host)
	return config.load(function (name)
		return configmanager.get(host, "http_upload_s3_" .. name);
	end, M.env, config.options_set(configmanager.getconfig(), host));
end

function M.sharing()
	local list = {};
	for _, host in ipairs(M.list()) do
		local cfg = M.config(host);
		if cfg then table.insert(list, { host = host, cfg = cfg }); end
	end
	return bucket.shared(list);
end

-- A command's run over hosts: 0 when fn said ok for each, 1 otherwise or when there is none.
function M.each(list, print, fn)
	if #list == 0 then
		print("no host in the configuration loads http_upload_s3");
		return 1;
	end
	local failures, sharing = 0, M.sharing();
	for _, host in ipairs(list) do
		if not fn(host, sharing[host] or { problems = {}, warnings = {} }) then
			failures = failures + 1;
		end
	end
	return failures == 0 and 0 or 1;
end

-- Whose users a module host serves: its own, or a component's parent host's.
local function users_of(host)
	return configmanager.get(host, "component_module") and host:match("^[^.]+%.(.+)$") or host;
end

function M.serving(users_host)
	local list = {};
	for _, host in ipairs(M.list()) do
		if users_of(host) == users_host then table.insert(list, host); end
	end
	return list;
end

function M.store(host, name, kind)
	local storagemanager = require "core.storagemanager";
	if not prosody.hosts[host] then
		prosody.hosts[host] = require "util.startup".make_host(host); -- luacheck: ignore 122 (as prosodyctl does)
	end
	storagemanager.initialize_host(host);
	return storagemanager.open(host, name, kind);
end

function M.reporter(host, print)
	return function (layer, text, ...)
		print(("%s: %s: " .. text):format(host, layer, ...));
	end
end

function M.service(cfg, say)
	local svc = service.new(cfg, M.env, NO_STORE);
	local problem;
	svc:start(os.time(), function (source, creds)
		say("credentials", "ok (from %s%s)", source,
			creds.expiration and (", valid until " .. datetime.datetime(creds.expiration)) or "");
	end, function (why) problem = why; end);
	if not svc:ready(os.time()) then
		say("credentials", "FAIL: %s", problem or "no credentials");
		svc:close();
		return nil;
	end
	return svc;
end

return M;
