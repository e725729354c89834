//! `skynet.core`: the C module skynet's `lualib/skynet.lua` is written against
//! (`lualib-src/lua-skynet.c`), over the skywasm host imports.
//!
//! Messages handed to Lua as `(msg, sz)` are light userdata pointing at `malloc`ed memory in
//! this instance, as in skynet: `send`/`redirect` take ownership of such a buffer (and free it
//! after the host copied it), `trash` frees one, `tostring`/`unpack` read one. Lua errors
//! unwind Rust frames without running destructors, so each function raises only once nothing
//! it owns is alive (or accepts a leak on Lua running out of memory).

use std::ffi::{c_int, c_void};

use mlua_sys as ffi;
use skywasm_abi::{error, sys};

use crate::pack::{pack_values, raise, unpack_values};

extern "C" {
    fn malloc(size: usize) -> *mut c_void;
    fn free(ptr: *mut c_void);
}

/// Opens `skynet.core` (for `luaL_requiref`).
pub(crate) unsafe extern "C-unwind" fn open(l: *mut ffi::lua_State) -> c_int {
    const FUNCTIONS: &[(&std::ffi::CStr, ffi::lua_CFunction)] = &[
        (c"send", send),
        (c"redirect", redirect),
        (c"genid", genid),
        (c"command", command),
        (c"intcommand", intcommand),
        (c"addresscommand", addresscommand),
        (c"error", log_error),
        (c"callback", crate::dispatch::callback),
        // skywasm: skynet.lua hands over its per-message state (lua-wasm/src/dispatch.rs)
        (c"dispatch_core", crate::dispatch::dispatch_core),
        (c"tostring", tostring),
        (c"pack", pack),
        (c"packstring", packstring),
        (c"unpack", unpack),
        (c"trash", trash),
        (c"now", now),
        (c"hpc", hpc),
        // skywasm: multicastd's fan-out (one copy of the body per node)
        (c"multicast", multicast),
        // skywasm: skynet.stm's objects, held by the host
        (c"stm_new", stm_new),
        (c"stm_update", stm_update),
        (c"stm_copy", stm_copy),
        (c"stm_adopt", stm_adopt),
        (c"stm_release", stm_release),
        // skywasm: skynet.sharetable's tables, held by the host
        (c"share", share),
        (c"stm_read", stm_read),
        // skywasm: this instance's linear memory (skynet.memory.current)
        (c"memory_size", memory_size),
        (c"harbor", harbor),
        (c"self", self_handle),
        (c"trace", trace),
        // skywasm: source files through the host (the console's inject reads "file"s)
        (c"load_source", crate::host::load_source),
        // skywasm: data files under lua_data_path (io.open, loadfile: lualib/skywasm/files.lua)
        (c"read_data", crate::host::read_data),
        // skywasm: hot upgrade (skynet.on_upgrade, skynet.upgraded)
        (c"upgrade_hook", crate::upgrade::upgrade_hook),
        (c"upgraded", crate::upgrade::upgraded),
        (c"upgrading", crate::upgrade::upgrading),
    ];
    // SAFETY: called by Lua with a valid state.
    unsafe {
        ffi::lua_createtable(l, 0, FUNCTIONS.len() as c_int);
        for (name, function) in FUNCTIONS {
            ffi::lua_pushcfunction(l, *function);
            ffi::lua_setfield(l, -2, name.as_ptr());
        }
    }
    1
}

/// Bytes of the string argument at `index` (None if it is not a string or number).
///
/// # Safety
/// `l` valid; the slice lives while the value stays on the stack.
pub(crate) unsafe fn opt_bytes<'a>(l: *mut ffi::lua_State, index: c_int) -> Option<&'a [u8]> {
    let mut len = 0usize;
    // SAFETY: lua_tolstring returns null or `len` valid bytes.
    unsafe {
        let ptr = ffi::lua_tolstring(l, index, &mut len);
        (!ptr.is_null()).then(|| std::slice::from_raw_parts(ptr.cast::<u8>(), len))
    }
}

/// Text of the string argument at `index`, or a Lua argument error.
///
/// # Safety
/// As [`opt_bytes`].
pub(crate) unsafe fn check_str<'a>(l: *mut ffi::lua_State, index: c_int) -> &'a str {
    // SAFETY: forwarded.
    unsafe {
        let mut len = 0usize;
        let ptr = ffi::luaL_checklstring(l, index, &mut len);
        let bytes = std::slice::from_raw_parts(ptr.cast::<u8>(), len);
        match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                ffi::luaL_argerror(l, index, c"not UTF-8".as_ptr());
                unreachable!("luaL_argerror does not return")
            }
        }
    }
}

/// The message body at `index` (a string) or `index, index + 1` (light userdata and size),
/// and whether it is an owned buffer the caller must free.
///
/// # Safety
/// As [`opt_bytes`]; a light userdata must point at `sz` readable bytes (skynet's contract).
pub(crate) unsafe fn message_arg<'a>(
    l: *mut ffi::lua_State,
    index: c_int,
) -> (&'a [u8], *mut c_void) {
    // SAFETY: forwarded.
    unsafe {
        match ffi::lua_type(l, index) {
            ffi::LUA_TSTRING => (
                opt_bytes(l, index).unwrap_or_default(),
                std::ptr::null_mut(),
            ),
            ffi::LUA_TLIGHTUSERDATA => {
                let ptr = ffi::lua_touserdata(l, index);
                let size = ffi::luaL_checkinteger(l, index + 1);
                let Ok(size) = usize::try_from(size) else {
                    ffi::luaL_argerror(l, index + 1, c"negative size".as_ptr());
                    unreachable!("luaL_argerror does not return")
                };
                if ptr.is_null() {
                    (&[], ptr)
                } else {
                    (std::slice::from_raw_parts(ptr.cast::<u8>(), size), ptr)
                }
            }
            ffi::LUA_TNONE | ffi::LUA_TNIL => (&[], std::ptr::null_mut()),
            _ => {
                ffi::luaL_error(
                    l,
                    c"invalid param %s".as_ptr(),
                    ffi::luaL_typename(l, index),
                );
                unreachable!("luaL_error does not return")
            }
        }
    }
}

/// Pushes the result of a send as skynet's C does: the session, `false` when the message is
/// too large, nothing (nil) when the destination is invalid.
///
/// # Safety
/// `l` valid.
unsafe fn push_send_result(l: *mut ffi::lua_State, rc: i32) -> c_int {
    // SAFETY: a valid state.
    unsafe {
        if rc >= 0 {
            ffi::lua_pushinteger(l, ffi::lua_Integer::from(rc));
            1
        } else if rc == error::TOO_LARGE {
            ffi::lua_pushboolean(l, 0);
            1
        } else if rc == error::DENIED {
            ffi::luaL_error(
                l,
                c"send denied: the destination belongs to another tenant and is not exported to this one".as_ptr(),
            )
        } else if rc == error::MAILBOX_FULL {
            ffi::luaL_error(
                l,
                c"send refused: the destination's mailbox is full".as_ptr(),
            )
        } else {
            0
        }
    }
}

/// Where a message goes: a handle, or a name (`.local`, global, or `:hex` text).
enum Dest<'a> {
    Handle(u32),
    Name(&'a str),
}

/// # Safety
/// As [`opt_bytes`].
unsafe fn dest_arg<'a>(l: *mut ffi::lua_State, index: c_int) -> Dest<'a> {
    // SAFETY: forwarded.
    unsafe {
        if ffi::lua_type(l, index) == ffi::LUA_TNUMBER {
            let handle = ffi::lua_tointeger(l, index);
            if handle == 0 {
                ffi::luaL_error(l, c"Invalid service address 0".as_ptr());
            }
            Dest::Handle(handle as u32)
        } else {
            Dest::Name(check_str(l, index))
        }
    }
}

/// `send(dest, type, session, msg, sz)`: `session` nil allocates a new one (a request).
unsafe extern "C-unwind" fn send(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let dest = dest_arg(l, 1);
        let ty = ffi::luaL_checkinteger(l, 2) as u32;
        let new_session = ffi::lua_isnoneornil(l, 3) != 0;
        let session = if new_session {
            0
        } else {
            ffi::luaL_checkinteger(l, 3) as i32
        };
        let (body, owned) = message_arg(l, 4);
        let rc = match (dest, new_session) {
            (Dest::Handle(h), true) => sys::call(h, ty, body),
            (Dest::Handle(h), false) => sys::send(h, ty, session, body),
            (Dest::Name(n), true) => sys::call_name(n, ty, body),
            (Dest::Name(n), false) => sys::send_name(n, ty, session, body),
        };
        free(owned);
        push_send_result(l, rc)
    }
}

/// `redirect(dest, source, type, session, msg, sz)`: send as another source.
unsafe extern "C-unwind" fn redirect(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let dest = dest_arg(l, 1);
        let source = ffi::luaL_checkinteger(l, 2) as u32;
        let ty = ffi::luaL_checkinteger(l, 3) as u32;
        let session = ffi::luaL_optinteger(l, 4, 0) as i32;
        let (body, owned) = message_arg(l, 5);
        let rc = match dest {
            Dest::Handle(h) => sys::redirect(h, source, ty, session, body),
            Dest::Name(name) => {
                let handle = resolve(name);
                if handle == 0 {
                    error::UNKNOWN_NAME
                } else {
                    sys::redirect(handle, source, ty, session, body)
                }
            }
        };
        free(owned);
        push_send_result(l, rc)
    }
}

/// `multicast(source, session, dests, msg [, sz])` (skywasm): `msg` to every service whose
/// handle is in `dests` (4 bytes each, little-endian, as `string.pack("<I4", ...)`) as
/// PTYPE_MULTICAST, one copy held by the host; returns how many took it. A light userdata
/// message is freed, as `redirect` frees one. multicastd's fan-out.
unsafe extern "C-unwind" fn multicast(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let source = ffi::luaL_checkinteger(l, 1) as u32;
        let session = ffi::luaL_checkinteger(l, 2) as i32;
        let packed = crate::host::check_bytes(l, 3);
        // Everything that can raise comes before anything owned is made.
        let (body, owned) = message_arg(l, 4);
        let dests: Vec<u32> = packed
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let rc = sys::multicast(source, session, body, &dests);
        free(owned);
        drop(dests);
        if rc < 0 {
            return ffi::luaL_error(l, c"multicast refused (error %d)".as_ptr(), rc);
        }
        ffi::lua_pushinteger(l, ffi::lua_Integer::from(rc));
        1
    }
}

/// The object id at `index`: an integer, or the light userdata `stm_hold` made.
///
/// # Safety
/// Called from a Lua C function.
unsafe fn stm_id(l: *mut ffi::lua_State, index: c_int) -> u32 {
    // SAFETY: the caller's contract.
    unsafe {
        if ffi::lua_type(l, index) == ffi::LUA_TLIGHTUSERDATA {
            ffi::lua_touserdata(l, index) as usize as u32
        } else {
            ffi::luaL_checkinteger(l, index) as u32
        }
    }
}

/// `stm_new(msg [, sz])` (skywasm): a skynet.stm object holding the bytes; its id. A light
/// userdata message is freed.
unsafe extern "C-unwind" fn stm_new(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let (body, owned) = message_arg(l, 1);
        let mut bytes = body.to_vec();
        free(owned);
        let rc = sys::stm(skywasm_abi::stm::NEW, 0, 0, &mut bytes);
        drop(bytes);
        store_result(l, rc, &STM_REFUSALS)
    }
}

/// `stm_update(id, msg [, sz])` (skywasm): the writer replaces the bytes.
unsafe extern "C-unwind" fn stm_update(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let id = stm_id(l, 1);
        let (body, owned) = message_arg(l, 2);
        let mut bytes = body.to_vec();
        free(owned);
        let rc = sys::stm(skywasm_abi::stm::UPDATE, id, 0, &mut bytes);
        drop(bytes);
        store_result(l, rc, &STM_REFUSALS)
    }
}

/// `stm_copy(id)` (skywasm): a copy for a reader, as the light userdata that `skynet.pack`
/// carries to another service (skynet's `stm.copy`).
unsafe extern "C-unwind" fn stm_copy(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let id = stm_id(l, 1);
        let rc = sys::stm(skywasm_abi::stm::COPY, id, 0, &mut []);
        if rc < 0 {
            return store_result(l, rc, &STM_REFUSALS);
        }
        ffi::lua_pushlightuserdata(l, id as usize as *mut c_void);
        1
    }
}

/// `stm_adopt(copy)` (skywasm): this service takes a copy as its reader; the object's id.
unsafe extern "C-unwind" fn stm_adopt(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let id = stm_id(l, 1);
        let rc = sys::stm(skywasm_abi::stm::ADOPT, id, 0, &mut []);
        if rc < 0 {
            return store_result(l, rc, &STM_REFUSALS);
        }
        ffi::lua_pushinteger(l, ffi::lua_Integer::from(id));
        1
    }
}

/// `stm_release(id, writer)` (skywasm): gives a hold back.
unsafe extern "C-unwind" fn stm_release(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let id = stm_id(l, 1);
        let op = if ffi::lua_toboolean(l, 2) != 0 {
            skywasm_abi::stm::RELEASE_WRITER
        } else {
            skywasm_abi::stm::RELEASE_READER
        };
        store_result(l, sys::stm(op, id, 0, &mut []), &STM_REFUSALS)
    }
}

/// `stm_read(id, seen)` (skywasm): `version, bytes` when the bytes changed since version
/// `seen`, nil when they did not, false when the writer let go.
unsafe extern "C-unwind" fn stm_read(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let id = stm_id(l, 1);
        let seen = ffi::luaL_checkinteger(l, 2);
        let answer = host_answer(4096, |out| {
            let rc = sys::stm(skywasm_abi::stm::READ, id, seen, out);
            i32::try_from(rc).unwrap_or(error::TOO_LARGE)
        });
        let pushed = match &answer {
            Ok(bytes) if bytes.is_empty() => {
                ffi::lua_pushnil(l);
                1
            }
            Ok(bytes) if bytes.len() >= 8 => {
                let mut version = [0u8; 8];
                version.copy_from_slice(&bytes[..8]);
                ffi::lua_pushinteger(l, i64::from_le_bytes(version));
                ffi::lua_pushlstring(l, bytes[8..].as_ptr().cast(), bytes.len() - 8);
                2
            }
            Err(error::NOT_FOUND) => {
                ffi::lua_pushboolean(l, 0);
                1
            }
            Ok(_) | Err(_) => 0,
        };
        drop(answer);
        if pushed == 0 {
            return ffi::luaL_error(l, c"stm: cannot read the object".as_ptr());
        }
        pushed
    }
}

/// Why a host store refused: what to say for `DENIED`, for `TOO_LARGE`, and for any other
/// code (an unknown object, what cannot be stored).
type Refusals = [&'static std::ffi::CStr; 3];

const STM_REFUSALS: Refusals = [
    c"stm: only trusted services may use skynet.stm",
    c"stm: the bytes are over the message size limit",
    c"stm: no such object (or its writer let go)",
];

const SHARE_REFUSALS: Refusals = [
    c"sharetable: only trusted services may share tables",
    c"sharetable: the table is over the message size limit",
    c"sharetable: no such table (or it holds what cannot be shared)",
];

/// Pushes a non-negative result of the `stm` or `share` import, or raises what `why` says
/// for its error code.
///
/// # Safety
/// Called from a Lua C function with nothing owned alive.
unsafe fn store_result(l: *mut ffi::lua_State, rc: i64, why: &Refusals) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        if rc < 0 {
            let text = match i32::try_from(rc) {
                Ok(error::DENIED) => why[0],
                Ok(error::TOO_LARGE) => why[1],
                _ => why[2],
            };
            return ffi::luaL_error(l, text.as_ptr());
        }
        ffi::lua_pushinteger(l, rc);
        1
    }
}

/// `share(op, id [, node, key])` (skywasm): skynet.sharetable's host-held tables. `op` is
/// "create" (id: the packed table, as a string; returns the version's id), "copy",
/// "adopt", "release" (return nothing), "get" (returns `t[key]` of the node: a scalar, or a
/// light userdata holding a table's node), "next" (returns the key after `key` (nil: the
/// first) and its value, or nothing at the end), "len" (returns `#t` of the node).
unsafe extern "C-unwind" fn share(l: *mut ffi::lua_State) -> c_int {
    use skywasm_abi::share as op;
    // SAFETY: called by Lua with a valid state; errors are raised with nothing owned alive.
    unsafe {
        let which = crate::host::check_bytes(l, 1);
        let which = match which {
            b"create" => op::CREATE,
            b"copy" => op::COPY,
            b"adopt" => op::ADOPT,
            b"release" => op::RELEASE,
            b"get" => op::GET,
            b"next" => op::NEXT,
            b"len" => op::LEN,
            _ => return ffi::luaL_argerror(l, 1, c"unknown share operation".as_ptr()),
        };
        if which == op::CREATE {
            let packed = crate::host::check_bytes(l, 2);
            let rc = sys::share(op::CREATE, 0, 0, packed, &mut []);
            return store_result(l, rc, &SHARE_REFUSALS);
        }
        let id = ffi::luaL_checkinteger(l, 2) as u32;
        let node = ffi::luaL_optinteger(l, 3, 0) as u32;
        match which {
            op::COPY | op::ADOPT | op::RELEASE => {
                let rc = sys::share(which, id, node, &[], &mut []);
                if rc < 0 {
                    return store_result(l, rc, &SHARE_REFUSALS);
                }
                0
            }
            op::LEN => store_result(
                l,
                sys::share(op::LEN, id, node, &[], &mut []),
                &SHARE_REFUSALS,
            ),
            _ => {
                let absent = which == op::NEXT && ffi::lua_isnoneornil(l, 4) != 0;
                // Only keys a shared table can hold: packing them cannot raise (a table
                // key could, through its metamethods, with the buffer alive).
                let scalar = matches!(
                    ffi::lua_type(l, 4),
                    ffi::LUA_TNUMBER | ffi::LUA_TSTRING | ffi::LUA_TBOOLEAN
                );
                if !absent && !scalar {
                    return ffi::luaL_argerror(l, 4, c"a number, string or boolean key".as_ptr());
                }
                let mut key = Vec::new();
                if !absent {
                    ffi::lua_settop(l, 4);
                    if pack_values(l, 4, 4, &mut key).is_err() {
                        drop(key);
                        return ffi::luaL_argerror(l, 4, c"a key that cannot be packed".as_ptr());
                    }
                }
                let answer = host_answer(256, |out| {
                    let rc = sys::share(which, id, node, &key, out);
                    i32::try_from(rc).unwrap_or(error::TOO_LARGE)
                });
                drop(key);
                match answer {
                    Ok(bytes) => {
                        let pushed = unpack_values(l, &bytes);
                        drop(bytes);
                        pushed
                    }
                    Err(code) => store_result(l, i64::from(code), &SHARE_REFUSALS),
                }
            }
        }
    }
}

/// The handle of a name or `:hex` address, 0 if unknown.
fn resolve(name: &str) -> u32 {
    let mut out = [0u8; 16];
    let len = sys::command("QUERY", name, &mut out);
    usize::try_from(len)
        .ok()
        .and_then(|len| out.get(..len))
        .and_then(parse_address)
        .unwrap_or(0)
}

/// `:hex` text to a handle.
fn parse_address(text: &[u8]) -> Option<u32> {
    let hex = std::str::from_utf8(text.strip_prefix(b":")?).ok()?;
    u32::from_str_radix(hex, 16).ok()
}

/// `genid()`: a new session without sending.
unsafe extern "C-unwind" fn genid(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state.
    unsafe { ffi::lua_pushinteger(l, ffi::lua_Integer::from(sys::genid())) };
    1
}

/// The whole answer of a host function that writes what fits in its output buffer and
/// returns the full length (`command`, `load_source`): asked with `first` bytes of room, then
/// again with exactly the size the host gave (a file can change between two reads, so a few
/// times). The bytes, or the negative code.
///
/// `first` stays small: the buffer is zeroed, and every page it touches is a page this
/// instance no longer shares with the node's snapshot.
pub(crate) fn host_answer(first: usize, ask: impl Fn(&mut [u8]) -> i32) -> Result<Vec<u8>, i32> {
    let mut out = vec![0u8; first];
    let mut len = ask(&mut out);
    for _ in 0..3 {
        match usize::try_from(len) {
            Ok(needed) if needed > out.len() => {
                // Reserved fallibly: an answer larger than this instance can hold (a data
                // file, say) is an error for the caller, not an abort of the service.
                out = Vec::new();
                out.try_reserve_exact(needed)
                    .map_err(|_| error::TOO_LARGE)?;
                out.resize(needed, 0);
                len = ask(&mut out);
            }
            _ => break,
        }
    }
    let len = usize::try_from(len).map_err(|_| len)?;
    if len > out.len() {
        // still growing after every retry: no consistent answer to give
        return Err(error::TOO_LARGE);
    }
    out.truncate(len);
    Ok(out)
}

/// Runs a text command; the result bytes, or the negative code.
pub(crate) fn run_command(cmd: &str, param: &str) -> Result<Vec<u8>, i32> {
    host_answer(256, |out| sys::command(cmd, param, out))
}

/// The parameter of a command at `index`: a string, a number as text, or empty.
///
/// # Safety
/// As [`opt_bytes`].
unsafe fn command_param(l: *mut ffi::lua_State, index: c_int) -> String {
    // SAFETY: forwarded.
    unsafe {
        match ffi::lua_type(l, index) {
            ffi::LUA_TNONE | ffi::LUA_TNIL => String::new(),
            ffi::LUA_TNUMBER if ffi::lua_isinteger(l, index) != 0 => {
                ffi::lua_tointeger(l, index).to_string()
            }
            _ => check_str(l, index).to_string(),
        }
    }
}

/// `command(cmd, param)`: the result text, or nil.
unsafe extern "C-unwind" fn command(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state; owned values are dropped before any raise.
    unsafe {
        let cmd = check_str(l, 1);
        let param = command_param(l, 2);
        let result = run_command(cmd, &param);
        drop(param);
        match result {
            Ok(bytes) => {
                ffi::lua_pushlstring(l, bytes.as_ptr().cast(), bytes.len());
            }
            Err(_) => ffi::lua_pushnil(l),
        }
    }
    1
}

/// `intcommand(cmd, param)`: the result as an integer, or nil. `TIMEOUT` goes straight to
/// the host's timer function.
unsafe extern "C-unwind" fn intcommand(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let cmd = check_str(l, 1);
        if cmd == "TIMEOUT" {
            let ticks = ffi::luaL_checkinteger(l, 2);
            let session = sys::timeout(i32::try_from(ticks).unwrap_or(i32::MAX));
            // A refused timeout (the tenant's limit, a full mailbox) is an error code.
            if session < 0 {
                ffi::lua_pushnil(l);
            } else {
                ffi::lua_pushinteger(l, ffi::lua_Integer::from(session));
            }
            return 1;
        }
        let param = command_param(l, 2);
        let result = run_command(cmd, &param);
        drop(param);
        let number = result
            .ok()
            .and_then(|bytes| std::str::from_utf8(&bytes).ok()?.trim().parse::<i64>().ok());
        match number {
            Some(n) => ffi::lua_pushinteger(l, n),
            None => ffi::lua_pushnil(l),
        }
    }
    1
}

/// `addresscommand(cmd, param)`: the `:hex` result as a handle, or nil.
unsafe extern "C-unwind" fn addresscommand(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let cmd = check_str(l, 1);
        let param = command_param(l, 2);
        let result = run_command(cmd, &param);
        drop(param);
        match result.ok().as_deref().and_then(parse_address) {
            Some(handle) => ffi::lua_pushinteger(l, ffi::lua_Integer::from(handle)),
            None => ffi::lua_pushnil(l),
        }
    }
    1
}

/// `error(text)`: one line in the node's log.
unsafe extern "C-unwind" fn log_error(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        // Arguments joined by spaces; no argument logs "nil", as skynet's `lerror`.
        let n = ffi::lua_gettop(l).max(1);
        ffi::lua_settop(l, n);
        let mut line = Vec::new();
        for i in 1..=n {
            let mut len = 0usize;
            let ptr = ffi::luaL_tolstring(l, i, &mut len);
            if i > 1 {
                line.push(b' ');
            }
            line.extend_from_slice(std::slice::from_raw_parts(ptr.cast::<u8>(), len));
            ffi::lua_settop(l, n);
        }
        sys::log(&line);
    }
    0
}

/// `tostring(msg, sz)`: a copy of the message as a string.
unsafe extern "C-unwind" fn tostring(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        if ffi::lua_isnoneornil(l, 1) != 0 {
            return 0;
        }
        let (body, _) = message_arg(l, 1);
        ffi::lua_pushlstring(l, body.as_ptr().cast(), body.len());
    }
    1
}

/// Packs the arguments into a new buffer (owned by the caller; freed before any raise).
///
/// # Safety
/// `l` valid.
unsafe fn pack_args(l: *mut ffi::lua_State) -> Vec<u8> {
    // The buffer of the last pack, emptied: most packs then allocate nothing here. Taken
    // out of its cell while in use, so an error unwinding through here loses it (the next
    // pack starts a new one) rather than leaving it borrowed.
    let mut out = PACK_BUFFER.take();
    out.clear();
    // SAFETY: a valid state; indices 1..=top exist.
    unsafe {
        let top = ffi::lua_gettop(l);
        if let Err(fail) = pack_values(l, 1, top, &mut out) {
            give_back(out);
            raise(l, fail);
        }
    }
    out
}

/// Keeps a packing buffer for the next pack, unless it grew large (one big message should
/// not hold its memory for good).
fn give_back(buffer: Vec<u8>) {
    if buffer.capacity() <= PACK_BUFFER_KEPT {
        PACK_BUFFER.set(buffer);
    }
}

/// Largest packing buffer kept between packs.
const PACK_BUFFER_KEPT: usize = 64 << 10;

thread_local! {
    /// The packing buffer kept between packs ([`pack_args`]).
    static PACK_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `pack(...)`: a `malloc`ed buffer and its size.
unsafe extern "C-unwind" fn pack(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let bytes = pack_args(l);
        let len = bytes.len();
        let buffer = malloc(len.max(1));
        if !buffer.is_null() {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer.cast::<u8>(), len);
        }
        give_back(bytes);
        if buffer.is_null() {
            ffi::luaL_error(l, c"not enough memory".as_ptr());
        }
        ffi::lua_pushlightuserdata(l, buffer);
        ffi::lua_pushinteger(l, len as ffi::lua_Integer);
    }
    2
}

/// `packstring(...)`: the packed bytes as a string.
unsafe extern "C-unwind" fn packstring(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let bytes = pack_args(l);
        // Not in its cell while Lua copies it: a collection step there may run a finalizer
        // that packs too.
        ffi::lua_pushlstring(l, bytes.as_ptr().cast(), bytes.len());
        give_back(bytes);
    }
    1
}

/// `unpack(msg, sz)` or `unpack(string)`: every value.
pub(crate) unsafe extern "C-unwind" fn unpack(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state; the body stays valid during the call.
    unsafe {
        if ffi::lua_isnoneornil(l, 1) != 0 {
            return 0;
        }
        let (body, _) = message_arg(l, 1);
        unpack_values(l, body)
    }
}

/// `trash(msg, sz)`: frees a message buffer.
unsafe extern "C-unwind" fn trash(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state; a light userdata message is a malloc'd buffer.
    unsafe {
        if ffi::lua_type(l, 1) == ffi::LUA_TLIGHTUSERDATA {
            free(ffi::lua_touserdata(l, 1));
        }
    }
    0
}

/// `now()`: centiseconds since the node started.
unsafe extern "C-unwind" fn now(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state.
    unsafe { ffi::lua_pushinteger(l, sys::now()) };
    1
}

/// `hpc()`: a monotonic nanosecond counter.
unsafe extern "C-unwind" fn hpc(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state.
    unsafe { ffi::lua_pushinteger(l, sys::hpc()) };
    1
}

/// `memory_size()`: the bytes of this instance's linear memory.
unsafe extern "C-unwind" fn memory_size(l: *mut ffi::lua_State) -> c_int {
    #[cfg(target_arch = "wasm32")]
    let bytes = core::arch::wasm32::memory_size(0) as u64 * 65536;
    #[cfg(not(target_arch = "wasm32"))]
    let bytes = 0u64;
    // SAFETY: a valid state.
    unsafe { ffi::lua_pushinteger(l, bytes as ffi::lua_Integer) };
    1
}

/// `harbor(addr)`: the harbor id of an address and whether it is remote.
unsafe extern "C-unwind" fn harbor(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let handle = ffi::luaL_checkinteger(l, 1) as u32;
        let harbor = handle >> 24;
        let own = sys::self_handle() >> 24;
        ffi::lua_pushinteger(l, ffi::lua_Integer::from(harbor));
        ffi::lua_pushboolean(l, c_int::from(harbor != own));
    }
    2
}

/// `self()`: this service's handle.
unsafe extern "C-unwind" fn self_handle(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a valid state.
    unsafe { ffi::lua_pushinteger(l, ffi::lua_Integer::from(sys::self_handle())) };
    1
}

/// `trace(tag, event [, level])`: a trace line in the log, naming the Lua source line at
/// `level` (default: the caller's caller).
unsafe extern "C-unwind" fn trace(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state; owned values are dropped before returning.
    unsafe {
        let tag = check_str(l, 1).to_string();
        let event = command_param(l, 2);
        let level = ffi::luaL_optinteger(l, 3, 2) as c_int;
        let mut ar: ffi::lua_Debug = std::mem::zeroed();
        let place = if ffi::lua_getstack(l, level, &mut ar) != 0
            && ffi::lua_getinfo(l, c"Sl".as_ptr(), &mut ar) != 0
        {
            let source = std::ffi::CStr::from_ptr(ar.short_src.as_ptr()).to_string_lossy();
            format!(" : {source}:{}", ar.currentline)
        } else {
            String::new()
        };
        let line = format!("<TRACE {tag}> {} {event}{place}", sys::now());
        sys::log(line.as_bytes());
    }
    0
}

/// A buffer for an incoming message or argument line (`skywasm_alloc`).
pub(crate) fn alloc_message(len: u32) -> *mut u8 {
    // SAFETY: malloc has no preconditions.
    unsafe { malloc((len as usize).max(1)).cast() }
}

/// Frees a buffer from [`alloc_message`] that Lua did not take.
///
/// # Safety
/// `ptr` came from [`alloc_message`] (or is null) and is not used again.
pub(crate) unsafe fn free_message(ptr: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { free(ptr.cast()) }
}
