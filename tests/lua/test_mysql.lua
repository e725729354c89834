-- skynet.db.mysql against a real MariaDB server (started by the Rust test on a free port).
local skynet = require "skynet"
local socket = require "skynet.socket"
local mysql = require "skynet.db.mysql"
local check = require "check"

local port = tonumber(skynet.getenv "mysql_port")
local conf = { host = "127.0.0.1", port = port, database = "skywasm", user = "root", password = "s3cret",
	charset = "utf8mb4" }

local function queries(db)
	check.ok("a server version", db:server_ver():find "MariaDB" ~= nil, db:server_ver())
	check.eq("drop", db:query("drop table if exists t").badresult, nil)
	local res = db:query [[create table t (id int primary key auto_increment, name varchar(20),
		score double, big bigint, small tinyint unsigned, day date, at datetime(6), amount decimal(10,2),
		blob_ varbinary(100))]]
	check.eq("create answers OK", res.affected_rows, 0)
	res = db:query "insert into t (name, score, big, small, day, at, amount, blob_) values ('a', 1.5, 9007199254740993, 255, '2024-02-29', '2024-02-29 10:11:12.345678', 12.34, x'00ff0d0a'), ('b', null, -1, 0, null, null, null, null)"
	check.eq("insert: affected rows", res.affected_rows, 2)
	check.eq("insert: the first id", res.insert_id, 1)
	local rows = db:query "select * from t order by id"
	check.eq("two rows", #rows, 2)
	check.eq("an int comes back a number", rows[1].id, 1)
	check.eq("double", rows[1].score, 1.5)
	check.eq("bigint beyond doubles", rows[1].big, 9007199254740993)
	check.eq("unsigned tinyint", rows[1].small, 255)
	check.eq("date as text", rows[1].day, "2024-02-29")
	check.eq("datetime(6) as text", rows[1].at, "2024-02-29 10:11:12.345678")
	check.eq("decimal as a number", rows[1].amount, 12.34)
	check.eq("binary bytes unchanged", rows[1].blob_, "\0\255\r\n")
	check.eq("NULL is nil", rows[2].score, nil)
	db:set_compact_arrays(true)
	local compact = db:query "select id, name from t order by id"
	check.eq("compact rows are arrays", compact[2][1] .. compact[2][2], "2b")
	db:set_compact_arrays(false)
	local bad = db:query "select * from nowhere"
	check.eq("a bad query is a badresult", bad.badresult, true)
	check.eq("with errno", bad.errno, 1146)
	check.eq("and sqlstate", bad.sqlstate, "42S02")
	check.ok("and the server's text", bad.err:find "doesn't exist" ~= nil, bad.err)
	local multi = db:query "select 1 as one; select 2 as two"
	check.eq("several statements: multiresultset", multi.multiresultset, true)
	check.eq("each result", multi[1][1].one + multi[2][1].two, 3)
	local partial = db:query "select 1 as one; select * from nowhere"
	check.eq("an error after a first result", partial.badresult and partial[1][1].one, 1)
	check.eq("the connection goes on", db:query("select 3 as three")[1].three, 3)
	check.eq("ping", db:ping().server_status ~= nil, true)
	check.eq("quote_sql_str", mysql.quote_sql_str "a'b\\c\0", "'a\\'b\\\\c\\0'")
end

local function statements(db)
	local stmt = db:prepare "select id, name, score, big, small, day, at, amount, blob_ from t where id = ? or name = ?"
	check.eq("prepare counts parameters", stmt.param_count, 2)
	check.eq("and fields", stmt.field_count, 9)
	local rows = db:execute(stmt, 1, "nobody")
	check.eq("execute: one row", #rows, 1)
	local r = rows[1]
	check.eq("binary int", r.id, 1)
	check.eq("binary double", r.score, 1.5)
	check.eq("binary bigint", r.big, 9007199254740993)
	check.eq("binary unsigned tinyint", r.small, 255)
	check.eq("binary date", r.day, "2024-02-29")
	check.eq("binary datetime(6)", r.at, "2024-02-29 10:11:12.345678")
	check.eq("binary decimal", r.amount, 12.34)
	check.eq("binary bytes", r.blob_, "\0\255\r\n")
	local nulls = db:execute(stmt, 2, nil)
	check.eq("NULL parameters and NULL values", nulls[1].score, nil)
	check.raises("the wrong number of parameters", "require stmt.param_count 2 get arg_num 1", db.execute, db, stmt, 1)
	db:stmt_reset(stmt)
	db:stmt_close(stmt)
	local ins = db:prepare "insert into t (name, score, big) values (?, ?, ?)"
	local res = db:execute(ins, "c", 2.25, -5)
	check.eq("execute an insert", res.affected_rows, 1)
	local big = string.rep("x", 70000)
	db:query "create table blobs (b mediumblob)"
	local put = db:prepare "insert into blobs values (?)"
	db:execute(put, big)
	check.eq("a 70 KB value round-trips", db:query("select b from blobs")[1].b, big)
	local bad = db:prepare "select * from nowhere where id = ?"
	check.eq("a bad statement is a badresult", bad.badresult, true)
	-- a procedure through a statement: its rows, then its OK
	db:query "drop procedure if exists get_t"
	db:query "create procedure get_t(in p int) begin select name from t where id = p; end"
	local call = db:prepare "call get_t(?)"
	local out = db:execute(call, 1)
	check.eq("a procedure's results", out.mulitresultset and out.multiresultset and out[1][1].name, "a")
end

local function concurrent(db)
	local left, done, wrong = 50, {}, 0
	for i = 1, 50 do
		skynet.fork(function()
			local r = db:query("select " .. i .. " as n")
			if r[1].n ~= i then
				wrong = wrong + 1
			end
			left = left - 1
			if left == 0 then
				skynet.wakeup(done)
			end
		end)
	end
	skynet.wait(done)
	check.eq("50 concurrent queries each get their own result", wrong, 0)
end

local function logins()
	local wrong = { host = "127.0.0.1", port = port, user = "root", password = "nope" }
	check.raises("a wrong password fails the connect", "[Error: socket]", mysql.connect, wrong)
	local connected = 0
	local db = mysql.connect {
		host = "127.0.0.1", port = port, database = "skywasm", user = "root", password = "s3cret",
		on_connect = function(db)
			connected = connected + 1
			db:query "set @who = 'me'"
		end,
	}
	check.eq("on_connect runs after the login", connected, 1)
	check.eq("and its queries count", db:query("select @who as who")[1].who, "me")
	-- the server drops the connection: the next query reconnects and logs in again
	local id = db:query("select connection_id() as id")[1].id
	local killer = mysql.connect(conf)
	killer:query("kill " .. id)
	pcall(db.query, db, "select 1")
	check.eq("reconnected", db:query("select @who as who")[1].who, "me")
	check.eq("on_connect ran again", connected, 2)
	killer:disconnect()
	db:disconnect()
end

local function broken_server()
	-- a "server" whose greeting is garbage: the connect fails, the service goes on
	local listener, _, lport = socket.listen("127.0.0.1", 0)
	socket.start(listener, function(fd)
		socket.start(fd)
		socket.write(fd, "\5\0\0\0garbage")
	end)
	check.raises("a garbage greeting fails the connect", "[Error: socket]", mysql.connect, { host = "127.0.0.1", port = lport })
	socket.close(listener)
end

skynet.start(function()
	local db = mysql.connect(conf)
	queries(db)
	statements(db)
	concurrent(db)
	db:disconnect()
	logins()
	broken_server()
	check.done()
end)
