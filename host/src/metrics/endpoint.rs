//! The Prometheus endpoint (`metrics = "127.0.0.1:9100"`): `GET /metrics` on a thread and
//! tokio runtime of its own, so a flood on the services' sockets never hides the node from
//! its operator, and a scraper never takes time from the services' sockets.
//!
//! It is read-only and answers nothing but `/metrics`. HTTP is hyper's; what a client can
//! make it hold is bounded: [`MAX_CONNECTIONS`] at once (more are closed at once), a
//! request head of at most [`MAX_REQUEST`] bytes that must arrive within
//! [`HEAD_TIMEOUT`], and [`CONNECTION_TIME`] per connection in all (a client that stops
//! reading its response is cut off then). Responses are at most
//! [`super::exposition::MAX_RESPONSE`] bytes, and a reading is served again for
//! [`CACHE_TIME`], so clients asking in a loop do not make the node walk its services
//! each time.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{oneshot, Semaphore};

use skywasm_abi::Handle;

use crate::shared::NodeShared;

/// Connections served at once; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 16;
/// The most bytes of a request's head (hyper's smallest buffer).
pub const MAX_REQUEST: usize = 8 << 10;
/// How long a client has to send its request's head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last, requests and responses together.
pub const CONNECTION_TIME: Duration = Duration::from_secs(10);
/// How long a rendered reading is served again: however many clients ask, the node is
/// read at most once per this period.
pub const CACHE_TIME: Duration = Duration::from_secs(1);

/// The last reading rendered, when, and what it came to (the text, or why there is none).
type Rendered = Arc<std::sync::Mutex<Option<(std::time::Instant, Result<Bytes, String>)>>>;

/// The Prometheus text format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A running endpoint; [`Endpoint::stop`] ends it.
pub struct Endpoint {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Endpoint {
    /// Listens on `address` and serves `node`'s metrics there.
    ///
    /// # Errors
    /// When the address cannot be bound or the thread not started.
    pub fn start(node: Weak<NodeShared>, address: SocketAddr) -> std::io::Result<Endpoint> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("skywasm-metrics".into())
            .spawn(move || serve(node, listener, stopped))?;
        Ok(Endpoint {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where it listens (with the port the system chose for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops serving and waits for the thread.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The endpoint thread: accepts until told to stop.
fn serve(
    node: Weak<NodeShared>,
    listener: std::net::TcpListener,
    mut stopped: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return log(&node, &format!("metrics endpoint: no runtime: {e}")),
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => return log(&node, &format!("metrics endpoint: {e}")),
        };
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let rendered: Rendered = Arc::default();
        loop {
            let accepted = tokio::select! {
                _ = &mut stopped => break,
                accepted = listener.accept() => accepted,
            };
            let Ok((stream, _)) = accepted else {
                // Out of descriptors, most likely: let some close before trying again.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let node = node.clone();
            let rendered = rendered.clone();
            tokio::spawn(async move {
                let respond = hyper::service::service_fn(move |request| {
                    let response = respond(&node, &request, &rendered);
                    async move { Ok::<_, Infallible>(response) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEAD_TIMEOUT)
                    .max_buf_size(MAX_REQUEST)
                    .serve_connection(TokioIo::new(stream), respond);
                let _ = tokio::time::timeout(CONNECTION_TIME, connection).await;
                drop(slot);
            });
        }
    });
}

/// The answer to one request.
fn respond(
    node: &Weak<NodeShared>,
    request: &Request<Incoming>,
    rendered: &Rendered,
) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: Bytes| {
        let mut response = Response::new(Full::new(text));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"skywasm serves its metrics at /metrics\n"),
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            Bytes::from_static(b"GET or HEAD\n"),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let Some(node) = node.upgrade() else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from_static(b"the node stopped\n"),
        );
    };
    let reading = {
        let mut cached = crate::sync::lock(rendered);
        match &*cached {
            Some((at, reading)) if at.elapsed() < CACHE_TIME => reading.clone(),
            _ => {
                let reading = super::exposition::render(&node).map(Bytes::from);
                if let Err(why) = &reading {
                    node.log(Handle::NONE, &format!("metrics endpoint: {why}"));
                }
                *cached = Some((std::time::Instant::now(), reading.clone()));
                reading
            }
        }
    };
    match reading {
        Ok(text) => {
            let mut response = plain(StatusCode::OK, text);
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
            response
        }
        Err(why) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            Bytes::from(format!("{why}\n")),
        ),
    }
}

/// A line in the node's log, if the node still runs.
fn log(node: &Weak<NodeShared>, text: &str) {
    if let Some(node) = node.upgrade() {
        node.log(Handle::NONE, text);
    }
}
