-- skynet.multicast with multicastd: many subscribers each get every publish in order;
-- unsubscribe and delete stop delivery; custom pack/unpack; a subscriber whose dispatch
-- raises does not stop the others; publishing on a deleted channel raises; a require of
-- the library inside a coroutine runs its skynet.init there (skynet's yieldable require).
local skynet = require "skynet"
local check = require "check"

local SUBSCRIBERS = 200

skynet.start(function()
	-- required here, in a coroutine: its init (uniqueservice multicastd) calls a service
	local mc = require "skynet.multicast"
	local channel = mc.new()
	check.ok("a new channel has an id", math.type(channel.channel) == "integer")
	check.eq("tostring", tostring(channel), string.format("[Multicast:%x]", channel.channel))

	local subs = {}
	for i = 1, SUBSCRIBERS do
		subs[i] = skynet.newservice("multicast_sub")
		skynet.call(subs[i], "lua", "SUB", channel.channel)
	end
	for i = 1, 20 do
		channel:publish("msg", i, { nested = i })
	end
	local all_in_order = true
	for i = 1, SUBSCRIBERS do
		local got = skynet.call(subs[i], "lua", "GOT", 20)
		if #got ~= 20 then
			all_in_order = false
		end
		for k, entry in ipairs(got) do
			if entry.n ~= k or entry.source ~= skynet.self() or entry.nested ~= k then
				all_in_order = false
			end
		end
	end
	check.ok("every subscriber got every publish in order, with the publisher as source", all_in_order)

	-- a subscriber that raises in its dispatch: the others still get the message
	skynet.call(subs[1], "lua", "RAISE", true)
	channel:publish("msg", 21, {})
	check.eq("a failing subscriber does not stop the others", #skynet.call(subs[2], "lua", "GOT", 21), 21)
	check.eq("the failing one lives on", skynet.call(subs[1], "lua", "RAISE", false), true)

	-- unsubscribe: no more deliveries to that one
	skynet.call(subs[3], "lua", "UNSUB")
	channel:publish("msg", 22, {})
	check.eq("others get later publishes", #skynet.call(subs[4], "lua", "GOT", 22), 22)
	check.eq("an unsubscribed one gets nothing more", #skynet.call(subs[3], "lua", "GOT"), 21)

	-- a subscriber in this very service, with its own pack and unpack
	local seen = {}
	local own = mc.new {
		pack = function(text) return text end,
		unpack = function(msg, sz) return skynet.tostring(msg, sz) end,
		dispatch = function(c, source, text)
			seen[#seen + 1] = text
		end,
	}
	own:subscribe()
	own:subscribe() -- twice is once
	own:publish("raw bytes")
	skynet.sleep(5)
	check.values("custom pack and unpack, subscribed once", table.pack(table.unpack(seen)), table.pack("raw bytes"))

	-- subscribing to an existing channel by id from another object
	local other = mc.new { channel = own.channel, dispatch = function() end }
	check.eq("an object for an existing id", other.channel, own.channel)

	-- delete: publishing through the deleted object raises; subscribers get nothing more
	own:delete()
	check.raises("publish on a deleted channel raises", "assertion failed", own.publish, own, "x")
	other:publish("after delete")
	skynet.sleep(5)
	check.eq("nothing arrives on a deleted channel", #seen, 1)
	channel:delete()
	check.done()
end)
