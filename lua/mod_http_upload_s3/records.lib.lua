-- What the server signed, and who owns it: a record per granted slot, in
-- Prosody's storage, the object key as the key, and the request as
-- mod_http_file_share keeps its uploads (file name, size, content type, when),
-- with what this module knows besides.
--
-- An owner's records are in pages of at most PAGE_SIZE, each a table in a map
-- store under "<owner>#<page>", and an index (a keyval store under the owner)
-- says how many pages there are: one user's files are listed, counted and
-- deleted without reading anyone else's, and a flush writes each page that
-- changed in one set_keys (one transaction on SQL), so that what a write costs
-- stays the same however many files an owner has.
--
-- Pure: the stores come in (module:open_store("upload_records", "map") and the
-- same as "keyval", and "upload_record_pages"), and every write goes through
-- flush(), behind the slot path, which only touches memory. A write that fails
-- stays for the next flush.
--
--   local r = records.new(map, keyval, index)
--   r:add(rec)                 rec: { key, owner, filename, size, content_type, purpose, at, due, check_at }
--   r:flush([more]) -> failures, first problem   more(): whether there is time for another write
--                                              (a database blocks the server while it writes)
--   r:load()                   at start: every owner's usage, the checks and deletions still to do
--                              (throws when the store does not answer: call again); r:loaded() -> bool
--   r:usage(owner, purpose) -> bytes stored or on their way (size asked until the upload is confirmed)
--   r:of(owner) -> records, oldest first | nil, problem; r:owners() -> owners with records | nil, problem
--   r:visit_all(visit) -> the first problem in reading: visit(rec) for every record, until it returns true
--   r:due_checks(now [, n]) -> (up to n) records whose upload URL has expired, still to be looked for
--                              in the bucket; the rest stay for later
--   r:recheck(rec, at), r:confirm(rec, size), r:vanish(rec)   later; the object is there; it never came
--   r:delete(recs, reason) -> count            to be deleted from the bucket; after a takedown the
--                                              record stays, "removed", for the owner's list to show
--   r:deletions(n) -> up to n records to delete; r:deleted(rec); r:retry(rec)
--   r:expired(now) -> ephemeral records past their due time (kept in memory, to go within the minute)
--   r:overdue(now) -> records past their due time, stored or pending, and the first problem in reading them
--   r:find(key) -> the record of an object key, whoever owns it | nil (reads every owner's: an admin's
--                  rare question); r:file(key, purpose) -> that, or a stand-in for a file from before records
--   r:sent_in(rec, ids)        the message ids (origin-id, id, a room's stanza-id) the owner sent it under
--   records.sent_under(recs, id) -> those of the records (a table of them) sent under that id
--   r:totals() -> records, bytes               what every owner stores, for the statistics
--   r:state(), r:restore(state)                across a module reload

local M = {};

-- Uploads waiting to be looked for in the bucket, at most: past it, a record stays
-- "pending" in storage and is looked for after the next start (a bound on memory in a flood).
local MAX_CHECKS = 100000;

local PAGE_SIZE = 256;

-- What is stored of a record (the key and the owner are where it is stored): one line,
-- these fields in this order, separated by tabs, "" for none; the message ids separated by
-- spaces. A string costs Prosody's internal storage one escaping pass to write, where a table
-- costs a pass for each field's name and value (measured: a third less CPU), and SQL keeps it
-- as it is instead of as JSON. No field holds a tab: file names and content types
-- with control characters are refused, the others are numbers or this module's words, and
-- message ids are escaped.
local FIELDS = { "filename", "size", "content_type", "purpose", "at", "due", "check_at", "state", "stored", "reason",
	"messages" };
local NUMBERS = { size = true, at = true, due = true, check_at = true, stored = true };

-- Message ids, space-separated, each with "%", white space and control characters escaped.
local function ids_text(ids)
	local escaped = {};
	for i, id in ipairs(ids) do
		escaped[i] = id:gsub("[%%%s%c]", function (c) return ("%%%02X"):format(c:byte()); end);
	end
	return table.concat(escaped, " ");
end

local function ids_of(text)
	local ids = {};
	for word in text:gmatch("%S+") do
		table.insert(ids, (word:gsub("%%(%x%x)", function (hex) return string.char(tonumber(hex, 16)); end)));
	end
	return ids;
end

local function to_value(rec)
	local line = {};
	for i, field in ipairs(FIELDS) do
		local value = rec[field];
		line[i] = field == "messages" and value and ids_text(value) or value or "";
	end
	return table.concat(line, "\t");
end

local function from_value(key, value, owner, page)
	local rec = { key = key, owner = owner, page = page, written = true };
	local i = 0;
	for text in (value .. "\t"):gmatch("([^\t]*)\t") do
		i = i + 1;
		local field = FIELDS[i];
		if field and text ~= "" then
			rec[field] = field == "messages" and ids_of(text) or NUMBERS[field] and tonumber(text) or text;
		end
	end
	rec.purpose, rec.state = rec.purpose or "message", rec.state or "pending";
	return rec;
end

local records = {};
records.__index = records;

function M.new(map, keyval, index)
	return setmetatable({
		map = map, keyval = keyval, index = index,
		pages = {},        -- owner -> { n = pages (as the index has it), fill = records in the last }
		dirty = {},        -- key -> record to write (appended if new, set if changed, deleted if gone)
		bytes = {},        -- owner -> purpose -> bytes stored or on their way
		n_records = 0, n_bytes = 0,
		checks = {},       -- records whose upload is still to be looked for, by check_at
		timed = {},        -- ephemeral records, to be deleted at their due time
		to_delete = {},    -- records to delete from the bucket, in order
		is_loaded = false, -- whether load() has read the store
		early = {},        -- keys added before that: counted already, whether written yet or not
		-- key -> the one record object memory holds for it: every record comes from add() or of(),
		-- which put it here, so what a listing changes is what the queues hold
		live = setmetatable({}, { __mode = "v" }),
	}, records);
end

-- The bytes a record counts: what is stored once confirmed, what was asked before;
-- nothing once its owner or an admin asked for it to go.
local function counted(rec)
	if rec.state == "deleting" or rec.state == "removed" then
		return 0;
	end
	return rec.stored or rec.size;
end

function records:count(rec, sign)
	if rec.transient then
		return;   -- never counted: a file from before records
	end
	local u = self.bytes[rec.owner];
	if not u then
		u = {};
		self.bytes[rec.owner] = u;
	end
	u[rec.purpose] = math.max(0, (u[rec.purpose] or 0) + sign * counted(rec));
	self.n_bytes = math.max(0, self.n_bytes + sign * counted(rec));
	if rec.state ~= "removed" then
		self.n_records = math.max(0, self.n_records + sign);
	end
end

function records:totals()
	return self.n_records, self.n_bytes;
end

function records:add(rec)
	rec.state = "pending";
	self.live[rec.key] = rec;
	if not self.is_loaded then
		self.early[rec.key] = true;
	end
	self.dirty[rec.key] = rec;
	self:count(rec, 1);
	if #self.checks < MAX_CHECKS then
		table.insert(self.checks, rec);
	end
	if rec.purpose == "ephemeral" then
		table.insert(self.timed, rec);
	end
end

function records:usage(owner, purpose)
	local u = self.bytes[owner];
	return u and u[purpose] or 0;
end

local function page_of(owner, page)
	return owner .. "#" .. page;
end

-- An owner's pages: how many (the index), and how many records the last holds, counted
-- when first asked; nil and why when the store does not answer.
function records:pages_of(owner)
	local pages = self.pages[owner];
	if not pages then
		local stored, err = self.index:get(owner);
		if stored == nil and err then
			return nil, err;
		end
		pages = { n = stored and stored.n or 0, fill = PAGE_SIZE };
		if pages.n > 0 then
			local last;
			last, err = self.keyval:get(page_of(owner, pages.n));
			if last == nil and err then
				return nil, err;
			end
			pages.fill = 0;
			for _ in pairs(last or {}) do pages.fill = pages.fill + 1; end
		end
		self.pages[owner] = pages;
	end
	return pages;
end

-- Write what changed: each page's changes in one set_keys, new records at the
-- end of their owner's last page, the index when it grew; what cannot be
-- written, or for which more() says there is no time left, stays for the next time.
function records:flush(more)
	more = more or function () return true; end
	local failures, first = 0, nil;
	local function failed(err)
		failures, first = failures + 1, first or tostring(err);
	end
	-- each page's changes in one set_keys; false when there was no time for them all
	local function write(by_page)
		for name, list in pairs(by_page) do
			if not more() then
				return false;
			end
			local changes = {};
			for _, rec in ipairs(list) do
				changes[rec.key] = rec.gone and self.map.remove or to_value(rec);
			end
			local ok, err = self.map:set_keys(name, changes);
			if ok then
				for _, rec in ipairs(list) do
					rec.written = not rec.gone;
					self.dirty[rec.key] = nil;
				end
			else
				failed(err);
			end
		end
		return true;
	end
	local new, by_page = {}, {};
	for _, rec in pairs(self.dirty) do
		if rec.page then
			local page = page_of(rec.owner, rec.page);
			by_page[page] = by_page[page] or {};
			table.insert(by_page[page], rec);
		elseif not rec.gone then
			new[rec.owner] = new[rec.owner] or {};
			table.insert(new[rec.owner], rec);
		else
			self.dirty[rec.key] = nil;   -- never written: nothing to delete
		end
	end
	-- what has its place first (placed by an earlier flush that ran out of time), then the new owners':
	-- each owner's pages written as soon as the index has them, so that slots coming faster than the
	-- budget still see some written at every flush
	if not write(by_page) then
		return failures, first;
	end
	for owner, list in pairs(new) do
		if not more() then
			return failures, first;
		end
		local pages, err = self:pages_of(owner);
		if not pages then
			failed(err);
		else
			local grown = { n = pages.n, fill = pages.fill };
			table.sort(list, function (a, b) return a.at < b.at or (a.at == b.at and a.key < b.key); end);
			local placed = {};
			for _, rec in ipairs(list) do
				if grown.fill >= PAGE_SIZE then
					grown.n, grown.fill = grown.n + 1, 0;
				end
				grown.fill = grown.fill + 1;
				placed[rec] = grown.n;
			end
			local ok = true;
			if grown.n > pages.n then   -- a write to a page there already leaves the index as it is
				ok, err = self.index:set(owner, { n = grown.n });
			end
			if not ok then
				failed(err);
			else
				self.pages[owner] = grown;
				local its_pages = {};
				for rec, page in pairs(placed) do
					rec.page = page;
					local name = page_of(owner, page);
					its_pages[name] = its_pages[name] or {};
					table.insert(its_pages[name], rec);
				end
				if not write(its_pages) then
					return failures, first;
				end
			end
		end
	end
	return failures, first;
end

-- Every record of an owner, oldest first: what the store has, with what is still to be written over it.
function records:of(owner)
	local pages, err = self:pages_of(owner);
	if not pages then
		return nil, err;
	end
	local list, seen = {}, {};
	for page = 1, pages.n do
		local stored;
		stored, err = self.keyval:get(page_of(owner, page));
		if stored == nil and err then
			return nil, err;
		end
		for key, value in pairs(stored or {}) do
			local rec = self.live[key];
			if not rec then
				rec = from_value(key, value, owner, page);
				self.live[key] = rec;
			end
			seen[key] = true;
			if not rec.gone then table.insert(list, rec); end
		end
	end
	for key, rec in pairs(self.dirty) do
		if rec.owner == owner and not seen[key] and not rec.gone then
			table.insert(list, rec);
		end
	end
	table.sort(list, function (a, b) return a.at < b.at or (a.at == b.at and a.key < b.key); end);
	return list;
end

function records:owners()
	local owners, seen = {}, {};
	local listed, problem = pcall(function ()   -- a store may fail in users() or while iterating
		for owner in assert(self.index:users()) do
			seen[owner] = true;
			table.insert(owners, owner);
		end
	end);
	if not listed then
		return nil, problem;
	end
	for _, rec in pairs(self.dirty) do
		if not seen[rec.owner] then
			seen[rec.owner] = true;
			table.insert(owners, rec.owner);
		end
	end
	table.sort(owners);
	return owners;
end

-- At start: what every owner uses, and the checks and deletions a restart interrupted.
-- Everything is read before anything counts, so that a read that fails part way
-- leaves nothing to count twice when it is tried again.
function records:load()
	local stored = {};
	for _, owner in ipairs(assert(self:owners())) do
		for _, rec in ipairs(assert(self:of(owner))) do
			if not (self.dirty[rec.key] or self.early[rec.key]) then
				table.insert(stored, rec);
			end
		end
	end
	for _, rec in ipairs(stored) do
		self:count(rec, 1);
		if rec.state == "pending" then
			table.insert(self.checks, rec);
		elseif rec.state == "deleting" then
			table.insert(self.to_delete, rec);
		end
		if rec.purpose == "ephemeral" and (rec.state == "pending" or rec.state == "stored") then
			table.insert(self.timed, rec);
		end
	end
	self.is_loaded, self.early = true, {};
	table.sort(self.checks, function (a, b) return (a.check_at or 0) < (b.check_at or 0); end);
end

function records:loaded()
	return self.is_loaded;
end

function records:due_checks(now, n)
	local due, later = {}, {};
	local function sort(rec)
		table.insert((rec.check_at or 0) <= now and #due < (n or math.huge) and due or later, rec);
	end
	for _, rec in ipairs(self.checks) do
		if rec.gone then
			if rec.watched then   -- deleted while its upload URL lived: looked for once that has expired
				sort(rec);
			end   -- else deleted, or never came: nothing to look for
		elseif rec.state == "deleting" then
			table.insert(later, rec);   -- a takedown under way: looked at once it is done
		elseif rec.state == "pending" or rec.state == "removed" then   -- not deleted otherwise meanwhile
			sort(rec);
		end
	end
	self.checks = later;
	return due;
end

-- Look again later (the bucket did not answer).
function records:recheck(rec, at)
	rec.check_at = at;
	table.insert(self.checks, rec);
end

function records:confirm(rec, size)
	self:count(rec, -1);
	rec.state, rec.stored = "stored", size;
	self:count(rec, 1);
	if not rec.transient then
		self.dirty[rec.key] = rec;
	end
end

-- A file deleted while its upload URL still lived: looked for once more after that (its record gone).
function records:watch(rec)
	rec.watched = true;
	table.insert(self.checks, rec);
end

function records:vanish(rec)
	self:count(rec, -1);
	rec.gone = true;
	self.dirty[rec.key] = rec;
end

-- Why a record stays once its file is deleted: an admin's takedown, which the owner is shown.
local KEPT = { takedown = true };

function records:delete(list, reason)
	local n = 0;
	for _, rec in ipairs(list) do
		if not rec.gone and rec.state ~= "deleting" and rec.state ~= "removed" then
			-- before load(), only a slot granted since counts yet; load() counts this one no more
			local was_counted = self.is_loaded or self.early[rec.key];
			if was_counted then self:count(rec, -1); end
			rec.state, rec.reason = "deleting", reason;
			self:count(rec, 1);
			if not self.is_loaded and not rec.transient then self.early[rec.key] = true; end
			if not rec.transient then
				self.dirty[rec.key] = rec;
			end
			table.insert(self.to_delete, rec);
			n = n + 1;
		end
	end
	return n;
end

-- Ephemeral files whose time has come, in the order they are due.
function records:expired(now)
	local due, later = {}, {};
	for _, rec in ipairs(self.timed) do
		if not rec.gone and (rec.state == "pending" or rec.state == "stored") then
			table.insert(rec.due and rec.due <= now and due or later, rec);
		end
	end
	self.timed = later;
	return due;
end

-- Each record of every owner to visit(rec) until it returns true, reading owner by owner: one
-- whose records cannot be read is passed over. The first problem in reading them, if any.
function records:visit_all(visit)
	local owners, problem = self:owners();
	for _, owner in ipairs(owners or {}) do
		local list, err = self:of(owner);
		problem = problem or err;
		for _, rec in ipairs(list or {}) do
			if visit(rec) then
				return nil;
			end
		end
	end
	return problem;
end

-- Files past their due time, stored or on their way: for the module to delete where no
-- lifecycle rule does. Reads every owner's (once a day); an owner's that cannot be read
-- waits for the next time, and the first problem is returned with the rest.
function records:overdue(now)
	local due = {};
	local problem = self:visit_all(function (rec)
		if rec.due and rec.due <= now and (rec.state == "stored" or rec.state == "pending") then
			table.insert(due, rec);
		end
	end);
	return due, problem;
end

function records:find(key)
	if self.live[key] then
		return self.live[key];
	end
	local found;
	local problem = self:visit_all(function (rec)
		found = rec.key == key and rec or nil;
		return found;
	end);
	return found, problem;
end

-- The record of the file at key, or for a file the module signed before it kept
-- records, a stand-in: deleted like any other, never written.
function records:file(key, purpose)
	local found, problem = self:find(key);
	if found or problem then
		return found, problem;
	end
	return { key = key, owner = "", filename = key:match("[^/]*$"), size = 0, purpose = purpose,
		at = 0, state = "stored", transient = true };
end

function records:sent_in(rec, ids)
	local messages, seen = rec.messages or {}, {};
	for _, id in ipairs(messages) do seen[id] = true; end
	local before = #messages;
	for _, id in ipairs(ids) do
		if not seen[id] then
			seen[id] = true;
			table.insert(messages, id);
		end
	end
	if #messages > before then
		rec.messages = messages;
		self.dirty[rec.key] = rec;
	end
end

function M.sent_under(recs, id)
	local found = {};
	for _, rec in pairs(recs) do
		for _, sent in ipairs(rec.messages or {}) do
			if sent == id then
				table.insert(found, rec);
				break;
			end
		end
	end
	return found;
end

function records:deletions(n)
	local queue = self.to_delete;
	local batch = table.move(queue, 1, math.min(n, #queue), 1, {});
	self.to_delete = table.move(queue, #batch + 1, #queue, 1, {});   -- not table.remove(queue, 1): a whole account waits here
	return batch;
end

function records:deleted(rec)
	self:count(rec, -1);
	if KEPT[rec.reason] then
		rec.state = "removed";
		self:count(rec, 1);
	else
		rec.gone = true;
	end
	if not rec.transient then
		self.dirty[rec.key] = rec;
	end
end

-- A deletion the bucket refused or did not answer: in line again.
function records:retry(rec)
	table.insert(self.to_delete, rec);
end

function records:state()
	return { dirty = self.dirty, bytes = self.bytes, checks = self.checks, to_delete = self.to_delete,
		timed = self.timed, pages = self.pages, n_records = self.n_records, n_bytes = self.n_bytes,
		is_loaded = self.is_loaded, early = self.early, live = self.live };
end

function records:restore(state)
	for k, v in pairs(state) do self[k] = v; end
end

return M;
