//! One remote node's outgoing connection (skynet's `clustersender`): connected on the first
//! request, kept while it works, reconnected on the next request after it broke.
//!
//! Calls are matched to replies by session (allocated per connection as skynet does). When
//! the connection breaks, every call in flight fails at once with the reason; a call that
//! runs past its time limit fails then, and its late reply is dropped. After a failed
//! connect, requests fail fast until a retry time (backoff doubling from 100 ms to 5 s, with
//! jitter, so a fleet of nodes does not reconnect in step).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use skywasm_abi::{ptype, Handle};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::frame::{self, PacketReader, Reply, ResponseAssembler};
use super::{fail_call, ClusterConfig, NodeAddress, NodeStatus, Outgoing};
use crate::mq::Message;
use crate::node::NodeShared;
use crate::sync::lock;

/// Longest wait for a TCP connection to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// First and longest pause before connecting again after a failed connect.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the console shows of a sender.
#[derive(Debug, Default)]
pub(crate) struct Status {
    state: Mutex<String>,
    in_flight: AtomicUsize,
    sent: AtomicU64,
    received: AtomicU64,
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
    deadline: Option<Instant>,
    timeout: Option<Duration>,
}

/// The sender task of one remote node.
pub(crate) struct Sender {
    node: Weak<NodeShared>,
    name: String,
    config: ClusterConfig,
    status: std::sync::Arc<Status>,
    /// The next session to use on the connection.
    session: u32,
    calls: HashMap<u32, Call>,
    backoff: Duration,
    retry_at: Option<(Instant, String)>,
    jitter: u64,
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
        status: std::sync::Arc<Status>,
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
            session: 1,
            calls: HashMap::new(),
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
                    self.refuse(first, &why);
                    continue;
                }
            }
            let Some(address) = self.address() else {
                let why = format!("node `{}` is down or no longer known", self.name);
                self.refuse(first, &why);
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
                    self.refuse(first, &refusal);
                    // What queued while connecting fails with it.
                    while let Ok(queued) = inbox.try_recv() {
                        self.refuse(queued, &refusal);
                    }
                }
            }
        }
        self.fail_all(&format!("node `{}` was removed from the table", self.name));
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
        let (mut reader, writer) = stream.into_split();
        // Writing and reading go on in tasks of their own, so a large write never keeps
        // replies from being read.
        let to_writer = super::spawn_writer(writer);
        let (to_self, mut replies) = mpsc::unbounded_channel::<Result<(u32, Reply), String>>();
        let limit = self.config.max_payload;
        let received = self.status.clone();
        tokio::spawn(async move {
            let mut packets = PacketReader::new();
            let mut assembler = ResponseAssembler::new(limit);
            let mut buffer = vec![0u8; 64 << 10];
            loop {
                let n = match reader.read(&mut buffer).await {
                    Ok(0) => {
                        let _ = to_self.send(Err("the peer closed the connection".into()));
                        return;
                    }
                    Ok(n) => n,
                    Err(e) => {
                        let _ = to_self.send(Err(e.to_string()));
                        return;
                    }
                };
                received.received.fetch_add(n as u64, Ordering::Relaxed);
                packets.extend(&buffer[..n]);
                loop {
                    let answer = packets
                        .next_packet()
                        .and_then(|p| p.map(|body| assembler.packet(&body)).transpose());
                    match answer {
                        Ok(Some(Some(reply))) => {
                            if to_self.send(Ok(reply)).is_err() {
                                return;
                            }
                        }
                        Ok(Some(None)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            let _ = to_self.send(Err(format!("a bad packet from the peer: {e}")));
                            return;
                        }
                    }
                }
            }
        });
        self.send(first, &to_writer);
        loop {
            let deadline = self.calls.values().filter_map(|c| c.deadline).min();
            tokio::select! {
                request = inbox.recv() => match request {
                    Some(request) => self.send(request, &to_writer),
                    None => return Ended::Retired,
                },
                reply = replies.recv() => match reply {
                    Some(Ok((session, reply))) => self.answer(session, reply),
                    Some(Err(why)) => {
                        self.fail_all(&format!("network: connection to node `{}` lost: {why}", self.name));
                        return Ended::Broken;
                    }
                    None => {
                        self.fail_all(&format!("network: connection to node `{}` lost", self.name));
                        return Ended::Broken;
                    }
                },
                () = sleep_until(deadline), if deadline.is_some() => self.expire(),
            }
        }
    }

    /// Writes one request; a call is remembered until its reply.
    fn send(&mut self, request: Outgoing, writer: &mpsc::UnboundedSender<Vec<u8>>) {
        let multipart = frame::request_is_multipart(request.msg.len());
        let session = if request.reply_to.is_some() || multipart {
            let session = self.session;
            self.session = frame::next_session(session);
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
            self.refuse(request, &format!("cannot send: {e}"));
            return;
        }
        self.status
            .sent
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if let Some((caller, caller_session)) = request.reply_to {
            let timeout = request.timeout.or(self.config.call_timeout);
            self.calls.insert(
                session,
                Call {
                    caller,
                    session: caller_session,
                    deadline: timeout.map(|t| Instant::now() + t),
                    timeout,
                },
            );
            self.status
                .in_flight
                .store(self.calls.len(), Ordering::Relaxed);
        }
        // A writer that has ended means the connection broke: the reader reports that.
        let _ = writer.send(bytes);
    }

    /// Delivers a reply to its caller; a reply nobody waits for (timed out) is dropped.
    fn answer(&mut self, session: u32, reply: Reply) {
        let Some(call) = self.calls.remove(&session) else {
            return;
        };
        self.status
            .in_flight
            .store(self.calls.len(), Ordering::Relaxed);
        let Some(node) = self.node.upgrade() else {
            return;
        };
        match reply {
            Ok(msg) => {
                let source = node.cluster_service().unwrap_or(Handle::NONE);
                let _ = node.push(
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
    fn expire(&mut self) {
        let now = Instant::now();
        let due: Vec<u32> = self
            .calls
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(s, _)| *s)
            .collect();
        let Some(node) = self.node.upgrade() else {
            return;
        };
        for session in due {
            if let Some(call) = self.calls.remove(&session) {
                let limit = call.timeout.map_or(0, |t| t.as_millis());
                let why = format!(
                    "timeout: no reply from node `{}` within {limit} ms",
                    self.name
                );
                fail_call(&node, call.caller, call.session, &why);
            }
        }
        self.status
            .in_flight
            .store(self.calls.len(), Ordering::Relaxed);
    }

    fn fail_all(&mut self, why: &str) {
        let calls: Vec<Call> = self.calls.drain().map(|(_, c)| c).collect();
        self.status.in_flight.store(0, Ordering::Relaxed);
        if let Some(node) = self.node.upgrade() {
            for call in calls {
                fail_call(&node, call.caller, call.session, why);
            }
        }
    }

    /// A request that cannot be sent: a call fails with `why`; a push is dropped and logged.
    fn refuse(&self, request: Outgoing, why: &str) {
        let Some(node) = self.node.upgrade() else {
            return;
        };
        match request.reply_to {
            Some((caller, session)) => fail_call(&node, caller, session, why),
            None => node.log(
                Handle::NONE,
                &format!("cluster: a push to node `{}` was dropped: {why}", self.name),
            ),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
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
        super::auth::connect(&mut stream, &secret.0)
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
