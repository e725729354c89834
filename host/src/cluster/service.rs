//! `clusterd`: the native service through which Lua and Rust services use the cluster
//! (skynet's `clusterd`; `skynet.cluster` and `sky::cluster` talk to it over `"lua"`). It
//! is started on first use (LAUNCH `clusterd`, once `.clusterd` is not found) and binds
//! `.clusterd`.
//!
//! Commands (`skynet.pack`ed): `req node address msg [timeout_cs [trace_tag]]` (a call:
//! the reply, or PTYPE_ERROR with the reason, reaches the caller straight from the
//! network), `push node address msg`, `listen host port`, `listen_node name` (where the
//! node table puts `name`), `reload [table]`, `register name [address]`,
//! `unregister name`, `proxy node name`, `nodes`. Answers from local services to remote
//! requests (PTYPE_RESPONSE/PTYPE_ERROR with the sessions this service used) are written
//! back to the requesting node.
//!
//! `req` and `push` rarely reach this service's queue: the host serves them on the sender's
//! thread as they are sent ([`serve_directly`], called from the message path), which is
//! what this service would do with them, one hop sooner.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use skywasm_abi::{ptype, Handle};
use skywasm_pack::{Table, Value};

use super::{Address, Cluster, NodeAddress, NodeTable, Outgoing};
use crate::mq::Message;
use crate::service::{Behavior, Fault, ServiceCore};
use crate::socket::outbox::Hold;

/// The `clusterd` service.
pub struct Clusterd {
    core: ServiceCore,
    cluster: Arc<Cluster>,
    /// `node.name` → the proxy service made for it.
    proxies: HashMap<String, Handle>,
    /// Writes held back while more messages wait in this service's queue.
    hold: Hold,
}

impl Clusterd {
    /// Starts `clusterd`: binds `.clusterd` and loads the `cluster` file if the config
    /// names one.
    ///
    /// # Errors
    /// `.clusterd` is taken (one runs already).
    pub fn start(core: ServiceCore, _args: &str) -> Result<Box<dyn Behavior>, String> {
        core.node
            .router
            .bind_name(".clusterd", core.handle())
            .map_err(|e| format!("clusterd runs already ({e})"))?;
        let cluster = core.node.cluster.clone();
        cluster.attach(core.handle());
        core.node
            .router
            .attach_gateway(core.handle(), Arc::new(DirectRequests(cluster.clone())));
        if let Some(name) = &cluster.config().tenant {
            let tenant = core
                .node
                .tenants
                .get(name)
                .ok_or_else(|| format!("cluster_tenant: no tenant `{name}`"))?
                .clone();
            let peers = cluster.clone();
            let peer = core
                .node
                .launch_with_tenant(&tenant, "clusterpeer", "", move |core| {
                    Ok(Box::new(ClusterPeer {
                        core,
                        cluster: peers,
                    }) as Box<dyn Behavior>)
                })
                .map_err(|e| format!("cluster_tenant `{name}`: {e}"))?;
            cluster.set_peer(peer);
        }
        if cluster.config().file.is_some() && cluster.table().nodes.is_empty() {
            if let Err(why) = cluster.reload(None) {
                core.log(&format!("cluster: the node table was not loaded: {why}"));
            }
        }
        Ok(Box::new(Clusterd {
            core,
            cluster,
            proxies: HashMap::new(),
            hold: Hold::default(),
        }))
    }

    /// Runs one command; the values to answer with.
    fn command(
        &mut self,
        message: &Message,
        values: &[Value],
    ) -> Result<Option<Vec<Value>>, String> {
        let text = |i: usize| values.get(i).and_then(Value::as_str);
        let name = |i: usize, what: &str| text(i).ok_or_else(|| format!("{what} expected"));
        let command = name(0, "a command")?;
        match command {
            "req" | "push" => {
                let (node, request) = outgoing(message, values)?;
                if let Some((source, session)) = request.reply_to {
                    // Answered from the network, not by this service's code.
                    self.core.disown(source, session);
                }
                self.cluster.request(node, request);
                Ok(None)
            }
            "listen" => {
                let host = text(1).unwrap_or("127.0.0.1");
                let port = values.get(2).and_then(Value::as_integer).unwrap_or(0);
                let port = u16::try_from(port).map_err(|_| format!("bad port {port}"))?;
                self.listen(host, port)
            }
            // Where the node table puts `name` (`cluster.open(nodename)`).
            "listen_node" => {
                let name = name(1, "a node name")?;
                let at = match self.cluster.table().nodes.get(name) {
                    Some(NodeAddress::At(at)) => at.clone(),
                    Some(NodeAddress::Down) => {
                        return Err(format!("node `{name}` is down in the node table"))
                    }
                    None => return Err(format!("no node `{name}` in the node table")),
                };
                let (host, port) = at
                    .rsplit_once(':')
                    .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
                    .ok_or_else(|| format!("node `{name}` has no address ({at})"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                self.listen(host, port)
            }
            "reload" => {
                let table = match values.get(1) {
                    Some(Value::Table(table)) => Some(table_of(table)?),
                    _ => None,
                };
                self.cluster.reload(table)?;
                Ok(Some(vec![Value::Boolean(true)]))
            }
            "register" => {
                let service = match values.get(2) {
                    Some(Value::Integer(h)) => Handle(*h as u32),
                    _ => message.source,
                };
                self.cluster.register(name(1, "a name")?, service);
                Ok(Some(vec![]))
            }
            "unregister" => {
                self.cluster.unregister(name(1, "a name")?);
                Ok(Some(vec![]))
            }
            "proxy" => {
                let node = name(1, "a node name")?;
                let target = match values.get(2) {
                    Some(Value::Integer(h)) => h.to_string(),
                    Some(Value::String(_)) => name(2, "a name")?.to_string(),
                    _ => return Err("a service name or address expected".into()),
                };
                Ok(Some(vec![Value::Integer(i64::from(
                    self.proxy(node, &target)?.0,
                ))]))
            }
            "nodes" => Ok(Some(vec![self.nodes()])),
            other => Err(format!("unknown cluster command `{other}`")),
        }
    }

    /// Listens for other nodes; the bound address.
    fn listen(&self, host: &str, port: u16) -> Result<Option<Vec<Value>>, String> {
        let bound = self.cluster.open(host, port)?;
        self.core.log(&format!("cluster: listening on {bound}"));
        Ok(Some(vec![Value::from(bound)]))
    }

    /// The proxy service of `node`'s `target`, started on first use.
    fn proxy(&mut self, node: &str, target: &str) -> Result<Handle, String> {
        let key = format!("{node}.{target}");
        if let Some(proxy) = self.proxies.get(&key) {
            if self.core.node.router.service(*proxy).is_some() {
                return Ok(*proxy);
            }
        }
        let proxy = self
            .core
            .node
            .launch("snlua", &format!("clusterproxy {node} {target}"))
            .map_err(|e| format!("cannot start a proxy for {key}: {e}"))?;
        self.proxies.insert(key, proxy);
        Ok(proxy)
    }

    /// Every node with its state, for the console: `{name = "address state in_flight sent received"}`.
    fn nodes(&self) -> Value {
        let mut table = Table::new();
        for status in self.cluster.status() {
            table.insert(
                Value::from(status.name.as_str()),
                Value::from(format!(
                    "{} {} in-flight {} sent {} received {}",
                    status.address, status.state, status.in_flight, status.sent, status.received
                )),
            );
        }
        for (i, at) in self.cluster.listening().into_iter().enumerate() {
            table.insert(
                Value::from(format!("(listening {})", i + 1)),
                Value::from(at),
            );
        }
        Value::Table(table)
    }
}

/// The request a `req` or `push` command (`values`, from `message`) asks for, and the node
/// it goes to.
fn outgoing<'a>(message: &Message, values: &'a [Value]) -> Result<(&'a str, Outgoing), String> {
    let text = |i: usize| values.get(i).and_then(Value::as_str);
    let node = text(1).ok_or("a node name expected")?;
    let address = address(values.get(2))?;
    let msg = match values.get(3) {
        Some(Value::String(bytes)) => bytes.to_vec(),
        _ => return Err("a packed message expected".into()),
    };
    let reply_to = (text(0) == Some("req") && message.session != 0)
        .then_some((message.source, message.session));
    let timeout = values
        .get(4)
        .and_then(Value::as_integer)
        .filter(|cs| *cs > 0)
        .map(|cs| Duration::from_millis(cs as u64 * 10));
    let trace = text(5).map(str::to_string);
    let request = Outgoing {
        address,
        msg,
        reply_to,
        timeout,
        trace,
    };
    Ok((node, request))
}

/// `clusterd`'s gateway: a Lua `req` or `push` sent to it is served on the sender's
/// thread, without the trip through `clusterd`'s queue, and its writes go out with the rest
/// of the sender's message.
struct DirectRequests(Arc<Cluster>);

impl crate::router::Gateway for DirectRequests {
    fn serve(&self, message: Message) -> Result<(), Message> {
        if message.ptype != skywasm_abi::ptype::LUA as u8 {
            return Err(message);
        }
        serve_directly(&self.0, message)
    }
}

/// Serves a `req` or `push` sent to `clusterd` on the sender's thread, without the trip
/// through `clusterd`'s queue: what `clusterd` would do with it, sooner. Anything else, and
/// a malformed request (whose error `clusterd` answers), is handed back.
fn serve_directly(cluster: &Cluster, message: Message) -> Result<(), Message> {
    let Ok(values) = skywasm_pack::unpack(&message.data) else {
        return Err(message);
    };
    if !matches!(values.first().and_then(Value::as_str), Some("req" | "push")) {
        return Err(message);
    }
    match outgoing(&message, &values) {
        Ok((node, request)) => {
            cluster.request(node, request);
            Ok(())
        }
        Err(_) => Err(message),
    }
}

/// A cluster address from a Lua value: a handle, or a name.
fn address(value: Option<&Value>) -> Result<Address, String> {
    match value {
        Some(Value::Integer(h)) => u32::try_from(*h)
            .map(Address::Handle)
            .map_err(|_| format!("bad address {h}")),
        Some(v) => match v.as_str() {
            Some(name) => Ok(Address::Name(name.to_string())),
            None => Err("an address (a handle or a name) expected".into()),
        },
        None => Err("an address expected".into()),
    }
}

/// A node table from a Lua table (`cluster.reload{...}`).
fn table_of(table: &Table) -> Result<NodeTable, String> {
    let mut entries = Vec::new();
    for (key, value) in &table.hash {
        let Some(name) = key.as_str() else {
            return Err("node names must be strings".into());
        };
        let value = match value {
            Value::Boolean(b) => b.to_string(),
            other => other
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("node `{name}`: an address or false expected"))?,
        };
        entries.push((name.to_string(), value));
    }
    NodeTable::from_entries(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(String::from)
}

impl Drop for Clusterd {
    fn drop(&mut self) {
        self.cluster.detach(self.core.handle());
        self.core.node.router.detach_gateway(self.core.handle());
    }
}

impl Behavior for Clusterd {
    fn core(&mut self) -> &mut ServiceCore {
        &mut self.core
    }

    fn dispatch(&mut self, message: Message) -> Result<(), Fault> {
        // With more messages behind this one, their frames can share one system call.
        if self.core.service.queue_len() != 0 {
            let mut hold = std::mem::take(&mut self.hold);
            hold.hold(|| self.serve(&message));
            self.hold = hold;
        } else {
            self.serve(&message);
            self.hold.release();
        }
        Ok(())
    }
}

/// Passes a local service's answer to a remote request on to the node that asked; false
/// when `message` is not such an answer.
fn answer_remote(cluster: &Cluster, message: &Message) -> bool {
    let result = match u32::from(message.ptype) {
        _ if message.session == 0 => return false,
        ptype::RESPONSE => Ok(&message.data[..]),
        ptype::ERROR if message.data.is_empty() => Err(&b"call failed"[..]),
        ptype::ERROR => Err(&message.data[..]),
        _ => return false,
    };
    cluster.answer(message.session, result);
    true
}

/// The service requests from other nodes come from when `cluster_tenant` names a tenant:
/// it lives in that tenant, so the requests have that tenant's rights (which services
/// they reach, what `.launcher` launches for them), and it passes the answers on.
pub struct ClusterPeer {
    core: ServiceCore,
    cluster: Arc<Cluster>,
}

impl Behavior for ClusterPeer {
    fn core(&mut self) -> &mut ServiceCore {
        &mut self.core
    }

    fn dispatch(&mut self, message: Message) -> Result<(), Fault> {
        answer_remote(&self.cluster, &message);
        Ok(())
    }
}

impl Clusterd {
    /// Serves one message: an answer to a remote request, or a command.
    fn serve(&mut self, message: &Message) {
        if answer_remote(&self.cluster, message) || u32::from(message.ptype) != ptype::LUA {
            return;
        }
        let outcome = skywasm_pack::unpack(&message.data)
            .map_err(|e| format!("bad request: {e}"))
            .and_then(|values| self.command(message, &values));
        if let (Err(why), 0) = (&outcome, message.session) {
            self.core.log(&format!("cluster: {why}"));
        }
        self.core.answer_lua(message, &outcome);
    }
}
