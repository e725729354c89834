//! Sockets for Rust services: TCP listeners and streams and UDP sockets over the host's
//! socket server (docs/abi.md §4.14–4.22), with `async` reads fed by the socket events the
//! host sends this service (PTYPE_SOCKET).
//!
//! The first socket a service opens installs the PTYPE_SOCKET handler, which files every
//! event under its socket; a task awaiting a read, an accept or a connection is woken by it.
//! One task at a time should read a given socket.
//!
//! ```no_run
//! use skywasm_guest::{self as sky, socket};
//!
//! async fn echo_server() -> sky::Result<()> {
//!     let listener = socket::listen("127.0.0.1", 0)?;
//!     sky::log!("listening on {}", listener.local_addr()?);
//!     loop {
//!         let (stream, _peer) = listener.accept().await?;
//!         sky::fork(async move {
//!             let mut buf = [0u8; 4096];
//!             while let Ok(n) = stream.read(&mut buf).await {
//!                 if n == 0 || stream.write(&buf[..n]).is_err() {
//!                     break;
//!                 }
//!             }
//!             stream.close();
//!         });
//!     }
//! }
//! ```

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::task::{Poll, Waker};

use skywasm_abi::{ptype, socket as abi, sys};

use crate::api::answer_text;
use crate::error::{Error, Result};
use crate::request::Request;

/// What has arrived for one socket and not been taken yet.
#[derive(Default)]
struct State {
    /// Bytes read (TCP).
    data: VecDeque<u8>,
    /// Datagrams with their senders (UDP).
    datagrams: VecDeque<(Vec<u8>, String)>,
    /// Accepted connections (listener): id and peer address.
    accepted: VecDeque<(i32, String)>,
    /// The peer address once CONNECT arrived.
    connected: Option<String>,
    /// CLOSE arrived (the peer's EOF, or the close finished).
    closed: bool,
    /// ERROR arrived: the reason.
    error: Option<String>,
    /// The task waiting on this socket.
    waker: Option<Waker>,
}

thread_local! {
    static SOCKETS: RefCell<HashMap<i32, State>> = RefCell::new(HashMap::new());
}

/// Files one event under its socket and wakes the task waiting on it.
fn on_event(request: Request) {
    let body = request.data();
    if body.len() < abi::EVENT_HEADER {
        crate::log("socket: malformed socket event");
        return;
    }
    let word = |i: usize| u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
    let (kind, id, ud) = (word(0), word(4) as i32, word(8) as i32);
    let payload = &body[abi::EVENT_HEADER..];
    let text = || String::from_utf8_lossy(payload).into_owned();
    SOCKETS.with(|sockets| {
        let mut sockets = sockets.borrow_mut();
        let Some(state) = sockets.get_mut(&id) else {
            // Not (or no longer) ours: an accepted connection nobody here wants is closed.
            if kind == abi::ACCEPT {
                sys::socket_control(abi::CLOSE_SOCKET, ud);
            }
            return;
        };
        match kind {
            abi::DATA => state.data.extend(payload),
            abi::CONNECT => state.connected = Some(text()),
            abi::CLOSE => state.closed = true,
            abi::ACCEPT => state.accepted.push_back((ud, text())),
            abi::ERROR => state.error = Some(text()),
            abi::UDP => {
                let size = usize::try_from(ud).unwrap_or(0).min(payload.len());
                let (data, from) = payload.split_at(size);
                state
                    .datagrams
                    .push_back((data.to_vec(), String::from_utf8_lossy(from).into_owned()));
            }
            abi::WARNING => crate::log(&format!(
                "WARNING: {ud} K bytes need to send out (socket {id})"
            )),
            _ => {}
        }
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    });
}

/// Starts tracking socket `id` (installing the event handler on first use).
fn track(id: i32) {
    if !crate::runtime::has_handler(ptype::SOCKET) {
        crate::dispatch(ptype::SOCKET, |request: Request| {
            on_event(request);
            std::future::ready(())
        });
    }
    SOCKETS.with(|s| {
        s.borrow_mut().entry(id).or_default();
    });
}

fn forget(id: i32) {
    SOCKETS.with(|s| s.borrow_mut().remove(&id));
}

/// Waits until `ready` finds what it wants in the socket's state (it may also fail).
async fn wait<T>(id: i32, mut ready: impl FnMut(&mut State) -> Option<Result<T>>) -> Result<T> {
    poll_fn(|cx| {
        SOCKETS.with(|sockets| {
            let mut sockets = sockets.borrow_mut();
            let Some(state) = sockets.get_mut(&id) else {
                return Poll::Ready(Err(Error::Other(format!("socket {id} is not open here"))));
            };
            match ready(state) {
                Some(result) => Poll::Ready(result),
                None => {
                    state.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    })
    .await
}

/// The reason of the last failed socket call.
fn failure(op: &'static str, code: i32) -> Error {
    if code == crate::code::SOCKET {
        if let Ok(reason) = answer_text(|out| sys::socket_query(abi::QUERY_ERROR, 0, out)) {
            return Error::Other(reason);
        }
    }
    Error::host(op, code)
}

fn control(op: u32, id: i32, what: &'static str) -> Result<()> {
    let rc = sys::socket_control(op, id);
    if rc < 0 {
        return Err(failure(what, rc));
    }
    Ok(())
}

fn local_address(id: i32) -> Result<String> {
    answer_text(|out| sys::socket_query(abi::QUERY_ADDRESS, id, out))
        .map_err(|code| failure("socket address", code))
}

/// A listening TCP socket; accepting starts with the first [`Listener::accept`].
pub struct Listener {
    id: i32,
    started: std::cell::Cell<bool>,
}

/// Listens on `host:port` (port 0: a free one, see [`Listener::local_addr`]).
///
/// # Errors
/// The host's reason: a bad address, a port in use.
pub fn listen(host: &str, port: u16) -> Result<Listener> {
    let id = sys::socket_listen(host, port, 0);
    if id < 0 {
        return Err(failure("listen", id));
    }
    track(id);
    Ok(Listener {
        id,
        started: std::cell::Cell::new(false),
    })
}

impl Listener {
    /// The socket id.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The bound `ip:port`.
    ///
    /// # Errors
    /// When the listener is closed.
    pub fn local_addr(&self) -> Result<String> {
        local_address(self.id)
    }

    /// The next connection and its peer's address; the stream is this service's and reads.
    ///
    /// # Errors
    /// When the listener closed.
    pub async fn accept(&self) -> Result<(TcpStream, String)> {
        if !self.started.replace(true) {
            control(abi::START, self.id, "socket start")?;
        }
        let (id, peer) = wait(self.id, |state| {
            if let Some(next) = state.accepted.pop_front() {
                return Some(Ok(next));
            }
            state
                .closed
                .then(|| Err(Error::Other("the listener closed".into())))
        })
        .await?;
        let stream = TcpStream::start(id).await?;
        Ok((stream, peer))
    }

    /// Closes the listener.
    pub fn close(self) {
        sys::socket_control(abi::CLOSE_SOCKET, self.id);
        forget(self.id);
    }
}

/// A TCP connection owned by this service.
pub struct TcpStream {
    id: i32,
    peer: String,
}

/// Connects to `host:port`.
///
/// # Errors
/// The host's reason (refused, unresolvable, ...).
pub async fn connect(host: &str, port: u16) -> Result<TcpStream> {
    let id = sys::socket_connect(host, port);
    if id < 0 {
        return Err(failure("connect", id));
    }
    track(id);
    TcpStream::opened(id).await
}

impl TcpStream {
    /// Takes over socket `id` (an accepted connection, or one another service handed over
    /// with its id): this service becomes its owner and reads it.
    ///
    /// # Errors
    /// When the id is not an open socket.
    pub async fn start(id: i32) -> Result<TcpStream> {
        track(id);
        if let Err(e) = control(abi::START, id, "socket start") {
            forget(id);
            return Err(e);
        }
        TcpStream::opened(id).await
    }

    async fn opened(id: i32) -> Result<TcpStream> {
        let peer = wait(id, |state| {
            if let Some(peer) = state.connected.take() {
                return Some(Ok(peer));
            }
            if let Some(reason) = state.error.take() {
                return Some(Err(Error::Other(reason)));
            }
            state
                .closed
                .then(|| Err(Error::Other("closed before it connected".into())))
        })
        .await;
        match peer {
            Ok(peer) => Ok(TcpStream { id, peer }),
            Err(e) => {
                forget(id);
                Err(e)
            }
        }
    }

    /// The socket id (hand it to another service, which calls [`TcpStream::start`]).
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The peer's `ip:port`.
    pub fn peer_addr(&self) -> &str {
        &self.peer
    }

    /// Reads what has arrived, waiting for something; 0 at the peer's end of stream.
    ///
    /// # Errors
    /// A network error the host reported.
    pub async fn read(&self, buf: &mut [u8]) -> Result<usize> {
        wait(self.id, |state| {
            if !state.data.is_empty() {
                let n = buf.len().min(state.data.len());
                for (slot, byte) in buf.iter_mut().zip(state.data.drain(..n)) {
                    *slot = byte;
                }
                return Some(Ok(n));
            }
            if let Some(reason) = &state.error {
                return Some(Err(Error::Other(reason.clone())));
            }
            state.closed.then_some(Ok(0))
        })
        .await
    }

    /// Fills `buf` exactly.
    ///
    /// # Errors
    /// When the stream ends first, or a network error.
    pub async fn read_exact(&self, buf: &mut [u8]) -> Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = self.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Err(Error::Other("the stream ended early".into()));
            }
            filled += n;
        }
        Ok(())
    }

    /// Queues bytes to send.
    ///
    /// # Errors
    /// When the socket is closed.
    pub fn write(&self, data: &[u8]) -> Result<()> {
        self.write_with(abi::PRIORITY_HIGH, data)
    }

    /// Queues bytes on the low-priority queue (sent when the normal one is empty).
    ///
    /// # Errors
    /// When the socket is closed.
    pub fn write_low(&self, data: &[u8]) -> Result<()> {
        self.write_with(abi::PRIORITY_LOW, data)
    }

    fn write_with(&self, priority: u32, data: &[u8]) -> Result<()> {
        let rc = sys::socket_send(self.id, priority, data);
        if rc < 0 {
            return Err(failure("socket send", rc));
        }
        Ok(())
    }

    /// Closes once what is queued is sent.
    pub fn close(self) {
        sys::socket_control(abi::CLOSE_SOCKET, self.id);
        forget(self.id);
    }

    /// Closes at once, dropping what is queued.
    pub fn shutdown(self) {
        sys::socket_control(abi::SHUTDOWN, self.id);
        forget(self.id);
    }

    /// Stops tracking the socket without closing it, so another service can start it; its
    /// id is returned.
    pub fn abandon(self) -> i32 {
        forget(self.id);
        self.id
    }
}

/// A UDP socket owned by this service.
pub struct UdpSocket {
    id: i32,
}

impl UdpSocket {
    /// Binds `host:port` (port 0: a free one).
    ///
    /// # Errors
    /// The host's reason.
    pub fn bind(host: &str, port: u16) -> Result<UdpSocket> {
        let id = sys::socket_udp(host, port);
        if id < 0 {
            return Err(failure("udp", id));
        }
        track(id);
        Ok(UdpSocket { id })
    }

    /// The bound `ip:port`.
    ///
    /// # Errors
    /// When the socket is closed.
    pub fn local_addr(&self) -> Result<String> {
        local_address(self.id)
    }

    /// The next datagram and its sender's address (for [`UdpSocket::send_to`]).
    ///
    /// # Errors
    /// When the socket closed.
    pub async fn recv_from(&self) -> Result<(Vec<u8>, String)> {
        wait(self.id, |state| {
            if let Some(next) = state.datagrams.pop_front() {
                return Some(Ok(next));
            }
            state
                .closed
                .then(|| Err(Error::Other("the socket closed".into())))
        })
        .await
    }

    /// Sends one datagram to `address` (`ip:port`).
    ///
    /// # Errors
    /// A malformed address or a closed socket.
    pub fn send_to(&self, address: &str, data: &[u8]) -> Result<()> {
        let rc = sys::socket_sendto(self.id, address, data);
        if rc < 0 {
            return Err(failure("udp send", rc));
        }
        Ok(())
    }

    /// Closes the socket.
    pub fn close(self) {
        sys::socket_control(abi::CLOSE_SOCKET, self.id);
        forget(self.id);
    }
}
