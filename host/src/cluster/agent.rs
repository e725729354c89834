//! Incoming cluster connections (skynet's `clusterd` listening through a gate, and one
//! `clusteragent` per connection): requests are decoded, delivered to local services as
//! `"lua"` messages from `clusterd`, and their answers written back by session.
//!
//! A peer that sends bytes that are not skynet's format has its connection closed, with a
//! log line; nothing else is affected. What a peer can make this node hold is bounded: one
//! reassembled request at most `max_message_size`, a bounded number in progress.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use skywasm_abi::Handle;
use skywasm_pack::Value;
use tokio::net::{TcpListener, TcpStream};

use super::frame::{self, Address, PacketReader, Request, RequestAssembler};
use super::outbox::Outbox;
use super::{contain_task, Cluster};

/// Listens on `host:port` for other nodes; the bound address.
pub(crate) fn listen(
    cluster: Arc<Cluster>,
    runtime: &tokio::runtime::Handle,
    host: &str,
    port: u16,
) -> Result<String, String> {
    let address: SocketAddr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("bad address {host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("bad address {host}:{port}: no such host"))?;
    let std_listener = std::net::TcpListener::bind(address)
        .map_err(|e| format!("cluster listen {host}:{port}: {e}"))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let bound = std_listener
        .local_addr()
        .map(|a| a.to_string())
        .map_err(|e| e.to_string())?;
    let _inside = runtime.enter();
    let listener = TcpListener::from_std(std_listener).map_err(|e| e.to_string())?;
    let node = cluster.node.clone();
    runtime.spawn(async move {
        let what = "the cluster port's accept loop (the port no longer accepts)";
        contain_task(&node, what, accept(cluster, listener)).await;
    });
    Ok(bound)
}

async fn accept(cluster: Arc<Cluster>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = super::sender::configure(&stream, cluster.config.keepalive);
                let node = cluster.node.clone();
                let serving = serve(cluster.clone(), stream, peer);
                tokio::spawn(async move {
                    contain_task(&node, &format!("the connection from {peer}"), serving).await;
                });
            }
            // Out of descriptors and the like: keep listening, after a pause.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

/// One incoming connection, until it closes or sends something malformed.
async fn serve(cluster: Arc<Cluster>, mut stream: TcpStream, peer: SocketAddr) {
    if let Some(secret) = &cluster.config.secret {
        if let Err(why) = super::auth::accept(&mut stream, &secret.0).await {
            if let Some(node) = cluster.node_shared() {
                node.log(
                    Handle::NONE,
                    &format!("cluster: refused the connection from {peer}: {why}"),
                );
            }
            return;
        }
    }
    let stream = Arc::new(stream);
    let replies = Outbox::new(stream.clone());
    let mut packets = PacketReader::new();
    let mut assembler = RequestAssembler::new(cluster.config.max_payload);
    let mut buffer = vec![0u8; 64 << 10];
    let ended = loop {
        if let Err(e) = stream.readable().await {
            break Some(e.to_string());
        }
        let n = match stream.try_read(&mut buffer) {
            Ok(0) => break None,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => break Some(e.to_string()),
        };
        packets.extend(&buffer[..n]);
        // The peer is active: its next request may be moments away.
        cluster.busy.touch();
        let mut handle_all = || loop {
            let request = packets
                .next_packet()
                .and_then(|p| p.map(|body| assembler.packet(&body)).transpose());
            match request {
                Ok(Some(Some(request))) => handle(&cluster, &request, &replies),
                Ok(Some(None)) => {}
                Ok(None) => break None,
                Err(e) => break Some(format!("a malformed packet: {e}")),
            }
        };
        let bad = match cluster.node_shared() {
            Some(node) => crate::scheduler::with_network_assist(&node, handle_all),
            None => handle_all(),
        };
        if bad.is_some() {
            break bad;
        }
    };
    replies.close();
    if let (Some(why), Some(node)) = (ended, cluster.node_shared()) {
        node.log(
            Handle::NONE,
            &format!("cluster: closed the connection from {peer}: {why}"),
        );
    }
    cluster.forget_connection(&replies);
}

/// Serves one request: the name query, or a delivery to a local service.
fn handle(cluster: &Cluster, request: &Request, replies: &Arc<Outbox>) {
    if let (Some(tag), Some(node)) = (&request.trace, cluster.node_shared()) {
        node.log(
            Handle::NONE,
            &format!(
                "cluster: trace {} -> {}",
                crate::log::Shown(&String::from_utf8_lossy(tag)),
                crate::log::Shown(&format!("{:?}", request.address))
            ),
        );
    }
    let answer = |result: Result<&[u8], &[u8]>| {
        if !request.push {
            let mut bytes = Vec::new();
            if frame::encode_response(request.session, result, &mut bytes).is_ok() {
                replies.write(bytes);
            }
        }
    };
    let target = match &request.address {
        Address::Handle(0) => {
            return answer(
                query(cluster, &request.msg)
                    .as_deref()
                    .map_err(|e| e.as_bytes()),
            )
        }
        Address::Handle(handle) => Handle(*handle),
        Address::Name(name) => {
            let found = match name.strip_prefix('@') {
                Some(registered) => cluster.registered(registered),
                None => cluster
                    .node_shared()
                    .and_then(|node| node.resolve(name).ok()),
            };
            match found {
                Some(handle) => handle,
                None => return answer(Err(b"Invalid name")),
            }
        }
    };
    if let Err(why) = cluster.deliver(target, request, replies) {
        answer(Err(why.as_bytes()));
    }
}

/// `cluster.query`: the handle registered as the name packed in `msg`, packed.
fn query(cluster: &Cluster, msg: &[u8]) -> Result<Vec<u8>, String> {
    let values = skywasm_pack::unpack(msg).map_err(|e| format!("bad query: {e}"))?;
    let name = values
        .first()
        .and_then(Value::as_str)
        .ok_or("bad query: no name")?;
    let handle = cluster.registered(name).ok_or("name not found")?;
    skywasm_pack::pack(&[Value::Integer(i64::from(handle.0))]).map_err(|e| e.to_string())
}
