-- A module of the snax service `counter`, found in its own directory.
return { name = function() return "counter's helper" end }
