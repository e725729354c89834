-- skynet.db.mongo.transaction: multi-document transactions for skynet.db.mongo, skynet's
-- extension (skywasm's own implementation), switched on by mongo.enable "transaction".
--
--   local err = db:run_transaction(function() coll:safe_insert(a); coll:safe_update(...) end)
--
-- runs the function in a new session's transaction: every command its coroutine sends, to
-- any database of the client, carries the session id, the transaction number and
-- autocommit = false (the first also startTransaction; commands without a reply lose
-- their write concern, which a transaction refuses). It commits when the function
-- returns and aborts when it raises; the answer is nil, or the error (the function's,
-- with its traceback, or the server's). MongoDB runs transactions on replica sets and
-- mongos only.

local bson = require "bson"
local driver = require "skynet.mongo.driver"

local running = coroutine.running
local tpack, tunpack = table.pack, table.unpack
local encode, encode_order, int64 = bson.encode, bson.encode_order, bson.int64

local M = {}

function M.init(depend)
	local database = assert(depend.mongo_db)
	-- each coroutine's transaction, while its function runs
	local active = setmetatable({}, { __mode = "k" })
	local last_number = 0

	function database:startSession_()
		return self:runCommand "startSession"
	end

	function database:endSessions_(id)
		return self:runCommand("endSessions", { encode(id) })
	end

	-- the command's arguments followed by the transaction's fields
	local function with_fields(t, ...)
		local args = tpack(...)
		local n = args.n
		for _, v in ipairs { "lsid", t.lsid, "txnNumber", t.number, "autocommit", false } do
			n = n + 1
			args[n] = v
		end
		if t.first then
			t.first = false
			args[n + 1], args[n + 2] = "startTransaction", true
			n = n + 2
		end
		return tunpack(args, 1, n)
	end

	local run = database.runCommand
	function database:runCommand(cmd, value, ...)
		local t = active[running()]
		if not t then
			return run(self, cmd, value, ...)
		end
		return run(self, cmd, value or 1, with_fields(t, ...))
	end

	local send = database.send_command
	function database:send_command(cmd, value, ...)
		local t = active[running()]
		if not t then
			return send(self, cmd, value, ...)
		end
		local c = self.connection
		local doc = encode_order(cmd, value or 1, "$db", self.name, with_fields(t, ...))
		c.__sock:request(driver.op_msg(c:genId(), 2, doc))
		return { ok = 1 }
	end

	-- commitTransaction or abortTransaction (on admin, inside the transaction); a raised
	-- error comes back as a reply's errmsg
	local function finish(self, t, command)
		if t and t.first then
			-- nothing was sent: there is no transaction on the server to end
			return { ok = 1 }
		end
		local ok, r = pcall(self.connection.runCommand, self.connection, command)
		return ok and r or { errmsg = tostring(r) }
	end

	function database:commit_transaction_()
		return finish(self, active[running()], "commitTransaction")
	end

	function database:abort_transaction_()
		return finish(self, active[running()], "abortTransaction")
	end

	function database:run_transaction(f)
		local session = self:startSession_()
		if session.ok ~= 1 then
			return session.errmsg or "startSession failed"
		end
		last_number = last_number % 9999999 + 1
		local co = running()
		local t = { lsid = encode(session.id), number = int64(last_number), first = true }
		active[co] = t
		local ok, err = xpcall(f, debug.traceback)
		local r = finish(self, t, ok and "commitTransaction" or "abortTransaction")
		active[co] = nil
		pcall(self.endSessions_, self, session.id)
		if not ok then
			return err
		end
		if r.ok ~= 1 or r.errmsg or r.writeConcernError then
			return r.errmsg or (r.writeConcernError and r.writeConcernError.errmsg) or "commitTransaction failed"
		end
		return nil
	end
end

return M
