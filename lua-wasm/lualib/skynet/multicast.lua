-- skynet.multicast: publish/subscribe channels through the node's `multicastd`, as
-- skynet's. A channel object: `mc.new{channel = id?, pack = f?, unpack = f?, dispatch = f}`,
-- then `publish(...)`, `subscribe()`, `unsubscribe()`, `delete()`. A subscriber's
-- `dispatch(channel_object, source, ...)` gets what was published.
--
-- skywasm: a published message is held once by the host however many services of a node
-- subscribe (skynet shares one refcounted package); each subscriber gets it as a
-- PTYPE_MULTICAST message whose session is the channel.
local skynet = require "skynet"

local multicastd
local multicast = {}
local subscribed = {}	-- channel id -> channel object, for this service's subscriptions

local channel_methods = {}
local channel_meta = {
	__index = channel_methods,
	__gc = function(self)
		self:unsubscribe()
	end,
	__tostring = function(self)
		return string.format("[Multicast:%x]", self.channel)
	end,
}

function multicast.new(conf)
	assert(multicastd, "Init first")
	local self = {}
	conf = conf or self
	self.channel = conf.channel
	if self.channel == nil then
		self.channel = skynet.call(multicastd, "lua", "NEW")
	end
	self.__pack = conf.pack or skynet.pack
	self.__unpack = conf.unpack or skynet.unpack
	self.__dispatch = conf.dispatch
	return setmetatable(self, channel_meta)
end

function channel_methods:delete()
	local c = assert(self.channel)
	skynet.send(multicastd, "lua", "DEL", c)
	self.channel = nil
	self.__subscribe = nil
end

-- The packed bytes of a publish as a string (pack may give a string or msg, sz).
local function packed(self, ...)
	local msg, sz = self.__pack(...)
	if type(msg) == "string" then
		return msg
	end
	local bytes = skynet.tostring(msg, sz)
	skynet.trash(msg, sz)
	return bytes
end

-- Returns once multicastd has handed the message to every subscriber's mailbox (on this
-- node; other nodes' subscribers get it through their own multicastd).
function channel_methods:publish(...)
	local c = assert(self.channel)
	skynet.call(multicastd, "lua", "PUB", c, packed(self, ...))
end

function channel_methods:subscribe()
	local c = assert(self.channel)
	if self.__subscribe then
		return
	end
	skynet.call(multicastd, "lua", "SUB", c)
	self.__subscribe = true
	subscribed[c] = self
end

function channel_methods:unsubscribe()
	if not self.__subscribe then
		return
	end
	local c = assert(self.channel)
	skynet.send(multicastd, "lua", "USUB", c)
	self.__subscribe = nil
	subscribed[c] = nil
end

local function deliver(channel, source, msg, sz)
	-- the session is the channel: nothing answers a multicast
	skynet.ignoreret()
	local self = subscribed[channel]
	-- A message sent before an unsubscribe (or a delete) can still arrive: dropped.
	if not self or not self.__subscribe then
		return
	end
	local ok, err = pcall(self.__dispatch, self, source, self.__unpack(msg, sz))
	assert(ok, err)
end

skynet.init(function()
	multicastd = skynet.uniqueservice "multicastd"
	skynet.register_protocol {
		name = "multicast",
		id = skynet.PTYPE_MULTICAST,
		unpack = function(msg, sz)
			return msg, sz
		end,
		dispatch = deliver,
	}
end)

return multicast
