//! The task behind each socket: one per listener, one per connection, so that a socket's
//! events are produced in order by a single writer.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use skywasm_abi::socket as abi;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{lock, Backlog, Control, Delivery, Entry, Kind, Shared, WARNING_THRESHOLD};

/// Bytes read from a connection at a time (one DATA event at most this large).
const READ_CHUNK: usize = 64 << 10;

/// A listening socket: accepts while started; each connection becomes a new socket in the
/// `Accepted` state, owned by this socket's owner until someone starts it.
/// Waits until `backlog` (if any) has drained.
async fn until_drained(backlog: Option<Arc<dyn Backlog>>) {
    if let Some(backlog) = backlog {
        super::drained(&*backlog).await;
    }
}

/// Runs `task`, the task of socket `entry`. A host panic in it does not end the task
/// silently: the socket is closed, its owner gets an ERROR event saying why, and the
/// server's notice names it.
pub(super) async fn guarded(
    shared: Arc<Shared>,
    entry: Arc<Entry>,
    task: impl std::future::Future<Output = ()>,
) {
    if let Err(panic) = crate::sync::contained(task).await {
        let why = format!("the host panicked serving it: {panic}");
        (shared.notice)(&format!(
            "socket {} of {}: {why}; closed",
            entry.id,
            entry.owner()
        ));
        entry.end_direct();
        shared.remove(entry.id);
        shared.emit(&entry, abi::ERROR, 0, why.as_bytes());
    }
}

pub(super) async fn listener(
    shared: Arc<Shared>,
    entry: Arc<Entry>,
    listener: TcpListener,
    mut control: UnboundedReceiver<Control>,
) {
    let mut accepting = false;
    let mut backlog: Option<Arc<dyn Backlog>> = None;
    loop {
        let waiting = backlog.clone();
        tokio::select! {
            () = until_drained(waiting.clone()), if waiting.is_some() => backlog = None,
            command = control.recv() => match command {
                Some(Control::Start) => {
                    accepting = true;
                    // Every start is announced to the (possibly new) owner, as skynet's
                    // socket_server reports "start".
                    let local = lock(&entry.local).clone();
                    if !shared.emit(&entry, abi::CONNECT, 0, local.as_bytes()) {
                        break;
                    }
                }
                Some(Control::Pause) => accepting = false,
                Some(Control::Close | Control::Shutdown) | None => {
                    shared.emit(&entry, abi::CLOSE, 0, b"");
                    break;
                }
                Some(
                    Control::Send { .. }
                    | Control::SendTo { .. }
                    | Control::Connect(_)
                    | Control::Nodelay
                    | Control::StartTls(_),
                ) => {}
            },
            accepted = listener.accept(), if accepting && waiting.is_none() => match accepted {
                Ok((stream, peer)) => {
                    let ticket = match entry.quota().take() {
                        Ok(ticket) => ticket,
                        Err(e) => {
                            // As skynet at its descriptor limit: the listener keeps listening.
                            (shared.notice)(&format!(
                                "socket {} of {}: closed a connection from {peer}: {e}",
                                entry.id,
                                entry.owner()
                            ));
                            continue;
                        }
                    };
                    let (new, receiver) =
                        shared.register(entry.owner(), Kind::Accepted, peer.to_string(), ticket);
                    set_local(&new, &stream);
                    let delivery =
                        shared.deliver(&entry, abi::ACCEPT, new.id, peer.to_string().as_bytes());
                    if let Delivery::Gone = delivery {
                        // The owner is gone: neither socket has anyone to serve.
                        shared.remove(new.id);
                        break;
                    }
                    let serve = connection(shared.clone(), new.clone(), stream, receiver, false);
                    tokio::spawn(guarded(shared.clone(), new, serve));
                    if let Delivery::Backlogged(full) = delivery {
                        // New connections meanwhile wait in the kernel's backlog.
                        backlog = Some(full);
                    }
                }
                // Out of descriptors and the like: skynet keeps listening; so do we, after
                // a pause so a persistent error does not spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
    shared.remove(entry.id);
}

/// A connection being made: CONNECT then a connection that reads at once, or ERROR.
pub(super) async fn connect(
    shared: Arc<Shared>,
    entry: Arc<Entry>,
    host: String,
    port: u16,
    control: UnboundedReceiver<Control>,
) {
    match TcpStream::connect((host.as_str(), port)).await {
        Ok(stream) => {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| format!("{host}:{port}"));
            *lock(&entry.peer) = peer.clone();
            set_local(&entry, &stream);
            entry.set_kind(Kind::Connected);
            if shared.emit(&entry, abi::CONNECT, 0, peer.as_bytes()) {
                connection(shared, entry, stream, control, true).await;
            } else {
                shared.remove(entry.id);
            }
        }
        Err(e) => {
            let reason = format!("connect {host}:{port}: {e}");
            shared.emit(&entry, abi::ERROR, 0, reason.as_bytes());
            shared.remove(entry.id);
        }
    }
}

/// A lookup (`SocketServer::resolve`): its RESOLVE event, then it is gone. Closing it (its
/// owner ending does) drops it at once, with no event.
pub(super) async fn resolve(
    shared: Arc<Shared>,
    entry: Arc<Entry>,
    name: String,
    ipv6: bool,
    hosts_file: Option<String>,
    mut control: UnboundedReceiver<Control>,
    turn: super::LookupTicket,
) {
    let lookup = super::dns::lookup(&name, ipv6, hosts_file.as_deref());
    tokio::pin!(lookup);
    let result = loop {
        tokio::select! {
            result = &mut lookup => break Some(result),
            command = control.recv() => match command {
                Some(Control::Close | Control::Shutdown) | None => break None,
                Some(_) => {}
            },
        }
    };
    drop(turn);
    let Some(result) = result else {
        shared.remove(entry.id);
        return;
    };
    match result {
        Ok(addresses) => {
            let text = addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ");
            shared.emit(&entry, abi::RESOLVE, 0, text.as_bytes());
        }
        Err(why) => {
            shared.emit(&entry, abi::RESOLVE, 1, why.as_bytes());
        }
    }
    shared.remove(entry.id);
}

/// Where a connection's life ends.
enum End {
    /// Closed by its owner (after the queue drained) or by the peer and then its owner.
    Closed,
    /// Failed: ERROR was sent.
    Failed,
    /// The owner is gone.
    Orphaned,
}

/// A connected socket: reads while started and not paused, writes its queues (normal
/// first), reports the peer's EOF as CLOSE and keeps writing until closed.
async fn connection(
    shared: Arc<Shared>,
    entry: Arc<Entry>,
    stream: TcpStream,
    mut control: UnboundedReceiver<Control>,
    started: bool,
) {
    let mut state = Connection {
        reading: started,
        read_closed: false,
        close_sent: false,
        closing: false,
        high: VecDeque::new(),
        low: VecDeque::new(),
        low_started: false,
        warn_at: WARNING_THRESHOLD,
        warned: false,
        tls: None,
        tls_ready: false,
        close_notified: false,
    };
    let stream = Arc::new(stream);
    entry.open_direct(&stream);
    let mut buffer = vec![0u8; READ_CHUNK];
    // (the decrypted text's buffer, made when a TLS socket first reads: most never do)
    let mut plain: Vec<u8> = Vec::new();
    let mut backlog: Option<Arc<dyn Backlog>> = None;
    let end = loop {
        let queued = !state.high.is_empty() || !state.low.is_empty();
        if state.closing && !queued {
            match state.tls.as_deref_mut() {
                None => break End::Closed,
                Some(tls) => {
                    // a TLS close says so to the peer first
                    if !state.close_notified {
                        tls.send_close_notify();
                        state.close_notified = true;
                    }
                    if !tls.wants_write() {
                        break End::Closed;
                    }
                }
            }
        }
        let tls_writes = state.tls.as_ref().is_some_and(|tls| tls.wants_write());
        let waiting = backlog.clone();
        tokio::select! {
            () = until_drained(waiting.clone()), if waiting.is_some() => backlog = None,
            command = control.recv() => {
                let Some(command) = command else { break End::Closed };
                match state.command(&shared, &entry, &stream, command) {
                    Ok(true) => {}
                    Ok(false) => break End::Closed,
                    Err(end) => break end,
                }
            }
            ready = stream.readable(), if state.reading && !state.read_closed && waiting.is_none() => {
                if ready.is_err() {
                    continue;
                }
                match stream.try_read(&mut buffer) {
                    Ok(0) => {
                        state.read_closed = true;
                        state.close_sent = true;
                        if !shared.emit(&entry, abi::CLOSE, 0, b"") {
                            break End::Orphaned;
                        }
                    }
                    Ok(n) if state.tls.is_some() => {
                        entry.read.fetch_add(n as u64, Ordering::AcqRel);
                        if plain.is_empty() {
                            plain.resize(READ_CHUNK, 0);
                        }
                        match state.decrypt(&shared, &entry, &stream, &buffer[..n], &mut plain) {
                            Ok(Some(full)) => backlog = Some(full),
                            Ok(None) => {}
                            Err(end) => break end,
                        }
                    }
                    Ok(n) => {
                        entry.read.fetch_add(n as u64, Ordering::AcqRel);
                        match shared.deliver(&entry, abi::DATA, n as i32, &buffer[..n]) {
                            Delivery::Taken => {}
                            Delivery::Backlogged(full) => backlog = Some(full),
                            Delivery::Gone => break End::Orphaned,
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => break state.fail(&shared, &entry, "read", &e),
                }
            }
            ready = stream.writable(), if queued || tls_writes => {
                if ready.is_err() {
                    continue;
                }
                if let Err(end) = state.write(&shared, &entry, &stream) {
                    break end;
                }
            }
        }
    };
    // (the entry may outlive the task: its stream must not)
    entry.end_direct();
    if matches!(end, End::Closed) && !state.close_sent {
        shared.emit(&entry, abi::CLOSE, 0, b"");
    }
    shared.remove(entry.id);
}

/// A connection's own state, kept by its task.
struct Connection {
    reading: bool,
    /// The peer sent EOF.
    read_closed: bool,
    close_sent: bool,
    /// Closing once the queues drain.
    closing: bool,
    high: VecDeque<Bytes>,
    low: VecDeque<Bytes>,
    /// The front low-priority buffer is written in part.
    low_started: bool,
    /// Unsent bytes at which the next WARNING goes out.
    warn_at: u64,
    warned: bool,
    /// The TLS connection, once the socket speaks TLS (`socket_tls`).
    tls: Option<Box<rustls::Connection>>,
    /// The TLS event went out (the handshake is done).
    tls_ready: bool,
    /// The TLS close_notify is queued.
    close_notified: bool,
}

impl Connection {
    /// Applies one command; `Ok(false)` ends the connection (shut down), `Err` ends it too.
    fn command(
        &mut self,
        shared: &Shared,
        entry: &Entry,
        stream: &TcpStream,
        command: Control,
    ) -> Result<bool, End> {
        match command {
            Control::Start => {
                // Announced to the owner every time: after an accept, and after a hand-over
                // to another service (skynet's "transfer"), whose `socket.start` waits for it.
                entry.set_kind(Kind::Connected);
                let peer = lock(&entry.peer).clone();
                if !shared.emit(entry, abi::CONNECT, 0, peer.as_bytes()) {
                    return Err(End::Orphaned);
                }
                if !self.closing {
                    self.reading = true;
                }
            }
            Control::Pause => self.reading = false,
            Control::Send { low, bytes } => {
                if self.closing {
                    entry.unsent.fetch_sub(bytes.len() as u64, Ordering::AcqRel);
                } else {
                    if low {
                        self.low.push_back(bytes);
                    } else {
                        self.high.push_back(bytes);
                    }
                    let unsent = entry.unsent.load(Ordering::Acquire);
                    if unsent > shared.max_unsent {
                        // The peer is not reading: drop the socket rather than the memory.
                        let reason = format!(
                            "socket {}: {unsent} bytes unsent, over socket_max_unsent ({}): \
                             the peer is not reading; closed",
                            entry.id, shared.max_unsent
                        );
                        self.close_sent = true;
                        shared.emit(entry, abi::ERROR, 0, reason.as_bytes());
                        self.drop_queues(entry);
                        return Err(End::Failed);
                    }
                    if unsent >= self.warn_at {
                        self.warn_at = self.warn_at.saturating_mul(2);
                        self.warned = true;
                        let kib = i32::try_from(unsent / 1024).unwrap_or(i32::MAX);
                        if !shared.emit(entry, abi::WARNING, kib, b"") {
                            return Err(End::Orphaned);
                        }
                    }
                }
            }
            Control::Close => {
                self.closing = true;
                self.reading = false;
            }
            Control::Shutdown => {
                self.drop_queues(entry);
                return Ok(false);
            }
            Control::Nodelay => {
                let _ = stream.set_nodelay(true);
            }
            Control::StartTls(connection) => {
                if self.tls.is_none() {
                    self.tls = Some(connection);
                }
            }
            Control::SendTo { .. } | Control::Connect(_) => {}
        }
        Ok(true)
    }

    /// Feeds bytes read from a TLS socket to its connection and delivers the plain text
    /// that comes out (the first time the handshake is done, a TLS event); the owner's
    /// backlog when it is full. A peer that breaks the protocol gets its alert and the
    /// socket fails.
    fn decrypt(
        &mut self,
        shared: &Shared,
        entry: &Entry,
        stream: &TcpStream,
        bytes: &[u8],
        plain: &mut [u8],
    ) -> Result<Option<Arc<dyn Backlog>>, End> {
        let mut tls = self.tls.take().expect("a TLS socket");
        let result = self.decrypt_with(&mut tls, shared, entry, stream, bytes, plain);
        self.tls = Some(tls);
        result
    }

    fn decrypt_with(
        &mut self,
        tls: &mut rustls::Connection,
        shared: &Shared,
        entry: &Entry,
        stream: &TcpStream,
        mut bytes: &[u8],
        plain: &mut [u8],
    ) -> Result<Option<Arc<dyn Backlog>>, End> {
        use std::io::Read;
        let mut full = None;
        while !bytes.is_empty() {
            if let Err(e) = tls.read_tls(&mut bytes) {
                return Err(self.fail(shared, entry, "tls read", &e));
            }
            if let Err(e) = tls.process_new_packets() {
                // the alert the peer is owed, if the socket takes it now
                let _ = tls.write_tls(&mut super::tls::TryWriter(stream));
                let e = std::io::Error::new(ErrorKind::InvalidData, e);
                return Err(self.fail(shared, entry, "tls", &e));
            }
            if !self.tls_ready && !tls.is_handshaking() {
                self.tls_ready = true;
                let version = tls
                    .protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default();
                if !shared.emit(entry, abi::TLS, 0, version.as_bytes()) {
                    return Err(End::Orphaned);
                }
            }
            loop {
                match tls.reader().read(plain) {
                    Ok(0) => {
                        // the peer's close_notify: its side is closed, as a TCP EOF
                        if !self.read_closed {
                            self.read_closed = true;
                            self.close_sent = true;
                            if !shared.emit(entry, abi::CLOSE, 0, b"") {
                                return Err(End::Orphaned);
                            }
                        }
                        break;
                    }
                    Ok(n) => match shared.deliver(entry, abi::DATA, n as i32, &plain[..n]) {
                        Delivery::Taken => {}
                        Delivery::Backlogged(backlog) => full = Some(backlog),
                        Delivery::Gone => return Err(End::Orphaned),
                    },
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(self.fail(shared, entry, "tls read", &e)),
                }
            }
        }
        Ok(full)
    }

    /// Writes as much of the queues as the socket takes now (through TLS when it speaks it).
    fn write(&mut self, shared: &Shared, entry: &Entry, stream: &TcpStream) -> Result<(), End> {
        if self.tls.is_some() {
            return self.write_tls(shared, entry, stream);
        }
        let written = self.drain(entry, |bytes| {
            let n = stream.try_write(bytes)?;
            entry.written.fetch_add(n as u64, Ordering::AcqRel);
            Ok(n)
        });
        if let Err(e) = written {
            return Err(self.fail(shared, entry, "write", &e));
        }
        self.drained_warning(shared, entry)
    }

    /// Hands the queued bytes to `write` until it takes none (would block, or a TLS buffer
    /// is full) or fails; what it took leaves `unsent`. A low-priority buffer written in
    /// part is finished first: the peer must not see normal bytes in the middle of it
    /// (skynet moves it ahead the same way).
    fn drain(
        &mut self,
        entry: &Entry,
        mut write: impl FnMut(&[u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<()> {
        loop {
            let low = self.high.is_empty() || self.low_started;
            let queue = if low { &mut self.low } else { &mut self.high };
            let Some(front) = queue.front_mut() else {
                return Ok(());
            };
            let n = if front.is_empty() {
                0
            } else {
                match write(front) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e),
                }
            };
            entry.unsent.fetch_sub(n as u64, Ordering::AcqRel);
            if n == front.len() {
                queue.pop_front();
                if low {
                    self.low_started = false;
                }
            } else {
                let _ = front.split_to(n);
                if low {
                    self.low_started = true;
                }
            }
        }
    }

    /// Once the queues are empty after a warning, tells the owner (skynet sends a 0 KiB
    /// warning).
    fn drained_warning(&mut self, shared: &Shared, entry: &Entry) -> Result<(), End> {
        if self.warned && self.high.is_empty() && self.low.is_empty() {
            self.warned = false;
            self.warn_at = WARNING_THRESHOLD;
            if !shared.emit(entry, abi::WARNING, 0, b"") {
                return Err(End::Orphaned);
            }
        }
        Ok(())
    }

    /// The TLS side of [`Connection::write`]: plain text from the queues into the TLS
    /// connection (as much as its buffer takes), then its records onto the socket.
    fn write_tls(&mut self, shared: &Shared, entry: &Entry, stream: &TcpStream) -> Result<(), End> {
        let mut tls = self.tls.take().expect("a TLS socket");
        let result = self.write_tls_with(&mut tls, shared, entry, stream);
        self.tls = Some(tls);
        result
    }

    fn write_tls_with(
        &mut self,
        tls: &mut rustls::Connection,
        shared: &Shared,
        entry: &Entry,
        stream: &TcpStream,
    ) -> Result<(), End> {
        use std::io::Write;
        if let Err(e) = self.drain(entry, |bytes| tls.writer().write(bytes)) {
            return Err(self.fail(shared, entry, "tls write", &e));
        }
        while tls.wants_write() {
            match tls.write_tls(&mut super::tls::TryWriter(stream)) {
                Ok(n) => {
                    entry.written.fetch_add(n as u64, Ordering::AcqRel);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(self.fail(shared, entry, "write", &e)),
            }
        }
        self.drained_warning(shared, entry)
    }

    fn drop_queues(&mut self, entry: &Entry) {
        let dropped: usize = self.high.iter().chain(&self.low).map(Bytes::len).sum();
        entry.unsent.fetch_sub(dropped as u64, Ordering::AcqRel);
        self.high.clear();
        self.low.clear();
    }

    fn fail(&mut self, shared: &Shared, entry: &Entry, what: &str, e: &std::io::Error) -> End {
        let reason = format!("{what} error on socket {}: {e}", entry.id);
        self.close_sent = true;
        shared.emit(entry, abi::ERROR, 0, reason.as_bytes());
        End::Failed
    }
}

fn set_local(entry: &Entry, stream: &TcpStream) {
    if let Ok(local) = stream.local_addr() {
        *lock(&entry.local) = local.to_string();
    }
}

/// Largest UDP datagram received (the IPv4 maximum payload).
const DATAGRAM: usize = 65_507;

/// A UDP socket: reads while started (it starts started, as skynet's), sends datagrams as
/// they are asked for. A send that fails (no route, no default peer) is an ERROR event and
/// the socket lives on: a UDP error concerns one datagram, not the socket.
pub(super) async fn udp(
    shared: Arc<Shared>,
    entry: Arc<Entry>,
    socket: UdpSocket,
    mut control: UnboundedReceiver<Control>,
) {
    let mut reading = true;
    let mut peer: Option<std::net::SocketAddr> = None;
    let mut buffer = vec![0u8; DATAGRAM];
    let mut backlog: Option<Arc<dyn Backlog>> = None;
    loop {
        let waiting = backlog.clone();
        tokio::select! {
            () = until_drained(waiting.clone()), if waiting.is_some() => backlog = None,
            command = control.recv() => match command {
                Some(Control::Start) => reading = true,
                Some(Control::Pause) => reading = false,
                Some(Control::Connect(to)) => peer = Some(to),
                Some(Control::Send { bytes, .. }) => {
                    let sent = match peer {
                        Some(to) => socket.send_to(&bytes, to).await.map(|_| ()),
                        None => Err(std::io::Error::other("no peer: udp_connect first")),
                    };
                    if !report(&shared, &entry, sent, bytes.len()) {
                        break;
                    }
                }
                Some(Control::SendTo { to, bytes }) => {
                    let sent = socket.send_to(&bytes, to).await.map(|_| ());
                    if !report(&shared, &entry, sent, bytes.len()) {
                        break;
                    }
                }
                Some(Control::Close | Control::Shutdown) | None => {
                    shared.emit(&entry, abi::CLOSE, 0, b"");
                    break;
                }
                Some(Control::Nodelay | Control::StartTls(_)) => {}
            },
            received = socket.recv_from(&mut buffer), if reading && waiting.is_none() => {
                // An error here is the ICMP answer to an earlier send (port unreachable): it
                // says nothing about this socket, so it is not reported.
                if let Ok((n, from)) = received {
                    entry.read.fetch_add(n as u64, Ordering::AcqRel);
                    let mut payload = Vec::with_capacity(n + 48);
                    payload.extend_from_slice(&buffer[..n]);
                    payload.extend_from_slice(from.to_string().as_bytes());
                    match shared.deliver(&entry, abi::UDP, n as i32, &payload) {
                        Delivery::Taken => {}
                        // Datagrams meanwhile wait in (or overflow) the kernel's buffer.
                        Delivery::Backlogged(full) => backlog = Some(full),
                        Delivery::Gone => break,
                    }
                }
            }
        }
    }
    shared.remove(entry.id);
}

/// Counts a sent datagram, or tells the owner why it was not sent; false if the owner is
/// gone.
fn report(shared: &Shared, entry: &Entry, sent: std::io::Result<()>, len: usize) -> bool {
    match sent {
        Ok(()) => {
            entry.written.fetch_add(len as u64, Ordering::AcqRel);
            true
        }
        Err(e) => {
            let reason = format!("udp send on socket {}: {e}", entry.id);
            shared.emit(entry, abi::ERROR, 0, reason.as_bytes())
        }
    }
}
