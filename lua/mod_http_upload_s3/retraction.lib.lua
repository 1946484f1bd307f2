-- A retracted message takes its file with it: what the module reads of a
-- local user's messages on their way out, and of a room's copy coming back.
-- Pure functions of stanzas (util.stanza), so busted tests them without a server.
--
--   local watch = retraction.watcher(bases)  bases: how this service's download links begin
--   watch:links(stanza) -> the links to this service in the body or a XEP-0066 <x>, or nil (most
--                          messages: one plain find in the body, nothing more)
--   retraction.ids(stanza) -> the ids a message goes by: its XEP-0359 origin-id, its id
--   retraction.retracts(stanza) -> the id a retraction names (XEP-0424: urn:xmpp:message-retract:1,
--                                  or the older urn:xmpp:fasten:0 form), or nil
--   retraction.stanza_id(stanza, by) -> the XEP-0359 stanza-id a room (by) gave a message, or nil

local NS_RETRACT = "urn:xmpp:message-retract:1";
local NS_RETRACT_0 = "urn:xmpp:message-retract:0";
local NS_FASTEN = "urn:xmpp:fasten:0";
local NS_SID = "urn:xmpp:sid:0";
local NS_OOB = "jabber:x:oob";

local MAX_LINKS = 50;   -- links read of one message: what a message of thousands costs is bounded

local watcher = {};
watcher.__index = watcher;

local function watcher_of(bases)
	return setmetatable({ bases = bases }, watcher);
end

-- Every link in text that begins with one of the bases, up to white space or
-- what usually closes a link in prose (<, >, ", ').
local function links_in(text, bases, found)
	for _, base in ipairs(bases) do
		local at = text:find(base, 1, true);
		while at and #found < MAX_LINKS do
			local link = text:match("^[^%s<>\"']+", at);
			table.insert(found, link);
			at = text:find(base, at + #link, true);
		end
	end
end

function watcher:links(stanza)
	local body = stanza:get_child_text("body");
	local oob = stanza:get_child("x", NS_OOB);
	if not (body and self:mentions(body)) and not oob then
		return nil;
	end
	local found = {};
	if body then
		links_in(body, self.bases, found);
	end
	local url = oob and oob:get_child_text("url");
	if url then
		links_in(url, self.bases, found);
	end
	return #found > 0 and found or nil;
end

function watcher:mentions(text)
	for _, base in ipairs(self.bases) do
		if text:find(base, 1, true) then
			return true;
		end
	end
	return false;
end

local function ids(stanza)
	local list = {};   -- an empty id names no message
	local origin = stanza:get_child("origin-id", NS_SID);
	if origin and origin.attr.id and origin.attr.id ~= "" then
		table.insert(list, origin.attr.id);
	end
	if stanza.attr.id and stanza.attr.id ~= "" and stanza.attr.id ~= list[1] then
		table.insert(list, stanza.attr.id);
	end
	return list;
end

local function retracts(stanza)
	local retract = stanza:get_child("retract", NS_RETRACT);
	if retract then
		return retract.attr.id;
	end
	local apply_to = stanza:get_child("apply-to", NS_FASTEN);
	if apply_to and apply_to:get_child("retract", NS_RETRACT_0) then
		return apply_to.attr.id;
	end
end

local function stanza_id(stanza, by)
	for tag in stanza:childtags("stanza-id", NS_SID) do
		if tag.attr.by == by then
			return tag.attr.id;
		end
	end
end

return {
	watcher = watcher_of;
	ids = ids;
	retracts = retracts;
	stanza_id = stanza_id;
};
