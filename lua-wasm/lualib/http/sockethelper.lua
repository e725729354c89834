-- http.sockethelper: read/write functions over skynet.socket that raise socket_error when
-- the connection fails, and a connect with a timeout (skynet's API).
local socket = require "skynet.socket"
local skynet = require "skynet"

local sockethelper = {}

-- raised on a failed read, write or connect; tostring gives the details
local socket_error = setmetatable({}, {
	__tostring = function(self)
		local info = self.err_info
		self.err_info = nil
		return info or "[Socket Error]"
	end,
	__call = function(self, info)
		self.err_info = "[Socket Error] : " .. tostring(info)
		return self
	end,
})
sockethelper.socket_error = socket_error

-- read(n): n bytes (nil: whatever is there), the bytes in `pre` first
function sockethelper.readfunc(fd, pre)
	return function(sz)
		if pre then
			if sz == nil or sz == #pre then
				local ret = pre
				pre = nil
				return ret
			elseif sz < #pre then
				local ret = pre:sub(1, sz)
				pre = pre:sub(sz + 1)
				return ret
			end
			local ret = socket.read(fd, sz - #pre)
			if not ret then
				error(socket_error("read failed fd = " .. fd))
			end
			ret, pre = pre .. ret, nil
			return ret
		end
		local ret = socket.read(fd, sz)
		if not ret then
			error(socket_error("read failed fd = " .. fd))
		end
		return ret
	end
end

sockethelper.readall = socket.readall

function sockethelper.writefunc(fd)
	return function(content)
		if not socket.write(fd, content) then
			error(socket_error("write failed fd = " .. fd))
		end
	end
end

-- Connects, giving up after `timeout` centiseconds (nil: no limit); raises socket_error.
function sockethelper.connect(host, port, timeout)
	local fd, err
	if timeout then
		local waiter = {}
		local gave_up = false
		skynet.fork(function()
			fd, err = socket.open(host, port)
			if gave_up then
				if fd then
					socket.close(fd)
				end
			else
				skynet.wakeup(waiter)
			end
		end)
		skynet.timeout(timeout, function()
			skynet.wakeup(waiter)
		end)
		skynet.wait(waiter)
		if not fd then
			gave_up = true
			err = err or "timeout"
		end
	else
		fd, err = socket.open(host, port)
	end
	if fd then
		return fd
	end
	error(socket_error(string.format("connect failed host = %s port = %s timeout = %s err = %s",
		host, port, tostring(timeout), tostring(err))))
end

function sockethelper.close(fd)
	socket.close(fd)
end

function sockethelper.shutdown(fd)
	socket.shutdown(fd)
end

return sockethelper
