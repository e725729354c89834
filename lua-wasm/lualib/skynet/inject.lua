-- Runs a chunk of Lua source inside a live service (the debug protocol's RUN, the console's
-- inject). The chunk sees the service's globals; `print` is collected into the answer; `_P`
-- gives the protocol table and `_U` the upvalues of the service's dispatch function.
return function(skynet, source, filename, args, dispatch)
	filename = filename or "=inject"
	local output = {}
	local function print(...)
		local values = table.pack(...)
		for i = 1, values.n do
			values[i] = tostring(values[i])
		end
		output[#output + 1] = table.concat(values, "\t", 1, values.n)
	end
	local upvalues = {}
	if dispatch then
		local i = 1
		while true do
			local name, value = debug.getupvalue(dispatch, i)
			if name == nil then
				break
			end
			upvalues[name] = value
			i = i + 1
		end
	end
	local env = setmetatable({ print = print, _U = upvalues, _P = skynet.proto }, { __index = _ENV })
	local func, err = load(source, filename, "bt", env)
	if not func then
		return false, { err }
	end
	local ok, result = skynet.pcall(func, table.unpack(args, 1, args.n))
	if not ok then
		output[#output + 1] = tostring(result)
		return false, output
	end
	return true, output
end
