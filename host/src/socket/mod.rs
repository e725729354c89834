//! The socket server (skynet's `socket_server.c` with the `skynet_socket.c` adapter): TCP
//! listeners and connections on a tokio runtime of its own thread, known by id and owner.
//!
//! It knows socket ids and owner handles, never services: what happens on a socket becomes
//! an event (`skywasm_abi::socket`) handed to the sink the node gave it, which turns it into
//! a PTYPE_SOCKET message to the owner. Each socket is driven by one task, so its events
//! reach the owner in order. Calls come from worker threads and never block on the network:
//! `listen` binds at once (so its errors are immediate), everything else is queued to the
//! socket's task.
//!
//! Invariants: an id is in the table from its creation until its task ends, and only its
//! task removes it; a socket whose owner is gone (its event could not be delivered) is shut
//! down, so a dead service never keeps a socket open.

pub(crate) mod auth;
pub(crate) mod busy;
mod dns;
pub(crate) mod outbox;
mod task;
mod tls;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use bytes::Bytes;
use rustc_hash::FxHashMap;
use skywasm_abi::{socket as abi, Handle};
use skywasm_pack::{Table, Value};
use tokio::sync::mpsc;

/// Where events go: `(owner, event body)`, and how the owner took it.
pub type EventSink = Box<dyn Fn(Handle, Vec<u8>) -> Delivery + Send + Sync>;

/// How an owner took an event.
pub enum Delivery {
    /// Taken.
    Taken,
    /// Taken, and the owner's mailbox is now over its backlog: the socket reads nothing more
    /// (a listener accepts nothing more) until it has drained.
    Backlogged(Arc<dyn Backlog>),
    /// The owner cannot take it (it is gone).
    Gone,
}

/// An owner's mailbox that holds more than it should of what its sockets read.
pub trait Backlog: Send + Sync {
    /// True while it still holds too much.
    fn over(&self) -> bool;
    /// Notified when it has drained; asking for it registers a waiting socket.
    fn drained(&self) -> &tokio::sync::Notify;
}

/// How long a socket waits for a drained backlog before it looks again anyway (the
/// notification is the rule; this only bounds a miss).
const BACKLOG_RECHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// Waits until `backlog` has drained.
pub(crate) async fn drained(backlog: &dyn Backlog) {
    loop {
        let notified = backlog.drained().notified();
        tokio::pin!(notified);
        // Registered before the check, so a drain right after it is not missed.
        notified.as_mut().enable();
        if !backlog.over() {
            return;
        }
        let _ = tokio::time::timeout(BACKLOG_RECHECK, notified).await;
    }
}

/// Where the server's own notices go (a connection refused by its quota, ...).
pub type NoticeSink = Box<dyn Fn(&str) + Send + Sync>;

/// The sockets a group of owners (one tenant) may hold open at once. Every socket counts
/// against the quota it was opened under until it closes, an accepted connection against its
/// listener's; the quota is also the group's identity, so the node can keep a tenant's
/// services to the tenant's own sockets.
#[derive(Debug)]
pub struct SocketQuota {
    open: AtomicU32,
    limit: u32,
    /// Host-name lookups in flight under this quota (each is a socket too).
    lookups: AtomicU32,
    /// Sockets and lookups refused at the limit.
    refused: AtomicU64,
}

/// The most lookups an untrusted tenant may have in flight at once: the node runs 32 at a
/// time, and one tenant must not hold every turn.
const UNTRUSTED_LOOKUPS: u32 = 8;

impl SocketQuota {
    /// A quota of `limit` open sockets.
    pub fn new(limit: u32) -> Arc<SocketQuota> {
        Arc::new(SocketQuota {
            open: AtomicU32::new(0),
            limit,
            lookups: AtomicU32::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Sockets and lookups refused so far because the quota was used up.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Sockets open under this quota now.
    pub fn open(&self) -> u32 {
        self.open.load(Ordering::Acquire)
    }

    /// The most sockets that may be open under this quota.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// A turn for one more lookup in flight, at most `most` at once.
    fn take_lookup(self: &Arc<Self>, most: u32) -> Result<LookupTicket, SocketError> {
        self.lookups
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < most).then_some(n + 1)
            })
            .map(|_| LookupTicket(self.clone()))
            .map_err(|_| {
                self.refused.fetch_add(1, Ordering::Relaxed);
                SocketError::Limit(format!(
                    "the limit of {most} host-name lookups in flight is reached"
                ))
            })
    }

    fn take(self: &Arc<Self>) -> Result<QuotaTicket, SocketError> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .map(|_| QuotaTicket(self.clone()))
            .map_err(|_| {
                self.refused.fetch_add(1, Ordering::Relaxed);
                SocketError::Limit(format!(
                    "the limit of {} open sockets is reached",
                    self.limit
                ))
            })
    }
}

/// One lookup's turn under a quota, given back when the lookup ends.
struct LookupTicket(Arc<SocketQuota>);

impl Drop for LookupTicket {
    fn drop(&mut self) {
        self.0.lookups.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One socket's place in a quota, given back when the socket's entry goes.
#[derive(Debug)]
struct QuotaTicket(Arc<SocketQuota>);

impl Drop for QuotaTicket {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Who opens a socket: the service that gets its events, and the quota it counts against.
#[derive(Debug, Clone)]
pub struct Owner {
    /// The service.
    pub handle: Handle,
    /// Its tenant's quota.
    pub quota: Arc<SocketQuota>,
    /// Whether a host name is looked up for it (a blocking lookup on the calling thread, as
    /// skynet does; trusted tenants). Otherwise only numeric addresses are taken.
    pub may_resolve: bool,
}

/// Unsent bytes on a socket past which its owner gets a WARNING; the threshold then doubles.
pub const WARNING_THRESHOLD: u64 = 1 << 20;

/// Why a socket call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocketError {
    /// No socket has that id (never had, or it closed).
    #[error("no socket {0}")]
    Unknown(i32),
    /// The address cannot be used (unparsable, unresolvable, in use, ...).
    #[error("{0}")]
    Address(String),
    /// The socket server has stopped (the node is stopping).
    #[error("the socket server has stopped")]
    Stopped,
    /// The owner's quota of open sockets is used up.
    #[error("{0}")]
    Limit(String),
}

/// What a socket is, for `netstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Listen,
    Connecting,
    /// Accepted and waiting for someone to start it.
    Accepted,
    Connected,
    Udp,
    /// A host-name lookup (`socket_resolve`), until its RESOLVE event.
    Resolving,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Listen => "LISTEN",
            Kind::Connecting => "CONNECTING",
            Kind::Accepted => "ACCEPT",
            Kind::Connected => "TCP",
            Kind::Udp => "UDP",
            Kind::Resolving => "RESOLVE",
        }
    }
}

/// What a socket's task is asked to do.
#[derive(Debug)]
pub(crate) enum Control {
    /// Start reading (accepting); an accepted socket first tells its owner CONNECT.
    Start,
    /// Speak TLS from now on (`socket_tls`): the connection's state machine.
    StartTls(Box<rustls::Connection>),
    Pause,
    Send {
        low: bool,
        bytes: Bytes,
    },
    /// A UDP datagram to an address.
    SendTo {
        to: SocketAddr,
        bytes: Bytes,
    },
    /// A UDP socket's default peer.
    Connect(SocketAddr),
    /// Close after sending what is queued.
    Close,
    /// Close now.
    Shutdown,
    Nodelay,
}

/// One socket, as the server's table and `netstat` see it.
pub(crate) struct Entry {
    id: i32,
    kind: Mutex<Kind>,
    /// Who receives its events.
    owner: AtomicU32,
    /// `ip:port` of the other end (or, while connecting, the address asked for).
    peer: Mutex<String>,
    /// `ip:port` of this end.
    local: Mutex<String>,
    read: AtomicU64,
    written: AtomicU64,
    /// Queued and not yet written bytes.
    unsent: AtomicU64,
    /// Sends written whole by their sender, without the task (tests check that the direct
    /// path is taken).
    #[cfg(test)]
    direct_writes: AtomicU64,
    control: mpsc::UnboundedSender<Control>,
    /// Its place in the quota it was opened under.
    ticket: QuotaTicket,
    /// Whether a sender may write to the connection itself, and on what.
    direct: Mutex<Direct>,
}

/// What lets the service sending on a connection write to it on its own thread while
/// nothing is unsent and the socket thread is parked, as skynet's socket server writes
/// directly (a request then costs no wake of the socket thread): the connection's stream
/// while its task runs. Whether anything handed to the task is still unwritten is
/// `Entry::unsent` (counted before a send is told to the task, under this lock, and
/// counted down only once written), so those bytes always go first.
#[derive(Default)]
struct Direct {
    stream: Option<Arc<tokio::net::TcpStream>>,
    /// Never again: the socket is closing, or speaks TLS (which its task encrypts).
    disabled: bool,
}

impl Entry {
    fn set_kind(&self, kind: Kind) {
        *lock(&self.kind) = kind;
    }

    fn owner(&self) -> Handle {
        Handle(self.owner.load(Ordering::Acquire))
    }

    fn quota(&self) -> &Arc<SocketQuota> {
        &self.ticket.0
    }

    /// The connection's task runs on `stream`: senders may write to it directly.
    fn open_direct(&self, stream: &Arc<tokio::net::TcpStream>) {
        let mut direct = lock(&self.direct);
        if !direct.disabled {
            direct.stream = Some(stream.clone());
        }
    }

    /// No more direct writes: everything goes through the task from now on.
    fn end_direct(&self) {
        let mut direct = lock(&self.direct);
        direct.disabled = true;
        direct.stream = None;
    }
}

/// Writes as much of `bytes` as the socket takes now, without waiting; how much. An error
/// stops it quietly: the task meets it again on its own write and reports it.
fn write_now(stream: &tokio::net::TcpStream, bytes: &[u8]) -> usize {
    let mut done = 0;
    while done < bytes.len() {
        match stream.try_write(&bytes[done..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => done += n,
        }
    }
    done
}

/// The runtime thread, started on first use.
struct Reactor {
    handle: tokio::runtime::Handle,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// State shared by the server and its tasks.
pub(crate) struct Shared {
    sink: EventSink,
    notice: NoticeSink,
    /// Unsent bytes past which a connection is closed (its peer does not read).
    max_unsent: u64,
    sockets: Mutex<FxHashMap<i32, Arc<Entry>>>,
    next_id: AtomicI32,
    /// The socket thread is parked, waiting for events: a sender then writes to an idle
    /// connection itself rather than wake the thread to do it (while the thread runs, it
    /// takes the write over at no wake's cost and the sender's worker is spared the
    /// system call, which is what many busy connections want).
    reactor_parked: AtomicBool,
    /// Bytes read and written by sockets that have closed (the open ones count their own).
    closed_bytes: [AtomicU64; 2],
}

/// The node's socket server.
pub struct SocketServer {
    shared: Arc<Shared>,
    reactor: OnceLock<Result<Reactor, String>>,
    /// Stack of the socket thread: with `network_assist` it runs guest code.
    thread_stack: usize,
    /// The network thread's busy polling after node-to-node traffic (run once the thread
    /// runs).
    busy: Arc<busy::BusyPoll>,
}

impl SocketServer {
    /// A server handing every event to `sink` and its own notices to `notice`; a
    /// connection whose unsent bytes pass `max_unsent` is closed with an ERROR. No thread
    /// runs until the first socket, which starts the socket thread with `thread_stack` and
    /// `busy`'s polling task.
    pub fn new(
        sink: EventSink,
        notice: NoticeSink,
        max_unsent: u64,
        thread_stack: usize,
        busy: Arc<busy::BusyPoll>,
    ) -> SocketServer {
        SocketServer {
            shared: Arc::new(Shared {
                sink,
                notice,
                max_unsent,
                sockets: Mutex::new(FxHashMap::default()),
                next_id: AtomicI32::new(0),
                reactor_parked: AtomicBool::new(false),
                closed_bytes: Default::default(),
            }),
            reactor: OnceLock::new(),
            thread_stack,
            busy,
        }
    }

    fn reactor(&self) -> Result<&Reactor, SocketError> {
        let thread_stack = self.thread_stack;
        let reactor = self.reactor.get_or_init(|| {
            let (parks, unparks) = (self.shared.clone(), self.shared.clone());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .on_thread_park(move || parks.reactor_parked.store(true, Ordering::Release))
                .on_thread_unpark(move || unparks.reactor_parked.store(false, Ordering::Release))
                .build()
                .map_err(|e| format!("cannot start the socket runtime: {e}"))?;
            let handle = runtime.handle().clone();
            let busy = self.busy.clone();
            handle.spawn(async move {
                if let Err(panic) = crate::sync::contained(busy.run()).await {
                    tracing::error!("the host panicked in the network thread's busy poll: {panic}");
                }
            });
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name("skywasm-socket".into())
                .stack_size(thread_stack)
                .spawn(move || {
                    // Returns when told to stop (or when the server is dropped); the
                    // runtime's shutdown then ends every socket task and closes its socket,
                    // waiting a bounded time for host name lookups still running.
                    let _ = runtime.block_on(stopped);
                    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
                })
                .map_err(|e| format!("cannot start the socket thread: {e}"))?;
            Ok(Reactor {
                handle,
                stop: Mutex::new(Some(stop)),
                thread: Mutex::new(Some(thread)),
            })
        });
        reactor
            .as_ref()
            .map_err(|e| SocketError::Address(e.clone()))
    }

    /// The runtime the sockets run on (started if need be), for other network tasks of the
    /// node (the cluster gateway), so that one thread serves the network.
    ///
    /// # Errors
    /// [`SocketError::Stopped`] once the node stops; the runtime could not be started.
    pub fn runtime(&self) -> Result<tokio::runtime::Handle, SocketError> {
        Ok(self.running()?.handle.clone())
    }

    /// Stops the runtime thread: every socket closes. Later calls fail with `Stopped`.
    pub fn stop(&self) {
        self.stop_within(None);
    }

    /// [`SocketServer::stop`], waiting at most `limit` for the socket thread (it may be
    /// running a service's message: the network assist); false when it had to be left
    /// running.
    pub fn stop_within(&self, limit: Option<std::time::Duration>) -> bool {
        let mut stopped = true;
        if let Some(Ok(reactor)) = self.reactor.get() {
            if let Some(stop) = lock(&reactor.stop).take() {
                let _ = stop.send(());
            }
            if let Some(thread) = lock(&reactor.thread).take() {
                let deadline = limit.map(|limit| std::time::Instant::now() + limit);
                stopped = crate::sync::wait_until(deadline, || thread.is_finished());
                if stopped {
                    let _ = thread.join();
                }
            }
        }
        lock(&self.shared.sockets).clear();
        stopped
    }

    fn running(&self) -> Result<&Reactor, SocketError> {
        let reactor = self.reactor()?;
        if lock(&reactor.stop).is_none() {
            return Err(SocketError::Stopped);
        }
        Ok(reactor)
    }

    /// A listening socket on `host:port` owned by `owner` (skynet's `socket_server_listen`):
    /// bound at once; it accepts once started. An empty host listens on every address.
    ///
    /// # Errors
    /// [`SocketError::Address`] when the address cannot be resolved or bound,
    /// [`SocketError::Limit`] when the owner's quota is used up.
    pub fn listen(
        &self,
        owner: &Owner,
        host: &str,
        port: u16,
        backlog: i32,
    ) -> Result<i32, SocketError> {
        let reactor = self.running()?;
        let ticket = owner.quota.take()?;
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        let address = resolve(host, port, owner.may_resolve)?;
        let _inside = reactor.handle.enter();
        let listener = bind(address, backlog)
            .map_err(|e| SocketError::Address(format!("listen {host}:{port}: {e}")))?;
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let (entry, control) =
            self.shared
                .register(owner.handle, Kind::Listen, String::new(), ticket);
        *lock(&entry.local) = local;
        reactor.handle.spawn(task::guarded(
            self.shared.clone(),
            entry.clone(),
            task::listener(self.shared.clone(), entry.clone(), listener, control),
        ));
        Ok(entry.id)
    }

    /// Starts a TCP connection to `host:port` for `owner`; its id at once, then a CONNECT or
    /// ERROR event (skynet's `socket_server_connect`).
    ///
    /// # Errors
    /// [`SocketError::Address`] for an empty host or a zero port, or a host name for an
    /// owner that may not have names looked up; [`SocketError::Limit`] when the owner's
    /// quota is used up.
    pub fn connect(&self, owner: &Owner, host: &str, port: u16) -> Result<i32, SocketError> {
        let reactor = self.running()?;
        if host.is_empty() || port == 0 {
            return Err(SocketError::Address(format!(
                "connect {host}:{port}: a host and a port are needed"
            )));
        }
        if !owner.may_resolve {
            // Numeric only: the connect task then makes no lookup either.
            resolve(host, port, false)?;
        }
        let ticket = owner.quota.take()?;
        let (entry, control) = self.shared.register(
            owner.handle,
            Kind::Connecting,
            format!("{host}:{port}"),
            ticket,
        );
        reactor.handle.spawn(task::guarded(
            self.shared.clone(),
            entry.clone(),
            task::connect(
                self.shared.clone(),
                entry.clone(),
                host.to_string(),
                port,
                control,
            ),
        ));
        Ok(entry.id)
    }

    /// Starts looking up `name` for `owner` (IPv6 addresses when `ipv6`, else IPv4), first
    /// in `hosts_file` (the node's `dns_hosts`): the lookup's id at once, then a RESOLVE
    /// event (`ud` 0 and the addresses separated by spaces, or `ud` 1 and why not). A lookup
    /// counts as one of the owner's sockets until it ends.
    ///
    /// # Errors
    /// [`SocketError::Address`] for what cannot be a host name; [`SocketError::Limit`] when
    /// the owner's quota is used up.
    pub fn resolve(
        &self,
        owner: &Owner,
        name: &str,
        ipv6: bool,
        hosts_file: Option<String>,
    ) -> Result<i32, SocketError> {
        let reactor = self.running()?;
        if !dns::valid_name(name) {
            return Err(SocketError::Address(format!(
                "resolve {name:?}: not a host name"
            )));
        }
        // a trusted tenant's lookups share only the node's 32 turns
        let most = if owner.may_resolve {
            u32::MAX
        } else {
            UNTRUSTED_LOOKUPS
        };
        let turn = owner.quota.take_lookup(most)?;
        let ticket = owner.quota.take()?;
        let (entry, control) =
            self.shared
                .register(owner.handle, Kind::Resolving, name.to_string(), ticket);
        reactor.handle.spawn(task::guarded(
            self.shared.clone(),
            entry.clone(),
            task::resolve(
                self.shared.clone(),
                entry.clone(),
                name.to_string(),
                ipv6,
                hosts_file,
                control,
                turn,
            ),
        ));
        Ok(entry.id)
    }

    /// A UDP socket bound to `host:port` (empty host: every IPv4 address; port 0: any),
    /// owned by `owner`, receiving at once: each datagram is a UDP event whose payload is
    /// the data, then the sender's `ip:port` (`ud` = the data's length).
    ///
    /// # Errors
    /// [`SocketError::Address`] when the address cannot be resolved or bound,
    /// [`SocketError::Limit`] when the owner's quota is used up.
    pub fn udp(&self, owner: &Owner, host: &str, port: u16) -> Result<i32, SocketError> {
        let reactor = self.running()?;
        let ticket = owner.quota.take()?;
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        let address = resolve(host, port, owner.may_resolve)?;
        let _inside = reactor.handle.enter();
        let socket = std::net::UdpSocket::bind(address)
            .and_then(|s| {
                s.set_nonblocking(true)?;
                tokio::net::UdpSocket::from_std(s)
            })
            .map_err(|e| SocketError::Address(format!("udp {host}:{port}: {e}")))?;
        let (entry, control) = self
            .shared
            .register(owner.handle, Kind::Udp, String::new(), ticket);
        if let Ok(local) = socket.local_addr() {
            *lock(&entry.local) = local.to_string();
        }
        reactor.handle.spawn(task::guarded(
            self.shared.clone(),
            entry.clone(),
            task::udp(self.shared.clone(), entry.clone(), socket, control),
        ));
        Ok(entry.id)
    }

    /// Sets UDP socket `id`'s default peer, where [`SocketServer::send`] sends.
    ///
    /// # Errors
    /// [`SocketError::Unknown`]; [`SocketError::Address`] for an unresolvable address or
    /// a socket that is not UDP.
    pub fn udp_connect(
        &self,
        id: i32,
        host: &str,
        port: u16,
        may_resolve: bool,
    ) -> Result<(), SocketError> {
        let entry = self.udp_entry(id)?;
        let peer = resolve(host, port, may_resolve)?;
        *lock(&entry.peer) = peer.to_string();
        self.tell(&entry, Control::Connect(peer))
    }

    /// Sends one datagram from UDP socket `id` to `to` (`ip:port`, as UDP events give it).
    ///
    /// # Errors
    /// [`SocketError::Unknown`]; [`SocketError::Address`] for a malformed address or a
    /// socket that is not UDP.
    pub fn send_to(&self, id: i32, to: &str, bytes: Bytes) -> Result<(), SocketError> {
        let entry = self.udp_entry(id)?;
        let to: SocketAddr = to
            .parse()
            .map_err(|_| SocketError::Address(format!("bad UDP address {to:?}")))?;
        self.tell(&entry, Control::SendTo { to, bytes })
    }

    fn udp_entry(&self, id: i32) -> Result<Arc<Entry>, SocketError> {
        let entry = self.entry(id)?;
        if *lock(&entry.kind) != Kind::Udp {
            return Err(SocketError::Address(format!(
                "socket {id} is not a UDP socket"
            )));
        }
        Ok(entry)
    }

    fn entry(&self, id: i32) -> Result<Arc<Entry>, SocketError> {
        lock(&self.shared.sockets)
            .get(&id)
            .cloned()
            .ok_or(SocketError::Unknown(id))
    }

    fn tell(&self, entry: &Entry, control: Control) -> Result<(), SocketError> {
        entry
            .control
            .send(control)
            .map_err(|_| SocketError::Unknown(entry.id))
    }

    /// `caller` becomes the owner of socket `id`, which starts reading (a listener:
    /// accepting). An accepted socket first tells its new owner CONNECT.
    ///
    /// # Errors
    /// [`SocketError::Unknown`].
    pub fn start(&self, caller: Handle, id: i32) -> Result<(), SocketError> {
        let entry = self.entry(id)?;
        if *lock(&entry.kind) == Kind::Resolving {
            return Err(SocketError::Address(format!(
                "socket {id} is a lookup: it cannot be started"
            )));
        }
        entry.owner.store(caller.0, Ordering::Release);
        self.tell(&entry, Control::Start)
    }

    /// Stops reading socket `id` until it is started again.
    ///
    /// # Errors
    /// [`SocketError::Unknown`].
    pub fn pause(&self, id: i32) -> Result<(), SocketError> {
        let entry = self.entry(id)?;
        self.tell(&entry, Control::Pause)
    }

    /// Closes socket `id` once its queued bytes are sent; its owner gets CLOSE.
    ///
    /// # Errors
    /// [`SocketError::Unknown`].
    pub fn close(&self, id: i32) -> Result<(), SocketError> {
        let entry = self.entry(id)?;
        entry.end_direct();
        self.tell(&entry, Control::Close)
    }

    /// Closes socket `id` now, dropping what is queued; its owner gets CLOSE.
    ///
    /// # Errors
    /// [`SocketError::Unknown`].
    pub fn shutdown(&self, id: i32) -> Result<(), SocketError> {
        let entry = self.entry(id)?;
        entry.end_direct();
        self.tell(&entry, Control::Shutdown)
    }

    /// Disables Nagle's algorithm on socket `id`.
    ///
    /// # Errors
    /// [`SocketError::Unknown`].
    pub fn nodelay(&self, id: i32) -> Result<(), SocketError> {
        let entry = self.entry(id)?;
        self.tell(&entry, Control::Nodelay)
    }

    /// Makes TCP socket `id` speak TLS: as a client of `server` (`None`) verifying the
    /// name against the system's roots and the `ca` file, or as a server (`Some((cert,
    /// key))`, PEM files). A client's handshake starts at once (the owner gets a TLS event
    /// when it is done, or ERROR); a server's starts with the first bytes read (call it
    /// before starting an accepted socket, so that nothing is read in plain text first).
    ///
    /// # Errors
    /// [`SocketError::Unknown`]; [`SocketError::Address`] for a socket that is not a TCP
    /// connection, a name that cannot be verified, or files that do not load.
    pub fn start_tls(
        &self,
        id: i32,
        client_of: Option<&str>,
        ca: Option<&str>,
        server: Option<(&str, &str)>,
    ) -> Result<(), SocketError> {
        let entry = self.entry(id)?;
        let kind = *lock(&entry.kind);
        if !matches!(kind, Kind::Connecting | Kind::Connected | Kind::Accepted) {
            return Err(SocketError::Address(format!(
                "socket {id} is not a TCP connection: no TLS on it"
            )));
        }
        let connection = match (client_of, server) {
            (Some(name), _) => tls::client(name, ca),
            (None, Some((cert, key))) => tls::server(cert, key),
            (None, None) => Err("tls: a server needs tls_cert and tls_key in the config".into()),
        }
        .map_err(SocketError::Address)?;
        entry.end_direct();
        self.tell(&entry, Control::StartTls(Box::new(connection)))
    }

    /// Queues `bytes` on socket `id` (`low`: the low-priority queue, written when the
    /// normal one is empty).
    ///
    /// # Errors
    /// [`SocketError::Unknown`].
    pub fn send(&self, id: i32, low: bool, bytes: Bytes) -> Result<(), SocketError> {
        let entry = self.entry(id)?;
        let kind = *lock(&entry.kind);
        if kind == Kind::Listen || kind == Kind::Resolving {
            return Err(SocketError::Address(format!(
                "socket {id} is not a connection: nothing can be sent on it"
            )));
        }
        // A datagram is sent at once: only a stream queues unsent bytes.
        if kind == Kind::Udp {
            return self.tell(&entry, Control::Send { low, bytes });
        }
        // (held until the send is told to the task, so that no direct write can pass it)
        let direct = lock(&entry.direct);
        let mut bytes = bytes;
        let parked = self.shared.reactor_parked.load(Ordering::Acquire);
        if !low && parked && entry.unsent.load(Ordering::Acquire) == 0 {
            if let Some(stream) = &direct.stream {
                let n = write_now(stream, &bytes);
                entry.written.fetch_add(n as u64, Ordering::AcqRel);
                if n == bytes.len() {
                    #[cfg(test)]
                    entry.direct_writes.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                let _ = bytes.split_to(n);
            }
        }
        let len = bytes.len() as u64;
        let before = entry.unsent.fetch_add(len, Ordering::AcqRel);
        // A connected socket past the cap is closed by its task, as the peer does not read;
        // one still connecting has no task to write yet, so the send is refused.
        let max = self.shared.max_unsent;
        if kind == Kind::Connecting && before.saturating_add(len) > max {
            entry.unsent.fetch_sub(len, Ordering::AcqRel);
            return Err(SocketError::Limit(format!(
                "socket {id} is still connecting with {before} bytes queued: over the \
                 socket_max_unsent of {max}"
            )));
        }
        self.tell(&entry, Control::Send { low, bytes })
    }

    /// `ip:port` of this end of socket `id`.
    ///
    /// # Errors
    /// [`SocketError::Unknown`].
    pub fn local_address(&self, id: i32) -> Result<String, SocketError> {
        Ok(lock(&self.entry(id)?.local).clone())
    }

    /// True when socket `id` was opened under `quota` (it belongs to that group).
    ///
    /// # Errors
    /// [`SocketError::Unknown`] when there is no such socket or it belongs to another group
    /// (whose sockets are none of the caller's business).
    pub fn check_group(&self, id: i32, quota: &Arc<SocketQuota>) -> Result<(), SocketError> {
        match self.entry(id) {
            Ok(entry) if Arc::ptr_eq(entry.quota(), quota) => Ok(()),
            _ => Err(SocketError::Unknown(id)),
        }
    }

    /// Every socket (of the group of `quota`, if given), for `netstat`: `{id, type,
    /// address, owner, read, write, wbuffer}`, ordered by id.
    pub fn info(&self, quota: Option<&Arc<SocketQuota>>) -> Vec<Value> {
        let mut entries: Vec<Arc<Entry>> = lock(&self.shared.sockets)
            .values()
            .filter(|e| quota.is_none_or(|q| Arc::ptr_eq(e.quota(), q)))
            .cloned()
            .collect();
        entries.sort_by_key(|e| e.id);
        entries
            .iter()
            .map(|e| {
                let kind = *lock(&e.kind);
                let address =
                    if kind == Kind::Listen || (kind == Kind::Udp && lock(&e.peer).is_empty()) {
                        lock(&e.local).clone()
                    } else {
                        lock(&e.peer).clone()
                    };
                let field = |k: &str, v: Value| (Value::from(k), v);
                let count = |n: &AtomicU64| Value::Integer(n.load(Ordering::Acquire) as i64);
                Value::Table(Table {
                    array: Vec::new(),
                    hash: vec![
                        field("id", Value::Integer(i64::from(e.id))),
                        field("type", Value::from(kind.name())),
                        field("address", Value::from(address)),
                        field("owner", Value::Integer(i64::from(e.owner().0))),
                        field("read", count(&e.read)),
                        field("write", count(&e.written)),
                        field("wbuffer", count(&e.unsent)),
                    ],
                })
            })
            .collect()
    }

    /// The ports of every TCP listener and bound UDP socket of the node's socket server
    /// whose quota is not `except` (another tenant's and the node's own).
    pub fn listening_ports(&self, except: Option<&Arc<SocketQuota>>) -> Vec<u16> {
        lock(&self.shared.sockets)
            .values()
            .filter(|e| except.is_none_or(|q| !Arc::ptr_eq(e.quota(), q)))
            .filter(|e| matches!(*lock(&e.kind), Kind::Listen | Kind::Udp))
            .filter_map(|e| port_of(&lock(&e.local)))
            .collect()
    }

    /// Shuts down every socket `owner` owns (the service ended).
    pub fn close_owned_by(&self, owner: Handle) {
        let owned: Vec<Arc<Entry>> = lock(&self.shared.sockets)
            .values()
            .filter(|e| e.owner() == owner)
            .cloned()
            .collect();
        for entry in owned {
            entry.end_direct();
            let _ = entry.control.send(Control::Shutdown);
        }
    }

    /// Bytes every socket of the node has read and written so far: `(read, written)`.
    pub fn bytes(&self) -> (u64, u64) {
        let [read, written] = &self.shared.closed_bytes;
        let (mut read, mut written) = (
            read.load(Ordering::Relaxed),
            written.load(Ordering::Relaxed),
        );
        for entry in lock(&self.shared.sockets).values() {
            read += entry.read.load(Ordering::Acquire);
            written += entry.written.load(Ordering::Acquire);
        }
        (read, written)
    }

    /// Number of open sockets.
    pub fn len(&self) -> usize {
        lock(&self.shared.sockets).len()
    }

    /// True when no socket is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for SocketServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// Registers a socket under a fresh id (positive, skipping ids in use after a wrap).
    fn register(
        &self,
        owner: Handle,
        kind: Kind,
        peer: String,
        ticket: QuotaTicket,
    ) -> (Arc<Entry>, mpsc::UnboundedReceiver<Control>) {
        let (control, receiver) = mpsc::unbounded_channel();
        let mut sockets = lock(&self.sockets);
        let id = loop {
            let id = self
                .next_id
                .fetch_add(1, Ordering::AcqRel)
                .wrapping_add(1)
                .max(1);
            if id == i32::MAX {
                self.next_id.store(0, Ordering::Release);
            }
            if !sockets.contains_key(&id) {
                break id;
            }
        };
        let entry = Arc::new(Entry {
            id,
            kind: Mutex::new(kind),
            owner: AtomicU32::new(owner.0),
            peer: Mutex::new(peer),
            local: Mutex::new(String::new()),
            read: AtomicU64::new(0),
            written: AtomicU64::new(0),
            unsent: AtomicU64::new(0),
            #[cfg(test)]
            direct_writes: AtomicU64::new(0),
            control,
            ticket,
            direct: Mutex::new(Direct::default()),
        });
        sockets.insert(id, entry.clone());
        (entry, receiver)
    }

    fn remove(&self, id: i32) {
        if let Some(entry) = lock(&self.sockets).remove(&id) {
            let [read, written] = &self.closed_bytes;
            read.fetch_add(entry.read.load(Ordering::Acquire), Ordering::Relaxed);
            written.fetch_add(entry.written.load(Ordering::Acquire), Ordering::Relaxed);
        }
    }

    /// Hands one event to the socket's owner; false if the owner is gone.
    fn emit(&self, entry: &Entry, kind: u32, ud: i32, payload: &[u8]) -> bool {
        !matches!(self.deliver(entry, kind, ud, payload), Delivery::Gone)
    }

    /// Hands one event to the socket's owner, saying whether its mailbox is backlogged.
    fn deliver(&self, entry: &Entry, kind: u32, ud: i32, payload: &[u8]) -> Delivery {
        (self.sink)(entry.owner(), event(kind, entry.id, ud, payload))
    }
}

/// The port of an `ip:port` text (IPv6 in brackets or not).
pub fn port_of(address: &str) -> Option<u16> {
    address.rsplit_once(':')?.1.parse().ok()
}

/// True for a host that names this machine itself: a loopback or unspecified address
/// (IPv4, IPv6, or IPv4 mapped into IPv6).
pub fn is_local_host(host: &str) -> bool {
    match numeric_ip(host) {
        Some(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Some(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_unspecified())
        }
        None => false,
    }
}

/// The IP address a numeric host is (IPv4, IPv6 in brackets or not); none for a name.
pub(crate) fn numeric_ip(host: &str) -> Option<std::net::IpAddr> {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

/// An event body: type, id, ud (little-endian), then the payload (`skywasm_abi::socket`).
pub fn event(kind: u32, id: i32, ud: i32, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(abi::EVENT_HEADER + payload.len());
    body.extend_from_slice(&kind.to_le_bytes());
    body.extend_from_slice(&id.to_le_bytes());
    body.extend_from_slice(&ud.to_le_bytes());
    body.extend_from_slice(payload);
    body
}

/// The address `host:port` names. A numeric host (IPv4, IPv6, bracketed or not) is taken
/// as it is, with no system call; a host name is looked up only when `may_resolve`.
fn resolve(host: &str, port: u16, may_resolve: bool) -> Result<SocketAddr, SocketError> {
    if let Some(ip) = numeric_ip(host) {
        return Ok(SocketAddr::new(ip, port));
    }
    if !may_resolve {
        return Err(SocketError::Address(format!(
            "bad address {host}:{port}: host names are not looked up for untrusted tenants \
             (a lookup would block a worker); give a numeric address"
        )));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| SocketError::Address(format!("bad address {host}:{port}: {e}")))?
        .next()
        .ok_or_else(|| SocketError::Address(format!("bad address {host}:{port}: no such host")))
}

fn bind(address: SocketAddr, backlog: i32) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(u32::try_from(backlog).ok().filter(|b| *b > 0).unwrap_or(32))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
