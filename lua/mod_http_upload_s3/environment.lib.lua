-- What the rooms take from the process they run in: its variables, files,
-- Prosody's period parser, and HTTP. One adapter, in two flavours:
--
--   environment.prosody()      inside the server: HTTP through net.http, waiting in
--                              a util.async runner (never on the slot path)
--   environment.prosodyctl()   in a command: HTTP through LuaSocket, blocking
--
--   env.getenv(name), env.read_file(path) -> text | nil, err, env.parse_duration(text) (Prosody 13)
--   env.http{ method =, url =, headers =, body = } -> { status, headers (lowercase names), body } | nil, err
--
-- Both kinds of HTTP look the same to the caller, so that the S3 client and
-- the credential sources have one code path for the server and for commands.

local TIMEOUT = 10;   -- seconds for one request, connection included

local function read_file(path)
	local f, err = io.open(path);
	if not f then
		return nil, err;
	end
	local content = f:read("a");
	f:close();
	return content;
end

local function base(http)
	local ok, human = pcall(require, "util.human.io");
	return {
		getenv = os.getenv,
		read_file = read_file,
		parse_duration = ok and human.parse_duration or nil,   -- Prosody 13 and later
		http = http,
	};
end

-- The request's headers with names spelt one way, as net.http spells its defaults
-- ("Content-Type"), so that a header given replaces the default instead of going
-- out beside it; and a body has a length: LuaSocket would send one without as chunks.
local function with_length(headers, body)
	local h = {};
	for name, value in pairs(headers or {}) do
		h[name:lower():gsub("%f[%w]%l", string.upper)] = value;
	end
	if body and not h["Content-Length"] then
		h["Content-Length"] = tostring(#body);
	end
	return h;
end

local function prosody()
	local http = require "net.http";
	local async = require "util.async";
	local timer = require "util.timer";
	return base(function (req)
		local wait, done = async.waiter();
		local response, err;
		local request = http.request(req.url, { method = req.method, headers = with_length(req.headers, req.body),
			body = req.body }, function (body, code, r)
			if response or err then
				return;   -- timed out already
			elseif type(code) ~= "number" or code < 100 then
				err = tostring(body);
			else
				response = { status = code, headers = r and r.headers or {}, body = body or "" };
			end
			done();
		end);
		local timeout = timer.add_task(TIMEOUT, function ()
			if not (response or err) then
				err = ("no answer within %d s"):format(TIMEOUT);
				http.destroy_request(request);
				done();
			end
		end);
		wait();
		timer.stop(timeout);
		return response, err;
	end);
end

local function prosodyctl()
	local socket_http = require "socket.http";
	local ltn12 = require "ltn12";
	return base(function (req)
		local chunks = {};
		local r = {
			url = req.url, method = req.method, headers = with_length(req.headers, req.body),
			source = req.body and ltn12.source.string(req.body), sink = ltn12.sink.table(chunks),
		};
		local requester = socket_http;
		if req.url:find("^https:") then
			requester = require "ssl.https";
			r.verify, r.cafile = "peer", "/etc/ssl/certs/ca-certificates.crt";
			r.protocol, r.options = "any", { "all", "no_sslv2", "no_sslv3" };
		end
		requester.TIMEOUT = TIMEOUT;
		local ok, status, headers = requester.request(r);
		if not ok then
			return nil, tostring(status);
		end
		return { status = status, headers = headers or {}, body = table.concat(chunks) };
	end);
end

return {
	prosody = prosody;
	prosodyctl = prosodyctl;
	TIMEOUT = TIMEOUT;
};
