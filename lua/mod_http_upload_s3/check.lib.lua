-- prosodyctl mod_http_upload_s3 check
--
-- For every host that loads the module: its options, its credentials, then a
-- real round trip through the slot a client would get (the service's own
-- slot path): PUT a probe, GET it through the download URL, try what an
-- upload URL must not allow, delete the probes. Names the first layer that
-- fails, then compares the bucket's policy, CORS and lifecycle with the
-- options. Exit status 0 only when uploads work, and safely. No secret is printed.

local socket = require "socket";
local s3sign = require "s3sign";
local bucket = module:require "bucket";
local hosts = module:require "hosts";
local publicsuffix = module:require "publicsuffix";
local s3 = module:require "s3";
local documents = module:require "documents";

local PROBE_NAME = "http_upload_s3-check.txt";
local PROBE_BODY = "mod_http_upload_s3 check: this object may be deleted\n";
local PUBLIC_SUFFIX_LIST = "/usr/share/publicsuffix/public_suffix_list.dat";   -- Debian's publicsuffix

---- why a request failed ------------------------------------------------------------

-- The layer a failed request broke at: the name, the TCP connection, or TLS on top.
local function failed_layer(url)
	local scheme, host, port = url:match("^(https?)://%[?([^/%]]-)%]?:?(%d*)/");
	local address = socket.dns.toip(host);
	if not address then
		return "DNS";
	end
	local tcp = socket.tcp();
	tcp:settimeout(hosts.env.TIMEOUT or 10);
	local connected = tcp:connect(address, tonumber(port) or (scheme == "https" and 443 or 80));
	tcp:close();
	return (connected and scheme == "https") and "TLS" or "connect";
end

-- A canonical request as an admin may see it: the session token (in the
-- query of a presigned request, or a header) masked, for it is a credential.
local function without_token(canonical_request)
	return (canonical_request:gsub("(X%-Amz%-Security%-Token=)[^&\n]*", "%1<masked>")
		:gsub("(\nx%-amz%-security%-token:)[^\n]*", "%1<masked>"));
end

local LAYER_ADVICE = {
	DNS = "cannot resolve the endpoint's host name",
	connect = "is the endpoint right and reachable from this machine?",
	TLS = "is the endpoint https, with a certificate clients trust?",
};

-- Why a request failed, in words an admin can act on; nil when it did not.
-- ctx: the URL, now, the folder's resource, our canonical request.
local function diagnose(what, response, err, ctx)
	if not response then
		local layer = failed_layer(ctx.url);
		return ("%s: %s (%s)"):format(layer, err, LAYER_ADVICE[layer]);
	end
	local server_time = s3.http_date(response.headers.date);
	if server_time and math.abs(server_time - ctx.now) > 300 then
		return ("clock skew: this machine's clock is %d s %s the storage server's; run NTP"):format(
			math.abs(server_time - ctx.now), server_time > ctx.now and "behind" or "ahead of");
	end
	if response.status >= 200 and response.status < 300 then
		return nil;
	end
	local e = s3.parse_error(response.body) or {};
	local code = e.code or "";
	local lines = { ("HTTP %d %s"):format(response.status, code) };
	if code == "SignatureDoesNotMatch" then
		table.insert(lines, "the secret key does not match the access id, or something between here and S3 rewrote the request");
		if e.canonical_request and ctx.canonical_request then
			table.insert(lines, "S3's canonical request:\n    " .. without_token(e.canonical_request):gsub("\n", "\n    "));
			table.insert(lines, "ours:\n    " .. without_token(ctx.canonical_request):gsub("\n", "\n    "));
		end
	elseif code == "InvalidAccessKeyId" then
		table.insert(lines, "the storage service does not know http_upload_s3_access_id");
	elseif code == "NoSuchBucket" then
		table.insert(lines, "there is no bucket by that name at this endpoint (check http_upload_s3_bucket and _endpoint)");
	elseif code == "AuthorizationHeaderMalformed" or code == "AuthorizationQueryParametersError"
		or code == "PermanentRedirect" or code == "IllegalLocationConstraintException" then
		table.insert(lines, "wrong region: the bucket lives in " .. (e.region or "another region") .. " (http_upload_s3_region)");
	elseif code == "RequestTimeTooSkewed" or (e.message or ""):find("not yet valid") then
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

---- what downloads are served as -----------------------------------------------------

-- A warning when downloads come from the site (registrable domain) of the
-- XMPP service or of its users' host: a file a browser shows inline there
-- runs as part of that site (its cookies, its same-site requests).
local function same_site_warning(host, get_url)
	local download = get_url:match("^%a+://([^/]+)"):gsub(":%d+$", "");
	local f = io.open(PUBLIC_SUFFIX_LIST);
	local list = publicsuffix.new(f and f:read("a"));
	if f then f:close(); end
	local site = list:registrable(download);
	for _, service in ipairs({ host, host:match("^[^.]+%.(.+)$") }) do
		if site and site == list:registrable(service) then
			return ("downloads come from %s, the same site (%s) as the XMPP service %s: an uploaded page shown "
				.. "inline there runs as part of it; serve downloads from a domain of their own, or through a CDN "
				.. "that adds Content-Security-Policy and Content-Disposition: attachment (docs/admin.md §2)")
				:format(download, site, service);
		end
	end
end

---- what an upload URL allows -----------------------------------------------------------

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

-- An object key as a URL path: each segment percent-encoded, the slashes kept.
local function key_path(key)
	return (key:gsub("[^/]+", s3sign.uri_encode));
end

-- A probe's own slot, PUT with one unsigned header more: "refused", or "honoured" / "ignored"
-- (judged from what the service stored), and the slot's key; nil and why when it could not be tried.
local function probe_unsigned(svc, client, probe, source_key)
	local body = "mod_http_upload_s3 check: " .. probe.header .. "\n";
	local slot, err = svc:slot({ filename = PROBE_NAME, size = tostring(#body), content_type = "text/plain",
		purpose = "message" }, hosts.ADMIN, os.time());
	if not slot then
		return nil, err.text or err.problem or err.reason;
	end
	local value = probe.value or ("/%s/%s"):format(svc.cfg.bucket, key_path(source_key));
	local response, problem = hosts.env.http({ method = "PUT", url = slot.put, body = body,
		headers = { ["content-type"] = "text/plain", [probe.header] = value } });
	if not response then
		return nil, problem, slot.key;
	elseif response.status >= 300 then
		return "refused", nil, slot.key;
	end
	local honoured;
	if probe.header == "x-amz-copy-source" then
		local stored = client:send("GET", slot.key, { presign = true });
		honoured = stored and stored.status == 200 and stored.body == PROBE_BODY;
	elseif probe.header:find("^x%-amz%-meta%-") then
		local head = client:send("HEAD", slot.key, { presign = true });
		honoured = head and head.headers[probe.header] == probe.value;
	else
		local acl = client:send("GET", slot.key, { query = { acl = "" } });
		honoured = acl and acl.status == 200 and acl.body:find(ALL_USERS, 1, true) ~= nil;
	end
	return honoured and "honoured" or "ignored", nil, slot.key;
end

-- Each probe in turn; whether one found the service honouring a dangerous header.
local function try_unsigned(host, svc, client, source_key, say, probe_keys)
	local unsafe = false;
	local fix = bucket.wanted(svc.cfg, host).problem or "run prosodyctl mod_http_upload_s3 setup, which "
		.. "denies it on the module's folders in the bucket policy (docs/admin.md §2)";
	for _, probe in ipairs(UNSIGNED_PROBES) do
		local outcome, why, key = probe_unsigned(svc, client, probe, source_key);
		table.insert(probe_keys, key);
		if not outcome then
			say("unsigned " .. probe.header, "could not try it: %s", why);
		elseif not probe.risk then
			say("unsigned headers", "%s", ({
				refused = "ok (the service refuses request headers an upload URL did not sign, as AWS S3 does)",
				ignored = "ok (the service ignores request headers an upload URL did not sign)",
				honoured = "the service acts on request headers an upload URL did not sign (it stored an "
					.. "x-amz-meta- header): the bucket policy has to refuse the dangerous ones",
			})[outcome]);
		elseif outcome == "honoured" then
			unsafe = true;
			say("unsigned " .. probe.header, "FAIL: the service honours it, which %s; fix: %s", probe.risk, fix);
		else
			say("unsigned " .. probe.header, "ok (%s)", outcome);
		end
	end
	return unsafe;
end

---- one host ------------------------------------------------------------------------------

-- "ok", "broken" (uploads will not work) or "unsafe" (they work, but not as they must).
local function check_host(host, print, sharing)
	local say = hosts.reporter(host, print);
	local cfg, warnings = hosts.config(host);
	if not cfg then
		say("configuration", "FAIL: %s", warnings);
		return "broken";
	end
	for _, warning in ipairs(warnings) do
		say("configuration", "warning: %s", warning);
	end
	say("configuration", "ok (bucket %s, region %s, %s, %s)", cfg.bucket, cfg.region, cfg.endpoint or "AWS",
		cfg.path_style and "path-style" or "virtual-hosted");
	local svc = hosts.service(cfg, say);
	if not svc then
		return "broken";
	end
	local client = s3.new(svc.signer, hosts.env.http);

	local now = os.time();
	local slot = assert(svc:slot({ filename = PROBE_NAME, size = tostring(#PROBE_BODY), content_type = "text/plain",
		purpose = "message" }, hosts.ADMIN, now, true));
	local ctx = { now = now, resource = bucket.resource(cfg, cfg.purposes.message.key_prefix), url = slot.put,
		canonical_request = slot.canonical_request };
	local response, err = hosts.env.http({ method = "PUT", url = slot.put, body = PROBE_BODY,
		headers = { ["content-type"] = "text/plain" } });
	local problem = diagnose("upload", response, err, ctx);
	if problem then
		say("upload", "FAIL: %s", problem);
		return "broken";
	end
	say("upload", "ok (PUT %s)", slot.key);

	ctx.url = slot.get;
	response, err = hosts.env.http({ method = "GET", url = slot.get });
	problem = diagnose("download", response, err, ctx);
	if not problem and response.body ~= PROBE_BODY then
		problem = "download: the object came back different from what was uploaded";
	end
	if problem then
		say("download", "FAIL: %s", problem);
	else
		say("download", "ok (%s GET)", cfg.presign_get and "presigned" or "public");
	end
	local same_site = same_site_warning(host, slot.get);
	if same_site then
		say("download", "warning: %s", same_site);
	end

	local probe_keys = { slot.key };   -- the probe above is the object a copy would take
	local unsafe = try_unsigned(host, svc, client, slot.key, say, probe_keys);
	local cleaned = 0;
	for _, key in ipairs(probe_keys) do
		local deleted = client:send("DELETE", key, { presign = true });
		if deleted and deleted.status < 300 then cleaned = cleaned + 1; end
	end
	if cleaned < #probe_keys then
		say("clean-up", "FAIL: %d probes stay in %s: the bucket refuses DELETE, so no file is ever deleted (deleted "
			.. "accounts', users' and admins' deletions, takedowns, ephemeral files, retention, retractions); "
			.. "allow s3:DeleteObject on the module's folders", #probe_keys - cleaned, cfg.purposes.message.key_prefix);
		unsafe = true;
	else
		say("clean-up", "ok (%d probes deleted)", cleaned);
		-- the probe gone, what the module's look for an upload sees of a slot never used
		local size, why = client:size(slot.key);
		if size == false then
			say("upload checks", "ok (a missing object answers 404)");
		else
			say("upload checks", "warning: a missing object answers %s, not 404: slots never used stay pending, "
				.. "counted against storage quotas until their time; let the key s3:ListBucket the bucket",
				why or "200");
		end
	end

	-- the bucket's settings against the options (drift alone is no failure: uploads work without them)
	for _, warning in ipairs(sharing.warnings) do
		say("warning", "%s", warning);
	end
	local drift, blocked = 0, false;
	for _, result in ipairs(documents.changes(cfg, host, client, sharing)) do
		local name = result.doc.name;
		if result.unreadable then
			say("bucket " .. name, "cannot read it: %s", result.unreadable);
		elseif result.problem then
			say("bucket " .. name, "FAIL: %s", result.problem);
			blocked = true;
			unsafe = unsafe or #sharing.problems > 0;
		end
		for _, line in ipairs(result.changes or {}) do
			say("bucket drift", "%s", line);
			drift = drift + 1;
		end
		for _, line in ipairs(result.warnings or {}) do
			say("bucket drift", "%s", line);
			drift = drift + 1;
		end
	end
	if blocked then
		say("bucket settings", "setup cannot write them as the configuration stands (FAIL above)");
	elseif drift > 0 then
		say("bucket settings", "differ from the configuration: prosodyctl mod_http_upload_s3 setup fixes them");
	else
		say("bucket settings", "ok (policy, CORS and lifecycle as configured)");
	end
	svc:close();
	if problem then
		return "broken";
	end
	return unsafe and "unsafe" or "ok";
end

local VERDICTS = { ok = "uploads will work", broken = "uploads will NOT work",
	unsafe = "uploads work, but NOT safely: see the FAIL lines" };

return function (_, print)
	return hosts.each(hosts.list(), print, function (host, sharing)
		local verdict = check_host(host, print, sharing);
		print(("%s: %s"):format(host, VERDICTS[verdict]));
		return verdict == "ok";
	end);
end
