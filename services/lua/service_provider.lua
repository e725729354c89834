-- service_provider: the unique service behind skynet.service. For each name it starts a
-- service_cell once, hands it the dumped main function, and answers queries — those asked
-- while the cell boots wait for it, as in skynet.
local skynet = require "skynet"

-- name -> { waiting = {responses} | nil, address, booting, error, init, time }
local entries = {}

local function entry(name)
	local e = entries[name]
	if not e then
		e = { waiting = {} }
		entries[name] = e
	end
	return e
end

local function answer_waiting(e, ok, address)
	for _, respond in ipairs(e.waiting) do
		if ok then
			respond(true, address)
		else
			respond(false)
		end
	end
	e.waiting = nil
end

local command = {}

function command.query(name)
	local e = entry(name)
	if e.waiting then
		e.waiting[#e.waiting + 1] = skynet.response()
	elseif e.address then
		skynet.ret(skynet.pack(e.address))
	else
		error(e.error)
	end
end

function command.test(name)
	local e = entry(name)
	if e.booting then
		skynet.ret(skynet.pack(nil, true))
	elseif e.address then
		skynet.ret(skynet.pack(e.address))
	elseif e.error then
		error(e.error)
	else
		skynet.ret()
	end
end

local function boot(address, e, code, ...)
	skynet.call(address, "lua", "init", code, ...)
	local n = select("#", ...)
	if n > 0 then
		local words = {}
		for i = 1, n do
			words[i] = tostring((select(i, ...)))
		end
		e.init = table.concat(words, ",")
	end
	e.time = skynet.time()
end

function command.launch(name, code, ...)
	local e = entry(name)
	if e.address then
		return skynet.ret(skynet.pack(e.address))
	end
	if e.booting then
		e.waiting[#e.waiting + 1] = skynet.response()
		return
	end
	e.booting = true
	local ok, address = pcall(skynet.newservice, "service_cell", name)
	local err
	if ok then
		ok, err = xpcall(boot, debug.traceback, address, e, code, ...)
	else
		err, address = address, nil
	end
	e.booting = nil
	if not ok then
		if address then
			skynet.send(address, "debug", "EXIT")
		end
		e.error = err
		answer_waiting(e, false)
		error(err)
	end
	e.address = address
	answer_waiting(e, true, address)
	skynet.ret(skynet.pack(address))
end

function command.close(name)
	local e = entries[name]
	if not e or e.booting then
		return skynet.ret(skynet.pack(nil))
	end
	entries[name] = nil
	skynet.ret(skynet.pack(e.address))
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = command[cmd]
		if not f then
			error("service_provider: unknown command " .. tostring(cmd))
		end
		f(...)
	end)
	skynet.info_func(function()
		local info = {}
		for name, e in pairs(entries) do
			local status
			if e.booting then
				status = "booting"
			elseif e.waiting then
				status = "waiting(" .. #e.waiting .. ")"
			end
			info[e.address and skynet.address(e.address) or name] = {
				init = e.init,
				name = name,
				time = e.time and os.date("%Y %b %d %T %z", math.floor(e.time)),
				status = status,
			}
		end
		return info
	end)
end)
