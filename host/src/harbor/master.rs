//! The harbor master (skynet's cmaster.lua), run by the node whose config sets
//! `standalone`: the registry of nodes and of global names. Each node connects once, says
//! who it is and where it listens (`H`), is told how many older nodes will link to it (`W`)
//! while those are told to (`C`); global names are registered (`R`, the first wins) and
//! announced to every node (`N`), or answered when asked (`Q`); a node whose connection
//! ends is announced gone (`D`).
//!
//! Unlike skynet's, a node that went down may join again under its id (skynet refuses it),
//! and with `harbor_secret` a node must prove it holds the secret before it is heard.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use skywasm_abi::Handle;
use skywasm_harbor_wire::{MasterMessage, MasterReader};
use tokio::net::{TcpListener, TcpStream};

use super::{read_master, HarborError, JOIN_TIMEOUT};
use crate::shared::NodeShared;
use crate::socket::auth::{self, Secret};
use crate::socket::outbox::Outbox;
use crate::sync::lock;

/// The master's registry.
struct Master {
    node: Weak<NodeShared>,
    /// `harbor_secret`: every node proves it holds it before it is heard.
    secret: Option<Secret>,
    /// Every node that joined, by id: where it listens, and its connection while it is up.
    slaves: Mutex<BTreeMap<u8, Slave>>,
    /// Global names and their services.
    names: Mutex<HashMap<String, u32>>,
}

struct Slave {
    address: String,
    connection: Option<Arc<Outbox>>,
}

/// Listens at `address` and serves nodes from now on.
///
/// # Errors
/// [`HarborError::Listen`] when the address cannot be listened at.
pub(super) async fn start(
    node: Weak<NodeShared>,
    address: &str,
    secret: Option<Secret>,
) -> Result<(), HarborError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| HarborError::Listen {
            address: address.to_string(),
            why: e.to_string(),
        })?;
    let master = Arc::new(Master {
        node,
        secret,
        slaves: Mutex::new(BTreeMap::new()),
        names: Mutex::new(HashMap::new()),
    });
    master.log(&format!("harbor master: listening at {address}"));
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, from)) => {
                    let serving = master.clone().serve(stream, from);
                    let master = master.clone();
                    tokio::spawn(async move {
                        if let Err(panic) = crate::sync::contained(serving).await {
                            master.log(&format!(
                                "harbor master: the host panicked serving {from}: {panic}"
                            ));
                        }
                    });
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    });
    Ok(())
}

impl Master {
    /// One node's connection, from its handshake until it ends.
    async fn serve(self: Arc<Self>, mut stream: TcpStream, from: SocketAddr) {
        let _ = stream.set_nodelay(true);
        if let Some(secret) = &self.secret {
            if let Err(why) = auth::accept(&mut stream, &secret.0, auth::HARBOR).await {
                return self.log(&format!("harbor master: refused {from}: {why}"));
            }
        }
        let stream = Arc::new(stream);
        let mut reader = MasterReader::new();
        let hello = tokio::time::timeout(JOIN_TIMEOUT, read_master(&stream, &mut reader)).await;
        let (id, address) = match hello {
            Ok(Ok(Some(MasterMessage::Handshake { id, address }))) => (id, address),
            Ok(Ok(Some(other))) => {
                return self.log(&format!(
                    "harbor master: disconnect {from}: invalid handshake {other:?}"
                ))
            }
            Ok(Ok(None)) => return,
            Ok(Err(why)) => return self.log(&format!("harbor master: disconnect {from}: {why}")),
            Err(_) => {
                return self.log(&format!(
                    "harbor master: disconnect {from}: no handshake within {} s",
                    JOIN_TIMEOUT.as_secs()
                ))
            }
        };
        let connection = Outbox::new(stream.clone());
        if !self.admit(id, &address, &connection) {
            connection.close();
            return;
        }
        self.log(&format!(
            "harbor master: harbor {id} ({from}) reports {address}"
        ));
        let why = loop {
            match read_master(&stream, &mut reader).await {
                Ok(Some(message)) => self.on_message(id, &connection, message),
                Ok(None) => break "it closed the connection".to_string(),
                Err(why) => break why,
            }
        };
        connection.close();
        self.log(&format!("harbor master: harbor {id} is down: {why}"));
        let live = {
            let mut slaves = lock(&self.slaves);
            if let Some(slave) = slaves.get_mut(&id) {
                slave.connection = None;
            }
            live_connections(&slaves)
        };
        broadcast(&live, &MasterMessage::Down(id));
    }

    /// Registers node `id` unless a node with that id is up: the nodes up are told to link
    /// to it, and it is told how many will.
    fn admit(&self, id: u8, address: &str, connection: &Arc<Outbox>) -> bool {
        let mut slaves = lock(&self.slaves);
        if let Some(Slave {
            address: taken,
            connection: Some(_),
        }) = slaves.get(&id)
        {
            self.log(&format!(
                "harbor master: refused harbor {id} at {address}: harbor {id} is up at {taken}"
            ));
            return false;
        }
        let live = live_connections(&slaves);
        broadcast(
            &live,
            &MasterMessage::Connect {
                id,
                address: address.to_string(),
            },
        );
        send(connection, &MasterMessage::Wait(live.len() as u32));
        slaves.insert(
            id,
            Slave {
                address: address.to_string(),
                connection: Some(connection.clone()),
            },
        );
        true
    }

    /// A registration or a query of node `id`'s.
    fn on_message(&self, id: u8, connection: &Arc<Outbox>, message: MasterMessage) {
        match message {
            MasterMessage::Register { name, handle } => {
                lock(&self.names).entry(name.clone()).or_insert(handle);
                // As skynet's cmaster: every node hears the registration as made.
                let live = live_connections(&lock(&self.slaves));
                broadcast(&live, &MasterMessage::Name { name, handle });
            }
            MasterMessage::Query(name) => {
                let known = lock(&self.names).get(&name).copied();
                if let Some(handle) = known {
                    send(connection, &MasterMessage::Name { name, handle });
                }
            }
            other => self.log(&format!(
                "harbor master: invalid message from harbor {id}: {other:?}"
            )),
        }
    }

    fn log(&self, text: &str) {
        if let Some(node) = self.node.upgrade() {
            node.log(Handle::NONE, text);
        }
    }
}

/// The connections of the nodes that are up.
fn live_connections(slaves: &BTreeMap<u8, Slave>) -> Vec<Arc<Outbox>> {
    slaves
        .values()
        .filter_map(|slave| slave.connection.clone())
        .collect()
}

fn send(connection: &Arc<Outbox>, message: &MasterMessage) {
    let mut frame = Vec::new();
    if message.encode(&mut frame).is_ok() {
        connection.write(frame);
    }
}

fn broadcast(connections: &[Arc<Outbox>], message: &MasterMessage) {
    for connection in connections {
        send(connection, message);
    }
}
