-- hexfields.lua - the line format sign_cases.lua and authorize_cases.lua share
-- with botocore_crosscheck.py: tab-separated fields, each hex-encoded, so that
-- any byte can travel.

local function unhex(s)
	return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

local function hex(s)
	return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- A line's fields by name, decoded, an empty one as nil (an absent optional
-- value); raises when there are not as many as names.
local function decode(line, names)
	local case, i = {}, 0
	for field in (line .. "\t"):gmatch("([^\t]*)\t") do
		i = i + 1
		case[names[i]] = field ~= "" and unhex(field) or nil
	end
	assert(i == #names, "expected " .. #names .. " fields, got " .. i)
	return case
end

-- "OK" and the values, or "ERR" and the message, as one line.
local function write(ok, ...)
	local fields = table.pack(...)
	io.write(ok and "OK" or "ERR")
	for i = 1, fields.n do
		io.write("\t", hex(tostring(fields[i])))
	end
	io.write("\n")
end

return { decode = decode, write = write }
