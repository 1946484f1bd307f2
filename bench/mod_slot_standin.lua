-- mod_slot_standin: Prosody's floor for an XEP-0363 slot, for bench/prosody_cost.py.
--
-- Answers every <request xmlns='urn:xmpp:http:upload:0'/> at once with the same
-- <slot/>: fixed PUT and GET URLs as long as mod_http_upload_s3's for the
-- benchmark's config and file names (418 and 135 characters, with the same
-- number of '&' to escape), and no checks, no signing, no logging. What is left
-- is what Prosody itself spends on an IQ of this size: parsing the request,
-- routing it to the component, building and serialising the reply, the socket.
--
-- Load it as a component from a plugin path that holds this directory:
--   Component "standin.example.test" "slot_standin"
-- Options (optional): slot_standin_put_url, slot_standin_get_url.

local st = require "util.stanza";

local NS = "urn:xmpp:http:upload:0";

-- A real slot of the benchmark's config (endpoint https://s3.eu-west-2.amazonaws.com,
-- path-style bucket example-upload-bucket, path http_uploads, 300 s, content type
-- not signed) for "holiday photo 000000.jpg", signed once at a fixed time.
local PUT_URL = module:get_option_string("slot_standin_put_url",
	"https://s3.eu-west-2.amazonaws.com/example-upload-bucket/http_uploads/8d7e4b5a-2f1c-4e9b-a3d6-0c5f7e2b91a4/"
	.. "holiday%20photo%20000000.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
	.. "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240615%2Feu-west-2%2Fs3%2Faws4_request"
	.. "&X-Amz-Date=20240615T123456Z&X-Amz-Expires=300&X-Amz-SignedHeaders=content-length%3Bhost"
	.. "&X-Amz-Signature=249bcbb0f3fe1b980ee5e1956e24c8796de2e62fe2eaa114619a5c89b40626d5");
local GET_URL = module:get_option_string("slot_standin_get_url",
	"https://s3.eu-west-2.amazonaws.com/example-upload-bucket/http_uploads/8d7e4b5a-2f1c-4e9b-a3d6-0c5f7e2b91a4/"
	.. "holiday%20photo%20000000.jpg");

module:hook("iq-get/host/" .. NS .. ":request", function (event)
	local reply = st.reply(event.stanza):tag("slot", { xmlns = NS })
		:tag("put", { url = PUT_URL }):up()
		:tag("get", { url = GET_URL }):up();
	event.origin.send(reply:reset());
	return true;
end);
