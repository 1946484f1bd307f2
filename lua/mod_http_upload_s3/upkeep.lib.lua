-- The work behind the slots, a round at a time in the background: what local
-- users' messages said about their files (noted on their way out, matched with
-- the records here, where a storage read is no harm), whether each upload
-- arrived once its upload URL expired, and the deletions the records ask for,
-- in batches, backing off while the bucket fails. No Prosody inside: the
-- records, the S3 client, the clock and where to report come from the caller,
-- so busted runs rounds against a bucket of its own.
--
--   local keeper = upkeep.new(recs, report)
--       report.log(level, format, ...); report.deleted(reason), report.delete_failures(n): for the statistics
--   keeper:note(item)   { owner =, keys =, ids = }: the owner sent links to these files under these ids;
--                       { owner =, retracted = id }: the owner retracted the message with that id
--   keeper:round(svc, client, now)   svc: the active service (its configuration and rules); client: s3.lib's

local records = module:require "records";
local s3 = module:require "s3";

-- Notes waiting for the next round, at most: past it, messages go unwatched until it has run.
local MAX_NOTES = 10000;
-- Of them, one owner's: one user's flood of messages cannot crowd out another's retraction.
local MAX_NOTES_PER_OWNER = 1000;

-- Uploads looked for in the bucket in one round, at most: a flood's checks, a HEAD each, take
-- their time over the rounds after it rather than hold up what shares the background (credentials).
local MAX_LOOKS = 200;

local keeper = {};
keeper.__index = keeper;

local function new(recs, report)
	return setmetatable({ records = recs, report = report, notes = {}, noted = {}, retry_at = 0, failures = 0 }, keeper);
end

function keeper:note(item)
	local mine = self.noted[item.owner] or 0;
	if #self.notes < MAX_NOTES and mine < MAX_NOTES_PER_OWNER then
		self.noted[item.owner] = mine + 1;
		table.insert(self.notes, item);
	end
end

-- The records each note is about, in order, each owner's read once: only the owner's
-- own files are marked or deleted. The notes of an owner whose records the storage
-- does not give wait for a later round.
function keeper:take_notes()
	local batch, files_of = self.notes, {};
	self.notes, self.noted = {}, {};
	for _, item in ipairs(batch) do
		local files = files_of[item.owner];
		if files == nil then
			local list = self.records:of(item.owner);
			files = list and {} or false;
			for _, rec in ipairs(list or {}) do files[rec.key] = rec; end
			files_of[item.owner] = files;
		end
		if not files then
			self:note(item);
		elseif item.retracted then
			local gone = records.sent_under(files, item.retracted);
			if self.records:delete(gone, "retraction") > 0 then
				self.report.log("info", "%s retracted a message; deleting the %d uploaded files it carried",
					item.owner, #gone);
			end
		else
			for _, key in ipairs(item.keys) do
				if files[key] then
					self.records:sent_in(files[key], item.ids);
				end
			end
		end
	end
end

-- Whether the upload of each slot whose PUT URL has expired arrived: the record
-- then holds the size stored; a slot never used goes, and its bytes count no more.
-- A file deleted (or taken down) while its PUT URL still lived, and that came back,
-- goes again. A bucket that will not say (403 for a missing object, without
-- s3:ListBucket) leaves that record pending, asked of again hourly.
function keeper:confirm_uploads(svc, client, now)
	local due = self.records:due_checks(now, MAX_LOOKS);
	for i, rec in ipairs(due) do
		local size, problem, status = client:size(rec.key);
		if size ~= nil and self.unanswered then
			self.report.log("info", "The bucket answers again whether uploads arrived");
			self.unanswered = false;
		end
		if size == nil and not (status and status < 500) then   -- the bucket does not answer: this one and the rest in a minute
			for j = i, #due do
				self.records:recheck(due[j], now + 60);
			end
			if not self.unanswered then   -- said once, when it starts
				self.report.log("warn", "Could not ask the bucket whether uploads arrived: %s; asking again in a minute",
					problem);
			end
			self.unanswered = true;
			return;
		elseif size == nil then   -- the bucket answered, about this key only (403: no s3:ListBucket): the rest are asked
			if not self.refused then
				self.report.log("warn", "The bucket will not say whether an upload arrived: %s; asking again in an hour",
					problem);
				self.refused = true;
			end
			self.records:recheck(rec, now + 3600);
		elseif rec.state == "deleting" then
			-- deleted meanwhile: the deletion under way sees to the file, and once it is done
			-- (the record gone), to what the upload URL brought after it
			if rec.gone and rec.watched and size then
				self.report.log("info", "An upload came after its file was deleted; deleting it");
				self.records:retry(rec);
			end
		elseif rec.state == "removed" then
			if size then
				self.report.log("info", "A file taken down came back through its upload URL; deleting it again");
				self.records:confirm(rec, size);   -- counted as stored, then as deleting
				self.records:delete({ rec }, "takedown");
			end
		elseif size then
			self.records:confirm(rec, size);
		else
			self.records:vanish(rec);
			local purpose = svc.cfg.purposes[rec.purpose];
			if purpose then
				svc.rules:refund(rec.owner, purpose, rec.size, rec.at, now);
			end
		end
	end
end

-- Deletions in batches of up to s3.MAX_DELETE keys; only a key the bucket says it
-- deleted loses its record. A bucket that fails is tried again later, sooner at first.
function keeper:delete_files(client, now)
	if now < self.retry_at then
		return;
	end
	while true do
		local batch = self.records:deletions(s3.MAX_DELETE);
		if #batch == 0 then
			break;
		end
		local keys = {};
		for i, rec in ipairs(batch) do keys[i] = rec.key; end
		local deleted, failed = client:delete_objects(keys);
		local left = 0;
		for _, rec in ipairs(batch) do
			if deleted and deleted[rec.key] then
				if not rec.gone then
					self.records:deleted(rec);
					self.report.deleted(rec.reason or "user");
				end
				if rec.gone and rec.stored == nil and (rec.check_at or 0) > now then
					-- its upload URL still lives: what it brings later is deleted in turn
					self.records:watch(rec);
				end
			else
				self.records:retry(rec);
				left = left + 1;
			end
		end
		if left > 0 then
			self.report.delete_failures(left);
			self.failures = self.failures + 1;
			self.retry_at = now + math.min(300, 5 * 2 ^ (self.failures - 1));
			if self.failures == 1 then
				local problem = deleted and ("%d keys refused, e.g. %s"):format(left, select(2, next(failed)) or "?")
					or failed;
				self.report.log("warn", "Could not delete %d uploaded files from the bucket: %s; retrying", left,
					problem);
			end
			return;
		end
	end
	if self.failures > 0 then
		self.report.log("info", "Deleting uploaded files from the bucket works again");
	end
	self.failures = 0;
end

function keeper:round(svc, client, now)
	self:take_notes();
	self:confirm_uploads(svc, client, now);
	self:delete_files(client, now);
end

return { new = new, MAX_NOTES = MAX_NOTES, MAX_NOTES_PER_OWNER = MAX_NOTES_PER_OWNER, MAX_LOOKS = MAX_LOOKS };
