//! The skywasm host ABI, defined once.
//!
//! Both the native host and the Rust guest SDK depend on this crate, so the names of
//! imports and exports, the message type numbers (skynet's `PTYPE_*`), the handle layout and
//! the error codes cannot drift apart. The C header `guest-sdk/include/skywasm.h` repeats
//! these values for C guests; a test in the host checks that the two agree.
//!
//! `docs/abi.md` is the full specification: the signature and semantics of every function.
//!
//! ```
//! use skywasm_abi::{Handle, ptype};
//! let h = Handle::from_parts(1, 0x0a);
//! assert_eq!(h.to_string(), ":0100000a");
//! assert_eq!(h.harbor(), 1);
//! assert_eq!(ptype::name(ptype::LUA), Some("lua"));
//! ```
#![no_std]

mod handle;
pub mod sys;

pub use handle::Handle;

/// The wasm import module every host function lives in.
pub const IMPORT_MODULE: &str = "skywasm";

/// Message types, numbered exactly as skynet's `PTYPE_*` (`skynet.h`, `lualib/skynet.lua`).
pub mod ptype {
    /// Plain text (the logger, harbor commands).
    pub const TEXT: u32 = 0;
    /// A reply to a session; also a timer expiry.
    pub const RESPONSE: u32 = 1;
    /// Multicast delivery.
    pub const MULTICAST: u32 = 2;
    /// Raw client data; exit notices to the monitor service.
    pub const CLIENT: u32 = 3;
    /// System messages (logger reopen, remote forwarding).
    pub const SYSTEM: u32 = 4;
    /// Commands to the harbor service.
    pub const HARBOR: u32 = 5;
    /// Socket events.
    pub const SOCKET: u32 = 6;
    /// An error reply, or "the peer exited" (empty body).
    pub const ERROR: u32 = 7;
    /// The old mqueue protocol (reserved, deprecated in skynet).
    pub const QUEUE: u32 = 8;
    /// The debug protocol.
    pub const DEBUG: u32 = 9;
    /// The normal `"lua"` protocol: `skynet.pack` bodies.
    pub const LUA: u32 = 10;
    /// snax.
    pub const SNAX: u32 = 11;
    /// A trace tag preceding a traced request.
    pub const TRACE: u32 = 12;
    /// The largest message type number a message can carry.
    pub const MAX: u32 = 255;

    /// skynet's name for a built-in message type (`"lua"`, `"response"`, ...).
    pub fn name(ptype: u32) -> Option<&'static str> {
        Some(match ptype {
            TEXT => "text",
            RESPONSE => "response",
            MULTICAST => "multicast",
            CLIENT => "client",
            SYSTEM => "system",
            HARBOR => "harbor",
            SOCKET => "socket",
            ERROR => "error",
            QUEUE => "queue",
            DEBUG => "debug",
            LUA => "lua",
            SNAX => "snax",
            TRACE => "trace",
            _ => return None,
        })
    }
}

/// Names of the functions the host provides, all in [`IMPORT_MODULE`].
///
/// Signatures use wasm `i32`/`i64`; pointers and lengths are unsigned 32-bit values.
pub mod import {
    /// `send(dest, ptype, session, ptr, len) -> i32`: queue a message; 0 or an error code.
    pub const SEND: &str = "send";
    /// `send_name(name_ptr, name_len, ptype, session, ptr, len) -> i32`: send to a name.
    pub const SEND_NAME: &str = "send_name";
    /// `call(dest, ptype, ptr, len) -> i32`: send with a fresh session; the session or an error code.
    pub const CALL: &str = "call";
    /// `call_name(name_ptr, name_len, ptype, ptr, len) -> i32`: call a name.
    pub const CALL_NAME: &str = "call_name";
    /// `redirect(dest, source, ptype, session, ptr, len) -> i32`: send with another source (privileged).
    pub const REDIRECT: &str = "redirect";
    /// `multicast(source, session, ptr, len, dests_ptr, dests_count) -> i32`: one body to
    /// many services as PTYPE_MULTICAST, held once by the host (privileged, as `redirect`);
    /// how many took it, or an error code.
    pub const MULTICAST: &str = "multicast";
    /// `stm(op, id, seen, ptr, len) -> i64`: skynet.stm's objects held by the host (see
    /// [`crate::stm`]); trusted services only.
    pub const STM: &str = "stm";
    /// `share(op, id, node, in_ptr, in_len, out_ptr, out_cap) -> i64`: skynet.sharetable's
    /// tables held by the host (see [`crate::share`]); trusted services only.
    pub const SHARE: &str = "share";
    /// `timeout(centiseconds) -> i32`: arm a timer; the session of its PTYPE_RESPONSE.
    pub const TIMEOUT: &str = "timeout";
    /// `genid() -> i32`: allocate a session without sending anything.
    pub const GENID: &str = "genid";
    /// `self_handle() -> i32`: this service's handle.
    pub const SELF_HANDLE: &str = "self_handle";
    /// `now() -> i64`: centiseconds since the node started.
    pub const NOW: &str = "now";
    /// `hpc() -> i64`: a monotonic nanosecond counter.
    pub const HPC: &str = "hpc";
    /// `command(cmd_ptr, cmd_len, param_ptr, param_len, out_ptr, out_cap) -> i32`: a skynet text command.
    pub const COMMAND: &str = "command";
    /// `log(ptr, len)`: one line to the node's logger.
    pub const LOG: &str = "log";
    /// `load_source(kind, name_ptr, name_len, out_ptr, out_cap) -> i32`: a script or module
    /// source found along the node's search path (see [`crate::source`]).
    pub const LOAD_SOURCE: &str = "load_source";
    /// `socket_listen(host_ptr, host_len, port, backlog) -> i32`: a listening TCP socket's
    /// id, or an error code (the reason: `socket_query(QUERY_ERROR, ..)`); see [`crate::socket`].
    pub const SOCKET_LISTEN: &str = "socket_listen";
    /// `socket_connect(host_ptr, host_len, port) -> i32`: the id of a TCP connection being
    /// made (a CONNECT or ERROR event follows), or an error code.
    pub const SOCKET_CONNECT: &str = "socket_connect";
    /// `socket_control(op, id) -> i32`: start, pause, close, shut down or set nodelay on a
    /// socket; 0 or an error code.
    pub const SOCKET_CONTROL: &str = "socket_control";
    /// `socket_send(id, priority, ptr, len) -> i32`: queue bytes on a socket; 0 or an error code.
    pub const SOCKET_SEND: &str = "socket_send";
    /// `socket_query(what, id, out_ptr, out_cap) -> i32`: the last socket error's text, a
    /// socket's local address, or every socket (netstat); the answer's length or an error code.
    pub const SOCKET_QUERY: &str = "socket_query";
    /// `socket_udp(host_ptr, host_len, port) -> i32`: a bound UDP socket's id, or an error code.
    pub const SOCKET_UDP: &str = "socket_udp";
    /// `socket_udp_connect(id, host_ptr, host_len, port) -> i32`: a UDP socket's default peer.
    pub const SOCKET_UDP_CONNECT: &str = "socket_udp_connect";
    /// `socket_sendto(id, addr_ptr, addr_len, ptr, len) -> i32`: one datagram to `ip:port`.
    pub const SOCKET_SENDTO: &str = "socket_sendto";
    /// `socket_resolve(name_ptr, name_len, flags) -> i32`: the id of a host-name lookup
    /// (flags: [`crate::socket::RESOLVE_IPV6`]); a RESOLVE event answers it.
    pub const SOCKET_RESOLVE: &str = "socket_resolve";
    /// `socket_tls(id, mode, name_ptr, name_len) -> i32`: make a TCP socket speak TLS, as a
    /// client of `name` ([`crate::socket::TLS_CLIENT`]) or a server ([`crate::socket::TLS_SERVER`]).
    pub const SOCKET_TLS: &str = "socket_tls";
    /// `upgrade_state(version, ptr, len) -> i32`: inside `skywasm_snapshot`, hands the host
    /// the state the new code of an upgrade starts from; 0 or an error code.
    pub const UPGRADE_STATE: &str = "upgrade_state";

    /// Every import, for contract tests.
    pub const ALL: &[&str] = &[
        SEND,
        SEND_NAME,
        CALL,
        CALL_NAME,
        REDIRECT,
        MULTICAST,
        STM,
        SHARE,
        TIMEOUT,
        GENID,
        SELF_HANDLE,
        NOW,
        HPC,
        COMMAND,
        LOG,
        LOAD_SOURCE,
        SOCKET_LISTEN,
        SOCKET_CONNECT,
        SOCKET_CONTROL,
        SOCKET_SEND,
        SOCKET_QUERY,
        SOCKET_UDP,
        SOCKET_UDP_CONNECT,
        SOCKET_SENDTO,
        SOCKET_RESOLVE,
        SOCKET_TLS,
        UPGRADE_STATE,
    ];
}

/// Sockets (skynet's `socket_server`): the operations of `socket_control`, send priorities,
/// `socket_query` questions, and the events the owner of a socket receives.
///
/// A socket event is a PTYPE_SOCKET message with source 0 and session 0 whose body is a
/// 12-byte header — event type (u32), socket id (i32), `ud` (i32), little-endian — then the
/// event's payload. Types and meanings are skynet's `SKYNET_SOCKET_TYPE_*`.
pub mod socket {
    /// Bytes arrived: `ud` = their count, payload = the bytes.
    pub const DATA: u32 = 1;
    /// A connection is open (connected, or started after accept): payload = peer `ip:port`.
    pub const CONNECT: u32 = 2;
    /// The socket closed (or the peer closed its side: the socket stays writable until
    /// closed).
    pub const CLOSE: u32 = 3;
    /// A listening socket accepted a connection: `ud` = the new socket's id, payload = the
    /// peer's `ip:port`. The new socket is read only after someone starts it.
    pub const ACCEPT: u32 = 4;
    /// The socket failed (connect refused, reset, ...): payload = the reason. It is closed.
    pub const ERROR: u32 = 5;
    /// A UDP datagram arrived: `ud` = its length, payload = the data, then the sender's
    /// `ip:port` (what `socket_sendto` takes to answer it).
    pub const UDP: u32 = 6;
    /// Unsent bytes passed a threshold: `ud` = unsent KiB (0 when drained again).
    pub const WARNING: u32 = 7;
    /// A lookup of `socket_resolve` ended: `ud` = 0 and the addresses separated by spaces,
    /// or `ud` = 1 and why not. The id is the lookup's (it is gone after this event).
    pub const RESOLVE: u32 = 8;

    /// `socket_resolve` flag: IPv6 addresses (AAAA) instead of IPv4 (A).
    pub const RESOLVE_IPV6: u32 = 1;
    /// A TLS handshake (`socket_tls`) is done: payload = the protocol version. Data read
    /// and sent on the socket is plain text from then on (the host encrypts).
    pub const TLS: u32 = 9;

    /// `socket_tls` mode: a client verifying the server's name.
    pub const TLS_CLIENT: u32 = 0;
    /// `socket_tls` mode: a server presenting the node's certificate.
    pub const TLS_SERVER: u32 = 1;

    /// `socket_control`: become the owner and start reading (accepting, for a listener).
    pub const START: u32 = 0;
    /// `socket_control`: stop reading until started again.
    pub const PAUSE: u32 = 1;
    /// `socket_control`: close after the queued bytes are sent.
    pub const CLOSE_SOCKET: u32 = 2;
    /// `socket_control`: close at once, dropping queued bytes.
    pub const SHUTDOWN: u32 = 3;
    /// `socket_control`: disable Nagle's algorithm.
    pub const NODELAY: u32 = 4;

    /// `socket_send`: the normal queue.
    pub const PRIORITY_HIGH: u32 = 0;
    /// `socket_send`: the low-priority queue, sent when the normal one is empty.
    pub const PRIORITY_LOW: u32 = 1;

    /// `socket_query`: this service's last socket error, as text.
    pub const QUERY_ERROR: u32 = 0;
    /// `socket_query`: a socket's local address (`ip:port`).
    pub const QUERY_ADDRESS: u32 = 1;
    /// `socket_query`: every socket, as `skynet.pack` bytes of an array of tables.
    pub const QUERY_INFO: u32 = 2;

    /// Bytes of an event's header.
    pub const EVENT_HEADER: usize = 12;
}

/// `load_source`: what is looked up, and the layout of the answer.
///
/// The guest names a file by a module name; the host substitutes it into the configured
/// search path and reads the first file that exists, so a guest never names a host path.
/// The answer written to `out` is the pattern that matched, one NUL byte, the path it made,
/// one NUL byte, then the file's bytes; the return value is the answer's full length (repeat with a larger buffer when it
/// is above `out_cap`), or [`error::NOT_FOUND`] with nothing written.
pub mod source {
    /// A service script: `name` goes into the `luaservice` search path.
    pub const SERVICE: u32 = 0;
    /// A module for `require`: `name`, with dots turned into `/`, goes into `lua_path`.
    pub const MODULE: u32 = 1;
    /// The script named by the config key `preload` (run before every Lua service); `name`
    /// is ignored.
    pub const PRELOAD: u32 = 2;
    /// A file named by its path, as given (relative to the node's working directory), for
    /// the console's `inject`; only for services with the files capability.
    pub const FILE: u32 = 3;
    /// A snax service's file (`skynet.snax`): `name`, used as written, goes into the
    /// config's `snax` search path.
    pub const SNAX: u32 = 4;
    /// A data file (`io.open`, `loadfile` in Lua): `name` is a path as the service wrote
    /// it, which must lie inside a directory of the service's `lua_data_path`.
    pub const DATA: u32 = 5;
}

/// Operations of the `stm` import: skynet.stm's objects, a byte string one service writes
/// and others read, held once by the host.
pub mod stm {
    /// A new object of the bytes at `ptr, len`: its id.
    pub const NEW: u32 = 0;
    /// The writer replaces object `id`'s bytes.
    pub const UPDATE: u32 = 1;
    /// A copy of object `id` for a reader in another service (it travels in a message).
    pub const COPY: u32 = 2;
    /// The writer lets go of object `id` (its bytes go).
    pub const RELEASE_WRITER: u32 = 3;
    /// A reader (or an unused copy) lets go of object `id`.
    pub const RELEASE_READER: u32 = 4;
    /// Object `id`'s bytes if their version is not `seen`: version (8 bytes) then bytes.
    pub const READ: u32 = 5;
    /// The caller takes a copy of object `id` as its reader.
    pub const ADOPT: u32 = 6;
}

/// Operations of the `share` import: skynet.sharetable's tables, held once by the host.
pub mod share {
    /// A new version of the `skynet.pack`ed table at `in`: its id.
    pub const CREATE: u32 = 0;
    /// A copy of version `id` for a reader (it travels in a message).
    pub const COPY: u32 = 1;
    /// The caller takes a copy of version `id`.
    pub const ADOPT: u32 = 2;
    /// The caller lets go of its hold on version `id`.
    pub const RELEASE: u32 = 3;
    /// `t[key]` of a node: one packed value (a table: a light userdata holding its node).
    pub const GET: u32 = 4;
    /// The key after a key of a node (none: the first) and its value, packed; empty at the end.
    pub const NEXT: u32 = 5;
    /// `#t` of a node.
    pub const LEN: u32 = 6;
}

/// Names of the functions a guest module exports.
pub mod export {
    /// `skywasm_alloc(len) -> ptr`: memory for an incoming message of `len` bytes (never 0 unless failing).
    pub const ALLOC: &str = "skywasm_alloc";
    /// `skywasm_init(ptr, len) -> i32`: start the service with its argument string; 0 = started.
    pub const INIT: &str = "skywasm_init";
    /// `skywasm_dispatch(ptype, session, source, ptr, len)`: deliver one message.
    pub const DISPATCH: &str = "skywasm_dispatch";
    /// The guest's linear memory.
    pub const MEMORY: &str = "memory";
    /// WASI reactor constructor, called once before `skywasm_init` when present.
    pub const INITIALIZE: &str = "_initialize";
    /// `skywasm_preinit()`: optional; run once when the node loads the module (after
    /// `_initialize`), whose memory is then snapshotted as every instance's starting image.
    pub const PREINIT: &str = "skywasm_preinit";
    /// `skywasm_interrupt()`: optional; called inside a running message when `SIGNAL 0`
    /// arrives for it, so the guest can stop that work itself instead of being discarded.
    pub const INTERRUPT: &str = "skywasm_interrupt";
    /// `skywasm_snapshot() -> i32`: optional; asked of the running code when its service is
    /// upgraded: it hands its state to the host with `upgrade_state` (or not, to start the
    /// new code fresh) and returns 0, or refuses the upgrade with another value.
    pub const SNAPSHOT: &str = "skywasm_snapshot";
    /// `skywasm_restore(version, ptr, len) -> i32`: optional; gives the new code of an
    /// upgrade the old code's state, before `skywasm_init`; 0 = taken, another value refuses
    /// the upgrade (the old code carries on).
    pub const RESTORE: &str = "skywasm_restore";
}

/// Error codes returned by host functions. Success is 0 or a positive value (a session, a length).
pub mod error {
    /// The destination address is 0, unknown, or belongs to a service that has exited.
    pub const INVALID_ADDRESS: i32 = -1;
    /// No service is bound to that name.
    pub const UNKNOWN_NAME: i32 = -2;
    /// The service lacks the capability for this operation.
    pub const DENIED: i32 = -3;
    /// The message is larger than the node's message size limit.
    pub const TOO_LARGE: i32 = -4;
    /// The destination's mailbox is full.
    pub const MAILBOX_FULL: i32 = -5;
    /// The command name is not a known command.
    pub const UNKNOWN_COMMAND: i32 = -6;
    /// A parameter is malformed (bad address text, bad number, bad name).
    pub const INVALID_ARGUMENT: i32 = -7;
    /// The command has no result (skynet returns NULL): unknown key, unknown name.
    pub const NOT_FOUND: i32 = -8;
    /// The operation was attempted and failed (e.g. LAUNCH: module missing or init failed).
    pub const FAILED: i32 = -9;
    /// The name is already bound to another service.
    pub const NAME_TAKEN: i32 = -10;
    /// A configured limit was reached (services, timers).
    pub const LIMIT: i32 = -11;
    /// The socket operation failed; `socket_query(QUERY_ERROR, ..)` says why.
    pub const SOCKET: i32 = -12;

    /// A short description of an error code, for logs and SDK error messages.
    pub fn describe(code: i32) -> &'static str {
        match code {
            INVALID_ADDRESS => "invalid or dead address",
            UNKNOWN_NAME => "unknown name",
            DENIED => "permission denied",
            TOO_LARGE => "message too large",
            MAILBOX_FULL => "mailbox full",
            UNKNOWN_COMMAND => "unknown command",
            INVALID_ARGUMENT => "invalid argument",
            NOT_FOUND => "not found",
            FAILED => "failed",
            NAME_TAKEN => "name already taken",
            LIMIT => "limit reached",
            SOCKET => "socket error",
            _ => "unknown error",
        }
    }
}

/// An [`error`] code as a type: what the host's Rust APIs return when they refuse, so that
/// Rust code matches on a variant and only the ABI boundary deals in `i32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostError {
    /// [`error::INVALID_ADDRESS`].
    InvalidAddress,
    /// [`error::UNKNOWN_NAME`].
    UnknownName,
    /// [`error::DENIED`].
    Denied,
    /// [`error::TOO_LARGE`].
    TooLarge,
    /// [`error::MAILBOX_FULL`].
    MailboxFull,
    /// [`error::UNKNOWN_COMMAND`].
    UnknownCommand,
    /// [`error::INVALID_ARGUMENT`].
    InvalidArgument,
    /// [`error::NOT_FOUND`].
    NotFound,
    /// [`error::FAILED`].
    Failed,
    /// [`error::NAME_TAKEN`].
    NameTaken,
    /// [`error::LIMIT`].
    Limit,
    /// [`error::SOCKET`].
    Socket,
}

impl HostError {
    /// Every error, in code order (-1 first).
    pub const ALL: [HostError; 12] = [
        HostError::InvalidAddress,
        HostError::UnknownName,
        HostError::Denied,
        HostError::TooLarge,
        HostError::MailboxFull,
        HostError::UnknownCommand,
        HostError::InvalidArgument,
        HostError::NotFound,
        HostError::Failed,
        HostError::NameTaken,
        HostError::Limit,
        HostError::Socket,
    ];

    /// The negative code a guest sees.
    pub const fn code(self) -> i32 {
        match self {
            HostError::InvalidAddress => error::INVALID_ADDRESS,
            HostError::UnknownName => error::UNKNOWN_NAME,
            HostError::Denied => error::DENIED,
            HostError::TooLarge => error::TOO_LARGE,
            HostError::MailboxFull => error::MAILBOX_FULL,
            HostError::UnknownCommand => error::UNKNOWN_COMMAND,
            HostError::InvalidArgument => error::INVALID_ARGUMENT,
            HostError::NotFound => error::NOT_FOUND,
            HostError::Failed => error::FAILED,
            HostError::NameTaken => error::NAME_TAKEN,
            HostError::Limit => error::LIMIT,
            HostError::Socket => error::SOCKET,
        }
    }

    /// The error a code stands for, if it is one.
    pub fn from_code(code: i32) -> Option<HostError> {
        HostError::ALL.into_iter().find(|e| e.code() == code)
    }
}

impl core::fmt::Display for HostError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(error::describe(self.code()))
    }
}

impl core::error::Error for HostError {}

/// Longest global (harbor-wide) name, as skynet's `GLOBALNAME_LENGTH - 1`.
pub const GLOBAL_NAME_MAX: usize = 15;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptypes_match_skynet() {
        // skynet.h: PTYPE_TEXT 0 ... PTYPE_RESERVED_SNAX 11; skynet.lua: PTYPE_TRACE 12.
        let expected = [
            (0, "text"),
            (1, "response"),
            (2, "multicast"),
            (3, "client"),
            (4, "system"),
            (5, "harbor"),
            (6, "socket"),
            (7, "error"),
            (8, "queue"),
            (9, "debug"),
            (10, "lua"),
            (11, "snax"),
            (12, "trace"),
        ];
        for (id, name) in expected {
            assert_eq!(ptype::name(id), Some(name), "ptype {id}");
        }
        assert_eq!(ptype::name(13), None);
    }

    #[test]
    fn error_codes_are_distinct_and_negative() {
        let codes = [
            error::INVALID_ADDRESS,
            error::UNKNOWN_NAME,
            error::DENIED,
            error::TOO_LARGE,
            error::MAILBOX_FULL,
            error::UNKNOWN_COMMAND,
            error::INVALID_ARGUMENT,
            error::NOT_FOUND,
            error::FAILED,
            error::NAME_TAKEN,
            error::LIMIT,
            error::SOCKET,
        ];
        for (i, a) in codes.iter().enumerate() {
            assert!(*a < 0);
            assert_ne!(error::describe(*a), "unknown error");
            for b in &codes[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let typed: [i32; 12] = HostError::ALL.map(HostError::code);
        assert_eq!(typed, codes, "one variant per code, in order");
        for e in HostError::ALL {
            assert_eq!(HostError::from_code(e.code()), Some(e));
        }
        assert_eq!(HostError::from_code(0), None);
        assert_eq!(HostError::from_code(-13), None);
    }
}
