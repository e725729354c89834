//! One remote node's outgoing connection (skynet's `clustersender`): connected on the first
//! request, kept while it works, reconnected on the next request after it broke.
//!
//! While connected, the connection is a [`Link`] that any thread sends on: a worker's
//! request is encoded, its call recorded and its bytes written straight to the socket
//! ([`Outbox`]), without waking the network thread. The sender task makes the connection,
//! sends what queued while there was none, fails calls whose time is up, and notices the
//! end. Calls are matched to replies by session (allocated per connection as skynet does);
//! when the connection breaks every call in flight fails at once with the reason. After a
//! failed connect, requests fail fast until a retry time (backoff doubling from 100 ms to
//! 5 s, with jitter, so a fleet of nodes does not reconnect in step).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use skywasm_abi::{ptype, Handle};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::frame::{self, PacketReader, Reply, ResponseAssembler};
use super::{fail_call, ClusterConfig, NodeAddress, NodeStatus, Outgoing};
use crate::mq::Message;
use crate::shared::NodeShared;
use crate::socket::busy::BusyPoll;
use crate::socket::outbox::Outbox;
use crate::sync::lock;

/// Longest wait for a TCP connection to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// First and longest pause before connecting again after a failed connect.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often calls with a time limit are checked.
const TIMEOUT_TICK: Duration = Duration::from_millis(10);

/// What the console and the metrics show of a sender.
#[derive(Debug)]
pub(crate) struct Status {
    state: Mutex<String>,
    in_flight: AtomicUsize,
    sent: AtomicU64,
    received: AtomicU64,
    /// Time from a call's request written to its reply read (`skywasm_cluster_call_seconds`).
    pub(crate) latency: prometheus_client::metrics::histogram::Histogram,
}

impl Default for Status {
    fn default() -> Status {
        Status {
            state: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            latency: prometheus_client::metrics::histogram::Histogram::new(
                crate::metrics::latency_buckets(),
            ),
        }
    }
}

impl Status {
    fn set(&self, state: impl Into<String>) {
        *lock(&self.state) = state.into();
    }

    /// Copies the figures into a node's status line.
    pub(crate) fn fill(&self, status: &mut NodeStatus) {
        let state = lock(&self.state).clone();
        if !state.is_empty() {
            status.state = state;
        }
        status.in_flight += self.in_flight.load(Ordering::Relaxed);
        status.sent = self.sent.load(Ordering::Relaxed);
        status.received = self.received.load(Ordering::Relaxed);
    }
}

/// A call waiting for its reply.
struct Call {
    caller: Handle,
    session: i32,
    /// When its request was written, for the latency histogram.
    started: Instant,
    /// Its `cluster_call` span, closed with its reply, its failure or its timeout.
    span: tracing::Span,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
}

/// The calls of a connection.
struct Calls {
    /// The next session to use.
    next: u32,
    pending: HashMap<u32, Call>,
    /// Calls with a deadline among `pending`.
    with_deadline: usize,
    /// Set when the connection ended: no call may be added.
    closed: bool,
}

/// A live connection to a remote node, which any thread may send on.
pub(crate) struct Link {
    node: Weak<NodeShared>,
    name: String,
    outbox: Arc<Outbox>,
    calls: Mutex<Calls>,
    status: Arc<Status>,
    default_timeout: Option<Duration>,
    /// Wakes the sender task when a call with a time limit arrives.
    ticker: Notify,
    busy: Arc<BusyPoll>,
}

impl Link {
    /// Sends a request; it comes back when the connection has ended (send it again through
    /// the sender task, which reconnects).
    pub(crate) fn send(&self, request: Outgoing) -> Result<(), Outgoing> {
        let mut calls = lock(&self.calls);
        if calls.closed {
            return Err(request);
        }
        let multipart = frame::request_is_multipart(request.msg.len());
        let session = if request.reply_to.is_some() || multipart {
            let session = calls.next;
            calls.next = frame::next_session(session);
            session
        } else {
            0
        };
        let mut bytes = Vec::new();
        if let Some(tag) = &request.trace {
            // skynet's tag: "(<nodename>-<node>-<session>)<tag>", its nodename host+pid.
            let tag = format!(
                "(skywasm{}-{}-{session}){tag}",
                std::process::id(),
                self.name
            );
            frame::encode_trace(tag.as_bytes(), &mut bytes);
        }
        let push = request.reply_to.is_none();
        if let Err(e) =
            frame::encode_request(&request.address, session, push, &request.msg, &mut bytes)
        {
            drop(calls);
            refuse(
                &self.node,
                &self.name,
                request,
                &format!("cannot send: {e}"),
            );
            return Ok(());
        }
        if let Some((caller, caller_session)) = request.reply_to {
            let timeout = request.timeout.or(self.default_timeout);
            let span = tracing::info_span!(
                target: "skywasm::cluster",
                "cluster_call",
                node = %self.name,
                caller = %caller,
                trace = tracing::field::Empty,
                outcome = tracing::field::Empty,
            );
            if let Some(tag) = &request.trace {
                super::follow_trace(&span, tag.as_bytes());
            }
            calls.pending.insert(
                session,
                Call {
                    caller,
                    session: caller_session,
                    started: Instant::now(),
                    span,
                    deadline: timeout.map(|t| Instant::now() + t),
                    timeout,
                },
            );
            if timeout.is_some() {
                calls.with_deadline += 1;
                if calls.with_deadline == 1 {
                    self.ticker.notify_one();
                }
            }
            self.status
                .in_flight
                .store(calls.pending.len(), Ordering::Relaxed);
        }
        self.status
            .sent
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        // Written while the call is recorded, so its reply always finds it. A failed write
        // means the connection is ending: the reader reports that and fails the call.
        self.outbox.write(bytes);
        drop(calls);
        if !push {
            // A reply is due: have the network thread awake for it.
            self.busy.touch();
        }
        Ok(())
    }

    /// Delivers a reply to its caller; a reply nobody waits for (timed out) is dropped.
    fn answer(&self, session: u32, reply: Reply) {
        let call = {
            let mut calls = lock(&self.calls);
            let call = calls.pending.remove(&session);
            if call.as_ref().is_some_and(|c| c.deadline.is_some()) {
                calls.with_deadline -= 1;
            }
            self.status
                .in_flight
                .store(calls.pending.len(), Ordering::Relaxed);
            call
        };
        let (Some(call), Some(node)) = (call, self.node.upgrade()) else {
            return;
        };
        self.status
            .latency
            .observe(call.started.elapsed().as_secs_f64());
        call.span
            .record("outcome", if reply.is_ok() { "ok" } else { "error" });
        match reply {
            Ok(msg) => {
                let source = node.cluster_service().unwrap_or(Handle::NONE);
                let _ = node.router.push(
                    call.caller,
                    Message {
                        source,
                        session: call.session,
                        ptype: ptype::RESPONSE as u8,
                        data: msg.into(),
                    },
                );
            }
            Err(reason) => {
                let reason = String::from_utf8_lossy(&reason);
                let why = format!("remote error from node `{}`: {reason}", self.name);
                fail_call(&node, call.caller, call.session, &why);
            }
        }
    }

    /// Fails the calls whose time is up.
    fn expire(&self) {
        let now = Instant::now();
        let due: Vec<Call> = {
            let mut calls = lock(&self.calls);
            let sessions: Vec<u32> = calls
                .pending
                .iter()
                .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
                .map(|(s, _)| *s)
                .collect();
            let due: Vec<Call> = sessions
                .iter()
                .filter_map(|s| calls.pending.remove(s))
                .collect();
            calls.with_deadline -= due.len();
            self.status
                .in_flight
                .store(calls.pending.len(), Ordering::Relaxed);
            due
        };
        let Some(node) = self.node.upgrade() else {
            return;
        };
        for call in due {
            call.span.record("outcome", "timeout");
            let limit = call.timeout.map_or(0, |t| t.as_millis());
            let why = format!(
                "timeout: no reply from node `{}` within {limit} ms",
                self.name
            );
            fail_call(&node, call.caller, call.session, &why);
        }
    }

    fn has_deadlines(&self) -> bool {
        lock(&self.calls).with_deadline > 0
    }

    /// Ends the link: no call may be added, and every call in flight fails with `why`.
    pub(super) fn close(&self, why: &str) {
        self.outbox.close();
        let calls: Vec<Call> = {
            let mut calls = lock(&self.calls);
            calls.closed = true;
            calls.with_deadline = 0;
            calls.pending.drain().map(|(_, c)| c).collect()
        };
        self.status.in_flight.store(0, Ordering::Relaxed);
        if let Some(node) = self.node.upgrade() {
            for call in calls {
                call.span.record("outcome", "failed");
                fail_call(&node, call.caller, call.session, why);
            }
        }
    }
}

/// A request that cannot be sent: a call fails with `why`; a push is dropped and logged.
fn refuse(node: &Weak<NodeShared>, name: &str, request: Outgoing, why: &str) {
    let Some(node) = node.upgrade() else {
        return;
    };
    match request.reply_to {
        Some((caller, session)) => fail_call(&node, caller, session, why),
        None => node.log(
            Handle::NONE,
            &format!("cluster: a push to node `{name}` was dropped: {why}"),
        ),
    }
}

/// The sender task of one remote node.
pub(crate) struct Sender {
    node: Weak<NodeShared>,
    name: String,
    config: ClusterConfig,
    status: Arc<Status>,
    /// Where the live link is published for senders on other threads.
    published: Arc<Mutex<Option<Arc<Link>>>>,
    backoff: Duration,
    retry_at: Option<(Instant, String)>,
    jitter: u64,
    busy: Arc<BusyPoll>,
}

/// How a connection ended.
enum Ended {
    /// It broke: calls in flight failed; connect again on the next request.
    Broken,
    /// The node was dropped from the table (its sender is no longer wanted).
    Retired,
}

impl Sender {
    pub(crate) fn new(
        node: Weak<NodeShared>,
        name: String,
        config: ClusterConfig,
        status: Arc<Status>,
        published: Arc<Mutex<Option<Arc<Link>>>>,
        busy: Arc<BusyPoll>,
    ) -> Sender {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let jitter = now ^ (name.len() as u64).rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
        Sender {
            node,
            name,
            config,
            status,
            published,
            busy,
            backoff: FIRST_BACKOFF,
            retry_at: None,
            jitter: jitter | 1,
        }
    }

    /// Serves requests until the node is dropped from the table.
    pub(crate) async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Outgoing>) {
        self.status.set("idle");
        while let Some(first) = inbox.recv().await {
            if let Some((at, why)) = &self.retry_at {
                if Instant::now() < *at {
                    let wait = at.duration_since(Instant::now()).as_millis();
                    let why = format!(
                        "network: cannot reach node `{}` ({why}); next attempt in {wait} ms",
                        self.name
                    );
                    refuse(&self.node, &self.name, first, &why);
                    continue;
                }
            }
            let Some(address) = self.address() else {
                let why = format!("node `{}` is down or no longer known", self.name);
                refuse(&self.node, &self.name, first, &why);
                continue;
            };
            self.status.set("connecting");
            match connect(&address, &self.config).await {
                Ok(stream) => {
                    self.backoff = FIRST_BACKOFF;
                    self.retry_at = None;
                    self.status.set("connected");
                    if let Ended::Retired = self.serve(stream, first, &mut inbox).await {
                        break;
                    }
                    self.status.set("idle");
                }
                Err(e) => {
                    let why = format!("connect to {address}: {e}");
                    self.schedule_retry(&why);
                    self.status.set(format!("failed: {why}"));
                    let refusal = format!("network: cannot reach node `{}` ({why})", self.name);
                    refuse(&self.node, &self.name, first, &refusal);
                    // What queued while connecting fails with it.
                    while let Ok(queued) = inbox.try_recv() {
                        refuse(&self.node, &self.name, queued, &refusal);
                    }
                }
            }
        }
        while let Ok(queued) = inbox.try_recv() {
            let why = format!("node `{}` was removed from the table", self.name);
            refuse(&self.node, &self.name, queued, &why);
        }
        self.status.set("closed");
    }

    /// The node's address in the table now.
    fn address(&self) -> Option<String> {
        let node = self.node.upgrade()?;
        match node.cluster.table().nodes.get(&self.name) {
            Some(NodeAddress::At(at)) => Some(at.clone()),
            _ => None,
        }
    }

    fn schedule_retry(&mut self, why: &str) {
        // xorshift: enough randomness to spread reconnects, no dependency for it.
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let base = self.backoff.as_millis() as u64;
        let spread = base / 5;
        let wait = base - spread + self.jitter % (2 * spread + 1);
        self.retry_at = Some((
            Instant::now() + Duration::from_millis(wait),
            why.to_string(),
        ));
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    async fn serve(
        &mut self,
        stream: TcpStream,
        first: Outgoing,
        inbox: &mut mpsc::UnboundedReceiver<Outgoing>,
    ) -> Ended {
        let stream = Arc::new(stream);
        let link = Arc::new(Link {
            node: self.node.clone(),
            name: self.name.clone(),
            outbox: Outbox::new(stream.clone()),
            calls: Mutex::new(Calls {
                next: 1,
                pending: HashMap::new(),
                with_deadline: 0,
                closed: false,
            }),
            status: self.status.clone(),
            default_timeout: self.config.call_timeout,
            ticker: Notify::new(),
            busy: self.busy.clone(),
        });
        let (ended_tx, mut ended) = mpsc::unbounded_channel::<String>();
        let reading = read_replies(stream, link.clone(), self.config.max_payload, ended_tx);
        let (node, what) = (
            self.node.clone(),
            format!("reading from node `{}`", self.name),
        );
        // A panic drops `ended_tx`: the loop below then ends the link.
        tokio::spawn(async move { super::contain_task(&node, &what, reading).await });
        // What queued before the connection goes first, in order; then the link is
        // published, under the lock senders take, so nothing sent meanwhile overtakes it.
        {
            let node = self.node.upgrade();
            let _senders = node.as_ref().map(|n| lock(&n.cluster.senders));
            let _ = link.send(first);
            while let Ok(queued) = inbox.try_recv() {
                let _ = link.send(queued);
            }
            *lock(&self.published) = Some(link.clone());
        }
        let outcome = loop {
            let ticking = link.has_deadlines();
            tokio::select! {
                request = inbox.recv() => match request {
                    // Sent through the task while the link is published: a sender that
                    // found no link yet, or found it closing.
                    Some(request) => {
                        if let Err(request) = link.send(request) {
                            refuse(&self.node, &self.name, request, &format!("network: connection to node `{}` lost", self.name));
                        }
                    }
                    None => break (Ended::Retired, format!("node `{}` was removed from the table", self.name)),
                },
                why = ended.recv() => {
                    let why = why.unwrap_or_else(|| "the connection ended".into());
                    break (Ended::Broken, format!("network: connection to node `{}` lost: {why}", self.name));
                }
                () = tokio::time::sleep(TIMEOUT_TICK), if ticking => link.expire(),
                () = link.ticker.notified(), if !ticking => {}
            }
        };
        *lock(&self.published) = None;
        link.close(&outcome.1);
        outcome.0
    }
}

/// Reads replies until the connection ends; tells the sender why it ended.
async fn read_replies(
    stream: Arc<TcpStream>,
    link: Arc<Link>,
    limit: usize,
    ended: mpsc::UnboundedSender<String>,
) {
    let mut packets = PacketReader::new();
    let mut assembler = ResponseAssembler::new(limit);
    let mut buffer = vec![0u8; 64 << 10];
    let why = loop {
        if let Err(e) = stream.readable().await {
            break e.to_string();
        }
        let n = match stream.try_read(&mut buffer) {
            Ok(0) => break "the peer closed the connection".to_string(),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => break e.to_string(),
        };
        link.status.received.fetch_add(n as u64, Ordering::Relaxed);
        link.busy.touch();
        packets.extend(&buffer[..n]);
        let mut answer_all = || loop {
            let answer = packets
                .next_packet()
                .and_then(|p| p.map(|body| assembler.packet(&body)).transpose());
            match answer {
                Ok(Some(Some((session, reply)))) => link.answer(session, reply),
                Ok(Some(None)) => {}
                Ok(None) => break None,
                Err(e) => break Some(format!("a bad packet from the peer: {e}")),
            }
        };
        let bad = match link.node.upgrade() {
            Some(node) => crate::scheduler::with_network_assist(&node, answer_all),
            None => answer_all(),
        };
        if let Some(why) = bad {
            break why;
        }
        if link.outbox.is_closed() {
            break "writing to the peer failed".to_string();
        }
    };
    let _ = ended.send(why);
}

/// A connection to `address` with `TCP_NODELAY` and keepalive (so a half-open connection
/// to a dead peer is noticed: idle `keepalive`, then probes a second apart, three tries),
/// and the secret's handshake when the config has one.
async fn connect(address: &str, config: &ClusterConfig) -> std::io::Result<TcpStream> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))??;
    configure(&stream, config.keepalive)?;
    if let Some(secret) = &config.secret {
        crate::socket::auth::connect(&mut stream, &secret.0, crate::socket::auth::CLUSTER)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("handshake: {e}")))?;
    }
    Ok(stream)
}

/// Sets `TCP_NODELAY` and keepalive on a cluster connection.
pub(crate) fn configure(stream: &TcpStream, keepalive: Duration) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    if !keepalive.is_zero() {
        let settings = socket2::TcpKeepalive::new()
            .with_time(keepalive)
            .with_interval(Duration::from_secs(1))
            .with_retries(3);
        socket2::SockRef::from(stream).set_tcp_keepalive(&settings)?;
    }
    Ok(())
}
