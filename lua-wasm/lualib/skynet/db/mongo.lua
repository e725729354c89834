-- skynet.db.mongo: a MongoDB client with skynet's API (skywasm's own implementation, written
-- to the behaviour of skynet's lualib/skynet/db/mongo.lua). Commands go as OP_MSG
-- (MongoDB 3.6 and later) over skynet.socketchannel in session mode, so the coroutines of
-- a service share one connection; documents are `bson`'s.
--
--   local c = mongo.client { host =, port = 27017, username =, password =, authdb =,
--                            authmod = "scram_sha1" | "mongodb_cr", rs = { conf, ... } }
--   local coll = c.mydb.mycoll                       -- databases and collections by name
--   coll:safe_insert(doc) -> ok, err, reply           -- and insert (no reply), batches
--   coll:safe_update(query, update, upsert, multi); coll:safe_delete(query, single)
--   coll:findOne(query, projection); coll:find(query, projection) -> cursor
--   cursor:sort(...):skip(n):limit(n):hint(i):maxTimeMS(ms):batchSize(n)
--   cursor:hasNext(), cursor:next(), cursor:count(with_limit_and_skip), cursor:close()
--   coll:aggregate(pipeline, options) -> cursor; coll:findAndModify(doc)
--   coll:createIndex(...), coll:createIndexes(...), coll:dropIndex(name), coll:drop()
--   c.mydb:runCommand(cmd, value, ...); c:runCommand(...) (on admin); c:bulkWrite(ops)
--
-- Authentication: SCRAM-SHA-1 (the default) or MONGODB-CR, on every (re)connect, followed
-- by isMaster: a replica set's hosts become the channel's backups, and a secondary sends
-- the channel on to the primary.

local skynet = require "skynet"
local bson = require "bson"
local driver = require "skynet.mongo.driver"
local socketchannel = require "skynet.socketchannel"
local crypt = require "skynet.crypt"
local md5 = require "md5"

local assert, error, type, pairs, ipairs, next, rawget, setmetatable, tonumber, tostring =
	assert, error, type, pairs, ipairs, next, rawget, setmetatable, tonumber, tostring
local tinsert, tunpack = table.insert, table.unpack
local encode, encode_order, decode, int64 = bson.encode, bson.encode_order, bson.decode, bson.int64

local EMPTY = encode {}

local mongo = {
	null = assert(bson.null),
	maxkey = assert(bson.maxkey),
	minkey = assert(bson.minkey),
	type = assert(bson.type),
}

local client = {} -- methods of a client
local database = {} -- of a database
local collection = {} -- of a collection
local cursor = {} -- of find's cursors
local pipeline_cursor = {} -- of aggregate's

-- a client's unknown fields are databases, a database's collections, a collection's
-- sub-collections ("a.b"), all made on first use
local client_meta = {
	__index = function(self, key)
		return rawget(client, key) or self:getDB(key)
	end,
	__tostring = function(self)
		return "[mongo client : " .. self.host .. (self.port and (":" .. self.port) or "") .. "]"
	end,
}
local database_meta = {
	__index = function(self, key)
		return rawget(database, key) or self:getCollection(key)
	end,
	__tostring = function(self)
		return "[mongo db : " .. self.name .. "]"
	end,
}
local collection_meta = {
	__index = function(self, key)
		return rawget(collection, key) or self:getCollection(key)
	end,
	__tostring = function(self)
		return "[mongo collection : " .. self.full_name .. "]"
	end,
}
local cursor_meta = { __index = cursor }
local pipeline_cursor_meta = { __index = pipeline_cursor }

---------------------------------------------------------------------------------------------
-- the connection

-- Session mode's reader: one reply, and the request id it answers. The reply keeps its
-- string (`data`) because `document` points into it.
local function read_reply(sock)
	local data = sock:read(driver.length(sock:read(4)))
	local ok, id, document = driver.reply(data)
	if not ok then
		error "mongo: a reply shorter than its header"
	end
	return id, true, { document = document, data = data }
end

local function split_address(addr)
	local host, port = addr:match "^(.+):(%d+)$"
	return host or addr, tonumber(port) or 27017
end

local auth_methods = {}

-- What runs after every connect: log in, then follow the replica set's primary.
local function on_connect(c)
	local user, pass = rawget(c, "username"), rawget(c, "password")
	local method = "auth_" .. (rawget(c, "authmod") or "scram_sha1")
	local authdb = rawget(c, "authdb")
	return function()
		if user ~= nil and pass ~= nil then
			local login = assert(auth_methods[method], "Invalid authmod")
			local db = authdb and client.getDB(c, authdb) or c
			assert(login(db, user, pass))
		end
		local r = c:runCommand "isMaster"
		if r.ok ~= 1 then
			return
		end
		if r.hosts then
			local backup = {}
			for _, addr in ipairs(r.hosts) do
				local host, port = split_address(addr)
				backup[#backup + 1] = { host = host, port = port }
			end
			c.__sock:changebackup(backup)
		end
		if r.ismaster then
			return
		end
		if r.primary then
			c.host, c.port = split_address(r.primary)
			c.__sock:changehost(c.host, c.port)
		else
			-- the channel goes on to the next backup
			error("No primary return : " .. tostring(r.me))
		end
	end
end

function mongo.client(conf)
	local first = conf.rs and conf.rs[1] or conf
	local c = {
		host = first.host,
		port = first.port or 27017,
		username = first.username,
		password = first.password,
		authmod = first.authmod,
		authdb = first.authdb,
		__id = 0,
	}
	c.__sock = socketchannel.channel {
		host = c.host,
		port = c.port,
		response = read_reply,
		auth = on_connect(c),
		backup = conf.rs,
		nodelay = true,
		overload = conf.overload,
	}
	setmetatable(c, client_meta)
	c.__sock:connect(true)
	return c
end

function client:getDB(name)
	local db = {
		connection = self,
		name = name,
		full_name = name,
	}
	db.database = db
	return setmetatable(db, database_meta)
end

function client:disconnect()
	local sock = self.__sock
	if sock then
		self.__sock = false
		sock:close()
	end
end

-- request ids stay positive 32-bit integers
function client:genId()
	local id = (self.__id + 1) & 0x7fffffff
	self.__id = id
	return id
end

function client:runCommand(...)
	if not self.admin then
		self.admin = self:getDB "admin"
	end
	return self.admin:runCommand(...)
end

function client:logout()
	return self:runCommand("logout").ok == 1
end

---------------------------------------------------------------------------------------------
-- commands

-- The command document: the command first (MongoDB reads its name from the first key),
-- then the database, then the rest.
function database:runCommand(cmd, value, ...)
	local c = self.connection
	local id = c:genId()
	local doc = encode_order(cmd, value or 1, "$db", self.name, ...)
	local reply = c.__sock:request(driver.op_msg(id, 0, doc), id)
	-- (not a tail call: `reply` must live while its document is read)
	local result = decode(reply.document)
	return result
end

-- A command without a reply (moreToCome, write concern w = 0).
function database:send_command(cmd, value, ...)
	local c = self.connection
	local doc = encode_order(cmd, value or 1, "$db", self.name, "writeConcern", { w = 0 }, ...)
	c.__sock:request(driver.op_msg(c:genId(), 2, doc))
	return { ok = 1 }
end

function database:auth(user, pass)
	local method = "auth_" .. (rawget(self.connection, "authmod") or "scram_sha1")
	local login = assert(auth_methods[method], "Invalid authmod")
	return login(self, user, pass)
end

function database:getCollection(name)
	local coll = setmetatable({
		connection = self.connection,
		name = name,
		full_name = self.full_name .. "." .. name,
		database = self.database,
	}, collection_meta)
	self[name] = coll
	return coll
end

collection.getCollection = database.getCollection

-- ok, the first error's text, the reply
local function write_result(r)
	if r.ok == 1 and not r.writeErrors and not r.writeConcernError and not r.errmsg then
		return true, nil, r
	end
	local err = r.errmsg
	if r.writeErrors then
		err = r.writeErrors[1].errmsg
	elseif r.writeConcernError then
		err = r.writeConcernError.errmsg
	end
	return false, err, r
end

local function with_id(doc)
	if doc._id == nil then
		doc._id = bson.objectid()
	end
	return doc
end

local function encoded_all(docs)
	for i = 1, #docs do
		docs[i] = encode(with_id(docs[i]))
	end
	return docs
end

function collection:insert(doc)
	self.database:send_command("insert", self.name, "documents", { encode(with_id(doc)) })
end

function collection:safe_insert(doc)
	return write_result(self.database:runCommand("insert", self.name, "documents", { encode(doc) }))
end

function collection:raw_safe_insert(doc)
	return write_result(self.database:runCommand("insert", self.name, "documents", { doc }))
end

function collection:batch_insert(docs)
	self.database:send_command("insert", self.name, "documents", encoded_all(docs))
end
collection.insert_many = collection.batch_insert

function collection:safe_batch_insert(docs)
	return write_result(self.database:runCommand("insert", self.name, "documents", encoded_all(docs)))
end
collection.safe_insert_many = collection.safe_batch_insert

local function update_statement(query, update, upsert, multi)
	return encode { q = query, u = update, upsert = upsert, multi = multi }
end

function collection:update(query, update, upsert, multi)
	self.database:send_command("update", self.name, "updates", { update_statement(query, update, upsert, multi) })
end

function collection:safe_update(query, update, upsert, multi)
	local statement = update_statement(query, update, upsert, multi)
	return write_result(self.database:runCommand("update", self.name, "updates", { statement }))
end

local function update_statements(updates)
	local list = {}
	for i, u in ipairs(updates) do
		list[i] = update_statement(u.query, u.update, u.upsert, u.multi)
	end
	return list
end

function collection:batch_update(updates)
	self.database:send_command("update", self.name, "updates", update_statements(updates))
end

function collection:safe_batch_update(updates)
	return write_result(self.database:runCommand("update", self.name, "updates", update_statements(updates)))
end

function collection:raw_safe_update(update)
	return write_result(self.database:runCommand("update", self.name, "updates", { update }))
end

local function delete_statement(query, single)
	return encode { q = query, limit = single and 1 or 0 }
end

function collection:delete(query, single)
	self.database:send_command("delete", self.name, "deletes", { delete_statement(query, single) })
end

function collection:safe_delete(query, single)
	return write_result(self.database:runCommand("delete", self.name, "deletes", { delete_statement(query, single) }))
end

function collection:safe_batch_delete(queries, single)
	local list = {}
	for i, q in ipairs(queries) do
		list[i] = delete_statement(q, single)
	end
	return write_result(self.database:runCommand("delete", self.name, "deletes", list))
end

function collection:raw_safe_delete(delete)
	return write_result(self.database:runCommand("delete", self.name, "deletes", { delete }))
end

local function encoded_or_empty(t)
	return t and encode(t) or EMPTY
end

function collection:findOne(query, projection)
	local r = self.database:runCommand("find", self.name, "filter", encoded_or_empty(query), "limit", 1,
		"projection", encoded_or_empty(projection))
	if r.ok ~= 1 then
		error(r.errmsg or "Reply from mongod error")
	end
	return r.cursor.firstBatch[1]
end

function collection:find(query, projection)
	return setmetatable({
		__collection = self,
		__query = encoded_or_empty(query),
		__projection = encoded_or_empty(projection),
		__document = {},
		__sort = EMPTY,
	}, cursor_meta)
end

function collection:drop()
	return self.database:runCommand("drop", self.name)
end

-- "*" drops every index but _id's
function collection:dropIndex(name)
	return self.database:runCommand("dropIndexes", self.name, "index", name)
end

-- An index description from skynet's newer form: { {k1 = 1}, "k2", unique = true, ... }
-- (keys in order; a bare name means ascending), named k1_1_k2_1 unless it says a name.
local function index_model(spec)
	local doc, keys, name = {}, {}, nil
	for k, v in pairs(spec) do
		if type(k) == "string" then
			doc[k] = v
		end
	end
	for _, kv in ipairs(spec) do
		local k, v
		if type(kv) == "string" then
			k, v = kv, 1
		else
			k, v = next(kv)
		end
		keys[#keys + 1] = k
		keys[#keys + 1] = v
		name = (name and (name .. "_") or "") .. k .. "_" .. tostring(v)
	end
	assert(name, "Need keys")
	doc.name = doc.name or name
	doc.key = encode_order(tunpack(keys))
	return doc
end

-- createIndex { {k1 = 1}, {k2 = -1}, unique = true } or createIndex { "k1", "k2" }, and
-- the older createIndex({ k = 1 }, { unique = true }) for one key
function collection:createIndex(keys, options)
	local doc
	if options then
		doc = {}
		for k, v in pairs(options) do
			doc[k] = v
		end
		local k, v = next(keys)
		assert(next(keys, k) == nil, "Use new api for multi-keys")
		doc.name = doc.name or (k .. "_" .. tostring(v))
		doc.key = keys
	else
		doc = index_model(keys)
	end
	return self.database:runCommand("createIndexes", self.name, "indexes", { doc })
end
collection.ensureIndex = collection.createIndex

function collection:createIndexes(...)
	local list = { ... }
	for i, spec in ipairs(list) do
		list[i] = index_model(spec)
	end
	return self.database:runCommand("createIndexes", self.name, "indexes", list)
end

-- a table's fields as command arguments: k1, v1, k2, v2, ...
local function pairs_list(t)
	local args = {}
	for k, v in pairs(t) do
		args[#args + 1] = k
		args[#args + 1] = v
	end
	return args
end

-- findAndModify { query = {...}, update = {...} | remove = true, new =, fields =, upsert =,
-- sort = }
function collection:findAndModify(doc)
	assert(doc.query)
	assert(doc.update or doc.remove)
	return self.database:runCommand("findAndModify", self.name, tunpack(pairs_list(doc)))
end

function collection:aggregate(pipeline, options)
	assert(pipeline)
	local n = #pipeline
	return setmetatable({
		__collection = self,
		__pipeline = table.move(pipeline, 1, n, 1, {}),
		__pipeline_len = n,
		__options = options and pairs_list(options),
		__document = {},
		__skip = 0,
		__limit = 0,
	}, pipeline_cursor_meta)
end

-- MongoDB 8's bulkWrite, on admin: datas = { { op = "insert" | "update" | "delete",
-- collection = "db.coll", insert = doc | filter =, update =, multi =, upsert =, ... } }
local bulk_op = {}

local function add_present(list, key, value)
	if value ~= nil then
		list[#list + 1] = key
		list[#list + 1] = type(value) == "table" and encode(value) or value
	end
end

function bulk_op.insert(ns, op)
	return encode_order("insert", ns, "document", encode(op.insert))
end

function bulk_op.delete(ns, op)
	local args = { "delete", ns, "filter", encode(op.filter), "multi", op.multi or false }
	add_present(args, "hit", op.hit)
	add_present(args, "collation", op.collation)
	return encode_order(tunpack(args))
end

function bulk_op.update(ns, op)
	local args = { "update", ns, "filter", encode(op.filter), "updateMods", encode(op.update),
		"multi", op.multi or false, "upsert", op.upsert or false }
	add_present(args, "hit", op.hit)
	add_present(args, "constants", op.constants)
	add_present(args, "collation", op.collation)
	return encode_order(tunpack(args))
end

function client:bulkWrite(datas, comment, ordered, verify, errors_only)
	local ops, namespaces, ns_index = {}, {}, {}
	for i, op in ipairs(datas) do
		local ns = ns_index[op.collection]
		if not ns then
			ns = #namespaces -- 0-based, as the command counts
			ns_index[op.collection] = ns
			namespaces[#namespaces + 1] = encode { ns = op.collection }
		end
		ops[i] = assert(bulk_op[op.op], op.op)(ns, op)
	end
	local args = { "bulkWrite", 1, "ops", ops, "nsInfo", namespaces }
	add_present(args, "ordered", ordered)
	add_present(args, "bypassDocumentValidation", verify)
	add_present(args, "comment", comment)
	add_present(args, "errorsOnly", errors_only)
	local r = self:runCommand(tunpack(args))
	local ok, err = write_result(r)
	local failed
	if r.nErrors and r.nErrors ~= 0 and r.cursor then
		failed = {}
		err = err and (err .. ";") or ""
		for i, v in ipairs(r.cursor.firstBatch) do
			if v.ok ~= 1 then
				failed[#failed + 1] = i
				err = err .. tostring(v.errmsg) .. ";"
			end
		end
	end
	return ok, err, r, failed
end

---------------------------------------------------------------------------------------------
-- cursors

-- cursor:sort { k = 1 } or cursor:sort({ k1 = 1 }, { k2 = -1 }, ...) (keys in that order)
function cursor:sort(key, ...)
	if ... ~= nil then
		local ordered = {}
		for _, kv in ipairs { key, ... } do
			local k, v = next(kv)
			ordered[#ordered + 1] = k
			ordered[#ordered + 1] = v
		end
		key = encode_order(tunpack(ordered))
	end
	self.__sort = key
	return self
end

for _, option in ipairs { "skip", "limit", "hint", "maxTimeMS", "batchSize" } do
	local field = "__" .. option
	cursor[option] = function(self, value)
		self[field] = value
		return self
	end
end

-- the options that are set, as command arguments
local function options(self, ...)
	local args = {}
	for _, option in ipairs { ... } do
		local v = self["__" .. option]
		if v ~= nil then
			args[#args + 1] = option
			args[#args + 1] = v
		end
	end
	return tunpack(args)
end

function cursor:count(with_limit_and_skip)
	local coll = self.__collection
	local r
	if with_limit_and_skip then
		r = coll.database:runCommand("count", coll.name, "query", self.__query,
			options(self, "skip", "limit", "hint", "maxTimeMS"))
	else
		r = coll.database:runCommand("count", coll.name, "query", self.__query, options(self, "hint", "maxTimeMS"))
	end
	assert(r.ok == 1, r.errmsg)
	return r.n
end

-- Fetches batches until one has documents or the cursor is exhausted; `first` runs the
-- command that opens the cursor.
local function fetch(self, first)
	while self.__ptr == nil do
		if self.__document == nil then
			return false
		end
		local coll = self.__collection
		local r
		if self.__data == nil then
			r = first(self)
		elseif self.__cursor and self.__cursor > 0 then
			local size = self.__batchSize
			if size and size > 0 then
				r = coll.database:runCommand("getMore", int64(self.__cursor), "collection", coll.name, "batchSize", size)
			else
				r = coll.database:runCommand("getMore", int64(self.__cursor), "collection", coll.name)
			end
		else
			self.__document, self.__data = nil, nil
			return false
		end
		if r.ok ~= 1 then
			self.__document, self.__data, self.__cursor = nil, nil, nil
			error(r.errmsg or "Reply from mongod error")
		end
		local c = r.cursor
		local batch = c.firstBatch or c.nextBatch or {}
		self.__document, self.__data, self.__cursor = batch, r, c.id
		-- the server stops at the limit itself; the cursor is closed as soon as it is met
		local limit = self.__limit
		if limit and limit > 0 and c.id > 0 then
			limit = limit - #batch
			if limit <= 0 then
				self:close()
			end
			self.__limit = limit
		end
		if #batch > 0 then
			self.__ptr = 1
		end
	end
	return true
end

local function open_find(self)
	local coll = self.__collection
	return coll.database:runCommand("find", coll.name, "filter", self.__query, "sort", self.__sort,
		"projection", self.__projection, options(self, "skip", "limit", "hint", "maxTimeMS", "batchSize"))
end

function cursor:hasNext()
	return fetch(self, open_find)
end

function cursor:next()
	local at = self.__ptr
	if at == nil then
		error "Call hasNext first"
	end
	local doc = self.__document[at]
	at = at + 1
	self.__ptr = at <= #self.__document and at or nil
	return doc
end

-- Tells the server the cursor is no longer wanted.
function cursor:close()
	local id = self.__cursor
	if id and id > 0 then
		local coll = self.__collection
		coll.database:send_command("killCursors", coll.name, "cursors", { int64(id) })
		self.__cursor = nil
	end
end

-- The pipeline with the cursor's sort, skip, limit and a count as stages after the
-- caller's.
local function full_pipeline(self, with_limit_and_skip, counting)
	local stages = table.move(self.__pipeline, 1, self.__pipeline_len, 1, {})
	if self.__sort and not counting then
		stages[#stages + 1] = { ["$sort"] = self.__sort }
	end
	if with_limit_and_skip then
		if self.__skip > 0 then
			stages[#stages + 1] = { ["$skip"] = self.__skip }
		end
		if self.__limit > 0 then
			stages[#stages + 1] = { ["$limit"] = self.__limit }
		end
	end
	if counting then
		stages[#stages + 1] = { ["$count"] = "__count" }
	end
	return stages
end

local function run_pipeline(self, stages)
	local coll = self.__collection
	if self.__options then
		return coll.database:runCommand("aggregate", coll.name, "pipeline", stages, tunpack(self.__options))
	end
	return coll.database:runCommand("aggregate", coll.name, "pipeline", stages, "cursor", EMPTY)
end

function pipeline_cursor:count(with_limit_and_skip)
	local r = run_pipeline(self, full_pipeline(self, with_limit_and_skip, true))
	if r.ok ~= 1 then
		error(r.errmsg or "Reply from mongod error")
	end
	local first = r.cursor.firstBatch[1]
	return first and first.__count or 0
end

local function open_pipeline(self)
	return run_pipeline(self, full_pipeline(self, true))
end

function pipeline_cursor:hasNext()
	return fetch(self, open_pipeline)
end

pipeline_cursor.sort = cursor.sort
pipeline_cursor.skip = cursor.skip
pipeline_cursor.limit = cursor.limit
pipeline_cursor.next = cursor.next
pipeline_cursor.close = cursor.close

---------------------------------------------------------------------------------------------
-- authentication

-- MONGODB-CR (servers before 4.0)
function auth_methods:auth_mongodb_cr(user, password)
	local digest = md5.sumhexa(user .. ":mongo:" .. password)
	local r = self:runCommand "getnonce"
	if r.ok ~= 1 then
		return false
	end
	local key = md5.sumhexa(r.nonce .. user .. digest)
	r = self:runCommand("authenticate", 1, "user", user, "nonce", r.nonce, "key", key)
	return r.ok == 1
end

-- PBKDF2 with HMAC-SHA-1, one block (20 bytes: SHA-1's length)
local function pbkdf2_sha1(password, salt, iterations)
	local u = crypt.hmac_sha1(password, salt .. "\0\0\0\1")
	local out = u
	for _ = 2, iterations do
		u = crypt.hmac_sha1(password, u)
		out = crypt.xor_str(out, u)
	end
	return out
end

local function scram_fields(message)
	local fields = {}
	for k, v in message:gmatch "(%w+)=([^,]*)" do
		fields[k] = v
	end
	return fields
end

-- SCRAM-SHA-1 (RFC 5802) over saslStart/saslContinue; the password is MongoDB's digest of
-- user and password. The server's signature is checked too.
function auth_methods:auth_scram_sha1(user, password)
	local name = user:gsub("=", "=3D"):gsub(",", "=2C")
	local nonce = crypt.base64encode(crypt.randomkey())
	local first_bare = "n=" .. name .. ",r=" .. nonce
	local r = self:runCommand("saslStart", 1, "autoAuthorize", 1, "mechanism", "SCRAM-SHA-1",
		"payload", crypt.base64encode("n,," .. first_bare))
	if r.ok ~= 1 then
		return false
	end
	local conversation = r.conversationId
	local server_first = crypt.base64decode(r.payload)
	local fields = scram_fields(server_first)
	local iterations, salt, server_nonce = tonumber(fields.i), fields.s, fields.r
	if not (iterations and salt and server_nonce) or server_nonce:sub(1, #nonce) ~= nonce then
		skynet.error "Server returned an invalid nonce."
		return false
	end
	local without_proof = "c=biws,r=" .. server_nonce
	local salted = pbkdf2_sha1(md5.sumhexa(user .. ":mongo:" .. tostring(password)),
		crypt.base64decode(salt), iterations)
	local client_key = crypt.hmac_sha1(salted, "Client Key")
	local auth_message = first_bare .. "," .. server_first .. "," .. without_proof
	local signature = crypt.hmac_sha1(crypt.sha1(client_key), auth_message)
	local proof = crypt.base64encode(crypt.xor_str(client_key, signature))
	local expected = crypt.base64encode(crypt.hmac_sha1(crypt.hmac_sha1(salted, "Server Key"), auth_message))

	r = self:runCommand("saslContinue", 1, "conversationId", conversation,
		"payload", crypt.base64encode(without_proof .. ",p=" .. proof))
	if r.ok ~= 1 then
		return false
	end
	if scram_fields(crypt.base64decode(r.payload)).v ~= expected then
		skynet.error "Server returned an invalid signature."
		return false
	end
	if not r.done then
		r = self:runCommand("saslContinue", 1, "conversationId", conversation, "payload", "")
		if r.ok ~= 1 or not r.done then
			skynet.error "SASL conversation failed to complete."
			return false
		end
	end
	return true
end

---------------------------------------------------------------------------------------------
-- extensions

-- mongo.enable "name" loads skynet.db.mongo.<name> once, handing it the database methods
-- to extend.
local enabled = {}
function mongo.enable(name)
	if enabled[name] then
		return
	end
	enabled[name] = true
	require("skynet.db.mongo." .. name).init { mongo_db = database }
end

return mongo
