-- XEP-0050 commands on the upload service: a user's own uploads, listed and
-- deleted; an admin's view of any user's, and deleting them all.
--
--   local commands = adhoc_commands.new(ctx)
--     ctx.records        records.lib's
--     ctx.service()      the service serving slots now (its options, download URLs)
--     ctx.may_upload(jid) whether a bare JID is one of the users this service serves
--     ctx.wake()         the deletions are waiting: start them
--     ctx.take_down(url, by) -> what was done | nil, why not (not one of this host's files)
--   -> { { name, node, handler, permission }... } for Prosody's adhoc lib (adhoc.new)
--
-- A user only ever sees and deletes records whose owner is the user's bare JID.

local dataforms = require "util.dataforms";
local datetime = require "util.datetime";
local jid = require "util.jid";
local service_lib = module:require "service";

local bytes = service_lib.bytes;
local NODE = "http_upload_s3#";
local MAX_OPTIONS = 500;   -- files offered in one "Delete uploads" form, newest first

local STATES = { pending = "not uploaded yet", stored = "stored", deleting = "being deleted", removed = "removed by an admin" };

-- One file as a line: name, size, date, purpose, state, and its link when there is one.
local function describe(rec, url)
	return ("%s, %s, %s, %s%s%s"):format(rec.filename, bytes(rec.stored or rec.size),
		datetime.datetime(rec.at), rec.purpose, rec.state ~= "stored" and (", " .. STATES[rec.state]) or "",
		url and ("\n  " .. url) or "");
end

-- The user's files, the total stored, and what the storage quota leaves.
local function listing(ctx, owner, with_links, now)
	local list, err = ctx.records:of(owner);
	if not list then
		return nil, err;
	end
	local svc = ctx.service();
	local lines, totals = {}, {};
	for _, rec in ipairs(list) do
		local url = with_links and rec.state == "stored" and svc:download_url(rec, now);
		table.insert(lines, describe(rec, url or nil));
		if rec.state ~= "removed" then
			totals[rec.purpose] = (totals[rec.purpose] or 0) + (rec.stored or rec.size);
		end
	end
	if #list == 0 then
		table.insert(lines, "No uploads.");
	end
	for _, purpose in ipairs(svc.cfg.purpose_list) do
		local used = totals[purpose.name] or 0;
		if used > 0 or purpose.storage_quota < math.huge then
			table.insert(lines, ("%s uploads: %s stored%s"):format(purpose.name, bytes(used),
				purpose.storage_quota < math.huge
					and (", %s left"):format(bytes(math.max(0, purpose.storage_quota - used))) or ""));
		end
	end
	return table.concat(lines, "\n"), list;
end

local function completed(text)
	return { status = "completed", info = text };
end

local function refused(text)
	return { status = "error", error = { type = "cancel", condition = "forbidden", text = text } };
end

local TAKEDOWN_FORM = dataforms.new {
	title = "Take down files by URL";
	instructions = "Any form of a file's link: its download or upload URL, with or without its query.";
	{ name = "FORM_TYPE", type = "hidden", value = NODE .. "takedown" };
	{ name = "urls", type = "text-multi", label = "Links, one a line", required = true };
};

local USER_FORM = dataforms.new {
	title = "Uploads of a user";
	{ name = "FORM_TYPE", type = "hidden", value = NODE .. "admin" };
	{ name = "user", type = "jid-single", label = "The user's address", required = true };
};

-- The reply of a step that does not answer a form: a cancel, or the form (at the first step,
-- or again when a step came without it); nil when data carries the filled-in form.
local function form_step(data, form)
	if data.action == "cancel" then
		return { status = "canceled" };
	elseif not data.form then
		return { status = "executing", actions = { "complete" }, form = form }, "executing";
	end
end

-- A command of one form: the form first, then answer(fields, data).
local function with_form(form, answer)
	return function (_, data)
		local reply, state = form_step(data, form);
		if reply then
			return reply, state;
		end
		return answer(form:data(data.form), data);
	end;
end

-- A command about the user an admin names: answer(owner, data) with that bare JID.
local function about_user(answer)
	return with_form(USER_FORM, function (fields, data)
		local user = fields.user and jid.prep(fields.user);
		if not user then
			return refused("That is not a JID");
		end
		return answer(jid.bare(user), data);
	end);
end

local function new(ctx)
	local function list(_, data)
		local owner = jid.bare(data.from);
		if not ctx.may_upload(owner) then
			return refused("Only users of this service have uploads here");
		end
		local text, err = listing(ctx, owner, true, os.time());
		return text and completed(text) or refused("Your uploads cannot be read now: " .. tostring(err));
	end

	local function delete(_, data)
		local owner = jid.bare(data.from);
		if not ctx.may_upload(owner) then
			return refused("Only users of this service have uploads here");
		end
		local mine, err = ctx.records:of(owner);
		if not mine then
			return refused("Your uploads cannot be read now: " .. tostring(err));
		end
		local by_key, options = {}, {};
		for i = #mine, 1, -1 do
			local rec = mine[i];
			if rec.state == "stored" or rec.state == "pending" then
				by_key[rec.key] = rec;
				if #options < MAX_OPTIONS then
					table.insert(options, { label = describe(rec), value = rec.key });
				end
			end
		end
		local form = dataforms.new {
			title = "Delete uploads";
			instructions = "The files you choose are deleted from the server, and their links stop working.";
			{ name = "FORM_TYPE", type = "hidden", value = NODE .. "delete" };
			{ name = "files", type = "list-multi", label = "Files to delete", options = options };
		};
		local reply, state = form_step(data, form);
		if reply then
			if state and #options == 0 then   -- a form with nothing to choose
				return completed("You have no uploads to delete.");
			end
			return reply, state;
		end
		local fields = form:data(data.form);
		local chosen = {};
		for _, key in ipairs(fields.files or {}) do
			table.insert(chosen, by_key[key]);   -- only the user's own: any other key finds nothing
		end
		local n = ctx.records:delete(chosen, "user");
		ctx.wake();
		return completed(("%d file%s deleted."):format(n, n == 1 and "" or "s"));
	end

	local admin_list = about_user(function (owner)
		local text, err = listing(ctx, owner, false, os.time());
		return text and completed(owner .. ":\n" .. text) or refused("Uploads cannot be read now: " .. tostring(err));
	end);

	local admin_delete = about_user(function (owner)
		local files, err = ctx.records:of(owner);
		if not files then
			return refused("Uploads cannot be read now: " .. tostring(err));
		end
		local n = ctx.records:delete(files, "admin");
		ctx.wake();
		return completed(("%d file%s of %s deleted."):format(n, n == 1 and "" or "s", owner));
	end);

	local takedown = with_form(TAKEDOWN_FORM, function (fields, data)
		local lines = {};
		for url in (fields.urls or ""):gmatch("[^\n]+") do
			if url:find("%S") then
				local done, why = ctx.take_down(url, jid.bare(data.from));
				table.insert(lines, done or ("nothing deleted: " .. why));
			end
		end
		return completed(#lines > 0 and table.concat(lines, "\n") or "No link given.");
	end);

	return {
		{ "My uploads", NODE .. "list", list, "any" },
		{ "Delete uploads", NODE .. "delete", delete, "any" },
		{ "Uploads of a user", NODE .. "admin-list", admin_list, "admin" },
		{ "Delete all uploads of a user", NODE .. "admin-delete", admin_delete, "admin" },
		{ "Take down files by URL", NODE .. "takedown", takedown, "admin" },
	};
end

return { new = new, describe = describe, listing = listing };
