-- Registrable domains (eTLD+1) by the Public Suffix List, so that check can
-- tell when downloads are served from the same site as the chat service.
-- Pure: the list comes in as text (Debian's publicsuffix package installs it).
--
--   local list = publicsuffix.new(text | nil)   -- nil: every last label is a suffix
--   list:registrable("files.example.co.uk") -> "example.co.uk"; nil for a suffix itself

local M = {};

local list = {};
list.__index = list;

function M.new(text)
	local rules = {};
	for line in (text or ""):gmatch("[^\r\n]+") do
		local rule = line:match("^%s*([^%s/][^%s]*)");   -- a rule is the line's first word; // starts a comment
		if rule then
			rules[rule:lower()] = true;
		end
	end
	return setmetatable({ rules = rules }, list);
end

-- The public suffix's length in labels for labels[1..n], by the list's
-- algorithm: the longest matching rule wins, an exception (!rule) wins over
-- all, and a label no rule names is a suffix of its own.
function list:suffix_labels(labels)
	local longest = 1;
	for i = #labels, 1, -1 do
		local name = table.concat(labels, ".", i);
		local n = #labels - i + 1;
		if self.rules["!" .. name] then
			return n - 1;
		end
		local parent = i < #labels and table.concat(labels, ".", i + 1) or nil;
		if self.rules[name] or (parent and self.rules["*." .. parent]) then
			longest = n;
		end
	end
	return longest;
end

function list:registrable(host)
	host = host:lower():gsub("%.$", "");
	if host:find("^%[") or host:find("^[%d.]+$") then
		return host;   -- an IP address is a site of its own
	end
	local labels = {};
	for label in host:gmatch("[^.]+") do table.insert(labels, label); end
	local suffix = self:suffix_labels(labels);
	if #labels <= suffix then
		return nil;
	end
	return table.concat(labels, ".", #labels - suffix);
end

return M;
