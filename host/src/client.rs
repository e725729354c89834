//! A client: a native service driven from an outside thread, so embedders, tests and
//! benchmarks can send to and call services of a running node.
//!
//! Messages the client's service receives go through a channel to the thread that owns the
//! [`Client`]; [`Client::call`] sends a request from the client's handle and waits (with a
//! limit) for the reply carrying its session, keeping other messages for [`Client::recv`].

use std::collections::VecDeque;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skywasm_abi::{ptype, Handle};

use crate::lifecycle::LaunchError;
use crate::mq::Message;
use crate::service::{Behavior, Fault, ServiceCore};
use crate::shared::NodeShared;

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The destination was dead or unknown when the request was sent.
    #[error("invalid address {0}")]
    InvalidAddress(Handle),
    /// The callee answered with PTYPE_ERROR (it failed, refused, or exited).
    #[error("call to {0} failed")]
    Failed(Handle),
    /// No reply within the limit.
    #[error("no reply from {0} within {1:?}")]
    Timeout(Handle, Duration),
}

struct Forward {
    core: ServiceCore,
    sender: Sender<Message>,
}

impl Behavior for Forward {
    fn core(&mut self) -> &mut ServiceCore {
        &mut self.core
    }

    fn dispatch(&mut self, message: Message) -> Result<(), Fault> {
        // A dropped Client just discards what arrives.
        let _ = self.sender.send(message);
        Ok(())
    }
}

/// An outside thread's presence in a node.
pub struct Client {
    node: Arc<NodeShared>,
    handle: Handle,
    inbox: Receiver<Message>,
    kept: VecDeque<Message>,
    last_session: i32,
}

impl Client {
    /// Creates the client's service (listed as module `client`).
    ///
    /// # Errors
    /// A [`LaunchError`] when no handle is free.
    pub fn new(node: &crate::node::NodeHandle) -> Result<Client, LaunchError> {
        let node = node.shared();
        let (sender, inbox) = channel();
        let handle = node.launch_with("client", "", move |core| {
            Ok(Box::new(Forward { core, sender }) as Box<dyn Behavior>)
        })?;
        Ok(Client {
            node: node.clone(),
            handle,
            inbox,
            kept: VecDeque::new(),
            last_session: 0,
        })
    }

    /// The client's address.
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// Sends a one-way message from the client.
    ///
    /// # Errors
    /// [`CallError::InvalidAddress`].
    pub fn send(&self, dest: Handle, ptype: u32, data: &[u8]) -> Result<(), CallError> {
        self.push(dest, ptype, 0, data)
    }

    fn push(&self, dest: Handle, ptype: u32, session: i32, data: &[u8]) -> Result<(), CallError> {
        let message = Message {
            source: self.handle,
            session,
            ptype: ptype as u8,
            data: data.into(),
        };
        self.node
            .router
            .push(dest, message)
            .map_err(|_| CallError::InvalidAddress(dest))
    }

    /// Sends a request and waits up to `limit` for its reply.
    ///
    /// # Errors
    /// A [`CallError`].
    pub fn call(
        &mut self,
        dest: Handle,
        ptype: u32,
        data: &[u8],
        limit: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let session = self.request(dest, ptype, data)?;
        self.wait(dest, session, limit)
    }

    /// Sends a request without waiting; returns its session for [`Client::wait`].
    ///
    /// # Errors
    /// [`CallError::InvalidAddress`].
    pub fn request(&mut self, dest: Handle, ptype: u32, data: &[u8]) -> Result<i32, CallError> {
        self.last_session = self.last_session.wrapping_add(1).max(1);
        let session = self.last_session;
        self.push(dest, ptype, session, data)?;
        Ok(session)
    }

    /// Waits up to `limit` for the reply to `session` (sent to `dest`).
    ///
    /// # Errors
    /// [`CallError::Failed`] for a PTYPE_ERROR reply, [`CallError::Timeout`].
    pub fn wait(
        &mut self,
        dest: Handle,
        session: i32,
        limit: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let is_reply = |m: &Message| {
            m.session == session && matches!(m.ptype as u32, ptype::RESPONSE | ptype::ERROR)
        };
        if let Some(at) = self.kept.iter().position(is_reply) {
            let m = self.kept.remove(at).expect("position is in range");
            return reply_result(dest, m);
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.inbox.recv_timeout(left) {
                Ok(m) if is_reply(&m) => return reply_result(dest, m),
                Ok(m) => self.kept.push_back(m),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    return Err(CallError::Timeout(dest, limit))
                }
            }
        }
    }

    /// Answers a request the client received.
    ///
    /// # Errors
    /// [`CallError::InvalidAddress`] when the requester is gone.
    pub fn reply(&self, request: &Message, data: &[u8]) -> Result<(), CallError> {
        self.push(request.source, ptype::RESPONSE, request.session, data)
    }

    /// The next message not taken by [`Client::call`] or [`Client::wait`], waiting up to
    /// `limit`.
    pub fn recv(&mut self, limit: Duration) -> Option<Message> {
        if let Some(message) = self.kept.pop_front() {
            return Some(message);
        }
        self.inbox.recv_timeout(limit).ok()
    }
}

fn reply_result(dest: Handle, message: Message) -> Result<Vec<u8>, CallError> {
    if message.ptype as u32 == ptype::RESPONSE {
        Ok(message.data.into_vec())
    } else {
        Err(CallError::Failed(dest))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.node.kill(self.handle);
    }
}
