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
use super::{contain_task, Cluster, Delivered, Inbound};
use crate::service::Service;
use crate::socket::outbox::Outbox;

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
    let mut refused = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if !cluster.admit_connection() {
                    refused += 1;
                    if let Some(node) = cluster.node_shared() {
                        if crate::log::worth_logging(refused) {
                            node.log(
                                Handle::NONE,
                                &format!(
                                    "cluster: refused the connection from {peer}: {} connections \
                                     are open (cluster_max_connections; {refused} refused so far)",
                                    cluster.config.max_connections
                                ),
                            );
                        }
                    }
                    continue;
                }
                let _ = super::sender::configure(&stream, cluster.config.keepalive);
                let node = cluster.node.clone();
                let serving = serve(cluster.clone(), stream, peer);
                let counted = cluster.clone();
                tokio::spawn(async move {
                    contain_task(&node, &format!("the connection from {peer}"), serving).await;
                    counted.connection_ended();
                });
            }
            // Out of descriptors and the like: keep listening, after a pause.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

/// Why a connection's requests stopped being read for a while.
enum Stall {
    /// This request found its target's mailbox full: deliver it again once it drained.
    Retry(Request, Arc<Service>),
    /// A request was delivered to a mailbox now over its backlog: wait until it drained.
    Wait(Arc<Service>),
}

/// One incoming connection, until it closes or sends something malformed.
async fn serve(cluster: Arc<Cluster>, mut stream: TcpStream, peer: SocketAddr) {
    if let Some(secret) = &cluster.config.secret {
        if let Err(why) =
            crate::socket::auth::accept(&mut stream, &secret.0, crate::socket::auth::CLUSTER).await
        {
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
    let inbound = Inbound::new(Outbox::new(stream.clone()));
    let mut packets = PacketReader::new();
    // skynet writes the parts of one request together: one payload in progress suffices.
    let max = cluster.config.max_payload;
    let mut assembler = RequestAssembler::with_limits(max, max);
    let mut buffer = vec![0u8; 64 << 10];
    let mut stalled = None;
    // Retries in a row of a request whose target stays full for another reason (its
    // tenant's mailboxes together): they back off.
    let mut retries = 0u32;
    let ended = loop {
        // Backpressure: nothing more is read from the peer (TCP holds it) until the
        // service its requests fill has taken them.
        match stalled.take() {
            Some(Stall::Retry(request, full)) => {
                crate::socket::drained(&*full).await;
                if retries > 0 {
                    let pause = std::time::Duration::from_millis(1 << retries.min(6));
                    tokio::time::sleep(pause).await;
                }
                if let Some(stall) = handle(&cluster, request, &inbound) {
                    retries += u32::from(matches!(stall, Stall::Retry(..)));
                    stalled = Some(stall);
                    continue;
                }
                retries = 0;
            }
            Some(Stall::Wait(full)) => crate::socket::drained(&*full).await,
            None => {}
        }
        let mut handle_all = || loop {
            let request = packets
                .next_packet()
                .and_then(|p| p.map(|body| assembler.packet(&body)).transpose());
            match request {
                Ok(Some(Some(request))) => {
                    if let Some(tag) = &request.trace {
                        cluster.log_trace(tag, &request.address);
                    }
                    if let Some(stall) = handle(&cluster, request, &inbound) {
                        break Ok(Some(stall));
                    }
                }
                Ok(Some(None)) => {}
                Ok(None) => break Ok(None),
                Err(e) => break Err(format!("a malformed packet: {e}")),
            }
        };
        let handled = match cluster.node_shared() {
            Some(node) => crate::scheduler::with_network_assist(&node, handle_all),
            None => handle_all(),
        };
        match handled {
            Err(bad) => break Some(bad),
            Ok(Some(stall)) => {
                stalled = Some(stall);
                continue;
            }
            Ok(None) => {}
        }
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
    };
    inbound.replies.close();
    if let (Some(why), Some(node)) = (ended, cluster.node_shared()) {
        node.log(
            Handle::NONE,
            &format!("cluster: closed the connection from {peer}: {why}"),
        );
    }
    cluster.forget_connection(&inbound);
}

/// Serves one request: the name query, or a delivery to a local service; the stall when
/// the delivery must wait for the target's mailbox.
fn handle(cluster: &Cluster, request: Request, inbound: &Arc<Inbound>) -> Option<Stall> {
    let answer = |result: Result<&[u8], &[u8]>| {
        if !request.push {
            let mut bytes = Vec::new();
            if frame::encode_response(request.session, result, &mut bytes).is_ok() {
                inbound.replies.write(bytes);
            }
        }
    };
    let target = match &request.address {
        Address::Handle(0) => {
            answer(
                query(cluster, &request.msg)
                    .as_deref()
                    .map_err(|e| e.as_bytes()),
            );
            return None;
        }
        Address::Handle(handle) => Handle(*handle),
        Address::Name(name) => {
            let found = match name.strip_prefix('@') {
                Some(registered) => cluster.registered(registered),
                None => cluster
                    .node_shared()
                    .and_then(|node| node.router.resolve(name).ok()),
            };
            match found {
                Some(handle) => handle,
                None => {
                    answer(Err(b"Invalid name"));
                    return None;
                }
            }
        }
    };
    match cluster.deliver(target, &request, inbound) {
        Delivered::Queued(None) => None,
        Delivered::Queued(Some(backlogged)) => Some(Stall::Wait(backlogged)),
        Delivered::Full(full) => Some(Stall::Retry(request, full)),
        Delivered::Failed(why) => {
            answer(Err(why.as_bytes()));
            None
        }
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
