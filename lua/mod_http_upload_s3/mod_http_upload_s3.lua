-- mod_http_upload_s3: XEP-0363 HTTP File Upload straight to S3-compatible storage.
--
-- Clients get presigned S3 URLs (AWS Signature Version 4, signed by the s3sign
-- C library) and upload to the bucket themselves; no file passes through Prosody.
-- MIT licensed, see LICENSE.

local st = require "util.stanza";
local errors = require "util.error";
local dataform = require "util.dataforms".new;
local jid = require "util.jid";
local s3sign = require "s3sign";

local request = module:require "request";
local NS, NS_LEGACY = request.NS, request.NS_LEGACY;

local MIB = 1024 * 1024;
local MAX_SINGLE_PUT = 5 * 1024 * MIB; -- S3 refuses larger single PUTs
local MAX_EXPIRES = 604800;            -- S3 refuses presigned URLs valid longer than 7 days

local function option_name(name)
	return module.name .. "_" .. name;
end

-- Stop the module from loading, naming the option at fault.
local function refuse(name, problem)
	error(("Refusing to load: %s %s"):format(option_name(name), problem), 0);
end

local function required_string(name)
	local value = module:get_option_string(option_name(name));
	if not value or value == "" then
		refuse(name, "is required");
	end
	return value;
end

local function integer_in(name, default, min, max)
	local value = math.tointeger(module:get_option_number(option_name(name), default));
	if not value then
		refuse(name, "must be a whole number");
	elseif value < min or value > max then
		refuse(name, ("must be between %d and %d"):format(min, max));
	end
	return value;
end

local file_size_limit = integer_in("file_size_limit", 100 * MIB, 0, MAX_SINGLE_PUT);
local sign_content_type = module:get_option_boolean(option_name("sign_content_type"), false);
local presign_get = module:get_option_boolean(option_name("presign_get"), false);
local get_expires = presign_get and integer_in("get_expires", MAX_EXPIRES, 1, MAX_EXPIRES) or nil;
if presign_get then
	module:log("warn", "%s: download links stop working after %d seconds (S3 allows at most 7 days)",
		option_name("presign_get"), get_expires);
end

local signer, signer_err = s3sign.new {
	access_key_id = required_string("access_id");
	secret_key = required_string("secret_key");
	session_token = module:get_option_string(option_name("session_token"));
	region = required_string("region");
	bucket = required_string("bucket");
	endpoint = module:get_option_string(option_name("endpoint"));
	path_style = module:get_option_boolean(option_name("path_style"), false);
	prefix = (module:get_option_string(option_name("path"), ""):gsub("^/+", ""):gsub("/+$", ""));
	put_expires = integer_in("expires", 300, 1, MAX_EXPIRES);
	get_expires = get_expires;
	get_url = module:get_option_string(option_name("get_url"));
};
if not signer then
	-- s3sign names its own fields ("region: ..."); map them back to option names
	local field, problem = signer_err:match("^([%w_]+): (.*)$");
	local options = { access_key_id = "access_id", prefix = "path", put_expires = "expires" };
	refuse(options[field] or field or "configuration", problem or signer_err);
end

module:depends("disco");
module:add_identity("store", "file", module:get_option_string("name", "HTTP File Upload"));
for _, ns in ipairs({ NS, NS_LEGACY }) do
	module:add_feature(ns);
	module:add_extension(dataform {
		{ name = "FORM_TYPE", type = "hidden", value = ns },
		{ name = "max-file-size", type = "text-single", datatype = "xs:integer" },
	}:form({ ["max-file-size"] = tostring(file_size_limit) }, "result"));
end

-- Every reply the module can send, once per namespace (file-too-large lives in it).
local function error_registry(ns)
	return errors.init(module.name, ns, {
		filename = { type = "modify", condition = "bad-request", text = "Invalid file name" };
		filesize = { type = "modify", condition = "bad-request", text = "File size must be a whole number of bytes" };
		filetype = { type = "modify", condition = "bad-request", text = "Invalid content type" };
		toolarge = { type = "modify", condition = "not-acceptable", text = "File too large";
			extra = { tag = st.stanza("file-too-large", { xmlns = ns })
				:text_tag("max-file-size", tostring(file_size_limit)) } };
		internal = { type = "wait", condition = "internal-server-error", text = "Could not create an upload slot" };
	});
end
local upload_errors = { [NS] = error_registry(NS), [NS_LEGACY] = error_registry(NS_LEGACY) };

-- An error object from the registry, with a more precise text when there is one.
local function slot_error(ns, name, text)
	local err = upload_errors[ns].new(name);
	err.text = text or err.text;
	return err;
end

-- -> { put = url, get = url, key = object key, size = bytes } | nil, error
local function issue_slot(ns, filename, size_text, content_type)
	local problem = request.check_filename(filename);
	if problem then
		return nil, slot_error(ns, "filename", problem);
	end
	local size, size_problem = request.parse_size(size_text);
	if size_problem == "too-large" or (size and size > file_size_limit) then
		return nil, slot_error(ns, "toolarge");
	elseif not size then
		return nil, slot_error(ns, "filesize");
	end
	if content_type == "" then
		content_type = nil; -- some clients send an empty type: nothing to sign
	elseif content_type then
		problem = request.check_content_type(content_type);
		if problem then
			return nil, slot_error(ns, "filetype", problem);
		end
	end
	local put, get_or_err, _, key = signer:presign(filename, size, sign_content_type and content_type or nil);
	if not put then
		module:log("error", "Could not sign a slot: %s", get_or_err);
		return nil, slot_error(ns, "internal");
	end
	return { put = put, get = get_or_err, key = key, size = size };
end

local function handle_slot_request(event)
	local stanza, origin = event.stanza, event.origin;
	local req = stanza.tags[1];
	local ns = req.attr.xmlns;

	local slot, err = issue_slot(ns, request.parse(req));
	if not slot then
		origin.send(st.error_reply(stanza, err));
		return true;
	end
	module:log("info", "Upload slot for %s: %d bytes, key %s", jid.bare(stanza.attr.from), slot.size, slot.key);
	origin.send(request.slot_reply(stanza, ns, slot.put, slot.get));
	return true;
end

module:hook("iq-get/host/" .. NS .. ":request", handle_slot_request);
module:hook("iq-get/host/" .. NS_LEGACY .. ":request", handle_slot_request);
