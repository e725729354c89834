-- Benchmark body (host/benches/node.rs, "lua-coroutine"): N resume+yield pairs of one
-- coroutine. Mode "plain" yields from Lua code (no wasm exception with skywasm's patch);
-- mode "pcall" yields inside pcall, which still throws.
local n, mode = ...
n = tonumber(n) or 0
local body
if mode == "pcall" then
	body = function()
		while true do
			pcall(coroutine.yield)
		end
	end
else
	body = function()
		while true do
			coroutine.yield()
		end
	end
end
local step = coroutine.wrap(body)
for _ = 1, n do
	step()
end
