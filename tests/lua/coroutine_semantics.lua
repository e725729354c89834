-- Coroutine behaviour that skywasm's throw-free yield patch must not change. The host's
-- tests run this file with stock native Lua and inside snlua (patched Lua in wasm) and
-- compare the printed output line for line.

local function show(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  print(table.concat(t, " ", 1, t.n))
end

-- values both ways, including nil holes and counts
local co = coroutine.create(function(a, b, c)
  show("start", a, b, c, select("#", a, b, c))
  local x, y, z = coroutine.yield(a, nil, c)
  show("got", x, y, z)
  local n = select("#", coroutine.yield())
  show("count", n)
  return "done", nil, 3
end)
show(coroutine.resume(co, 1, nil, 3.0))
show(coroutine.resume(co, "x", nil, nil))
show(coroutine.resume(co, nil, nil, nil, nil))
show(coroutine.resume(co))
show(coroutine.status(co), coroutine.resume(co))

-- nesting: a coroutine resuming another
local inner = coroutine.wrap(function()
  for i = 1, 3 do coroutine.yield("inner", i) end
  return "inner end"
end)
local outer = coroutine.wrap(function()
  for _ = 1, 4 do
    local a, b = inner()
    coroutine.yield("outer", a, b)
  end
end)
for _ = 1, 4 do show(outer()) end

-- yield across pcall and xpcall
local p = coroutine.create(function()
  local ok, v = pcall(function()
    local r = coroutine.yield("in pcall")
    error("raised " .. r)
  end)
  show("pcall", ok, (v:gsub("^.-:%d+: ", "")))
  local ok2, v2 = xpcall(function() return coroutine.yield("in xpcall") end,
    function(m) return "handled " .. tostring(m) end)
  show("xpcall", ok2, v2)
  local ok3, v3 = pcall(coroutine.yield, "yield as pcall's function")
  show("pcall yield", ok3, v3)
  return "p end"
end)
show(coroutine.resume(p))
show(coroutine.resume(p, "r1"))
show(coroutine.resume(p, "r2"))
show(coroutine.resume(p, "r3"))

-- nested pcalls with yields and errors at several depths
local np = coroutine.wrap(function()
  local ok, e = pcall(function() coroutine.yield(1); error("x", 0) end)
  coroutine.yield(ok, e)
  local ok2, e2 = pcall(function()
    pcall(function() coroutine.yield(2) end)
    coroutine.yield(3)
    return "fine"
  end)
  return ok2, e2
end)
for _ = 1, 5 do show(np()) end

-- unbounded recursion through pcall ends in a caught "stack overflow", not a crash
local function recurse() pcall(recurse) end
show("recursion", pcall(recurse))
local rc = coroutine.wrap(function() local function g() pcall(g) end g() return "survived" end)
show("recursion in coroutine", pcall(rc))
local deep = coroutine.wrap(function()
  local function down(n) if n == 0 then return coroutine.yield("bottom") end return (pcall(down, n - 1)) end
  return down(150)
end)
show("deep", deep())
show("deep", deep("up"))

-- yields from metamethods, iterators and table.sort comparators
local mt = {
  __index = function(_, k) return coroutine.yield("index", k) end,
  __add = function(a, b) return coroutine.yield("add") end,
  __lt = function(a, b) return coroutine.yield("lt") end,
  __concat = function(a, b) return coroutine.yield("concat") end,
  __eq = function(a, b) return coroutine.yield("eq") end,
  __call = function(self, v) return coroutine.yield("call", v) end,
}
local m = coroutine.wrap(function()
  local o, o2 = setmetatable({}, mt), setmetatable({}, mt)
  show("index ->", o.key)
  show("add ->", o + 1)
  show("lt ->", o < o2)
  show("concat ->", o .. "s")
  show("eq ->", o == o2)
  show("call ->", o(5))
  for k in function(_, last) return coroutine.yield("iter", last) end do
    show("for ->", k)
    if k == "stop" then break end
  end
  return "m end"
end)
show(m())
show(m("I"))
show(m(10))
show(m(true))
show(m("C"))
show(m(false))
show(m("called"))
show(m("k1"))
show(m("stop"))

local ok, msg = pcall(table.sort, {3, 2, 1}, function(a, b) return coroutine.yield() end)
show("sort yield outside coroutine", ok, (msg:gsub("^.-:%d+: ", "")))
local s = coroutine.wrap(function()
  return pcall(table.sort, {3, 2, 1}, function(a, b) coroutine.yield(); return a < b end)
end)
show("sort in coroutine", pcall(s))

-- tail calls into yielding functions, C functions as bodies
local t = coroutine.wrap(function(...) return coroutine.yield(...) end)
show(t(1, 2))
show(t("tail"))
local c = coroutine.create(coroutine.yield)
show(coroutine.resume(c, "c body"))
show(coroutine.resume(c, "c body returns"))
show(coroutine.status(c))
local v = coroutine.wrap(function(...) return select(2, coroutine.yield(select("#", ...))) end)
show(v(nil, nil))
show(v("a", "b", "c"))

-- errors: in the coroutine, after a yield, error objects, close
local e = coroutine.create(function()
  coroutine.yield(1)
  error({code = 7})
end)
show(coroutine.resume(e))
local okE, errE = coroutine.resume(e)
show(okE, type(errE), errE.code, coroutine.status(e))
show(coroutine.resume(e))
local cl = coroutine.create(function()
  local x <close> = setmetatable({}, {__close = function() print("closed") end})
  coroutine.yield("before close")
end)
show(coroutine.resume(cl))
show(coroutine.close(cl), coroutine.status(cl))
local ce = coroutine.create(function()
  local x <close> = setmetatable({}, {__close = function() error("close failed", 0) end})
  coroutine.yield()
end)
coroutine.resume(ce)
show(coroutine.close(ce))

-- status, running, isyieldable, wrap errors
local st
st = coroutine.create(function()
  show("inside", coroutine.status(st), coroutine.isyieldable(), coroutine.running() == st)
  coroutine.yield()
end)
show(coroutine.status(st), coroutine.isyieldable())
coroutine.resume(st)
show(coroutine.status(st))
local w = coroutine.wrap(function() error("wrapped", 0) end)
show(pcall(w))
show(pcall(coroutine.yield))
show(coroutine.resume(coroutine.running()))

-- a traceback of a suspended coroutine names the yield
local tb = coroutine.create(function() local function deep() coroutine.yield() end deep() end)
coroutine.resume(tb)
local trace = debug.traceback(tb)
show("traceback has yield", trace:find("yield", 1, true) ~= nil, trace:find("deep", 1, true) ~= nil)

-- yields inside loops keep the loop state; many resumes
local sum = 0
local gen = coroutine.wrap(function()
  for i = 1, 1000 do coroutine.yield(i) end
  return 0
end)
for _ = 1, 1000 do sum = sum + gen() end
show("sum", sum)

-- a Lua hook function cannot yield (it runs through a C call); the coroutine goes on
local h = coroutine.create(function()
  local acc = 0
  for i = 1, 50 do acc = acc + i end
  return acc
end)
debug.sethook(h, function() coroutine.yield() end, "", 10)
local steps, res = 0, nil
repeat
  local okh, r = coroutine.resume(h)
  steps = steps + 1
  res = r
until coroutine.status(h) == "dead"
show("hook result", res, steps > 1)

-- integer and float kept through yields
local f = coroutine.wrap(function(a) local b = coroutine.yield(a, math.type(a)) return b, math.type(b) end)
show(f(3))
show(f(3.0))
print("END")
