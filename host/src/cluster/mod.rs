//! The cluster (skynet's `clusterd`, `clustersender` and `clusteragent`, as native code):
//! nodes calling each other's services over TCP in skynet's wire format (docs/cluster.md).
//!
//! * [`frame`] — the wire format, byte for byte, decoded check-then-parse (the
//!   `skywasm-cluster-wire` crate, fuzzed on its own).
//! * `sender` — one task per remote node: the outgoing connection, its calls in flight,
//!   their timeouts, reconnection with backoff.
//! * `agent` — the listeners, and one task per incoming connection: requests delivered to
//!   local services as `"lua"` messages, their answers written back.
//! * `service` — `clusterd`, the native service through which Lua and Rust services use the
//!   cluster (`skynet.cluster`, `sky::cluster`).
//! * writes go through `socket::outbox` (from any thread, held back and written together)
//!
//! The gateway runs on the socket server's tokio thread. Local services never wait on the
//! network: a call's reply (or its failure: the network, the remote service, a timeout, an
//! unknown or down node) reaches the caller as a message. Every failure names its cause;
//! skynet's `call failed` stays the prefix Lua sees.

pub use skywasm_cluster_wire as frame;

mod agent;
mod sender;
mod service;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use rustc_hash::FxHashMap;
use skywasm_abi::{ptype, Handle};
use tokio::sync::mpsc;

use crate::mq::Message;
use crate::router::Refusal;
use crate::service::Service;
use crate::shared::NodeShared;
use crate::socket::busy::BusyPoll;
use crate::sync::{lock, read, write};

pub use frame::Address;
pub use service::Clusterd;

/// The cluster's settings (config keys, docs/config.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The node table file (`cluster`): Lua, `name = "host:port"` or `name = false`.
    pub file: Option<PathBuf>,
    /// TCP keepalive idle time of cluster connections (`cluster_keepalive`, seconds; 0: off).
    pub keepalive: Duration,
    /// Default time limit of a `cluster.call` (`cluster_timeout`, ms; 0: none, as skynet).
    pub call_timeout: Option<Duration>,
    /// Largest request or reply a peer may send (`max_message_size`).
    pub max_payload: usize,
    /// The secret skywasm nodes prove to each other before talking (`cluster_secret`);
    /// none: skynet's protocol as it is, without authentication.
    pub secret: Option<Secret>,
    /// How long the network thread keeps polling after cluster traffic before it sleeps
    /// (`cluster_busy_poll`, µs; 0: off).
    pub busy_poll: Duration,
    /// Incoming connections open at once (`cluster_max_connections`); more are closed at
    /// once.
    pub max_connections: usize,
    /// Requests of one incoming connection awaiting their answers (`cluster_max_pending`);
    /// more are answered with an error at once.
    pub max_pending: usize,
    /// The tenant whose rights requests from other nodes run with (`cluster_tenant`); none:
    /// the node's own (skynet's behaviour).
    pub tenant: Option<String>,
}

/// Default `cluster_max_connections`.
const DEFAULT_MAX_CONNECTIONS: u64 = 1024;
/// Default `cluster_max_pending`.
const DEFAULT_MAX_PENDING: u64 = 10_000;
/// Trace lines (`cluster.trace`) logged per second at most; the rest are counted.
const TRACE_LINES_PER_SECOND: u32 = 100;

/// The default `cluster_busy_poll` (µs): covers a round trip on one machine or a LAN.
const DEFAULT_BUSY_POLL_US: u64 = 100;

pub use crate::socket::auth::Secret;

impl ClusterConfig {
    /// The settings a node's env holds, with their defaults.
    pub fn from_env(env: &BTreeMap<String, String>, max_payload: usize) -> ClusterConfig {
        let number = |key: &str, default: u64| {
            env.get(key)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
        };
        let timeout = number("cluster_timeout", 0);
        ClusterConfig {
            file: env.get("cluster").map(PathBuf::from),
            keepalive: Duration::from_secs(number("cluster_keepalive", 5)),
            call_timeout: (timeout > 0).then(|| Duration::from_millis(timeout)),
            max_payload,
            secret: env
                .get("cluster_secret")
                .filter(|s| !s.is_empty())
                .map(|s| Secret(s.as_bytes().to_vec())),
            busy_poll: Duration::from_micros(number("cluster_busy_poll", DEFAULT_BUSY_POLL_US)),
            max_connections: number("cluster_max_connections", DEFAULT_MAX_CONNECTIONS).max(1)
                as usize,
            max_pending: number("cluster_max_pending", DEFAULT_MAX_PENDING).max(1) as usize,
            tenant: env.get("cluster_tenant").filter(|t| !t.is_empty()).cloned(),
        }
    }
}

/// Where the node table says a node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAddress {
    /// `host:port`.
    At(String),
    /// Marked down (`name = false`): calls fail at once.
    Down,
}

/// A node table: names to addresses, and whether calls to unknown nodes fail at once. The
/// node's table is built by merging the tables it is given ([`NodeTable::merge`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeTable {
    /// The nodes.
    pub nodes: BTreeMap<String, NodeAddress>,
    /// `__nowaiting`, when given: `true` makes a call to a node not in the table fail at
    /// once instead of waiting for the table to name it.
    pub nowaiting: Option<bool>,
}

/// Why the cluster could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// A node table entry that is neither `"host:port"` nor `false`.
    #[error("node `{node}`: `{value}` is neither \"host:port\" nor false")]
    BadEntry {
        /// The node's name.
        node: String,
        /// What the table gave for it.
        value: String,
    },
    /// A node table file that cannot be read or evaluated, or holds a bad entry.
    #[error("{path}: {why}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// `reload()` with no table, and the config names no `cluster` file.
    #[error("no `cluster` file in the config")]
    NoFile,
    /// The node is stopping.
    #[error("the node is stopping")]
    Stopping,
    /// The network thread is not available.
    #[error("{0}")]
    Network(String),
    /// An address to listen on that cannot be used or bound.
    #[error("{0}")]
    Listen(String),
}

/// For `clusterd`, whose answers to Lua callers are text.
impl From<ClusterError> for String {
    fn from(error: ClusterError) -> String {
        error.to_string()
    }
}

impl NodeTable {
    /// Reads a table from env-style entries (`name` → `"host:port"` or `"false"`;
    /// `__nowaiting` → `"true"`).
    ///
    /// # Errors
    /// [`ClusterError::BadEntry`] naming the entry that is neither an address nor `false`.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<NodeTable, ClusterError> {
        let mut table = NodeTable::default();
        for (name, value) in entries {
            if name == "__nowaiting" {
                table.nowaiting = Some(value == "true");
                continue;
            }
            let address = match value {
                "false" => NodeAddress::Down,
                at if at
                    .rsplit_once(':')
                    .is_some_and(|(_, port)| port.parse::<u16>().is_ok()) =>
                {
                    NodeAddress::At(at.to_string())
                }
                other => {
                    return Err(ClusterError::BadEntry {
                        node: name.to_string(),
                        value: other.to_string(),
                    })
                }
            };
            table.nodes.insert(name.to_string(), address);
        }
        Ok(table)
    }

    /// Merges `update` in, as skynet's clusterd does on `reload`: each node it names takes
    /// its new address (or `false`: down), an option it gives is set, and every other
    /// node keeps its address.
    pub fn merge(&mut self, update: NodeTable) {
        self.nodes.extend(update.nodes);
        if update.nowaiting.is_some() {
            self.nowaiting = update.nowaiting;
        }
    }

    /// True when a call to a node not in the table fails at once (`__nowaiting = true`).
    pub fn fails_unknown(&self) -> bool {
        self.nowaiting == Some(true)
    }

    /// Reads a node table file (Lua, skynet's format).
    ///
    /// # Errors
    /// [`ClusterError::BadFile`]: the file cannot be read or evaluated, or holds a bad
    /// entry.
    pub fn load(path: &Path) -> Result<NodeTable, ClusterError> {
        let env = crate::config::evaluate_file(path, &|name| std::env::var(name).ok())
            .map_err(|e| ClusterError::BadFile {
                path: path.display().to_string(),
                why: e.to_string(),
            })?
            .env;
        Self::from_entries(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))).map_err(|e| {
            ClusterError::BadFile {
                path: path.display().to_string(),
                why: e.to_string(),
            }
        })
    }
}

/// A request for a remote node, on its way to the node's sender.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub address: Address,
    pub msg: Vec<u8>,
    /// Who gets the reply, and with which session; `None` for a push.
    pub reply_to: Option<(Handle, i32)>,
    pub timeout: Option<Duration>,
    /// The caller's trace tag (`skynet.trace`): sent ahead of the request, as skynet does.
    pub trace: Option<String>,
}

/// What a node's connection looks like, for the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's name.
    pub name: String,
    /// Its address in the table (or `down`, or `unknown` for a node only waited for).
    pub address: String,
    /// `connected`, `connecting`, `idle` or `failed: why`.
    pub state: String,
    /// Calls waiting for their replies.
    pub in_flight: usize,
    /// Bytes written and read on the connection.
    pub sent: u64,
    /// Bytes read.
    pub received: u64,
}

/// The running sender of one remote node.
struct SenderHandle {
    inbox: mpsc::UnboundedSender<Outgoing>,
    status: Arc<sender::Status>,
    /// The live connection, which requests take directly (none while there is none).
    link: Arc<Mutex<Option<Arc<sender::Link>>>>,
}

/// A request a remote node made, delivered to a local service, waiting for its answer.
struct Incoming {
    /// The connection the request came on, where the answer goes.
    inbound: Arc<Inbound>,
    /// The remote caller's session.
    session: u32,
    /// Its `cluster_serve` span, closed with its answer.
    _span: tracing::Span,
}

/// Makes the trace a `skynet.trace` tag stands for the parent of `span` (and records the
/// tag on it): every node derives the same trace id from the tag as its coroutine made it
/// — without the `(<node>-<node>-<session>)` prefixes each cluster hop adds — so the spans
/// of every call made under one tag, on every node they cross, form one trace in a
/// collector. Without the OTLP export this only records the tag.
pub(crate) fn follow_trace(span: &tracing::Span, tag: &[u8]) {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use sha2::Digest;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    span.record("trace", String::from_utf8_lossy(tag).as_ref());
    let digest = sha2::Sha256::digest(base_tag(tag));
    let mut trace = [0u8; 16];
    let mut parent = [0u8; 8];
    trace.copy_from_slice(&digest[..16]);
    parent.copy_from_slice(&digest[16..24]);
    let context = SpanContext::new(
        TraceId::from_bytes(trace),
        SpanId::from_bytes(parent),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(context));
}

/// A trace tag without the `(...)` groups cluster hops put in front of it.
fn base_tag(mut tag: &[u8]) -> &[u8] {
    while tag.first() == Some(&b'(') {
        match tag.iter().position(|b| *b == b')') {
            Some(end) => tag = &tag[end + 1..],
            None => break,
        }
    }
    tag
}

/// An incoming connection as the requests it delivered see it: where their answers go, and
/// how many of them await one (against `cluster_max_pending`).
pub(crate) struct Inbound {
    /// The connection's writer.
    pub(crate) replies: Arc<crate::socket::outbox::Outbox>,
    awaiting: std::sync::atomic::AtomicUsize,
}

impl Inbound {
    /// The requests of a connection that writes its answers to `replies`.
    pub(crate) fn new(replies: Arc<crate::socket::outbox::Outbox>) -> Arc<Inbound> {
        Arc::new(Inbound {
            replies,
            awaiting: std::sync::atomic::AtomicUsize::new(0),
        })
    }
}

/// What became of a request from another node.
pub(crate) enum Delivered {
    /// In the target's mailbox; with the target when its mailbox now holds more than its
    /// backlog (`socket_backlog`): read nothing more from the connection until it drains.
    Queued(Option<Arc<Service>>),
    /// The target's mailbox is full: deliver the request again once it has drained.
    Full(Arc<Service>),
    /// Refused, for this reason (the remote caller gets it).
    Failed(String),
}

/// The cluster gateway of one node.
pub struct Cluster {
    node: Weak<NodeShared>,
    config: ClusterConfig,
    /// The node table (reloaded with `cluster.reload`).
    table: RwLock<NodeTable>,
    /// Senders by node name, started on first use.
    senders: Mutex<HashMap<String, SenderHandle>>,
    /// Calls and pushes to nodes the table does not name yet (skynet waits for them).
    waiting: Mutex<HashMap<String, Vec<Outgoing>>>,
    /// `@name` → local service (`cluster.register`).
    registry: RwLock<HashMap<String, Handle>>,
    /// Remote requests being served locally, by the session `clusterd` used for them.
    incoming: Mutex<FxHashMap<i32, Incoming>>,
    next_incoming: AtomicI32,
    /// The `clusterd` service: the source of remote requests delivered locally.
    service: AtomicU32,
    /// Listening sockets' addresses, for the console.
    listening: Mutex<Vec<String>>,
    /// The tokio runtime (the socket server's), once started.
    runtime: Mutex<Option<tokio::runtime::Handle>>,
    /// The network thread's polling window after cluster traffic.
    busy: Arc<BusyPoll>,
    /// Incoming connections open now, against `cluster_max_connections`.
    connections: std::sync::atomic::AtomicUsize,
    /// The service whose tenant's rights requests from other nodes run with
    /// (`cluster_tenant`); none: `clusterd`'s, the node's.
    peer: AtomicU32,
    /// Trace lines allowed now, and those dropped since the last one logged.
    trace_budget: crate::tenant::TokenBucket,
    traces_dropped: std::sync::atomic::AtomicU64,
}

impl Cluster {
    /// A gateway for `node`; nothing runs until it is used.
    pub fn new(node: Weak<NodeShared>, config: ClusterConfig, busy: Arc<BusyPoll>) -> Cluster {
        Cluster {
            node,
            table: RwLock::new(NodeTable::default()),
            senders: Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            registry: RwLock::new(HashMap::new()),
            incoming: Mutex::new(FxHashMap::default()),
            next_incoming: AtomicI32::new(0),
            service: AtomicU32::new(0),
            listening: Mutex::new(Vec::new()),
            runtime: Mutex::new(None),
            busy,
            connections: std::sync::atomic::AtomicUsize::new(0),
            peer: AtomicU32::new(0),
            trace_budget: crate::tenant::TokenBucket::new(TRACE_LINES_PER_SECOND),
            traces_dropped: std::sync::atomic::AtomicU64::new(0),
            config,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    fn runtime(&self) -> Result<tokio::runtime::Handle, ClusterError> {
        let mut runtime = lock(&self.runtime);
        if let Some(handle) = runtime.as_ref() {
            return Ok(handle.clone());
        }
        let node = self.node.upgrade().ok_or(ClusterError::Stopping)?;
        let handle = node
            .sockets
            .runtime()
            .map_err(|e| ClusterError::Network(e.to_string()))?;
        *runtime = Some(handle.clone());
        Ok(handle)
    }

    /// Merges `table`, or (`None`) the `cluster` file's, into the node table, as skynet's
    /// clusterd does ([`NodeTable::merge`]: nodes not named keep their address). A node
    /// whose address changed (or that went down) has its connection closed: its calls in
    /// flight fail, and the next call connects to the new address. Calls waiting for a
    /// node the table now names are sent on; with `__nowaiting`, the rest fail.
    ///
    /// # Errors
    /// The file is missing or bad; the table is then unchanged.
    pub fn reload(&self, table: Option<NodeTable>) -> Result<(), ClusterError> {
        let update = match table {
            Some(table) => table,
            None => match &self.config.file {
                Some(path) => NodeTable::load(path)?,
                None => return Err(ClusterError::NoFile),
            },
        };
        let (old, table) = {
            let mut current = write(&self.table);
            let old = current.clone();
            current.merge(update);
            (old, current.clone())
        };
        {
            let mut senders = lock(&self.senders);
            senders.retain(|name, _| old.nodes.get(name) == table.nodes.get(name));
        }
        let waiting: Vec<(String, Vec<Outgoing>)> = lock(&self.waiting).drain().collect();
        for (name, requests) in waiting {
            for request in requests {
                self.request(&name, request);
            }
        }
        Ok(())
    }

    /// The node table now.
    pub fn table(&self) -> NodeTable {
        read(&self.table).clone()
    }

    /// Sends a request to `node`'s service at `address`: a call when `reply_to` is given
    /// (the reply or the reason it failed comes back to it as PTYPE_RESPONSE or
    /// PTYPE_ERROR), else a push.
    pub(crate) fn request(&self, node: &str, request: Outgoing) {
        let address = read(&self.table).nodes.get(node).cloned();
        match address {
            Some(NodeAddress::At(_)) => self.to_sender(node, request),
            Some(NodeAddress::Down) => {
                self.fail(&request, &format!("node `{node}` is down"));
            }
            None if read(&self.table).fails_unknown() => {
                self.fail(&request, &format!("unknown node `{node}`"));
            }
            None => lock(&self.waiting)
                .entry(node.to_string())
                .or_default()
                .push(request),
        }
    }

    fn to_sender(&self, node: &str, mut request: Outgoing) {
        let mut senders = lock(&self.senders);
        if let Some(sender) = senders.get(node) {
            // Connected: straight to the socket from this thread.
            let link = lock(&sender.link).clone();
            if let Some(link) = link {
                match link.send(request) {
                    Ok(()) => return,
                    // The link is ending: its sender task reconnects.
                    Err(returned) => request = returned,
                }
            }
            match sender.inbox.send(request) {
                Ok(()) => return,
                // The sender ended (its node was reloaded away): start a new one below.
                Err(returned) => {
                    senders.remove(node);
                    drop(senders);
                    return self.to_sender(node, returned.0);
                }
            }
        }
        let runtime = match self.runtime() {
            Ok(runtime) => runtime,
            Err(why) => return self.fail(&request, &why.to_string()),
        };
        let (inbox, receiver) = mpsc::unbounded_channel();
        let status = Arc::new(sender::Status::default());
        let link = Arc::new(Mutex::new(None));
        let task = sender::Sender::new(
            self.node.clone(),
            node.to_string(),
            self.config.clone(),
            status.clone(),
            link.clone(),
            self.busy.clone(),
        );
        let (weak, name, published) = (self.node.clone(), node.to_string(), link.clone());
        runtime.spawn(async move {
            let what = format!("the connection to node `{name}`");
            if contain_task(&weak, &what, task.run(receiver)).await {
                // Its calls in flight fail now; the next request starts a new sender.
                if let Some(link) = lock(&published).take() {
                    link.close("the host panicked serving the connection");
                }
            }
        });
        let _ = inbox.send(request);
        senders.insert(
            node.to_string(),
            SenderHandle {
                inbox,
                status,
                link,
            },
        );
    }

    /// Answers a call that did not get through, naming `why`.
    fn fail(&self, request: &Outgoing, why: &str) {
        if let (Some(node), Some((caller, session))) = (self.node.upgrade(), request.reply_to) {
            fail_call(&node, caller, session, why);
        }
    }

    /// Publishes a local service as `@name` for remote nodes.
    pub fn register(&self, name: &str, handle: Handle) {
        write(&self.registry).insert(name.to_string(), handle);
    }

    /// Withdraws `@name`.
    pub fn unregister(&self, name: &str) {
        write(&self.registry).remove(name);
    }

    /// The service published as `@name`.
    pub fn registered(&self, name: &str) -> Option<Handle> {
        read(&self.registry).get(name).copied()
    }

    /// Listens for other nodes on `host:port` (port 0: any free one); the bound address.
    ///
    /// # Errors
    /// The address cannot be bound, or the socket server has stopped.
    pub fn open(self: &Arc<Self>, host: &str, port: u16) -> Result<String, ClusterError> {
        let runtime = self.runtime()?;
        let bound =
            agent::listen(self.clone(), &runtime, host, port).map_err(ClusterError::Listen)?;
        lock(&self.listening).push(bound.clone());
        Ok(bound)
    }

    /// Where this node listens.
    pub fn listening(&self) -> Vec<String> {
        lock(&self.listening).clone()
    }

    /// Every node known to the table or being waited for, with its connection's state.
    pub fn status(&self) -> Vec<NodeStatus> {
        let table = self.table();
        let senders = lock(&self.senders);
        let waiting = lock(&self.waiting);
        let mut names: Vec<String> = table.nodes.keys().cloned().collect();
        names.extend(
            waiting
                .keys()
                .filter(|n| !table.nodes.contains_key(*n))
                .cloned(),
        );
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let address = match table.nodes.get(&name) {
                    Some(NodeAddress::At(at)) => at.clone(),
                    Some(NodeAddress::Down) => "down".into(),
                    None => "unknown".into(),
                };
                let mut status = NodeStatus {
                    name: name.clone(),
                    address,
                    state: "idle".into(),
                    in_flight: waiting.get(&name).map_or(0, Vec::len),
                    sent: 0,
                    received: 0,
                };
                if let Some(sender) = senders.get(&name) {
                    sender.status.fill(&mut status);
                }
                status
            })
            .collect()
    }

    /// Each started sender's call latency histogram, by node name (for the metrics).
    pub(crate) fn latencies(
        &self,
    ) -> Vec<(String, prometheus_client::metrics::histogram::Histogram)> {
        lock(&self.senders)
            .iter()
            .map(|(name, sender)| (name.clone(), sender.status.latency.clone()))
            .collect()
    }

    /// Records the `clusterd` service that local deliveries come from.
    pub(crate) fn attach(&self, service: Handle) {
        self.service.store(service.0, Ordering::Release);
    }

    /// Forgets `service` as `clusterd` (it ended).
    pub(crate) fn detach(&self, service: Handle) {
        let _ = self.service.compare_exchange(
            service.0,
            Handle::NONE.0,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// The `clusterd` service, while it runs.
    pub fn service(&self) -> Option<Handle> {
        let service = Handle(self.service.load(Ordering::Acquire));
        (!service.is_none()).then_some(service)
    }

    /// Delivers a remote request to a local service, as a send of the service whose
    /// tenant's rights peers have (`cluster_tenant`, or `clusterd`'s): within that tenant's
    /// rules and the target's mailbox limits. Its answer goes back on `inbound`.
    pub(crate) fn deliver(
        &self,
        target: Handle,
        request: &frame::Request,
        inbound: &Arc<Inbound>,
    ) -> Delivered {
        let Some(node) = self.node.upgrade() else {
            return Delivered::Failed("the node is stopping".into());
        };
        let source = Handle(self.peer.load(Ordering::Acquire));
        let source = if source.is_none() {
            self.service()
        } else {
            Some(source)
        };
        let Some(source) = source.and_then(|h| node.router.service(h)) else {
            return Delivered::Failed("clusterd is not running".into());
        };
        let session = if request.push {
            0
        } else {
            if inbound.awaiting.load(Ordering::Relaxed) >= self.config.max_pending {
                return Delivered::Failed(format!(
                    "too many requests from this node await their answers (cluster_max_pending \
                     = {})",
                    self.config.max_pending
                ));
            }
            let session = self.new_incoming_session();
            inbound.awaiting.fetch_add(1, Ordering::Relaxed);
            let span = tracing::info_span!(
                target: "skywasm::cluster",
                "cluster_serve",
                service = %target,
                trace = tracing::field::Empty,
            );
            if let Some(tag) = &request.trace {
                follow_trace(&span, tag);
            }
            lock(&self.incoming).insert(
                session,
                Incoming {
                    inbound: inbound.clone(),
                    session: request.session,
                    _span: span,
                },
            );
            session
        };
        let message = Message {
            source: source.handle(),
            session,
            ptype: ptype::LUA as u8,
            data: request.msg.clone().into(),
        };
        let mut delivered_to = None;
        match node.push_from(&source, false, target, message, &mut delivered_to) {
            Ok(()) => {
                let backlogged = delivered_to.filter(|service| service.socket_backlog_over());
                Delivered::Queued(backlogged)
            }
            Err(refusal) => {
                if session != 0 && lock(&self.incoming).remove(&session).is_some() {
                    inbound.awaiting.fetch_sub(1, Ordering::Relaxed);
                }
                match refusal {
                    Refusal::Full(full) => Delivered::Full(full),
                    Refusal::Denied(_) | Refusal::Remote => Delivered::Failed(format!(
                        "send denied: {target} is not a service this node's peers may reach"
                    )),
                    Refusal::NoService => Delivered::Failed(format!("no service {target}")),
                }
            }
        }
    }

    /// Logs a request's trace tag (`cluster.trace`), at most [`TRACE_LINES_PER_SECOND`];
    /// the next line logged says how many were dropped.
    pub(crate) fn log_trace(&self, tag: &[u8], address: &frame::Address) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        if !self.trace_budget.take() {
            self.traces_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let dropped = self.traces_dropped.swap(0, Ordering::Relaxed);
        let dropped = if dropped > 0 {
            format!(" ({dropped} trace lines dropped before this one)")
        } else {
            String::new()
        };
        node.log(
            Handle::NONE,
            &format!(
                "cluster: trace {} -> {}{dropped}",
                crate::log::Shown(&String::from_utf8_lossy(tag)),
                crate::log::Shown(&format!("{address:?}"))
            ),
        );
    }

    /// Counts a new incoming connection; false (nothing counted) at
    /// `cluster_max_connections`.
    pub(crate) fn admit_connection(&self) -> bool {
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.config.max_connections).then_some(n + 1)
            })
            .is_ok()
    }

    /// Counts an incoming connection that ended.
    pub(crate) fn connection_ended(&self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }

    /// Makes requests from other nodes run with the rights of `service`'s tenant.
    pub(crate) fn set_peer(&self, service: Handle) {
        self.peer.store(service.0, Ordering::Release);
    }

    fn new_incoming_session(&self) -> i32 {
        loop {
            let session = self
                .next_incoming
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1);
            if session > 0 {
                return session;
            }
            self.next_incoming.store(0, Ordering::Relaxed);
        }
    }

    /// A local service answered the remote request `session` (`clusterd` calls this).
    pub(crate) fn answer(&self, session: i32, result: Result<&[u8], &[u8]>) {
        let Some(waiting) = lock(&self.incoming).remove(&session) else {
            return;
        };
        waiting.inbound.awaiting.fetch_sub(1, Ordering::Relaxed);
        let mut bytes = Vec::new();
        if frame::encode_response(waiting.session, result, &mut bytes).is_ok() {
            // From `clusterd`'s worker straight to the socket.
            waiting.inbound.replies.write(bytes);
        }
    }

    /// Forgets the requests a closed connection was waiting for (their answers are dropped).
    pub(crate) fn forget_connection(&self, inbound: &Arc<Inbound>) {
        lock(&self.incoming).retain(|_, waiting| !Arc::ptr_eq(&waiting.inbound, inbound));
    }

    fn node_shared(&self) -> Option<Arc<NodeShared>> {
        self.node.upgrade()
    }
}

/// Fails a local caller's call with PTYPE_ERROR carrying `why` (Lua raises `call failed: why`).
pub(crate) fn fail_call(node: &NodeShared, caller: Handle, session: i32, why: &str) {
    let source = node.cluster_service().unwrap_or(Handle::NONE);
    node.router
        .answer_error_saying(caller, source, session, why);
}

/// Runs a task of the cluster on the network thread. A host panic in it does not end it
/// silently: it is logged (to the node's log when there is a node) naming `what`, and when
/// it unwound through a lock, leaving shared state unknown, the node stops. True when the
/// task panicked (its caller then cleans up after it).
pub(crate) async fn contain_task(
    node: &Weak<NodeShared>,
    what: &str,
    task: impl std::future::Future<Output = ()>,
) -> bool {
    let Err(panic) = crate::sync::contained(task).await else {
        return false;
    };
    let unknown = crate::sync::take_poisoned();
    tracing::error!("cluster: the host panicked in {what}: {panic}");
    if let Some(node) = node.upgrade() {
        node.log(
            Handle::NONE,
            &format!("cluster: the host panicked in {what}: {panic}; it ended"),
        );
        if unknown {
            node.fail(&format!(
                "a host panic in {what} left shared state unknown ({panic})"
            ));
        }
    }
    true
}

#[cfg(test)]
mod sender_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_cluster_task_is_contained_and_reported() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let nobody = Weak::new();
        assert!(!runtime.block_on(contain_task(&nobody, "a calm task", async {})));
        let panicked = runtime.block_on(contain_task(&nobody, "a buggy task", async {
            panic!("a frame the host did not expect");
        }));
        assert!(panicked);
    }

    #[test]
    fn a_merged_table_keeps_the_nodes_and_options_the_update_does_not_name() {
        let mut table =
            NodeTable::from_entries([("db", "127.0.0.1:1"), ("game", "127.0.0.1:2")]).unwrap();
        assert_eq!(table.nowaiting, None);
        assert!(!table.fails_unknown());
        table.merge(NodeTable::from_entries([("game", "false"), ("new", "h:3")]).unwrap());
        table.merge(NodeTable::from_entries([("__nowaiting", "true")]).unwrap());
        assert_eq!(
            table.nodes.get("db"),
            Some(&NodeAddress::At("127.0.0.1:1".into())),
            "not named: kept"
        );
        assert_eq!(table.nodes.get("game"), Some(&NodeAddress::Down));
        assert_eq!(table.nodes.get("new"), Some(&NodeAddress::At("h:3".into())));
        assert!(table.fails_unknown());
        table.merge(NodeTable::from_entries([("db", "127.0.0.1:9")]).unwrap());
        assert!(table.fails_unknown(), "an option not given is kept");
        table.merge(NodeTable::from_entries([("__nowaiting", "false")]).unwrap());
        assert!(!table.fails_unknown());
        assert_eq!(table.nodes.len(), 3);
    }

    #[test]
    fn node_tables_read_addresses_down_nodes_and_nowaiting() {
        let table = NodeTable::from_entries([
            ("db", "127.0.0.1:2528"),
            ("game", "false"),
            ("__nowaiting", "true"),
            ("v6", "[::1]:9000"),
        ])
        .unwrap();
        assert_eq!(
            table.nodes.get("db"),
            Some(&NodeAddress::At("127.0.0.1:2528".into()))
        );
        assert_eq!(table.nodes.get("game"), Some(&NodeAddress::Down));
        assert_eq!(table.nowaiting, Some(true));
        assert!(table.nodes.contains_key("v6"));
        let err = NodeTable::from_entries([("db", "nowhere")]).unwrap_err();
        assert_eq!(
            err,
            ClusterError::BadEntry {
                node: "db".into(),
                value: "nowhere".into()
            }
        );
        assert!(err.to_string().contains("node `db`"), "{err}");
        assert!(NodeTable::from_entries([("db", "host:99999")]).is_err());
    }

    #[test]
    fn the_config_has_short_keepalive_and_no_call_timeout_by_default() {
        let config = ClusterConfig::from_env(&BTreeMap::new(), 1 << 20);
        assert_eq!(config.keepalive, Duration::from_secs(5));
        assert_eq!(config.call_timeout, None);
        assert_eq!(config.busy_poll, Duration::from_micros(100));
        let env: BTreeMap<String, String> = [
            ("cluster_timeout".to_string(), "250".to_string()),
            ("cluster".to_string(), "nodes.lua".to_string()),
            ("cluster_busy_poll".to_string(), "0".to_string()),
        ]
        .into();
        let config = ClusterConfig::from_env(&env, 1 << 20);
        assert_eq!(config.call_timeout, Some(Duration::from_millis(250)));
        assert_eq!(config.busy_poll, Duration::ZERO);
        assert_eq!(config.file, Some(PathBuf::from("nodes.lua")));
        let env: BTreeMap<String, String> =
            [("cluster_secret".to_string(), "hush".to_string())].into();
        let config = ClusterConfig::from_env(&env, 1);
        assert_eq!(config.secret, Some(Secret(b"hush".to_vec())));
        assert!(
            !format!("{config:?}").contains("hush"),
            "the secret is never shown"
        );
    }

    #[test]
    fn a_trace_tag_loses_the_prefixes_of_the_hops_it_crossed() {
        assert_eq!(base_tag(b":0000000a-1-2 login"), b":0000000a-1-2 login");
        assert_eq!(base_tag(b"(skywasm9-db-3):0000000a-1-2"), b":0000000a-1-2");
        assert_eq!(base_tag(b"(b-c-1)(a-b-7):0000000a-1-2"), b":0000000a-1-2");
        assert_eq!(base_tag(b"(unclosed"), b"(unclosed");
        assert_eq!(base_tag(b""), b"");
    }
}
