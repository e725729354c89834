//! The service API: sending, calling, timers, names, launching, env, logging.

use std::future::Future;

use skywasm_abi::{error as code, ptype, Handle};
use skywasm_pack::Value;

use crate::error::{Error, Result};
use crate::request::Request;
use crate::runtime;
use crate::sys;

/// Where a message goes: a handle, or a name (`.local`, global, or `:0000000a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address<'a> {
    /// A service handle.
    Handle(Handle),
    /// A name the host resolves at send time.
    Name(&'a str),
}

impl From<Handle> for Address<'_> {
    fn from(handle: Handle) -> Self {
        Address::Handle(handle)
    }
}

impl<'a> From<&'a str> for Address<'a> {
    fn from(name: &'a str) -> Self {
        Address::Name(name)
    }
}

impl<'a> From<&'a String> for Address<'a> {
    fn from(name: &'a String) -> Self {
        Address::Name(name)
    }
}

/// This service's handle.
pub fn self_handle() -> Handle {
    Handle(sys::self_handle())
}

/// Sends a one-way message. Sending to a dead or unknown address fails at once.
///
/// # Errors
/// [`Error::Host`] with `INVALID_ADDRESS`, `UNKNOWN_NAME`, `TOO_LARGE`, ...
pub fn send<'a>(dest: impl Into<Address<'a>>, ptype: u32, data: &[u8]) -> Result<()> {
    let rc = match dest.into() {
        Address::Handle(h) => sys::send(h.0, ptype, 0, data),
        Address::Name(name) => sys::send_name(name, ptype, 0, data),
    };
    if rc < 0 {
        return Err(Error::host("send", rc));
    }
    Ok(())
}

/// Sends `skynet.pack(values...)` with the `"lua"` protocol.
///
/// # Errors
/// As [`send`], plus [`Error::Codec`].
pub fn send_values<'a>(dest: impl Into<Address<'a>>, values: &[Value]) -> Result<()> {
    send(dest, ptype::LUA, &skywasm_pack::pack(values)?)
}

/// Sends a request and waits for the reply. Many calls may be in flight at once (each in its
/// own task, or joined). A PTYPE_ERROR reply — the callee failed, refused, or exited —
/// becomes [`Error::CallFailed`].
///
/// # Errors
/// [`Error::Host`] when the request cannot be sent; [`Error::CallFailed`].
pub async fn call<'a>(dest: impl Into<Address<'a>>, ptype: u32, data: &[u8]) -> Result<Vec<u8>> {
    let (dest, session) = match dest.into() {
        Address::Handle(h) => (h, sys::call(h.0, ptype, data)),
        Address::Name(name) => (Handle::NONE, sys::call_name(name, ptype, data)),
    };
    if session < 0 {
        return Err(Error::host("call", session));
    }
    runtime::reply(dest, session).await
}

/// Calls with the `"lua"` protocol: packs the arguments, unpacks the reply.
///
/// # Errors
/// As [`call`], plus [`Error::Codec`].
pub async fn call_values<'a>(dest: impl Into<Address<'a>>, values: &[Value]) -> Result<Vec<Value>> {
    let body = skywasm_pack::pack(values)?;
    let reply = call(dest, ptype::LUA, &body).await?;
    Ok(skywasm_pack::unpack(&reply)?)
}

/// Sends with another source and session (skynet's `redirect`); needs the capability.
///
/// # Errors
/// [`Error::Host`] (`DENIED` without the capability).
pub fn redirect(dest: Handle, source: Handle, ptype: u32, session: i32, data: &[u8]) -> Result<()> {
    let rc = sys::redirect(dest.0, source.0, ptype, session, data);
    if rc < 0 {
        return Err(Error::host("redirect", rc));
    }
    Ok(())
}

/// Registers the handler for a message type. Each message runs in its own task, so a
/// handler may `await` calls; messages are still delivered one at a time.
///
/// ```no_run
/// use skywasm_guest::{dispatch, ptype, Request};
/// dispatch(ptype::TEXT, |req: Request| async move {
///     let _ = req.ret(req.data());
/// });
/// ```
pub fn dispatch<F, Fut>(ptype: u32, handler: F)
where
    F: Fn(Request) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    runtime::set_handler(
        ptype,
        std::rc::Rc::new(move |request| Box::pin(handler(request))),
    );
}

/// Runs a future as a new task after the current message (skynet's `fork`).
pub fn fork(task: impl Future<Output = ()> + 'static) {
    runtime::spawn_later(Box::pin(task));
}

/// Suspends the current task for `centiseconds` (skynet's `sleep`).
///
/// # Errors
/// [`Error::Host`] if the timer cannot be armed.
pub async fn sleep(centiseconds: u32) -> Result<()> {
    let session = sys::timeout(centiseconds.min(i32::MAX as u32) as i32);
    if session < 0 {
        return Err(Error::host("timeout", session));
    }
    runtime::reply(Handle::NONE, session).await.map(|_| ())
}

/// Runs `f` in a new task after `centiseconds` (skynet's `timeout`).
pub fn timeout(centiseconds: u32, f: impl FnOnce() + 'static) {
    fork(async move {
        if sleep(centiseconds).await.is_ok() {
            f();
        }
    });
}

/// Gives other ready tasks a turn (skynet's `yield`, a zero sleep).
///
/// # Errors
/// As [`sleep`].
pub async fn yield_now() -> Result<()> {
    sleep(0).await
}

/// Allocates a session id without sending anything (skynet's `genid`).
pub fn genid() -> i32 {
    sys::genid()
}

/// Centiseconds since the node started.
pub fn now() -> u64 {
    sys::now() as u64
}

/// A monotonic nanosecond counter.
pub fn hpc() -> u64 {
    sys::hpc() as u64
}

/// The node's start time, UTC seconds.
pub fn starttime() -> u64 {
    command("STARTTIME", "")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Current UTC time in seconds, with centisecond resolution (skynet's `time`).
pub fn time() -> f64 {
    starttime() as f64 + now() as f64 / 100.0
}

/// Runs a skynet text command (`docs/abi.md` lists them) and returns its result text.
///
/// # Errors
/// [`Error::Host`] with the command's error code.
pub fn command(cmd: &str, param: &str) -> Result<String> {
    // Only GETENV has results over 256 bytes, and it has no side effects: asking again is
    // safe.
    answer_text(|out| sys::command(cmd, param, out)).map_err(|code| Error::Host {
        op: "command",
        code,
    })
}

/// The text a host function writes into a buffer, returning its full length (`command`,
/// `socket_query`): asked again with a buffer of that length when the first was too small.
/// The negative code on failure.
pub(crate) fn answer_text(ask: impl Fn(&mut [u8]) -> i32) -> std::result::Result<String, i32> {
    let mut buffer = vec![0u8; 256];
    loop {
        let rc = ask(&mut buffer);
        let len = usize::try_from(rc).map_err(|_| rc)?;
        if len <= buffer.len() {
            buffer.truncate(len);
            return Ok(String::from_utf8_lossy(&buffer).into_owned());
        }
        buffer = vec![0u8; len];
    }
}

fn parse_handle(text: &str) -> Result<Handle> {
    Handle::parse(text).ok_or_else(|| Error::Other(format!("bad address {text:?} from the host")))
}

/// Binds a name (`.local` or global) to this service.
///
/// # Errors
/// `NAME_TAKEN` if another service has it, `INVALID_ARGUMENT` for a malformed name.
pub fn register(name: &str) -> Result<()> {
    command("REG", name).map(|_| ())
}

/// Binds a name to another service.
///
/// # Errors
/// As [`register`].
pub fn name(name: &str, handle: Handle) -> Result<()> {
    command("NAME", &format!("{name} {handle}")).map(|_| ())
}

/// Looks a name up.
pub fn query(name: &str) -> Option<Handle> {
    command("QUERY", name)
        .ok()
        .and_then(|h| parse_handle(&h).ok())
}

/// Ends another service (or this one).
///
/// # Errors
/// `INVALID_ADDRESS` if it is not alive.
pub fn kill<'a>(target: impl Into<Address<'a>>) -> Result<()> {
    let target = match target.into() {
        Address::Handle(h) => h.to_string(),
        Address::Name(name) => name.to_string(),
    };
    command("KILL", &target).map(|_| ())
}

/// Ends this service after the current message. Callers still waiting on it get errors.
pub fn exit() {
    let _ = command("EXIT", "");
    runtime::mark_exited();
}

/// Stops the whole node (skynet's `abort`).
pub fn abort() {
    let _ = command("ABORT", "");
    runtime::mark_exited();
}

/// Launches a service directly (skynet's `skynet.launch`): returns once its init ran.
///
/// # Errors
/// `FAILED` when the module is missing or its init failed; `LIMIT` when no slot is free.
pub fn launch(module: &str, args: &str) -> Result<Handle> {
    let param = if args.is_empty() {
        module.to_string()
    } else {
        format!("{module} {args}")
    };
    parse_handle(&command("LAUNCH", &param)?)
}

/// Launches a service through `.launcher` (skynet's `newservice`), so it appears in the
/// launcher's list and the console.
///
/// # Errors
/// [`Error::CallFailed`] when the launch failed.
pub async fn newservice(module: &str, args: &[&str]) -> Result<Handle> {
    let mut request = vec![Value::from("LAUNCH"), Value::from(module)];
    request.extend(args.iter().map(|a| Value::from(*a)));
    let reply = call_values(".launcher", &request).await?;
    match reply.first().and_then(Value::as_integer) {
        Some(h) => Ok(Handle(h as u32)),
        None => Err(Error::Other(format!("launcher replied {reply:?}"))),
    }
}

/// Reads a config/env key.
pub fn getenv(key: &str) -> Option<String> {
    command("GETENV", key).ok()
}

/// Sets a new env key (a key can be set only once, as in skynet).
///
/// # Errors
/// `NAME_TAKEN` if the key exists.
pub fn setenv(key: &str, value: &str) -> Result<()> {
    command("SETENV", &format!("{key} {value}")).map(|_| ())
}

/// Reads a statistic of this service: `mqlen`, `endless`, `cpu`, `time`, `message`.
///
/// # Errors
/// `INVALID_ARGUMENT` for an unknown name.
pub fn stat(what: &str) -> Result<String> {
    command("STAT", what)
}

/// Writes a line to the node's log.
pub fn log(text: &str) {
    sys::log(text.as_bytes());
}

/// Formats and logs a line: `log!("user {} joined", id)`.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::log(&::std::format!($($arg)*))
    };
}

/// Maps a raw ABI return code to a result (for guests calling host functions directly).
///
/// # Errors
/// [`Error::Host`] for a negative code.
pub fn check(op: &'static str, rc: i32) -> Result<i32> {
    if rc < 0 {
        Err(Error::host(op, rc))
    } else {
        Ok(rc)
    }
}

/// True for the error code of a dead or unknown destination.
pub fn is_dead(code: i32) -> bool {
    code == code::INVALID_ADDRESS || code == code::UNKNOWN_NAME
}
