//! `skynet.socketdriver`: what skynet's `lualib-src/lua-socket.c` gives `skynet.socket`, over
//! the skywasm socket imports (docs/abi.md §4.14–4.19). Read buffers live in Lua
//! (`lualib/skynet/socket.lua`); this module only opens, controls and writes sockets and
//! decodes their events.

use std::ffi::c_int;

use mlua_sys as ffi;
use skywasm_abi::{error, socket, sys};

use crate::core::{check_str, host_answer, message_arg};

/// Opens `skynet.socketdriver` (for `package.preload`).
pub(crate) unsafe extern "C-unwind" fn open(l: *mut ffi::lua_State) -> c_int {
    const FUNCTIONS: &[(&std::ffi::CStr, ffi::lua_CFunction)] = &[
        (c"listen", listen),
        (c"connect", connect),
        (c"start", start),
        (c"pause", pause),
        (c"close", close),
        (c"shutdown", shutdown),
        (c"nodelay", nodelay),
        (c"send", send),
        (c"lsend", lsend),
        (c"info", info),
        (c"unpack", unpack),
        (c"udp", udp),
        (c"udp_connect", udp_connect),
        (c"udp_send", udp_send),
        (c"udp_address", udp_address),
        (c"resolve", resolve),
        (c"tls", tls),
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

/// The reason of the last failed socket call (or of `code` when the host kept none).
fn last_error(code: i32) -> String {
    if code == error::SOCKET {
        if let Ok(text) = host_answer(256, |out| sys::socket_query(socket::QUERY_ERROR, 0, out)) {
            return String::from_utf8_lossy(&text).into_owned();
        }
    }
    error::describe(code).to_string()
}

/// Pushes `nil, reason` for a failed call; the count of values pushed.
///
/// # Safety
/// `l` valid.
unsafe fn push_failure(l: *mut ffi::lua_State, code: i32) -> c_int {
    let reason = last_error(code);
    // SAFETY: a valid state.
    unsafe {
        ffi::lua_pushnil(l);
        ffi::lua_pushlstring(l, reason.as_ptr().cast(), reason.len());
    }
    2
}

/// The port argument at `index`, or a Lua argument error.
///
/// # Safety
/// `l` valid.
unsafe fn check_port(l: *mut ffi::lua_State, index: c_int) -> u16 {
    // SAFETY: forwarded.
    unsafe {
        let port = ffi::luaL_checkinteger(l, index);
        match u16::try_from(port) {
            Ok(port) => port,
            Err(_) => {
                ffi::luaL_argerror(l, index, c"port out of range".as_ptr());
                unreachable!("luaL_argerror does not return")
            }
        }
    }
}

/// `listen(host, port, backlog)` → `id, ip, port`, or `nil, reason`.
unsafe extern "C-unwind" fn listen(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state; nothing owned is alive when it raises.
    unsafe {
        let host = check_str(l, 1);
        let port = check_port(l, 2);
        let backlog = ffi::luaL_optinteger(l, 3, 32) as i32;
        let id = sys::socket_listen(host, port, backlog);
        if id < 0 {
            return push_failure(l, id);
        }
        ffi::lua_pushinteger(l, ffi::lua_Integer::from(id));
        let local = host_answer(64, |out| sys::socket_query(socket::QUERY_ADDRESS, id, out))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        let (ip, port) = match local.rsplit_once(':') {
            Some((ip, port)) => (ip.trim_matches(['[', ']']), port.parse().unwrap_or(0)),
            None => ("", 0),
        };
        ffi::lua_pushlstring(l, ip.as_ptr().cast(), ip.len());
        ffi::lua_pushinteger(l, port);
        3
    }
}

/// `connect(host, port)` → `id` (a CONNECT or ERROR event follows), or `nil, reason`.
unsafe extern "C-unwind" fn connect(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let host = check_str(l, 1);
        let port = check_port(l, 2);
        let id = sys::socket_connect(host, port);
        if id < 0 {
            return push_failure(l, id);
        }
        ffi::lua_pushinteger(l, ffi::lua_Integer::from(id));
        1
    }
}

/// `resolve(name, ipv6)` → the id of a host-name lookup (a RESOLVE event answers it), or
/// `nil, reason`.
unsafe extern "C-unwind" fn resolve(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let name = check_str(l, 1);
        let flags = if ffi::lua_toboolean(l, 2) != 0 {
            socket::RESOLVE_IPV6
        } else {
            0
        };
        let id = sys::socket_resolve(name, flags);
        if id < 0 {
            return push_failure(l, id);
        }
        ffi::lua_pushinteger(l, ffi::lua_Integer::from(id));
        1
    }
}

/// `tls(id, "client", name)` / `tls(id, "server")`: makes the socket speak TLS (the host
/// does the handshake; a TLS event says when it is done); `true`, or `nil, reason`.
unsafe extern "C-unwind" fn tls(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let id = ffi::luaL_checkinteger(l, 1) as i32;
        let mode = match check_str(l, 2) {
            "client" => socket::TLS_CLIENT,
            "server" => socket::TLS_SERVER,
            _ => {
                ffi::luaL_argerror(l, 2, c"client or server".as_ptr());
                unreachable!("luaL_argerror does not return")
            }
        };
        let name = if ffi::lua_isnoneornil(l, 3) != 0 {
            ""
        } else {
            check_str(l, 3)
        };
        let rc = sys::socket_tls(id, mode, name);
        if rc != 0 {
            return push_failure(l, rc);
        }
        ffi::lua_pushboolean(l, 1);
        1
    }
}

/// One `socket_control` operation on the id at index 1: `true`, or `nil, reason`.
///
/// # Safety
/// `l` valid.
unsafe fn control(l: *mut ffi::lua_State, op: u32) -> c_int {
    // SAFETY: a valid state.
    unsafe {
        let id = ffi::luaL_checkinteger(l, 1) as i32;
        let rc = sys::socket_control(op, id);
        if rc < 0 {
            return push_failure(l, rc);
        }
        ffi::lua_pushboolean(l, 1);
        1
    }
}

/// `start(id)`: become the owner and read (accept).
unsafe extern "C-unwind" fn start(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: forwarded from Lua.
    unsafe { control(l, socket::START) }
}

/// `pause(id)`: stop reading.
unsafe extern "C-unwind" fn pause(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: forwarded from Lua.
    unsafe { control(l, socket::PAUSE) }
}

/// `close(id)`: close once the queued bytes are sent.
unsafe extern "C-unwind" fn close(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: forwarded from Lua.
    unsafe { control(l, socket::CLOSE_SOCKET) }
}

/// `shutdown(id)`: close now.
unsafe extern "C-unwind" fn shutdown(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: forwarded from Lua.
    unsafe { control(l, socket::SHUTDOWN) }
}

/// `nodelay(id)`.
unsafe extern "C-unwind" fn nodelay(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: forwarded from Lua.
    unsafe { control(l, socket::NODELAY) }
}

/// `send(id, data)` / `lsend(id, data)`: `true` if queued, `false` if the socket is gone.
/// `data` is a string, or a message buffer and size (which is freed, as skynet's is).
///
/// # Safety
/// `l` valid.
unsafe fn send_with(l: *mut ffi::lua_State, priority: u32) -> c_int {
    // SAFETY: a valid state; an owned buffer is freed before returning.
    unsafe {
        let id = ffi::luaL_checkinteger(l, 1) as i32;
        let (data, owned) = message_arg(l, 2);
        let rc = sys::socket_send(id, priority, data);
        crate::core::free_message(owned.cast());
        ffi::lua_pushboolean(l, c_int::from(rc == 0));
        1
    }
}

unsafe extern "C-unwind" fn send(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: forwarded from Lua.
    unsafe { send_with(l, socket::PRIORITY_HIGH) }
}

unsafe extern "C-unwind" fn lsend(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: forwarded from Lua.
    unsafe { send_with(l, socket::PRIORITY_LOW) }
}

/// `info()`: every socket of the node, an array of tables (netstat).
unsafe extern "C-unwind" fn info(l: *mut ffi::lua_State) -> c_int {
    let answer = host_answer(4096, |out| sys::socket_query(socket::QUERY_INFO, 0, out));
    // SAFETY: a valid state; the bytes are the host's skynet.pack of one table.
    unsafe {
        match answer {
            Ok(bytes) => crate::pack::unpack_values(l, &bytes),
            Err(_) => {
                ffi::lua_createtable(l, 0, 0);
                1
            }
        }
    }
}

/// `unpack(msg, sz)` of a PTYPE_SOCKET message → `type, id, ud, data` (`data` nil when the
/// event carries no payload).
unsafe extern "C-unwind" fn unpack(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state; the body stays valid during the call.
    unsafe {
        let (body, _) = message_arg(l, 1);
        if body.len() < socket::EVENT_HEADER {
            ffi::luaL_error(l, c"invalid socket message".as_ptr());
        }
        let word = |i: usize| u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        ffi::lua_pushinteger(l, ffi::lua_Integer::from(word(0)));
        ffi::lua_pushinteger(l, ffi::lua_Integer::from(word(4) as i32));
        ffi::lua_pushinteger(l, ffi::lua_Integer::from(word(8) as i32));
        let payload = &body[socket::EVENT_HEADER..];
        if payload.is_empty() {
            ffi::lua_pushnil(l);
        } else {
            ffi::lua_pushlstring(l, payload.as_ptr().cast(), payload.len());
        }
        4
    }
}

/// `udp(host, port)` → `id` of a bound UDP socket owned by this service (host nil or "":
/// every IPv4 address; port nil or 0: any), or `nil, reason`.
unsafe extern "C-unwind" fn udp(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let host = if ffi::lua_isnoneornil(l, 1) != 0 {
            ""
        } else {
            check_str(l, 1)
        };
        let port = if ffi::lua_isnoneornil(l, 2) != 0 {
            0
        } else {
            check_port(l, 2)
        };
        let id = sys::socket_udp(host, port);
        if id < 0 {
            return push_failure(l, id);
        }
        ffi::lua_pushinteger(l, ffi::lua_Integer::from(id));
        1
    }
}

/// `udp_connect(id, host, port)` → `true` (the socket's default peer is set), or `nil, reason`.
unsafe extern "C-unwind" fn udp_connect(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let id = ffi::luaL_checkinteger(l, 1) as i32;
        let host = check_str(l, 2);
        let port = check_port(l, 3);
        let rc = sys::socket_udp_connect(id, host, port);
        if rc < 0 {
            return push_failure(l, rc);
        }
        ffi::lua_pushboolean(l, 1);
        1
    }
}

/// `udp_send(id, from, data)`: one datagram to `from` (an address a UDP event gave); `true`
/// if it was queued.
unsafe extern "C-unwind" fn udp_send(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state; an owned buffer is freed before returning.
    unsafe {
        let id = ffi::luaL_checkinteger(l, 1) as i32;
        let to = check_str(l, 2);
        let (data, owned) = message_arg(l, 3);
        let rc = sys::socket_sendto(id, to, data);
        crate::core::free_message(owned.cast());
        ffi::lua_pushboolean(l, c_int::from(rc == 0));
        1
    }
}

/// `udp_address(from)` → `ip, port` of an address a UDP event gave.
unsafe extern "C-unwind" fn udp_address(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a valid state.
    unsafe {
        let from = check_str(l, 1);
        match from.rsplit_once(':') {
            Some((ip, port)) => {
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                ffi::lua_pushlstring(l, ip.as_ptr().cast(), ip.len());
                ffi::lua_pushinteger(l, port.parse().unwrap_or(0));
                2
            }
            None => {
                ffi::luaL_argerror(l, 1, c"not a UDP address".as_ptr());
                unreachable!("luaL_argerror does not return")
            }
        }
    }
}
