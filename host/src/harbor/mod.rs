//! Harbor: skynet's master/slave network (shared/SKYNET.md §10), native in the host like
//! the cluster gateway, on the socket server's tokio thread.
//!
//! Up to 255 nodes share one address space: the high 8 bits of an address name its node
//! (its `harbor` id). One node runs the master (`standalone`), which keeps the registry of
//! nodes and global names; every node joins it as a slave at start, and the slaves link to
//! each other directly, one connection per pair: the master tells a joining node how many
//! older nodes will connect to it (`W n`) and tells those to connect (`C id address`).
//!
//! * [`Harbor`] is this node's side: joining, the links, and the [`Remote`] the router
//!   hands other nodes' addresses to. A message for a node not linked yet waits (bounded)
//!   until the link is up; one for a node known to be down is refused at once. Calls in
//!   flight to a node whose link drops are failed at once with `PTYPE_ERROR`.
//! * `link` — one slave ↔ slave connection: the id bytes, then frames each way.
//! * `master` — the master (skynet's cmaster), when this node runs it.
//!
//! Deliberate differences from skynet (docs/harbor.md): a node that comes back is linked
//! again (skynet never relinks a slave once it went down); sources are checked (a peer may
//! only send from addresses of its own node); what waits for a node not linked yet is
//! bounded.

mod link;
mod master;
mod service;

pub use service::Cslave;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use skywasm_abi::{ptype, Handle, HostError};
use skywasm_harbor_wire::{encode_remote, MasterMessage, MasterReader, RemoteHeader, HANDLE_MASK};
use tokio::net::{TcpListener, TcpStream};

use crate::config::HarborConfig;
use crate::mq::Message;
use crate::router::Remote;
use crate::service::{expects_answer, is_request, Service};
use crate::shared::NodeShared;
use crate::socket::auth;
use crate::socket::busy::BusyPoll;
use crate::socket::outbox::Outbox;
use crate::sync::lock;
use crate::tenant::{Tenant, WaitingCharge};

/// Longest a node waits at start for its master, and for the older nodes to link to it.
pub(crate) const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of messages that may wait for one node not linked yet; past it sends to that
/// node are refused (as to a node that is down) until the link is up. What a tenant with a
/// `tenant_mailbox_bytes` cap sends waits under that cap instead ([`charge`]), so that no
/// tenant can fill the room the node's own services and the other tenants share.
const MAX_WAITING: usize = 64 << 20;

/// Charges `bytes` a message waits with to `payer`'s tenant when its mailboxes are capped
/// together ([`Tenant::charge_waiting`]): `None` when they are not (the node-wide room
/// holds it), the refusal when they are full.
fn charge(payer: Option<&Tenant>, bytes: usize) -> Result<Option<WaitingCharge>, &'static str> {
    payer.map_or(Ok(None), |tenant| {
        tenant
            .charge_waiting(bytes)
            .map_err(|_| "its tenant's mailboxes and waiting messages hold tenant_mailbox_bytes")
    })
}

/// Why a node could not join its harbor network (its start then fails).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HarborError {
    /// A listener (the master's, or this node's for the other slaves) could not be opened.
    #[error("harbor: cannot listen at {address}: {why}")]
    Listen {
        /// The configured address.
        address: String,
        /// What the system said.
        why: String,
    },
    /// The master could not be reached, refused this node, or did not answer.
    #[error("harbor: cannot join the master at {address}: {why}")]
    Master {
        /// The master's address (`master`).
        address: String,
        /// Why.
        why: String,
    },
    /// Some of the older nodes the master named did not link to this one in time.
    #[error("harbor: {missing} of the {expected} harbor nodes the master named did not connect within {} s", JOIN_TIMEOUT.as_secs())]
    Peers {
        /// How many the master said would connect.
        expected: u32,
        /// How many did not.
        missing: u32,
    },
    /// The node stopped while joining.
    #[error("harbor: the node is stopping")]
    Stopping,
}

/// This node's side of the harbor network.
pub(crate) struct Harbor {
    id: u8,
    config: HarborConfig,
    node: Weak<NodeShared>,
    /// The largest frame a peer may send (the largest message and its trailer).
    max_frame: usize,
    state: Mutex<State>,
    /// Messages refused because their node is down or its waiting room was full (counted
    /// for thinned-out log lines).
    dropped: AtomicU64,
    /// Messages from peers for addresses with no service here.
    unknown: AtomicU64,
    /// Bytes of the frames written to each node and read from it.
    bytes: Vec<[AtomicU64; 2]>,
    /// The network thread's busy polling: a call sent or a frame read keeps it polling
    /// for the answer instead of sleeping.
    busy: Arc<BusyPoll>,
}

/// What the links are doing.
struct State {
    /// Each node by id (this node's own entry is unused).
    peers: Vec<Peer>,
    /// Calls to services of other nodes awaiting their answers, by (caller, session).
    calls: FxHashMap<(u32, i32), PendingCall>,
    /// The time from a call leaving to its answer arriving, by node (once one answered).
    latency: FxHashMap<u8, prometheus_client::metrics::histogram::Histogram>,
    /// The connection to the master, while it is up.
    master: Option<Arc<Outbox>>,
    /// Global names: known (registered here or announced by the master), or asked of the
    /// master with what waits for the answer.
    names: HashMap<String, Name>,
    /// Bytes of messages waiting for global names, all names together (with each one's
    /// bookkeeping: [`Message::footprint`]).
    waiting_for_names: usize,
    /// `LINK` callers, by node: answered when that node goes down.
    link_watchers: HashMap<u8, Vec<Waiter>>,
    /// `CONNECT` callers, by node: answered when that node is linked.
    connect_watchers: HashMap<u8, Vec<Waiter>>,
    /// `LINKMASTER` callers: answered when the master's connection drops.
    master_watchers: Vec<Waiter>,
}

/// A global name as this node knows it.
enum Name {
    /// Its service.
    At(u32),
    /// Asked of the master and not answered yet: the messages sent to it and the
    /// `QUERYNAME` callers wait (skynet's harbor queues them the same way).
    Asked {
        messages: Vec<(Message, Option<WaitingCharge>)>,
        queries: Vec<Waiter>,
        /// The entry's own bookkeeping ([`ASKED_NAME`]), when a capped tenant's message
        /// made it (else it counts in the node-wide room).
        entry: Option<WaitingCharge>,
    },
}

/// A request `.cslave` answers later: who asked, under which session, and the service
/// that answers (`.cslave`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Waiter {
    /// Who asked.
    pub requester: Handle,
    /// The request's session.
    pub session: i32,
    /// The service the answer comes from.
    pub answerer: Handle,
}

/// One other node, as this one sees it.
enum Peer {
    /// Not linked yet: what was sent to it waits here, in order (frames, each with what it
    /// holds of its tenant's cap, and the bytes of the uncharged ones).
    Waiting(Vec<(Vec<u8>, Option<WaitingCharge>)>, usize),
    /// Linked: frames are written straight to the connection.
    Up(Arc<Outbox>),
    /// Its link dropped, or the master said it is gone: sends to it are refused.
    Down,
}

/// A call to a service of another node, awaiting its answer.
struct PendingCall {
    /// The node it went to.
    peer: u8,
    /// When it left, for the latency histogram.
    left: Instant,
    /// Its `harbor_call` span, closed with its answer or its node's end.
    span: tracing::Span,
}

/// What went to and from another node, for the metrics.
pub(crate) struct PeerTraffic {
    /// Its harbor id.
    pub id: u8,
    /// Linked, down, or not linked yet.
    pub state: PeerState,
    /// Calls to its services waiting for their answers.
    pub in_flight: usize,
    /// Bytes of the frames written to it and read from it.
    pub bytes: (u64, u64),
    /// Its calls' latencies, once one was answered.
    pub latency: Option<prometheus_client::metrics::histogram::Histogram>,
}

/// The state of each node other than `me` that is linked, down, or has messages waiting.
fn peer_states(state: &State, me: u8) -> Vec<(u8, PeerState)> {
    state
        .peers
        .iter()
        .enumerate()
        .filter(|(id, _)| *id != 0 && *id != usize::from(me))
        .filter_map(|(id, peer)| {
            let seen = match peer {
                Peer::Up(_) => PeerState::Up,
                Peer::Down => PeerState::Down,
                Peer::Waiting(frames, _) if frames.is_empty() => return None,
                Peer::Waiting(frames, _) => PeerState::Waiting(frames.len()),
            };
            Some((id as u8, seen))
        })
        .collect()
}

/// A peer's state for the console and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Linked.
    Up,
    /// Known to be down.
    Down,
    /// Not linked yet, with messages waiting for it.
    Waiting(usize),
}

impl Harbor {
    /// This node's side of the network in `config`, not joined yet.
    pub(crate) fn new(
        id: u8,
        config: HarborConfig,
        node: Weak<NodeShared>,
        max_message: usize,
        busy: Arc<BusyPoll>,
    ) -> Arc<Harbor> {
        Arc::new(Harbor {
            id,
            config,
            node,
            max_frame: max_message.saturating_add(skywasm_harbor_wire::TRAILER),
            state: Mutex::new(State {
                peers: (0..=255).map(|_| Peer::Waiting(Vec::new(), 0)).collect(),
                calls: FxHashMap::default(),
                latency: FxHashMap::default(),
                master: None,
                names: HashMap::new(),
                waiting_for_names: 0,
                link_watchers: HashMap::new(),
                connect_watchers: HashMap::new(),
                master_watchers: Vec::new(),
            }),
            dropped: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            bytes: (0..=255).map(|_| Default::default()).collect(),
            busy,
        })
    }

    /// This node's harbor id.
    pub(crate) fn id(&self) -> u8 {
        self.id
    }

    /// Joins the network, as skynet's cslave does at start: runs the master first when this
    /// node is `standalone`, listens at `address`, introduces this node to the master and
    /// waits until every older node it names has linked to this one.
    ///
    /// # Errors
    /// A [`HarborError`] saying which step failed.
    pub(crate) fn join(self: &Arc<Self>) -> Result<(), HarborError> {
        let node = self.node.upgrade().ok_or(HarborError::Stopping)?;
        let runtime = node.sockets.runtime().map_err(|e| HarborError::Listen {
            address: self.config.address.clone(),
            why: e.to_string(),
        })?;
        drop(node);
        let (done, result) = std::sync::mpsc::channel();
        let harbor = self.clone();
        let master = self.config.master.clone();
        runtime.spawn(async move {
            let joined = match crate::sync::contained(harbor.join_async()).await {
                Ok(joined) => joined,
                Err(panic) => Err(HarborError::Master {
                    address: master,
                    why: format!("host panic: {panic}"),
                }),
            };
            let _ = done.send(joined);
        });
        // Each step inside is bounded; this only covers a runtime that stopped under it.
        result
            .recv_timeout(3 * JOIN_TIMEOUT)
            .unwrap_or(Err(HarborError::Stopping))
    }

    async fn join_async(self: Arc<Self>) -> Result<(), HarborError> {
        if let Some(address) = &self.config.standalone {
            master::start(self.node.clone(), address, self.config.secret.clone()).await?;
        }
        let address = self.config.address.clone();
        let listener = TcpListener::bind(&address)
            .await
            .map_err(|e| HarborError::Listen {
                address: address.clone(),
                why: e.to_string(),
            })?;
        let master_error = |why: String| HarborError::Master {
            address: self.config.master.clone(),
            why,
        };
        let mut stream = connect_within(&self.config.master, JOIN_TIMEOUT)
            .await
            .map_err(&master_error)?;
        self.prove(&mut stream, false)
            .await
            .map_err(|e| master_error(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let stream = Arc::new(stream);
        let outbox = Outbox::new(stream.clone());
        let mut hello = Vec::new();
        MasterMessage::Handshake {
            id: self.id,
            address: address.clone(),
        }
        .encode(&mut hello)
        .map_err(|e| master_error(e.to_string()))?;
        outbox.write(hello);
        let mut reader = MasterReader::new();
        let waited = tokio::time::timeout(JOIN_TIMEOUT, read_master(&stream, &mut reader)).await;
        let count = match waited {
            Ok(Ok(Some(MasterMessage::Wait(count)))) => count,
            Ok(Ok(Some(other))) => {
                return Err(master_error(format!(
                    "it answered {other:?} instead of `W n`"
                )))
            }
            Ok(Ok(None)) => {
                return Err(master_error(format!(
                    "it closed the connection (is harbor {} in use by another node?)",
                    self.id
                )))
            }
            Ok(Err(why)) => return Err(master_error(why)),
            Err(_) => {
                return Err(master_error(format!(
                    "no answer within {} s",
                    JOIN_TIMEOUT.as_secs()
                )))
            }
        };
        lock(&self.state).master = Some(outbox);
        self.log(&format!(
            "harbor {}: joined the master at {}; waiting for {count} harbors",
            self.id, self.config.master
        ));
        let harbor = self.clone();
        tokio::spawn(async move {
            let what = "the harbor master's connection";
            let node = harbor.node.clone();
            let serving = harbor.clone().serve_master(stream, reader);
            if crate::sync::contained(serving).await.is_err() {
                if let Some(node) = node.upgrade() {
                    node.log(
                        Handle::NONE,
                        &format!("harbor: the host panicked in {what}"),
                    );
                }
            }
        });
        let deadline = Instant::now() + JOIN_TIMEOUT;
        let mut linked = 0;
        while linked < count {
            let accepted = tokio::time::timeout_at(deadline.into(), listener.accept()).await;
            match accepted {
                Ok(Ok((stream, from))) => match link::accept(&self, stream).await {
                    Ok(peer) => {
                        linked += 1;
                        self.log(&format!(
                            "harbor {}: harbor {peer} connected from {from}",
                            self.id
                        ));
                    }
                    Err(why) => self.log(&format!(
                        "harbor {}: refused a connection from {from}: {why}",
                        self.id
                    )),
                },
                Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(_) => {
                    return Err(HarborError::Peers {
                        expected: count,
                        missing: count - linked,
                    })
                }
            }
        }
        // As skynet's cslave: newer nodes are linked by this one, on the master's word.
        drop(listener);
        Ok(())
    }

    /// The `harbor_secret` handshake on a new connection, when the config has a secret:
    /// as the side that accepted it, or the one that opened it.
    pub(super) async fn prove(
        &self,
        stream: &mut TcpStream,
        accepted: bool,
    ) -> std::io::Result<()> {
        let Some(secret) = &self.config.secret else {
            return Ok(());
        };
        if accepted {
            auth::accept(stream, &secret.0, auth::HARBOR).await
        } else {
            auth::connect(stream, &secret.0, auth::HARBOR).await
        }
    }

    /// Reads what the master says until its connection ends.
    async fn serve_master(self: Arc<Self>, stream: Arc<TcpStream>, mut reader: MasterReader) {
        let why = loop {
            match read_master(&stream, &mut reader).await {
                Ok(Some(message)) => self.on_master(message),
                Ok(None) => break "it closed the connection".to_string(),
                Err(why) => break why,
            }
        };
        let watchers = {
            let mut state = lock(&self.state);
            if let Some(master) = state.master.take() {
                master.close();
            }
            std::mem::take(&mut state.master_watchers)
        };
        self.answer_all(&watchers, &[]);
        self.log(&format!(
            "harbor {}: the master at {} disconnected: {why}",
            self.id, self.config.master
        ));
    }

    /// Acts on one message of the master's.
    fn on_master(self: &Arc<Self>, message: MasterMessage) {
        match message {
            MasterMessage::Connect { id, address } if id != self.id => {
                // The master names a node only when it (re)joins: a link to it still up
                // is to its former self (its connection not seen closed yet).
                let linked = matches!(lock(&self.state).peers[usize::from(id)], Peer::Up(_));
                if linked {
                    self.peer_down(id, None, "it joined the network again");
                }
                tokio::spawn(link::connect(self.clone(), id, address));
            }
            MasterMessage::Down(id) if id != self.id => {
                self.peer_down(id, None, "the master says it is gone");
            }
            MasterMessage::Name { name, handle } => self.named(&name, Handle(handle)),
            other => self.log(&format!(
                "harbor {}: ignored an unexpected message from the master: {other:?}",
                self.id
            )),
        }
    }

    /// Makes `stream` the link to `peer` (its id bytes exchanged): what waited for it is
    /// written first, then its frames are read. False when `peer` is linked already.
    pub(super) fn link_up(self: &Arc<Self>, peer: u8, stream: TcpStream) -> bool {
        let stream = Arc::new(stream);
        let watchers = {
            let mut state = lock(&self.state);
            let slot = &mut state.peers[usize::from(peer)];
            if matches!(slot, Peer::Up(_)) {
                return false;
            }
            let outbox = Outbox::new(stream.clone());
            if let Peer::Waiting(frames, _) = std::mem::replace(slot, Peer::Up(outbox.clone())) {
                for (frame, _charge) in frames {
                    self.count_sent(peer, frame.len());
                    outbox.write(frame);
                }
            }
            let harbor = self.clone();
            tokio::spawn(async move {
                let reading = link::read(harbor.clone(), peer, stream, outbox.clone());
                if let Err(panic) = crate::sync::contained(reading).await {
                    harbor.peer_down(peer, Some(&outbox), &format!("host panic: {panic}"));
                }
            });
            state.connect_watchers.remove(&peer).unwrap_or_default()
        };
        self.answer_all(&watchers, &[]);
        true
    }

    /// Marks `peer` down (when `link` is its current link, or any state for `None`): its
    /// calls in flight fail at once, what waited for it is dropped, and later sends to it
    /// are refused until it is linked again.
    pub(super) fn peer_down(&self, peer: u8, link: Option<&Arc<Outbox>>, why: &str) {
        let (failed, watchers) = {
            let mut state = lock(&self.state);
            let slot = &mut state.peers[usize::from(peer)];
            match (&*slot, link) {
                (Peer::Up(current), Some(link)) if !Arc::ptr_eq(current, link) => return,
                (Peer::Down, _) => return,
                (Peer::Waiting(..), Some(_)) => return,
                (Peer::Up(current), _) => current.close(),
                (Peer::Waiting(..), None) => {}
            }
            *slot = Peer::Down;
            let mut failed = Vec::new();
            state.calls.retain(|call, pending| {
                let lost = pending.peer == peer;
                if lost {
                    pending.span.record("outcome", "failed");
                    failed.push(*call);
                }
                !lost
            });
            let watchers = state.link_watchers.remove(&peer).unwrap_or_default();
            (failed, watchers)
        };
        self.answer_all(&watchers, &[]);
        self.log(&format!("harbor {}: harbor {peer} is down: {why}", self.id));
        let Some(node) = self.node.upgrade() else {
            return;
        };
        let text = format!("harbor {peer} is down: {why}");
        let on_behalf = Handle(u32::from(peer) << 24);
        for (caller, session) in failed {
            node.router
                .answer_error_saying(Handle(caller), on_behalf, session, &text);
        }
    }

    /// Delivers a message a peer sent; the service to wait for when its mailbox is now
    /// over its backlog (the link then stops reading until it drained).
    ///
    /// # Errors
    /// Why the link must close: a source outside the peer's own addresses.
    pub(super) fn deliver(
        &self,
        peer: u8,
        header: RemoteHeader,
        body: Vec<u8>,
    ) -> Result<Option<Arc<Service>>, String> {
        let source = Handle(header.source);
        if source.harbor() != peer {
            return Err(format!(
                "a message from {source}, which is not an address of harbor {peer}"
            ));
        }
        let dest = Handle((u32::from(self.id) << 24) | (header.destination & HANDLE_MASK));
        let session = header.session as i32;
        if let Some([_, received]) = self.bytes.get(usize::from(peer)) {
            // The whole frame, as the sender counts it: length, body, trailer.
            received.fetch_add(
                (4 + body.len() + skywasm_harbor_wire::TRAILER) as u64,
                Ordering::Relaxed,
            );
        }
        if !is_request(header.ptype) {
            let mut state = lock(&self.state);
            if let Some(call) = state.calls.remove(&(dest.0, session)) {
                let outcome = if header.ptype == ptype::ERROR as u8 {
                    "error"
                } else {
                    "ok"
                };
                call.span.record("outcome", outcome);
                state
                    .latency
                    .entry(call.peer)
                    .or_insert_with(|| {
                        prometheus_client::metrics::histogram::Histogram::new(
                            crate::metrics::latency_buckets(),
                        )
                    })
                    .observe(call.left.elapsed().as_secs_f64());
            }
        }
        let Some(node) = self.node.upgrade() else {
            return Ok(None);
        };
        let message = Message {
            source,
            session,
            ptype: header.ptype,
            data: body.into(),
        };
        match node.router.push_measured(dest, message) {
            Some((service, _)) => Ok(service.socket_backlog_over().then_some(service)),
            None => {
                // As skynet's harbor: the sender learns that nobody is there.
                if u32::from(header.ptype) != ptype::ERROR {
                    let error = Message::empty(dest, ptype::ERROR as u8, session);
                    let _ = self.forward(source, error, None);
                }
                let unknown = self.unknown.fetch_add(1, Ordering::Relaxed) + 1;
                if crate::log::worth_logging(unknown) {
                    node.log(
                        Handle::NONE,
                        &format!(
                            "harbor {}: unknown destination {dest} from {source} (type {}; \
                             {unknown} so far)",
                            self.id, header.ptype
                        ),
                    );
                }
                Ok(None)
            }
        }
    }

    /// Counts `bytes` of frames written to `peer`.
    fn count_sent(&self, peer: u8, bytes: usize) {
        if let Some([sent, _]) = self.bytes.get(usize::from(peer)) {
            sent.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Each other node's traffic for the metrics, by id (the nodes [`Harbor::peers`] lists):
    /// calls in flight, bytes written and read, and its calls' latencies once one was
    /// answered.
    pub(crate) fn traffic(&self) -> Vec<PeerTraffic> {
        let state = lock(&self.state);
        let mut in_flight = [0usize; 256];
        for call in state.calls.values() {
            in_flight[usize::from(call.peer)] += 1;
        }
        peer_states(&state, self.id)
            .into_iter()
            .map(|(id, seen)| {
                let [sent, received] = &self.bytes[usize::from(id)];
                PeerTraffic {
                    id,
                    state: seen,
                    in_flight: in_flight[usize::from(id)],
                    bytes: (
                        sent.load(Ordering::Relaxed),
                        received.load(Ordering::Relaxed),
                    ),
                    latency: state.latency.get(&id).cloned(),
                }
            })
            .collect()
    }

    /// Each other node's state, by id (for the console and tests).
    pub(crate) fn peers(&self) -> Vec<(u8, PeerState)> {
        peer_states(&lock(&self.state), self.id)
    }

    /// The network as this node sees it, one line each: this node and its master, the
    /// other nodes it knows of and their state, and the global names announced.
    pub(crate) fn describe(&self) -> String {
        let mut lines = vec![format!(
            "harbor {} at {}, master {} {}",
            self.id,
            self.config.address,
            self.config.master,
            if lock(&self.state).master.is_some() {
                "connected"
            } else {
                "disconnected"
            }
        )];
        for (id, state) in self.peers() {
            lines.push(match state {
                PeerState::Up => format!("harbor {id}\tup"),
                PeerState::Down => format!("harbor {id}\tdown"),
                PeerState::Waiting(n) => format!("harbor {id}\tnot linked, {n} messages wait"),
            });
        }
        let mut names: Vec<(String, u32)> = lock(&self.state)
            .names
            .iter()
            .filter_map(|(name, known)| match known {
                Name::At(handle) => Some((name.clone(), *handle)),
                Name::Asked { .. } => None,
            })
            .collect();
        names.sort();
        for (name, handle) in names {
            lines.push(format!("name {name}\t{}", Handle(handle)));
        }
        lines.join("\n")
    }

    /// Registers global name `name` for `handle` (skynet's `REGISTER`): known here at once,
    /// and told to the master, which announces it to every node (the first registration
    /// of a name wins there).
    ///
    /// # Errors
    /// [`HostError::InvalidArgument`] for a name that is not a global name;
    /// [`HostError::NameTaken`] when this node knows it as another service's already
    /// (skynet's cslave asserts).
    pub(crate) fn register(&self, name: &str, handle: Handle) -> Result<(), HostError> {
        if !is_global_name(name) {
            return Err(HostError::InvalidArgument);
        }
        {
            let state = lock(&self.state);
            match state.names.get(name) {
                // Its own name again (new code registering its names after an upgrade).
                Some(Name::At(known)) if *known == handle.0 => return Ok(()),
                Some(Name::At(_)) => return Err(HostError::NameTaken),
                _ => {}
            }
            if let Some(master) = &state.master {
                send_master(
                    master,
                    &MasterMessage::Register {
                        name: name.to_string(),
                        handle: handle.0,
                    },
                );
            }
        }
        self.named(name, handle);
        Ok(())
    }

    /// Learns that global name `name` is `handle`'s: what waited for it goes there.
    fn named(&self, name: &str, handle: Handle) {
        if !is_global_name(name) {
            return self.log(&format!(
                "harbor {}: ignored an invalid global name `{}`",
                self.id,
                crate::log::Shown(name)
            ));
        }
        let waited = {
            let mut state = lock(&self.state);
            let previous = state.names.insert(name.to_string(), Name::At(handle.0));
            match previous {
                Some(Name::Asked {
                    messages,
                    queries,
                    entry,
                }) => {
                    let own = if entry.is_some() { 0 } else { ASKED_NAME };
                    let bytes: usize = own
                        + messages
                            .iter()
                            .filter(|(_, charge)| charge.is_none())
                            .map(|(message, _)| message.footprint())
                            .sum::<usize>();
                    state.waiting_for_names -= bytes;
                    Some((messages, queries))
                }
                _ => None,
            }
        };
        let Some((messages, queries)) = waited else {
            return;
        };
        for (message, _charge) in messages {
            self.send_to(handle, message);
        }
        let mut answer = Vec::new();
        let _ = skywasm_pack::pack_into(
            &mut answer,
            &[skywasm_pack::Value::Integer(i64::from(handle.0))],
        );
        self.answer_all(&queries, &answer);
    }

    /// The service global name `name` names, when this node knows it.
    pub(crate) fn global_name(&self, name: &str) -> Option<Handle> {
        match lock(&self.state).names.get(name) {
            Some(Name::At(handle)) => Some(Handle(*handle)),
            _ => None,
        }
    }

    /// Sends `message` to global name `name`: at once when the name is known, else once
    /// the master has named it (asked of the master the first time). While it waits it is
    /// charged to `payer`'s tenant when that tenant's mailboxes are capped together, else it
    /// counts in the node-wide room.
    ///
    /// # Errors
    /// The message, when more than [`MAX_WAITING`] bytes wait for names already, or the
    /// payer's tenant holds its `tenant_mailbox_bytes`.
    pub(crate) fn send_name(
        &self,
        name: &str,
        message: Message,
        payer: Option<&Tenant>,
    ) -> Result<(), Message> {
        let mut state = lock(&self.state);
        if let Some(Name::At(handle)) = state.names.get(name) {
            let handle = Handle(*handle);
            drop(state);
            self.send_to(handle, message);
            return Ok(());
        }
        let size = message.footprint();
        let entry = if state.names.contains_key(name) {
            Ok(None)
        } else {
            charge(payer, ASKED_NAME)
        };
        let why = match entry.and_then(|entry| Ok((entry, charge(payer, size)?))) {
            Err(why) => why,
            Ok((None, None)) if state.waiting_for_names + ASKED_NAME + size > MAX_WAITING => {
                "too much waits for global names"
            }
            Ok((entry, charge)) => {
                if charge.is_none() {
                    state.waiting_for_names += size;
                }
                let asked = self.ask_master(&mut state, name, entry);
                let Name::Asked { messages, .. } = asked else {
                    unreachable!("asked names are Asked");
                };
                messages.push((message, charge));
                return Ok(());
            }
        };
        drop(state);
        self.log_drop(Handle::NONE, &message, why);
        Err(message)
    }

    /// The service global name `name` names (skynet's `QUERYNAME`), or `None` after
    /// noting `waiter` to be answered once the master names it.
    pub(crate) fn query_name(&self, name: &str, waiter: Waiter) -> Option<Handle> {
        let mut state = lock(&self.state);
        if let Some(Name::At(handle)) = state.names.get(name) {
            return Some(Handle(*handle));
        }
        if let Name::Asked { queries, .. } = self.ask_master(&mut state, name, None) {
            queries.push(waiter);
        }
        None
    }

    /// The waiting entry of `name`, asking the master (`Q`) when it is new; a new entry's
    /// bookkeeping is `entry` when a tenant was charged for it, else counted in the room.
    fn ask_master<'a>(
        &self,
        state: &'a mut State,
        name: &str,
        entry: Option<WaitingCharge>,
    ) -> &'a mut Name {
        if !state.names.contains_key(name) {
            if entry.is_none() {
                state.waiting_for_names += ASKED_NAME;
            }
            if let Some(master) = &state.master {
                send_master(master, &MasterMessage::Query(name.to_string()));
            }
        }
        state.names.entry(name.to_string()).or_insert(Name::Asked {
            messages: Vec::new(),
            queries: Vec::new(),
            entry,
        })
    }

    /// Notes `waiter` to be answered when node `peer` goes down (skynet's `LINK`); false
    /// when it is not linked (answer at once).
    pub(crate) fn watch_link(&self, peer: u8, waiter: Waiter) -> bool {
        let mut state = lock(&self.state);
        if !matches!(state.peers[usize::from(peer)], Peer::Up(_)) {
            return false;
        }
        state.link_watchers.entry(peer).or_default().push(waiter);
        true
    }

    /// Notes `waiter` to be answered when node `peer` is linked (skynet's `CONNECT`); false
    /// when it is (answer at once).
    pub(crate) fn watch_connect(&self, peer: u8, waiter: Waiter) -> bool {
        let mut state = lock(&self.state);
        if matches!(state.peers[usize::from(peer)], Peer::Up(_)) || peer == self.id {
            return false;
        }
        state.connect_watchers.entry(peer).or_default().push(waiter);
        true
    }

    /// Notes `waiter` to be answered when the master's connection drops (skynet's
    /// `LINKMASTER`); false when it is down already (answer at once).
    pub(crate) fn watch_master(&self, waiter: Waiter) -> bool {
        let mut state = lock(&self.state);
        if state.master.is_none() {
            return false;
        }
        state.master_watchers.push(waiter);
        true
    }

    /// Sends `message` to `dest`, here or on another node (the router routes both), as the
    /// host (what waited for a global name); a request that cannot arrive is answered with
    /// `PTYPE_ERROR`.
    fn send_to(&self, dest: Handle, message: Message) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        let (source, session, request) = (
            message.source,
            message.session,
            expects_answer(message.ptype),
        );
        let sent = node.router.push(dest, message).is_ok();
        if !sent && request && session != 0 {
            node.router.answer_error(source, dest, session);
        }
    }

    /// Answers each waiter with `body` (a PTYPE_RESPONSE from its answerer).
    fn answer_all(&self, waiters: &[Waiter], body: &[u8]) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        for waiter in waiters {
            let answer = Message {
                source: waiter.answerer,
                session: waiter.session,
                ptype: ptype::RESPONSE as u8,
                data: body.into(),
            };
            let _ = node.router.push(waiter.requester, answer);
        }
    }

    fn log(&self, text: &str) {
        if let Some(node) = self.node.upgrade() {
            node.log(Handle::NONE, text);
        }
    }

    /// Counts a refused message and logs it, thinned out (skynet's "Drop message to harbor").
    fn log_drop(&self, dest: Handle, message: &Message, why: &str) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if crate::log::worth_logging(dropped) {
            self.log(&format!(
                "harbor {}: drop message to harbor {} from {} to {dest} (session = {}, msgsz = \
                 {}): {why} ({dropped} dropped so far)",
                self.id,
                dest.harbor(),
                message.source,
                message.session,
                message.data.len()
            ));
        }
    }
}

impl Remote for Harbor {
    fn forward(
        &self,
        dest: Handle,
        message: Message,
        payer: Option<&Tenant>,
    ) -> Result<(), Message> {
        let header = RemoteHeader {
            source: message.source.0,
            ptype: message.ptype,
            destination: dest.0 & HANDLE_MASK,
            session: message.session as u32,
        };
        let mut frame = Vec::new();
        if let Err(e) = encode_remote(&header, &message.data, &mut frame) {
            self.log_drop(dest, &message, &e.to_string());
            return Err(message);
        }
        // A call: remembered before it leaves, so that its answer or its link's end finds it.
        let call = (expects_answer(message.ptype) && message.session > 0)
            .then_some((message.source.0, message.session));
        let peer = dest.harbor();
        let span = call.map(|(caller, _)| {
            tracing::info_span!(
                target: "skywasm::harbor",
                "harbor_call",
                peer,
                caller = %Handle(caller),
                outcome = tracing::field::Empty,
            )
        });
        let mut state = lock(&self.state);
        let why = match &mut state.peers[usize::from(peer)] {
            Peer::Up(outbox) => {
                self.count_sent(peer, frame.len());
                outbox.write(frame);
                None
            }
            Peer::Waiting(frames, bytes) => {
                let size = frame.len() + std::mem::size_of::<Vec<u8>>();
                match charge(payer, size) {
                    Err(why) => Some(why),
                    Ok(None) if *bytes + frame.len() > MAX_WAITING => {
                        Some("too much waits for it to be linked")
                    }
                    Ok(charge) => {
                        if charge.is_none() {
                            *bytes += frame.len();
                        }
                        frames.push((frame, charge));
                        None
                    }
                }
            }
            Peer::Down => Some("it is down"),
        };
        match why {
            None => {
                if let (Some(call), Some(span)) = (call, span) {
                    let pending = PendingCall {
                        peer,
                        left: Instant::now(),
                        span,
                    };
                    state.calls.insert(call, pending);
                    drop(state);
                    self.busy.touch();
                }
                Ok(())
            }
            Some(why) => {
                drop(state);
                self.log_drop(dest, &message, why);
                Err(message)
            }
        }
    }
}

/// True for a global name: 1 to 15 bytes, not a local name (`.`), an address (`:`) or a
/// number (skynet's `globalname` asserts the same).
pub(crate) fn is_global_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= skywasm_harbor_wire::GLOBAL_NAME_MAX
        && !name.starts_with('.')
        && !name.starts_with(':')
        && name.parse::<f64>().is_err()
}

/// What an entry for a global name being asked of the master holds, beyond its messages.
const ASKED_NAME: usize = 128;

/// Writes one message to the master.
fn send_master(master: &Arc<Outbox>, message: &MasterMessage) {
    let mut frame = Vec::new();
    if message.encode(&mut frame).is_ok() {
        master.write(frame);
    }
}

/// Connects to `address`, trying again for up to `limit` (the master may be starting too).
async fn connect_within(address: &str, limit: Duration) -> Result<TcpStream, String> {
    let deadline = Instant::now() + limit;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let attempt = tokio::time::timeout(remaining, TcpStream::connect(address)).await;
        match attempt {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) if Instant::now() + Duration::from_millis(100) < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no connection within {} s", limit.as_secs())),
        }
    }
}

/// The next message on a master connection; `None` when it closed.
pub(super) async fn read_master(
    stream: &TcpStream,
    reader: &mut MasterReader,
) -> Result<Option<MasterMessage>, String> {
    let mut buffer = [0u8; 1024];
    loop {
        if let Some(message) = reader.next_message().map_err(|e| e.to_string())? {
            return Ok(Some(message));
        }
        stream.readable().await.map_err(|e| e.to_string())?;
        match stream.try_read(&mut buffer) {
            Ok(0) => return Ok(None),
            Ok(n) => reader.extend(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}
