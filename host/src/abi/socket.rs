//! Socket host functions (docs/abi.md §4.14–4.22): listen, connect, control, send, query and
//! UDP,
//! over the node's [`crate::socket::SocketServer`]. Events come back to the owner as
//! PTYPE_SOCKET messages.
//!
//! Expected failures are codes: `NOT_FOUND` for an unknown socket (for an untrusted tenant:
//! also another tenant's socket), `SOCKET` for an address or network failure or the
//! tenant's socket limit (the text is kept for `socket_query(QUERY_ERROR)`), `DENIED`
//! without the sockets capability or for an address outside the tenant's `listen` /
//! `connect` list, `INVALID_ARGUMENT` for a port over 65535, a host that is not UTF-8 or an
//! unknown operation.

use bytes::Bytes;
use skywasm_abi::{error, import, socket, IMPORT_MODULE};
use wasmtime::{Caller, Linker};

use super::memory::{check, copy_in, read_str, write_answer};
use crate::socket::{Owner, SocketError, SocketServer};
use crate::wasm::WasmState;

/// The code for a failed socket call; an address failure's text is kept for the guest.
fn failure(caller: &mut Caller<'_, WasmState>, e: SocketError) -> i32 {
    match e {
        SocketError::Unknown(_) => error::NOT_FOUND,
        other => {
            caller.data_mut().socket_error = Some(other.to_string().into_boxed_str());
            error::SOCKET
        }
    }
}

/// 0, or the code of a failed socket call.
fn status(caller: &mut Caller<'_, WasmState>, result: Result<(), SocketError>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => failure(caller, e),
    }
}

/// A body to send: `Err(code)` over the tenant's `message_size` or without the
/// capability, checked before anything is copied.
fn body_arg(
    caller: &mut Caller<'_, WasmState>,
    function: &str,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<Result<Bytes, i32>> {
    if len as usize > caller.data().core.message_size() {
        return Ok(Err(error::TOO_LARGE));
    }
    if !allowed(caller) {
        return Ok(Err(error::DENIED));
    }
    let bytes = copy_in(caller, function, ptr, len)?;
    Ok(Ok(Bytes::from(bytes)))
}

fn allowed(caller: &Caller<'_, WasmState>) -> bool {
    caller.data().core.capabilities.sockets
}

/// The caller as the owner of a new socket.
fn owner(caller: &Caller<'_, WasmState>) -> Owner {
    let core = &caller.data().core;
    let tenant = core.service().tenant();
    Owner {
        handle: core.handle(),
        quota: tenant.sockets.clone(),
        may_resolve: tenant.is_trusted(),
    }
}

/// `Ok` when the caller may use socket `id`: any socket for a trusted tenant, only its own
/// tenant's otherwise (another tenant's socket looks like no socket: `NOT_FOUND`).
fn own_socket(caller: &Caller<'_, WasmState>, id: i32) -> Result<(), i32> {
    let core = &caller.data().core;
    let tenant = core.service().tenant();
    if tenant.is_trusted() {
        return Ok(());
    }
    core.node()
        .sockets
        .check_group(id, &tenant.sockets)
        .map_err(|_| error::NOT_FOUND)
}

/// Which allow-list an address is checked against.
#[derive(Clone, Copy)]
enum Direction {
    /// `listen` (TCP listen, UDP bind).
    Listen,
    /// `connect` (TCP connect, UDP peer and datagram destinations).
    Connect,
}

/// `Ok` when the caller's tenant allows `host:port` in `direction`; otherwise logs the
/// refusal and returns `DENIED`.
fn allowed_address(
    caller: &Caller<'_, WasmState>,
    function: &str,
    direction: Direction,
    host: &str,
    port: u16,
) -> Result<(), i32> {
    let core = &caller.data().core;
    let spec = &core.service().tenant().spec;
    let (allowed, list) = match direction {
        Direction::Listen => (spec.may_listen(host, port), "listen"),
        Direction::Connect => (spec.may_connect(host, port), "connect"),
    };
    if !allowed {
        return Err(crate::command::deny(
            core,
            function,
            &format!("{host}:{port}"),
            &format!("the address is not in its `{list}` list"),
        )
        .code());
    }
    let tenant = core.service().tenant();
    if matches!(direction, Direction::Connect)
        && !tenant.is_trusted()
        && is_metrics_endpoint(core.node(), host, port)
    {
        // Whatever its `connect` list names: the endpoint is the operator's.
        return Err(crate::command::deny(
            core,
            function,
            &format!("{host}:{port}"),
            "the node's metrics endpoint is not for untrusted tenants",
        )
        .code());
    }
    if matches!(direction, Direction::Connect)
        && !tenant.is_trusted()
        && !spec.names_connect_host(host, port)
    {
        // This machine and the node's own listeners (the cluster port, a console, other
        // tenants' gates) are reached only through an entry that names them.
        let node = core.node();
        let own_port = || {
            node.sockets
                .listening_ports(Some(&tenant.sockets))
                .contains(&port)
                || node
                    .cluster
                    .listening()
                    .iter()
                    .any(|bound| crate::socket::port_of(bound) == Some(port))
        };
        if crate::socket::is_local_host(host) || own_port() {
            return Err(crate::command::deny(
                core,
                function,
                &format!("{host}:{port}"),
                "this machine's own addresses and the node's listeners need a `connect` \
                 entry that names the host",
            )
            .code());
        }
    }
    Ok(())
}

/// True when `host:port` may be the node's metrics endpoint: its port on this machine, at
/// its own address, or behind a name (which could resolve to either) — and, when it listens
/// on every address (`0.0.0.0`, `::`), its port at any address, since any of them may be
/// one of this machine's.
fn is_metrics_endpoint(node: &crate::shared::NodeShared, host: &str, port: u16) -> bool {
    let Some(endpoint) = node.metrics.endpoint.get() else {
        return false;
    };
    if endpoint.port() != port {
        return false;
    }
    let bound = endpoint.ip().to_canonical();
    match crate::socket::numeric_ip(host.trim()) {
        None => true,
        Some(ip) => {
            let ip = ip.to_canonical();
            bound.is_unspecified() || ip == bound || ip.is_loopback() || ip.is_unspecified()
        }
    }
}

/// The `(host, port)` arguments of the socket functions that take an address, once the
/// caller may use sockets there: `Err(code)` for a host that is not UTF-8, a port over
/// 65535, no capability or an address its tenant does not allow.
fn address_args(
    caller: &mut Caller<'_, WasmState>,
    function: &str,
    direction: Direction,
    host_ptr: u32,
    host_len: u32,
    port: u32,
) -> wasmtime::Result<Result<(String, u16), i32>> {
    let Some(host) = read_str(caller, function, host_ptr, host_len)? else {
        return Ok(Err(error::INVALID_ARGUMENT));
    };
    let Ok(port) = u16::try_from(port) else {
        return Ok(Err(error::INVALID_ARGUMENT));
    };
    if !allowed(caller) {
        return Ok(Err(error::DENIED));
    }
    if let Err(code) = allowed_address(caller, function, direction, &host, port) {
        return Ok(Err(code));
    }
    Ok(Ok((host, port)))
}

/// Opens a socket for the caller with `open` once its address arguments pass
/// [`address_args`]: the new id, or an error code.
fn open_socket(
    caller: &mut Caller<'_, WasmState>,
    function: &str,
    direction: Direction,
    (host_ptr, host_len, port): (u32, u32, u32),
    open: impl FnOnce(&SocketServer, &Owner, &str, u16) -> Result<i32, SocketError>,
) -> wasmtime::Result<i32> {
    let (host, port) = match address_args(caller, function, direction, host_ptr, host_len, port)? {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let owner = owner(caller);
    let result = open(&caller.data().core.node().sockets, &owner, &host, port);
    Ok(result.unwrap_or_else(|e| failure(caller, e)))
}

/// `socket_resolve`: a lookup's id, or an error code (`DENIED` without the sockets
/// capability or for a name the tenant's `connect` list does not allow).
fn resolve(
    caller: &mut Caller<'_, WasmState>,
    name_ptr: u32,
    name_len: u32,
    flags: u32,
) -> wasmtime::Result<i32> {
    const NAME: &str = import::SOCKET_RESOLVE;
    let Some(name) = read_str(caller, NAME, name_ptr, name_len)? else {
        return Ok(error::INVALID_ARGUMENT);
    };
    if flags & !socket::RESOLVE_IPV6 != 0 {
        return Ok(error::INVALID_ARGUMENT);
    }
    if !allowed(caller) {
        return Ok(error::DENIED);
    }
    let core = &caller.data().core;
    if !core.service().tenant().spec.may_resolve(&name) {
        return Ok(crate::command::deny(
            core,
            NAME,
            &name,
            "the name is not in its `connect` list",
        )
        .code());
    }
    let owner = owner(caller);
    let node = caller.data().core.node();
    let result = node.sockets.resolve(
        &owner,
        &name,
        flags & socket::RESOLVE_IPV6 != 0,
        node.getenv("dns_hosts"),
    );
    Ok(result.unwrap_or_else(|e| failure(caller, e)))
}

/// `socket_tls`: 0, or an error code (`DENIED` for a server on an untrusted tenant: the
/// node's certificate is the node's identity).
fn start_tls(
    caller: &mut Caller<'_, WasmState>,
    id: i32,
    mode: u32,
    name_ptr: u32,
    name_len: u32,
) -> wasmtime::Result<i32> {
    const NAME: &str = import::SOCKET_TLS;
    let Some(name) = read_str(caller, NAME, name_ptr, name_len)? else {
        return Ok(error::INVALID_ARGUMENT);
    };
    if !allowed(caller) {
        return Ok(error::DENIED);
    }
    if let Err(code) = own_socket(caller, id) {
        return Ok(code);
    }
    let core = &caller.data().core;
    let node = core.node();
    let result = match mode {
        socket::TLS_CLIENT => {
            node.sockets
                .start_tls(id, Some(&name), node.getenv("tls_ca").as_deref(), None)
        }
        socket::TLS_SERVER => {
            if !core.service().tenant().is_trusted() {
                return Ok(crate::command::deny(
                    core,
                    NAME,
                    &id.to_string(),
                    "only the node's own services serve TLS with its certificate",
                )
                .code());
            }
            let (cert, key) = (node.getenv("tls_cert"), node.getenv("tls_key"));
            node.sockets
                .start_tls(id, None, None, cert.as_deref().zip(key.as_deref()))
        }
        _ => return Ok(error::INVALID_ARGUMENT),
    };
    Ok(status(caller, result))
}

pub(crate) fn register(linker: &mut Linker<WasmState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        IMPORT_MODULE,
        import::SOCKET_TLS,
        |mut caller: Caller<'_, WasmState>,
         id: i32,
         mode: u32,
         name_ptr: u32,
         name_len: u32|
         -> wasmtime::Result<i32> { start_tls(&mut caller, id, mode, name_ptr, name_len) },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::SOCKET_RESOLVE,
        |mut caller: Caller<'_, WasmState>,
         name_ptr: u32,
         name_len: u32,
         flags: u32|
         -> wasmtime::Result<i32> { resolve(&mut caller, name_ptr, name_len, flags) },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::SOCKET_LISTEN,
        |mut caller: Caller<'_, WasmState>,
         host_ptr: u32,
         host_len: u32,
         port: u32,
         backlog: i32|
         -> wasmtime::Result<i32> {
            let address = (host_ptr, host_len, port);
            open_socket(
                &mut caller,
                import::SOCKET_LISTEN,
                Direction::Listen,
                address,
                |sockets, owner, host, port| sockets.listen(owner, host, port, backlog),
            )
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::SOCKET_CONNECT,
        |mut caller: Caller<'_, WasmState>,
         host_ptr: u32,
         host_len: u32,
         port: u32|
         -> wasmtime::Result<i32> {
            let address = (host_ptr, host_len, port);
            open_socket(
                &mut caller,
                import::SOCKET_CONNECT,
                Direction::Connect,
                address,
                |sockets, owner, host, port| sockets.connect(owner, host, port),
            )
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::SOCKET_UDP,
        |mut caller: Caller<'_, WasmState>,
         host_ptr: u32,
         host_len: u32,
         port: u32|
         -> wasmtime::Result<i32> {
            let address = (host_ptr, host_len, port);
            open_socket(
                &mut caller,
                import::SOCKET_UDP,
                Direction::Listen,
                address,
                |sockets, owner, host, port| sockets.udp(owner, host, port),
            )
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::SOCKET_UDP_CONNECT,
        |mut caller: Caller<'_, WasmState>,
         id: i32,
         host_ptr: u32,
         host_len: u32,
         port: u32|
         -> wasmtime::Result<i32> {
            const NAME: &str = import::SOCKET_UDP_CONNECT;
            let (host, port) = match address_args(
                &mut caller,
                NAME,
                Direction::Connect,
                host_ptr,
                host_len,
                port,
            )? {
                Ok(args) => args,
                Err(code) => return Ok(code),
            };
            if let Err(code) = own_socket(&caller, id) {
                return Ok(code);
            }
            let core = &caller.data().core;
            let may_resolve = core.service().tenant().is_trusted();
            let result = core
                .node()
                .sockets
                .udp_connect(id, &host, port, may_resolve);
            Ok(status(&mut caller, result))
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::SOCKET_SENDTO,
        |mut caller: Caller<'_, WasmState>,
         id: i32,
         addr_ptr: u32,
         addr_len: u32,
         ptr: u32,
         len: u32|
         -> wasmtime::Result<i32> {
            const NAME: &str = import::SOCKET_SENDTO;
            let Some(address) = read_str(&mut caller, NAME, addr_ptr, addr_len)? else {
                return Ok(error::INVALID_ARGUMENT);
            };
            let bytes = match body_arg(&mut caller, NAME, ptr, len)? {
                Ok(bytes) => bytes,
                Err(code) => return Ok(code),
            };
            if let Err(code) = own_socket(&caller, id) {
                return Ok(code);
            }
            if let Ok(to) = address.parse::<std::net::SocketAddr>() {
                let host = to.ip().to_string();
                if let Err(code) =
                    allowed_address(&caller, NAME, Direction::Connect, &host, to.port())
                {
                    return Ok(code);
                }
            }
            let result = caller
                .data()
                .core
                .node()
                .sockets
                .send_to(id, &address, bytes);
            Ok(status(&mut caller, result))
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::SOCKET_CONTROL,
        |mut caller: Caller<'_, WasmState>, op: u32, id: i32| -> i32 {
            if !allowed(&caller) {
                return error::DENIED;
            }
            if let Err(code) = own_socket(&caller, id) {
                return code;
            }
            let core = &caller.data().core;
            let sockets = &core.node().sockets;
            let result = match op {
                socket::START => sockets.start(core.handle(), id),
                socket::PAUSE => sockets.pause(id),
                socket::CLOSE_SOCKET => sockets.close(id),
                socket::SHUTDOWN => sockets.shutdown(id),
                socket::NODELAY => sockets.nodelay(id),
                _ => return error::INVALID_ARGUMENT,
            };
            status(&mut caller, result)
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::SOCKET_SEND,
        |mut caller: Caller<'_, WasmState>,
         id: i32,
         priority: u32,
         ptr: u32,
         len: u32|
         -> wasmtime::Result<i32> {
            let low = match priority {
                socket::PRIORITY_HIGH => false,
                socket::PRIORITY_LOW => true,
                _ => return Ok(error::INVALID_ARGUMENT),
            };
            let bytes = match body_arg(&mut caller, import::SOCKET_SEND, ptr, len)? {
                Ok(bytes) => bytes,
                Err(code) => return Ok(code),
            };
            if let Err(code) = own_socket(&caller, id) {
                return Ok(code);
            }
            let result = caller.data().core.node().sockets.send(id, low, bytes);
            Ok(status(&mut caller, result))
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        import::SOCKET_QUERY,
        |mut caller: Caller<'_, WasmState>,
         what: u32,
         id: i32,
         out_ptr: u32,
         out_cap: u32|
         -> wasmtime::Result<i32> {
            const NAME: &str = import::SOCKET_QUERY;
            check(&mut caller, NAME, out_ptr, out_cap)?;
            let answer = match what {
                socket::QUERY_ERROR => match &caller.data().socket_error {
                    Some(text) => text.as_bytes().to_vec(),
                    None => return Ok(error::NOT_FOUND),
                },
                socket::QUERY_ADDRESS => {
                    if let Err(code) = own_socket(&caller, id) {
                        return Ok(code);
                    }
                    match caller.data().core.node().sockets.local_address(id) {
                        Ok(address) => address.into_bytes(),
                        Err(e) => return Ok(failure(&mut caller, e)),
                    }
                }
                socket::QUERY_INFO => {
                    // An untrusted tenant sees its own sockets only.
                    let tenant = caller.data().core.service().tenant();
                    let group = (!tenant.is_trusted()).then_some(&tenant.sockets);
                    let info = caller.data().core.node().sockets.info(group);
                    let table = skywasm_pack::Value::Table(skywasm_pack::Table {
                        array: info,
                        hash: Vec::new(),
                    });
                    match skywasm_pack::pack(&[table]) {
                        Ok(bytes) => bytes,
                        Err(_) => return Ok(error::FAILED),
                    }
                }
                _ => return Ok(error::INVALID_ARGUMENT),
            };
            write_answer(&mut caller, NAME, out_ptr, out_cap, &answer)
        },
    )?;
    Ok(())
}
