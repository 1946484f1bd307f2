-- XEP-0363 slot requests: parsing, strict field checks and replies.
-- Pure functions of their arguments, so busted can test them without a server.
--
--   request.parse(<request/>) -> { filename, size, content_type, purpose, expire_before, malformed }
--     (the texts as sent; purpose "message" when none is given; malformed: why the request
--     cannot be read, a field or a purpose given twice)
--   request.check_filename(name) -> nil | why, request.parse_size(text) -> size | nil, "format" | "too-large",
--   request.check_content_type(type) -> nil | why
--   request.slot_reply(stanza, ns, put_url, get_url) -> the result stanza

local st = require "util.stanza";

local NS = "urn:xmpp:http:upload:0";
local NS_LEGACY = "urn:xmpp:http:upload";
local NS_PURPOSE = "urn:xmpp:http:upload:purpose:0"; -- XEP-0363 1.2

local MAX_FILENAME = 255; -- bytes; longer names are refused, not truncated

-- The text of the only child of that name, or nil and whether there were several.
local function only_child_text(request, name)
	local found, several;
	for child in request:childtags(name) do
		several = found ~= nil;
		found = child;
	end
	if several then
		return nil, true;
	end
	return found and found:get_text();
end

-- The fields as its namespace spells them: attributes for :0, elements (each at most once) for the legacy one.
local function fields_of(request)
	if request.attr.xmlns == NS then
		return request.attr.filename, request.attr.size, request.attr["content-type"];
	end
	local fields = {};
	for i, name in ipairs({ "filename", "size", "content-type" }) do
		local text, several = only_child_text(request, name);
		if several then
			return nil, nil, nil, "Request has more than one <" .. name .. ">";
		end
		fields[i] = text;
	end
	return fields[1], fields[2], fields[3];
end

-- The upload purpose (XEP-0363 1.2): its element, or nil and whether there were several.
local function purpose_of(request)
	local purpose;
	for _, child in ipairs(request.tags) do   -- most requests have no child: no iterator to make
		if child.attr.xmlns == NS_PURPOSE then
			if purpose then
				return nil, true;
			end
			purpose = child;
		end
	end
	return purpose;
end

local function parse(request)
	local filename, size, content_type, malformed = fields_of(request);
	if malformed then
		return { malformed = malformed };
	end
	local purpose, several = purpose_of(request);
	if several then
		return { malformed = "Request has more than one upload purpose" };
	end
	return {
		filename = filename, size = size, content_type = content_type,
		purpose = purpose and purpose.name or "message",
		expire_before = purpose and purpose.attr["expire-before"],
	};
end

-- Code points that make a name display differently from what it is:
-- bidi overrides and isolates, direction marks, and the Arabic letter mark.
local function is_deceptive(cp)
	return (cp >= 0x202A and cp <= 0x202E) or (cp >= 0x2066 and cp <= 0x2069)
		or cp == 0x200E or cp == 0x200F or cp == 0x061C;
end

-- Code points that show as nothing, or as space: a name of only these (and
-- dots) has no name in it. White_Space, and the invisible format characters.
local function is_blank(cp)
	return cp == 0x20 or (cp >= 0x09 and cp <= 0x0D) or cp == 0x85 or cp == 0xA0 or cp == 0xAD
		or cp == 0x34F or cp == 0x115F or cp == 0x1160 or cp == 0x1680 or cp == 0x180E
		or (cp >= 0x2000 and cp <= 0x200F) or cp == 0x2028 or cp == 0x2029 or cp == 0x202F
		or (cp >= 0x205F and cp <= 0x2064) or cp == 0x3000 or cp == 0x3164 or cp == 0xFEFF or cp == 0xFFA0;
end

-- nil when the name is acceptable, else why not (for the error's <text>).
local function check_filename(name)
	if not name or name == "" then
		return "File name missing";
	elseif #name > MAX_FILENAME then
		return "File name longer than " .. MAX_FILENAME .. " bytes";
	elseif name:find("[/\\]") then
		return "File name contains a path separator";
	elseif name:find("^[%s.]+$") then
		return "File name has no name in it";
	elseif not name:find("[%c\127-\255]") then
		return nil; -- printable ASCII: nothing more to look at
	elseif not utf8.len(name) then
		return "File name is not valid UTF-8";
	end
	local visible = false;
	for _, cp in utf8.codes(name) do
		if cp < 0x20 or (cp >= 0x7F and cp <= 0x9F) then
			return "File name contains control characters";
		elseif is_deceptive(cp) then
			return "File name contains bidirectional control characters";
		end
		visible = visible or not (cp == 0x2E or is_blank(cp));
	end
	if not visible then
		return "File name has no name in it";
	end
end

-- Decimal digits only: no sign, space, hex, exponent or fraction, and no
-- float conversion that could round. Returns the size, or nil and "format"
-- or "too-large" (more digits than any allowed size has).
local function parse_size(text)
	if not text or not text:find("^%d+$") then
		return nil, "format";
	elseif #text > 15 then -- more digits than a double holds exactly, unless they are leading zeros
		text = text:gsub("^0+", "");
		if #text > 15 then
			return nil, "too-large";
		end
	end
	return math.tointeger(tonumber(text ~= "" and text or "0"));
end

-- RFC 6838 type/subtype, optionally with RFC 9110 parameters.
local TOKEN = "[%w!#$&%-%^_.+]+";
local TYPE_SUBTYPE = "^" .. TOKEN .. "/" .. TOKEN .. "(.*)$";
local QUOTED_PARAMETER = "^ *; *" .. TOKEN .. "=(%b\"\")(.*)$";
local TOKEN_PARAMETER = "^ *; *" .. TOKEN .. "=(" .. TOKEN .. ")(.*)$";
local function check_content_type(ctype)
	if #ctype > 255 then
		return "Content type longer than 255 bytes";
	end
	local rest = ctype:match(TYPE_SUBTYPE);
	if not rest then
		return "Content type is not type/subtype";
	end
	while rest ~= "" do
		local value, tail = rest:match(QUOTED_PARAMETER);
		if not value then
			value, tail = rest:match(TOKEN_PARAMETER);
		end
		if not value or value:find("[%c\128-\255]") then
			return "Content type has malformed parameters";
		end
		rest = tail;
	end
end

-- <slot/> in the request's namespace: attributes for :0, text for the legacy one.
local function slot_reply(stanza, ns, put_url, get_url)
	local reply = st.reply(stanza):tag("slot", { xmlns = ns });
	if ns == NS then
		reply:tag("put", { url = put_url }):up():tag("get", { url = get_url }):up();
	else
		reply:text_tag("put", put_url):text_tag("get", get_url);
	end
	return reply:reset();
end

return {
	NS = NS;
	NS_LEGACY = NS_LEGACY;
	NS_PURPOSE = NS_PURPOSE;
	parse = parse;
	check_filename = check_filename;
	parse_size = parse_size;
	check_content_type = check_content_type;
	slot_reply = slot_reply;
};
