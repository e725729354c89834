//! The cluster from Rust (docs/cluster.md): call and push services of other nodes in
//! skynet's cluster protocol, through the node's `clusterd` (started on first use). The same
//! operations as Lua's `skynet.cluster`.
//!
//! ```no_run
//! use skywasm_guest::{self as sky, cluster, Value};
//!
//! async fn ask_the_db() -> sky::Result<Vec<Value>> {
//!     cluster::reload(&[("db", Some("127.0.0.1:2528"))]).await?;
//!     cluster::call("db", "@sdb", &[Value::from("GET"), Value::from("key")]).await
//! }
//! ```
//!
//! A failed call is [`Error::CallFailed`] whose reason says why: `network: ...`, `remote
//! error from node ...: <the remote's reason>`, `timeout: ...`, `node ... is down`,
//! `unknown node ...`.

use skywasm_pack::{Table, Value};

use crate::error::{Error, Result};
use crate::Handle;

/// A service of another node: its handle there, or a name (`@name` it registered, or a
/// `.local` name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote<'a> {
    /// A handle of that node.
    Handle(Handle),
    /// A name: `@name` or `.name`.
    Name(&'a str),
}

impl<'a> From<&'a str> for Remote<'a> {
    fn from(name: &'a str) -> Self {
        Remote::Name(name)
    }
}

impl From<Handle> for Remote<'_> {
    fn from(handle: Handle) -> Self {
        Remote::Handle(handle)
    }
}

impl Remote<'_> {
    fn value(&self) -> Value {
        match self {
            Remote::Handle(h) => Value::Integer(i64::from(h.0)),
            Remote::Name(name) => Value::from(*name),
        }
    }
}

/// The node's `clusterd` service.
fn clusterd() -> Result<Handle> {
    if let Some(handle) = crate::query(".clusterd") {
        return Ok(handle);
    }
    match crate::launch("clusterd", "") {
        Ok(handle) => Ok(handle),
        // Another service started it meanwhile.
        Err(e) => crate::query(".clusterd").ok_or(e),
    }
}

async fn ask(values: &[Value]) -> Result<Vec<Value>> {
    crate::call_values(clusterd()?, values).await
}

/// Calls `address` on `node` with `skynet.pack(values...)`; its reply, unpacked.
///
/// # Errors
/// [`Error::CallFailed`] with the reason; [`Error::Codec`].
pub async fn call(
    node: &str,
    address: impl Into<Remote<'_>>,
    values: &[Value],
) -> Result<Vec<Value>> {
    call_with(node, address.into(), values, None).await
}

/// [`call`] with a time limit in centiseconds (past it: `timeout: ...`; a late reply is
/// dropped).
///
/// # Errors
/// As [`call`].
pub async fn call_timeout(
    centiseconds: u32,
    node: &str,
    address: impl Into<Remote<'_>>,
    values: &[Value],
) -> Result<Vec<Value>> {
    call_with(node, address.into(), values, Some(centiseconds)).await
}

async fn call_with(
    node: &str,
    address: Remote<'_>,
    values: &[Value],
    timeout: Option<u32>,
) -> Result<Vec<Value>> {
    let msg = skywasm_pack::pack(values)?;
    let mut request = vec![
        Value::from("req"),
        Value::from(node),
        address.value(),
        Value::String(msg),
    ];
    if let Some(centiseconds) = timeout {
        request.push(Value::Integer(i64::from(centiseconds)));
    }
    let body = skywasm_pack::pack(&request)?;
    let reply = crate::call(clusterd()?, crate::ptype::LUA, &body).await?;
    Ok(skywasm_pack::unpack(&reply)?)
}

/// Pushes `skynet.pack(values...)` to `address` on `node` (no reply); pushes before the
/// connection exists are queued in order.
///
/// # Errors
/// [`Error::Host`] when `clusterd` cannot be reached; [`Error::Codec`].
pub fn send<'a>(node: &str, address: impl Into<Remote<'a>>, values: &[Value]) -> Result<()> {
    let msg = skywasm_pack::pack(values)?;
    crate::send_values(
        clusterd()?,
        &[
            Value::from("push"),
            Value::from(node),
            address.into().value(),
            Value::String(msg),
        ],
    )
}

/// Listens for other nodes on `host:port` (port 0: any free one); the bound `ip:port`.
///
/// # Errors
/// [`Error::CallFailed`] when the address cannot be bound.
pub async fn open(host: &str, port: u16) -> Result<String> {
    let reply = ask(&[
        Value::from("listen"),
        Value::from(host),
        Value::Integer(i64::from(port)),
    ])
    .await?;
    reply
        .first()
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::Other(format!("listen answered {reply:?}")))
}

/// Merges nodes into the node table (as skynet's `cluster.reload{...}`): each node's
/// `host:port`, or `None` for a node marked down; nodes not named keep their address.
///
/// # Errors
/// [`Error::CallFailed`] for a bad address.
pub async fn reload(nodes: &[(&str, Option<&str>)]) -> Result<()> {
    let mut table = Table::new();
    for (name, address) in nodes {
        let value = match address {
            Some(at) => Value::from(*at),
            None => Value::Boolean(false),
        };
        table.insert(Value::from(*name), value);
    }
    ask(&[Value::from("reload"), Value::Table(table)])
        .await
        .map(|_| ())
}

/// Reads the config's `cluster` file again and merges it into the node table.
///
/// # Errors
/// [`Error::CallFailed`] when there is no file or it is bad.
pub async fn reload_file() -> Result<()> {
    ask(&[Value::from("reload")]).await.map(|_| ())
}

/// Publishes `service` to other nodes as `@name`.
///
/// # Errors
/// [`Error::CallFailed`].
pub async fn register(name: &str, service: Handle) -> Result<()> {
    ask(&[
        Value::from("register"),
        Value::from(name),
        Value::Integer(i64::from(service.0)),
    ])
    .await
    .map(|_| ())
}

/// Withdraws `@name`.
///
/// # Errors
/// [`Error::CallFailed`].
pub async fn unregister(name: &str) -> Result<()> {
    ask(&[Value::from("unregister"), Value::from(name)])
        .await
        .map(|_| ())
}

/// The handle `node` registered as `@name`.
///
/// # Errors
/// [`Error::CallFailed`] (`name not found`).
pub async fn query(node: &str, name: &str) -> Result<Handle> {
    let reply = call(node, Remote::Handle(Handle::NONE), &[Value::from(name)]).await?;
    reply
        .first()
        .and_then(Value::as_integer)
        .map(|h| Handle(h as u32))
        .ok_or_else(|| Error::Other(format!("query answered {reply:?}")))
}

/// A local service forwarding every `"lua"` message to `address` on `node` (one per
/// target; skynet's `cluster.proxy`).
///
/// # Errors
/// [`Error::CallFailed`].
pub async fn proxy(node: &str, address: impl Into<Remote<'_>>) -> Result<Handle> {
    let reply = ask(&[
        Value::from("proxy"),
        Value::from(node),
        address.into().value(),
    ])
    .await?;
    reply
        .first()
        .and_then(Value::as_integer)
        .map(|h| Handle(h as u32))
        .ok_or_else(|| Error::Other(format!("proxy answered {reply:?}")))
}
