-- sproto: skynet's Lua API over sproto.core (lua-wasm/src/sproto.rs).
--
--   local sp = sproto.new(bundle)       -- or sproto.parse(text)
--   sp:encode(typename, t), sp:decode(typename, msg [, sz]), sp:pencode, sp:pdecode
--   sp:default(typename [, "REQUEST" | "RESPONSE"]), sp:exist_type, sp:exist_proto
--   sp:request_encode/response_encode/request_decode/response_decode(protoname, ...)
--   local host = sp:host "package"; host:dispatch(msg [, sz]); host:attach(sp2)
local core = require "sproto.core"

local assert = assert
local setmetatable = setmetatable
local tonumber = tonumber

local sproto = {}
local host = {}

local sproto_mt = { __index = sproto }
local host_mt = { __index = host }
local weak = { __mode = "kv" }

-- (a schema is a userdata that frees itself when collected: there is no __gc to add)
local function wrap(cobj)
	return setmetatable({
		__cobj = cobj,
		__tcache = setmetatable({}, weak),
		__pcache = setmetatable({}, weak),
	}, sproto_mt)
end

function sproto.new(bin)
	return wrap(assert(core.newproto(bin)))
end

-- A sproto object on a schema already made by core.newproto (sprotoloader's).
function sproto.sharenew(cobj)
	return wrap(cobj)
end

function sproto.parse(text)
	local parser = require "sprotoparser"
	return sproto.new(parser.parse(text))
end

local function querytype(self, typename)
	local t = self.__tcache[typename]
	if not t then
		t = assert(core.querytype(self.__cobj, typename), "type not found")
		self.__tcache[typename] = t
	end
	return t
end

function sproto:exist_type(typename)
	return self.__tcache[typename] ~= nil or core.querytype(self.__cobj, typename) ~= nil
end

function sproto:encode(typename, t)
	return core.encode(querytype(self, typename), t)
end

function sproto:decode(typename, ...)
	return core.decode(querytype(self, typename), ...)
end

function sproto:pencode(typename, t)
	return core.pack(core.encode(querytype(self, typename), t))
end

function sproto:pdecode(typename, ...)
	return core.decode(querytype(self, typename), core.unpack(...))
end

-- A protocol by name or tag: { name, tag, request, response } (cached under both).
local function queryproto(self, pname)
	local p = self.__pcache[pname]
	if not p then
		local tag, request, response = core.protocol(self.__cobj, pname)
		assert(tag, pname .. " not found")
		local name = pname
		if tonumber(pname) then
			name, tag = tag, pname
		end
		p = { name = name, tag = tag, request = request, response = response }
		self.__pcache[name] = p
		self.__pcache[tag] = p
	end
	return p
end
sproto.queryproto = queryproto

function sproto:exist_proto(pname)
	return self.__pcache[pname] ~= nil or core.protocol(self.__cobj, pname) ~= nil
end

function sproto:request_encode(protoname, t)
	local p = queryproto(self, protoname)
	if p.request then
		return core.encode(p.request, t), p.tag
	end
	return "", p.tag
end

function sproto:response_encode(protoname, t)
	local p = queryproto(self, protoname)
	if p.response then
		return core.encode(p.response, t)
	end
	return ""
end

function sproto:request_decode(protoname, ...)
	local p = queryproto(self, protoname)
	if p.request then
		return core.decode(p.request, ...), p.name
	end
	return nil, p.name
end

function sproto:response_decode(protoname, ...)
	local p = queryproto(self, protoname)
	if p.response then
		return core.decode(p.response, ...)
	end
end

sproto.pack = core.pack
sproto.unpack = core.unpack

function sproto:default(typename, kind)
	if kind == nil then
		return core.default(querytype(self, typename))
	end
	local p = queryproto(self, typename)
	if kind == "REQUEST" then
		if p.request then
			return core.default(p.request)
		end
	elseif kind == "RESPONSE" then
		if p.response then
			return core.default(p.response)
		end
	else
		error "Invalid type"
	end
end

---------------------------------------------------------------------------------------------
-- RPC: a message is the package header (type = protocol tag for a request, session, ud)
-- followed by the request or response, the two packed together.

function sproto:host(packagename)
	packagename = packagename or "package"
	return setmetatable({
		__proto = self,
		__package = assert(core.querytype(self.__cobj, packagename), "type package not found"),
		__session = {},
	}, host_mt)
end

local header = {}

local function responder(self, response, session)
	return function(args, ud)
		header.type = nil
		header.session = session
		header.ud = ud
		local head = core.encode(self.__package, header)
		if response then
			return core.pack(head .. core.encode(response, args))
		end
		return core.pack(head)
	end
end

-- "REQUEST", name, args, responder (nil without a session), ud
-- or "RESPONSE", session, args, ud
function host:dispatch(...)
	local bin = core.unpack(...)
	header.type = nil
	header.session = nil
	header.ud = nil
	local h, size = core.decode(self.__package, bin, header)
	local content = bin:sub(size + 1)
	if h.type then
		local p = queryproto(self.__proto, h.type)
		local args
		if p.request then
			args = core.decode(p.request, content)
		end
		if header.session then
			return "REQUEST", p.name, args, responder(self, p.response, header.session), h.ud
		end
		return "REQUEST", p.name, args, nil, h.ud
	end
	local session = assert(header.session, "session not found")
	local response = assert(self.__session[session], "Unknown session")
	self.__session[session] = nil
	if response == true then
		return "RESPONSE", session, nil, h.ud
	end
	return "RESPONSE", session, core.decode(response, content), h.ud
end

-- A function(name, args, session, ud) making a request of `sp`'s protocol `name`; with a
-- session, the response is expected (dispatch decodes it).
function host:attach(sp)
	return function(name, args, session, ud)
		local p = queryproto(sp, name)
		header.type = p.tag
		header.session = session
		header.ud = ud
		local head = core.encode(self.__package, header)
		if session then
			self.__session[session] = p.response or true
		end
		if p.request then
			return core.pack(head .. core.encode(p.request, args))
		end
		return core.pack(head)
	end
end

return sproto
