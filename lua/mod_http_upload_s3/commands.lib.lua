-- prosodyctl mod_http_upload_s3 check
-- prosodyctl mod_http_upload_s3 setup [--host HOST] [--dry-run]
-- prosodyctl mod_http_upload_s3 presign FILENAME SIZE [TYPE] [--host HOST]
-- prosodyctl mod_http_upload_s3 uploads USER@HOST
-- prosodyctl mod_http_upload_s3 delete URL...
--
-- check (check.lib.lua): whether uploads work, and safely, host by host.
-- setup: write the bucket's policy, CORS rule and lifecycle rules as the
-- options ask (bucket.lib.lua builds them), keeping what others put there;
-- --dry-run shows the changes and writes nothing.
-- presign: the slot a client would get, for trying uploads by hand.
-- uploads: what a user has uploaded, from the records, with the server running or not.
-- delete: take files down by any form of their URLs, with the server running or not.
-- No command prints a secret; presign prints URLs, which is its purpose.

local jid = require "util.jid";
local adhoc_commands = module:require "adhoc_commands";
local bucket = module:require "bucket";
local check = module:require "check";
local documents = module:require "documents";
local hosts = module:require "hosts";
local records = module:require "records";
local s3 = module:require "s3";
local service = module:require "service";
local urls = module:require "urls";

-- Takes "--name" (with its value, if it has one) out of args: true or the value;
-- false for a value that is missing; nil when it is not there.
local function take_option(args, name, has_value)
	for i = 1, #args do
		if args[i] == name then
			table.remove(args, i);
			return not has_value or (table.remove(args, i) or false);
		end
	end
end

---- setup --------------------------------------------------------------------

local function setup_host(host, dry_run, print, sharing)
	local say = hosts.reporter(host, print);
	local cfg, err = hosts.config(host);
	if not cfg then
		say("configuration", "FAIL: %s", err);
		return false;
	end
	local svc = hosts.service(cfg, say);
	if not svc then
		return false;
	end
	local client = s3.new(svc.signer, hosts.env.http);
	for _, warning in ipairs(sharing.warnings) do
		say("warning", "%s", warning);
	end
	local ok, changed = true, false;
	for _, result in ipairs(documents.changes(cfg, host, client, sharing)) do
		local name = result.doc.name;
		if result.unreadable or result.problem then
			say(name, "FAIL: %s", result.unreadable or result.problem);
			ok = false;
		else
			for _, warning in ipairs(result.warnings) do
				say(name, "warning: %s", warning);
			end
			if #result.changes == 0 then
				say(name, "unchanged");
			else
				changed = true;
				for _, change in ipairs(result.changes) do
					print(("%s: %s"):format(host, change));
				end
				local problem = not dry_run and documents.write(client, result.doc, result.merged);
				if problem then
					say(name, "FAIL: %s", problem);
					ok = false;
				elseif not dry_run then
					say(name, "%s", result.merged and "written" or "deleted");
				end
			end
		end
	end
	svc:close();
	if dry_run and changed then
		print(("%s: what this module wants of the bucket (others' statements and rules are kept):"):format(host));
		local wanted = bucket.as_json(cfg, host);
		for _, doc in ipairs(documents.LIST) do   -- in the order the changes were listed
			if wanted[doc.name] then
				print(("  %s: %s"):format(doc.name, wanted[doc.name]));
			end
		end
		print(("%s: dry run: nothing written"):format(host));
	elseif not changed and ok then
		print(("%s: the bucket is set up as the configuration says; nothing to do"):format(host));
	end
	return ok;
end

local function setup(args, print)
	local host, dry_run = take_option(args, "--host", true), take_option(args, "--dry-run");
	if host == false or #args > 0 then
		print("usage: prosodyctl mod_http_upload_s3 setup [--host HOST] [--dry-run]");
		return 1;
	end
	return hosts.each(host and { host } or hosts.list(), print, function (h, sharing)
		return setup_host(h, dry_run, print, sharing);
	end);
end

---- presign ------------------------------------------------------------------

local function presign(args, print)
	local host = take_option(args, "--host", true);
	local filename, size, content_type = args[1], args[2], args[3];
	if not filename or not (size or ""):find("^%d+$") then
		print("usage: prosodyctl mod_http_upload_s3 presign FILENAME SIZE [CONTENT-TYPE] [--host HOST]");
		return 1;
	end
	local list = hosts.list();
	host = host or (#list == 1 and list[1]);
	if not host then
		print("several hosts load http_upload_s3; pick one with --host: " .. table.concat(list, ", "));
		return 1;
	end
	local cfg, err = hosts.config(host);
	if not cfg then
		print(("%s: %s"):format(host, err));
		return 1;
	end
	local svc = hosts.service(cfg, hosts.reporter(host, function (line) io.stderr:write(line, "\n"); end));
	if not svc then
		return 1;
	end
	local slot, refusal = svc:slot({ filename = filename, size = size, content_type = content_type, purpose = "message" },
		hosts.ADMIN, os.time());
	svc:close();
	if not slot then
		print(("%s: %s"):format(host, refusal.text or refusal.problem or refusal.reason));
		return 1;
	end
	print("key: " .. slot.key);
	print("PUT: " .. slot.put);
	print("GET: " .. slot.get);
	print("headers the PUT must carry:");
	print(("  Content-Length: %d"):format(slot.size));
	if slot.content_type then
		print(("  Content-Type: %s"):format(slot.content_type));
	end
	print(("try: curl -T FILE%s '%s'"):format(content_type and (" -H 'Content-Type: %s'"):format(content_type) or "",
		slot.put));
	return 0;
end

---- uploads ------------------------------------------------------------------

-- A host's records, as the server keeps them.
local function records_of(host)
	return records.new(hosts.store(host, "upload_records", "map"), hosts.store(host, "upload_records", "keyval"),
		hosts.store(host, "upload_record_pages", "keyval"));
end


local function uploads(args, print)
	local owner = #args == 1 and jid.prep(args[1]);
	local node, host = jid.split(owner or "");
	if not node then
		print("usage: prosodyctl mod_http_upload_s3 uploads USER@HOST");
		return 1;
	end
	owner = node .. "@" .. host;
	local services = hosts.serving(host);
	if #services == 0 then
		print(("no host in the configuration takes uploads from the users of %s"):format(host));
		return 1;
	end
	for _, service_host in ipairs(services) do
		local list, err = records_of(service_host):of(owner);
		if not list then
			print(("%s: the records cannot be read: %s"):format(service_host, tostring(err)));
			return 1;
		end
		print(("%s: %d upload%s of %s"):format(service_host, #list, #list == 1 and "" or "s", owner));
		for _, rec in ipairs(list) do
			print("  " .. adhoc_commands.describe(rec));
		end
	end
	return 0;
end

---- delete -------------------------------------------------------------------

-- The file one URL names, deleted from the bucket now, and its record marked removed.
local function take_down(host, cfg, key, purpose, print)
	local say = hosts.reporter(host, print);
	local svc = hosts.service(cfg, say);
	if not svc then
		return false;
	end
	local recs = records_of(host);
	local rec, problem = recs:file(key, purpose);
	if not rec then
		svc:close();
		say("delete", "FAIL: the records cannot be read: %s", problem);
		return false;
	end
	local what = service.whose_file(rec);
	local deleted, failed = s3.new(svc.signer, hosts.env.http):delete_objects({ key });
	svc:close();
	if not (deleted and deleted[key]) then
		say("delete", "FAIL: %s: the bucket did not delete it: %s", what, deleted and failed[key] or failed);
		return false;
	end
	recs:delete({ rec }, "takedown");
	recs:deleted(rec);
	local failures, flush_problem = recs:flush();
	say("delete", "%s: taken down%s", what, failures > 0 and ("; its record not updated: " .. flush_problem) or "");
	return failures == 0;
end

local function delete(args, print)
	if #args == 0 then
		print("usage: prosodyctl mod_http_upload_s3 delete URL...");
		return 1;
	end
	local status = 0;
	for i, url in ipairs(args) do
		local found, why;
		for _, host in ipairs(hosts.list()) do
			local cfg = hosts.config(host);
			local key, purpose;   -- or nil and why not
			if cfg then
				key, purpose = urls.key_of(cfg, url);
			end
			if key then
				found = true;
				if not take_down(host, cfg, key, purpose, print) then status = 1; end
				break;
			end
			why = purpose or why;
		end
		if not found then
			print(("link %d: not one of the uploaded files here (%s); nothing deleted"):format(i, why or "no host"));
			status = 1;
		end
	end
	return status;
end

local commands = { check = check, delete = delete, presign = presign, setup = setup, uploads = uploads };

-- module.command for prosodyctl: arg is { command, args... }
local function run(arg, print)
	local command = commands[arg[1] or ""];
	if not command then
		print("usage: prosodyctl mod_http_upload_s3 check");
		print("       prosodyctl mod_http_upload_s3 setup [--host HOST] [--dry-run]");
		print("       prosodyctl mod_http_upload_s3 presign FILENAME SIZE [CONTENT-TYPE] [--host HOST]");
		print("       prosodyctl mod_http_upload_s3 uploads USER@HOST");
		print("       prosodyctl mod_http_upload_s3 delete URL...");
		return 1;
	end
	return command({ table.unpack(arg, 2) }, print);
end

return { run = run };
