//! One slave ↔ slave link (skynet's service_harbor.c and cslave.lua): each side first
//! writes one byte, its harbor id, and checks the other's; then remote messages flow both
//! ways in [`skywasm_harbor_wire`]'s frames.

use std::sync::Arc;

use skywasm_harbor_wire::LinkReader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Harbor, JOIN_TIMEOUT};
use crate::socket::outbox::Outbox;

/// Links to `peer` at `address`, as the master asked (skynet's `connect_slave`): writes this
/// node's id, expects `peer`'s. A node that cannot be reached is marked down.
pub(super) async fn connect(harbor: Arc<Harbor>, peer: u8, address: String) {
    let linked = async {
        let mut stream = tokio::time::timeout(JOIN_TIMEOUT, TcpStream::connect(&address))
            .await
            .map_err(|_| format!("no connection within {} s", JOIN_TIMEOUT.as_secs()))?
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        harbor
            .prove(&mut stream, false)
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(&[harbor.id()])
            .await
            .map_err(|e| e.to_string())?;
        let id = read_id(&mut stream).await?;
        if id != peer {
            return Err(format!("it says it is harbor {id}, not {peer}"));
        }
        Ok(stream)
    };
    match linked.await {
        Ok(stream) => {
            if harbor.link_up(peer, stream) {
                harbor.log(&format!(
                    "harbor {}: connected to harbor {peer} at {address}",
                    harbor.id()
                ));
            }
        }
        Err(why) => harbor.peer_down(
            peer,
            None,
            &format!("cannot connect to it at {address}: {why}"),
        ),
    }
}

/// Takes a connection another node opened to this one while it joins: reads its id,
/// answers with this node's, and makes it the link to that node. The peer's id on success.
pub(super) async fn accept(harbor: &Arc<Harbor>, mut stream: TcpStream) -> Result<u8, String> {
    let _ = stream.set_nodelay(true);
    harbor
        .prove(&mut stream, true)
        .await
        .map_err(|e| e.to_string())?;
    let peer = read_id(&mut stream).await?;
    if peer == 0 || peer == harbor.id() {
        return Err(format!("it says it is harbor {peer}"));
    }
    stream
        .write_all(&[harbor.id()])
        .await
        .map_err(|e| e.to_string())?;
    if !harbor.link_up(peer, stream) {
        return Err(format!("harbor {peer} is linked already"));
    }
    Ok(peer)
}

/// The peer's id byte, within [`JOIN_TIMEOUT`].
async fn read_id(stream: &mut TcpStream) -> Result<u8, String> {
    let mut id = [0u8; 1];
    tokio::time::timeout(JOIN_TIMEOUT, stream.read_exact(&mut id))
        .await
        .map_err(|_| format!("no id within {} s", JOIN_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    Ok(id[0])
}

/// Reads `peer`'s frames and delivers them until the link ends, then marks the peer down.
/// A full mailbox stops the reading (TCP then holds the peer back) until it drained.
pub(super) async fn read(
    harbor: Arc<Harbor>,
    peer: u8,
    stream: Arc<TcpStream>,
    outbox: Arc<Outbox>,
) {
    let mut reader = LinkReader::new(harbor.max_frame);
    let mut buffer = vec![0u8; 64 << 10];
    let why = 'link: loop {
        loop {
            // Delivers what was read, until a mailbox is full; with `network_assist` the
            // network thread then runs the trusted services it delivered to itself.
            let mut deliver_all = || loop {
                match reader.next_message() {
                    Ok(Some((header, body))) => {
                        if let Some(full) = harbor.deliver(peer, header, body)? {
                            return Ok(Some(full));
                        }
                    }
                    Ok(None) => return Ok(None),
                    Err(e) => return Err(format!("a malformed frame: {e}")),
                }
            };
            let delivered = match harbor.node.upgrade() {
                Some(node) => crate::scheduler::with_network_assist(&node, deliver_all),
                None => deliver_all(),
            };
            match delivered {
                Ok(Some(full)) => crate::socket::drained(&*full).await,
                Ok(None) => break,
                Err(why) => break 'link why,
            }
        }
        if outbox.is_closed() {
            break "the link was closed".to_string();
        }
        if let Err(e) = stream.readable().await {
            break e.to_string();
        }
        match stream.try_read(&mut buffer) {
            Ok(0) => break "it closed the connection".to_string(),
            Ok(n) => {
                reader.extend(&buffer[..n]);
                // The peer is active: its next frame may be moments away.
                harbor.busy.touch();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => break e.to_string(),
        }
    };
    harbor.peer_down(peer, Some(&outbox), &why);
}
