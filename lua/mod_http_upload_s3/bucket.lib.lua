-- The bucket's settings this module owns: the public-read policy, the CORS
-- rule web clients need, and one lifecycle rule per purpose that expires.
-- Pure functions of a checked configuration (config.lib.lua) and of what the
-- bucket has now, so that setup, check and the tests share one source.
--
--   bucket.wanted(cfg, host) -> { policy = {statement...}, cors = {rule...}, lifecycle = {rule...} }
--   bucket.merge_policy(cfg, host, current_json|nil)   -> document|nil, changes, warnings
--   bucket.merge_cors(cfg, host, current_xml|nil)      -> body|nil, changes, warnings
--   bucket.merge_lifecycle(cfg, host, current_xml|nil) -> body|nil, changes, warnings
--   (nil with changes: the document should be deleted; no changes: leave it as it is)
--   bucket.as_json(cfg, host) -> the aws-cli JSON forms, for showing and for the docs
--
-- What a host's setup owns is marked with MARK and the host's name, in the
-- statement's Sid and the rules' IDs, so that hosts sharing a bucket (in
-- folders of their own) each keep theirs; it never touches the others.

local json = require "util.json";
local st = require "util.stanza";
local xml = require "util.xml";

local MARK = "HttpUploadS3";
local S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/";
local CORS_METHODS = { "PUT", "GET", "HEAD" };
local CORS_HEADERS = { "Content-Type" };   -- browsers set Content-Length themselves; the rest is in the URL
local CORS_MAX_AGE = 3600;

-- The marks of one host: a Sid may hold letters and digits only, a rule ID anything.
local function marks(host)
	return { sid = MARK .. "PublicRead" .. host:gsub("%W", ""), id = MARK .. " " .. host };
end

local function owned(id, mark)
	return type(id) == "string" and (id == mark or id:sub(1, #mark + 1) == mark .. " ");
end

-- The ARN of a folder's objects, for policies and for what check tells an admin to allow.
local function resource(cfg, prefix)
	return ("arn:aws:s3:::%s/%s*"):format(cfg.bucket, prefix);
end

-- What the configuration asks of the bucket, as plain tables.
local function wanted(cfg, host)
	local mark = marks(host);
	local public, lifecycle = {}, {};
	for _, purpose in ipairs(cfg.purpose_list) do
		if not purpose.presign_get and not cfg.get_url then
			table.insert(public, resource(cfg, purpose.key_prefix));
		end
		if purpose.expires_after then
			table.insert(lifecycle, { ID = mark.id .. " " .. purpose.name, Prefix = purpose.key_prefix,
				Days = purpose.expires_after });
		end
	end
	local policy = {};
	if #public > 0 then
		-- s3:GetObject only: never s3:ListBucket, the random keys are what keeps uploads private
		policy[1] = { Sid = mark.sid, Effect = "Allow", Principal = "*", Action = "s3:GetObject",
			Resource = public };
	end
	local cors = {};
	if cfg.cors_origins then
		cors[1] = { ID = mark.id, AllowedOrigins = cfg.cors_origins, AllowedMethods = CORS_METHODS,
			AllowedHeaders = CORS_HEADERS, ExposeHeaders = { "ETag" }, MaxAgeSeconds = CORS_MAX_AGE };
	end
	return { policy = policy, cors = cors, lifecycle = lifecycle };
end

-- Deep equality of decoded JSON or of the tables above.
local function same(a, b)
	if type(a) ~= "table" or type(b) ~= "table" then
		return a == b;
	end
	for k, v in pairs(a) do
		if not same(v, b[k]) then return false; end
	end
	for k in pairs(b) do
		if a[k] == nil then return false; end
	end
	return true;
end

local function list(v)
	return type(v) == "table" and v or { v };
end

---- policy (JSON) ---------------------------------------------------------------

-- Whether a statement lets anyone read objects under prefix (or list the bucket).
local function is_public_read(statement, cfg, prefix)
	local principal = statement.Principal;
	local anyone = principal == "*" or (type(principal) == "table" and list(principal.AWS)[1] == "*");
	if statement.Effect ~= "Allow" or not anyone then
		return false;
	end
	local reads = false;
	for _, action in ipairs(list(statement.Action)) do
		reads = reads or action == "*" or action == "s3:*" or action == "s3:GetObject" or action == "s3:Get*";
	end
	for _, r in ipairs(list(statement.Resource)) do
		local covered = r:match("^arn:aws:s3:::" .. cfg.bucket:gsub("%p", "%%%0") .. "/(.*)%*$");
		if reads and covered and prefix:sub(1, #covered) == covered then
			return true;
		end
	end
	return false;
end

local function merge_policy(cfg, host, current)
	local document = current and json.decode(current) or { Version = "2012-10-17", Statement = {} };
	if type(document) ~= "table" or type(document.Statement) ~= "table" then
		return nil, {}, { "the bucket's policy is not a JSON policy document; left as it is" };
	end
	local want, sid = wanted(cfg, host).policy, marks(host).sid;
	local kept, mine, changes, warnings = {}, {}, {}, {};
	for _, statement in ipairs(document.Statement) do
		if statement.Sid == sid then
			mine[statement.Sid] = statement;
		else
			table.insert(kept, statement);
		end
	end
	for _, statement in ipairs(want) do
		if not mine[statement.Sid] then
			table.insert(changes, ("policy: add %s, public s3:GetObject on %s"):format(statement.Sid,
				table.concat(statement.Resource, ", ")));
		elseif not same(mine[statement.Sid], statement) then
			table.insert(changes, ("policy: change %s to public s3:GetObject on %s"):format(statement.Sid,
				table.concat(statement.Resource, ", ")));
		end
		mine[statement.Sid] = nil;
		table.insert(kept, statement);
	end
	for old in pairs(mine) do
		table.insert(changes, ("policy: remove %s (no purpose is public any more)"):format(old));
	end
	local ephemeral = cfg.purposes.ephemeral;
	for _, statement in ipairs(ephemeral and kept or {}) do
		if is_public_read(statement, cfg, ephemeral.key_prefix) then
			table.insert(warnings, ("policy: statement %s makes the ephemeral folder %s public, so its files "
				.. "outlive expire-before: remove it by hand"):format(statement.Sid or "(without Sid)", ephemeral.key_prefix));
		end
	end
	if #changes == 0 then
		return nil, changes, warnings;
	end
	document.Statement = kept;
	document.Version = document.Version or "2012-10-17";
	return #kept > 0 and document or nil, changes, warnings;
end

---- CORS and lifecycle (XML) ---------------------------------------------------------

local CORS_LISTS = { AllowedOrigin = "AllowedOrigins", AllowedMethod = "AllowedMethods",
	AllowedHeader = "AllowedHeaders", ExposeHeader = "ExposeHeaders" };

local function cors_rule_from(el)
	local rule = { ID = el:get_child_text("ID"), MaxAgeSeconds = tonumber(el:get_child_text("MaxAgeSeconds")) };
	for tag, field in pairs(CORS_LISTS) do
		for child in el:childtags(tag) do
			rule[field] = rule[field] or {};
			table.insert(rule[field], child:get_text());
		end
	end
	return rule;
end

local function cors_element(rule)
	local el = st.stanza("CORSRule", { xmlns = S3_NS }):text_tag("ID", rule.ID);
	for _, tag in ipairs({ "AllowedOrigin", "AllowedMethod", "AllowedHeader", "ExposeHeader" }) do
		for _, value in ipairs(rule[CORS_LISTS[tag]] or {}) do
			el:text_tag(tag, value);
		end
	end
	return el:text_tag("MaxAgeSeconds", tostring(rule.MaxAgeSeconds));
end

local function lifecycle_rule_from(el)
	local filter = el:get_child("Filter");
	return { ID = el:get_child_text("ID"), Prefix = filter and filter:get_child_text("Prefix") or el:get_child_text("Prefix"),
		Days = tonumber((el:get_child("Expiration") or st.stanza("x")):get_child_text("Days")),
		Status = el:get_child_text("Status") };
end

local function lifecycle_element(rule)
	return st.stanza("Rule", { xmlns = S3_NS }):text_tag("ID", rule.ID)
		:tag("Filter"):text_tag("Prefix", rule.Prefix):up()
		:text_tag("Status", "Enabled")
		:tag("Expiration"):text_tag("Days", tostring(rule.Days)):up();
end

local function describe_lifecycle(rule)
	return ("%s: %s expires after %d day%s"):format(rule.ID, rule.Prefix, rule.Days, rule.Days == 1 and "" or "s");
end

-- The merge both XML documents share: keep what others own as it is (the
-- parsed elements are written back verbatim), replace what this module owns.
-- kind: the document's root and rule elements, how a rule is read from and
-- written to XML, compared and described, and the document's name.
local function merge_xml(kind, current, mark, want)
	local kept, mine, changes = {}, {}, {};
	if current then
		local ok, doc = pcall(xml.parse, current);
		if not ok or not doc then
			return nil, {}, { "the bucket's configuration is not XML; left as it is" };
		end
		for el in doc:childtags(kind.rule) do
			local rule = kind.from_xml(el);
			if owned(rule.ID, mark) then
				mine[rule.ID] = rule;
			else
				table.insert(kept, el);
			end
		end
	end
	for _, rule in ipairs(want) do
		local had = mine[rule.ID];
		if not had then
			table.insert(changes, ("%s: add %s"):format(kind.name, kind.describe(rule)));
		elseif not kind.same(had, rule) then
			table.insert(changes, ("%s: change %s (was %s)"):format(kind.name, kind.describe(rule), kind.describe(had)));
		end
		mine[rule.ID] = nil;
		table.insert(kept, kind.to_xml(rule));
	end
	local gone = {};   -- rules of this module's that the configuration no longer has, in a stable order
	for id in pairs(mine) do table.insert(gone, id); end
	table.sort(gone);
	for _, id in ipairs(gone) do
		table.insert(changes, ("%s: remove %s"):format(kind.name, kind.describe(mine[id])));
	end
	if #changes == 0 or #kept == 0 then
		return nil, changes, {};   -- as it is, or nothing left: delete the configuration
	end
	local parts = {};
	for i, el in ipairs(kept) do
		parts[i] = tostring(el);   -- a foreign rule as it came; each states the S3 namespace
	end
	return ("<%s xmlns='%s'>%s</%s>"):format(kind.root, S3_NS, table.concat(parts), kind.root), changes, {};
end

-- The same rule, whatever order the service lists its methods and origins in (RGW sorts them its own way).
local function same_cors_rule(had, rule)
	local function sorted(t)
		local copy = {};
		for i, v in ipairs(t or {}) do copy[i] = v:lower(); end
		table.sort(copy);
		return copy;
	end
	for _, field in pairs(CORS_LISTS) do
		if not same(sorted(had[field]), sorted(rule[field])) then
			return false;
		end
	end
	return had.MaxAgeSeconds == rule.MaxAgeSeconds;
end

local CORS = {
	name = "cors", root = "CORSConfiguration", rule = "CORSRule",
	from_xml = cors_rule_from, to_xml = cors_element, same = same_cors_rule,
	describe = function (rule)
		return ("%s for origins %s"):format(rule.ID, table.concat(rule.AllowedOrigins or {}, " "));
	end,
};

local LIFECYCLE = {
	name = "lifecycle", root = "LifecycleConfiguration", rule = "Rule",
	from_xml = lifecycle_rule_from, to_xml = lifecycle_element, describe = describe_lifecycle,
	same = function (had, rule)
		return had.Prefix == rule.Prefix and had.Days == rule.Days and had.Status == "Enabled";
	end,
};

local function merge_cors(cfg, host, current)
	return merge_xml(CORS, current, marks(host).id, wanted(cfg, host).cors);
end

local function merge_lifecycle(cfg, host, current)
	return merge_xml(LIFECYCLE, current, marks(host).id, wanted(cfg, host).lifecycle);
end

---- showing ------------------------------------------------------------------------

-- The aws-cli JSON form of what this module wants, for --dry-run and the docs.
local function as_json(cfg, host)
	local w = wanted(cfg, host);
	local lifecycle = {};
	for i, rule in ipairs(w.lifecycle) do
		lifecycle[i] = { ID = rule.ID, Filter = { Prefix = rule.Prefix }, Status = "Enabled",
			Expiration = { Days = rule.Days } };
	end
	return {
		policy = #w.policy > 0 and json.encode_ordered({ Version = "2012-10-17", Statement = w.policy }) or nil,
		cors = #w.cors > 0 and json.encode_ordered({ CORSRules = w.cors }) or nil,
		lifecycle = #lifecycle > 0 and json.encode_ordered({ Rules = lifecycle }) or nil,
	};
end

return {
	resource = resource;
	wanted = wanted;
	merge_policy = merge_policy;
	merge_cors = merge_cors;
	merge_lifecycle = merge_lifecycle;
	as_json = as_json;
	same = same;
};
