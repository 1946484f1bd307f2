-- bench_slot.lua - nanoseconds per upload slot, seen from Lua.
--
--   lua5.4 bench/bench_slot.lua [BUILD_DIR]
--
-- lua_slot_ns        s3sign signer:slot(prefix, filename, size, type), as the
--                    module calls it: a random UUID, the clock, the object
--                    key, a presigned PUT URL and the public GET URL
-- lua_slot_fixed_ns  the same with {now=, id=} given (no UUID, no clock)
-- lua_hashes_ns      the same slot from lua_presign.lua: plain Lua over
--                    Prosody's util.hashes, signing key derived per URL
--
-- Both signers are first checked to give identical slots for fixed inputs.
-- Timing uses os.clock (CPU time), fine for a CPU-bound loop: iterations are
-- calibrated, and the best of several repetitions is kept.

local build = arg[1] or "build"
local here = (arg[0]:match("^(.*)/[^/]*$") or ".")

package.cpath = build .. "/?.so;/usr/lib/prosody/?.so;" .. package.cpath
package.path = here .. "/?.lua;/usr/lib/prosody/?.lua;" .. package.path

local s3sign = require "s3sign"
local lua_presign = require "lua_presign"

-- The slot every benchmark signs; bench_sigv4.c and bench_botocore.py use the same.
local config = {
	access_key_id = "AKIAIOSFODNN7EXAMPLE",
	secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	region = "eu-west-2",
	bucket = "example-upload-bucket",
	endpoint = "https://s3.eu-west-2.amazonaws.com",
	path_style = true,
	put_expires = 300,
}
local PREFIX, FILENAME, SIZE, TYPE = "http_uploads/", "holiday photo.jpg", 1843217, "image/jpeg"
local FIXED = { now = 1718454896, id = "8d7e4b5a-2f1c-4e9b-a3d6-0c5f7e2b91a4" }

local REPS, TARGET_REP, CALIBRATE = 10, 0.04, 0.02

local c_signer = assert(s3sign.new(config))
local l_signer = lua_presign.new(config)

-- ---- the baseline must sign exactly what the binding signs ----------------

local function same_slot(label, ...)
	local a = table.pack(c_signer:slot(...))
	local b = table.pack(l_signer:slot(...))
	for i, what in ipairs { "put_url", "get_url", "key" } do
		if a[i] ~= b[i] then
			error(("%s: %s differs\n  s3sign: %s\n  lua:    %s"):format(label, what, tostring(a[i]), tostring(b[i])))
		end
	end
	return a[1]
end

local fixed_url = same_slot("typical slot", PREFIX, FILENAME, SIZE, TYPE, FIXED)
same_slot("no content type", PREFIX, FILENAME, SIZE, nil, FIXED)
same_slot("awkward name", PREFIX, "Fête (1)+été~ü/../x y.tar.gz", 0, "text/plain;  charset=utf-8 ", FIXED)
same_slot("presigned GET", "", FILENAME, SIZE, TYPE, { now = FIXED.now, id = FIXED.id, get_expires = 3600 })

-- and without options both must make fresh, well-formed slots
do
	local put_url, get_url, key = c_signer:slot(PREFIX, FILENAME, SIZE, TYPE)
	assert(key:match("^http_uploads/%x+%-%x+%-4%x+%-[89ab]%x+%-%x+/holiday photo%.jpg$"), key)
	assert(put_url:find("X%-Amz%-Signature=%x+$") and get_url:find("holiday%%20photo%.jpg$"))
	local l_put = l_signer:slot(PREFIX, FILENAME, SIZE, TYPE)
	assert(l_put:find("X%-Amz%-Signature=%x+$"))
end

-- ---- timing ----------------------------------------------------------------

local clock = os.clock

local function timed(f, n)
	collectgarbage()
	local t0 = clock()
	f(n)
	return clock() - t0
end

-- ns per iteration of each loop f(n): calibrate each, then REPS rounds that
-- run every loop once (interleaved, so that a noisy spell on the machine
-- hits them all alike), keeping each one's best
local function measure_all(loops)
	local n, best = {}, {}
	for i, f in ipairs(loops) do
		local iters = 16
		local t = timed(f, iters)
		while t < CALIBRATE do
			iters = t < CALIBRATE / 64 and iters * 16 or iters * 2
			t = timed(f, iters)
		end
		n[i] = math.floor(iters * TARGET_REP / t) + 1
		best[i] = math.huge
	end
	for _ = 1, REPS do
		for i, f in ipairs(loops) do
			local per = timed(f, n[i]) / n[i]
			if per < best[i] then best[i] = per end
		end
	end
	for i in ipairs(best) do
		best[i] = best[i] * 1e9
	end
	return table.unpack(best)
end

local function slot_loop(s, opts)
	return function(n)
		for _ = 1, n do
			s:slot(PREFIX, FILENAME, SIZE, TYPE, opts)
		end
	end
end

local slot_ns, slot_fixed_ns, hashes_ns, hashes_fixed_ns = measure_all {
	slot_loop(c_signer), slot_loop(c_signer, FIXED), slot_loop(l_signer), slot_loop(l_signer, FIXED)
}

print(("lua_slot_ns %.1f"):format(slot_ns))
print(("lua_slot_fixed_ns %.1f"):format(slot_fixed_ns))
print(("lua_hashes_ns %.1f"):format(hashes_ns))
print(("lua_hashes_fixed_ns %.1f"):format(hashes_fixed_ns))
print("lua_id_source " .. (package.loaded["util.uuid"] and "util.uuid" or "math.random"))
print("lua_url " .. fixed_url)
