//! `sproto.core`: skynet's sproto C module for Lua, over the `skywasm-codecs` sproto
//! implementation. A schema (`newproto`) and a type (`querytype`) are full userdata holding
//! a reference to the parsed schema (skynet's are light userdata pointers into C memory);
//! a `response nil` protocol's response is a NULL light userdata, as skynet's.
//!
//! Encoding reads Lua tables through [`LuaSource`] and decoding writes them through
//! [`LuaSink`]; neither holds Rust-owned memory while Lua runs (a Lua error may leave at
//! any call into Lua), and the encode buffer belongs to Lua (an upvalue, as skynet's).

use std::ffi::{c_int, CStr};
use std::rc::Rc;

use mlua_sys as ffi;
use skywasm_codecs::sproto::decode::{self, DecodeError, PairFields, Scalar, Sink};
use skywasm_codecs::sproto::encode::{self, EncodeError, Source};
use skywasm_codecs::sproto::schema::{Field, Kind, Schema};
use skywasm_codecs::sproto::{pack, parser, MAX_DEPTH, MAX_ENCODED};

use crate::native::{bytes_arg, new_library, push_owned, raise};

const PROTO_META: &CStr = c"skywasm.sproto";
const TYPE_META: &CStr = c"skywasm.sproto.type";
/// The encode buffer's first size, as skynet's.
const FIRST_BUFFER: usize = 2050;

/// A `querytype` result: the schema and a type of it.
struct TypeRef {
    schema: Rc<Schema>,
    index: usize,
}

/// Opens `sproto.core`.
pub(crate) unsafe extern "C-unwind" fn open(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        for (name, gc) in [
            (PROTO_META, drop_proto as ffi::lua_CFunction),
            (TYPE_META, drop_type),
        ] {
            ffi::luaL_newmetatable(l, name.as_ptr());
            ffi::lua_pushcfunction(l, gc);
            ffi::lua_setfield(l, -2, c"__gc".as_ptr());
            // (so that Lua code can neither read nor call `__gc` itself)
            ffi::lua_pushboolean(l, 0);
            ffi::lua_setfield(l, -2, c"__metatable".as_ptr());
            ffi::lua_pop(l, 1);
        }
        new_library(
            l,
            &[
                (c"newproto", newproto),
                (c"deleteproto", deleteproto),
                (c"dumpproto", dumpproto),
                (c"querytype", querytype),
                (c"decode", decode),
                (c"protocol", protocol),
                (c"default", default),
                (c"parse", parse),
            ],
        );
        // the encoder keeps its buffer between calls, as an upvalue (with a busy flag: a
        // metamethod may encode again while it runs)
        ffi::lua_newuserdatauv(l, FIRST_BUFFER, 0);
        ffi::lua_pushboolean(l, 0);
        ffi::lua_pushcclosure(l, encode, 2);
        ffi::lua_setfield(l, -2, c"encode".as_ptr());
        ffi::lua_pushcfunction(l, lpack);
        ffi::lua_setfield(l, -2, c"pack".as_ptr());
        ffi::lua_pushcfunction(l, lunpack);
        ffi::lua_setfield(l, -2, c"unpack".as_ptr());
    }
    1
}

/// `__gc` of a userdata holding a `T` with metatable `meta` (anything else is left alone).
///
/// # Safety
/// `l` valid.
unsafe fn drop_userdata<T>(l: *mut ffi::lua_State, meta: &CStr) -> c_int {
    // SAFETY: testudata checks the metatable, so the memory is an `Option<T>` made by
    // `new_userdata::<T>`; the value is taken out, so a second call finds nothing.
    unsafe {
        let p = ffi::luaL_testudata(l, 1, meta.as_ptr()).cast::<Option<T>>();
        if !p.is_null() {
            drop((*p).take());
        }
    }
    0
}

unsafe extern "C-unwind" fn drop_proto(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe { drop_userdata::<Rc<Schema>>(l, PROTO_META) }
}

unsafe extern "C-unwind" fn drop_type(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe { drop_userdata::<TypeRef>(l, TYPE_META) }
}

/// Pushes a userdata holding what `make` makes, with metatable `meta`. `make` runs once the
/// memory is Lua's and nothing more can raise, so a failed allocation leaks nothing.
///
/// # Safety
/// `l` valid.
unsafe fn new_userdata<T>(l: *mut ffi::lua_State, meta: &CStr, make: impl FnOnce() -> T) {
    // SAFETY: the memory is sized and aligned for `Option<T>` (Lua aligns userdata to its
    // maximum alignment, enough for pointers and usize); `None` is written before the
    // metatable (with its `__gc`) is set, and `make` runs last, when nothing can raise.
    unsafe {
        let p = ffi::lua_newuserdatauv(l, std::mem::size_of::<Option<T>>(), 0).cast::<Option<T>>();
        p.write(None);
        ffi::luaL_setmetatable(l, meta.as_ptr());
        *p = Some(make());
    }
}

/// The schema of the `newproto` userdata at `index`, or an argument error.
///
/// # Safety
/// `l` valid; the reference lives while the userdata does (keep it on the stack).
unsafe fn proto_arg<'a>(l: *mut ffi::lua_State, index: c_int) -> &'a Rc<Schema> {
    // SAFETY: testudata checks the metatable, so the memory is an `Option<Rc<Schema>>`.
    unsafe {
        let p = ffi::luaL_testudata(l, index, PROTO_META.as_ptr()).cast::<Option<Rc<Schema>>>();
        match p.as_ref().and_then(Option::as_ref) {
            Some(schema) => schema,
            None => {
                ffi::luaL_argerror(l, index, c"Need a sproto object".as_ptr());
                unreachable!("luaL_argerror does not return")
            }
        }
    }
}

/// The type of the `querytype` userdata at `index`: `None` for nil or a NULL light
/// userdata (a `response nil`), an argument error for anything else.
///
/// # Safety
/// As [`proto_arg`].
unsafe fn type_arg<'a>(l: *mut ffi::lua_State, index: c_int) -> Option<&'a TypeRef> {
    // SAFETY: as proto_arg.
    unsafe {
        match ffi::lua_type(l, index) {
            ffi::LUA_TNIL | ffi::LUA_TNONE => return None,
            ffi::LUA_TLIGHTUSERDATA if ffi::lua_touserdata(l, index).is_null() => return None,
            _ => {}
        }
        let p = ffi::luaL_testudata(l, index, TYPE_META.as_ptr()).cast::<Option<TypeRef>>();
        match p.as_ref().and_then(Option::as_ref) {
            Some(t) => Some(t),
            None => {
                ffi::luaL_argerror(l, index, c"Need a sproto_type object".as_ptr());
                unreachable!("luaL_argerror does not return")
            }
        }
    }
}

/// Pushes a type handle (or nil).
///
/// # Safety
/// `l` valid.
unsafe fn push_type(l: *mut ffi::lua_State, schema: &Rc<Schema>, index: Option<usize>) {
    // SAFETY: forwarded.
    unsafe {
        match index {
            Some(index) => new_userdata(l, TYPE_META, || TypeRef {
                schema: Rc::clone(schema),
                index,
            }),
            None => ffi::lua_pushnil(l),
        }
    }
}

/// `newproto(bundle)`: a schema, or nothing when the bundle is invalid.
unsafe extern "C-unwind" fn newproto(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls with a valid state; the bundle stays on the stack. The parsed
    // schema is dropped before returning on failure, and moved into Lua memory otherwise.
    unsafe {
        let bundle = bytes_arg(l, 1);
        if Schema::from_bundle(bundle).is_err() {
            return 0;
        }
        new_userdata(l, PROTO_META, || {
            Rc::new(Schema::from_bundle(bundle).expect("it parsed a moment ago"))
        });
        1
    }
}

/// `deleteproto(sp)`: nothing to do (the schema goes with its last reference).
unsafe extern "C-unwind" fn deleteproto(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls with a valid state.
    unsafe {
        proto_arg(l, 1);
    }
    0
}

/// `dumpproto(sp)`: prints the schema as skynet's `sproto_dump` does.
unsafe extern "C-unwind" fn dumpproto(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls with a valid state.
    unsafe {
        let schema = proto_arg(l, 1);
        ffi::lua_getglobal(l, c"print".as_ptr());
        let mut text = schema.dump().into_bytes();
        text.truncate(text.trim_ascii_end().len());
        push_owned(l, text);
        ffi::lua_call(l, 1, 0);
    }
    0
}

/// `querytype(sp, name)`: the type, or nothing.
unsafe extern "C-unwind" fn querytype(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls with a valid state.
    unsafe {
        let schema = proto_arg(l, 1);
        let name = bytes_arg(l, 2);
        match schema.type_index(name) {
            Some(index) => {
                push_type(l, schema, Some(index));
                1
            }
            None => 0,
        }
    }
}

/// `protocol(sp, name | tag)`: tag (or name), request type, response type (NULL light
/// userdata for `response nil`); nothing when there is no such protocol.
unsafe extern "C-unwind" fn protocol(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls with a valid state.
    unsafe {
        let schema = proto_arg(l, 1);
        let p = if ffi::lua_type(l, 2) == ffi::LUA_TNUMBER {
            let Some(p) = schema.protocol_by_tag(ffi::lua_tointeger(l, 2)) else {
                return 0;
            };
            ffi::lua_pushstring(l, p.name.as_ptr());
            p
        } else {
            if ffi::lua_type(l, 2) != ffi::LUA_TSTRING {
                ffi::luaL_argerror(l, 2, c"Should be number or string".as_ptr());
            }
            let Some(p) = schema.protocol_by_name(bytes_arg(l, 2)) else {
                return 0;
            };
            ffi::lua_pushinteger(l, ffi::lua_Integer::from(p.tag));
            p
        };
        push_type(l, schema, p.request);
        if p.response.is_none() && p.confirm {
            ffi::lua_pushlightuserdata(l, std::ptr::null_mut());
        } else {
            push_type(l, schema, p.response);
        }
        3
    }
}

/// `encode(st, table)`: the message (a NULL or nil type encodes nil as "").
unsafe extern "C-unwind" fn encode(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls with a valid state; the buffer is the upvalue's memory, replaced
    // only between attempts.
    unsafe {
        let Some(ty) = type_arg(l, 1) else {
            ffi::luaL_checktype(l, 2, ffi::LUA_TNIL);
            ffi::lua_pushstring(l, c"".as_ptr());
            return 1;
        };
        ffi::luaL_checktype(l, 2, ffi::LUA_TTABLE);
        ffi::lua_settop(l, 2);
        // the buffer lives in slot 3 while this call writes to it; a call made meanwhile
        // (from a metamethod) finds the flag set and uses a buffer of its own
        let busy = ffi::lua_toboolean(l, ffi::lua_upvalueindex(2)) != 0;
        if busy {
            ffi::lua_newuserdatauv(l, FIRST_BUFFER, 0);
        } else {
            ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
            ffi::lua_pushboolean(l, 1);
            ffi::lua_replace(l, ffi::lua_upvalueindex(2));
        }
        let result = encode_into(l, ty);
        if !busy {
            ffi::lua_pushvalue(l, 3);
            ffi::lua_replace(l, ffi::lua_upvalueindex(1));
            ffi::lua_pushboolean(l, 0);
            ffi::lua_replace(l, ffi::lua_upvalueindex(2));
        }
        match result {
            Ok(len) => {
                let buffer = ffi::lua_touserdata(l, 3).cast::<u8>();
                ffi::lua_pushlstring(l, buffer.cast(), len);
                1
            }
            Err(e) => raise(l, e),
        }
    }
}

/// Encodes the table at slot 2 as `ty` into the buffer at slot 3, growing it (a new
/// userdata in slot 3) until the message fits: its length, or the error's text.
///
/// # Safety
/// `l` valid with the table at 2 and a buffer userdata at 3. A Lua error raised inside
/// leaves the busy flag set: later calls then use buffers of their own.
unsafe fn encode_into(l: *mut ffi::lua_State, ty: &TypeRef) -> Result<usize, String> {
    // SAFETY: forwarded; the buffer in slot 3 stays referenced while it is written.
    unsafe {
        loop {
            ffi::lua_settop(l, 3);
            let buffer = ffi::lua_touserdata(l, 3).cast::<u8>();
            let size = ffi::lua_rawlen(l, 3);
            let out = std::slice::from_raw_parts_mut(buffer, size);
            ffi::luaL_checkstack(l, 12, std::ptr::null());
            let mut source = LuaSource::new(l, 2);
            match encode::encode(&ty.schema, ty.index, &mut source, out) {
                Ok(len) => return Ok(len),
                Err(EncodeError::Full) => {
                    if size >= MAX_ENCODED {
                        return Err(format!("object is too large (>{MAX_ENCODED})"));
                    }
                    let bigger = (size + size / 2).clamp(size + 1, MAX_ENCODED);
                    ffi::lua_newuserdatauv(l, bigger, 0);
                    ffi::lua_replace(l, 3);
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// `decode(st, msg [, sz] [, table])`: the table (the given one, or a new one) and the
/// bytes the message took; nothing for a nil type.
unsafe extern "C-unwind" fn decode(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls with a valid state; the message stays on the stack (or is the
    // caller's own memory, for a pointer and size).
    unsafe {
        let Some(ty) = type_arg(l, 1) else {
            return 0;
        };
        let bytes = buffer_arg(l, 2);
        if ffi::lua_istable(l, -1) == 0 {
            ffi::lua_createtable(l, 0, 0);
        }
        let result = ffi::lua_gettop(l);
        let mut sink = LuaSink { l };
        match decode::decode(&ty.schema, ty.index, bytes, &mut sink) {
            Ok(taken) => {
                ffi::lua_settop(l, result);
                ffi::lua_pushinteger(l, taken as ffi::lua_Integer);
                2
            }
            Err(e) => raise(l, e.to_string()),
        }
    }
}

/// A message argument: a string, or a (light) userdata and a size (skynet's `getbuffer`).
///
/// # Safety
/// `l` valid; a pointer must address `size` readable bytes (the caller's contract, as in
/// skynet).
unsafe fn buffer_arg<'a>(l: *mut ffi::lua_State, index: c_int) -> &'a [u8] {
    // SAFETY: forwarded.
    unsafe {
        match ffi::lua_type(l, index) {
            ffi::LUA_TSTRING => bytes_arg(l, index),
            ffi::LUA_TUSERDATA | ffi::LUA_TLIGHTUSERDATA => {
                let ptr = ffi::lua_touserdata(l, index).cast::<u8>();
                let size = ffi::luaL_checkinteger(l, index + 1);
                match usize::try_from(size) {
                    Ok(0) => &[],
                    Ok(size) if !ptr.is_null() => std::slice::from_raw_parts(ptr, size),
                    _ => {
                        ffi::luaL_argerror(l, index + 1, c"invalid size".as_ptr());
                        unreachable!("luaL_argerror does not return")
                    }
                }
            }
            _ => {
                ffi::luaL_argerror(l, index, c"Need a string or userdata".as_ptr());
                unreachable!("luaL_argerror does not return")
            }
        }
    }
}

/// Pushes a string of at most `max` bytes that `fill` writes (returning how many), built
/// in Lua's own buffer: nothing Rust-owned is alive if Lua raises for want of memory.
///
/// # Safety
/// `l` valid.
unsafe fn push_built(l: *mut ffi::lua_State, max: usize, fill: impl FnOnce(&mut [u8]) -> usize) {
    // SAFETY: luaL_buffinitsize returns `max` writable bytes (or raises); the buffer lives
    // on this frame until luaL_pushresultsize, which takes the `len <= max` bytes written.
    unsafe {
        let mut buffer = std::mem::MaybeUninit::<ffi::luaL_Buffer>::uninit();
        let ptr = ffi::luaL_buffinitsize(l, buffer.as_mut_ptr(), max);
        let out = std::slice::from_raw_parts_mut(ptr.cast::<u8>(), max);
        let len = fill(out);
        ffi::luaL_pushresultsize(buffer.as_mut_ptr(), len);
    }
}

/// `pack(msg [, sz])`: the zero-packed message.
unsafe extern "C-unwind" fn lpack(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls with a valid state; the message stays on the stack.
    unsafe {
        let bytes = buffer_arg(l, 1);
        push_built(l, pack::max_packed_len(bytes.len()), |out| {
            pack::pack_into(bytes, out)
        });
        1
    }
}

/// `unpack(msg [, sz])`: the unpacked message (a multiple of 8 bytes).
unsafe extern "C-unwind" fn lunpack(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls with a valid state; the message stays on the stack.
    unsafe {
        let bytes = buffer_arg(l, 1);
        match pack::unpacked_len(bytes) {
            Ok(len) => {
                push_built(l, len, |out| {
                    pack::unpack_into(bytes, out);
                    len
                });
                1
            }
            Err(e) => raise(l, e.to_string()),
        }
    }
}

/// `default(st)`: a table of the type's fields at their defaults (`__type` names a struct,
/// `__array` an array's element).
unsafe extern "C-unwind" fn default(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls with a valid state.
    unsafe {
        let Some(ty) = type_arg(l, 1) else {
            ffi::luaL_argerror(l, 1, c"Need a sproto_type object".as_ptr());
            unreachable!("luaL_argerror does not return")
        };
        let schema = &ty.schema;
        let t = &schema.types[ty.index];
        ffi::lua_createtable(l, 0, t.fields.len() as c_int);
        for f in &t.fields {
            if f.array {
                ffi::lua_createtable(l, 0, 1);
                push_default(l, schema, f, true);
                ffi::lua_setfield(l, -2, c"__array".as_ptr());
            } else {
                push_default(l, schema, f, false);
            }
            ffi::lua_setfield(l, -2, f.name.as_ptr());
        }
        1
    }
}

/// A field's default: 0, 0.0, false, "", or for a struct `{__type = name}` (its name
/// alone inside an array's `__array`).
///
/// # Safety
/// `l` valid.
unsafe fn push_default(l: *mut ffi::lua_State, schema: &Schema, f: &Field, in_array: bool) {
    // SAFETY: forwarded.
    unsafe {
        match f.kind {
            Kind::Integer { decimal: 0 } => ffi::lua_pushinteger(l, 0),
            Kind::Integer { .. } | Kind::Double => ffi::lua_pushnumber(l, 0.0),
            Kind::Boolean => ffi::lua_pushboolean(l, 0),
            Kind::String { .. } => {
                ffi::lua_pushstring(l, c"".as_ptr());
            }
            Kind::Struct(sub) => {
                let name = schema.types[sub].name.as_ptr();
                if in_array {
                    ffi::lua_pushstring(l, name);
                } else {
                    ffi::lua_createtable(l, 0, 1);
                    ffi::lua_pushstring(l, name);
                    ffi::lua_setfield(l, -2, c"__type".as_ptr());
                }
            }
        }
    }
}

/// `parse(text [, name])` (sprotoparser's): the schema bundle, or an error.
unsafe extern "C-unwind" fn parse(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls with a valid state.
    unsafe {
        let text = bytes_arg(l, 1);
        let name = if ffi::lua_isnoneornil(l, 2) != 0 {
            "=text".to_string()
        } else {
            String::from_utf8_lossy(bytes_arg(l, 2)).into_owned()
        };
        let result = parser::parse(text, &name);
        drop(name);
        match result {
            Ok(bundle) => push_owned(l, bundle),
            Err(e) => raise(l, e.0),
        }
    }
}

/// The Lua type name of the value at `index`.
///
/// # Safety
/// `l` valid.
unsafe fn type_name(l: *mut ffi::lua_State, index: c_int) -> &'static str {
    // SAFETY: lua_typename returns one of Lua's static names.
    unsafe {
        CStr::from_ptr(ffi::luaL_typename(l, index))
            .to_str()
            .unwrap_or("?")
    }
}

/// An array being read by [`LuaSource`]: its stack slot, and for a keyed one the slots of
/// its iteration (a `__pairs` function and state, or none for `next`) and current key.
#[derive(Clone, Copy, Default)]
struct Array {
    at: c_int,
    iter: c_int,
    key: c_int,
    entry: c_int,
}

/// Reads Lua tables for the encoder. Its stacks are fixed arrays: nothing it holds is
/// Rust heap memory, so a Lua error leaving it loses nothing.
struct LuaSource {
    l: *mut ffi::lua_State,
    structs: [c_int; MAX_DEPTH + 1],
    depth: usize,
    arrays: [Array; MAX_DEPTH + 2],
    array_depth: usize,
}

impl LuaSource {
    fn new(l: *mut ffi::lua_State, root: c_int) -> Self {
        let mut structs = [0; MAX_DEPTH + 1];
        structs[0] = root;
        LuaSource {
            l,
            structs,
            depth: 0,
            arrays: [Array::default(); MAX_DEPTH + 2],
            array_depth: 0,
        }
    }

    fn array(&self) -> Array {
        self.arrays[self.array_depth - 1]
    }

    /// After `k, v` were pushed by an iteration: remembers `k`, leaves the value (or the
    /// reused map entry `{key = k, value = v}`) on top.
    fn take_pair(&mut self, pair: Option<(&CStr, &CStr)>) {
        let l = self.l;
        let a = self.array();
        // SAFETY: the slots were made by begin_array; `k, v` are on top.
        unsafe {
            ffi::lua_pushvalue(l, -2);
            ffi::lua_replace(l, a.key);
            match pair {
                Some((key, value)) => {
                    ffi::lua_setfield(l, a.entry, value.as_ptr());
                    ffi::lua_setfield(l, a.entry, key.as_ptr());
                    ffi::lua_pushvalue(l, a.entry);
                }
                None => ffi::lua_remove(l, -2),
            }
        }
    }
}

impl Source for LuaSource {
    fn push_field(&mut self, field: &CStr) -> bool {
        let l = self.l;
        // SAFETY: the struct slot is valid; room for what a step pushes was checked when the
        // struct was entered.
        unsafe {
            if ffi::lua_getfield(l, self.structs[self.depth], field.as_ptr()) == ffi::LUA_TNIL {
                ffi::lua_pop(l, 1);
                return false;
            }
        }
        true
    }

    fn take_integer(&mut self) -> Result<i64, &'static str> {
        let mut isnum = 0;
        // SAFETY: a value is on top.
        unsafe {
            let v = ffi::lua_tointegerx(self.l, -1, &mut isnum);
            if isnum == 0 {
                return Err(type_name(self.l, -1));
            }
            ffi::lua_pop(self.l, 1);
            Ok(v)
        }
    }

    fn take_number(&mut self) -> f64 {
        // SAFETY: a value is on top.
        unsafe {
            let v = ffi::lua_tonumberx(self.l, -1, std::ptr::null_mut());
            ffi::lua_pop(self.l, 1);
            v
        }
    }

    fn take_boolean(&mut self) -> Result<bool, &'static str> {
        // SAFETY: a value is on top.
        unsafe {
            if ffi::lua_type(self.l, -1) != ffi::LUA_TBOOLEAN {
                return Err(type_name(self.l, -1));
            }
            let b = ffi::lua_toboolean(self.l, -1) != 0;
            ffi::lua_pop(self.l, 1);
            Ok(b)
        }
    }

    fn string(&mut self) -> Result<&[u8], &'static str> {
        // SAFETY: a value is on top; the bytes live while it stays there.
        unsafe {
            if ffi::lua_type(self.l, -1) != ffi::LUA_TSTRING {
                return Err(type_name(self.l, -1));
            }
            let mut len = 0;
            let ptr = ffi::lua_tolstring(self.l, -1, &mut len);
            Ok(std::slice::from_raw_parts(ptr.cast(), len))
        }
    }

    fn pop(&mut self) {
        // SAFETY: a value is on top.
        unsafe { ffi::lua_pop(self.l, 1) }
    }

    fn enter(&mut self) {
        self.depth += 1;
        // SAFETY: the struct value is on top; room for its fields' steps is made here.
        unsafe {
            ffi::luaL_checkstack(self.l, 12, std::ptr::null());
            self.structs[self.depth] = ffi::lua_gettop(self.l);
        }
    }

    fn leave(&mut self) {
        let at = self.structs[self.depth];
        self.depth -= 1;
        // SAFETY: drops the struct and whatever is above it.
        unsafe { ffi::lua_settop(self.l, at - 1) }
    }

    fn begin_array(&mut self, keyed: bool) -> Result<(), &'static str> {
        let l = self.l;
        // SAFETY: the array value is on top; the slots pushed here are popped by end_array.
        unsafe {
            let at = ffi::lua_gettop(l);
            let mut array = Array {
                at,
                ..Array::default()
            };
            let has_pairs = ffi::luaL_getmetafield(l, at, c"__pairs".as_ptr()) != ffi::LUA_TNIL;
            if has_pairs && keyed {
                ffi::lua_pushvalue(l, at);
                ffi::lua_call(l, 1, 3);
                array.iter = at + 1;
                array.key = at + 3;
            } else {
                if has_pairs {
                    ffi::lua_pop(l, 1);
                } else if ffi::lua_istable(l, at) == 0 {
                    return Err(type_name(l, at));
                }
                ffi::lua_pushnil(l);
                array.key = at + 1;
            }
            if keyed {
                ffi::lua_createtable(l, 0, 2);
                array.entry = ffi::lua_gettop(l);
            }
            self.arrays[self.array_depth] = array;
            self.array_depth += 1;
        }
        Ok(())
    }

    fn push_element(&mut self, index: usize) -> bool {
        let l = self.l;
        // SAFETY: the array slot is valid.
        unsafe {
            if ffi::lua_geti(l, self.array().at, index as ffi::lua_Integer) == ffi::LUA_TNIL {
                ffi::lua_pop(l, 1);
                return false;
            }
        }
        true
    }

    fn push_next(&mut self, pair: Option<(&CStr, &CStr)>) -> bool {
        let l = self.l;
        let a = self.array();
        // SAFETY: the slots were made by begin_array.
        unsafe {
            if a.iter != 0 {
                ffi::lua_pushvalue(l, a.iter);
                ffi::lua_pushvalue(l, a.iter + 1);
                ffi::lua_pushvalue(l, a.key);
                ffi::lua_call(l, 2, 2);
                if ffi::lua_type(l, -2) == ffi::LUA_TNIL {
                    ffi::lua_pop(l, 2);
                    return false;
                }
            } else {
                ffi::lua_pushvalue(l, a.key);
                if ffi::lua_next(l, a.at) == 0 {
                    return false;
                }
            }
        }
        self.take_pair(pair);
        true
    }

    fn end_array(&mut self) {
        self.array_depth -= 1;
        let at = self.arrays[self.array_depth].at;
        // SAFETY: drops the array, its slots and whatever is above them.
        unsafe { ffi::lua_settop(self.l, at - 1) }
    }
}

/// Builds Lua tables for the decoder: the table being filled is on top of the stack.
struct LuaSink {
    l: *mut ffi::lua_State,
}

impl LuaSink {
    fn push(&self, value: Scalar<'_>) {
        let l = self.l;
        // SAFETY: a valid state; room was checked when the table was pushed.
        unsafe {
            match value {
                Scalar::Integer(i) => ffi::lua_pushinteger(l, i),
                Scalar::Number(n) => ffi::lua_pushnumber(l, n),
                Scalar::Boolean(b) => ffi::lua_pushboolean(l, c_int::from(b)),
                Scalar::Bytes(b) => {
                    ffi::lua_pushlstring(l, b.as_ptr().cast(), b.len());
                }
            }
        }
    }
}

impl<'s> Sink<'s> for LuaSink {
    fn set(&mut self, field: &'s Field, value: Scalar<'_>) -> Result<(), DecodeError<'s>> {
        self.push(value);
        // SAFETY: the table is below the value.
        unsafe { ffi::lua_setfield(self.l, -2, field.name.as_ptr()) };
        Ok(())
    }

    fn push_table(&mut self, items: usize, fields: usize) -> Result<(), DecodeError<'s>> {
        // SAFETY: a valid state. The hints come from the message: capped, so that a
        // message claiming a huge array cannot make Lua allocate for it up front.
        unsafe {
            ffi::luaL_checkstack(self.l, 8, std::ptr::null());
            ffi::lua_createtable(self.l, items.min(1024) as c_int, fields.min(64) as c_int);
        }
        Ok(())
    }

    fn set_table(&mut self, field: &'s Field) -> Result<(), DecodeError<'s>> {
        // SAFETY: the parent is below the table.
        unsafe { ffi::lua_setfield(self.l, -2, field.name.as_ptr()) };
        Ok(())
    }

    fn set_element(&mut self, index: usize, value: Scalar<'_>) -> Result<(), DecodeError<'s>> {
        self.push(value);
        // SAFETY: the array is below the value.
        unsafe { ffi::lua_seti(self.l, -2, index as ffi::lua_Integer) };
        Ok(())
    }

    fn set_element_table(&mut self, index: usize) -> Result<(), DecodeError<'s>> {
        // SAFETY: the array is below the table.
        unsafe { ffi::lua_seti(self.l, -2, index as ffi::lua_Integer) };
        Ok(())
    }

    fn set_keyed(&mut self, key: &'s Field) -> Result<bool, DecodeError<'s>> {
        let l = self.l;
        // SAFETY: [array, struct] on top.
        unsafe {
            if ffi::lua_getfield(l, -1, key.name.as_ptr()) == ffi::LUA_TNIL {
                return Ok(false);
            }
            ffi::lua_pushvalue(l, -2);
            ffi::lua_settable(l, -4);
            ffi::lua_pop(l, 1);
        }
        Ok(true)
    }

    fn set_pair(
        &mut self,
        key: &'s Field,
        value: &'s Field,
    ) -> Result<PairFields, DecodeError<'s>> {
        let l = self.l;
        // SAFETY: [array, entry] on top.
        unsafe {
            if ffi::lua_getfield(l, -1, key.name.as_ptr()) == ffi::LUA_TNIL {
                return Ok(PairFields::NoKey);
            }
            if ffi::lua_getfield(l, -2, value.name.as_ptr()) == ffi::LUA_TNIL {
                return Ok(PairFields::NoValue);
            }
            ffi::lua_settable(l, -4);
            ffi::lua_pop(l, 1);
        }
        Ok(PairFields::Both)
    }
}
