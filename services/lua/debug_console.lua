-- debug_console: skynet's admin console (service/debug_console.lua), written for skywasm.
-- Start it with skynet.newservice("debug_console", [ip,] port); ip defaults to 127.0.0.1.
--
-- A line protocol over TCP: the console greets with "Welcome to skynet console", then runs
-- one command per line. Whatever a command prints is followed by a line "<CMD OK>", or by
-- the error text and "<CMD Error>". A table result is printed one "key<TAB>value" line per
-- entry, sorted by tostring(key); a value that is itself a table is printed on the same line
-- as "k:v" pairs (sorted the same way) separated by tabs. An empty line does nothing.
--
-- A connection whose first line starts with "GET " or "POST " is one HTTP request: the path
-- segments of a GET ("GET /call/:0000000a/PING HTTP/1.1"; the query string is ignored) are
-- the command and its arguments, each URL-decoded; the body of a POST is a command line.
-- As in skynet, the answer is the console's plain output (no status line, no headers), and
-- the connection closes after it.
--
-- Every connection is served by its own coroutine, every command runs under pcall: a failing
-- command, or a client that goes away in the middle of one, leaves the console serving.
local skynet = require "skynet"
local core = require "skynet.core"
local socket = require "skynet.socket"

local tostring, tonumber, type, pairs, ipairs, select, pcall, error =
	tostring, tonumber, type, pairs, ipairs, select, pcall, error
local tconcat, tsort, tpack, tunpack = table.concat, table.sort, table.pack, table.unpack
local sformat, schar = string.format, string.char
local tointeger = math.tointeger

local args = tpack(...)
if args.n > 2 then
	error("debug_console: too many arguments (debug_console [ip] port)")
end
local listen_ip = args.n == 2 and args[1] or "127.0.0.1"
local listen_port = args.n > 0 and tonumber(args[args.n])
if not listen_port then
	error("debug_console: need a port (debug_console [ip] port)")
end

-- default time (centiseconds) the launcher waits for each service in stat, mem and gc
local TIMEOUT = 300
-- size limits of an HTTP request's header and body
local HTTP_HEADER_LIMIT = 8192
local HTTP_BODY_LIMIT = 8192

local COMMAND = {} -- name -> function(arg...) over the command's words
local COMMANDX = {} -- name -> function(request): needs the command's raw text

---------------------------------------------------------------------------------------------
-- output

local function by_name(a, b)
	return tostring(a) < tostring(b)
end

local function sorted_keys(t)
	local keys = {}
	for k in pairs(t) do
		keys[#keys + 1] = k
	end
	tsort(keys, by_name)
	return keys
end

-- a table shown inside one line: "k:v" pairs, tab-separated
local function inline_table(t)
	local parts = {}
	for i, k in ipairs(sorted_keys(t)) do
		parts[i] = tostring(k) .. ":" .. tostring(t[k])
	end
	return tconcat(parts, "\t")
end

local function dump_table(print, t)
	for _, k in ipairs(sorted_keys(t)) do
		local v = t[k]
		if type(v) == "table" then
			print(k, inline_table(v))
		else
			print(k, tostring(v))
		end
	end
end

-- print(...) for a connection: the values as strings, tab-separated, then a newline. Writing
-- to a socket that has closed does nothing.
local function printer(id)
	return function(...)
		local parts = {}
		for i = 1, select("#", ...) do
			local v = select(i, ...)
			if v == nil then
				break
			end
			parts[i] = tostring(v)
		end
		socket.write(id, tconcat(parts, "\t") .. "\n")
	end
end

---------------------------------------------------------------------------------------------
-- running a command

local function split_words(text)
	local words = {}
	for w in string.gmatch(text, "%S+") do
		words[#words + 1] = w
	end
	return words
end

-- The raw text of a command from its `i`-th word on (the separator after the word before it
-- removed), or nil when there is none. A request from a command line keeps its own spacing;
-- one from an HTTP path joins its segments with single spaces.
local function rest(request, i)
	local text
	if request.line then
		local pattern = "^%s*" .. string.rep("%S+%s+", i - 2) .. "%S+%s(.+)$"
		text = string.match(request.line, pattern)
	elseif #request.words >= i then
		text = tconcat(request.words, " ", i)
	end
	if text == "" then
		return nil
	end
	return text
end

-- `words`: the command and its arguments; `line`: the raw command line, nil for a request
-- built from an HTTP path.
local function docmd(print, words, line, fd)
	local name = words[1]
	local ok, result
	local f = name and COMMAND[name]
	if f then
		ok, result = pcall(f, tunpack(words, 2))
	else
		f = name and COMMANDX[name]
		if f then
			ok, result = pcall(f, { words = words, line = line, fd = fd })
		else
			print("Invalid command, type help for command list")
		end
	end
	if ok then
		if result then
			local t = type(result)
			if t == "table" then
				dump_table(print, result)
			elseif t == "string" then
				print(result)
			else
				print(tostring(result))
			end
		end
		print("<CMD OK>")
	else
		-- (an unknown command leaves `result` nil: an empty line, as in skynet)
		print(result)
		print("<CMD Error>")
	end
end

---------------------------------------------------------------------------------------------
-- the one-shot HTTP form

local function strip_cr(line)
	if string.sub(line, -1) == "\r" then
		return string.sub(line, 1, -2)
	end
	return line
end

local function read_http_request(id, first)
	local request = strip_cr(first)
	local method, target, version = string.match(request, "^(%a+)%s+(.-)%s+HTTP/([%d%.]+)$")
	if not method then
		error("bad HTTP request line: " .. request, 0)
	end
	version = tonumber(version)
	if not version or version < 1.0 or version > 1.1 then
		error("HTTP version not supported: " .. request, 0)
	end
	local header = {}
	local size = #first + 1
	local last
	while true do
		local line = socket.readline(id, "\n")
		if not line then
			error("connection closed in the HTTP header", 0)
		end
		size = size + #line + 1
		if size > HTTP_HEADER_LIMIT then
			error("HTTP header too large", 0)
		end
		line = strip_cr(line)
		if line == "" then
			break
		end
		local c = string.byte(line, 1)
		if c == 9 or c == 32 then -- a continuation of the header line before
			if not last then
				error("bad HTTP header line: " .. line, 0)
			end
			header[last] = header[last] .. string.sub(line, 2)
		else
			local name, value = string.match(line, "^(.-):%s*(.*)$")
			if not name then
				error("bad HTTP header line: " .. line, 0)
			end
			name = string.lower(name)
			if header[name] then
				header[name] = header[name] .. ", " .. value
			else
				header[name] = value
			end
			last = name
		end
	end
	local body = ""
	if method == "POST" then
		if header["transfer-encoding"] then
			error("HTTP transfer-encoding is not supported: " .. header["transfer-encoding"], 0)
		end
		local length = header["content-length"]
		if length then
			local n = tointeger(tonumber(length))
			if not n or n < 0 then
				error("bad HTTP content-length: " .. length, 0)
			end
			if n > HTTP_BODY_LIMIT then
				error("HTTP body too large", 0)
			end
			if n > 0 then
				body = socket.read(id, n)
				if not body then
					error("connection closed in the HTTP body", 0)
				end
			end
		end
	end
	return method, target, body
end

local function url_decode(text)
	return (string.gsub(text, "%%(%x%x)", function(hex)
		return schar(tonumber(hex, 16))
	end))
end

-- "/call/:0000000a/PING?x" -> { "call", ":0000000a", "PING" }
local function path_words(target)
	local path = string.match(target, "^[^?#]*")
	local words = {}
	for segment in string.gmatch(path, "[^/]+") do
		local word = url_decode(segment)
		if word ~= "" then
			words[#words + 1] = word
		end
	end
	return words
end

local function http_request(id, first, print)
	local method, target, body = read_http_request(id, first)
	if method == "POST" then
		docmd(print, split_words(body), body, id)
	else
		docmd(print, path_words(target), nil, id)
	end
end

---------------------------------------------------------------------------------------------
-- connections

local function console_main_loop(id, print, addr)
	print("Welcome to skynet console")
	skynet.error(addr, "connected")
	local ok, err = pcall(function()
		while true do
			local line = socket.readline(id, "\n")
			if not line then
				break
			end
			if string.sub(line, 1, 4) == "GET " or string.sub(line, 1, 5) == "POST " then
				http_request(id, line, print)
				break
			end
			line = strip_cr(line)
			if string.find(line, "%S") then
				docmd(print, split_words(line), line, id)
			end
		end
	end)
	if not ok then
		skynet.error(id, err)
	end
	skynet.error(addr, "disconnect")
	socket.close(id)
end

skynet.start(function()
	local listen_id, ip, port = socket.listen(listen_ip, listen_port)
	skynet.error("Start debug console at " .. tostring(ip) .. ":" .. tostring(port))
	socket.start(listen_id, function(id, addr)
		skynet.fork(function()
			local ok, err = socket.start(id)
			if not ok then
				skynet.error(addr, "start failed:", err)
				return
			end
			console_main_loop(id, printer(id), addr)
		end)
	end)
end)

---------------------------------------------------------------------------------------------
-- helpers of the commands

-- An address as the console accepts it: ".name" (a local name), ":0000000a" (a handle), or
-- hex digits without the colon, which are taken in this node's harbor.
local function adjust_address(address)
	if type(address) ~= "string" or address == "" then
		error("Need an address", 0)
	end
	local prefix = string.sub(address, 1, 1)
	if prefix == "." then
		local handle = skynet.localname(address)
		if not handle then
			error("Not a valid name", 0)
		end
		return handle
	end
	local hex = prefix == ":" and string.sub(address, 2) or address
	if not string.match(hex, "^%x+$") or #hex > 8 then
		error("Need an address", 0)
	end
	local handle = tonumber(hex, 16)
	if prefix ~= ":" then
		handle = handle | (skynet.harbor(skynet.self()) << 24)
	end
	return handle
end

local function timeout(ti)
	if ti == nil then
		return TIMEOUT
	end
	local n = tonumber(ti)
	if not n then
		error("Invalid timeout " .. ti, 0)
	end
	if n <= 0 then
		return nil -- wait as long as it takes
	end
	return n
end

local function toboolean(x)
	return x and (x == "true" or x == "on")
end

local function unsupported(name, why)
	return function()
		error(sformat("%s is not supported in skywasm (%s)", name, why), 0)
	end
end

-- Runs Lua source inside a service (the debug protocol's RUN): its printed output, or an
-- error with it.
local function run_source(address, source, filename, ...)
	local ok, output = skynet.call(address, "debug", "RUN", source, filename, ...)
	if ok == false then
		error(output, 0)
	end
	return output
end

local function bytes(size)
	if size == nil or size == 0 then
		return nil
	end
	if size < 1024 then
		return size
	end
	if size < 1024 * 1024 then
		return tostring(size / 1024) .. "K"
	end
	return tostring(size / (1024 * 1024)) .. "M"
end

-- How long ago `t` (centiseconds of skynet.now) was: "12.5s", or "[h:]m:ss" past a minute.
local function elapsed(t, now)
	if t == nil then
		return nil
	end
	local d = now - t
	if d < 6000 then
		return tostring(d / 100) .. "s"
	end
	local hours = d // 360000
	d = d - hours * 360000
	local minutes = d // 6000
	local seconds = (d - minutes * 6000) / 100
	return sformat("%s%d:%.2gs", hours == 0 and "" or (hours .. ":"), minutes, seconds)
end

local function command_result(what, address, result)
	if result == nil then
		error(sformat("%s %s failed", what, skynet.address(address)), 0)
	end
end

---------------------------------------------------------------------------------------------
-- commands

function COMMAND.help()
	return {
		help = "help : this help message",
		list = "list : list all the services",
		stat = "stat : the stats of all the services (mqlen, message, cpu, busy, tenant), from the host: no service is asked",
		top = "top [cpu|queue|memory] [n] [seconds] : the n (10) services using the most CPU over the last seconds (10), or with the longest mailboxes, or the most memory",
		tenants = "tenants : each tenant's usage against its limits (services, memory, queued messages, sockets, timers), its CPU time, refusals and faults",
		info = "info address ... : the service's information (its INFO debug command)",
		exit = "exit address : make a lua service exit",
		kill = "kill address : kill a service",
		mem = "mem [timeout] : the memory of all the lua services",
		gc = "gc [timeout] : make every lua service collect garbage",
		start = "start name args... : launch a new lua service",
		log = "log name args... : launch a new lua service with its message log on",
		service = "service : list the unique services",
		task = "task address : the suspended tasks of a service",
		uniqtask = "uniqtask address : the tasks of a service grouped by stack",
		killtask = "killtask address threadname : kill a task (names as listed by task)",
		inject = "inject address file.lua : run a file inside a service",
		dbgcmd = "dbgcmd address CMD args... : run a debug command (RUN takes the rest of the line as Lua source)",
		logon = "logon address : start the message log of a service",
		logoff = "logoff address : stop the message log of a service",
		signal = "signal address [sig] : send a signal to a service",
		ping = "ping address : the round trip time of a debug PING, in centiseconds",
		call = "call address args... : skynet.call(address, \"lua\", args...), args as Lua literals",
		trace = "trace address [proto] [on|off] : turn the trace log of a protocol on or off",
		netstat = "netstat : all the sockets",
		getenv = "getenv name : skynet.getenv(name)",
		setenv = "setenv name value : skynet.setenv(name, value)",
		upgrade = "upgrade address name [args...] : replace a service's code at its address (a Lua service: its script), keeping its state if it hands it over",
		["upgrade-all"] = "upgrade-all name : upgrade every service running name (a script or a module) to what its file holds now",
		cluster = "cluster [reload] : the cluster's nodes (address, connection, calls in flight, bytes), or reload the node table from the cluster file",
		harbor = "harbor : this node's harbor network: its master, the other nodes and their links, the global names",
		snax = "launch a new snax service",
		clearcache = "clear lua code cache (snlua has none: sources are read at every load)",
		debug = "(not supported in skywasm)",
		cmem = "Show each service's wasm memory",
		jmem = "Show the wasm memory under jemalloc's stat names",
		profactive = "profactive [on|off] : heap profiling (none in skywasm: always deactive)",
		dumpheap = "dumpheap : write each service's wasm memory to the log",
	}
end

-- skywasm: the linear memory of the service at `address` (":%08x" text), in KiB, or nil.
local function wasm_kib(address)
	local bytes = tonumber(core.command("MEMORY", address))
	return bytes and bytes // 1024
end

-- What skywasm adds to a service's line: its wasm memory and its tenant.
local function skywasm_suffix(address)
	local kib = wasm_kib(address)
	if kib == nil then
		return ""
	end
	local tenant = core.command("TENANT", address)
	tenant = tenant and tenant:match("^(%S+)") or "?"
	return sformat(" [wasm %d KiB, tenant %s]", kib, tenant)
end

-- A launcher answer (address -> text) with skywasm's additions at the end of each line,
-- and the code a service runs now when an upgrade changed it from its launch line.
local function with_skywasm_suffix(answer, launched)
	for address, text in pairs(answer) do
		local now = core.command("CODE", address)
		local upgraded = ""
		if launched and now and launched[address] and now ~= launched[address] then
			upgraded = sformat(" (upgraded: %s)", now)
		end
		answer[address] = tostring(text) .. upgraded .. skywasm_suffix(address)
	end
	return answer
end

function COMMAND.list()
	local list = skynet.call(".launcher", "lua", "LIST")
	local launched = {}
	for address, text in pairs(list) do
		launched[address] = text
	end
	return with_skywasm_suffix(list, launched)
end

-- skywasm: the host answers for every service (a wedged one cannot hold the console up);
-- what only the service knows (its tasks) is `info address` or `task address`.
function COMMAND.stat()
	local stats = {}
	for line in core.command("STATS", ""):gmatch("[^\n]+") do
		local address, rest = line:match("^(%S+)%s+(.*)$")
		local fields = {}
		for key, value in rest:gmatch("(%w+)=(%S+)") do
			fields[key] = tonumber(value) or value
		end
		stats[address] = fields
	end
	return stats
end

function COMMAND.top(...)
	local answer = core.command("TOP", table.concat({ ... }, " "))
	if answer == nil then
		error("usage: top [cpu|queue|memory] [n] [seconds]", 0)
	end
	return answer
end

function COMMAND.tenants()
	return core.command("TENANTS", "")
end

function COMMAND.mem(ti)
	return with_skywasm_suffix(skynet.call(".launcher", "lua", "MEM", timeout(ti)))
end

function COMMAND.gc(ti)
	return skynet.call(".launcher", "lua", "GC", timeout(ti))
end

function COMMAND.kill(address)
	return skynet.call(".launcher", "lua", "KILL", adjust_address(address))
end

function COMMAND.exit(address)
	skynet.send(adjust_address(address), "debug", "EXIT")
end

function COMMAND.start(...)
	local ok, addr = pcall(skynet.newservice, ...)
	if not ok then
		return "Failed"
	end
	if not addr then
		return "Exit"
	end
	return { [skynet.address(addr)] = (...) }
end

function COMMAND.log(...)
	local ok, addr = pcall(skynet.call, ".launcher", "lua", "LOGLAUNCH", "snlua", ...)
	if not ok or not addr then
		return "Failed"
	end
	return { [skynet.address(addr)] = (...) }
end

function COMMAND.service()
	return skynet.call(".service", "lua", "LIST")
end

function COMMAND.info(address, ...)
	return skynet.call(adjust_address(address), "debug", "INFO", ...)
end

function COMMAND.task(address)
	return skynet.call(adjust_address(address), "debug", "TASK")
end

function COMMAND.uniqtask(address)
	return skynet.call(adjust_address(address), "debug", "UNIQTASK")
end

function COMMAND.killtask(address, threadname)
	return skynet.call(adjust_address(address), "debug", "KILLTASK", threadname)
end

-- The host reads the file (a sandboxed service opens no files itself; reading one needs
-- the files capability, which the node's own services have), then it runs inside the
-- service through the debug protocol's RUN.
function COMMAND.inject(address, filename, ...)
	address = adjust_address(address)
	if not filename then
		error("Need a file name (inject address file.lua)", 0)
	end
	local ok, pattern, path, source = pcall(core.load_source, "file", filename)
	if not ok or not pattern then
		error(sformat("Can't open %s", filename), 0)
	end
	return run_source(address, source, path, ...)
end

-- dbgcmd address CMD args... : the first result of the debug command. RUN takes the rest of
-- the line as the Lua source to run and prints what it printed, as inject does.
function COMMANDX.dbgcmd(request)
	local words = request.words
	local address = adjust_address(words[2])
	local cmd = words[3]
	if not cmd then
		error("Need a debug command (dbgcmd address CMD ...)", 0)
	end
	if cmd == "RUN" then
		local source = rest(request, 4)
		if not source then
			error("Need the Lua source to run (dbgcmd address RUN source)", 0)
		end
		return run_source(address, source)
	end
	return (skynet.call(address, "debug", cmd, tunpack(words, 4)))
end

function COMMAND.logon(address)
	address = adjust_address(address)
	command_result("logon", address, core.command("LOGON", skynet.address(address)))
end

function COMMAND.logoff(address)
	address = adjust_address(address)
	command_result("logoff", address, core.command("LOGOFF", skynet.address(address)))
end

function COMMAND.signal(address, sig)
	address = adjust_address(address)
	local param = skynet.address(address)
	if sig then
		local n = tointeger(tonumber(sig))
		if not n then
			error("Invalid signal " .. sig, 0)
		end
		param = sformat("%s %d", param, n)
	end
	command_result("signal", address, core.command("SIGNAL", param))
end

function COMMAND.ping(address)
	address = adjust_address(address)
	local start = skynet.now()
	skynet.call(address, "debug", "PING")
	return tostring(skynet.now() - start)
end

function COMMAND.trace(address, proto, flag)
	address = adjust_address(address)
	if flag == nil then
		if proto == "on" or proto == "off" then
			proto = toboolean(proto)
		end
	else
		flag = toboolean(flag)
	end
	skynet.call(address, "debug", "TRACELOG", proto, flag)
end

-- call address args... : the arguments are Lua literals (evaluated with no globals); every
-- result is printed by its position, then n.
function COMMANDX.call(request)
	local address = adjust_address(request.words[2])
	local text = rest(request, 3)
	if not text then
		error("need arguments", 0)
	end
	local f = load("return " .. text, "debug console", "t", {})
	if not f then
		error("Invalid arguments", 0)
	end
	local values = tpack(pcall(f))
	if not values[1] then
		error(values[2], 0)
	end
	return tpack(skynet.call(address, "lua", tunpack(values, 2, values.n)))
end

function COMMAND.netstat()
	local stat = socket.netstat()
	local now = skynet.now()
	for _, info in ipairs(stat) do
		if type(info.address) == "number" then
			info.address = skynet.address(info.address)
		end
		if type(info.owner) == "number" then
			info.owner = skynet.address(info.owner)
		end
		info.read = bytes(info.read)
		info.write = bytes(info.write)
		info.wbuffer = bytes(info.wbuffer)
		info.rtime = elapsed(info.rtime, now)
		info.wtime = elapsed(info.wtime, now)
	end
	return stat
end

-- skywasm: upgrade address name [args...] : replace the service's code at its address
function COMMAND.upgrade(address, name, ...)
	if not name then
		error("Need the new code (upgrade address name [args...])", 0)
	end
	local kind, detail, size = skynet.upgrade(adjust_address(address), name, ...)
	if kind == "restored" then
		return sformat("restored (state version %d, %d bytes)", detail, size)
	end
	return "fresh: " .. tostring(detail)
end

-- skywasm: upgrade-all name : every service launched through the launcher that runs `name`
-- (a Lua script, or a wasm module) gets what the file holds now; an address -> outcome table
COMMAND["upgrade-all"] = function(name)
	if not name then
		error("Need a script or module name (upgrade-all name)", 0)
	end
	local result = {}
	for address in pairs(skynet.call(".launcher", "lua", "LIST")) do
		local code = core.command("CODE", address) or ""
		local module, script = code:match("^(%S+)%s*(%S*)")
		if module == name or (module == "snlua" and script == name) then
			local ok, kind, detail, size = pcall(skynet.upgrade, address, name)
			if not ok then
				result[address] = tostring(kind)
			elseif kind == "restored" then
				result[address] = sformat("restored (state version %d, %d bytes)", detail, size)
			else
				result[address] = "fresh: " .. tostring(detail)
			end
		end
	end
	return result
end

-- skywasm: cluster [reload] : the nodes of the cluster and their connections
function COMMAND.cluster(what)
	local clusterd = skynet.localname(".clusterd")
	if not clusterd then
		return "the cluster is not in use (clusterd is not running)"
	end
	if what == "reload" then
		skynet.call(clusterd, "lua", "reload")
		return "the node table was reloaded"
	end
	return skynet.call(clusterd, "lua", "nodes")
end

-- skywasm: harbor : the harbor network as this node sees it (one line each)
function COMMAND.harbor()
	return core.command("HARBOR", "")
end

function COMMAND.getenv(name)
	if not name then
		error("Need a name (getenv name)", 0)
	end
	return { [name] = tostring(skynet.getenv(name)) }
end

function COMMAND.setenv(name, value)
	if not name or not value then
		error("Need a name and a value (setenv name value)", 0)
	end
	skynet.setenv(name, value)
end

function COMMAND.snax(...)
	local snax = require "skynet.snax"
	local ok, s = pcall(snax.newservice, ...)
	if not ok then
		return "Failed"
	end
	return { [skynet.address(s.handle)] = ... }
end

-- snlua reads sources afresh at every load (skynet.codecache): nothing to clear.
function COMMAND.clearcache()
	require("skynet.codecache").clear()
end

COMMAND.debug = unsupported("debug", "there is no debug_agent")

-- skynet's C memory per service; here each service's wasm memory (skynet.memory).
function COMMAND.cmem()
	local memory = require "skynet.memory"
	local result = {}
	local total, blocks = 0, 0
	for address, bytes in pairs(memory.info()) do
		result[skynet.address(address)] = bytes
		total, blocks = total + bytes, blocks + 1
	end
	result.total = total
	result.block = blocks
	return result
end

function COMMAND.jmem()
	local result = {}
	for k, v in pairs(require("skynet.memory").jestat()) do
		result[k] = sformat("%11d  %8.2f Mb", v, v / 1048576)
	end
	return result
end

-- jemalloc's heap dump: here each service's wasm memory, to the log and as the answer.
function COMMAND.dumpheap()
	require("skynet.memory").dumpheap()
	return COMMAND.cmem()
end

function COMMAND.profactive(flag)
	if flag == "on" then
		error("heap profiling does not exist in skywasm: cmem shows each service's wasm memory", 0)
	end
	return "heap profilling is deactive"
end
