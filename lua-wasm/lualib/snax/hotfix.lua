-- snax.hotfix: patches a running snax service's methods in place, as skynet's. The patch is
-- snax source; each method it defines replaces the method of the same group and name, and
-- its free names (its upvalues left nil, and its _ENV) are joined to the upvalues of the
-- same name in the old methods, so the patched code shares the service's state. A
-- `hotfix` function in the patch runs last; its results are returned.
local snax_interface = require "snax.interface"

local getupvalue, upvalueid, upvaluejoin = debug.getupvalue, debug.upvalueid, debug.upvaluejoin

-- The upvalue id of f's _ENV, if it has one.
local function env_id(f)
	local i = 1
	while true do
		local name = getupvalue(f, i)
		if name == nil then
			return nil
		elseif name == "_ENV" then
			return upvalueid(f, i)
		end
		i = i + 1
	end
end

-- name -> { func, index, id } for every upvalue of f, and of the functions it reaches
-- through upvalues that share its _ENV (the code of the same file).
local function collect_upvalues(f, found, env)
	local i = 1
	while true do
		local name, value = getupvalue(f, i)
		if name == nil then
			return
		end
		local id = upvalueid(f, i)
		local known = found[name]
		if known then
			assert(known.id == id, string.format("ambiguity local value %s", name))
		else
			found[name] = { func = f, index = i, id = id }
			if type(value) == "function" and env_id(value) == env then
				collect_upvalues(value, found, env)
			end
		end
		i = i + 1
	end
end

-- A function whose first upvalue is this module's _ENV: the fallback for methods without one.
local function module_env()
	return _ENV
end

local function all_upvalues(methods)
	local found = {}
	for _, method in pairs(methods) do
		local f = method[4]
		if f then
			collect_upvalues(f, found, env_id(f))
		end
	end
	if not found._ENV then
		found._ENV = { func = module_env, index = 1 }
	end
	return found
end

local function find_method(methods, group, name)
	for _, method in pairs(methods) do
		if method[2] == group and method[3] == name then
			return method
		end
	end
end

-- The environment patches load in; an upvalue holding it is the patch's _ENV.
local patch_env = {}
for k, v in pairs(_ENV) do
	patch_env[k] = v
end

local function join_free_upvalues(upvalues, f)
	local i = 1
	while true do
		local name, value = getupvalue(f, i)
		if name == nil then
			return
		end
		if value == nil or value == patch_env then
			local old = upvalues[name]
			if old then
				upvaluejoin(f, i, old.func, old.index)
			end
		elseif type(value) == "function" then
			join_free_upvalues(upvalues, value)
		end
		i = i + 1
	end
end

local function apply(methods, source, ...)
	local patch = snax_interface("patch", patch_env, function(_, _, G)
		return load(source, "=patch", "bt", G)
	end)
	local upvalues = all_upvalues(methods)
	for _, method in pairs(patch) do
		local group, name, f = method[2], method[3], method[4]
		if f then
			local target =
				assert(find_method(methods, group, name), string.format("Patch mismatch %s.%s", group, name))
			join_free_upvalues(upvalues, f)
			target[4] = f
		end
	end
	local hotfix = find_method(patch, "system", "hotfix")
	if hotfix and hotfix[4] then
		return hotfix[4](...)
	end
end

-- hotfix(methods, source, ...) -> true, results of the patch's hotfix; or false, error
return function(methods, source, ...)
	return pcall(apply, methods, source, ...)
end
