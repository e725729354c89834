//! The host imports (`docs/abi.md` §4), declared once for every Rust guest, with thin safe
//! wrappers that pass slices as (pointer, length). Outside wasm (unit tests, docs on the
//! build machine) there is no host: the wrappers then panic with an explanation.

// Outside wasm the wrappers ignore their arguments.
#![cfg_attr(not(target_family = "wasm"), allow(unused_variables))]

#[cfg(target_family = "wasm")]
mod imports {
    #[link(wasm_import_module = "skywasm")]
    extern "C" {
        pub fn send(dest: u32, ptype: u32, session: i32, ptr: *const u8, len: usize) -> i32;
        pub fn send_name(
            name: *const u8,
            name_len: usize,
            ptype: u32,
            session: i32,
            ptr: *const u8,
            len: usize,
        ) -> i32;
        pub fn call(dest: u32, ptype: u32, ptr: *const u8, len: usize) -> i32;
        pub fn call_name(
            name: *const u8,
            name_len: usize,
            ptype: u32,
            ptr: *const u8,
            len: usize,
        ) -> i32;
        pub fn redirect(
            dest: u32,
            source: u32,
            ptype: u32,
            session: i32,
            ptr: *const u8,
            len: usize,
        ) -> i32;
        pub fn multicast(
            source: u32,
            session: i32,
            ptr: *const u8,
            len: usize,
            dests: *const u32,
            dests_count: usize,
        ) -> i32;
        pub fn stm(op: u32, id: u32, seen: i64, ptr: *mut u8, len: usize) -> i64;
        pub fn share(
            op: u32,
            id: u32,
            node: u32,
            input: *const u8,
            input_len: usize,
            out: *mut u8,
            out_cap: usize,
        ) -> i64;
        pub fn timeout(centiseconds: i32) -> i32;
        pub fn genid() -> i32;
        pub fn self_handle() -> u32;
        pub fn now() -> i64;
        pub fn hpc() -> i64;
        pub fn command(
            cmd: *const u8,
            cmd_len: usize,
            param: *const u8,
            param_len: usize,
            out: *mut u8,
            out_cap: usize,
        ) -> i32;
        pub fn log(ptr: *const u8, len: usize);
        pub fn load_source(
            kind: u32,
            name: *const u8,
            name_len: usize,
            out: *mut u8,
            out_cap: usize,
        ) -> i32;
        pub fn socket_listen(host: *const u8, host_len: usize, port: u32, backlog: i32) -> i32;
        pub fn socket_connect(host: *const u8, host_len: usize, port: u32) -> i32;
        pub fn socket_control(op: u32, id: i32) -> i32;
        pub fn socket_send(id: i32, priority: u32, ptr: *const u8, len: usize) -> i32;
        pub fn socket_query(what: u32, id: i32, out: *mut u8, out_cap: usize) -> i32;
        pub fn socket_udp(host: *const u8, host_len: usize, port: u32) -> i32;
        pub fn socket_udp_connect(id: i32, host: *const u8, host_len: usize, port: u32) -> i32;
        pub fn socket_sendto(
            id: i32,
            addr: *const u8,
            addr_len: usize,
            ptr: *const u8,
            len: usize,
        ) -> i32;
        pub fn socket_resolve(name: *const u8, name_len: usize, flags: u32) -> i32;
        pub fn socket_tls(id: i32, mode: u32, name: *const u8, name_len: usize) -> i32;
        pub fn upgrade_state(version: u32, ptr: *const u8, len: usize) -> i32;
    }
}

/// Calls a host import inside wasm; elsewhere there is no host to call.
macro_rules! host {
    ($call:expr) => {{
        #[cfg(target_family = "wasm")]
        {
            // SAFETY: every pointer passed is derived from a slice or str borrowed for the
            // whole call, with its own length; the host reads (or, for `out`, writes) only
            // within those ranges.
            unsafe { $call }
        }
        #[cfg(not(target_family = "wasm"))]
        {
            panic!(
                "skywasm host functions exist only inside a skywasm node (build for wasm32-wasip1)"
            )
        }
    }};
}

/// `send` (§4.1): queues `data` for `dest`; 0 or a negative error code.
pub fn send(dest: u32, ptype: u32, session: i32, data: &[u8]) -> i32 {
    host!(imports::send(
        dest,
        ptype,
        session,
        data.as_ptr(),
        data.len()
    ))
}

/// `send_name` (§4.2): `send` to a name or `:hex` address.
pub fn send_name(name: &str, ptype: u32, session: i32, data: &[u8]) -> i32 {
    host!(imports::send_name(
        name.as_ptr(),
        name.len(),
        ptype,
        session,
        data.as_ptr(),
        data.len()
    ))
}

/// `call` (§4.3): sends a request; its new session, or a negative error code.
pub fn call(dest: u32, ptype: u32, data: &[u8]) -> i32 {
    host!(imports::call(dest, ptype, data.as_ptr(), data.len()))
}

/// `call_name` (§4.4): `call` to a name or `:hex` address.
pub fn call_name(name: &str, ptype: u32, data: &[u8]) -> i32 {
    host!(imports::call_name(
        name.as_ptr(),
        name.len(),
        ptype,
        data.as_ptr(),
        data.len()
    ))
}

/// `redirect` (§4.5): sends with another source and a given session.
pub fn redirect(dest: u32, source: u32, ptype: u32, session: i32, data: &[u8]) -> i32 {
    host!(imports::redirect(
        dest,
        source,
        ptype,
        session,
        data.as_ptr(),
        data.len()
    ))
}

/// `multicast` (§4.5): `data` to every service of `dests` as PTYPE_MULTICAST from `source`
/// with `session` (a channel), the bytes held once by the host; how many took it.
pub fn multicast(source: u32, session: i32, data: &[u8], dests: &[u32]) -> i32 {
    host!(imports::multicast(
        source,
        session,
        data.as_ptr(),
        data.len(),
        dests.as_ptr(),
        dests.len()
    ))
}

/// `stm` (§4.24): an operation on a skynet.stm object; `buf` is the bytes written (`NEW`,
/// `UPDATE`) or the room for the answer (`READ`).
pub fn stm(op: u32, id: u32, seen: i64, buf: &mut [u8]) -> i64 {
    host!(imports::stm(op, id, seen, buf.as_mut_ptr(), buf.len()))
}

/// `share` (§4.25): an operation on a skynet.sharetable table; `input` is the packed table
/// or key, `out` the room for the answer.
pub fn share(op: u32, id: u32, node: u32, input: &[u8], out: &mut [u8]) -> i64 {
    host!(imports::share(
        op,
        id,
        node,
        input.as_ptr(),
        input.len(),
        out.as_mut_ptr(),
        out.len()
    ))
}

/// `timeout` (§4.6): a `PTYPE_RESPONSE` with the returned session after `centiseconds`.
pub fn timeout(centiseconds: i32) -> i32 {
    host!(imports::timeout(centiseconds))
}

/// `genid` (§4.7): a new session number, without sending anything.
pub fn genid() -> i32 {
    host!(imports::genid())
}

/// `self_handle` (§4.8): this service's handle.
pub fn self_handle() -> u32 {
    host!(imports::self_handle())
}

/// `now` (§4.9): centiseconds since the node started.
pub fn now() -> i64 {
    host!(imports::now())
}

/// `hpc` (§4.10): a monotonic clock in nanoseconds.
pub fn hpc() -> i64 {
    host!(imports::hpc())
}

/// `command` (§4.11): runs a text command; the result's full length (written up to
/// `out.len()` bytes), or a negative error code.
pub fn command(cmd: &str, param: &str, out: &mut [u8]) -> i32 {
    host!(imports::command(
        cmd.as_ptr(),
        cmd.len(),
        param.as_ptr(),
        param.len(),
        out.as_mut_ptr(),
        out.len()
    ))
}

/// `upgrade_state` (§4.23): inside `skywasm_snapshot`, hands the host `state` (of the
/// guest's `version`) for the new code; 0 or a negative error code.
pub fn upgrade_state(version: u32, state: &[u8]) -> i32 {
    host!(imports::upgrade_state(version, state.as_ptr(), state.len()))
}

/// `log` (§4.12): one line in the node's log, from this service.
pub fn log(text: &[u8]) {
    host!(imports::log(text.as_ptr(), text.len()))
}

/// `load_source` (§4.13): finds the source file `name` of `kind` (`crate::source`) along the
/// node's search path; the full length of the answer (written up to `out.len()` bytes), or a
/// negative error code.
pub fn load_source(kind: u32, name: &str, out: &mut [u8]) -> i32 {
    host!(imports::load_source(
        kind,
        name.as_ptr(),
        name.len(),
        out.as_mut_ptr(),
        out.len()
    ))
}

/// `socket_listen` (§4.15): a listening TCP socket on `host:port`; its id, or a negative
/// error code ([`crate::error::SOCKET`]: the reason is `socket_query(QUERY_ERROR)`).
pub fn socket_listen(host: &str, port: u16, backlog: i32) -> i32 {
    host!(imports::socket_listen(
        host.as_ptr(),
        host.len(),
        u32::from(port),
        backlog
    ))
}

/// `socket_connect` (§4.16): starts a TCP connection; its id (a CONNECT or ERROR event
/// follows), or a negative error code.
pub fn socket_connect(host: &str, port: u16) -> i32 {
    host!(imports::socket_connect(
        host.as_ptr(),
        host.len(),
        u32::from(port)
    ))
}

/// `socket_control` (§4.17): `op` ([`crate::socket::START`], ...) on socket `id`; 0 or a
/// negative error code.
pub fn socket_control(op: u32, id: i32) -> i32 {
    host!(imports::socket_control(op, id))
}

/// `socket_send` (§4.18): queues `data` on socket `id`; 0 or a negative error code.
pub fn socket_send(id: i32, priority: u32, data: &[u8]) -> i32 {
    host!(imports::socket_send(
        id,
        priority,
        data.as_ptr(),
        data.len()
    ))
}

/// `socket_query` (§4.19): the answer to `what` ([`crate::socket::QUERY_ERROR`], ...); its
/// full length (written up to `out.len()` bytes), or a negative error code.
pub fn socket_query(what: u32, id: i32, out: &mut [u8]) -> i32 {
    host!(imports::socket_query(what, id, out.as_mut_ptr(), out.len()))
}

/// `socket_udp` (§4.20): a UDP socket bound to `host:port`; its id, or a negative error code.
pub fn socket_udp(host: &str, port: u16) -> i32 {
    host!(imports::socket_udp(
        host.as_ptr(),
        host.len(),
        u32::from(port)
    ))
}

/// `socket_udp_connect` (§4.21): sets UDP socket `id`'s default peer; 0 or a negative code.
pub fn socket_udp_connect(id: i32, host: &str, port: u16) -> i32 {
    host!(imports::socket_udp_connect(
        id,
        host.as_ptr(),
        host.len(),
        u32::from(port)
    ))
}

/// `socket_sendto` (§4.22): one datagram from UDP socket `id` to `address` (`ip:port`).
pub fn socket_sendto(id: i32, address: &str, data: &[u8]) -> i32 {
    host!(imports::socket_sendto(
        id,
        address.as_ptr(),
        address.len(),
        data.as_ptr(),
        data.len()
    ))
}

/// `socket_resolve` (§4.26): starts looking `name` up; the lookup's id or an error code.
pub fn socket_resolve(name: &str, flags: u32) -> i32 {
    host!(imports::socket_resolve(name.as_ptr(), name.len(), flags))
}

/// `socket_tls` (§4.27): makes socket `id` speak TLS; 0 or an error code.
pub fn socket_tls(id: i32, mode: u32, name: &str) -> i32 {
    host!(imports::socket_tls(id, mode, name.as_ptr(), name.len()))
}
