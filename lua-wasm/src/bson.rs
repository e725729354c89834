//! `bson` and `skynet.mongo.driver`: skynet's C modules for MongoDB, over the
//! `skywasm-codecs` BSON and OP_MSG code.
//!
//! An encoded document is a full userdata holding its bytes (metatable `bson`: `decode`,
//! `makeindex`, `__tostring`, `__len`, and `__newindex` replacing a fixed-size field in
//! place), as skynet's. Encoding walks Lua tables, so it may raise at any step (a
//! metamethod's error, a bad key, no memory): it runs in a protected call with its buffer
//! owned by the caller's frame, which frees it before raising again.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};

use mlua_sys as ffi;
use skywasm_codecs::bson::{
    self, begin_document, declared_length, decode, end_document, index, integer_type, is_special,
    put_double, put_index_key, put_integer, put_key, put_special, put_string, Key, Sink, Slot,
    Value, MAX_DEPTH,
};
use skywasm_codecs::mongo;

use crate::core::opt_bytes;
use crate::native::{bytes_arg, new_library, push_bytes, raise};

const BSON_META: &CStr = c"bson";

/// Opens `bson`.
pub(crate) unsafe extern "C-unwind" fn open_bson(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        if ffi::luaL_newmetatable(l, BSON_META.as_ptr()) != 0 {
            new_library(l, &[(c"decode", ldecode), (c"makeindex", makeindex)]);
            ffi::lua_setfield(l, -2, c"__index".as_ptr());
            for (name, function) in [
                (c"__tostring", to_string as ffi::lua_CFunction),
                (c"__len", len),
                (c"__newindex", replace),
            ] {
                ffi::lua_pushcfunction(l, function);
                ffi::lua_setfield(l, -2, name.as_ptr());
            }
        }
        ffi::lua_pop(l, 1);
        new_library(
            l,
            &[
                (c"encode", encode),
                (c"encode_order", encode_order),
                (c"date", date),
                (c"timestamp", timestamp),
                (c"regex", regex),
                (c"binary", binary),
                (c"objectid", objectid),
                (c"int64", int64),
                (c"decode", ldecode),
                (c"to_lightuserdata", to_lightuserdata),
                (c"type", lua_type_of),
            ],
        );
        for (name, kind) in [
            (c"null", bson::NULL),
            (c"minkey", bson::MINKEY),
            (c"maxkey", bson::MAXKEY),
        ] {
            push_bytes(l, &[0, kind]);
            ffi::lua_setfield(l, -2, name.as_ptr());
        }
    }
    1
}

/// Opens `skynet.mongo.driver`.
pub(crate) unsafe extern "C-unwind" fn open_driver(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        new_library(
            l,
            &[
                (c"reply", reply),
                (c"length", reply_length),
                (c"op_msg", op_msg),
            ],
        );
    }
    1
}

/// The bytes of the document at `index`: a full userdata's own bytes (as far as its length
/// word says, within its size), or those a light userdata points at (its length word
/// trusted, as skynet's: it points into a reply string checked by `driver.reply`, or at
/// an encoded document).
///
/// # Safety
/// `l` valid; a light userdata must point at a document; the slice lives while the value
/// does.
unsafe fn document_arg<'a>(l: *mut ffi::lua_State, index: c_int) -> Option<&'a [u8]> {
    // SAFETY: the caller's contract; a full userdata has `rawlen` bytes.
    unsafe {
        let ptr = ffi::lua_touserdata(l, index).cast::<u8>().cast_const();
        if ptr.is_null() {
            return None;
        }
        if ffi::lua_type(l, index) == ffi::LUA_TUSERDATA {
            let all = std::slice::from_raw_parts(ptr, ffi::lua_rawlen(l, index));
            let declared = declared_length(all).and_then(|n| usize::try_from(n).ok());
            return Some(&all[..declared.unwrap_or(all.len()).min(all.len())]);
        }
        let head = std::slice::from_raw_parts(ptr, 4);
        let declared = declared_length(head)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(4);
        Some(std::slice::from_raw_parts(ptr, declared.max(4)))
    }
}

// ---------------------------------------------------------------------------------------
// encoding

/// Where an element goes: a named field, or an array's position (0-based).
#[derive(Clone, Copy)]
enum Place<'a> {
    Field(&'a [u8]),
    Index(usize),
}

impl Place<'_> {
    /// Writes the element's type and name.
    ///
    /// # Safety
    /// `l` valid, nothing owned in the calling frames (a bad key raises).
    unsafe fn head(self, l: *mut ffi::lua_State, out: &mut Vec<u8>, kind: u8) {
        match self {
            Place::Field(key) => {
                if let Err(why) = put_key(out, kind, key) {
                    // SAFETY: forwarded.
                    unsafe { raise(l, why.to_string()) }
                }
            }
            Place::Index(i) => put_index_key(out, kind, i),
        }
    }
}

/// Raises a codec error.
///
/// # Safety
/// As [`raise`].
unsafe fn check(l: *mut ffi::lua_State, result: Result<(), bson::Error>) {
    if let Err(why) = result {
        // SAFETY: forwarded.
        unsafe { raise(l, why.to_string()) }
    }
}

/// The buffer a protected encoder writes into: the light userdata at `index`.
///
/// # Safety
/// The light userdata is the `Vec` of [`encode_protected`], alive during the call.
unsafe fn buffer<'a>(l: *mut ffi::lua_State, index: c_int) -> &'a mut Vec<u8> {
    // SAFETY: the caller's contract.
    unsafe { &mut *ffi::lua_touserdata(l, index).cast::<Vec<u8>>() }
}

/// Runs `encoder` protected with the `nargs` values on top and a buffer after them; the
/// encoder leaves the new document's userdata as its one result, which gets the `bson`
/// metatable.
///
/// # Safety
/// `l` valid, nothing owned in the calling frames.
unsafe fn encode_protected(
    l: *mut ffi::lua_State,
    encoder: ffi::lua_CFunction,
    nargs: c_int,
) -> c_int {
    let mut out: Vec<u8> = Vec::with_capacity(64);
    // SAFETY: room was checked by the callers; the buffer outlives the protected call, and
    // is freed before any error is raised again.
    unsafe {
        ffi::lua_pushcfunction(l, encoder);
        ffi::lua_insert(l, -(nargs + 1));
        ffi::lua_pushlightuserdata(l, std::ptr::from_mut(&mut out).cast::<c_void>());
        let status = ffi::lua_pcall(l, nargs + 1, 1, 0);
        drop(out);
        if status != ffi::LUA_OK {
            ffi::lua_error(l);
        }
        ffi::luaL_setmetatable(l, BSON_META.as_ptr());
    }
    1
}

/// Copies the finished buffer into a new userdata (with room for `makeindex`'s index).
///
/// # Safety
/// `l` valid.
unsafe fn push_document(l: *mut ffi::lua_State, out: &[u8]) {
    // SAFETY: the userdata has `out.len()` bytes.
    unsafe {
        let ud = ffi::lua_newuserdatauv(l, out.len(), 1).cast::<u8>();
        std::ptr::copy_nonoverlapping(out.as_ptr(), ud, out.len());
    }
}

/// `bson.encode(t)`.
unsafe extern "C-unwind" fn encode(l: *mut ffi::lua_State) -> c_int {
    unsafe extern "C-unwind" fn run(l: *mut ffi::lua_State) -> c_int {
        // SAFETY: [table, buffer] as encode_protected calls it.
        unsafe {
            let out = buffer(l, 2);
            ffi::lua_settop(l, 1);
            let start = begin_document(out);
            if ffi::luaL_getmetafield(l, 1, c"__pairs".as_ptr()) != ffi::LUA_TNIL {
                pack_pairs(l, out, 0);
            } else {
                pack_dict(l, out, 0);
            }
            check(l, end_document(out, start));
            push_document(l, out);
        }
        1
    }
    // SAFETY: called by Lua with a valid state.
    unsafe {
        ffi::lua_settop(l, 1);
        ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
        encode_protected(l, run, 1)
    }
}

/// `bson.encode_order(k1, v1, k2, v2, ...)`: a document with its keys in this order.
unsafe extern "C-unwind" fn encode_order(l: *mut ffi::lua_State) -> c_int {
    unsafe extern "C-unwind" fn run(l: *mut ffi::lua_State) -> c_int {
        // SAFETY: [k1, v1, ..., buffer] as encode_protected calls it.
        unsafe {
            let n = ffi::lua_gettop(l) - 1;
            let out = buffer(l, n + 1);
            ffi::lua_settop(l, n);
            let start = begin_document(out);
            for i in (1..=n).step_by(2) {
                let mut len = 0usize;
                let key = ffi::lua_tolstring(l, i, &mut len);
                if key.is_null() {
                    raise(l, format!("Argument {i} need a string"));
                }
                let key = std::slice::from_raw_parts(key.cast::<u8>(), len);
                ffi::lua_pushvalue(l, i + 1);
                append_one(l, out, Place::Field(key), 0);
                ffi::lua_pop(l, 1);
            }
            check(l, end_document(out, start));
            push_document(l, out);
        }
        1
    }
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let n = ffi::lua_gettop(l);
        if n % 2 != 0 {
            raise(l, "Invalid ordered dict".to_owned());
        }
        ffi::luaL_checkstack(l, 4, std::ptr::null());
        encode_protected(l, run, n)
    }
}

/// Appends the value on top of the stack as the element at `place`.
///
/// # Safety
/// `l` valid, inside [`encode_protected`]; nothing owned in the calling frames.
unsafe fn append_one(l: *mut ffi::lua_State, out: &mut Vec<u8>, place: Place<'_>, depth: usize) {
    // SAFETY: the caller's contract; borrowed strings stay on the stack while used.
    unsafe {
        match ffi::lua_type(l, -1) {
            ffi::LUA_TNUMBER => {
                if ffi::lua_isinteger(l, -1) != 0 {
                    let i = ffi::lua_tointeger(l, -1);
                    place.head(l, out, integer_type(i));
                    put_integer(out, i);
                } else {
                    place.head(l, out, bson::REAL);
                    put_double(out, ffi::lua_tonumber(l, -1));
                }
            }
            ffi::LUA_TUSERDATA | ffi::LUA_TLIGHTUSERDATA => {
                let doc = document_arg(l, -1).unwrap_or_default();
                if declared_length(doc).is_none_or(|n| n < 5 || n as usize != doc.len()) {
                    raise(l, "Invalid bson document".to_owned());
                }
                place.head(l, out, bson::DOCUMENT);
                out.extend_from_slice(doc);
            }
            ffi::LUA_TSTRING => {
                let value = bytes_arg(l, -1);
                if is_special(value) {
                    let (key, index) = match place {
                        Place::Field(key) => (Some(key), 0),
                        Place::Index(i) => (None, i),
                    };
                    check(l, put_special(out, key, index, value));
                } else {
                    place.head(l, out, bson::STRING);
                    check(l, put_string(out, value));
                }
            }
            ffi::LUA_TTABLE => append_table(l, out, place, depth + 1),
            ffi::LUA_TBOOLEAN => {
                place.head(l, out, bson::BOOLEAN);
                out.push(ffi::lua_toboolean(l, -1) as u8);
            }
            ffi::LUA_TNIL => raise(
                l,
                "Bson array has a hole (nil), Use bson.null instead".to_owned(),
            ),
            other => raise(l, format!("Invalid value type : {}", type_name(l, other))),
        }
    }
}

/// The name of Lua type `t`.
///
/// # Safety
/// `l` valid.
unsafe fn type_name(l: *mut ffi::lua_State, t: c_int) -> String {
    // SAFETY: lua_typename returns a static C string.
    unsafe {
        CStr::from_ptr(ffi::lua_typename(l, t))
            .to_string_lossy()
            .into_owned()
    }
}

/// Appends the table on top of the stack: an array when it has `__len`, or is a raw
/// sequence starting at 1; else a document (through `__pairs` when it has one).
///
/// # Safety
/// As [`append_one`].
unsafe fn append_table(l: *mut ffi::lua_State, out: &mut Vec<u8>, place: Place<'_>, depth: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        if depth > MAX_DEPTH {
            raise(l, bson::Error::TooDeep.to_string());
        }
        ffi::luaL_checkstack(l, 16, std::ptr::null());
        if ffi::luaL_getmetafield(l, -1, c"__len".as_ptr()) != ffi::LUA_TNIL {
            ffi::lua_pushvalue(l, -2);
            ffi::lua_call(l, 1, 1);
            if ffi::lua_isinteger(l, -1) == 0 {
                raise(l, "__len should return integer".to_owned());
            }
            let len = ffi::lua_tointeger(l, -1);
            ffi::lua_pop(l, 1);
            place.head(l, out, bson::ARRAY);
            pack_array(l, out, depth, len);
        } else if ffi::luaL_getmetafield(l, -1, c"__pairs".as_ptr()) != ffi::LUA_TNIL {
            place.head(l, out, bson::DOCUMENT);
            let start = begin_document(out);
            pack_pairs(l, out, depth);
            check(l, end_document(out, start));
        } else if is_raw_array(l) {
            place.head(l, out, bson::ARRAY);
            pack_array(l, out, depth, ffi::lua_rawlen(l, -1) as ffi::lua_Integer);
        } else {
            place.head(l, out, bson::DOCUMENT);
            let start = begin_document(out);
            pack_dict(l, out, depth);
            check(l, end_document(out, start));
        }
    }
}

/// Whether the table on top is a sequence by skynet's test: its first key by `next` is 1,
/// or an integer no greater than its raw length.
///
/// # Safety
/// `l` valid, a table on top, room for two values.
unsafe fn is_raw_array(l: *mut ffi::lua_State) -> bool {
    // SAFETY: the caller's contract.
    unsafe {
        ffi::lua_pushnil(l);
        if ffi::lua_next(l, -2) == 0 {
            return false;
        }
        let first = if ffi::lua_isinteger(l, -2) != 0 {
            ffi::lua_tointeger(l, -2)
        } else {
            0
        };
        ffi::lua_pop(l, 2);
        if first <= 1 {
            return first > 0;
        }
        first as u64 <= ffi::lua_rawlen(l, -1) as u64
    }
}

/// Appends elements 1..=len of the table on top (through `__index`) as an array document.
///
/// # Safety
/// As [`append_one`].
unsafe fn pack_array(
    l: *mut ffi::lua_State,
    out: &mut Vec<u8>,
    depth: usize,
    len: ffi::lua_Integer,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let start = begin_document(out);
        for i in 1..=len {
            ffi::lua_geti(l, -1, i);
            append_one(l, out, Place::Index(i as usize - 1), depth);
            ffi::lua_pop(l, 1);
        }
        check(l, end_document(out, start));
    }
}

/// Appends the value on top under the key below it, which must be a string.
///
/// # Safety
/// As [`append_one`]; [key, value] on top.
unsafe fn append_pair(l: *mut ffi::lua_State, out: &mut Vec<u8>, depth: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        match ffi::lua_type(l, -2) {
            ffi::LUA_TNUMBER => raise(l, "Bson dictionary's key can't be number".to_owned()),
            ffi::LUA_TSTRING => {
                let key = bytes_arg(l, -2);
                append_one(l, out, Place::Field(key), depth);
            }
            other => raise(l, format!("Invalid key type : {}", type_name(l, other))),
        }
    }
}

/// Appends the fields of the table on top, by `next` (the caller begins and ends the
/// document).
///
/// # Safety
/// As [`append_one`].
unsafe fn pack_dict(l: *mut ffi::lua_State, out: &mut Vec<u8>, depth: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            append_pair(l, out, depth);
            ffi::lua_pop(l, 1);
        }
    }
}

/// Appends the fields of the table below the `__pairs` function on top, by that function
/// (the caller begins and ends the document); pops the function.
///
/// # Safety
/// As [`append_one`].
unsafe fn pack_pairs(l: *mut ffi::lua_State, out: &mut Vec<u8>, depth: usize) {
    // SAFETY: the caller's contract: [t, __pairs].
    unsafe {
        ffi::lua_pushvalue(l, -2);
        ffi::lua_call(l, 1, 3); // [t, next, state, control]
        loop {
            ffi::lua_pushvalue(l, -3);
            ffi::lua_pushvalue(l, -3);
            ffi::lua_pushvalue(l, -3);
            ffi::lua_call(l, 2, 2); // [t, next, state, control, k, v]
            if ffi::lua_type(l, -2) == ffi::LUA_TNIL {
                ffi::lua_pop(l, 5);
                return;
            }
            append_pair(l, out, depth);
            ffi::lua_pop(l, 1);
            ffi::lua_replace(l, -2); // k is the next control value
        }
    }
}

// ---------------------------------------------------------------------------------------
// decoding and the document userdata

/// Builds Lua tables from decoded elements.
struct LuaSink {
    l: *mut ffi::lua_State,
}

impl LuaSink {
    /// Pushes a field's key: its name, or an array element's position.
    fn push_key(&self, key: Key<'_>) {
        // SAFETY: a valid state with room (checked when the table was opened).
        unsafe {
            match key {
                Key::Name(name) => {
                    push_bytes(self.l, name);
                }
                Key::Index(i) => ffi::lua_pushinteger(self.l, i),
            }
        }
    }
}

impl Sink for LuaSink {
    fn open(&mut self, key: Option<Key<'_>>, array: bool) -> Result<(), bson::Error> {
        // SAFETY: a valid state; room for the key, the table and a value in it.
        unsafe {
            ffi::luaL_checkstack(self.l, 8, std::ptr::null());
            if let Some(key) = key {
                self.push_key(key);
            }
            // (room for a few elements up front: most documents have some, and growing
            // a table from nothing rehashes it at 1, 2 and 4)
            if array {
                ffi::lua_createtable(self.l, 4, 0);
            } else {
                ffi::lua_createtable(self.l, 0, 4);
            }
        }
        Ok(())
    }

    fn close(&mut self, outermost: bool) -> Result<(), bson::Error> {
        if !outermost {
            // SAFETY: [parent, key, table] on top.
            unsafe { ffi::lua_rawset(self.l, -3) };
        }
        Ok(())
    }

    fn value(&mut self, key: Key<'_>, value: Value<'_>) -> Result<(), bson::Error> {
        let l = self.l;
        self.push_key(key);
        // SAFETY: a valid state, the table below the key.
        unsafe {
            match value {
                Value::Double(d) => ffi::lua_pushnumber(l, d),
                Value::String(s) => {
                    push_bytes(l, s);
                }
                Value::Bool(b) => ffi::lua_pushboolean(l, c_int::from(b)),
                Value::Integer(i) => ffi::lua_pushinteger(l, i),
                Value::Special(parts) => {
                    // (most are short: made in one piece on the stack, not joined in Lua)
                    let mut small = [0u8; 64];
                    let len: usize = parts.iter().map(|p| p.len()).sum();
                    if len <= small.len() {
                        let mut at = 0;
                        for part in parts {
                            small[at..at + part.len()].copy_from_slice(part);
                            at += part.len();
                        }
                        push_bytes(l, &small[..len]);
                    } else {
                        for part in parts {
                            push_bytes(l, part);
                        }
                        ffi::lua_concat(l, parts.len() as c_int);
                    }
                }
            }
            ffi::lua_rawset(l, -3);
        }
        Ok(())
    }
}

/// `bson.decode(doc)` and `doc:decode()`: the table a document holds.
unsafe extern "C-unwind" fn ldecode(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let Some(doc) = document_arg(l, 1) else {
            return 0;
        };
        if let Err(why) = decode(doc, &mut LuaSink { l }) {
            raise(l, why.to_string());
        }
    }
    1
}

/// The bytes of the `bson` userdata at 1.
///
/// # Safety
/// `l` valid; the slice lives while the value does.
unsafe fn own_document<'a>(l: *mut ffi::lua_State) -> &'a mut [u8] {
    // SAFETY: checkudata raises unless it is a `bson` userdata, which has `rawlen` bytes.
    unsafe {
        let ptr = ffi::luaL_checkudata(l, 1, BSON_META.as_ptr()).cast::<u8>();
        std::slice::from_raw_parts_mut(ptr, ffi::lua_rawlen(l, 1))
    }
}

/// `doc:makeindex()`: remembers where each fixed-size field's value is, for `__newindex`.
unsafe extern "C-unwind" fn makeindex(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let doc = own_document(l);
        ffi::lua_createtable(l, 0, 0);
        let result = index(doc, |name, slot| {
            push_bytes(l, name);
            ffi::lua_pushinteger(l, slot.id());
            ffi::lua_rawset(l, -3);
            Ok(())
        });
        if let Err(why) = result {
            raise(l, why.to_string());
        }
        ffi::lua_setiuservalue(l, 1, 1);
        ffi::lua_settop(l, 1);
    }
    1
}

/// `doc[key] = value`: replaces a number, boolean, object id, date or timestamp field in
/// place (after `makeindex`).
unsafe extern "C-unwind" fn replace(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let doc = own_document(l);
        if ffi::lua_getiuservalue(l, 1, 1) != ffi::LUA_TTABLE {
            raise(l, "call makeindex first".to_owned());
        }
        ffi::lua_pushvalue(l, 2);
        let slot = if ffi::lua_rawget(l, -2) == ffi::LUA_TNUMBER {
            Slot::from_id(ffi::lua_tointeger(l, -1), doc.len())
        } else {
            None
        };
        let Some(slot) = slot else {
            ffi::lua_pushvalue(l, 2);
            // (the text's parts are temporaries of format!: nothing owned when Lua raises)
            raise(
                l,
                format!(
                    "Can't replace key : {}",
                    String::from_utf8_lossy(opt_bytes(l, -1).unwrap_or_default())
                ),
            );
        };
        let at = &mut doc[slot.offset..];
        match slot.kind {
            bson::REAL => at[..8].copy_from_slice(&ffi::luaL_checknumber(l, 3).to_le_bytes()),
            bson::BOOLEAN => at[0] = ffi::lua_toboolean(l, 3) as u8,
            bson::INT32 => at[..4].copy_from_slice(&(integer_arg(l, 32) as i32).to_le_bytes()),
            bson::INT64 => at[..8].copy_from_slice(&integer_arg(l, 64).to_le_bytes()),
            kind @ (bson::OBJECTID | bson::DATE | bson::TIMESTAMP) => {
                let value = bytes_arg(l, 3);
                if value.len() < 6 || value[0] != 0 || value[1] != kind {
                    raise(l, format!("Type mismatch, need bson type {kind}"));
                }
                let payload = &value[2..];
                match kind {
                    bson::OBJECTID if payload.len() == 12 => at[..12].copy_from_slice(payload),
                    bson::DATE if payload.len() == 4 => {
                        let seconds = u32::from_le_bytes(payload.try_into().expect("4 bytes"));
                        at[..8].copy_from_slice(&(i64::from(seconds) * 1000).to_le_bytes());
                    }
                    bson::TIMESTAMP if payload.len() == 8 => at[..8].copy_from_slice(payload),
                    bson::OBJECTID => raise(l, bson::Error::ObjectId.to_string()),
                    bson::DATE => raise(l, bson::Error::Date.to_string()),
                    _ => raise(l, bson::Error::Timestamp.to_string()),
                }
            }
            kind => raise(l, format!("Can't replace type {kind}")),
        }
    }
    0
}

/// The integer value argument of `__newindex`, or skynet's error naming the field's width.
///
/// # Safety
/// `l` valid.
unsafe fn integer_arg(l: *mut ffi::lua_State, bits: u32) -> i64 {
    // SAFETY: a valid state; the number is formatted by Lua as `%f` would.
    unsafe {
        if ffi::lua_isinteger(l, 3) == 0 {
            ffi::lua_pushnumber(l, ffi::lua_tonumber(l, 3));
            raise(
                l,
                format!(
                    "{} must be a {bits}bit integer ",
                    String::from_utf8_lossy(opt_bytes(l, -1).unwrap_or_default())
                ),
            );
        }
        ffi::lua_tointeger(l, 3)
    }
}

/// `tostring(doc)`: the document's bytes.
unsafe extern "C-unwind" fn to_string(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe { push_bytes(l, own_document(l)) }
}

/// `#doc`: its size in bytes.
unsafe extern "C-unwind" fn len(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe { ffi::lua_pushinteger(l, own_document(l).len() as ffi::lua_Integer) };
    1
}

/// `bson.to_lightuserdata(doc)`.
unsafe extern "C-unwind" fn to_lightuserdata(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe { ffi::lua_pushlightuserdata(l, ffi::lua_touserdata(l, 1)) };
    1
}

// ---------------------------------------------------------------------------------------
// special values

/// Pushes skynet's Lua form of a special value: a zero, the type, the parts.
///
/// # Safety
/// `l` valid.
unsafe fn push_special(l: *mut ffi::lua_State, kind: u8, parts: &[&[u8]]) -> c_int {
    // SAFETY: a C function has room for a few values.
    unsafe {
        push_bytes(l, &[0, kind]);
        for part in parts {
            push_bytes(l, part);
        }
        ffi::lua_concat(l, parts.len() as c_int + 1);
    }
    1
}

/// `bson.date(seconds)`.
unsafe extern "C-unwind" fn date(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let seconds = ffi::luaL_checkinteger(l, 1) as i32;
        push_special(l, bson::DATE, &[&seconds.to_le_bytes()])
    }
}

/// `bson.int64(n)`.
unsafe extern "C-unwind" fn int64(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let n = ffi::luaL_checkinteger(l, 1);
        push_special(l, bson::INT64, &[&n.to_le_bytes()])
    }
}

thread_local! {
    /// `bson.timestamp`'s increment when none is given.
    static NEXT_INCREMENT: Cell<u32> = const { Cell::new(0) };
    /// `bson.objectid()`'s process bytes and count, made on first use.
    static OBJECT_IDS: Cell<Option<([u8; 5], u32)>> = const { Cell::new(None) };
}

/// `bson.timestamp(seconds [, increment])`.
unsafe extern "C-unwind" fn timestamp(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let seconds = ffi::luaL_checkinteger(l, 1) as i32;
        let increment = if ffi::lua_isnoneornil(l, 2) != 0 {
            NEXT_INCREMENT.with(|next| next.replace(next.get().wrapping_add(1)))
        } else {
            ffi::lua_tointeger(l, 2) as u32
        };
        push_special(
            l,
            bson::TIMESTAMP,
            &[&increment.to_le_bytes(), &seconds.to_le_bytes()],
        )
    }
}

/// `bson.regex(pattern [, options])`.
unsafe extern "C-unwind" fn regex(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let pattern = bytes_arg(l, 1);
        let options = opt_bytes(l, 2).unwrap_or_default();
        push_special(l, bson::REGEX, &[pattern, &[0], options, &[0]])
    }
}

/// `bson.binary(bytes)`: subtype 0.
unsafe extern "C-unwind" fn binary(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let data = opt_bytes(l, 1).unwrap_or_default();
        push_special(l, bson::BINARY, &[&[0], data])
    }
}

/// `bson.objectid([hex])`: from 24 hex digits, or a new one.
unsafe extern "C-unwind" fn objectid(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        if ffi::lua_isstring(l, 1) != 0 {
            let hex = bytes_arg(l, 1);
            match bson::object_id_from_hex(hex) {
                Some(id) => push_special(l, bson::OBJECTID, &[&id]),
                None => raise(
                    l,
                    format!("Invalid objectid {}", String::from_utf8_lossy(hex)),
                ),
            }
        } else {
            let (process, count) = OBJECT_IDS.with(|ids| {
                let (process, count) = ids.get().unwrap_or_else(|| {
                    // what names this process: random bytes (a sandbox has no host name or
                    // pid to hash), and a random first count, as MongoDB's drivers do
                    let mut seed = [0u8; 9];
                    crate::entry::random_bytes(&mut seed);
                    let process: [u8; 5] = seed[..5].try_into().expect("5 bytes");
                    (
                        process,
                        u32::from_le_bytes(seed[5..].try_into().expect("4 bytes")),
                    )
                });
                ids.set(Some((process, count.wrapping_add(1))));
                (process, count)
            });
            let seconds = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as u32);
            push_special(
                l,
                bson::OBJECTID,
                &[&bson::object_id(seconds, process, count)],
            )
        }
    }
}

/// `bson.type(v)`: the BSON type's name and the value's parts, as skynet's.
unsafe extern "C-unwind" fn lua_type_of(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let name: &CStr = match ffi::lua_type(l, 1) {
            ffi::LUA_TNUMBER => c"number",
            ffi::LUA_TBOOLEAN => c"boolean",
            ffi::LUA_TTABLE => c"table",
            ffi::LUA_TNIL => {
                ffi::lua_pushstring(l, c"nil".as_ptr());
                return 1;
            }
            ffi::LUA_TSTRING => {
                let value = bytes_arg(l, 1);
                if is_special(value) {
                    return special_type(l, value[1], &value[2..]);
                }
                c"string"
            }
            other => raise(l, format!("Invalid type {}", type_name(l, other))),
        };
        ffi::lua_pushstring(l, name.as_ptr());
        ffi::lua_pushvalue(l, 1);
    }
    2
}

/// `bson.type` of a special value.
///
/// # Safety
/// `l` valid; `payload` on the stack.
unsafe fn special_type(l: *mut ffi::lua_State, kind: u8, payload: &[u8]) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        let name = |name: &CStr| ffi::lua_pushstring(l, name.as_ptr());
        match kind {
            bson::BINARY if !payload.is_empty() => {
                name(c"binary");
                push_bytes(l, &payload[1..]);
                ffi::lua_pushinteger(l, ffi::lua_Integer::from(payload[0]));
                3
            }
            bson::OBJECTID if payload.len() == 12 => {
                name(c"objectid");
                // (on the stack, not the heap: pushing may raise)
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let mut hex = [0u8; 24];
                for (i, b) in payload.iter().enumerate() {
                    hex[2 * i] = DIGITS[usize::from(b >> 4)];
                    hex[2 * i + 1] = DIGITS[usize::from(b & 15)];
                }
                push_bytes(l, &hex);
                2
            }
            bson::DATE if payload.len() == 4 => {
                name(c"date");
                let seconds = i32::from_le_bytes(payload.try_into().expect("4 bytes"));
                ffi::lua_pushinteger(l, ffi::lua_Integer::from(seconds));
                2
            }
            bson::TIMESTAMP if payload.len() == 8 => {
                name(c"timestamp");
                let increment = u32::from_le_bytes(payload[..4].try_into().expect("4 bytes"));
                let seconds = u32::from_le_bytes(payload[4..].try_into().expect("4 bytes"));
                ffi::lua_pushinteger(l, ffi::lua_Integer::from(seconds));
                ffi::lua_pushinteger(l, ffi::lua_Integer::from(increment));
                3
            }
            bson::REGEX => {
                let body = payload.strip_suffix(&[0]).unwrap_or(payload);
                let Some(middle) = body.iter().rposition(|&b| b == 0) else {
                    raise(l, bson::Error::Regex.to_string());
                };
                name(c"regex");
                push_bytes(l, &body[..middle]);
                push_bytes(l, &body[middle + 1..]);
                3
            }
            bson::MINKEY => {
                name(c"minkey");
                1
            }
            bson::MAXKEY => {
                name(c"maxkey");
                1
            }
            bson::NULL => {
                name(c"nil");
                1
            }
            bson::JSCODE | bson::DBPOINTER | bson::SYMBOL | bson::CODEWS => {
                name(c"unsupported");
                push_bytes(l, payload);
                2
            }
            bson::INT64 if payload.len() == 8 => {
                name(c"int64");
                ffi::lua_pushinteger(l, i64::from_le_bytes(payload.try_into().expect("8 bytes")));
                2
            }
            bson::BINARY => raise(l, bson::Error::Binary.to_string()),
            bson::OBJECTID => raise(l, bson::Error::ObjectId.to_string()),
            bson::DATE => raise(l, bson::Error::Date.to_string()),
            bson::TIMESTAMP => raise(l, bson::Error::Timestamp.to_string()),
            bson::INT64 => raise(l, bson::Error::Int64.to_string()),
            other => raise(l, bson::Error::Subtype(other).to_string()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// skynet.mongo.driver

/// `driver.reply(data)`: `true, response_to, document` (a light userdata into `data`, which
/// the caller keeps), or `false` when `data` is shorter than a header.
unsafe extern "C-unwind" fn reply(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state; the document pointer is into the string
    // argument, valid while the caller keeps it.
    unsafe {
        let data = bytes_arg(l, 1);
        match mongo::parse_reply(data) {
            Ok(None) => {
                ffi::lua_pushboolean(l, 0);
                1
            }
            Ok(Some(reply)) => {
                ffi::lua_pushboolean(l, 1);
                ffi::lua_pushinteger(l, ffi::lua_Integer::from(reply.response_to));
                let doc = data[reply.document].as_ptr().cast_mut().cast::<c_void>();
                ffi::lua_pushlightuserdata(l, doc);
                3
            }
            Err(why) => raise(l, why.to_string()),
        }
    }
}

/// `driver.length(prefix)`: how many bytes of a reply follow its 4-byte length word.
unsafe extern "C-unwind" fn reply_length(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        match mongo::reply_length(bytes_arg(l, 1)) {
            Ok(n) => ffi::lua_pushinteger(l, n as ffi::lua_Integer),
            Err(why) => raise(l, why.to_string()),
        }
    }
    1
}

/// `driver.op_msg(request_id, flags, document)`: an OP_MSG request.
unsafe extern "C-unwind" fn op_msg(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let id = ffi::luaL_checkinteger(l, 1) as i32;
        let flags = ffi::luaL_checkinteger(l, 2) as i32;
        let Some(doc) = document_arg(l, 3) else {
            raise(l, "opmsg require cmd document".to_owned());
        };
        push_bytes(l, &mongo::op_msg_head(id, flags, doc.len()));
        push_bytes(l, doc);
        ffi::lua_concat(l, 2);
    }
    1
}
