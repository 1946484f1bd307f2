-- The bucket's settings this module owns: the public-read policy, the deny
-- statements that keep an upload URL to one plain upload, the CORS rule web
-- clients need, and one lifecycle rule per purpose that expires.
-- Pure functions of a checked configuration (config.lib.lua) and of what the
-- bucket has now, so that setup, check and the tests share one source.
--
--   bucket.wanted(cfg, host) -> { policy = {statement...}, cors = {rule...}, lifecycle = {rule...},
--                                 problem = why policy and lifecycle cannot be written | nil }
--   bucket.merge_policy(cfg, host, current_json|nil)   -> text|nil, changes, warnings, problem
--   bucket.merge_cors(cfg, host, current_xml|nil)      -> body|nil, changes, warnings, problem
--   bucket.merge_lifecycle(cfg, host, current_xml|nil) -> body|nil, changes, warnings, problem
--   (nil with changes: the document should be deleted; no changes: leave it as it is;
--    a problem: the document cannot be merged and is left alone)
--   bucket.shared(hosts) -> { [host] = { problems = {...}, warnings = {...} } }  for { {host=, cfg=}... }
--   bucket.as_json(cfg, host) -> the aws-cli JSON forms, for showing and for the docs
--
-- What a host's setup owns is marked with MARK and the host's name, in the
-- statements' Sids and the rules' IDs, so that hosts sharing a bucket (in
-- folders of their own) each keep theirs; it never touches the others. Other
-- parties' statements are written back as the text they came as.

local json = require "util.json";
local st = require "util.stanza";
local xml = require "util.xml";

local MARK = "HttpUploadS3";
local S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/";
local CORS_METHODS = { "PUT", "GET", "HEAD" };
local CORS_HEADERS = { "Content-Type" };   -- browsers set Content-Length themselves; the rest is in the URL
local CORS_MAX_AGE = 3600;

-- Request headers an upload URL must not be used with. Services that honour
-- x-amz-* headers left out of a presigned URL's signature (Ceph RGW does; AWS
-- refuses them) would otherwise let its holder copy any object the module's
-- credentials can read into the slot (x-amz-copy-source) or publish the file
-- (x-amz-acl, x-amz-grant-*). One condition key per statement: the keys of one
-- condition must all match for it to apply. The ACL is named, not matched by
-- "*": RGW gives s3:x-amz-acl the value "private" when a request has none.
local function any(key) return { StringLike = { [key] = "*" } }; end
local DENIED_HEADERS = {
	{ "CopySource", any "s3:x-amz-copy-source" },
	{ "Acl", { StringEquals = { ["s3:x-amz-acl"] = { "public-read", "public-read-write", "authenticated-read",
		"aws-exec-read", "log-delivery-write" } } } },
	{ "GrantRead", any "s3:x-amz-grant-read" },
	{ "GrantWrite", any "s3:x-amz-grant-write" },
	{ "GrantReadAcp", any "s3:x-amz-grant-read-acp" },
	{ "GrantWriteAcp", any "s3:x-amz-grant-write-acp" },
	{ "GrantFullControl", any "s3:x-amz-grant-full-control" },
};

-- A host in a Sid, which may hold letters and digits only: lowercase letters and
-- digits as they are, every other byte as X and two hex digits (so X itself too).
-- Different hosts give different Sids: chat-example.test is chatX2DexampleX2Etest.
local function sid_host(host)
	return (host:gsub("[^%l%d]", function (c) return ("X%02X"):format(c:byte()); end));
end

-- The marks of one host: a Sid for each statement, a rule ID prefix.
local function marks(host)
	local h = sid_host(host);
	local m = { public = MARK .. "PublicRead" .. h, id = MARK .. " " .. host, deny = {}, sids = {} };
	m.sids[m.public] = true;
	for i, denied in ipairs(DENIED_HEADERS) do
		m.deny[i] = MARK .. "Deny" .. denied[1] .. h;
		m.sids[m.deny[i]] = true;
	end
	-- before 0.2 the public statement's Sid dropped what is not a letter or digit, which two hosts may share
	m.legacy = MARK .. "PublicRead" .. host:gsub("%W", "");
	return m;
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
	local public, folders, lifecycle = {}, {}, {};
	local problem;
	for _, purpose in ipairs(cfg.purpose_list) do
		if purpose.key_prefix == "" then
			problem = "http_upload_s3_path is empty, so the module's files are the whole bucket: a policy statement "
				.. "or lifecycle rule for them would reach every other object in it; set http_upload_s3_path to a "
				.. "folder of the module's own";
		end
		table.insert(folders, resource(cfg, purpose.key_prefix));
		if not purpose.presign_get and not cfg.get_url then
			table.insert(public, resource(cfg, purpose.key_prefix));
		end
		if purpose.expires_after and cfg.expire_by == "lifecycle" then
			table.insert(lifecycle, { ID = mark.id .. " " .. purpose.name, Prefix = purpose.key_prefix,
				Days = purpose.expires_after });
		end
	end
	local policy = {};
	if #public > 0 then
		-- s3:GetObject only: never s3:ListBucket, the random keys are what keeps uploads private
		table.insert(policy, { Sid = mark.public, Effect = "Allow", Principal = "*", Action = "s3:GetObject",
			Resource = public });
	end
	for i, denied in ipairs(DENIED_HEADERS) do
		table.insert(policy, { Sid = mark.deny[i], Effect = "Deny", Principal = "*", Action = "s3:PutObject",
			Resource = folders, Condition = denied[2] });
	end
	local cors = {};
	if cfg.cors_origins then
		cors[1] = { ID = mark.id, AllowedOrigins = cfg.cors_origins, AllowedMethods = CORS_METHODS,
			AllowedHeaders = CORS_HEADERS, ExposeHeaders = { "ETag" }, MaxAgeSeconds = CORS_MAX_AGE };
	end
	if problem then
		policy, lifecycle = {}, {};
	end
	return { policy = policy, cors = cors, lifecycle = lifecycle, problem = problem };
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

-- Where the JSON value starting at or after i ends, in text that json.decode
-- accepted: so that other parties' statements go back as the text they came
-- as (util.json would turn 12345678901234567890 into 1.2345678901235e+19).
local function value_end(text, i)
	i = text:find("%S", i);
	local c = i and text:sub(i, i);
	if c == '"' then
		local j = i + 1;
		while true do
			local k = text:find('["\\]', j);
			if not k then return nil; end
			if text:sub(k, k) == '"' then return k; end
			j = k + 2;
		end
	elseif c == "{" or c == "[" then
		local depth, j = 0, i;
		while true do
			local k = text:find('[][{}"]', j);
			if not k then return nil; end
			local ch = text:sub(k, k);
			if ch == '"' then
				k = value_end(text, k);
				if not k then return nil; end
			elseif ch == "{" or ch == "[" then
				depth = depth + 1;
			else
				depth = depth - 1;
				if depth == 0 then return k; end
			end
			j = k + 1;
		end
	elseif c then
		return (text:find("[%s,%]}]", i) or #text + 1) - 1;   -- a number, true, false or null
	end
end

-- The items of a JSON array or the members of an object, as { key = decoded key | nil, text = raw value }.
local function json_items(text)
	local open = text:find("%S");
	local is_object = text:sub(open, open) == "{";
	local items, i = {}, open + 1;
	while true do
		i = text:find("%S", i);
		if not i or text:sub(i, i) == "]" or text:sub(i, i) == "}" then
			return items;
		end
		local item = {};
		if is_object then
			local key_end = value_end(text, i);
			if not key_end then return nil; end
			item.key = json.decode(text:sub(i, key_end));
			i = text:find(":", key_end + 1, true);
			if not i then return nil; end
			i = i + 1;
		end
		local stop = value_end(text, i);
		if not stop then return nil; end
		item.text = text:sub(text:find("%S", i), stop);
		table.insert(items, item);
		i = (text:find("%S", stop + 1) or #text) + 1;   -- past the comma
	end
end

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
		local covered = type(r) == "string" and r:match("^arn:aws:s3:::" .. cfg.bucket:gsub("%p", "%%%0") .. "/(.*)%*$");
		if reads and covered and prefix:sub(1, #covered) == covered then
			return true;
		end
	end
	return false;
end

-- Whether a statement with the Sid the public statement had before 0.2 is this host's: it grants
-- no more than this host's folders (the same Sid may be another host's, whose name differs in a '.').
local function is_legacy_own(statement, cfg, mark)
	if statement.Sid ~= mark.legacy or statement.Effect ~= "Allow" then
		return false;
	end
	local folders = {};
	for _, purpose in ipairs(cfg.purpose_list) do folders[resource(cfg, purpose.key_prefix)] = true; end
	for _, r in ipairs(list(statement.Resource)) do
		if not folders[r] then return false; end
	end
	return true;
end

local UNREADABLE_POLICY = "the bucket's policy is not a JSON policy document the module can read: left as it is; "
	.. "fix or remove it by hand";

local function merge_policy(cfg, host, current)
	local w = wanted(cfg, host);
	if w.problem then
		return nil, {}, {}, w.problem;
	end
	local document, members = { Statement = {} }, {};
	if current then
		document = json.decode(current);
		members = type(document) == "table" and json_items(current);
	end
	if type(document) ~= "table" or not members or type(document.Statement) ~= "table" then
		return nil, {}, {}, UNREADABLE_POLICY;
	end
	local statements = {};   -- { text =, decoded = } of every statement there, in order
	for _, member in ipairs(members) do
		if member.key == "Statement" then
			local items = member.text:sub(1, 1) == "[" and json_items(member.text) or { { text = member.text } };
			if not items then
				return nil, {}, {}, UNREADABLE_POLICY;
			end
			for _, item in ipairs(items) do
				local decoded = json.decode(item.text);
				if type(decoded) ~= "table" then
					return nil, {}, {}, UNREADABLE_POLICY;
				end
				table.insert(statements, { text = item.text, decoded = decoded });
			end
		end
	end

	local mark = marks(host);
	local kept, mine, changes, warnings = {}, {}, {}, {};
	for _, statement in ipairs(statements) do
		local sid = statement.decoded.Sid;
		if mark.sids[sid] or is_legacy_own(statement.decoded, cfg, mark) then
			mine[sid] = statement.decoded;
		else
			table.insert(kept, statement);
		end
	end
	for _, statement in ipairs(w.policy) do
		local what = statement.Effect == "Allow"
			and "public s3:GetObject on " .. table.concat(statement.Resource, ", ")
			or ("deny uploads with %s to %s"):format(next(select(2, next(statement.Condition))):sub(4),
				table.concat(statement.Resource, ", "));
		if not mine[statement.Sid] then
			table.insert(changes, ("policy: add %s, %s"):format(statement.Sid, what));
		elseif not same(mine[statement.Sid], statement) then
			table.insert(changes, ("policy: change %s to %s"):format(statement.Sid, what));
		end
		mine[statement.Sid] = nil;
		table.insert(kept, { text = json.encode_ordered(statement), decoded = statement });
	end
	local gone = {};
	for sid in pairs(mine) do table.insert(gone, sid); end
	table.sort(gone);
	for _, sid in ipairs(gone) do
		table.insert(changes, ("policy: remove %s (the configuration no longer has it)"):format(sid));
	end
	local ephemeral = cfg.purposes.ephemeral;
	for _, statement in ipairs(ephemeral and kept or {}) do
		if is_public_read(statement.decoded, cfg, ephemeral.key_prefix) then
			table.insert(warnings, ("policy: statement %s makes the ephemeral folder %s public, so its files "
				.. "outlive expire-before: remove it by hand"):format(statement.decoded.Sid or "(without Sid)",
				ephemeral.key_prefix));
		end
	end
	if #changes == 0 then
		return nil, changes, warnings;
	elseif #kept == 0 then
		return nil, changes, warnings;   -- nothing left: delete the policy
	end
	-- the document's other members as they were, in their order; Version first when it had none
	local texts, parts = {}, {};
	for i, statement in ipairs(kept) do texts[i] = statement.text; end
	local statement_text = "[" .. table.concat(texts, ",") .. "]";
	if document.Version == nil then
		table.insert(parts, '"Version":"2012-10-17"');
	end
	local placed = false;
	for _, member in ipairs(members) do
		if member.key == "Statement" then
			if not placed then table.insert(parts, '"Statement":' .. statement_text); end
			placed = true;
		else
			table.insert(parts, json.encode(member.key) .. ":" .. member.text);
		end
	end
	if not placed then
		table.insert(parts, '"Statement":' .. statement_text);
	end
	return "{" .. table.concat(parts, ",") .. "}", changes, warnings;
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
			return nil, {}, {}, ("the bucket's %s configuration is not XML the module can read: left as it is; "
				.. "fix or remove it by hand"):format(kind.name);
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
	local w = wanted(cfg, host);
	if w.problem then
		return nil, {}, {}, w.problem;
	end
	return merge_xml(LIFECYCLE, current, marks(host).id, w.lifecycle);
end

---- hosts sharing a bucket ---------------------------------------------------------

-- Which bucket a configuration writes to: hosts with the same one share its policy, CORS and lifecycle.
local function bucket_of(cfg)
	return (cfg.endpoint or ("aws " .. cfg.region)) .. " " .. cfg.bucket;
end

local function overlap(a, b)
	return a:sub(1, #b) == b or b:sub(1, #a) == a;
end

-- What one host's settings would do to another's in the same bucket: folders
-- that contain one another (a statement or rule of one reaches the other's
-- files: a problem for both), and CORS rules that differ (the bucket has one set).
local function shared(hosts)
	local report = {};
	for _, h in ipairs(hosts) do report[h.host] = { problems = {}, warnings = {} }; end
	local function add(h, kind, format, ...)
		table.insert(report[h.host][kind], format:format(...));
	end
	for i, a in ipairs(hosts) do
		for j = i + 1, #hosts do
			local b = hosts[j];
			if bucket_of(a.cfg) == bucket_of(b.cfg) then
				for _, p in ipairs(a.cfg.purpose_list) do
					for _, q in ipairs(b.cfg.purpose_list) do
						if overlap(p.key_prefix, q.key_prefix) then
							local why = "contain one another in the same bucket: a policy statement or lifecycle rule "
								.. "of one would reach the other's files; give each host a folder of its own";
							local text = "this host's %s folder %q and %s's %s folder %q %s";
							add(a, "problems", text, p.name, p.key_prefix, b.host, q.name, q.key_prefix, why);
							add(b, "problems", text, q.name, q.key_prefix, a.host, p.name, p.key_prefix, why);
						end
					end
				end
				if not same(a.cfg.cors_origins, b.cfg.cors_origins) then
					local function origins(cfg)
						return cfg.cors_origins and table.concat(cfg.cors_origins, " ") or "none (left alone)";
					end
					local why = "a bucket has one set of CORS rules, and a browser is let in by any rule that "
						.. "matches, whichever host's files it asks for";
					local text = "CORS: %s wants origins %s, this host %s: %s";
					add(a, "warnings", text, b.host, origins(b.cfg), origins(a.cfg), why);
					add(b, "warnings", text, a.host, origins(a.cfg), origins(b.cfg), why);
				end
			end
		end
	end
	return report;
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
	shared = shared;
	as_json = as_json;
	same = same;
};
