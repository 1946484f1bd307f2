-- Test-only stand-in for s3sign, found before the real s3sign.so because the
-- policy test puts this folder on LUA_PATH. It delegates to the real library,
-- except that a slot fails for file names starting with "fail-signer", the way
-- the C library fails when no random bytes can be had.
local path = assert(package.searchpath("s3sign", package.cpath));
local real = assert(package.loadlib(path, "luaopen_s3sign"))();

local fault = setmetatable({}, { __index = real });

function fault.new(config)
	local signer, err = real.new(config);
	if not signer then
		return nil, err;
	end
	-- every method of the real signer, slot() failing for the marked file names
	return setmetatable({}, { __index = function (_, method)
		return function (_, ...)
			local filename = select(2, ...);
			if method == "slot" and filename:find("^fail%-signer") then
				return nil, "filename: no random bytes for its id";
			end
			return signer[method](signer, ...);
		end;
	end });
end

return fault;
