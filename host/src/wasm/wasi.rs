//! WASI for services: nothing preopened, no environment, no arguments; a guest's stdout and
//! stderr become log lines from that service (one line per `\n`, partial lines flushed when
//! they grow past a limit), the way skynet services log through `skynet_error`.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use skywasm_abi::Handle;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::WasiCtxBuilder;

use crate::node::NodeShared;
use crate::sync::lock;

/// Longest partial line kept before it is logged anyway.
const MAX_LINE: usize = 16 << 10;

/// Builds the WASI context of one service.
pub(super) fn context(node: &Arc<NodeShared>, handle: Handle) -> WasiP1Ctx {
    let stream = GuestLog {
        sink: Arc::new(LineSink {
            node: Arc::downgrade(node),
            handle,
            pending: Mutex::new(Vec::new()),
        }),
    };
    WasiCtxBuilder::new()
        .stdout(stream.clone())
        .stderr(stream)
        .build_p1()
}

/// Splits written bytes into lines and logs each one.
struct LineSink {
    /// Weak: the WASI context lives in the Store, which the node owns.
    node: std::sync::Weak<NodeShared>,
    handle: Handle,
    pending: Mutex<Vec<u8>>,
}

impl LineSink {
    fn write(&self, bytes: &[u8]) {
        let mut pending = lock(&self.pending);
        pending.extend_from_slice(bytes);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            self.emit(&line[..line.len() - 1]);
        }
        if pending.len() > MAX_LINE {
            let line = std::mem::take(&mut *pending);
            self.emit(&line);
        }
    }

    fn emit(&self, line: &[u8]) {
        if let Some(node) = self.node.upgrade() {
            let text = String::from_utf8_lossy(line);
            match node.handles.get(self.handle) {
                Some(service) => service.guest_log(&node, &text),
                None => node.log(self.handle, &text),
            }
        }
    }
}

impl Drop for LineSink {
    fn drop(&mut self) {
        let rest = std::mem::take(&mut *lock(&self.pending));
        if !rest.is_empty() {
            self.emit(&rest);
        }
    }
}

/// The stdout/stderr of one service.
#[derive(Clone)]
struct GuestLog {
    sink: Arc<LineSink>,
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestLog {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestLog {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.sink.write(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for GuestLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.sink.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
