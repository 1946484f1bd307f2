-- prosodyctl mod_http_upload_s3 check
-- prosodyctl mod_http_upload_s3 setup [--host HOST] [--dry-run]
-- prosodyctl mod_http_upload_s3 presign FILENAME SIZE [TYPE] [--host HOST]
--
-- check: for every host that loads the module, validate its options, then make
-- a real round trip to the bucket (presigned PUT of a probe, GET, DELETE) and
-- name the first layer that fails, then compare the bucket's policy, CORS and
-- lifecycle rules with the options. Exit status 0 only when uploads will work.
-- setup: write those three documents (bucket.lib.lua builds them), keeping
-- what others put there; --dry-run shows the changes and writes nothing.
-- No command prints a secret; presign prints URLs, which is its purpose.

local configmanager = require "core.configmanager";
local socket = require "socket";
local http = require "socket.http";
local ltn12 = require "ltn12";
local s3sign = require "s3sign";
local hashes = require "util.hashes";
local base64 = require "util.encodings".base64;

local datetime = require "util.datetime";

local config = module:require "config";
local bucket = module:require "bucket";
local publicsuffix = module:require "publicsuffix";
local credentials = module:require "credentials";

local PROBE_NAME = "http_upload_s3-check.txt";
local PROBE_BODY = "mod_http_upload_s3 check: this object may be deleted\n";
local TIMEOUT = 10;
local PUBLIC_SUFFIX_LIST = "/usr/share/publicsuffix/public_suffix_list.dat";   -- Debian's publicsuffix

-- Hosts whose config loads the module, as a VirtualHost module or a Component.
local function module_hosts()
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

local function host_config(host)
	return config.load(function (name)
		return configmanager.get(host, "http_upload_s3_" .. name);
	end, nil, config.options_set(configmanager.getconfig(), host));
end

-- Every host's configuration that loads, for what hosts sharing a bucket do to one another.
local function shared_report()
	local hosts = {};
	for _, host in ipairs(module_hosts()) do
		local cfg = host_config(host);
		if cfg then table.insert(hosts, { host = host, cfg = cfg }); end
	end
	return bucket.shared(hosts);
end

---- HTTP with the answers S3 gives ------------------------------------------

local function request(method, url, body, headers)
	local chunks = {};
	local req = {
		url = url, method = method, headers = headers or {},
		source = body and ltn12.source.string(body), sink = ltn12.sink.table(chunks),
	};
	local requester = http;
	if url:find("^https:") then
		requester = require "ssl.https";
		req.verify, req.cafile = "peer", "/etc/ssl/certs/ca-certificates.crt";
		req.protocol, req.options = "any", { "all", "no_sslv2", "no_sslv3" };
	end
	requester.TIMEOUT = TIMEOUT;
	local ok, status, response_headers = requester.request(req);
	if not ok then
		return nil, tostring(status);
	end
	return { status = status, headers = response_headers or {}, body = table.concat(chunks) };
end

-- The layer a failed request broke at: the name, the TCP connection, or TLS on top.
local function failed_layer(url)
	local scheme, host, port = url:match("^(https?)://%[?([^/%]]-)%]?:?(%d*)/");
	local address = socket.dns.toip(host);
	if not address then
		return "DNS";
	end
	local tcp = socket.tcp();
	tcp:settimeout(TIMEOUT);
	local connected = tcp:connect(address, tonumber(port) or (scheme == "https" and 443 or 80));
	tcp:close();
	return (connected and scheme == "https") and "TLS" or "connect";
end

local function xml_field(body, name)
	local value = body:match("<" .. name .. ">(.-)</" .. name .. ">");
	return value and value:gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&quot;", "\""):gsub("&apos;", "'"):gsub("&amp;", "&");
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 };

-- Seconds since the epoch of an HTTP Date ("Sat, 28 Nov 2026 07:24:02 GMT").
local function http_date(text)
	local d, mon, y, h, m, s = (text or ""):match("(%d+) (%a+) (%d+) (%d+):(%d+):(%d+) GMT");
	if not MONTHS[mon] then return nil; end
	y, mon = tonumber(y), MONTHS[mon];
	if mon <= 2 then y = y - 1; end -- days from civil, March-based year
	local era = y // 400;
	local yoe = y - era * 400;
	local doy = (153 * (mon + (mon > 2 and -3 or 9)) + 2) // 5 + tonumber(d) - 1;
	local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy;
	return ((era * 146097 + doe - 719468) * 86400) + h * 3600 + m * 60 + s;
end

-- A canonical request as an admin may see it: the session token (in the
-- query of a presigned request, or a header) masked, for it is a credential.
local function without_token(canonical_request)
	return (canonical_request:gsub("(X%-Amz%-Security%-Token=)[^&\n]*", "%1<masked>")
		:gsub("(\nx%-amz%-security%-token:)[^\n]*", "%1<masked>"));
end

-- Why a request failed, in words an admin can act on; nil when it did not.
local function diagnose(what, response, err, ctx)
	if not response then
		local layer = failed_layer(ctx.url);
		local advice = {
			DNS = "cannot resolve the endpoint's host name",
			connect = "is the endpoint right and reachable from this machine?",
			TLS = "is the endpoint https, with a certificate clients trust?",
		};
		return ("%s: %s (%s)"):format(layer, err, advice[layer]);
	end
	local server_time = http_date(response.headers.date);
	if server_time and math.abs(server_time - ctx.now) > 300 then
		return ("clock skew: this machine's clock is %d s %s the storage server's; run NTP"):format(
			math.abs(server_time - ctx.now), server_time > ctx.now and "behind" or "ahead of");
	end
	if response.status >= 200 and response.status < 300 then
		return nil;
	end
	local code = xml_field(response.body, "Code") or "";
	local lines = { ("HTTP %d %s"):format(response.status, code) };
	if code == "SignatureDoesNotMatch" then
		table.insert(lines, "the secret key does not match the access id, or something between here and S3 rewrote the request");
		local theirs = xml_field(response.body, "CanonicalRequest");
		if theirs and ctx.canonical_request then
			table.insert(lines, "S3's canonical request:\n    " .. without_token(theirs):gsub("\n", "\n    "));
			table.insert(lines, "ours:\n    " .. without_token(ctx.canonical_request):gsub("\n", "\n    "));
		end
	elseif code == "InvalidAccessKeyId" then
		table.insert(lines, "the storage service does not know http_upload_s3_access_id");
	elseif code == "NoSuchBucket" then
		table.insert(lines, "there is no bucket by that name at this endpoint (check http_upload_s3_bucket and _endpoint)");
	elseif code == "AuthorizationHeaderMalformed" or code == "AuthorizationQueryParametersError"
		or code == "PermanentRedirect" or code == "IllegalLocationConstraintException" then
		table.insert(lines, "wrong region: the bucket lives in "
			.. (xml_field(response.body, "Region") or "another region") .. " (http_upload_s3_region)");
	elseif code == "RequestTimeTooSkewed" or (xml_field(response.body, "Message") or ""):find("not yet valid") then
		table.insert(lines, "clock skew: run NTP on this machine");
	elseif response.status == 403 and what == "download" then
		table.insert(lines, "anyone with the GET URL must be able to read it: allow public s3:GetObject on "
			.. ctx.resource .. " (and turn Block Public Access off for it), or set http_upload_s3_presign_get = true");
	elseif response.status == 403 then
		table.insert(lines, "AccessDenied: the credentials may not s3:PutObject on " .. ctx.resource
			.. " (IAM or bucket policy)");
	end
	return table.concat(lines, "\n  ");
end

-- An object key as a URL path: each segment percent-encoded, the slashes kept.
local function key_path(key)
	return (key:gsub("[^/]+", s3sign.uri_encode));
end

-- The slot options for the GET URL the module would hand out: presigned or public.
local function get_options(cfg, options)
	options.get_expires = cfg.presign_get and cfg.get_expires or nil;
	return options;
end

---- credentials ----------------------------------------------------------------

-- The credentials a command signs with, fetched now and waited for (LuaSocket
-- answers at once): creds, where they came from | nil, what failed.
local function fetch_credentials(cfg)
	local env = setmetatable({
		http = function (req, callback)
			callback(request(req.method, req.url, req.body, req.headers));
		end,
		s3sign = s3sign,
	}, { __index = config.process_env });
	local chain = credentials.new(cfg, env);
	local got, problem;
	chain:start(os.time(), function (creds) got = creds; end, function (why) problem = why; end);
	if not got then
		return nil, problem;
	end
	return got, chain.source;
end

-- A signer for a host's configuration, with the credentials it would use; nil after printing why not.
local function host_signer(host, cfg, print)
	local creds, source = fetch_credentials(cfg);
	if not creds then
		print(("%s: credentials: FAIL: %s"):format(host, source));
		return nil;
	end
	print(("%s: credentials: ok (from %s%s)"):format(host, source,
		creds.expiration and (", valid until " .. datetime.datetime(creds.expiration)) or ""));
	local signer, err = s3sign.new(config.signer_options(cfg, creds));
	if not signer then
		print(("%s: credentials: FAIL: %s"):format(host, err));
	end
	return signer;
end

---- the bucket's settings ------------------------------------------------------

-- Per document: its subresource, what S3 answers when there is none, how the
-- module merges it, and the permissions an IAM policy must grant for setup;
-- scoped: its statements or rules reach files, so hosts whose folders contain
-- one another must not write it.
local DOCUMENTS = {
	{ name = "policy", none = "NoSuchBucketPolicy", merge = bucket.merge_policy, scoped = true,
		permissions = "s3:GetBucketPolicy, s3:PutBucketPolicy, s3:DeleteBucketPolicy" },
	{ name = "cors", none = "NoSuchCORSConfiguration", merge = bucket.merge_cors,
		permissions = "s3:GetBucketCORS, s3:PutBucketCORS" },
	{ name = "lifecycle", none = "NoSuchLifecycleConfiguration", merge = bucket.merge_lifecycle, scoped = true,
		permissions = "s3:GetLifecycleConfiguration, s3:PutLifecycleConfiguration" },
};

-- A bucket-level request signed in its headers; -> response | nil, problem
local function bucket_request(signer, method, doc, body, headers)
	headers = headers or {};
	headers["Content-Length"] = body and tostring(#body) or nil;   -- unsigned: LuaSocket would send chunks
	local url, auth = signer:authorize(method, "", { query = { [doc.name] = "" }, body = body, headers = headers });
	if not url then
		return nil, auth;
	end
	for name, value in pairs(auth) do
		headers[name] = value;
	end
	local response, err = request(method, url, body, headers);
	if not response then
		return nil, ("%s: %s"):format(failed_layer(url), err);
	end
	return response;
end

-- Why S3 refused a request on a document, in words an admin can act on.
local function document_failure(doc, response)
	local code = xml_field(response.body, "Code") or "";
	if response.status == 501 or code == "NotImplemented" or code == "MethodNotAllowed" then
		return ("the storage service has no %s API (HTTP %d %s): set this up in its own console"):format(
			doc.name, response.status, code);
	elseif code == "AccessDenied" or response.status == 403 then
		return ("AccessDenied: the credentials lack %s on the bucket"):format(doc.permissions);
	end
	return ("HTTP %d %s %s"):format(response.status, code, xml_field(response.body, "Message") or "");
end

-- The bucket's document now: its text, false when it has none; nil, problem when it cannot be read.
local function current_document(signer, doc)
	local response, problem = bucket_request(signer, "GET", doc);
	if not response then
		return nil, problem;
	elseif response.status == 404 and xml_field(response.body, "Code") == doc.none then
		return false;
	elseif response.status ~= 200 then
		return nil, document_failure(doc, response);
	end
	return response.body;
end

-- What setup would change, per document: { doc, merged, changes, warnings }, or
-- { doc, unreadable = why } when the service did not give it, or { doc, problem = why }
-- when it cannot be set up as the configuration asks (left as it is).
local function bucket_changes(cfg, host, signer, sharing)
	local results = {};
	for _, doc in ipairs(DOCUMENTS) do
		if doc.scoped and #sharing.problems > 0 then
			table.insert(results, { doc = doc, problem = table.concat(sharing.problems, "; ") });
		else
			local current, unreadable = current_document(signer, doc);
			if current == nil then
				table.insert(results, { doc = doc, unreadable = unreadable });
			else
				local merged, changes, warnings, problem = doc.merge(cfg, host, current or nil);
				table.insert(results, { doc = doc, merged = merged, changes = changes, warnings = warnings,
					problem = problem });
			end
		end
	end
	return results;
end

-- Write one merged document, or delete it when nothing is left in it.
local function write_document(signer, doc, merged)
	local response, problem;
	if merged == nil then
		response, problem = bucket_request(signer, "DELETE", doc);
	else
		-- S3 wants a checksum of lifecycle and CORS documents; Content-MD5 is the one every provider takes
		response, problem = bucket_request(signer, "PUT", doc, merged,
			{ ["Content-MD5"] = base64.encode(hashes.md5(merged)) });
	end
	if not response then
		return problem;
	elseif response.status >= 300 then
		return document_failure(doc, response);
	end
end

local function setup_host(host, dry_run, print, sharing)
	local cfg, err = host_config(host);
	if not cfg then
		print(("%s: configuration: FAIL: %s"):format(host, err));
		return false;
	end
	local signer = host_signer(host, cfg, print);
	if not signer then
		return false;
	end
	for _, warning in ipairs(sharing.warnings) do
		print(("%s: warning: %s"):format(host, warning));
	end
	local ok, changed = true, false;
	for _, result in ipairs(bucket_changes(cfg, host, signer, sharing)) do
		local name = result.doc.name;
		if result.unreadable or result.problem then
			print(("%s: %s: FAIL: %s"):format(host, name, result.unreadable or result.problem));
			ok = false;
		else
			for _, warning in ipairs(result.warnings) do
				print(("%s: %s: warning: %s"):format(host, name, warning));
			end
			if #result.changes == 0 then
				print(("%s: %s: unchanged"):format(host, name));
			else
				changed = true;
				for _, change in ipairs(result.changes) do
					print(("%s: %s"):format(host, change));
				end
				local problem = not dry_run and write_document(signer, result.doc, result.merged);
				if problem then
					print(("%s: %s: FAIL: %s"):format(host, name, problem));
					ok = false;
				elseif not dry_run then
					print(("%s: %s: %s"):format(host, name, result.merged and "written" or "deleted"));
				end
			end
		end
	end
	if dry_run and changed then
		print(("%s: what this module wants of the bucket (others' statements and rules are kept):"):format(host));
		local documents = bucket.as_json(cfg, host);
		for _, doc in ipairs(DOCUMENTS) do   -- in the order the changes were listed
			if documents[doc.name] then
				print(("  %s: %s"):format(doc.name, documents[doc.name]));
			end
		end
		print(("%s: dry run: nothing written"):format(host));
	elseif not changed and ok then
		print(("%s: the bucket is set up as the configuration says; nothing to do"):format(host));
	end
	return ok;
end

---- check --------------------------------------------------------------------

-- A warning when downloads come from the site (registrable domain) of the
-- XMPP service or of its users' host: a file a browser shows inline there
-- runs as part of that site (its cookies, its same-site requests).
local function same_site_warning(host, get_url)
	local download = get_url:match("^%a+://([^/]+)"):gsub(":%d+$", "");
	local f = io.open(PUBLIC_SUFFIX_LIST);
	local list = publicsuffix.new(f and f:read("a"));
	if f then f:close(); end
	local site = list:registrable(download);
	local parent = configmanager.get(host, "component_module") and host:match("^[^.]+%.(.+)$");
	for _, service in ipairs({ host, parent or nil }) do
		if site and site == list:registrable(service) then
			return ("downloads come from %s, the same site (%s) as the XMPP service %s: an uploaded page shown "
				.. "inline there runs as part of it; serve downloads from a domain of their own, or through a CDN "
				.. "that adds Content-Security-Policy and Content-Disposition: attachment (docs/admin.md §2)")
				:format(download, site, service);
		end
	end
end

-- The headers an upload URL does not sign that check tries, and what
-- honouring each would let the holder of an upload URL do. A service that
-- refuses unsigned headers (AWS S3) refuses all of them; one that honours
-- them must refuse these by the bucket policy setup writes.
local ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers";
local UNSIGNED_PROBES = {
	{ header = "x-amz-meta-http-upload-s3-check", value = "unsigned" },   -- harmless: tells what the service does
	{ header = "x-amz-copy-source", risk = "lets whoever holds an upload URL copy into it any object these "
		.. "credentials can read (other users' files, other applications' data in the bucket), past the size limit" },
	{ header = "x-amz-acl", value = "public-read", risk = "lets whoever holds an upload URL make the file "
		.. "readable by anyone, without a signature, for ever" },
	{ header = "x-amz-grant-read", value = ("uri=%q"):format(ALL_USERS), risk = "lets whoever holds an upload URL "
		.. "make the file readable by anyone, without a signature, for ever" },
};

-- PUT body through a slot of its own with one unsigned header more; what the service did:
-- "refused", or "honoured" / "ignored" (judged from what it stored), and the slot's key.
local function probe_unsigned(cfg, signer, probe, source_key)
	local body = "mod_http_upload_s3 check: " .. probe.header .. "\n";
	local folder = cfg.purposes.message.key_prefix;
	local put, _, key = signer:slot(folder, PROBE_NAME, #body, cfg.sign_content_type and "text/plain" or nil,
		get_options(cfg, {}));
	if not put then
		return nil, key;
	end
	local value = probe.value or ("/%s/%s"):format(cfg.bucket, key_path(source_key));
	local response, err = request("PUT", put, body, { ["content-length"] = tostring(#body),
		["content-type"] = "text/plain", [probe.header] = value });
	if not response then
		return nil, err, key;
	elseif response.status >= 300 then
		return "refused", nil, key;
	end
	local honoured;
	if probe.header == "x-amz-copy-source" then
		local stored = request("GET", (signer:presign("GET", key)));
		honoured = stored and stored.status == 200 and stored.body == PROBE_BODY;
	elseif probe.header:find("^x%-amz%-meta%-") then
		local head = request("HEAD", (signer:presign("HEAD", key)));
		honoured = head and head.headers[probe.header] == probe.value;
	else
		local url, auth = signer:authorize("GET", key, { query = { acl = "" } });
		local acl = request("GET", url, nil, auth);
		honoured = acl and acl.status == 200 and acl.body:find(ALL_USERS, 1, true) ~= nil;
	end
	return honoured and "honoured" or "ignored", nil, key;
end

local function check_host(host, print, sharing)
	local cfg, warnings = host_config(host);
	if not cfg then
		print(("%s: configuration: FAIL: %s"):format(host, warnings));
		return "broken";
	end
	for _, warning in ipairs(warnings) do
		print(("%s: configuration: warning: %s"):format(host, warning));
	end
	print(("%s: configuration: ok (bucket %s, region %s, %s, %s)"):format(host, cfg.bucket, cfg.region,
		cfg.endpoint or "AWS", cfg.path_style and "path-style" or "virtual-hosted"));
	local signer = host_signer(host, cfg, print);
	if not signer then
		return "broken";
	end

	local now = os.time();
	local folder = cfg.purposes.message.key_prefix;
	local signed = { ["content-length"] = tostring(#PROBE_BODY),
		["content-type"] = cfg.sign_content_type and "text/plain" or nil };
	local put, get, key = signer:slot(folder, PROBE_NAME, #PROBE_BODY, signed["content-type"],
		get_options(cfg, { now = now }));
	local ctx = { now = now, resource = bucket.resource(cfg, folder) };
	ctx.canonical_request = select(2, signer:presign("PUT", key, { now = now, trace = true, headers = signed }));

	ctx.url = put;
	local response, http_err = request("PUT", put, PROBE_BODY, { ["content-length"] = signed["content-length"],
		["content-type"] = "text/plain" });
	local problem = diagnose("upload", response, http_err, ctx);
	if problem then
		print(("%s: upload: FAIL: %s"):format(host, problem));
		return "broken";
	end
	print(("%s: upload: ok (PUT %s)"):format(host, key));

	ctx.url = get;
	response, http_err = request("GET", get);
	problem = diagnose("download", response, http_err, ctx);
	if not problem and response.body ~= PROBE_BODY then
		problem = "download: the object came back different from what was uploaded";
	end
	if problem then
		print(("%s: download: FAIL: %s"):format(host, problem));
	else
		print(("%s: download: ok (%s GET)"):format(host, cfg.presign_get and "presigned" or "public"));
	end
	local same_site = same_site_warning(host, get);
	if same_site then
		print(("%s: download: warning: %s"):format(host, same_site));
	end

	-- what an upload URL allows besides an upload: the probe above is the object a copy would take
	local unsafe = false;
	local probe_keys = { key };
	local fix = bucket.wanted(cfg, host).problem or "run prosodyctl mod_http_upload_s3 setup, which denies it on "
		.. "the module's folders in the bucket policy (docs/admin.md §2)";
	for _, probe in ipairs(UNSIGNED_PROBES) do
		local outcome, why, probe_key = probe_unsigned(cfg, signer, probe, key);
		table.insert(probe_keys, probe_key);
		if not outcome then
			print(("%s: unsigned %s: could not try it: %s"):format(host, probe.header, why));
		elseif not probe.risk then
			print(("%s: unsigned headers: %s"):format(host, ({
				refused = "ok (the service refuses request headers an upload URL did not sign, as AWS S3 does)",
				ignored = "ok (the service ignores request headers an upload URL did not sign)",
				honoured = "the service acts on request headers an upload URL did not sign (it stored an "
					.. "x-amz-meta- header): the bucket policy has to refuse the dangerous ones",
			})[outcome]));
		elseif outcome == "honoured" then
			unsafe = true;
			print(("%s: unsigned %s: FAIL: the service honours it, which %s; fix: %s"):format(host, probe.header,
				probe.risk, fix));
		else
			print(("%s: unsigned %s: ok (%s)"):format(host, probe.header, outcome));
		end
	end

	local cleaned = 0;
	for _, k in ipairs(probe_keys) do
		response, http_err = request("DELETE", (signer:presign("DELETE", k)));
		if not diagnose("clean-up", response, http_err, ctx) then cleaned = cleaned + 1; end
	end
	if cleaned < #probe_keys then
		print(("%s: clean-up: %d probes stay in %s (DELETE not permitted; that is fine)"):format(host,
			#probe_keys - cleaned, folder));
	else
		print(("%s: clean-up: ok (%d probes deleted)"):format(host, cleaned));
	end

	-- the bucket's settings against the options (drift alone is no failure: uploads work without them)
	for _, warning in ipairs(sharing.warnings) do
		print(("%s: warning: %s"):format(host, warning));
	end
	local drift, blocked = 0, false;
	for _, result in ipairs(bucket_changes(cfg, host, signer, sharing)) do
		if result.unreadable then
			print(("%s: bucket %s: cannot read it: %s"):format(host, result.doc.name, result.unreadable));
		elseif result.problem then
			print(("%s: bucket %s: FAIL: %s"):format(host, result.doc.name, result.problem));
			blocked = true;
			unsafe = unsafe or #sharing.problems > 0;
		end
		for _, line in ipairs(result.changes or {}) do
			print(("%s: bucket drift: %s"):format(host, line));
			drift = drift + 1;
		end
		for _, line in ipairs(result.warnings or {}) do
			print(("%s: bucket drift: %s"):format(host, line));
			drift = drift + 1;
		end
	end
	if blocked then
		print(("%s: bucket settings: setup cannot write them as the configuration stands (FAIL above)"):format(host));
	elseif drift > 0 then
		print(("%s: bucket settings differ from the configuration: prosodyctl mod_http_upload_s3 setup fixes them"):format(host));
	else
		print(("%s: bucket settings: ok (policy, CORS and lifecycle as configured)"):format(host));
	end
	if problem then
		return "broken";
	end
	return unsafe and "unsafe" or "ok";
end

local function check(_, print)
	local hosts = module_hosts();
	if #hosts == 0 then
		print("no host in the configuration loads http_upload_s3");
		return 1;
	end
	local failures, shared = 0, shared_report();
	local verdicts = { ok = "uploads will work", broken = "uploads will NOT work",
		unsafe = "uploads work, but NOT safely: see the FAIL lines" };
	for _, host in ipairs(hosts) do
		local verdict = check_host(host, print, shared[host] or { problems = {}, warnings = {} });
		print(("%s: %s"):format(host, verdicts[verdict]));
		if verdict ~= "ok" then
			failures = failures + 1;
		end
	end
	return failures == 0 and 0 or 1;
end

---- presign ------------------------------------------------------------------

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

local function presign(args, print)
	local host = take_option(args, "--host", true);
	local filename, size, content_type = args[1], math.tointeger(tonumber(args[2] or "")), args[3];
	if not filename or not size then
		print("usage: prosodyctl mod_http_upload_s3 presign FILENAME SIZE [CONTENT-TYPE] [--host HOST]");
		return 1;
	end
	local hosts = module_hosts();
	host = host or (#hosts == 1 and hosts[1]);
	if not host then
		print("several hosts load http_upload_s3; pick one with --host: " .. table.concat(hosts, ", "));
		return 1;
	end
	local cfg, err = host_config(host);
	if not cfg then
		print(("%s: %s"):format(host, err));
		return 1;
	end
	local signer = host_signer(host, cfg, function (line) io.stderr:write(line, "\n"); end);
	if not signer then
		return 1;
	end
	local signed_type = cfg.sign_content_type and content_type or nil;
	local put, get, key = signer:slot(cfg.purposes.message.key_prefix, filename, size, signed_type,
		get_options(cfg, {}));
	if not put then
		print(("%s: %s"):format(host, get));
		return 1;
	end
	print("key: " .. key);
	print("PUT: " .. put);
	print("GET: " .. get);
	print("headers the PUT must carry:");
	print(("  Content-Length: %d"):format(size));
	if signed_type then
		print(("  Content-Type: %s"):format(signed_type));
	end
	print(("try: curl -T FILE%s '%s'"):format(content_type and (" -H 'Content-Type: %s'"):format(content_type) or "", put));
	return 0;
end

---- setup --------------------------------------------------------------------

local function setup(args, print)
	local host, dry_run = take_option(args, "--host", true), take_option(args, "--dry-run");
	if host == false or #args > 0 then
		print("usage: prosodyctl mod_http_upload_s3 setup [--host HOST] [--dry-run]");
		return 1;
	end
	local hosts = host and { host } or module_hosts();
	if #hosts == 0 then
		print("no host in the configuration loads http_upload_s3");
		return 1;
	end
	local failures, shared = 0, shared_report();
	for _, h in ipairs(hosts) do
		if not setup_host(h, dry_run, print, shared[h] or { problems = {}, warnings = {} }) then
			failures = failures + 1;
		end
	end
	return failures == 0 and 0 or 1;
end

local commands = { check = check, presign = presign, setup = setup };

-- module.command for prosodyctl: arg is { command, args... }
local function run(arg, print)
	local command = commands[arg[1] or ""];
	if not command then
		print("usage: prosodyctl mod_http_upload_s3 check");
		print("       prosodyctl mod_http_upload_s3 setup [--host HOST] [--dry-run]");
		print("       prosodyctl mod_http_upload_s3 presign FILENAME SIZE [CONTENT-TYPE] [--host HOST]");
		return 1;
	end
	return command({ table.unpack(arg, 2) }, print);
end

return { run = run };
