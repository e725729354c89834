-- Fails while loading: the launch must fail with this message and a traceback.
local why = ...
local function inner()
  error("deliberate failure " .. tostring(why))
end
inner()
