-- luacheck: ignore 212/self
-- busted's helper (the Makefile passes --helper): the rooms load one another
-- with module:require, as Prosody's plugin loader gives them; here it is a
-- dofile from the tree, run from its top.
_G.module = {
	require = function (_, name)
		return dofile("lua/mod_http_upload_s3/" .. name .. ".lib.lua");
	end,
};

-- A store as module:open_store(name, "map") and (name, "keyval") give, in
-- memory, both views of the same data, as Prosody's storage keeps them; `failing`
-- makes every call fail, as a database that went away.
-- memory_records_stores(): the three records.lib.lua takes (the map, its keyval view, the index).
function _G.memory_store()
	local data = {};
	local map, keyval = { remove = {}, failing = false, data = data }, {};
	local function down()
		return map.failing and "database is down" or nil;
	end
	function map:set_keys(user, changes)
		if down() then return nil, down(); end
		local t = data[user] or {};
		for key, value in pairs(changes) do
			if value == self.remove then t[key] = nil; else t[key] = value; end
		end
		data[user] = next(t) and t or nil;
		return true;
	end
	function keyval:get(user)
		if down() then return nil, down(); end
		return data[user];
	end
	function keyval:set(user, value)
		if down() then return nil, down(); end
		data[user] = value;
		return true;
	end
	function keyval:users()
		if down() then error(down()); end
		local users = {};
		for user in pairs(data) do table.insert(users, user); end
		table.sort(users);
		local i = 0;
		return function () i = i + 1; return users[i]; end;
	end
	return map, keyval;
end

function _G.memory_records_stores()
	local map, keyval = memory_store();
	local _, index = memory_store();
	return map, keyval, index;
end
